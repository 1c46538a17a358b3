//! murmur's persistence stage: the archive of raw Waku messages (what the
//! store server answers from), the outbox and reader cursors, on SQLite (the
//! embedded default: one file, WAL mode) or PostgreSQL (for store nodes that
//! outgrow one machine).
//!
//! [`Database`] is the backend, usable on its own; [`Storage`] is the
//! supervised actor that handles the stage's messages
//! ([`murmur_core::storage`]), its group writes timed and counted in
//! [`Metrics`]. Both backends run the same numbered migrations
//! (`migrations/sqlite`, `migrations/postgres`) at open, and the same
//! conformance suite as the in-memory store of `murmur-test-kit`.
//!
//! ```
//! # murmur_test_kit::run(async {
//! use murmur_core::{store::Query, Delivery, WakuMessage};
//! use murmur_storage::Database;
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open(&format!("sqlite://{}", dir.path().join("murmur.db").display())).await?;
//! let message = WakuMessage::new("/murmur/1/chat/proto", b"hi".to_vec()).with_timestamp(1);
//! let delivery = Delivery::new("/waku/2/rs/1/0".parse()?, message);
//! assert!(db.save(&delivery).await?);
//! assert!(!db.save(&delivery).await?, "a second copy is a duplicate");
//! let page = db.query(&Query::content(None, Vec::new())).await?;
//! assert_eq!(page.messages[0].hash, delivery.hash);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod actor;
mod database;
mod metrics;
mod sql;

pub use actor::Storage;
pub use database::Database;
pub use metrics::Metrics;
pub use sql::{archive_insert, checkpoint_beside, row_placeholders, Checkpoint, Growth, OpenError};
