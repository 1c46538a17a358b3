//! go-waku (tests/interop/gowaku, github.com/waku-org/go-waku v0.10.0, the
//! Waku node inside status-go) against murmur on loopback TCP: relay, store,
//! lightpush, filter, peer exchange and metadata, both ways.

use std::path::PathBuf;

use libp2p::identity::Keypair;
use murmur::{
    core::{store::Query, ContentTopic, PubsubTopic, Sharding, WakuMessage},
    node::{Builder, Node},
    transport::enr,
};
use serde_json::{json, Value};

use crate::{
    jswaku::hash_hex,
    peer::Peer,
    support::{addr, eventually, loopback_config, start_node, WAIT},
};

/// Where `.ci/gowaku` puts the peer: the target folder.
fn binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../gowaku/gowaku-peer");
    assert!(
        path.exists(),
        "the go-waku test peer is not built: run `bash .ci/gowaku` (.ci/run does)"
    );
    path
}

/// A go-waku node on loopback, `cluster` and every shard of The Waku
/// Network's eight, with `flags` (`--store`, `--lightpush`, `--filter`,
/// `--px`, `--no-relay`).
async fn gowaku(cluster: u16, flags: &[&str]) -> Peer {
    gowaku_on(cluster, "0,1,2,3,4,5,6,7", flags).await
}

/// A go-waku node on loopback, `cluster` and `shards` (comma-separated).
async fn gowaku_on(cluster: u16, shards: &str, flags: &[&str]) -> Peer {
    let cluster = cluster.to_string();
    let mut args = vec!["--cluster", &cluster, "--shards", shards];
    args.extend_from_slice(flags);
    let dir = crate::support::interop_dir();
    Peer::spawn(&binary(), &args, &dir).await
}

/// The peer's TCP address, ending in `/p2p/<id>`.
fn tcp(peer: &Peer) -> String {
    peer.ready["addrs"][0].as_str().unwrap().to_owned()
}

/// A murmur light node in `dir` whose service is `service`.
async fn light_of(dir: &std::path::Path, service: &Peer) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![tcp(service).parse().unwrap()];
    config.network.light = true;
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("a light node starts")
}

fn topic() -> ContentTopic {
    "/test/1/gowaku/proto".parse().unwrap()
}

/// A go-waku relay peer meshed with `node` on `pubsub`.
async fn meshed(node: &Node, pubsub: &PubsubTopic, flags: &[&str]) -> Peer {
    let mut go = gowaku(1, flags).await;
    go.call(json!({"cmd": "subscribe", "topic": pubsub.as_str()}))
        .await;
    go.call(json!({"cmd": "dial", "addr": addr(node, false)}))
        .await;
    go.wait_for_mesh_peer(pubsub, &node.peer_id()).await;
    go
}

fn publish(go_topic: &PubsubTopic, text: &str, timestamp: i64) -> Value {
    json!({
        "cmd": "publish", "topic": go_topic.as_str(), "contentTopic": topic().as_str(),
        "payload": hex::encode(text), "timestamp": timestamp.to_string(),
    })
}

#[actix_rt::test]
async fn relay_crosses_both_ways_with_the_hash_go_waku_computes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let pubsub = node.pubsub_topic(&topic());
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    let mut go = meshed(&node, &pubsub, &[]).await;
    node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // go-waku -> murmur, the spec's vector among them.
    let published = go
        .call(json!({
            "cmd": "publish", "topic": pubsub.as_str(), "contentTopic": "/test/1/gowaku/proto",
            "payload": "010203", "timestamp": "1700000000000000000",
        }))
        .await;
    let got = inbox.recv_timeout(WAIT).await.expect("murmur receives");
    assert_eq!(published["hash"], hash_hex(&got.hash));
    assert_eq!(got.message.payload.as_ref(), [1, 2, 3]);
    assert_eq!(got.message.timestamp, Some(1_700_000_000_000_000_000));

    // murmur -> go-waku, small and at go-waku's 150 KiB limit.
    for payload in [b"from murmur".to_vec(), vec![0x5a; 150_000]] {
        let hash = node.send(&topic(), payload.clone()).await.unwrap().hash();
        let message = go.next_message().await;
        assert_eq!(message["hash"], hash_hex(&hash), "{message}");
        assert_eq!(message["payload"], hex::encode(&payload));
        assert_eq!(message["contentTopic"], topic().as_str());
    }
    go.stop().await;
}

