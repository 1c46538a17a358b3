//! Cross-crate integration tests: several nodes in one process on loopback,
//! and real js-waku peers under Node.js. One binary, to keep link time down.

mod bad_input;
mod bots;
mod chat;
mod communities;
mod crash;
mod durable;
mod durable_raw;
mod faults;
mod filter;
mod flood;
mod gate;
mod gowaku;
mod groups;
mod jswaku;
mod light;
mod lightpush;
mod load;
mod outbox;
mod partition;
mod path;
mod peer;
mod plugins;
mod reliable;
mod replicas;
mod requests;
mod restore;
mod seam;
mod sharding;
mod shutdown;
mod store;
mod supervisor;
mod support;
mod sync;
mod threads;
mod vault;
