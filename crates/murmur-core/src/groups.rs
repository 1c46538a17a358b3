//! The group-membership stage: groups, communities, members, roles and the
//! signed event log. Its core is sans-I/O.
//!
//! Asked to: [`Authorize`], [`ResolveRecipients`], [`Apply`]. Tells: [`Event`].
//! The shapes are set here; the stage arrives with private groups.

use actix::Message;
use bytes::Bytes;
use thiserror::Error;

use crate::crypto::DeviceId;

/// A group or community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; 32]);

/// Why a membership request failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// No such group.
    #[error("unknown group")]
    UnknownGroup,
    /// The sender lacks the role the action needs.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// A log event whose signature or parent does not check out.
    #[error("invalid membership event: {0}")]
    InvalidEvent(String),
}

/// May `sender` do `action` in `group`?
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
#[non_exhaustive]
pub struct Authorize {
    /// Where.
    pub group: GroupId,
    /// Who.
    pub sender: DeviceId,
    /// What, as the membership log names it (`post`, `kick`, `ban`, ...).
    pub action: String,
}

/// Who receives a message sent to `group`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<DeviceId>, Error>")]
pub struct ResolveRecipients(pub GroupId);

/// Applies a signed membership event from the log.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Apply(pub Bytes);

/// What the membership stage tells the pipeline.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum Event {
    /// Someone joined, left or changed role.
    MembershipChanged(GroupId),
    /// A member was removed: every sender chain of the group must rotate.
    KeysMustRotate(GroupId),
}
