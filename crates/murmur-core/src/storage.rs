//! The persistence stage: the database. Dedupe by hash, the raw archive (which
//! the store server answers from), the outbox and per-topic cursors.
//!
//! Asked to: [`SaveRaw`], [`SaveAll`], [`Query`], [`Prune`], [`Enqueue`], [`MarkSent`],
//! [`Pending`], [`SaveCursor`], [`LoadCursor`], [`SaveState`], [`LoadState`],
//! [`ListState`], [`Acquire`], [`Release`]. Tells nothing. Every backend
//! runs `murmur-test-kit`'s `storage_conformance_tests!`.
//!
//! One database is one node. Two processes pointed at one database (replicas
//! of a bot on one PostgreSQL server) take turns through a lease
//! ([`Acquire`]): the holder runs, the other waits, and once a stage holds
//! the lease each of its writes commits only while it still does, in the
//! same transaction (fencing), so a holder that was paused past its lease
//! and woke after another took over writes nothing.

use std::{fmt, time::Duration};

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use thiserror::Error;

use crate::{
    store::{self, Page},
    supervise::InjectPanic,
    Delivery, MessageHash, PubsubTopic, WakuMessage,
};

/// Why the database could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The database cannot be reached or refused the statement.
    #[error("database error: {0}")]
    Backend(String),
    /// A stored row could not be read back (a corrupt or foreign database).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The query breaks a rule of the store protocol.
    #[error("bad query: {0}")]
    BadQuery(&'static str),
    /// The stage failed on this request (a defect: it panicked) and was
    /// restarted from its persisted state; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// The cursor names a message this store does not have.
    #[error("unknown cursor {0}")]
    UnknownCursor(MessageHash),
    /// Another process took this database's lease from this stage's holder
    /// (named here): the write was not carried out, and none will be until
    /// this holder acquires the lease again.
    #[error("the database's lease was taken by {0}; this process writes nothing more")]
    Fenced(String),
    /// What was asked cannot be kept by this database (a NUL character in
    /// an archived message's content topic or in a state name, which
    /// PostgreSQL's text refuses). Refused on its own, before it joins a
    /// group write, so that it fails no other write.
    #[error("cannot be stored: {0}")]
    Unstorable(&'static str),
}

/// Archives a message that arrived or was published; answers `true` if it was
/// new, `false` if its hash was already stored. Ephemeral messages are not
/// stored (answer `false`). Durable before the answer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct SaveRaw(pub Delivery);

/// Archives messages that arrived together, as one request: answers, for
/// each in order, what [`SaveRaw`] would (a copy of one before it in the
/// same request is not new). Durable before the answer, all of them or
/// none; an empty request writes nothing and answers at once, with nothing.
/// One request for many spares the stages around it a message, an
/// answer and a wake-up per message: the transport archives what one poll
/// of its swarm brought this way.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<bool>, Error>")]
pub struct SaveAll(pub Vec<Delivery>);

/// Answers one page of a store query from the archive.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Page, Error>")]
pub struct Query(pub store::Query);

/// Applies retention: deletes messages older than `max_age` and the oldest
/// beyond `max_count`; answers how many were deleted.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "Result<u64, Error>")]
#[non_exhaustive]
pub struct Prune {
    /// Keep nothing older (by message timestamp).
    pub max_age: Option<Duration>,
    /// Keep at most this many messages.
    pub max_count: Option<u64>,
}

impl Prune {
    /// Retention by age and by count.
    pub fn new(max_age: Option<Duration>, max_count: Option<u64>) -> Self {
        Self { max_age, max_count }
    }
}

/// Puts an outgoing message in the outbox (a chat envelope before its send
/// answers; a raw message that the network did not take); answers its
/// hash, the outbox key.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<MessageHash, Error>")]
#[non_exhaustive]
pub struct Enqueue {
    /// Where it will be published.
    pub pubsub_topic: PubsubTopic,
    /// What will be published.
    pub message: WakuMessage,
    /// The entry this one replaces ([`Enqueue::in_place_of`]).
    pub replaces: Option<MessageHash>,
}

impl Enqueue {
    /// Enqueue `message` for `pubsub_topic`, behind every entry waiting.
    pub fn new(pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        Self {
            pubsub_topic,
            message,
            replaces: None,
        }
    }

    /// Puts it where the entry `old` waits, and takes `old` out, in one
    /// write: a message stamped again while it waited (its hash changes
    /// with its stamp) keeps its turn, so that an outage does not rotate
    /// the queue. If `old` is not waiting (the network took it meanwhile),
    /// it goes in behind every entry, as [`Enqueue::new`] would.
    pub fn in_place_of(mut self, old: MessageHash) -> Self {
        self.replaces = Some(old);
        self
    }
}

/// Marks an outbox entry published.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct MarkSent(pub MessageHash);

/// Lists the outbox entries not yet published, in their turn: the order
/// they were put in, an entry put in place of another in that one's turn.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Delivery>, Error>")]
pub struct Pending;

/// Where a reader of a topic got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The timestamp of the last message read.
    pub timestamp: i64,
    /// Its hash.
    pub hash: MessageHash,
}

