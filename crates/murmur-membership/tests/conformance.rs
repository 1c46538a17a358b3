//! The membership stage passes the conformance suite every replacement runs,
//! beside the default crypto stage.

use murmur_core::{crypto, groups, storage};
use murmur_membership::{Membership, Metrics};
use murmur_sessions::{Crypto, Settings};

async fn start(storage: storage::Handle) -> (crypto::Handle, groups::Handle) {
    let secret = b"the node key of this test";
    let crypto = crypto::Handle::from(
        Crypto::start(
            storage.clone(),
            secret,
            &Settings::default(),
            murmur_sessions::Metrics::default(),
        )
        .await
        .expect("the crypto stage starts"),
    );
    let groups = Membership::start(storage, crypto.clone(), secret, 1000, Metrics::default())
        .await
        .expect("the membership stage starts");
    (crypto, groups::Handle::from(groups))
}

murmur_test_kit::membership_conformance_tests!(start);
