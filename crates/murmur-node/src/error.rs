use thiserror::Error;

/// Why a node could not start or do what it was asked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; the message names the key and its source.
    #[error("{0}")]
    Config(String),
    /// The node key could not be read, created or imported.
    #[error(transparent)]
    Key(#[from] crate::keys::Error),
    /// The database could not be opened (the URL's password is masked).
    #[error(transparent)]
    Storage(#[from] murmur_storage::OpenError),
    /// The persistence stage refused a request.
    #[error(transparent)]
    Archive(#[from] murmur_core::storage::Error),
    /// The transport stage could not start.
    #[error(transparent)]
    Transport(#[from] murmur_transport::Error),
    /// The transport stage refused a request.
    #[error(transparent)]
    Send(#[from] murmur_core::transport::Error),
    /// The crypto stage refused: an unknown contact, a bad contact code.
    #[error(transparent)]
    Crypto(#[from] murmur_core::crypto::Error),
    /// The membership stage refused: an unknown group, a change the
    /// account's role does not allow, a removed member sending.
    #[error(transparent)]
    Group(#[from] murmur_core::groups::Error),
    /// The store-sync stage could not catch up: no store node answered.
    #[error(transparent)]
    Sync(#[from] murmur_core::sync::Error),
    /// Chat needs the crypto stage, and `chat.enabled` is false.
    #[error("chat is disabled on this node (chat.enabled = false)")]
    ChatDisabled,
    /// A topic given by the caller is malformed.
    #[error(transparent)]
    Topic(#[from] murmur_core::TopicError),
    /// An outbound hook dropped the message.
    #[error("dropped by hook `{hook}`: {reason}")]
    Dropped {
        /// The hook.
        hook: String,
        /// Its reason.
        reason: String,
    },
    /// A stage failed on this request (a defect: it panicked) and was
    /// restarted; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] murmur_core::supervise::Panicked),
    /// A stage actor is gone (the node is shutting down).
    #[error("the node is shutting down")]
    Stopped,
    /// A queue of the node had no room for this now; nothing was done.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// A record of the node's own (the inbox, a subscriber's position)
    /// does not read back: altered, or sealed with another key.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A reliable channel refused the message.
    #[error(transparent)]
    Reliable(murmur_sds::Error),
}

impl From<actix::MailboxError> for Error {
    fn from(_: actix::MailboxError) -> Self {
        Self::Stopped
    }
}
