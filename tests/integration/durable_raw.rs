//! Durable subscriptions to raw topics over real nodes: a subscriber that
//! falls behind reads on from the database where a live subscription
//! misses; a restarted node keeps what comes on the topics before the
//! application asks again, and resumes at the saved position; what was
//! archived and never kept for the subscriber comes with a store round.

use libp2p::identity::Keypair;
use murmur::{
    core::ContentTopic,
    node::{Builder, Node},
};

use murmur_core::storage;

use crate::support::{addr, eventually, loopback_config, WAIT};

#[path = "../../examples/durable_subscription.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[actix_rt::test]
async fn the_example_sums_each_reading_once_across_a_restart() {
    assert_eq!(example::run().await.unwrap(), 10 + 20 + 30 + 40 + 50);
}

fn topic() -> ContentTopic {
    "/murmur/1/durable-raw/proto".parse().unwrap()
}

async fn node(dir: &std::path::Path, key: &Keypair, peer: Option<&Node>) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    Builder::new(config)
        .with_keypair(key.clone())
        .start()
        .await
        .unwrap()
}

async fn next_text(durable: &mut murmur::node::Durable<murmur::core::Delivery>) -> (u64, String) {
    let entry = tokio::time::timeout(WAIT, durable.recv())
        .await
        .expect("a message within the wait")
        .expect("the node is there");
    let text = String::from_utf8(entry.message.message.payload.to_vec()).unwrap();
    (entry.seq, text)
}

#[actix_rt::test]
async fn a_durable_subscription_that_falls_behind_reads_on_from_the_database() {
    const SENT: usize = 1_300;
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob = node(dirs[1].path(), &Keypair::generate_secp256k1(), Some(&alice)).await;
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    let mut live = bob.subscribe([&topic()]).await.unwrap();
    let pubsub = alice.pubsub_topic(&topic());
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // Neither reads while all of it arrives: more than either queue holds.
    for i in 0..SENT {
        alice
            .send(&topic(), format!("m{i}").into_bytes())
            .await
            .unwrap();
    }
    eventually("every message reached Bob's pipeline", || async {
        bob.stats().await.unwrap().delivered >= SENT as u64
    })
    .await;
    let mut got_live = 0;
    while live
        .recv_timeout(std::time::Duration::from_millis(200))
        .await
        .is_some()
    {
        got_live += 1;
    }
    assert!(got_live < SENT, "the live subscription missed none");

    // In the order they arrived (a publish the transport could not take at
    // once may arrive after later ones), every one once.
    let (mut last, mut texts) = (0, std::collections::BTreeSet::new());
    for _ in 0..SENT {
        let (seq, text) = next_text(&mut durable).await;
        assert!(seq > last, "in the order kept");
        last = seq;
        assert!(texts.insert(text), "handed twice");
    }
    let sent: std::collections::BTreeSet<_> = (0..SENT).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, sent, "none missed");
}

#[actix_rt::test]
async fn a_restarted_node_keeps_what_came_before_it_asked_again_and_resumes_at_its_position() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob_key = Keypair::generate_secp256k1();
    let pubsub = alice.pubsub_topic(&topic());

    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    for text in ["one", "two", "three"] {
        alice
            .send(&topic(), text.as_bytes().to_vec())
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    for want in ["one", "two", "three"] {
        let (seq, text) = next_text(&mut durable).await;
        assert_eq!(text, want);
        seqs.push(seq);
    }
    // Done with two; "three" was handed out but not done.
    durable.done(seqs[1]).await.unwrap();
    drop(durable);
    bob.go_offline().await.unwrap();
    drop(bob);

    // Started again: what comes before the application subscribes again
    // is kept, since the subscription asked for the topic before.
    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    alice.send(&topic(), b"four".to_vec()).await.unwrap();
    eventually("\"four\" reached Bob's pipeline", || async {
        bob.stats().await.unwrap().delivered >= 1
    })
    .await;
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    assert_eq!(durable.position(), seqs[1]);
    assert_eq!(next_text(&mut durable).await.1, "three", "not done: again");
    let (seq, text) = next_text(&mut durable).await;
    assert_eq!(text, "four");
    durable.done(seq).await.unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(1), durable.recv())
            .await
            .is_err(),
        "nothing more, nothing twice"
    );
}

