//! The persistence stage: the database. Dedupe by hash, the raw archive, the
//! outbox and per-topic cursors.
//!
//! Asked to: [`SaveRaw`], [`Enqueue`], [`MarkSent`]. Tells nothing.
//! The shapes are set here; the stage arrives with store and persistence.

use actix::Message;
use thiserror::Error;

use crate::{Delivery, MessageHash, RequestId, WakuMessage};

/// Why the database could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The database cannot be reached or refused the statement.
    #[error("database error: {0}")]
    Backend(String),
    /// No such record.
    #[error("not found")]
    NotFound,
}

/// Saves a raw message that arrived; answers `true` if it was new, `false` if
/// its hash was already stored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct SaveRaw(pub Delivery);

/// Puts an outgoing message in the outbox before the send call returns.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct Enqueue {
    /// The send it belongs to.
    pub request: RequestId,
    /// The message to publish.
    pub message: WakuMessage,
}

/// Marks an outbox entry published.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct MarkSent {
    /// The send it belongs to.
    pub request: RequestId,
    /// The hash it was published under.
    pub hash: MessageHash,
}
