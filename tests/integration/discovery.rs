//! DNS discovery (EIP-1459) on loopback: the test signs a tree of node
//! records and answers its TXT queries as a name server would
//! (`Builder::with_dns`); the node reads it, checks it, dials what it
//! lists and catches up from the store node it finds there.

use std::sync::Arc;

use libp2p::identity::Keypair;
use murmur::{node::Builder, transport::dns};

use crate::support::{caught_up, chat_node, loopback_config, send_while_away};

#[actix_rt::test]
async fn a_node_with_no_static_peer_finds_a_store_node_in_a_dns_tree_and_catches_up() {
    const SENT: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let store = chat_node(&dir.path().join("store"), None).await;
    let dave = chat_node(&dir.path().join("dave"), Some(&store)).await;
    let record = store.enr().expect("a record").parse().unwrap();
    // The fleet's operator signs the tree with a key of its own.
    let operator = Keypair::generate_secp256k1();
    let (url, zone) = dns::publish(&operator, "nodes.murmur.test", &[record], 1).unwrap();
    let zone = Arc::new(zone);
    let carol_key = Keypair::generate_secp256k1();
    let carol = || {
        let mut config = loopback_config(&dir.path().join("carol"), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.dns_discovery_urls = vec![url.clone()];
        Builder::new(config)
            .with_keypair(carol_key.clone())
            .with_dns(zone.clone())
            .start()
    };
    let first = carol().await.unwrap();
    let carol_id = crate::support::account(&first).await;
    dave.add_contact(&first.contact_code().await.unwrap())
        .await
        .unwrap();
    first.go_offline().await.unwrap();
    drop(first);
    send_while_away(&dave, carol_id, &store, SENT).await;

    // Back, with no static peer: the tree leads to the store node, which
    // the first round asks.
    let carol = carol().await.unwrap();
    let mut inbox = carol.durable_inbox("app").await.unwrap();
    caught_up(&carol, &mut inbox, SENT).await;
    assert!(carol
        .status()
        .await
        .unwrap()
        .peers
        .iter()
        .any(|p| p.to_string() == store.peer_id()));
}

/// A node with discv5 on loopback, its only knowledge `bootstrap`.
async fn discv5_node(dir: &std::path::Path, bootstrap: Option<&str>) -> murmur::node::Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.discv5 = true;
    config.network.discv5_udp_port = 0;
    config.network.discv5_bootstrap_nodes = bootstrap.into_iter().map(str::to_owned).collect();
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("node starts")
}

/// Three nodes that know one bootstrap record (the first's) find each
/// other with discv5 (Waku's `d5waku`), connect, and form a mesh: what one
/// publishes, both others receive.
#[actix_rt::test]
async fn three_nodes_that_know_one_bootstrap_record_find_each_other_and_form_a_mesh() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let first = discv5_node(dirs[0].path(), None).await;
    let record = first.enr().expect("a record").to_owned();
    let parsed: murmur::transport::enr::Record = record.parse().unwrap();
    assert!(parsed.udp4().is_some(), "the record names the discv5 port");
    let second = discv5_node(dirs[1].path(), Some(&record)).await;
    let third = discv5_node(dirs[2].path(), Some(&record)).await;
    let nodes = [&first, &second, &third];
    let ids: Vec<String> = nodes.iter().map(|n| n.peer_id()).collect();
    // discv5 looks every 5 s and tries a peer it could not reach again
    // after 10 s, then 20 s: on a loaded machine (once in CI, beside the
    // whole suite) a first lookup or dial that fails takes the meeting past
    // `WAIT`. A minute allows two failed tries.
    let meet = std::time::Duration::from_secs(60);
    crate::support::eventually_within("every node connected to both others", meet, || async {
        let mut all = true;
        for (i, node) in nodes.iter().enumerate() {
            let peers: Vec<String> = node
                .status()
                .await
                .unwrap()
                .peers
                .iter()
                .map(|p| p.0.clone())
                .collect();
            all &= ids
                .iter()
                .enumerate()
                .all(|(j, id)| i == j || peers.contains(id));
        }
        all
    })
    .await;
    // The second and the third met through discv5 alone: neither was
    // given the other.
    let topic: murmur::core::ContentTopic = "/discv5/1/mesh/proto".parse().unwrap();
    let mut at_first = first.subscribe([&topic]).await.unwrap();
    let mut at_third = third.subscribe([&topic]).await.unwrap();
    second
        .wait_for_peers(&second.pubsub_topic(&topic), 2, crate::support::WAIT)
        .await
        .expect("a mesh with both others");
    second.send(&topic, &b"found you"[..]).await.unwrap();
    for inbox in [&mut at_first, &mut at_third] {
        let got = inbox
            .recv_timeout(crate::support::WAIT)
            .await
            .expect("it arrives");
        assert_eq!(got.message.payload, "found you");
    }
}
