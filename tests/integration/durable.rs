//! The durable inbox over real nodes: a subscriber that falls behind reads
//! on from the database where a live inbox misses; a position saved is
//! where a restarted node resumes; a message sent again under its id is
//! kept once.

use std::{collections::BTreeSet, time::Duration};

use libp2p::identity::Keypair;
use murmur::node::{chat::MessageId, Builder, Node};

use crate::support::{befriend, eventually, loopback_config, meshed_for, WAIT};

#[path = "../../examples/durable_inbox.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[actix_rt::test]
async fn the_example_handles_each_message_once_across_a_restart() {
    let tally = example::run().await.unwrap();
    let expected: Vec<String> = (1..=5).map(|i| format!("message {i}")).collect();
    assert_eq!(tally, expected);
}

async fn node(dir: &std::path::Path, key: &Keypair, peer: Option<&Node>) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![crate::support::addr(peer, false).parse().unwrap()];
    }
    Builder::new(config)
        .with_keypair(key.clone())
        .start()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_durable_subscriber_that_falls_behind_reads_on_from_the_database() {
    const SENT: usize = 1_300;
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob = node(dirs[1].path(), &Keypair::generate_secp256k1(), Some(&alice)).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut durable = bob.durable_inbox("slow").await.unwrap();
    let mut live = bob.inbox().await.unwrap();
    let chat = alice.conversation(bob_id);
    chat.send_text("first").await.unwrap();
    let first = tokio::time::timeout(WAIT, durable.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.message.text(), Some("first"));
    assert!(live.recv_timeout(WAIT).await.is_some());

    // Neither reads while more arrive than a queue holds (1,024).
    for i in 0..SENT {
        chat.send_text(format!("n{i}")).await.unwrap();
    }
    eventually("bob opened every message", || async {
        bob.stats().await.unwrap().chat_opened > SENT as u64
    })
    .await;

    let mut texts = BTreeSet::new();
    let mut last = first.seq;
    for _ in 0..SENT {
        let entry = tokio::time::timeout(WAIT, durable.recv())
            .await
            .expect("the durable subscriber reads on")
            .expect("the node runs");
        assert_eq!(entry.seq, last + 1, "in the inbox's order, no gap");
        last = entry.seq;
        texts.insert(entry.message.text().unwrap().to_owned());
    }
    assert_eq!(texts.len(), SENT, "every message, once");
    durable.done(last).await.unwrap();

    // The live inbox kept what its queue held and missed the rest.
    let mut heard = 0;
    while live
        .recv_timeout(Duration::from_millis(200))
        .await
        .is_some()
    {
        heard += 1;
    }
    assert!(
        heard < SENT,
        "a live inbox misses what does not fit: {heard}"
    );
}

#[actix_rt::test]
async fn a_restarted_node_resumes_at_the_saved_position_and_a_resent_id_is_kept_once() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice = node(dirs[0].path(), &alice_key, None).await;
    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    let chat = alice.conversation(bob_id);
    for text in ["one", "two", "three"] {
        chat.send_text(text).await.unwrap();
    }
    let mut entries = Vec::new();
    for _ in 0..3 {
        entries.push(
            tokio::time::timeout(WAIT, inbox.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // Done with two; the third was handed out, not done.
    inbox.done(entries[1].seq).await.unwrap();
    drop(inbox);
    bob.go_offline().await.unwrap();
    drop(bob);

    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    assert_eq!(inbox.position(), entries[1].seq);
    let again = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, entries[2], "the message not done comes again");

    // Sent twice under one id (a retry after a crash): kept once.
    meshed_for(&alice, bob_id).await;
    let id = MessageId([7; 16]);
    for _ in 0..2 {
        chat.send_as(id, murmur::core::chat::Body::Text("once".into()))
            .await
            .unwrap();
    }
    chat.send_text("after").await.unwrap();
    let once = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((once.message.id, once.message.text()), (id, Some("once")));
    let after = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.message.text(), Some("after"), "the copy was dropped");
    assert!(bob.stats().await.unwrap().duplicates >= 1);
}
