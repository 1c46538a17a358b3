//! A transport that panics is restarted by its supervisor, on the same port
//! and identity, and the node relays again.

use std::sync::{Arc, Mutex};

use actix::Addr;
use libp2p::identity::Keypair;
use murmur::{
    core::{transport, ContentTopic},
    node::{Builder, Node},
    transport::{CrashSwarm, Transport},
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::watch,
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
    restarted_and_relaying_through(&bob, &addr(&bob, false), own_thread, dir.path()).await;
}

/// The peer misses the restart: the connection from before it stays open
/// at its end until the restarted node's next one closes (a slow peer that
/// has not yet seen the close). The new connection is its second, on which
/// gossipsub tells no subscriptions; the restarted node notices that a
/// static relay peer told none, closes the connection and dials again, and
/// relays as before.
#[actix_rt::test]
async fn a_peer_that_missed_the_restart_still_learns_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let bob = start_node(&dir.path().join("bob")).await;
    let bob_addr = addr(&bob, false);
    let proxy = StaleProxy::start(&bob_addr).await;
    restarted_and_relaying_through(&bob, &proxy, true, dir.path()).await;
}

async fn restarted_and_relaying_through(
    bob: &Node,
    bob_addr: &str,
    own_thread: bool,
    dir: &std::path::Path,
) {
    let slot: Arc<Mutex<Option<Addr<Transport>>>> = Arc::default();
    let captured = slot.clone();
    let mut config = loopback_config(&dir.join("alice"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![bob_addr.parse().unwrap()];
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
    let before = alice.send(&topic, b"before".to_vec()).await.unwrap().hash();
    assert_eq!(bob_inbox.recv_timeout(WAIT).await.unwrap().hash, before);
    let peer_id = alice.status().await.unwrap().peer_id;

    transport.send(CrashSwarm).await.unwrap();

    // The supervisor rebuilds the node; bob is a static peer and is
    // redialled. A send issued at once waits for the mesh to be back; it
    // does not fail for want of peers.
    let after = alice.send(&topic, b"after".to_vec()).await.unwrap().hash();
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
    let back = bob.send(&topic, b"and back".to_vec()).await.unwrap().hash();
    let got = alice_inbox
        .recv_timeout(WAIT)
        .await
        .expect("received after restart");
    assert_eq!(got.hash, back);
}

/// A TCP proxy in front of a peer that holds the peer's end of the first
/// connection to close open until a later connection through it closes;
/// every other connection closes both ways at once.
struct StaleProxy;

impl StaleProxy {
    /// Listens on loopback; answers the peer's address through the proxy.
    async fn start(peer: &str) -> String {
        let (ip_port, id) = peer.split_once("/p2p/").unwrap();
        let port = ip_port.rsplit('/').next().unwrap();
        let upstream = format!("127.0.0.1:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        // 0: none closed yet; 1: the first held open; 2: a later one closed.
        let (closed, _) = watch::channel(0u8);
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(Self::pipe(down, up, closed.clone()));
            }
        });
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", local.port())
    }

    async fn pipe(down: TcpStream, up: TcpStream, closed: watch::Sender<u8>) {
        let (mut down_r, mut down_w) = down.into_split();
        let (mut up_r, mut up_w) = up.into_split();
        let from_peer = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
            let _ = down_w.shutdown().await;
        });
        let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
        let mut held = false;
        closed.send_if_modified(|state| match *state {
            0 => {
                *state = 1;
                held = true;
                true
            }
            1 => {
                *state = 2;
                true
            }
            _ => false,
        });
        if held {
            let _ = closed.subscribe().wait_for(|s| *s == 2).await;
        }
        let _ = up_w.shutdown().await;
        from_peer.abort();
    }
}
