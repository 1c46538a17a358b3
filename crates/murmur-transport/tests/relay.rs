//! Two real nodes on loopback: relay, validation, static-peer redial.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur_core::{transport::Event, PubsubTopic, Sharding, WakuMessage};
use murmur_transport::{Config, Network};
use tokio::sync::mpsc;

fn config() -> Config {
    Config::new(Keypair::generate_secp256k1(), Sharding::auto(1, 8))
}

async fn next_message(events: &mut mpsc::Receiver<Event>) -> murmur_core::Delivery {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("a message within 10 s")
            .expect("events open");
        if let Event::Message(d) = event {
            return d;
        }
    }
}

async fn wait_for_mesh(node: &Network, topic: &PubsubTopic) {
    for _ in 0..100 {
        let status = node.status().await;
        if status.topics.iter().any(|(t, n)| t == topic && *n > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mesh peer on {topic}");
}

#[tokio::test]
async fn relays_both_ways_with_equal_hashes() {
    let (a, mut a_events) = Network::start(config()).await.unwrap();
    let b_config = config().with_static_peer(a.listen_addrs()[0].clone());
    let (b, mut b_events) = Network::start(b_config).await.unwrap();
    let topic: PubsubTopic = "/waku/2/rs/1/4".parse().unwrap();
    a.subscribe(&topic).await.unwrap();
    b.subscribe(&topic).await.unwrap();
    wait_for_mesh(&a, &topic).await;
    wait_for_mesh(&b, &topic).await;

    let msg = WakuMessage::new("/test/1/hash/proto", vec![1, 2, 3])
        .with_timestamp(1_700_000_000_000_000_000);
    let sent = a.publish(&topic, msg.clone()).await.unwrap();
    let got = next_message(&mut b_events).await;
    assert_eq!(got.hash, sent);
    assert_eq!(got.message, msg);
    assert_eq!(
        sent.to_string(),
        "0xbfd57923726173c6af604c44d06be2927922c30985e80fa5337162f27327317e"
    );

    let back = WakuMessage::new("/test/1/hash/proto", vec![4; 150_000]);
    let sent = b.publish(&topic, back).await.unwrap();
    assert_eq!(next_message(&mut a_events).await.hash, sent);
}

#[tokio::test]
async fn lightpush_v3_and_v2_clients_reach_the_mesh() {
    use murmur_transport::LightpushVersion;

    let (service, _) = Network::start(config()).await.unwrap();
    let relay_config = config().with_static_peer(service.listen_addrs()[0].clone());
    let (relay, mut relay_events) = Network::start(relay_config).await.unwrap();
    let topic: PubsubTopic = "/waku/2/rs/1/2".parse().unwrap();
    service.subscribe(&topic).await.unwrap();
    relay.subscribe(&topic).await.unwrap();
    wait_for_mesh(&service, &topic).await;

    let (client, _) = Network::start(config()).await.unwrap();
    let address = service.listen_addrs()[0].to_string();
    for (version, text) in [(LightpushVersion::V3, "v3"), (LightpushVersion::V2, "v2")] {
        let message = WakuMessage::new("/test/1/push/proto", text.as_bytes().to_vec())
            .with_timestamp(murmur_core::now_nanos());
        let peers = client
            .lightpush_with(&address, &topic, message.clone(), version)
            .await
            .unwrap();
        assert!(peers >= 1);
        let got = next_message(&mut relay_events).await;
        assert_eq!(got.message, message, "{text}");
    }

    // Nobody on a topic: v3 answers 505, v2 is_success = false.
    let empty: PubsubTopic = "/waku/2/rs/1/7".parse().unwrap();
    for version in [LightpushVersion::V3, LightpushVersion::V2] {
        let message = WakuMessage::new("/test/1/push/proto", b"alone".to_vec());
        let err = client
            .lightpush_with(&address, &empty, message, version)
            .await
            .unwrap_err();
        assert!(
            matches!(err, murmur_core::transport::Error::Remote { .. }),
            "{err}"
        );
    }
}

#[tokio::test]
async fn peer_exchange_hands_out_signed_records_that_lead_to_dialable_peers() {
    use murmur_transport::enr::{addresses, Record};

    let (target, _) = Network::start(config()).await.unwrap();
    let record: Record = target.enr().parse().unwrap();
    assert_eq!(
        murmur_transport::enr::peer_id(&record),
        Some(target.peer_id())
    );

    let (empty, _) = Network::start(config()).await.unwrap();
    let (server, _) = Network::start(config().with_bootstrap([record]))
        .await
        .unwrap();
    let (client, _) = Network::start(config()).await.unwrap();

    // Nothing to share: 503, as nwaku answers.
    let err = client
        .peer_exchange(&empty.listen_addrs()[0].to_string(), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, murmur_core::transport::Error::Remote { code: 503, .. }),
        "{err}"
    );

    let records = client
        .peer_exchange(&server.listen_addrs()[0].to_string(), 10)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let addrs = addresses(&records[0]);
    assert!(!addrs.is_empty());
    let dialled = client.dial(&addrs[0].to_string()).await.unwrap();
    assert_eq!(dialled.0, target.peer_id().to_string());

    // What the client learned, it hands out in turn.
    let (other, _) = Network::start(config()).await.unwrap();
    let relayed = other
        .peer_exchange(&client.listen_addrs()[0].to_string(), 10)
        .await
        .unwrap();
    assert_eq!(
        murmur_transport::enr::peer_id(&relayed[0]),
        Some(target.peer_id())
    );
}
