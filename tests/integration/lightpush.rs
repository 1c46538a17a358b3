//! Lightpush: js-waku's light client pushes through a murmur service node,
//! which relays, archives and delivers locally; with nobody to relay to, it
//! answers 505.

use murmur::core::{store::Query, ContentTopic};
use serde_json::json;

use crate::{
    jswaku::{self, hash_hex},
    support::{addr, peer_of, start_node, WAIT},
};

fn topic() -> ContentTopic {
    "/murmur/1/pushed/proto".parse().unwrap()
}

#[actix_rt::test]
async fn js_waku_lightpush_is_relayed_archived_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_node(&dir.path().join("service")).await;
    let relay = peer_of(&dir.path().join("relay"), &service, false).await;
    let mut at_service = service.subscribe([&topic()]).await.unwrap();
    let mut at_relay = relay.subscribe([&topic()]).await.unwrap();
    service
        .wait_for_peers(&service.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();

    let mut js = jswaku::light_client().await;
    js.call(json!({"cmd": "dial", "addr": addr(&service, true)}))
        .await;
    js.call(json!({"cmd": "waitForProtocols", "protocols": ["lightpush"], "timeoutMs": 15000, "contentTopic": topic().as_str()}))
        .await;
    let pushed = js
        .call(json!({"cmd": "lightpush", "contentTopic": topic().as_str(), "payload": hex::encode("pushed by js-waku")}))
        .await;
    assert_eq!(pushed["successes"].as_array().unwrap().len(), 1, "{pushed}");

    let relayed = at_relay
        .recv_timeout(WAIT)
        .await
        .expect("relayed to the mesh");
    assert_eq!(hash_hex(&relayed.hash), pushed["hash"].as_str().unwrap());
    assert_eq!(relayed.message.payload.as_ref(), b"pushed by js-waku");
    let local = at_service
        .recv_timeout(WAIT)
        .await
        .expect("delivered on the service node");
    assert_eq!(local.hash, relayed.hash);

    // Acknowledged means archived.
    let client = start_node(&dir.path().join("client")).await;
    let page = client
        .query_store(&addr(&service, false), Query::hashes(vec![relayed.hash]))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    js.stop().await;
}

#[actix_rt::test]
async fn with_no_relay_peers_lightpush_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_node(dir.path()).await;
    let mut js = jswaku::light_client().await;
    js.call(json!({"cmd": "dial", "addr": addr(&service, true)}))
        .await;
    js.call(json!({"cmd": "waitForProtocols", "protocols": ["lightpush"], "timeoutMs": 15000, "contentTopic": topic().as_str()}))
        .await;
    let pushed = js
        .call_raw(json!({"cmd": "lightpush", "contentTopic": topic().as_str(), "payload": "01"}))
        .await;
    assert_eq!(pushed["ok"], false, "{pushed}");
    js.stop().await;
}
