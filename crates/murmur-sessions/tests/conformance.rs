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

/// The suite again on a replacement: the default stage behind counters on
/// sealing and opening, as an integrator's stage that meters encryption
/// would wrap it.
mod counted {
    use murmur_core::crypto::Error;
    use murmur_test_kit::tally;

    use super::*;

    fn gone<T>() -> Result<T, Error> {
        Err(Error::State("the crypto stage is gone".to_owned()))
    }

    async fn start(storage: storage::Handle) -> crypto::Handle {
        let default = super::start(storage).await;
        let (seal, _) = tally(default.seal.clone(), gone);
        let (open, _) = tally(default.open.clone(), gone);
        crypto::Handle {
            seal,
            open,
            ..default
        }
    }

    murmur_test_kit::crypto_conformance_tests!(start);
}
