//! The persistence stage: the database. Dedupe by hash, the raw archive (which
//! the store server answers from), the outbox and per-topic cursors.
//!
//! Asked to: [`SaveRaw`], [`Query`], [`Prune`], [`Enqueue`], [`MarkSent`],
//! [`Pending`], [`SaveCursor`], [`LoadCursor`], [`SaveState`], [`LoadState`],
//! [`ListState`]. Tells nothing. Every backend
//! runs `murmur-test-kit`'s `storage_conformance_tests!`.

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
}

/// Archives a message that arrived or was published; answers `true` if it was
/// new, `false` if its hash was already stored. Ephemeral messages are not
/// stored (answer `false`). Durable before the answer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct SaveRaw(pub Delivery);

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

/// Puts an outgoing message in the outbox before the send call returns;
/// answers its hash, the outbox key.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<MessageHash, Error>")]
#[non_exhaustive]
pub struct Enqueue {
    /// Where it will be published.
    pub pubsub_topic: PubsubTopic,
    /// What will be published.
    pub message: WakuMessage,
}

impl Enqueue {
    /// Enqueue `message` for `pubsub_topic`.
    pub fn new(pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        Self {
            pubsub_topic,
            message,
        }
    }
}

/// Marks an outbox entry published.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct MarkSent(pub MessageHash);

/// Lists the outbox entries not yet published, oldest first.
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

/// Any actor that handles the persistence stage's messages.
pub trait Stage:
    Actor<Context = Context<Self>>
    + Handler<SaveRaw>
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
    + Handler<InjectPanic>
{
}

impl<A> Stage for A where
    A: Actor<Context = Context<A>>
        + Handler<SaveRaw>
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
        + Handler<InjectPanic>
{
}

/// The persistence stage as the rest of the node holds it.
#[derive(Clone)]
pub struct Handle {
    /// Where [`SaveRaw`] goes.
    pub save_raw: Recipient<SaveRaw>,
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
    /// Where [`InjectPanic`] goes (tests of supervision).
    pub inject_panic: Recipient<InjectPanic>,
}

impl<A: Stage> From<Addr<A>> for Handle {
    fn from(addr: Addr<A>) -> Self {
        Self {
            save_raw: addr.clone().recipient(),
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
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("storage::Handle").finish_non_exhaustive()
    }
}
