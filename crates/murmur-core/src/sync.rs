//! The store-sync stage: what a node missed while it was away, fetched from
//! store nodes and put on the inbound path, where it is archived by hash (so
//! nothing enters twice) and handled as if it had just arrived.
//!
//! Asked to: [`Watch`] topics and run a [`Round`] over them, [`CatchUp`],
//! [`FetchMissing`], [`Confirm`], and ask [`Stores`] learned since it
//! started. The stage asks store nodes through the transport's
//! [`QueryStore`](crate::transport::QueryStore), page by page, and hands what
//! comes back to the recipient of [`transport::Event`](crate::transport::Event)s
//! it was given (the pipeline). It keeps, durably, how far this node has
//! seen each watched topic; the node runs a round at start, on every new
//! connection and periodically. Gap detection and causal history arrive with
//! the delivery guarantees (`Event`'s shapes are set here for them).

use std::fmt;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use thiserror::Error;

use crate::{supervise::InjectPanic, ContentTopic, MessageHash, PubsubTopic};

/// Why a catch-up failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The stage, or the transport it asked through, failed on this request
    /// (a defect: it panicked) and was restarted; the request was not
    /// carried out, and may be asked again.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// No store node is known to ask.
    #[error("no store node available")]
    NoStoreNode,
    /// A store node answered with an error status.
    #[error("store node answered {code}: {description}")]
    Store {
        /// The status code.
        code: u32,
        /// Its description.
        description: String,
    },
    /// A store node could not be asked (not reachable, no store protocol,
    /// a malformed answer).
    #[error("store node {store} could not be asked: {reason}")]
    Unreachable {
        /// The store node.
        store: String,
        /// Why.
        reason: String,
    },
    /// What came back could not be handed on: the node is shutting down.
    #[error("the inbound path is gone")]
    Stopped,
    /// How far a topic was seen could not be read or saved.
    #[error("sync positions: {0}")]
    Positions(String),
    /// This node's archive could not be asked which messages it holds.
    #[error("archive lookup: {0}")]
    Archive(String),
}

/// Keeps these topics in sync from now on: each [`Round`] fetches what came
/// on them since this node last saw them. A topic watched for the first
/// time starts now (a new device does not pull what came before it);
/// watching it again changes nothing. The stage keeps the positions
/// durably, not the list: a node watches its topics again after a restart.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct Watch {
    /// The pubsub topic.
    pub pubsub_topic: PubsubTopic,
    /// The content topics on it.
    pub content_topics: Vec<ContentTopic>,
}

impl Watch {
    /// Watches `content_topics` on `pubsub_topic`.
    pub fn new(pubsub_topic: PubsubTopic, content_topics: Vec<ContentTopic>) -> Self {
        Self {
            pubsub_topic,
            content_topics,
        }
    }
}

/// Why a [`Round`] runs: for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The node started.
    Start,
    /// A peer connected: perhaps after an outage, or a store node came back.
    Reconnected,
    /// The periodic round.
    Periodic,
    /// Someone asked.
    Asked,
}

/// Fetches, for every watched topic, what came since this node last saw it
/// (with a margin for clocks and messages in flight), from every store node
/// the stage knows, each from where this node left that store node: what
/// one never got (it was cut off from the sender by a partition, or down)
/// comes from another. A topic's position at a store node moves to the
/// round's start once that store node answered it to the end, and stays
/// where it was otherwise, so that the next round asks it again; a store
/// node asked for the first time is asked from where every store node
/// answered last (or since the topic was first watched). However recent
/// the position, a round reaches back an hour at least (the default stage's
/// `LATE`): a store node can get a message long after its time, when a
/// partition heals elsewhere. Before the position it asks for hashes and
/// fetches only what this node's archive lacks. Rounds run one after another. Answers
/// how many messages came back (the pipeline drops any this node already
/// had, from another store node or by relay); fails only if no store node
/// could be asked about any topic.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct Round(pub Reason);

/// Fetches what was published on these topics since `since_nanos`, from
/// `store` if given, else from the store nodes the stage knows (the next one
/// when one fails); answers how many messages came back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, Error>")]
#[non_exhaustive]
pub struct CatchUp {
    /// The pubsub topic.
    pub pubsub_topic: PubsubTopic,
    /// The content topics on it.
    pub content_topics: Vec<ContentTopic>,
    /// Unix nanoseconds; `None` for everything the store has.
    pub since_nanos: Option<i64>,
    /// The store node to ask.
    pub store: Option<String>,
}

