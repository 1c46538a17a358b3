//! The murmur runtime.
//!
//! A [`Node`] is an actix system of stage actors, each under a supervisor, and
//! a [`Pipeline`] actor that moves every message through them. The pipeline
//! holds each stage only as `Recipient`s of that stage's messages
//! ([`murmur_core::transport::Handle`]); the [`Builder`] is the one place that
//! names concrete stage actors, and the seam where a plugin swaps one.
//!
//! ```no_run
//! use murmur_node::{Builder, Config};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = Builder::new(Config::default()).start().await?;
//!     let topic = "/murmur/1/lobby/proto".parse()?;
//!     let mut inbox = node.subscribe([&topic]).await?;
//!     node.send(&topic, b"hello".to_vec()).await?;
//!     while let Some(delivery) = inbox.recv().await {
//!         println!("{}: {} bytes", delivery.hash, delivery.message.payload.len());
//!     }
//!     Ok(())
//! }
//! ```

mod background;
mod builder;
pub mod chat;
pub mod config;
pub mod crypto;
mod discovery;
mod durable;
mod error;
pub mod groups;
mod handle;
mod inbox;
pub mod keys;
mod lease;
mod pipeline;
pub mod plugin;
mod publication;
pub mod reliable;
mod store_sync;

pub use builder::{Builder, CryptoContext, GroupsContext, StageContext, SyncContext};
pub use config::Config;
pub use durable::{Durable, Entry};
pub use error::Error;
#[cfg(feature = "fault-injection")]
pub use handle::StageId;
pub use handle::{Node, Subscription};
pub use pipeline::{Pipeline, Stats};
pub use publication::{Publication, PublishState};
pub use reliable::Reliable;

/// Waits for Ctrl-C or SIGTERM: what `murmur node` stops on.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
