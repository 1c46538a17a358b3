//! js-waku relay peers (tests/interop/relay-peer.mjs, under Node.js) against
//! murmur on loopback, over WebSocket with mplex.

use murmur::core::ContentTopic;
use serde_json::json;

use crate::{
    peer::Peer,
    support::{addr, interop_dir, start_node, WAIT},
};

/// A js-waku relay peer on `cluster`, `shards` (comma-separated).
pub(crate) async fn relay_peer(cluster: u16, shards: &str) -> Peer {
    script(
        "relay-peer.mjs",
        &["--cluster", &cluster.to_string(), "--shards", shards],
    )
    .await
}

/// A js-waku relay peer on cluster 1, all eight shards.
async fn relay_peer_twn() -> Peer {
    relay_peer(1, "0,1,2,3,4,5,6,7").await
}

/// A js-waku light client (lightpush, filter, store) on cluster 1, eight shards.
pub(crate) async fn light_client() -> Peer {
    script("light-client.mjs", &["--cluster", "1", "--num-shards", "8"]).await
}

async fn script(script: &str, args: &[&str]) -> Peer {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules").exists(),
        "js-waku is not installed: run `npm ci` in tests/interop (.ci/run does)"
    );
    let mut all = vec![script];
    all.extend_from_slice(args);
    Peer::spawn(std::path::Path::new("node"), &all, &dir).await
}

pub(crate) fn hash_hex(hash: &murmur::core::MessageHash) -> String {
    hash.to_string().trim_start_matches("0x").to_owned()
}

#[actix_rt::test]
async fn relay_messages_cross_both_ways_with_equal_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let topic: ContentTopic = "/test/1/hash/proto".parse().unwrap();
    let pubsub = node.pubsub_topic(&topic);
    assert_eq!(
        pubsub.as_str(),
        "/waku/2/rs/1/4",
        "js-waku's default network"
    );
    let mut inbox = node.subscribe([&topic]).await.unwrap();

    let mut js = relay_peer_twn().await;
    // js-waku dials murmur over WebSocket; it offers only mplex.
    let dialled = js
        .call(json!({"cmd": "dial", "addr": addr(&node, true)}))
        .await;
    assert_eq!(dialled["peerId"], node.peer_id());
    js.call(json!({"cmd": "subscribe", "topic": pubsub.as_str()}))
        .await;
    js.wait_for_mesh_peer(&pubsub, &node.peer_id()).await;
    node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // What js-waku learns from murmur: every Waku protocol it serves, and its shards.
    let protocols = js
        .call(json!({"cmd": "peerProtocols", "peerId": node.peer_id()}))
        .await;
    let listed = protocols["protocols"].as_array().unwrap();
    for p in [
        "/vac/waku/relay/2.0.0",
        "/vac/waku/metadata/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
    ] {
        assert!(
            listed.iter().any(|l| l == p),
            "identify lacks {p}: {protocols}"
        );
    }
    let metadata = js
        .call(json!({"cmd": "metadataQuery", "peerId": node.peer_id()}))
        .await;
    assert_eq!(metadata["clusterId"], 1, "{metadata}");
    assert!(
        metadata["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == 4),
        "{metadata}"
    );

    // js-waku -> murmur: the js-waku vector message.
    let published = js
        .call(json!({
            "cmd": "publish", "topic": pubsub.as_str(), "contentTopic": topic.as_str(),
            "payload": "010203", "timestamp": "1700000000000000000",
        }))
        .await;
    let got = inbox
        .recv_timeout(WAIT)
        .await
        .expect("murmur receives js-waku's message");
    assert_eq!(published["hash"], hash_hex(&got.hash));
    assert_eq!(
        hash_hex(&got.hash),
        "bfd57923726173c6af604c44d06be2927922c30985e80fa5337162f27327317e"
    );
    assert_eq!(got.message.payload.as_ref(), [1, 2, 3]);

    // murmur -> js-waku, small and at the size limit.
    for payload in [b"from murmur".to_vec(), vec![0x5a; 150_000]] {
        let hash = node.send(&topic, payload.clone()).await.unwrap().hash();
        let message = js.next_message().await;
        assert_eq!(message["hash"], hash_hex(&hash), "{message}");
        assert_eq!(message["payload"], hex::encode(&payload));
        assert_eq!(message["contentTopic"], topic.as_str());
    }
    js.stop().await;
}

#[actix_rt::test]
async fn murmur_forwards_between_two_js_waku_peers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let topic: ContentTopic = "/test/1/forward/proto".parse().unwrap();
    let pubsub = node.pubsub_topic(&topic);

    let mut peers = [relay_peer_twn().await, relay_peer_twn().await];
    for js in &mut peers {
        js.call(json!({"cmd": "dial", "addr": addr(&node, true)}))
            .await;
        js.call(json!({"cmd": "subscribe", "topic": pubsub.as_str()}))
            .await;
        js.wait_for_mesh_peer(&pubsub, &node.peer_id()).await;
    }
    node.wait_for_peers(&pubsub, 2, WAIT).await.unwrap();
    // The two js-waku peers know only murmur.
    for (me, other) in [(0, 1), (1, 0)] {
        let other_id = peers[other].peer_id.clone();
        assert!(
            !peers[me].connected_to(&other_id).await,
            "js-waku peers must not be connected to each other"
        );
    }
    for js in peers {
        js.stop().await;
    }
}