impl CatchUp {
    /// Everything on `content_topics` (on `pubsub_topic`) the store nodes have.
    pub fn new(pubsub_topic: PubsubTopic, content_topics: Vec<ContentTopic>) -> Self {
        Self {
            pubsub_topic,
            content_topics,
            since_nanos: None,
            store: None,
        }
    }

    /// Only what was published since `nanos`.
    pub fn since(mut self, nanos: Option<i64>) -> Self {
        self.since_nanos = nanos;
        self
    }

    /// Asks this store node (a multiaddr with `/p2p/`).
    pub fn from_store(mut self, store: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self
    }
}

/// Fetches messages by hash (ones others depend on), from the store nodes
/// the stage knows; answers how many came back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct FetchMissing(pub Vec<MessageHash>);

/// Asks a store node which of these messages it holds (a lookup by hash
/// that brings back no data): what a sender calls acknowledged by the
/// network. The first store node the stage knows that answers is taken at
/// its word; answers the hashes it holds.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<MessageHash>, Error>")]
pub struct Confirm(pub Vec<MessageHash>);

/// Store nodes to ask beside the ones the stage started with: listed in a
/// signed DNS tree, or told of by peer exchange. They are asked after
/// those, the listed ones first; of each source the newest
/// [`Stores::KEPT`] are kept, so that peers handing out made-up records
/// neither make every round ask without end nor push out what a signed
/// tree listed. One known already changes nothing. Answers how many store
/// nodes the stage asks now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
#[non_exhaustive]
pub struct Stores {
    /// The store nodes, each an address ending in `/p2p/<peer id>`.
    pub stores: Vec<String>,
    /// Where they come from.
    pub source: Source,
}

/// Where learned store nodes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Source {
    /// A DNS tree signed by its operator (EIP-1459).
    Listed,
    /// Peer exchange: what a peer said, unauthenticated.
    Exchanged,
}

impl Stores {
    /// Store nodes of each source kept at most.
    pub const KEPT: usize = 8;

    /// Store nodes a signed DNS tree listed.
    pub fn listed(stores: Vec<String>) -> Self {
        Self {
            stores,
            source: Source::Listed,
        }
    }

    /// Store nodes a peer told of by peer exchange.
    pub fn exchanged(stores: Vec<String>) -> Self {
        Self {
            stores,
            source: Source::Exchanged,
        }
    }
}

/// What store sync tells the pipeline.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum Event {
    /// Messages came back from a store node and entered the inbound path.
    Recovered {
        /// How many.
        count: usize,
    },
    /// A message is referenced but no store node has it.
    Gap(MessageHash),
}

/// Any actor that handles the store-sync stage's messages.
pub trait Stage:
    Actor<Context = Context<Self>>
    + Handler<Watch>
    + Handler<Round>
    + Handler<CatchUp>
    + Handler<FetchMissing>
    + Handler<Confirm>
    + Handler<Stores>
    + Handler<InjectPanic>
{
}

impl<A> Stage for A where
    A: Actor<Context = Context<A>>
        + Handler<Watch>
        + Handler<Round>
        + Handler<CatchUp>
        + Handler<FetchMissing>
        + Handler<Confirm>
        + Handler<Stores>
        + Handler<InjectPanic>
{
}

/// The store-sync stage as the rest of the node holds it.
#[derive(Clone)]
pub struct Handle {
    /// Where [`Watch`] goes.
    pub watch: Recipient<Watch>,
    /// Where [`Round`] goes.
    pub round: Recipient<Round>,
    /// Where [`CatchUp`] goes.
    pub catch_up: Recipient<CatchUp>,
    /// Where [`FetchMissing`] goes.
    pub fetch_missing: Recipient<FetchMissing>,
    /// Where [`Confirm`] goes.
    pub confirm: Recipient<Confirm>,
    /// Where [`Stores`] goes.
    pub stores: Recipient<Stores>,
    /// Where [`InjectPanic`] goes (tests of supervision).
    pub inject_panic: Recipient<InjectPanic>,
}

impl<A: Stage> From<Addr<A>> for Handle {
    fn from(addr: Addr<A>) -> Self {
        Self {
            watch: addr.clone().recipient(),
            round: addr.clone().recipient(),
            catch_up: addr.clone().recipient(),
            fetch_missing: addr.clone().recipient(),
            confirm: addr.clone().recipient(),
            stores: addr.clone().recipient(),
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("sync::Handle").finish_non_exhaustive()
    }
}