/// Saves the cursor of `name` (a topic, or a subscriber).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct SaveCursor {
    /// Whose cursor.
    pub name: String,
    /// Where it is.
    pub cursor: Cursor,
}

/// Loads the cursor of a name.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Cursor>, Error>")]
pub struct LoadCursor(pub String);

/// Writes other stages' state: opaque bytes by name (`None` deletes), all
/// in one transaction. Stages encrypt what they keep here with keys the
/// database never sees.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct SaveState(pub Vec<(String, Option<Vec<u8>>)>);

/// Reads one entry of stage state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Vec<u8>>, Error>")]
pub struct LoadState(pub String);

/// Reads every entry of stage state whose name starts with the prefix, by
/// name.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<(String, Vec<u8>)>, Error>")]
pub struct ListState(pub String);

/// Takes the lease `name` for `holder`, or renews it, for `ttl` from now by
/// the database's clock; a lease whose holder did not renew it in time goes
/// to the next asker. Once this answers [`Lease::Held`], every write of the
/// stage commits only while `holder` holds the lease, checked in the write's
/// own transaction, and fails with [`Error::Fenced`] after another holder
/// took it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Lease, Error>")]
#[non_exhaustive]
pub struct Acquire {
    /// Which lease (one per node: the node's database).
    pub name: String,
    /// Who asks: unique to one process's run.
    pub holder: String,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
}

impl Acquire {
    /// Asks for the lease `name` for `holder`, for `ttl`.
    pub fn new(name: impl Into<String>, holder: impl Into<String>, ttl: Duration) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            ttl,
        }
    }
}

/// The answer to an [`Acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The asker holds the lease. The epoch grows each time the lease
    /// changes hands, and stays while one holder renews it.
    Held {
        /// Which tenure this is.
        epoch: u64,
    },
    /// Another holds it.
    Taken {
        /// Who.
        holder: String,
        /// How long until it lapses unless renewed.
        remaining: Duration,
    },
}

/// Gives up the lease `name` if `holder` holds it (a clean stop), so that
/// the next asker takes it at once. A stage that acquired it for `holder`
/// writes nothing more after it (until it acquires it again).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct Release {
    /// Which lease.
    pub name: String,
    /// Who gives it up.
    pub holder: String,
}

impl Release {
    /// `holder` gives up the lease `name`.
    pub fn new(name: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
        }
    }
}

/// Any actor that handles the persistence stage's messages.
pub trait Stage:
    Actor<Context = Context<Self>>
    + Handler<SaveRaw>
    + Handler<SaveAll>
    + Handler<Query>
    + Handler<Prune>
    + Handler<Enqueue>
    + Handler<MarkSent>
    + Handler<Pending>
    + Handler<SaveCursor>
    + Handler<LoadCursor>
    + Handler<SaveState>
    + Handler<LoadState>
    + Handler<ListState>
    + Handler<Acquire>
    + Handler<Release>
    + Handler<InjectPanic>
{
}

impl<A> Stage for A where
    A: Actor<Context = Context<A>>
        + Handler<SaveRaw>
        + Handler<SaveAll>
        + Handler<Query>
        + Handler<Prune>
        + Handler<Enqueue>
        + Handler<MarkSent>
        + Handler<Pending>
        + Handler<SaveCursor>
        + Handler<LoadCursor>
        + Handler<SaveState>
        + Handler<LoadState>
        + Handler<ListState>
        + Handler<Acquire>
        + Handler<Release>
        + Handler<InjectPanic>
{
}

