//! A panic inside any stage's handler is caught: the request that met it is
//! answered with a typed `Restarted` error, the stage is restarted by its
//! supervisor (from its persisted state), and afterwards 1:1 and group
//! messages still go both ways, every acknowledged one delivered. Without
//! the guard the stage's actor would die with the panic and every later
//! request would answer `Stopped`.

use std::future::Future;

use murmur::node::{
    chat::{ChatMessage, DeliveryState, Inbox, Sent},
    groups::group_topic,
    Error, Node, StageId,
};
use murmur_core::{crypto, groups, storage, sync, transport};

use crate::support::{account, befriend, chat_node, members, partition_topic_of, WAIT};

#[actix_rt::test]
async fn a_panic_in_the_pipeline_is_caught_and_nothing_is_lost() {
    survives(StageId::Pipeline).await;
}

#[actix_rt::test]
async fn a_panic_in_the_transport_actor_is_caught_and_nothing_is_lost() {
    survives(StageId::Transport).await;
}

#[actix_rt::test]
async fn a_panic_in_the_crypto_stage_is_caught_and_nothing_is_lost() {
    survives(StageId::Crypto).await;
}

#[actix_rt::test]
async fn a_panic_in_the_membership_stage_is_caught_and_nothing_is_lost() {
    survives(StageId::Membership).await;
}

#[actix_rt::test]
async fn a_panic_in_the_storage_stage_is_caught_and_nothing_is_lost() {
    survives(StageId::Storage).await;
}

#[actix_rt::test]
async fn a_panic_in_the_store_sync_stage_is_caught_and_nothing_is_lost() {
    survives(StageId::Sync).await;
}

/// Whether `e` is the answer of a stage that met the panic.
fn restarted(e: &Error) -> bool {
    matches!(
        e,
        Error::Restarted(_)
            | Error::Crypto(crypto::Error::Restarted(_))
            | Error::Group(groups::Error::Restarted(_))
            | Error::Group(groups::Error::Crypto(crypto::Error::Restarted(_)))
            | Error::Archive(storage::Error::Restarted(_))
            | Error::Send(transport::Error::Restarted(_))
            | Error::Sync(sync::Error::Restarted(_))
    )
}

/// Runs `send`; if it was the request that met the injected panic, it is
/// answered with a `Restarted` error and run once more.
async fn sent<T, F, Fut>(what: &str, send: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    match send().await {
        Ok(sent) => sent,
        Err(e) if restarted(&e) => send()
            .await
            .unwrap_or_else(|e| panic!("{what}, after the restart: {e}")),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The message with text `text` in `inbox`, passing over copies of earlier
/// ones (a send that met the panic may still have gone out).
async fn arrives(inbox: &mut Inbox, text: &str, group: bool) -> ChatMessage {
    loop {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("{text:?} did not arrive within {WAIT:?}"));
        if m.text() == Some(text) && m.group.is_some() == group {
            return m;
        }
    }
}

async fn acknowledged(mut sent: Sent, what: &str) {
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 },
        "{what}"
    );
}

async fn survives(stage: StageId) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = chat_node(dirs[0].path(), None).await;
    let bob = chat_node(dirs[1].path(), Some(&alice)).await;
    let (a, b) = (account(&alice).await, account(&bob).await);
    befriend(&alice, &bob).await;
    let mut inboxes = [alice.inbox().await.unwrap(), bob.inbox().await.unwrap()];
    let group = alice.create_group("faults").await.unwrap();
    group.add(b).await.unwrap();
    members(&bob, &group, 2).await;
    let bob_group = bob.group(group.id());
    let topics = [
        partition_topic_of(a),
        partition_topic_of(b),
        group_topic(group.id()),
    ];
    for node in [&alice, &bob] {
        for topic in &topics {
            node.wait_for_peers(&node.pubsub_topic(topic), 1, WAIT)
                .await
                .expect("a peer on the shard");
        }
    }
    exchange(
        &alice,
        &bob,
        &mut inboxes,
        (a, b),
        &group,
        &bob_group,
        "before",
    )
    .await;

    alice.inject_panic(stage).await.unwrap();
    // Catching up from Bob's store goes through the store-sync stage (and
    // the transport, the pipeline and the stages it feeds).
    let store = crate::support::addr(&bob, false);
    sent("catching up", || alice.catch_up(&store, None)).await;

    for round in 0..3 {
        let label = format!("after the panic in the {stage:?} stage, round {round}");
        exchange(
            &alice,
            &bob,
            &mut inboxes,
            (a, b),
            &group,
            &bob_group,
            &label,
        )
        .await;
    }
}

/// 1:1 both ways, acknowledged; then the group both ways.
async fn exchange(
    alice: &Node,
    bob: &Node,
    inboxes: &mut [Inbox; 2],
    (a, b): (murmur::node::chat::AccountId, murmur::node::chat::AccountId),
    group: &murmur::node::chat::Group,
    bob_group: &murmur::node::chat::Group,
    label: &str,
) {
    let text = format!("alice to bob, {label}");
    let to_bob = alice.conversation(b);
    let one = sent(&text, || to_bob.send_text(text.clone())).await;
    arrives(&mut inboxes[1], &text, false).await;
    acknowledged(one, &text).await;

    let text = format!("bob to alice, {label}");
    let to_alice = bob.conversation(a);
    let one = sent(&text, || to_alice.send_text(text.clone())).await;
    arrives(&mut inboxes[0], &text, false).await;
    acknowledged(one, &text).await;

    let text = format!("alice to the group, {label}");
    sent(&text, || group.send_text(text.clone())).await;
    assert_eq!(arrives(&mut inboxes[1], &text, true).await.sender, a);

    let text = format!("bob to the group, {label}");
    sent(&text, || bob_group.send_text(text.clone())).await;
    assert_eq!(arrives(&mut inboxes[0], &text, true).await.sender, b);
}
