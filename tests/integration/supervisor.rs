//! A transport that panics is restarted by its supervisor, on the same port
//! and identity, and the node relays again.

use std::sync::{Arc, Mutex};

use actix::Addr;
use libp2p::identity::Keypair;
use murmur::{
    core::{transport, ContentTopic},
    node::Builder,
    transport::{CrashSwarm, Transport},
};

use crate::support::{addr, loopback_config, start_node, WAIT};

#[actix_rt::test]
async fn a_panicking_transport_is_restarted_and_relays_again() {
    restarted_and_relaying(true).await;
}

/// The same when the swarm runs on the node's own thread beside its actors:
/// the panic is caught there and the thread goes on.
#[actix_rt::test]
async fn a_panicking_swarm_sharing_the_actors_thread_is_restarted_too() {
    restarted_and_relaying(false).await;
}

async fn restarted_and_relaying(own_thread: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bob = start_node(&dir.path().join("bob")).await;

    let slot: Arc<Mutex<Option<Addr<Transport>>>> = Arc::default();
    let captured = slot.clone();
    let mut config = loopback_config(&dir.path().join("alice"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&bob, false).parse().unwrap()];
    config.network.own_thread = own_thread;
    let alice = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_transport(move |cx| async move {
            let (addr, _) = Transport::start(cx.transport_config(), cx.events).await?;
            *captured.lock().unwrap() = Some(addr.clone());
            Ok(transport::Handle::from(addr))
        })
        .start()
        .await
        .unwrap();
    let transport = slot.lock().unwrap().clone().unwrap();

    let topic: ContentTopic = "/murmur/1/crash/proto".parse().unwrap();
    let pubsub = alice.pubsub_topic(&topic);
    let mut bob_inbox = bob.subscribe([&topic]).await.unwrap();
    let mut alice_inbox = alice.subscribe([&topic]).await.unwrap();
    alice.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    let before = alice.send(&topic, b"before".to_vec()).await.unwrap();
    assert_eq!(bob_inbox.recv_timeout(WAIT).await.unwrap().hash, before);
    let peer_id = alice.status().await.unwrap().peer_id;

    transport.send(CrashSwarm).await.unwrap();

    // The supervisor rebuilds the node; bob is a static peer and is
    // redialled. A send issued at once waits for the mesh to be back; it
    // does not fail for want of peers.
    let after = alice.send(&topic, b"after".to_vec()).await.unwrap();
    assert_eq!(
        alice.status().await.unwrap().peer_id,
        peer_id,
        "same identity"
    );
    let got = bob_inbox
        .recv_timeout(WAIT)
        .await
        .expect("relayed after restart");
    assert_eq!(got.hash, after);
    bob.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    let back = bob.send(&topic, b"and back".to_vec()).await.unwrap();
    let got = alice_inbox
        .recv_timeout(WAIT)
        .await
        .expect("received after restart");
    assert_eq!(got.hash, back);
}