/// A flood on a topic whose durable subscriber stopped reading does not
/// make the node keep it all: past ten times `store.subscription_keep` the
/// oldest go, and the subscriber is told how many it lost.
#[actix_rt::test]
async fn a_flood_while_the_subscriber_is_stopped_is_bounded_and_counted() {
    const KEEP: usize = 10;
    const FLOOD: usize = 150;
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    config.store.subscription_keep = KEEP;
    let bob = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    alice
        .wait_for_peers(&alice.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();
    alice.send(&topic(), b"first".to_vec()).await.unwrap();
    let (seq, text) = next_text(&mut durable).await;
    assert_eq!(text, "first");
    durable.done(seq).await.unwrap();
    drop(durable);

    // The application is away; the flood is not.
    for i in 0..FLOOD {
        alice
            .send(&topic(), format!("f{i}").into_bytes())
            .await
            .unwrap();
    }
    eventually("the flood reached Bob's pipeline", || async {
        bob.stats().await.unwrap().delivered >= (FLOOD + 1) as u64
    })
    .await;
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    let mut read = Vec::new();
    loop {
        let (_, text) = next_text(&mut durable).await;
        let last = text == format!("f{}", FLOOD - 1);
        read.push(text);
        if last {
            break;
        }
    }
    assert_eq!(read.len(), 10 * KEEP, "at most ten times what it keeps");
    assert_eq!(durable.lost(), (FLOOD - 10 * KEEP) as u64);
    assert_eq!(
        read[0],
        format!("f{}", FLOOD - 10 * KEEP),
        "the oldest went"
    );
}

/// A node whose writes to the raw inbox are refused (until the valve
/// opens); everything else is written.
async fn raw_writes_refused(
    dir: &std::path::Path,
    key: &Keypair,
    peer: &Node,
) -> (Node, murmur_test_kit::Valve) {
    let (node, valve, _) =
        crate::gate::gated_state(dir, key, peer, |storage::SaveState(records)| {
            records
                .iter()
                .any(|(name, value)| value.is_some() && name.starts_with("raw/m/"))
        })
        .await;
    valve.refuse();
    (node, valve)
}

/// Bob archives a message on a durably subscribed topic (before his relay
/// accepts it) and stops before it is kept for his subscriber: here its
/// write to the raw inbox fails, as a crash between the two would leave
/// it. Started again, his store round brings the message back from Alice;
/// the archive has it, so it is no news, but the subscriber never had it.
#[actix_rt::test]
async fn what_was_archived_and_never_kept_for_the_subscriber_comes_with_a_store_round() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob_key = Keypair::generate_secp256k1();
    let pubsub = alice.pubsub_topic(&topic());

    // His writes to the raw inbox fail; everything else is written.
    let (bob, valve) = raw_writes_refused(dirs[1].path(), &bob_key, &alice).await;
    let durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    alice.send(&topic(), b"archived".to_vec()).await.unwrap();
    // Delivered live, and its raw inbox write refused.
    eventually("Bob's raw inbox write was refused", || async {
        valve.arrived() >= 1
    })
    .await;
    drop(durable);
    bob.go_offline().await.unwrap();
    drop(bob);

    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    assert_eq!(next_text(&mut durable).await.1, "archived");
}

/// A message whose write to the raw inbox failed is not lost for the rest
/// of the run: the next store round brings it back, and it is kept then
/// (before, the inbox counted it as taken in until the next start). Nor
/// does the sequence it left unwritten stop a subscriber that keeps up:
/// the next message comes past the gap (before, the subscriber looked for
/// the gap in the database again and again, and handed out nothing more).
#[actix_rt::test]
async fn what_the_raw_inbox_failed_to_keep_comes_with_the_next_round() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let pubsub = alice.pubsub_topic(&topic());
    let bob_key = Keypair::generate_secp256k1();
    let (bob, valve) = raw_writes_refused(dirs[1].path(), &bob_key, &alice).await;
    valve.open();
    let mut durable = bob.durable_subscribe("app", [&topic()]).await.unwrap();
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    alice.send(&topic(), b"first".to_vec()).await.unwrap();
    assert_eq!(next_text(&mut durable).await.1, "first");

    valve.refuse();
    alice
        .send(&topic(), b"refused once".to_vec())
        .await
        .unwrap();
    eventually("Bob's raw inbox write was refused", || async {
        valve.arrived() >= 2
    })
    .await;
    valve.open();
    alice.send(&topic(), b"after".to_vec()).await.unwrap();
    assert_eq!(next_text(&mut durable).await.1, "after", "past the gap");
    bob.sync_now().await.unwrap();
    assert_eq!(next_text(&mut durable).await.1, "refused once");
}
