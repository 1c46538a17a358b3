//! murmur: private peer-to-peer messaging over Waku v2, as a framework.
//!
//! This facade re-exports murmur's crates under short names, the way the
//! `libp2p` crate does:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `murmur-core` | stage contracts: ids, topics, typed stage messages, hooks |
//! | [`proto`] | `murmur-proto` | Waku protobuf codecs and the message hash |
//! | [`crypto`] | `murmur-crypto` | sans-I/O X3DH, Double Ratchet, sealed envelopes |
//! | [`transport`] | `murmur-transport` | the libp2p Waku node (feature `transport`) |
//! | [`node`] | `murmur-node` | the supervised runtime, builder, config (feature `node`) |
//! | [`bot`] | `murmur-bot` | the bot SDK: extracted handler arguments, typed commands, middleware (feature `bot`) |
//!
//! ```no_run
//! use murmur::node::{Builder, Config};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = Builder::new(Config::default()).start().await?;
//!     let topic = "/murmur/1/lobby/proto".parse()?;
//!     let mut inbox = node.subscribe([&topic]).await?;
//!     node.send(&topic, b"hello".to_vec()).await?;
//!     if let Some(delivery) = inbox.recv().await {
//!         println!("{}", delivery.hash);
//!     }
//!     Ok(())
//! }
//! ```

#[cfg(feature = "bot")]
pub use murmur_bot as bot;
pub use murmur_core as core;
pub use murmur_crypto as crypto;
#[cfg(feature = "node")]
pub use murmur_node as node;
pub use murmur_proto as proto;
pub use murmur_sds as sds;
#[cfg(feature = "transport")]
pub use murmur_transport as transport;

/// docs/plugins.md, compiled: its examples are doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../docs/plugins.md")]
pub struct PluginGuide;