#[actix_rt::test]
async fn two_go_waku_peers_meet_only_through_murmur() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let pubsub = node.pubsub_topic(&topic());
    let mut peers = [
        meshed(&node, &pubsub, &[]).await,
        meshed(&node, &pubsub, &[]).await,
    ];
    node.wait_for_peers(&pubsub, 2, WAIT).await.unwrap();
    for (me, other) in [(0, 1), (1, 0)] {
        let other_id = peers[other].peer_id.clone();
        assert!(
            !peers[me].connected_to(&other_id).await,
            "the go-waku peers must know only murmur"
        );
    }
    for go in peers {
        go.stop().await;
    }
}

#[actix_rt::test]
async fn go_waku_pages_murmurs_store_and_murmur_reads_go_wakus() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let pubsub = node.pubsub_topic(&topic());
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    let mut go = meshed(&node, &pubsub, &["--store"]).await;
    node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // Five from each side, archived by both (murmur archives a message
    // before any subscriber sees it).
    let start = murmur::core::now_nanos();
    let mut hashes = Vec::new();
    for i in 0..5 {
        let sent = go
            .call(publish(&pubsub, &format!("go-waku {i}"), start + i))
            .await;
        hashes.push(sent["hash"].as_str().unwrap().to_owned());
        let got = inbox.recv_timeout(WAIT).await.expect("archived");
        assert_eq!(sent["hash"].as_str(), Some(hash_hex(&got.hash).as_str()));
        let message = WakuMessage::new(topic().as_str(), format!("murmur {i}").into_bytes())
            .with_timestamp(start + 100 + i);
        let hash = node.publish(pubsub.clone(), message).await.unwrap().hash();
        hashes.push(hash_hex(&hash));
        go.next_message().await;
    }
    hashes.sort();

    // go-waku's store client pages through murmur's store v3.
    let query = |page_size: u64| {
        json!({
            "cmd": "storeQuery", "peerId": node.peer_id(), "pubsubTopic": pubsub.as_str(),
            "contentTopics": [topic().as_str()], "pageSize": page_size,
            "timeStart": (start - 1).to_string(), "timeEnd": (start + 1_000).to_string(),
        })
    };
    let answer = go.call(query(3)).await;
    let mut found: Vec<String> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hash"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, hashes, "{answer}");
    for m in answer["messages"].as_array().unwrap() {
        assert_eq!(m["computedHash"], m["hash"], "go-waku's own hash of {m}");
    }
    assert_eq!(answer["pages"], json!([3, 3, 3, 1]), "{answer}");
    // By hash too.
    let answer = go
        .call(json!({"cmd": "storeQuery", "peerId": node.peer_id(), "hashes": [hashes[0]]}))
        .await;
    assert_eq!(answer["messages"][0]["hash"], hashes[0].as_str());

    // murmur's store client reads go-waku's SQLite store, which serves
    // store v2 only: both ways, page by page, the same hashes.
    let store = tcp(&go);
    for forward in [true, false] {
        let query = Query::content(Some(pubsub.clone()), vec![topic().as_str().to_owned()])
            .with_limit(4)
            .with_forward(forward);
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = node
                .query_store(&store, query.clone().with_cursor(cursor))
                .await
                .unwrap();
            pages.push(
                page.messages
                    .iter()
                    .map(|m| hash_hex(&m.hash))
                    .collect::<Vec<_>>(),
            );
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [4, 4, 2],
            "forward {forward}"
        );
        let mut from_go: Vec<String> = pages.concat();
        from_go.sort();
        assert_eq!(from_go, hashes, "forward {forward}");
    }
    // What store v2 cannot do is refused with a reason, not answered wrong.
    for query in [
        Query::hashes(vec![murmur::core::MessageHash([0; 32])]),
        Query::content(None, vec![topic().as_str().to_owned()]),
        Query::content(Some(pubsub.clone()), vec![topic().as_str().to_owned()])
            .with_cursor(Some(murmur::core::MessageHash([1; 32]))),
    ] {
        let err = node.query_store(&store, query).await.unwrap_err();
        assert!(err.to_string().contains("store v2"), "{err}");
    }
    go.stop().await;
}

