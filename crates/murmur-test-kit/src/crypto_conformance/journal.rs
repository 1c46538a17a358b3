//! What the stage opened is kept until the pipeline handled it.

use murmur_core::{
    crypto::{Handled, Unhandled},
    MessageHash,
};

use super::*;

async fn unhandled(stage: &crypto::Handle) -> Vec<(MessageHash, Option<String>)> {
    stage
        .unhandled
        .send(Unhandled)
        .await
        .expect("stage alive")
        .expect("the kept plaintexts")
        .into_iter()
        .map(|(hash, opened)| (hash, text(opened)))
        .collect()
}

/// An opened plaintext stays until it is marked handled, across a restart
/// of the stage (a node killed between the session's step and the
/// application): the step is not taken twice, and nothing is lost.
pub async fn keeps_what_it_opened_until_it_is_handled<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let bob_storage = storage();
    let alice = start(storage()).await;
    let bob = start(bob_storage.clone()).await;
    let bob_id = introduce(&alice, &bob).await;
    assert!(unhandled(&bob).await.is_empty(), "nothing opened yet");
    let mut arrived = Vec::new();
    for text in ["one", "two"] {
        let sealed = seal(&alice, bob_id, text).await.expect("sealed");
        let delivery = delivery(&sealed[0]);
        let opened = bob
            .open
            .send(Open(delivery.clone()))
            .await
            .expect("stage alive")
            .expect("opened");
        assert_eq!(opened.plaintext.as_deref(), Some(text.as_bytes()));
        arrived.push(delivery);
    }
    let expected = vec![
        (arrived[0].hash, Some("one".to_owned())),
        (arrived[1].hash, Some("two".to_owned())),
    ];
    assert_eq!(unhandled(&bob).await, expected, "kept in the order opened");

    let bob = start(bob_storage.clone()).await;
    assert_eq!(
        bob.open
            .send(Open(arrived[0].clone()))
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

    bob.handled
        .send(Handled(vec![arrived[0].hash, MessageHash([7; 32])]))
        .await
        .expect("stage alive")
        .expect("marked");
    assert_eq!(
        unhandled(&bob).await,
        expected[1..],
        "an unknown hash is ignored"
    );
    let bob = start(bob_storage).await;
    assert_eq!(unhandled(&bob).await, expected[1..], "handled for good");
}
