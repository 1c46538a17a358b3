//! Light-client mode: a murmur node with relay off sends with lightpush,
//! receives with filter and reads history with store, through the same
//! node API as a relay node.

use murmur::core::{store::Query, ContentTopic};

use crate::support::{addr, peer_of, start_node, WAIT};

fn topic() -> ContentTopic {
    "/murmur/1/light/proto".parse().unwrap()
}

#[actix_rt::test]
async fn a_light_node_sends_receives_and_reads_history_through_a_service_node() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_node(&dir.path().join("service")).await;
    let relay = peer_of(&dir.path().join("relay"), &service, false).await;
    let light = peer_of(&dir.path().join("light"), &service, true).await;
    let pubsub = service.pubsub_topic(&topic());
    service.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    assert!(
        light.status().await.unwrap().topics.is_empty(),
        "a light node relays nothing"
    );

    let mut at_relay = relay.subscribe([&topic()]).await.unwrap();
    let mut at_light = light.subscribe([&topic()]).await.unwrap();

    // Out: lightpush through the service, relayed to the mesh.
    let sent = light
        .send(&topic(), b"from the light node".to_vec())
        .await
        .unwrap();
    let got = at_relay.recv_timeout(WAIT).await.expect("relayed");
    assert_eq!(got.hash, sent);

    // In: the service's filter pushes what the mesh carries (and, as Waku
    // does, the light node's own message back).
    let from_mesh = relay
        .send(&topic(), b"to the light node".to_vec())
        .await
        .unwrap();
    let mut pushed = Vec::new();
    while pushed.len() < 2 {
        let got = at_light.recv_timeout(WAIT).await.expect("pushed by filter");
        if got.hash == from_mesh {
            assert_eq!(got.message.payload.as_ref(), b"to the light node");
        }
        pushed.push(got.hash);
    }
    pushed.sort();
    let mut expected = vec![sent, from_mesh];
    expected.sort();
    assert_eq!(pushed, expected);

    // History: store on the service node.
    let page = light
        .query_store(&addr(&service, false), Query::hashes(vec![sent, from_mesh]))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2);
}
