//! Hooks on the message path: inbound and outbound interceptors that return a
//! [`Verdict`], run in the order they were added. Moderation (rate limits,
//! word filters, bans) lives here.
//!
//! A hook sees messages at two levels: Waku messages as the network carries
//! them (encrypted, for chat), in [`Hook::inbound`] and [`Hook::outbound`];
//! and chat messages decrypted, their sender verified, in
//! [`Hook::chat_inbound`] and [`Hook::chat_outbound`].
//!
//! A hook that returns an error or panics is isolated: the failure is logged
//! and counted, the message takes the hook's [`FailurePolicy`], and the node
//! keeps running.

use crate::{
    chat::{self, Body, ChatMessage},
    Delivery, PubsubTopic, WakuMessage,
};

/// An error from user code: a hook's or a bot handler's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a hook decides about a message: `T` is what a rewrite replaces (the
/// Waku message, or a chat message's body).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict<T = WakuMessage> {
    /// Let it through unchanged.
    Deliver,
    /// Stop it here; the reason is logged and counted.
    Drop {
        /// Why, for logs and metrics.
        reason: String,
    },
    /// Let it through with this content instead. Inbound, the message keeps
    /// its network hash (or chat id) as its id.
    Rewrite(T),
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

    /// Decides about a chat message that arrived, decrypted and its sender
    /// verified, before any inbox (or bot) sees it. A rewrite replaces its
    /// body.
    fn chat_inbound(&mut self, message: &ChatMessage) -> Result<Verdict<Body>, BoxError> {
        let _ = message;
        Ok(Verdict::Deliver)
    }

    /// Decides about a chat message this node sends, before it is sealed.
    fn chat_outbound(&mut self, message: &chat::Outgoing) -> Result<Verdict<Body>, BoxError> {
        let _ = message;
        Ok(Verdict::Deliver)
    }

    /// What a failure of this hook means for the message.
    fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Deliver
    }
}

/// A hook a node builds from its `[plugins.NAME]` section.
pub trait Plugin: Hook + Sized {
    /// The name of its section, `[plugins.NAME]`, and in logs and metrics.
    const NAME: &'static str;
    /// Its settings, as the section spells them.
    type Config: serde::de::DeserializeOwned;

    /// Builds the plugin from its settings: at start, and again after it
    /// panicked.
    fn new(config: Self::Config) -> Result<Self, BoxError>;
}
