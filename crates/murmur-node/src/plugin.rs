//! Plugins: hooks that a node builds from its configuration, each from its
//! own section `[plugins.NAME]`, and rebuilds from it if it panics.
//!
//! Two keys of every section are the node's: `enabled` (default true) and
//! `on_failure` (`"deliver"` or `"drop"`, default the plugin's own
//! [`Hook::failure_policy`]). The rest is the plugin's
//! [`Plugin::Config`]; a typo there stops the start with one line naming
//! `plugins.NAME`.
//!
//! ```
//! use murmur_core::{chat::ChatMessage, hook::{BoxError, Hook, Verdict}};
//! use murmur_core::chat::Body;
//! use murmur_core::hook::Plugin;
//! use murmur_node::{Builder, Config};
//!
//! /// Drops chat messages that shout.
//! struct NoShouting { max_caps: usize }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { max_caps: usize }
//!
//! impl Hook for NoShouting {
//!     fn name(&self) -> &str { "no-shouting" }
//!     fn chat_inbound(&mut self, m: &ChatMessage) -> Result<Verdict<Body>, BoxError> {
//!         let caps = m.text().unwrap_or("").chars().filter(|c| c.is_uppercase()).count();
//!         Ok(if caps > self.max_caps {
//!             Verdict::Drop { reason: "shouting".into() }
//!         } else {
//!             Verdict::Deliver
//!         })
//!     }
//! }
//!
//! impl Plugin for NoShouting {
//!     const NAME: &'static str = "no-shouting";
//!     type Config = Settings;
//!     fn new(c: Settings) -> Result<Self, BoxError> { Ok(Self { max_caps: c.max_caps }) }
//! }
//!
//! use figment::{providers::{Format, Serialized, Toml}, Figment};
//! let figment = Figment::from(Serialized::defaults(Config::default()))
//!     .merge(Toml::string("[plugins.no-shouting]\nmax_caps = 10\n"));
//! let config = Config::from_figment(&figment)?;
//! let builder = Builder::new(config).with_plugin::<NoShouting>();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use figment::value::Value;
pub use murmur_core::hook::Plugin;
use murmur_core::hook::{BoxError, FailurePolicy, Hook};

use crate::{pipeline::Slot, Config, Error};

/// Builds the pipeline slot of plugin `P` from `config`; `None` if the
/// section says `enabled = false`.
pub(crate) fn slot<P: Plugin>(config: &Config) -> Result<Option<Slot>, Error> {
    let name = P::NAME;
    // serde quotes expected names itself, and figment quotes them again.
    let bad = |e: &dyn std::fmt::Display| {
        Error::Config(format!("plugins.{name}: {e}").replace("``", "`"))
    };
    let mut dict = match config.plugins.get(name) {
        None => figment::value::Dict::new(),
        Some(Value::Dict(_, d)) => d.clone(),
        Some(_) => return Err(bad(&"expected a table")),
    };
    let enabled = match dict.remove("enabled") {
        None => true,
        Some(v) => v
            .to_bool()
            .ok_or_else(|| bad(&"`enabled` is true or false"))?,
    };
    let policy = match dict.remove("on_failure") {
        None => None,
        Some(v) => match v.as_str() {
            Some("deliver") => Some(FailurePolicy::Deliver),
            Some("drop") => Some(FailurePolicy::Drop),
            _ => return Err(bad(&"`on_failure` is \"deliver\" or \"drop\"")),
        },
    };
    if !enabled {
        tracing::info!(plugin = name, "plugin disabled by its configuration");
        return Ok(None);
    }
    let settings: P::Config = Value::from(dict.clone())
        .deserialize()
        .map_err(|e| bad(&e))?;
    let hook = P::new(settings).map_err(|e| bad(&e))?;
    let factory = move || -> Result<Box<dyn Hook>, BoxError> {
        let settings: P::Config = Value::from(dict.clone()).deserialize()?;
        Ok(Box::new(P::new(settings)?))
    };
    Ok(Some(
        Slot::new(Box::new(hook)).with_factory(Box::new(factory), policy),
    ))
}
