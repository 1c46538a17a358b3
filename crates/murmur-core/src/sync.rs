//! The store-sync stage: per-topic cursors, gap detection and causal history,
//! so that a node that was offline catches up from store nodes.
//!
//! Asked to: [`CatchUp`], [`FetchMissing`]. Tells: [`Event`].
//! The shapes are set here; the stage arrives with store sync.

use actix::Message;
use thiserror::Error;

use crate::{ContentTopic, MessageHash, PubsubTopic};

/// Why a catch-up failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The stage failed on this request (a defect: it panicked) and was
    /// restarted from its persisted state; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// No store node could be reached.
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
}

/// Fetches what was published on these topics since `since_nanos`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, Error>")]
#[non_exhaustive]
pub struct CatchUp {
    /// The pubsub topic.
    pub pubsub_topic: PubsubTopic,
    /// The content topics on it.
    pub content_topics: Vec<ContentTopic>,
    /// Unix nanoseconds.
    pub since_nanos: i64,
}

/// Fetches messages that others depend on, by hash.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct FetchMissing(pub Vec<MessageHash>);

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
