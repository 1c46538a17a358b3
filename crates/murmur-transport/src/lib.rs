//! murmur's transport stage: a rust-libp2p Waku v2 node.
//!
//! It speaks 11/WAKU2-RELAY (gossipsub on `/vac/waku/relay/2.0.0`, anonymous,
//! message id = sha256 of the message bytes, nwaku's mesh parameters),
//! 66/WAKU2-METADATA, identify and ping, over TCP and WebSocket with noise and
//! yamux or mplex: what nwaku, go-waku and js-waku need to talk to it.
//!
//! Two layers, as in the rest of murmur:
//! - [`Network`] owns the swarm in a task of its own and is driven through a
//!   bounded command channel; it knows nothing of actors.
//! - [`Transport`] is the thin actor around it that handles the transport
//!   stage's messages ([`murmur_core::transport`]) under a supervisor,
//!   rebuilding the node if its task panics.
//!
//! ```no_run
//! use murmur_core::{transport::Event, Sharding, WakuMessage};
//! use murmur_transport::{Config, Network};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sharding = Sharding::auto(1, 8);
//! let config = Config::new(libp2p::identity::Keypair::generate_secp256k1(), sharding)
//!     .with_static_peer("/ip4/127.0.0.1/tcp/60000/p2p/16Uiu2HAm...".parse()?);
//! let (node, mut events) = Network::start(config).await?;
//! let topic = "/waku/2/rs/1/0".parse()?;
//! node.subscribe(&topic).await?;
//! node.publish(&topic, WakuMessage::new("/murmur/1/hi/proto", b"hello".to_vec())).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(delivery) = event {
//!         println!("{} on {}", delivery.hash, delivery.pubsub_topic);
//!     }
//! }
//! # Ok(()) }
//! ```

mod actor;
mod behaviour;
mod config;
pub mod discv5;
pub mod dns;
pub mod enr;
mod error;
mod filter;
mod inbound;
mod lightpush;
mod metadata;
mod metrics;
mod network;
mod peer_exchange;
mod rpc;
mod services;
mod store;
mod tasks;
pub mod timer;

#[cfg(feature = "fault-injection")]
pub use actor::CrashSwarm;
pub use actor::Transport;
pub use behaviour::{relay_behaviour, relay_config};
pub use config::Config;
pub use error::Error;
pub use lightpush::Version as LightpushVersion;
pub use metrics::{Metrics, RejectReason};
pub use network::Network;
