//! Test kit for murmur and for crates that plug into it.
//!
//! - [`MemoryNetwork`]: an in-memory transport stage, for tests and examples
//!   that need no sockets.
//! - [`Probe`]: an actor that collects a stage's events for assertions.
//! - [`MemoryStorage`]: the persistence stage in memory.
//! - [`MemoryStore`]: a store node in memory, answering `QueryStore`.
//! - [`tally`] and [`gate`]: a stage message counted, or held until the
//!   test lets it through, on its way to the stage (every message, or those
//!   [`gate_some`] picks, so that later ones overtake them): the smallest
//!   replacements of a stage (ones that wrap the default).
//! - [`transport_conformance_tests!`], [`storage_conformance_tests!`],
//!   [`crypto_conformance_tests!`], [`membership_conformance_tests!`] and
//!   [`sync_conformance_tests!`]: the conformance suites of the five stages,
//!   each covering every message of its contract, an injected panic
//!   included. murmur's own stages run them; a third-party stage runs the
//!   same macro.
//!
//! ```
//! use murmur_core::{transport::{Publish, Subscribe}, PubsubTopic, WakuMessage};
//! use murmur_test_kit::{MemoryNetwork, Probe};
//!
//! murmur_test_kit::run(async {
//!     let net = MemoryNetwork::new();
//!     let (probe, mut events) = Probe::start();
//!     let a = net.start(Probe::start().0.recipient());
//!     let b = net.start(probe.recipient());
//!     let topic: PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
//!     a.send(Subscribe::new(topic.clone())).await.unwrap().unwrap();
//!     b.send(Subscribe::new(topic.clone())).await.unwrap().unwrap();
//!     let msg = WakuMessage::new("/a/1/b/c", b"hi".to_vec());
//!     let hash = a.send(Publish::new(topic, msg)).await.unwrap().unwrap();
//!     assert_eq!(events.next_message().await.hash, hash);
//! });
//! ```

pub mod conformance;
pub mod crypto_conformance;
pub mod membership_conformance;
mod memory;
mod memory_storage;
mod memory_store;
mod probe;
pub mod storage_conformance;
pub mod sync_conformance;
mod wrap;

pub use memory::{MemoryNetwork, MemoryTransport};
pub use memory_storage::MemoryStorage;
pub use memory_store::MemoryStore;
pub use probe::{Events, Probe};
pub use wrap::{gate, gate_saves, gate_some, tally, Tally, Valve};

/// Runs `future` to completion on a fresh actix system: what the conformance
/// macros use, so that a crate running them needs no test attribute of its own.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    actix_rt::System::new().block_on(future)
}

#[doc(hidden)]
pub mod __private {
    pub use actix;
}