#[actix_rt::test]
async fn lightpush_go_waku_to_murmur_and_murmur_to_go_waku() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("service")).await;
    let pubsub = node.pubsub_topic(&topic());
    let mut at_service = node.subscribe([&topic()]).await.unwrap();
    // A relay peer for the service to push to: go-waku, which serves
    // lightpush too (for the other direction).
    let mut relay = meshed(&node, &pubsub, &["--lightpush"]).await;
    node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // go-waku's client (lightpush v2) -> murmur.
    let mut client = gowaku(1, &["--no-relay"]).await;
    client
        .call(json!({"cmd": "dial", "addr": addr(&node, false)}))
        .await;
    let pushed = client
        .call(json!({
            "cmd": "lightpush", "peerId": node.peer_id(), "pubsubTopic": pubsub.as_str(),
            "contentTopic": topic().as_str(), "payload": hex::encode("pushed by go-waku"),
            "timestamp": murmur::core::now_nanos().to_string(),
        }))
        .await;
    let got = at_service.recv_timeout(WAIT).await.expect("delivered");
    assert_eq!(hash_hex(&got.hash), pushed["hash"].as_str().unwrap());
    let relayed = relay.next_message().await;
    assert_eq!(relayed["hash"], pushed["hash"]);

    // murmur's light client -> go-waku's lightpush service (v3 refused,
    // so v2), relayed back to the murmur node.
    let light = light_of(&dir.path().join("light"), &relay).await;
    let sent = light
        .send(&topic(), b"pushed by murmur".to_vec())
        .await
        .unwrap()
        .hash();
    let got = at_service.recv_timeout(WAIT).await.expect("relayed back");
    assert_eq!(got.hash, sent);
    client.stop().await;
    relay.stop().await;
}

#[actix_rt::test]
async fn filter_go_waku_at_murmur_and_murmur_at_go_waku() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("service")).await;
    let pubsub = node.pubsub_topic(&topic());
    let mut relay = meshed(&node, &pubsub, &["--filter", "--lightpush"]).await;
    node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    // go-waku's filter client subscribed at murmur.
    let mut subscriber = gowaku(1, &["--no-relay"]).await;
    subscriber
        .call(json!({"cmd": "dial", "addr": addr(&node, false)}))
        .await;
    subscriber
        .call(json!({
            "cmd": "filterSubscribe", "peerId": node.peer_id(), "pubsubTopic": pubsub.as_str(),
            "contentTopics": [topic().as_str()],
        }))
        .await;
    let published = relay
        .call(publish(
            &pubsub,
            "to the filter subscriber",
            murmur::core::now_nanos(),
        ))
        .await;
    let pushed = subscriber.next_event("filter").await;
    assert_eq!(pushed["hash"], published["hash"], "{pushed}");
    assert_eq!(pushed["pubsubTopic"], pubsub.as_str());

    // murmur's light mode subscribed at go-waku's filter service.
    let light = light_of(&dir.path().join("light"), &relay).await;
    let mut inbox = light.subscribe([&topic()]).await.unwrap();
    // The subscription is made once go-waku's filter answers; a message
    // published before may be missed, so publish until one is pushed.
    let hash = node
        .send(&topic(), b"to murmur's light node".to_vec())
        .await
        .unwrap()
        .hash();
    let got = inbox.recv_timeout(WAIT).await.expect("pushed by go-waku");
    assert_eq!(got.hash, hash);
    subscriber.stop().await;
    relay.stop().await;
}

