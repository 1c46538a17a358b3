//! A raw message is durable in the outbox before `send` answers: sent with
//! no peer there, it waits (across a restart too) and goes out once one is;
//! once out, a store node's confirmation makes it acknowledged.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::{
    core::{store::Query, ContentTopic, WakuMessage},
    node::{Builder, Node, PublishState},
};

use crate::support::{loopback_config, WAIT};

fn topic() -> ContentTopic {
    "/murmur/1/outbox/proto".parse().unwrap()
}

/// A port on loopback nobody listens on yet, for a store node started later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where a store node with `key` will listen on `port`.
fn store_addr(key: &Keypair, port: u16) -> String {
    format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        key.public().to_peer_id()
    )
}

/// A store node (archiving, serving store) on `port`.
async fn store_on(dir: &std::path::Path, key: &Keypair, port: u16) -> Node {
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    Builder::new(loopback_config(dir, &[&listen]))
        .with_keypair(key.clone())
        .start()
        .await
        .expect("store node starts")
}

/// A relay node without a store of its own, whose static peer (and store
/// node to confirm with) is `store`, reachable or not.
async fn sender(dir: &std::path::Path, key: &Keypair, store: &str) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![store.parse().unwrap()];
    config.store.enabled = false;
    Builder::new(config)
        .with_keypair(key.clone())
        .require_static_peers(false)
        .start()
        .await
        .expect("sender starts")
}

#[actix_rt::test]
async fn a_message_sent_with_no_peer_waits_goes_out_when_one_comes_and_is_acknowledged() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;

    // Nobody to publish to: the send answers, durable, queued.
    let mut sent = alice
        .send(&topic(), b"when you can".to_vec())
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    let queued_as = sent.hash();

    // The store node comes; the outbox's retry publishes, and the store
    // node, asked by hash, confirms it.
    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    alice.dial(&store).await.unwrap();
    assert_eq!(sent.published(WAIT).await, PublishState::Published);
    assert_eq!(
        sent.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_eq!(sent.hash(), queued_as, "sent soon enough to keep its stamp");
    let got = inbox.recv_timeout(WAIT).await.expect("relayed");
    assert_eq!(got.hash, queued_as);
    assert_eq!(got.message.payload.as_ref(), b"when you can");

    // Sent with a peer there: published at once. An ephemeral message,
    // which store nodes never keep, is not acknowledged, while one
    // published after it, asked about in the same round or later, is.
    let pubsub = alice.pubsub_topic(&topic());
    let ephemeral = WakuMessage::new(topic().as_str(), b"not kept".to_vec()).with_ephemeral(true);
    let ephemeral = alice.publish(pubsub, ephemeral).await.unwrap();
    let mut kept = alice.send(&topic(), b"kept".to_vec()).await.unwrap();
    assert_eq!(kept.state(), PublishState::Published);
    assert_eq!(
        kept.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_eq!(ephemeral.state(), PublishState::Published);
}

#[actix_rt::test]
async fn a_message_queued_before_a_restart_goes_out_after_it_once() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice_key = Keypair::generate_secp256k1();

    let alice = sender(dirs[0].path(), &alice_key, &store).await;
    let sent = alice
        .send(&topic(), b"across a restart".to_vec())
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    alice.go_offline().await.unwrap();
    drop(alice);

    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    let _back = sender(dirs[0].path(), &alice_key, &store).await;
    let got = inbox
        .recv_timeout(WAIT)
        .await
        .expect("sent after the restart");
    assert_eq!(got.message.payload.as_ref(), b"across a restart");
    assert!(
        inbox.recv_timeout(Duration::from_secs(1)).await.is_none(),
        "sent once"
    );
}

/// Store nodes keep nothing stamped more than 20 s off their clock: a
/// message that waited longer in the outbox is stamped again as it goes
/// out, so that those who catch up later get it too.
#[actix_rt::test]
async fn a_message_that_waited_past_the_store_window_is_stamped_again_and_kept() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;

    // As a message queued a minute ago would be.
    let minute_ago = murmur::core::now_nanos() - 60_000_000_000;
    let message = WakuMessage::new(topic().as_str(), b"late".to_vec()).with_timestamp(minute_ago);
    let mut sent = alice
        .publish(alice.pubsub_topic(&topic()), message)
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    let queued_as = sent.hash();

    let node = store_on(dirs[1].path(), &store_key, port).await;
    alice.dial(&store).await.unwrap();
    assert_eq!(
        sent.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_ne!(sent.hash(), queued_as, "stamped again");
    let page = alice
        .query_store(&store, Query::hashes(vec![sent.hash()]))
        .await
        .unwrap();
    let kept = page.messages[0].message.as_ref().expect("with its data");
    assert_eq!(kept.payload.as_ref(), b"late");
    assert!(kept.timestamp.unwrap() > minute_ago);
    drop(node);
}

/// The group writes the node's storage stage made so far.
fn writes(node: &Node) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("murmur_storage_writes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the storage stage's writes in /metrics")
}

/// A burst the network took leaves the outbox at the ticks after it in a
/// few group writes: a tick's marks go to the storage stage together, not
/// one write each (at a relay's rate the outbox would fill faster than the
/// ticks could empty it).
#[actix_rt::test]
async fn a_burst_the_network_took_leaves_the_outbox_in_a_few_writes() {
    const BURST: usize = 300;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let _store = store_on(dirs[1].path(), &store_key, port).await;
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;
    alice
        .wait_for_peers(&alice.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();
    for i in 0..BURST {
        let sent = alice
            .send(&topic(), format!("burst {i}").into_bytes())
            .await
            .unwrap();
        assert_eq!(sent.state(), PublishState::Published);
    }
    let db = murmur_storage::Database::open(&format!(
        "sqlite://{}",
        dirs[0].path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    let in_outbox = || async { db.pending().await.unwrap().len() };
    // Each entry is written after its publish answered: all of them in,
    // then none out until a tick takes them (one at least 5 s later).
    let deadline = tokio::time::Instant::now() + WAIT;
    while in_outbox().await < BURST {
        assert!(tokio::time::Instant::now() < deadline, "not all queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = writes(&alice);
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while in_outbox().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "not all taken out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken_out_in = writes(&alice) - before;
    assert!(
        taken_out_in < 30,
        "{BURST} entries taken out in {taken_out_in} writes"
    );
}
