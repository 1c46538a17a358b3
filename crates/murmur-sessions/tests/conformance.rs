//! The crypto stage passes the conformance suite every replacement runs.

use murmur_core::{crypto, storage};
use murmur_sessions::{Crypto, Metrics, Settings};

async fn start(storage: storage::Handle) -> crypto::Handle {
    let addr = Crypto::start(
        storage,
        b"the node key of this test",
        &Settings::default(),
        Metrics::default(),
    )
    .await
    .expect("the crypto stage starts");
    crypto::Handle::from(addr)
}

murmur_test_kit::crypto_conformance_tests!(start);
