//! The stage contracts of murmur.
//!
//! murmur runs as separate actors, one per stage (transport, crypto sessions,
//! group membership, store sync, persistence), that talk only through the
//! typed messages defined here. A plugin crate that replaces a stage handles
//! the messages of that stage's module; a hook on the message path implements
//! [`hook::Hook`]. This crate does no I/O and changes slowly: everything that
//! crosses a stage boundary is `#[non_exhaustive]` so that new events and
//! fields are not breaking changes.
//!
//! ```
//! use murmur_core::{ContentTopic, MessageHash, PubsubTopic, Sharding, WakuMessage};
//!
//! let topic: ContentTopic = "/murmur/1/lobby/proto".parse()?;
//! // The Waku Network: cluster 1, autosharded over 8 shards.
//! let pubsub = Sharding::auto(1, 8).pubsub_topic(&topic);
//! assert_eq!(pubsub.to_string(), "/waku/2/rs/1/5");
//!
//! let message = WakuMessage::new(topic.as_str(), b"hi".to_vec()).with_timestamp(1);
//! let hash = MessageHash::of(&pubsub, &message);
//! assert_eq!(hash.to_string().len(), 66); // 0x + 64 hex digits
//! # Ok::<(), murmur_core::TopicError>(())
//! ```

pub mod chat;
pub mod commit;
pub mod crypto;
pub mod groups;
pub mod hook;
mod id;
pub mod latency;
mod redacted;
pub mod storage;
pub mod store;
pub mod supervise;
pub mod sync;
mod topic;
pub mod transport;

pub use id::{MessageHash, RequestId};
pub use murmur_proto::WakuMessage;
pub use topic::{ContentTopic, PubsubTopic, Shard, Sharding, ShardingError, TopicError};

/// A message that arrived from the network, after the transport validated it:
/// what subscribers and inbound hooks see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The pubsub topic it travelled on.
    pub pubsub_topic: PubsubTopic,
    /// Its deterministic hash: the id that dedupe, store and acks use.
    pub hash: MessageHash,
    /// The message itself.
    pub message: WakuMessage,
}

impl Delivery {
    /// A delivery of `message` on `pubsub_topic`; the hash is computed here.
    pub fn new(pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        let hash = MessageHash::of(&pubsub_topic, &message);
        Self {
            pubsub_topic,
            hash,
            message,
        }
    }
}

/// The current time in Unix nanoseconds, as Waku timestamps are written.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
