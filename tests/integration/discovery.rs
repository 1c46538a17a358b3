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
