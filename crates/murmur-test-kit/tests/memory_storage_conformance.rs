//! The in-memory store passes the persistence conformance suite.

use murmur_core::storage;
use murmur_test_kit::MemoryStorage;

async fn start() -> storage::Handle {
    storage::Handle::from(MemoryStorage::start())
}

murmur_test_kit::storage_conformance_tests!(start);
