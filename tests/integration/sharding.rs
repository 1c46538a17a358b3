//! A node on a network of static shards (config/status.toml, Status's
//! cluster 16): it relays, advertises and publishes on its configured shards
//! and nothing else, murmur's own chat topics included.

use std::collections::BTreeSet;

use libp2p::identity::Keypair;
use murmur::{
    core::ContentTopic,
    node::{Builder, Config, Node},
};
use serde_json::json;

use crate::{
    jswaku,
    support::{account, addr, befriend, interop_dir, meshed_for, WAIT},
};

/// config/status.toml as shipped, on loopback, its data in `dir`, `peer`
/// (an address ending in `/p2p/<id>`) its static peer.
pub(crate) async fn status_node(dir: &std::path::Path, peer: Option<String>) -> Node {
    let file = interop_dir().join("../../config/status.toml");
    let mut config = Config::load(Some(&file)).expect("config/status.toml loads");
    config.data_dir = dir.to_owned();
    config.network.listen = vec![
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        "/ip4/127.0.0.1/tcp/0/ws".parse().unwrap(),
    ];
    config.network.peers = peer.map(|p| vec![p.parse().unwrap()]).unwrap_or_default();
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("node starts")
}

async fn subscribed(node: &Node) -> BTreeSet<String> {
    node.status()
        .await
        .unwrap()
        .topics
        .into_iter()
        .map(|(t, _)| t.to_string())
        .collect()
}

fn served() -> BTreeSet<String> {
    ["/waku/2/rs/16/32", "/waku/2/rs/16/64"]
        .map(str::to_owned)
        .into()
}

#[actix_rt::test]
async fn a_status_node_subscribes_advertises_and_chats_only_on_its_shards() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = status_node(dirs[0].path(), None).await;
    let bob = status_node(dirs[1].path(), Some(addr(&alice, false))).await;
    for node in [&alice, &bob] {
        assert_eq!(subscribed(node).await, served(), "subscriptions");
        let record = node.enr().expect("a relay node has a record");
        let record: murmur::transport::enr::Record = record.parse().unwrap();
        assert_eq!(
            murmur::transport::enr::shards(&record),
            Some((16, vec![32, 64])),
            "the record's rs field"
        );
    }

    // What a peer of the cluster learns from the metadata protocol.
    let mut js = jswaku::relay_peer(16, "32,64").await;
    js.call(json!({"cmd": "dial", "addr": addr(&alice, true)}))
        .await;
    let metadata = js
        .call(json!({"cmd": "metadataQuery", "peerId": alice.peer_id()}))
        .await;
    assert_eq!(metadata["clusterId"], 16, "{metadata}");
    assert_eq!(metadata["shards"], json!([32, 64]), "{metadata}");
    js.stop().await;

    // Chat, 1:1 and in a group, crosses on shard 64 only.
    let (a, b) = (account(&alice).await, account(&bob).await);
    befriend(&alice, &bob).await;
    for (node, account) in [(&alice, b), (&bob, a)] {
        let topic = crate::support::partition_topic_of(account);
        assert_eq!(node.pubsub_topic(&topic).as_str(), "/waku/2/rs/16/64");
        meshed_for(node, account).await;
    }
    let mut inbox = bob.inbox().await.unwrap();
    alice
        .conversation(b)
        .send_text("on shard 64")
        .await
        .unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("delivered");
    assert_eq!(got.text(), Some("on shard 64"));
    let group = alice.create_group("static shards").await.unwrap();
    group.add(b).await.unwrap();
    crate::support::members(&bob, &group, 2).await;
    group.send_text("to the group").await.unwrap();
    let got = crate::support::next_in_group(&mut inbox, Some(group.id()), "group").await;
    assert_eq!(got.text(), Some("to the group"));

    // An application topic, whose autoshard (4 of 8) is not served, too.
    let topic: ContentTopic = "/test/1/app/proto".parse().unwrap();
    let _sub = alice.subscribe([&topic]).await.unwrap();
    assert_eq!(alice.pubsub_topic(&topic).as_str(), "/waku/2/rs/16/64");
    for node in [&alice, &bob] {
        assert_eq!(
            subscribed(node).await,
            served(),
            "still only the served shards"
        );
    }
}