/// The persistence stage as the rest of the node holds it.
#[derive(Clone)]
pub struct Handle {
    /// Where [`SaveRaw`] goes.
    pub save_raw: Recipient<SaveRaw>,
    /// Where [`SaveAll`] goes.
    pub save_all: Recipient<SaveAll>,
    /// Where [`Query`] goes.
    pub query: Recipient<Query>,
    /// Where [`Prune`] goes.
    pub prune: Recipient<Prune>,
    /// Where [`Enqueue`] goes.
    pub enqueue: Recipient<Enqueue>,
    /// Where [`MarkSent`] goes.
    pub mark_sent: Recipient<MarkSent>,
    /// Where [`Pending`] goes.
    pub pending: Recipient<Pending>,
    /// Where [`SaveCursor`] goes.
    pub save_cursor: Recipient<SaveCursor>,
    /// Where [`LoadCursor`] goes.
    pub load_cursor: Recipient<LoadCursor>,
    /// Where [`SaveState`] goes.
    pub save_state: Recipient<SaveState>,
    /// Where [`LoadState`] goes.
    pub load_state: Recipient<LoadState>,
    /// Where [`ListState`] goes.
    pub list_state: Recipient<ListState>,
    /// Where [`Acquire`] goes.
    pub acquire: Recipient<Acquire>,
    /// Where [`Release`] goes.
    pub release: Recipient<Release>,
    /// Where [`InjectPanic`] goes (tests of supervision).
    pub inject_panic: Recipient<InjectPanic>,
}

impl<A: Stage> From<Addr<A>> for Handle {
    fn from(addr: Addr<A>) -> Self {
        Self {
            save_raw: addr.clone().recipient(),
            save_all: addr.clone().recipient(),
            query: addr.clone().recipient(),
            prune: addr.clone().recipient(),
            enqueue: addr.clone().recipient(),
            mark_sent: addr.clone().recipient(),
            pending: addr.clone().recipient(),
            save_cursor: addr.clone().recipient(),
            load_cursor: addr.clone().recipient(),
            save_state: addr.clone().recipient(),
            load_state: addr.clone().recipient(),
            list_state: addr.clone().recipient(),
            acquire: addr.clone().recipient(),
            release: addr.clone().recipient(),
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("storage::Handle").finish_non_exhaustive()
    }
}

/// The lease table of a database only one process opens (in memory, a
/// file of its own), for backends to answer [`Acquire`] and [`Release`]
/// and fence their writes with [`Leases::check`], as the SQL backends do
/// in their tables.
#[derive(Debug, Default)]
pub struct Leases {
    table: std::collections::HashMap<String, (String, u64, std::time::Instant)>,
    /// The lease this stage's writes are fenced with (the epoch `None`
    /// once given up).
    fence: Option<(String, String, Option<u64>)>,
}

impl Leases {
    /// Takes or renews a lease; see [`Acquire`].
    pub fn acquire(&mut self, ask: &Acquire) -> Lease {
        let now = std::time::Instant::now();
        let until = now + ask.ttl;
        let epoch = match self.table.get_mut(&ask.name) {
            Some((holder, epoch, expires)) if *holder != ask.holder && *expires > now => {
                return Lease::Taken {
                    holder: holder.clone(),
                    remaining: *expires - now,
                };
            }
            Some((holder, epoch, expires)) => {
                if *holder != ask.holder {
                    holder.clone_from(&ask.holder);
                    *epoch += 1;
                }
                *expires = until;
                *epoch
            }
            None => {
                self.table
                    .insert(ask.name.clone(), (ask.holder.clone(), 1, until));
                1
            }
        };
        self.fence = Some((ask.name.clone(), ask.holder.clone(), Some(epoch)));
        Lease::Held { epoch }
    }

    /// Gives a lease up; see [`Release`].
    pub fn release(&mut self, ask: &Release) {
        if let Some((name, holder, epoch)) = &mut self.fence {
            if *name == ask.name && *holder == ask.holder {
                *epoch = None;
            }
        }
        if let Some((holder, _, expires)) = self.table.get_mut(&ask.name) {
            if *holder == ask.holder {
                *expires = std::time::Instant::now();
            }
        }
    }

    /// Whether this stage may write: it never asked for a lease, or it
    /// holds the one it asked for.
    pub fn check(&self) -> Result<(), Error> {
        let Some((name, me, epoch)) = &self.fence else {
            return Ok(());
        };
        let Some(epoch) = epoch else {
            return Err(Error::Fenced(format!("nobody ({me} gave it up)")));
        };
        match self.table.get(name) {
            Some((holder, held, _)) if holder == me && held == epoch => Ok(()),
            Some((holder, ..)) => Err(Error::Fenced(holder.clone())),
            None => Err(Error::Fenced("nobody (the lease is gone)".to_owned())),
        }
    }
}
