//! A node whose swarm shares the thread of its stage actors
//! (`network.own_thread = false`), started on an actix arbiter of its own,
//! relays like any other: bursts published all at once arrive whole, in both
//! directions, with a node on the default threads.

use std::collections::BTreeMap;

use actix::Arbiter;
use futures::future::join_all;
use libp2p::identity::Keypair;
use murmur::{
    core::{ContentTopic, MessageHash},
    node::{Builder, Node, Subscription},
};

use crate::support::{addr, loopback_config, start_node, WAIT};

const BURST: usize = 300;

#[actix_rt::test]
async fn a_node_on_one_thread_relays_bursts_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let bob = start_node(&dir.path().join("bob")).await;

    let mut config = loopback_config(&dir.path().join("alice"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&bob, false).parse().unwrap()];
    config.network.own_thread = false;
    let thread = Arbiter::new();
    let alice = Builder::start_on(&thread.handle(), move || {
        Builder::new(config).with_keypair(Keypair::generate_secp256k1())
    })
    .await
    .expect("node starts on its arbiter");

    let topic: ContentTopic = "/murmur/1/threads/proto".parse().unwrap();
    let pubsub = alice.pubsub_topic(&topic);
    let mut alice_inbox = alice.subscribe([&topic]).await.unwrap();
    let mut bob_inbox = bob.subscribe([&topic]).await.unwrap();
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    bob.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    let sent = burst(&alice, &topic, "from alice").await;
    assert_eq!(received(&mut bob_inbox, sent.len()).await, sent);
    let sent = burst(&bob, &topic, "from bob").await;
    assert_eq!(received(&mut alice_inbox, sent.len()).await, sent);

    drop(alice);
    thread.stop();
}

/// Publishes `BURST` distinct messages at once; answers hash -> payload.
async fn burst(node: &Node, topic: &ContentTopic, from: &str) -> BTreeMap<MessageHash, Vec<u8>> {
    let payloads: Vec<Vec<u8>> = (0..BURST)
        .map(|i| format!("{from} {i}").into_bytes())
        .collect();
    let hashes = join_all(payloads.iter().map(|p| node.send(topic, p.clone()))).await;
    let sent: BTreeMap<_, _> = hashes
        .into_iter()
        .map(|h| h.expect("published").hash())
        .zip(payloads)
        .collect();
    assert_eq!(sent.len(), BURST, "every message has a hash of its own");
    sent
}

/// The next `n` deliveries, hash -> payload.
async fn received(inbox: &mut Subscription, n: usize) -> BTreeMap<MessageHash, Vec<u8>> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let delivery = inbox
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} arrived", got.len()));
        got.insert(delivery.hash, delivery.message.payload.to_vec());
    }
    got
}
