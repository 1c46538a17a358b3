//! SQLite and PostgreSQL pass the persistence conformance suite, unchanged.

use murmur_core::storage;
use murmur_storage::{Database, Storage};

/// A fresh SQLite file per test, in a folder that lives as long as the process.
async fn start() -> storage::Handle {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let db = Database::open(&format!("sqlite://{}", dir.join("murmur.db").display()))
        .await
        .expect("opens");
    storage::Handle::from(Storage::start(db))
}

murmur_test_kit::storage_conformance_tests!(start);

/// PostgreSQL: a fresh schema-less database per test on the server named by
/// `TEST_POSTGRES_URL` (.ci/run starts one and sets it).
mod postgres {
    use super::*;

    pub(super) async fn start() -> storage::Handle {
        let url = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
        );
        let db = Database::open_fresh(&url)
            .await
            .expect("opens a fresh database");
        storage::Handle::from(Storage::start(db))
    }

    murmur_test_kit::storage_conformance_tests!(start);
}
