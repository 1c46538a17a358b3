//! A store node archives what it relays and answers store v3 queries: to a
//! murmur client, to js-waku's light client, on SQLite and on PostgreSQL.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::{
    core::{
        storage,
        store::{Page, Query},
        transport, ContentTopic, Delivery, MessageHash, WakuMessage,
    },
    node::{Builder, Error, Node},
};
use serde_json::json;

use crate::{
    jswaku::{self, hash_hex},
    support::{addr, loopback_config, WAIT},
};

fn topic() -> ContentTopic {
    "/murmur/1/history/proto".parse().unwrap()
}

/// A store node, with its default SQLite archive or on a fresh PostgreSQL database.
async fn store_node(dir: &std::path::Path, postgres: bool) -> Node {
    let builder = Builder::new(loopback_config(
        dir,
        &["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"],
    ))
    .with_keypair(Keypair::generate_secp256k1());
    let builder = if postgres {
        builder.with_storage(|_| async {
            let url = std::env::var("TEST_POSTGRES_URL")
                .expect("TEST_POSTGRES_URL must name a PostgreSQL server; .ci/run sets one up");
            let db = murmur_storage::Database::open_fresh(&url).await?;
            Ok(storage::Handle::from(murmur_storage::Storage::start(db)))
        })
    } else {
        builder
    };
    builder.start().await.expect("store node starts")
}

/// A relay node without a store of its own, with `store` as its peer.
async fn relay_to(dir: &std::path::Path, store: &Node) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(store, false).parse().unwrap()];
    config.store.enabled = false;
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap()
}

/// A node that relays to `store` and publishes `n` messages; answers their hashes.
async fn publish_history(
    dir: &std::path::Path,
    store: &Node,
    n: usize,
) -> (Node, Vec<MessageHash>) {
    let publisher = relay_to(dir, store).await;
    let pubsub = publisher.pubsub_topic(&topic());
    publisher.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    let mut hashes = Vec::new();
    for i in 0..n {
        hashes.push(
            publisher
                .send(&topic(), format!("message {i}").into_bytes())
                .await
                .unwrap()
                .hash(),
        );
        // Distinct timestamps keep the expected order unambiguous.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (publisher, hashes)
}

/// Pages through `query` at `peer` with `client`, following cursors.
async fn all_pages(client: &Node, peer: &str, query: Query) -> (Vec<MessageHash>, usize) {
    let mut query = query;
    let mut hashes = Vec::new();
    let mut pages = 0;
    loop {
        let page: Page = client.query_store(peer, query.clone()).await.unwrap();
        pages += 1;
        hashes.extend(page.messages.iter().map(|m| m.hash));
        match page.cursor {
            Some(cursor) => query = query.with_cursor(Some(cursor)),
            None => return (hashes, pages),
        }
    }
}

async fn wait_archived(client: &Node, peer: &str, expected: &[MessageHash]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let query = Query::hashes(expected.to_vec());
        let page = client.query_store(peer, query).await.unwrap();
        if page.messages.len() == expected.len() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store node did not archive everything"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn archives_and_answers(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_node(&dir.path().join("store"), postgres).await;
    let (_publisher, sent) = publish_history(&dir.path().join("publisher"), &store, 45).await;
    let client = Builder::new(loopback_config(
        &dir.path().join("client"),
        &["/ip4/127.0.0.1/tcp/0"],
    ))
    .with_keypair(Keypair::generate_secp256k1())
    .start()
    .await
    .unwrap();
    let peer = addr(&store, false);
    wait_archived(&client, &peer, &sent).await;

    let pubsub = store.pubsub_topic(&topic());
    let content = Query::content(Some(pubsub.clone()), vec![topic().to_string()]);
    let (forward, pages) = all_pages(&client, &peer, content.clone()).await;
    assert_eq!(forward, sent, "every message once, in order");
    assert_eq!(pages, 3, "pages of 20, 20 and 5");
    let (backward, _) = all_pages(&client, &peer, content.with_forward(false)).await;
    let mut backward_sorted = backward.clone();
    backward_sorted.sort_by_key(|h| sent.iter().position(|s| s == h));
    assert_eq!(backward_sorted, sent);

    let mut presence = Query::hashes(vec![sent[3], MessageHash([1; 32])]);
    presence.include_data = false;
    let page = client.query_store(&peer, presence).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(page.messages[0].message.is_none());

    let too_many = Query::content(
        Some(pubsub),
        (0..11).map(|i| format!("/murmur/1/t{i}/proto")).collect(),
    );
    let err = client.query_store(&peer, too_many).await.unwrap_err();
    assert!(
        matches!(err, Error::Send(transport::Error::Remote { code: 400, .. })),
        "{err}"
    );
}

/// A store node keeps what it publishes itself, also when the caller stops
/// waiting once the message is handed over: the archiving does not hang on
/// the caller's future.
#[actix_rt::test]
async fn a_store_node_archives_what_it_publishes_even_when_the_caller_stops_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_node(&dir.path().join("store"), false).await;
    let peer = relay_to(&dir.path().join("peer"), &store).await;
    let mut inbox = peer.subscribe([&topic()]).await.unwrap();
    let pubsub = store.pubsub_topic(&topic());
    store.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    peer.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();

    let awaited = store
        .send(&topic(), b"awaited".to_vec())
        .await
        .unwrap()
        .hash();
    let message = WakuMessage::new(topic().as_str(), b"abandoned".to_vec())
        .with_timestamp(murmur::core::now_nanos());
    let abandoned = Delivery::new(pubsub.clone(), message.clone()).hash;
    // Polled once, which hands the message to the pipeline; never polled
    // again, and dropped once the network has it.
    let mut publishing = Box::pin(store.publish(pubsub, message));
    assert!(futures::poll!(publishing.as_mut()).is_pending());
    // Either may come first: `send` answers once its message is durable,
    // which can be in the outbox, to go out on its next offer.
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(inbox.recv_timeout(WAIT).await.expect("published").hash);
    }
    got.sort();
    let mut expected = vec![awaited, abandoned];
    expected.sort();
    assert_eq!(got, expected);
    drop(publishing);
    wait_archived(&peer, &addr(&store, false), &[awaited, abandoned]).await;
}

