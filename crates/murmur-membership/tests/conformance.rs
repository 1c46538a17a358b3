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

/// The default stage gathers what requests change while a write is on its
/// way into the next write (group commit): twenty posts, one write.
#[test]
fn posts_made_while_a_write_is_held_go_as_one_write() {
    let (during, writes) = murmur_test_kit::run(
        murmur_test_kit::membership_conformance::writes_of_posts_made_while_one_is_held(start),
    );
    assert_eq!(during, 1, "one write at a time");
    assert_eq!(writes, 2, "the twenty posts made meanwhile are one write");
}

/// The suite again on a replacement: the default stage behind counters on
/// the messages that change groups, as an integrator's auditing stage would
/// wrap it. The pipeline and the suite see only the handle.
mod counted {
    use murmur_core::groups::{self, Error};
    use murmur_test_kit::{tally, Tally};

    use super::*;

    fn gone<T>() -> Result<T, Error> {
        Err(Error::State("the membership stage is gone".to_owned()))
    }

    async fn counted(storage: storage::Handle) -> (crypto::Handle, groups::Handle, [Tally; 3]) {
        let (crypto, default) = super::start(storage).await;
        let (create, created) = tally(default.create.clone(), gone);
        let (change, changed) = tally(default.change.clone(), gone);
        let (control, controls) = tally(default.control.clone(), gone);
        let handle = groups::Handle {
            create,
            change,
            control,
            ..default
        };
        (crypto, handle, [created, changed, controls])
    }

    async fn start(storage: storage::Handle) -> (crypto::Handle, groups::Handle) {
        let (crypto, groups, _) = counted(storage).await;
        (crypto, groups)
    }

    murmur_test_kit::membership_conformance_tests!(start);

    #[test]
    fn the_replacement_is_on_the_path() {
        murmur_test_kit::run(async {
            let storage = storage::Handle::from(murmur_test_kit::MemoryStorage::start());
            let (_, groups, [created, ..]) = counted(storage).await;
            groups
                .create
                .send(groups::Create {
                    name: "audited".to_owned(),
                })
                .await
                .expect("the stage is there")
                .expect("created");
            assert_eq!(created.get(), 1);
        });
    }
}
