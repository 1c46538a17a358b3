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
    /// What another message sealed in the same batch failed with, as text:
    /// a failure whose type cannot be copied to every message of it.
    #[error("{0}")]
    Batch(String),
}

impl From<actix::MailboxError> for Error {
    fn from(_: actix::MailboxError) -> Self {
        Self::Stopped
    }
}

impl Error {
    /// The same error for another caller: each message of a batch sealed
    /// together hears how the batch went. The variants that carry a type
    /// which cannot be copied come from starting a node, not from a send;
    /// they are passed on as their text ([`Error::Batch`]).
    pub(crate) fn again(&self) -> Self {
        match self {
            Self::Config(s) => Self::Config(s.clone()),
            Self::Archive(e) => Self::Archive(e.clone()),
            Self::Send(e) => Self::Send(e.clone()),
            Self::Crypto(e) => Self::Crypto(e.clone()),
            Self::Group(e) => Self::Group(e.clone()),
            Self::Sync(e) => Self::Sync(e.clone()),
            Self::ChatDisabled => Self::ChatDisabled,
            Self::Topic(e) => Self::Topic(e.clone()),
            Self::Dropped { hook, reason } => Self::Dropped {
                hook: hook.clone(),
                reason: reason.clone(),
            },
            Self::Restarted(p) => Self::Restarted(*p),
            Self::Stopped => Self::Stopped,
            Self::Busy(s) => Self::Busy(s),
            Self::Corrupt(s) => Self::Corrupt(s.clone()),
            Self::Batch(s) => Self::Batch(s.clone()),
            Self::Key(_) | Self::Storage(_) | Self::Transport(_) | Self::Reliable(_) => {
                Self::Batch(self.to_string())
            }
        }
    }
}
