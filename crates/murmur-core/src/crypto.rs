//! The crypto-sessions stage: owns the identity, prekeys, ratchet sessions and
//! group sender chains. Its core is a sans-I/O state machine; its actor
//! persists what the core returns.
//!
//! Asked to: [`Seal`], [`Open`]. Tells: [`Event`].
//! The shapes are set here; the stage itself arrives with the end-to-end
//! encryption work.

use actix::Message;
use bytes::Bytes;
use thiserror::Error;

use crate::{ContentTopic, Delivery};

/// One installation (device) of an account: its X25519 identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 32]);

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// No session with this device, and no prekey bundle to start one.
    #[error("no session with the recipient device and no prekey bundle to start one")]
    NoSession,
    /// The envelope is not for us, or was tampered with.
    #[error("the envelope cannot be opened: {0}")]
    Undecryptable(String),
    /// The envelope was opened before.
    #[error("replayed envelope")]
    Replay,
}

/// Seals `plaintext` for each recipient device (and our other devices).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
#[non_exhaustive]
pub struct Seal {
    /// Who may read it.
    pub recipients: Vec<DeviceId>,
    /// What they will read. Never logged.
    pub plaintext: Bytes,
}

/// One sealed envelope, ready to publish.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sealed {
    /// Where it goes: the recipient's partition, or the group's topic.
    pub content_topic: ContentTopic,
    /// The envelope bytes, the WakuMessage payload.
    pub payload: Bytes,
}

/// Opens an envelope that arrived.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Opened, Error>")]
pub struct Open(pub Delivery);

/// An opened envelope: who sent it, known only now (sealed sender).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Opened {
    /// The sending device.
    pub sender: DeviceId,
    /// The plaintext. Never logged.
    pub plaintext: Bytes,
}

/// What the crypto stage tells the pipeline.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum Event {
    /// A session with a device is up.
    SessionEstablished(DeviceId),
    /// A session was reset; messages in flight may need resending.
    SessionReset {
        /// With whom.
        device: DeviceId,
        /// Why.
        reason: String,
    },
}