#[actix_rt::test]
async fn metadata_and_peer_exchange_records_are_understood_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let mut go = gowaku(1, &["--px"]).await;
    go.call(json!({"cmd": "dial", "addr": addr(&node, false)}))
        .await;

    // go-waku reads murmur's metadata.
    let metadata = go
        .call(json!({"cmd": "metadataQuery", "peerId": node.peer_id()}))
        .await;
    assert_eq!(metadata["clusterId"], 1, "{metadata}");
    assert_eq!(metadata["shards"], json!([0, 1, 2, 3, 4, 5, 6, 7]));

    // murmur reads go-waku's record: its id, addresses and shards.
    let record: enr::Record = go.ready["enr"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        enr::peer_id(&record).map(|p| p.to_string()),
        Some(go.peer_id.clone())
    );
    assert_eq!(enr::shards(&record), Some((1, (0..8).collect())));
    assert!(
        enr::addresses(&record)
            .iter()
            .any(|a| a.to_string() == tcp(&go)),
        "{:?}",
        enr::addresses(&record)
    );

    // go-waku asks a murmur node for peers, and reads murmur's record.
    let mut config = loopback_config(&dir.path().join("px"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.bootstrap_enrs = vec![node.enr().unwrap().to_owned()];
    let server = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    go.call(json!({"cmd": "dial", "addr": addr(&server, false)}))
        .await;
    let exchanged = go
        .call(json!({"cmd": "peerExchange", "peerId": server.peer_id(), "numPeers": 5}))
        .await;
    let first = &exchanged["peers"][0];
    assert_eq!(first["peerId"], node.peer_id(), "{exchanged}");
    assert_eq!(first["cluster"], 1, "{exchanged}");
    assert_eq!(first["shards"], json!([0, 1, 2, 3, 4, 5, 6, 7]));
    assert!(
        first["multiaddrs"].as_array().unwrap().iter().any(|a| a
            .as_str()
            .is_some_and(|a| addr(&node, false).starts_with(a))),
        "{exchanged}"
    );

    // murmur asks go-waku, whose peer exchange hands out what its discv5
    // found: another go-waku node here. The asker is a transport of its
    // own, as a light client's would be.
    let found = gowaku(1, &["--discv5"]).await;
    let server = gowaku(
        1,
        &[
            "--px",
            "--discv5",
            "--discv5-bootnodes",
            found.ready["enr"].as_str().unwrap(),
        ],
    )
    .await;
    let (asker, _events) = murmur::transport::Network::start(murmur::transport::Config::new(
        Keypair::generate_secp256k1(),
        Sharding::auto(1, 8),
    ))
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let records = loop {
        // go-waku answers one request a second per peer.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        match asker.peer_exchange(&tcp(&server), 5).await {
            Ok(records) if !records.is_empty() => break records,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "no record from go-waku: {other:?}"
            ),
        }
    };
    let record = &records[0];
    assert_eq!(
        enr::peer_id(record).map(|p| p.to_string()),
        Some(found.peer_id.clone())
    );
    assert_eq!(enr::shards(record), Some((1, (0..8).collect())));
    let dialled = asker
        .dial(&enr::addresses(record)[0].to_string())
        .await
        .expect("the record leads to a dialable peer");
    assert_eq!(dialled.0, found.peer_id);
    for peer in [go, found, server] {
        peer.stop().await;
    }
}

#[actix_rt::test]
async fn murmur_chat_crosses_a_go_waku_relay_of_status_s_cluster() {
    // A go-waku relay as Status's fleet runs them: cluster 16, shards 32 and
    // 64 only, the only link between two murmur nodes on config/status.toml.
    let mut go = gowaku_on(16, "32,64", &["--subscribe"]).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = crate::sharding::status_node(dirs[0].path(), Some(tcp(&go))).await;
    let bob = crate::sharding::status_node(dirs[1].path(), Some(tcp(&go))).await;
    let (a, b) = (
        crate::support::account(&alice).await,
        crate::support::account(&bob).await,
    );
    crate::support::befriend(&alice, &bob).await;
    let shard_64: PubsubTopic = "/waku/2/rs/16/64".parse().unwrap();
    for node in [&alice, &bob] {
        go.wait_for_mesh_peer(&shard_64, &node.peer_id()).await;
    }
    let mut inboxes = [alice.inbox().await.unwrap(), bob.inbox().await.unwrap()];
    alice
        .conversation(b)
        .send_text("via go-waku")
        .await
        .unwrap();
    let got = inboxes[1].recv_timeout(WAIT).await.expect("across go-waku");
    assert_eq!(got.text(), Some("via go-waku"));
    bob.conversation(a).send_text("and back").await.unwrap();
    let got = inboxes[0]
        .recv_timeout(WAIT)
        .await
        .expect("back across go-waku");
    assert_eq!(got.text(), Some("and back"));
    // go-waku relayed them, on shard 64.
    let relayed = go.next_message().await;
    assert_eq!(relayed["topic"], shard_64.as_str(), "{relayed}");
    go.stop().await;
}

