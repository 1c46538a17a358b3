//! Filter: js-waku light clients subscribe through a murmur service node and
//! get what another js-waku client lightpushes and what the relay mesh carries.

use std::time::Duration;

use murmur::core::ContentTopic;
use serde_json::{json, Value};

use crate::{
    jswaku::{self, hash_hex},
    peer::Peer,
    support::{addr, peer_of, start_node, WAIT},
};

fn topic() -> ContentTopic {
    "/murmur/1/filtered/proto".parse().unwrap()
}

async fn next_filter_event(js: &mut Peer) -> Value {
    tokio::time::timeout(WAIT, js.next_event("filter"))
        .await
        .expect("a filter push within the wait")
}

#[actix_rt::test]
async fn a_lightpush_reaches_a_filter_subscriber_through_murmur() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_node(&dir.path().join("service")).await;
    let relay = peer_of(&dir.path().join("relay"), &service, false).await;
    service
        .wait_for_peers(&service.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();

    let mut subscriber = jswaku::light_client().await;
    subscriber
        .call(json!({"cmd": "dial", "addr": addr(&service, true)}))
        .await;
    subscriber
        .call(json!({"cmd": "waitForProtocols", "protocols": ["filter"], "timeoutMs": 15000, "contentTopic": topic().as_str()}))
        .await;
    subscriber
        .call(json!({"cmd": "subscribe", "contentTopic": topic().as_str()}))
        .await;

    let mut pusher = jswaku::light_client().await;
    pusher
        .call(json!({"cmd": "dial", "addr": addr(&service, true)}))
        .await;
    pusher
        .call(json!({"cmd": "waitForProtocols", "protocols": ["lightpush"], "timeoutMs": 15000, "contentTopic": topic().as_str()}))
        .await;
    let pushed = pusher
        .call(json!({"cmd": "lightpush", "contentTopic": topic().as_str(), "payload": hex::encode("via filter")}))
        .await;
    let event = next_filter_event(&mut subscriber).await;
    assert_eq!(event["hash"], pushed["hash"], "{event}");
    assert_eq!(event["payload"], hex::encode("via filter"));
    assert_eq!(
        event["pubsubTopic"],
        service.pubsub_topic(&topic()).as_str()
    );

    // What the relay mesh carries reaches the subscriber too.
    let hash = relay
        .send(&topic(), b"from the mesh".to_vec())
        .await
        .unwrap()
        .hash();
    let event = next_filter_event(&mut subscriber).await;
    assert_eq!(event["hash"], hash_hex(&hash), "{event}");

    // After unsubscribing, nothing more arrives.
    subscriber
        .call(json!({"cmd": "unsubscribe", "contentTopic": topic().as_str()}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay
        .send(&topic(), b"too late".to_vec())
        .await
        .unwrap()
        .hash();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), subscriber.next_event("filter"))
            .await
            .is_err(),
        "no push after unsubscribe"
    );
    subscriber.stop().await;
    pusher.stop().await;
}
