//! Scalable Data Sync: the participants of a channel learn, from the
//! messages themselves, what they missed, what the others have, and in
//! what order things were said; wire-compatible with js-waku's
//! `@waku/sds` 0.0.8 (and so its `ReliableChannel`).
//!
//! Each message carries its author's lamport clock, the ids of its recent
//! messages with the Waku hash each travelled in (its *causal history*),
//! and a bloom filter of every id the author received (its
//! *acknowledgement*). A participant delivers a message once what it
//! depends on is delivered, asks a store node (by hash) or the channel
//! (SDS-R) for what it lacks, and sends its own again until someone
//! acknowledges it.
//!
//! Sans-I/O: a [`Channel`] takes payloads and the time, and answers with
//! [`Event`]s and messages to publish. `murmur-node`'s reliable channels
//! run it on a content topic.
//!
//! ```
//! use murmur_sds::{Channel, Config, Event};
//! use prost::Message as _;
//!
//! let now = 1_700_000_000_000;
//! let mut alice = Channel::new("room", "alice", Config::default(), now);
//! let mut bob = Channel::new("room", "bob", Config::default(), now);
//!
//! // Alice sends two messages; the first is lost on the way to Bob.
//! let first = alice.send(b"first", now).unwrap();
//! alice.sent(&first.message_id, Some(vec![1; 32]), now);
//! let second = alice.send(b"second", now + 1).unwrap();
//! alice.sent(&second.message_id, Some(vec![2; 32]), now + 1);
//!
//! // Bob holds the second back and says which message to fetch, by hash.
//! let events = bob
//!     .receive_bytes(&second.encode_to_vec(), Some(vec![2; 32]), now + 2)
//!     .unwrap();
//! assert!(matches!(&events[..], [Event::Missing(m)] if m[0].retrieval_hint == Some(vec![1; 32])));
//!
//! // Once the first comes (from a store node), both arrive, in order.
//! let events = bob.receive(first, Some(vec![1; 32]), now + 3).unwrap();
//! let delivered: Vec<_> = events
//!     .iter()
//!     .filter_map(|e| match e {
//!         Event::Delivered(d) => Some(d.content.clone()),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(delivered, [b"first".to_vec(), b"second".to_vec()]);
//!
//! // Bob's next message acknowledges both.
//! let sync = bob.sync(now + 4).unwrap();
//! let acks = alice.receive(sync, None, now + 5).unwrap();
//! assert_eq!(acks.len(), 2);
//! assert_eq!(alice.unacknowledged().count(), 0);
//! ```

pub mod bloom;
mod channel;
mod repair;
mod state;

pub use channel::{message_id, Channel, Config, Delivered, Event, Tick, REPAIRS_PER_MESSAGE};
pub use murmur_proto::sds::{HistoryEntry, Kind, Message};
pub use repair::Timing;

/// Why a message or a saved state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload is not an SDS message.
    #[error("not an SDS message: {0}")]
    Malformed(String),
    /// A message with neither content nor a lamport timestamp, or an
    /// empty send.
    #[error("an SDS message needs content or a lamport timestamp")]
    Empty,
    /// A message whose id is not its content's hash: made up to take a
    /// real message's place.
    #[error("message id {0} is not the hash of its content")]
    WrongId(String),
    /// This content was sent and acknowledged already: the same content is
    /// the same message, so add something that tells them apart.
    #[error("message {0} was sent already")]
    Repeated(String),
    /// A saved state that cannot be read.
    #[error("saved channel state: {0}")]
    BadState(String),
}

#[cfg(test)]
mod tests;
