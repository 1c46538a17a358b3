//! Two real nodes on loopback: relay, validation, static-peer redial.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur_core::{transport::Event, PubsubTopic, Sharding, WakuMessage};
use murmur_transport::{Config, Node};
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

async fn wait_for_mesh(node: &Node, topic: &PubsubTopic) {
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
    let (a, mut a_events) = Node::start(config()).await.unwrap();
    let b_config = config().with_static_peer(a.listen_addrs()[0].clone());
    let (b, mut b_events) = Node::start(b_config).await.unwrap();
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