#[actix_rt::test]
async fn murmur_drops_a_peer_of_another_cluster_that_does_not_check() {
    // go-waku on cluster 0 checks no one's cluster: the drop is murmur's.
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let mut go = gowaku(0, &[]).await;
    let _ = go
        .call_raw(json!({"cmd": "dial", "addr": addr(&node, false)}))
        .await;
    go.next_event("peer:disconnect").await;
    eventually("murmur keeps no peer", || async {
        node.status().await.unwrap().peers.is_empty()
    })
    .await;
    go.stop().await;
}

#[actix_rt::test]
async fn a_peer_on_another_cluster_is_dropped_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    // go-waku on cluster 2 dials murmur on cluster 1.
    let mut go = gowaku(2, &[]).await;
    let _ = go
        .call_raw(json!({"cmd": "dial", "addr": addr(&node, false)}))
        .await;
    go.next_event("peer:disconnect").await;
    assert!(!go.connected_to(&node.peer_id()).await, "dropped");
    // murmur dials go-waku.
    let _ = node.dial(&tcp(&go)).await;
    eventually("murmur keeps no peer", || async {
        node.status().await.unwrap().peers.is_empty()
    })
    .await;
    go.stop().await;
}

#[actix_rt::test]
async fn an_offline_device_catches_up_from_a_go_waku_store() {
    let go = gowaku(1, &["--store", "--subscribe"]).await;
    // Carol's device exists (Dave has her code) but is offline.
    let carol_dir = tempfile::tempdir().unwrap();
    let carol_key = Keypair::generate_secp256k1();
    let carol_config = |peer: Option<String>| {
        let mut c = loopback_config(carol_dir.path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.network.peers = peer.into_iter().map(|p| p.parse().unwrap()).collect();
        c
    };
    let offline = Builder::new(carol_config(None))
        .with_keypair(carol_key.clone())
        .start()
        .await
        .unwrap();
    let carol = crate::support::account(&offline).await;
    let code = offline.contact_code().await.unwrap();
    drop(offline);

    let dave_dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config(dave_dir.path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![tcp(&go).parse().unwrap()];
    let dave = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    dave.add_contact(&code).await.unwrap();
    crate::support::meshed_for(&dave, carol).await;
    let texts: Vec<String> = (0..4).map(|i| format!("kept by go-waku {i}")).collect();
    for t in &texts {
        dave.conversation(carol).send_text(t.clone()).await.unwrap();
    }
    let topic = crate::support::partition_topic_of(carol);
    // Kept by go-waku, as murmur's store client (through store v2) sees.
    crate::support::stored(&dave, &tcp(&go), &topic, texts.len()).await;

    // Carol comes back: the same folder and key; the store-sync stage
    // reads go-waku's store (v2) and every message arrives, once.
    let carol_node = Builder::new(carol_config(Some(tcp(&go))))
        .with_keypair(carol_key)
        .start()
        .await
        .unwrap();
    let mut inbox = carol_node.inbox().await.unwrap();
    let fetched = carol_node.catch_up(&tcp(&go), None).await.unwrap();
    assert!(fetched >= texts.len(), "fetched {fetched}");
    for t in &texts {
        let got = inbox.recv_timeout(WAIT).await.expect("caught up");
        assert_eq!(got.text(), Some(t.as_str()));
    }
    carol_node.catch_up(&tcp(&go), None).await.unwrap();
    assert!(
        inbox
            .recv_timeout(std::time::Duration::from_secs(1))
            .await
            .is_none(),
        "nothing twice"
    );
    go.stop().await;
}
