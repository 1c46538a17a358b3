//! Hooks on the message path: inbound and outbound interceptors that return a
//! [`Verdict`], run in the order they were added. Moderation (rate limits,
//! word filters, bans) lives here.
//!
//! A hook that returns an error or panics is isolated: the failure is logged
//! and counted, the message takes the hook's [`FailurePolicy`], and the node
//! keeps running.

use crate::{Delivery, PubsubTopic, WakuMessage};

/// An error from user code: a hook's or a bot handler's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a hook decides about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Let it through unchanged.
    Deliver,
    /// Stop it here; the reason is logged and counted.
    Drop {
        /// Why, for logs and metrics.
        reason: String,
    },
    /// Let it through with this content instead. Inbound, the message keeps
    /// its network hash as its id.
    Rewrite(WakuMessage),
}

/// What happens to a message when a hook fails on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Treat the failure as [`Verdict::Deliver`]: a broken filter does not silence a chat.
    #[default]
    Deliver,
    /// Treat the failure as a drop: for hooks that guard something, fail closed.
    Drop,
}

/// A message on its way out, before the transport publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outgoing {
    /// Where it will be published.
    pub pubsub_topic: PubsubTopic,
    /// What will be published.
    pub message: WakuMessage,
}

impl Outgoing {
    /// An outgoing `message` for `pubsub_topic`.
    pub fn new(pubsub_topic: PubsubTopic, message: WakuMessage) -> Self {
        Self {
            pubsub_topic,
            message,
        }
    }
}

/// An interceptor on the message path.
pub trait Hook: Send + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;

    /// Decides about a message that arrived, before any subscriber sees it.
    fn inbound(&mut self, delivery: &Delivery) -> Result<Verdict, BoxError> {
        let _ = delivery;
        Ok(Verdict::Deliver)
    }

    /// Decides about a message before it is published.
    fn outbound(&mut self, outgoing: &Outgoing) -> Result<Verdict, BoxError> {
        let _ = outgoing;
        Ok(Verdict::Deliver)
    }

    /// What a failure of this hook means for the message.
    fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Deliver
    }
}
