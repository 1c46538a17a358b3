//! A moderation plugin for murmur, configured in `[plugins.moderation]`:
//! per-member rate limits, word and pattern filters, flood and duplicate
//! detection, a ban list, mutes, and the admin commands `/ban`, `/unban`,
//! `/kick`, `/mute` and `/delete`, honoured only from group members whose
//! role allows them.
//!
//! It runs as a chat hook on every message that arrives, decrypted and with
//! its sender verified, before any inbox or bot sees it. Its decisions are
//! this node's: other members enforce what their own nodes run. What needs
//! the group itself (removing a member) is queued as an [`Action`] for the
//! application or bot that holds the group's admin rights
//! ([`Shared::take_actions`]).
//!
//! ```
//! use murmur_moderation::{Moderation, Settings};
//! use murmur_core::hook::Plugin as _;
//!
//! let settings: Settings = toml_like(r#"
//!     words = ["buy now"]
//!     rate = { messages = 5, seconds = 10 }
//! "#);
//! let plugin = Moderation::new(settings)?;
//! let shared = plugin.shared(); // for the bot that carries out kicks
//! # fn toml_like(s: &str) -> Settings {
//! #     use figment::{Figment, providers::{Format, Toml}};
//! #     Figment::from(Toml::string(s)).extract().unwrap()
//! # }
//! # Ok::<(), murmur_core::hook::BoxError>(())
//! ```

mod command;
mod moderator;

use std::sync::{Arc, Mutex, MutexGuard};

pub use command::{AdminCommand, CommandError};
pub use moderator::{Action, Moderator, Reason, Settings, Window};
use murmur_core::{
    chat::{Body, ChatMessage},
    hook::{BoxError, FailurePolicy, Hook, Plugin, Verdict},
};

/// The moderator state a plugin and its bot share.
#[derive(Clone, Debug)]
pub struct Shared(Arc<Mutex<Moderator>>);

impl Shared {
    /// A moderator from its settings.
    pub fn new(moderator: Moderator) -> Self {
        Self(Arc::new(Mutex::new(moderator)))
    }

    /// The moderator, locked. A panic while it was held (a bug) leaves the
    /// state as it was; it is still used.
    pub fn lock(&self) -> MutexGuard<'_, Moderator> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Actions waiting for someone with the group's rights: kicks.
    pub fn take_actions(&self) -> Vec<Action> {
        self.lock().take_actions()
    }
}

/// The plugin: the chat hook around a [`Moderator`].
#[derive(Debug)]
pub struct Moderation {
    shared: Shared,
}

impl Moderation {
    /// Its section in the node's configuration: `[plugins.moderation]`.
    pub const NAME_IN_CONFIG: &'static str = <Self as Plugin>::NAME;

    /// A plugin on state shared with a bot (see [`Moderation::shared`]).
    pub fn with_shared(shared: Shared) -> Self {
        Self { shared }
    }

    /// The state this plugin decides with.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }
}

impl Hook for Moderation {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn chat_inbound(&mut self, message: &ChatMessage) -> Result<Verdict<Body>, BoxError> {
        let now = std::time::Instant::now();
        Ok(match self.shared.lock().check(message, now) {
            Ok(()) => Verdict::Deliver,
            Err(reason) => {
                tracing::debug!(sender = %message.sender, %reason, "moderation dropped a message");
                Verdict::Drop {
                    reason: reason.to_string(),
                }
            }
        })
    }

    /// A moderation filter that fails lets nothing through: it guards.
    fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Drop
    }
}

impl Plugin for Moderation {
    const NAME: &'static str = "moderation";
    type Config = Settings;

    fn new(settings: Settings) -> Result<Self, BoxError> {
        Ok(Self::with_shared(Shared::new(Moderator::new(settings)?)))
    }
}
