//! What the stage opened is kept until the pipeline handled it.

use murmur_core::{
    groups::{Handled, Unhandled},
    MessageHash,
};

use super::*;

async fn unhandled(of: &Device) -> Vec<(MessageHash, GroupId, AccountId, Vec<u8>)> {
    of.groups
        .unhandled
        .send(Unhandled)
        .await
        .expect("stage alive")
        .expect("the kept plaintexts")
        .into_iter()
        .map(|(hash, o)| (hash, o.group, o.sender, o.plaintext.to_vec()))
        .collect()
}

/// A group message opened stays until it is marked handled, across a
/// restart of the stages (a node killed between the chain's step and the
/// application): the step is not taken twice, and nothing is lost.
pub async fn keeps_what_it_opened_until_it_is_handled<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let bob_storage = storage::Handle::from(MemoryStorage::start());
    let alice = device(&start).await;
    let bob = device_on(&start, bob_storage.clone()).await;
    let group = pair_in_a_group(&alice, &bob).await;
    assert!(unhandled(&bob).await.is_empty(), "nothing opened yet");
    let mut arrived = Vec::new();
    for text in ["one", "two"] {
        let delivery = delivery(&post(&alice, group, text).await.expect("sealed"));
        let opened = bob
            .groups
            .open
            .send(groups::Open(delivery.clone()))
            .await
            .expect("stage alive")
            .expect("opened");
        arrived.push((delivery, opened.plaintext.to_vec()));
    }
    let expected: Vec<_> = arrived
        .iter()
        .map(|(d, p)| (d.hash, group, alice.account, p.clone()))
        .collect();
    assert_eq!(unhandled(&bob).await, expected, "kept in the order opened");

    let bob = device_on(&start, bob_storage.clone()).await;
    assert_eq!(
        bob.groups
            .open
            .send(groups::Open(arrived[0].0.clone()))
            .await
            .expect("stage alive")
            .err(),
        Some(Error::Replay),
        "the step is not taken again"
    );
    assert_eq!(
        unhandled(&bob).await,
        expected,
        "found again after a restart"
    );
    bob.groups
        .handled
        .send(Handled(vec![arrived[0].0.hash, MessageHash([7; 32])]))
        .await
        .expect("stage alive")
        .expect("marked");
    assert_eq!(
        unhandled(&bob).await,
        expected[1..],
        "an unknown hash is ignored"
    );
    let bob = device_on(&start, bob_storage).await;
    assert_eq!(unhandled(&bob).await, expected[1..], "handled for good");
}
