//! A gap in an encrypted conversation, noticed from the next message:
//! every chat message names its sender device's last few messages in that
//! conversation, and a receiver that never got one reads that
//! conversation's topic from store nodes. Bob here runs no store-sync
//! rounds, so nothing else would bring back what he missed.

use std::collections::BTreeSet;

use libp2p::identity::Keypair;

use crate::support::{account, away_node, befriend, chat_node, members, meshed_for, WAIT};

#[actix_rt::test]
async fn a_message_missed_while_away_is_read_back_when_the_next_one_names_it() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let store = chat_node(dirs[0].path(), None).await;
    let alice = chat_node(dirs[1].path(), Some(&store)).await;
    let bob_key = Keypair::generate_secp256k1();
    let bob = away_node(dirs[2].path(), &bob_key, &store, false).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    meshed_for(&bob, bob_id).await;
    let group = alice.create_group("g").await.unwrap();
    group.add(account(&bob).await).await.unwrap();
    members(&bob, &group, 2).await;
    let group_shard = bob.pubsub_topic(&murmur::core::groups::topic(group.id()));
    bob.wait_for_peers(&group_shard, 1, WAIT).await.unwrap();

    let chat = alice.conversation(bob_id);
    let mut inbox = bob.inbox().await.unwrap();
    chat.send_text("one").await.unwrap();
    group.send_text("g one").await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 2 {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .expect("Bob gets the first two");
        got.insert(m.text().unwrap().to_owned());
    }

    // Bob is away while Alice sends one of each.
    drop(inbox);
    bob.go_offline().await.unwrap();
    drop(bob);
    chat.send_text("two").await.unwrap();
    group.send_text("g two").await.unwrap();

    let bob = away_node(dirs[2].path(), &bob_key, &store, false).await;
    meshed_for(&bob, bob_id).await;
    bob.wait_for_peers(&group_shard, 1, WAIT).await.unwrap();
    let mut inbox = bob.inbox().await.unwrap();
    chat.send_text("three").await.unwrap();
    group.send_text("g three").await.unwrap();
    let mut got = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while got.len() < 4 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = inbox
            .recv_timeout(left)
            .await
            .unwrap_or_else(|| panic!("Bob got only {got:?}"));
        got.insert(m.text().unwrap().to_owned());
    }
    assert_eq!(
        got,
        BTreeSet::from(["two", "three", "g two", "g three"].map(str::to_owned))
    );
    let stats = bob.stats().await.unwrap();
    assert!(stats.gaps >= 2, "{stats:?}");
}