#[actix_rt::test]
async fn a_store_node_on_sqlite_archives_relay_traffic_and_answers_queries() {
    archives_and_answers(false).await;
}

#[actix_rt::test]
async fn a_store_node_on_postgres_archives_relay_traffic_and_answers_queries() {
    archives_and_answers(true).await;
}

#[actix_rt::test]
async fn js_waku_reads_history_from_a_murmur_store_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_node(&dir.path().join("store"), false).await;
    let (_publisher, sent) = publish_history(&dir.path().join("publisher"), &store, 45).await;

    let mut js = jswaku::light_client().await;
    js.call(json!({"cmd": "dial", "addr": addr(&store, true)}))
        .await;
    js.call(json!({"cmd": "waitForProtocols", "protocols": ["store"], "timeoutMs": 15000, "contentTopic": topic().as_str()}))
        .await;
    // js-waku pages with the last hash it got until a page comes back empty.
    let deadline = tokio::time::Instant::now() + WAIT;
    let answer = loop {
        let answer = js
            .call(json!({"cmd": "storeQuery", "contentTopic": topic().as_str(), "pageSize": 20}))
            .await;
        if answer["messages"].as_array().unwrap().len() >= sent.len()
            || tokio::time::Instant::now() > deadline
        {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let got: Vec<String> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hash"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = sent.iter().map(hash_hex).collect();
    assert_eq!(
        got, expected,
        "every message exactly once, in order, with murmur's hashes"
    );

    let lookup = js
        .call(json!({"cmd": "storeHashes", "hashes": [hash_hex(&sent[7])], "contentTopic": topic().as_str()}))
        .await;
    let found = lookup["messages"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{lookup}");
    assert_eq!(found[0]["hash"], hash_hex(&sent[7]));
    assert_eq!(found[0]["payload"], hex::encode("message 7"));
    js.stop().await;
}
