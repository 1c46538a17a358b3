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
        .unwrap()
        .hash();
    let got = at_relay.recv_timeout(WAIT).await.expect("relayed");
    assert_eq!(got.hash, sent);

    // In: the service's filter pushes what the mesh carries. It pushes the
    // light node's own message back too: delivered at most once (if it comes
    // back before the light node archived its send), never twice.
    let from_mesh = relay
        .send(&topic(), b"to the light node".to_vec())
        .await
        .unwrap()
        .hash();
    let mut seen = Vec::new();
    while !seen.contains(&from_mesh) {
        let got = at_light.recv_timeout(WAIT).await.expect("pushed by filter");
        assert!(got.hash == from_mesh || got.hash == sent, "{:?}", got.hash);
        assert!(!seen.contains(&got.hash), "delivered twice");
        seen.push(got.hash);
    }
    while let Some(got) = at_light
        .recv_timeout(std::time::Duration::from_millis(500))
        .await
    {
        assert!(!seen.contains(&got.hash), "delivered twice");
        seen.push(got.hash);
    }

    // History: store on the service node.
    let page = light
        .query_store(&addr(&service, false), Query::hashes(vec![sent, from_mesh]))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2);
}

#[actix_rt::test]
async fn a_light_node_starts_and_sends_through_a_service_without_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        crate::support::loopback_config(&dir.path().join("service"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.filter = false;
    let service = murmur::node::Builder::new(config)
        .with_keypair(libp2p::identity::Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    let relay = peer_of(&dir.path().join("relay"), &service, false).await;
    let mut at_relay = relay.subscribe([&topic()]).await.unwrap();
    service
        .wait_for_peers(&service.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();
    // Its chat topics cannot be subscribed at the service: it starts anyway.
    let light = peer_of(&dir.path().join("light"), &service, true).await;
    let sent = light
        .send(&topic(), b"lightpush only".to_vec())
        .await
        .unwrap()
        .hash();
    assert_eq!(
        at_relay.recv_timeout(WAIT).await.expect("relayed").hash,
        sent
    );
}

/// A light client asks its service node for others by peer exchange; when
/// its service goes, it moves to one of them: its filter subscription
/// follows, and what it sends goes out through the new one.
#[actix_rt::test]
async fn a_light_client_moves_to_another_service_node_its_service_told_of() {
    let dir = tempfile::tempdir().unwrap();
    // The second service node, and a relay node beside it.
    let second = start_node(&dir.path().join("second")).await;
    let relay = peer_of(&dir.path().join("relay"), &second, false).await;
    // The first hands out the second's record by peer exchange.
    let first = {
        let mut config =
            crate::support::loopback_config(&dir.path().join("first"), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.bootstrap_enrs = vec![second.enr().expect("a record").to_owned()];
        murmur::node::Builder::new(config)
            .with_keypair(libp2p::identity::Keypair::generate_secp256k1())
            .start()
            .await
            .unwrap()
    };
    let light = peer_of(&dir.path().join("light"), &first, true).await;
    let mut at_light = light.subscribe([&topic()]).await.unwrap();
    let mut at_relay = relay.subscribe([&topic()]).await.unwrap();
    relay
        .wait_for_peers(&relay.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();

    // The first service goes away.
    first.go_offline().await.unwrap();
    let second_id = second.peer_id();
    crate::support::eventually("the light client moved to the second service", || async {
        light
            .status()
            .await
            .unwrap()
            .peers
            .iter()
            .any(|p| p.0 == second_id)
    })
    .await;

    // Out, through the second: the relay beside it gets it.
    let sent = light
        .send(&topic(), b"through the second".to_vec())
        .await
        .unwrap()
        .hash();
    let got = at_relay.recv_timeout(WAIT * 2).await.expect("relayed");
    assert_eq!(got.hash, sent);
    // In: the second's filter pushes what its mesh carries (the
    // subscription reaches it a moment after the connection: send until
    // one comes).
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        relay
            .send(&topic(), b"to the light client".to_vec())
            .await
            .unwrap();
        if let Some(got) = at_light
            .recv_timeout(std::time::Duration::from_millis(500))
            .await
        {
            if got.message.payload == "to the light client" {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no filter push from the second service"
        );
    }
}
