//! Relay messages every Waku peer rejects never reach the pipeline: they are
//! rejected in gossipsub validation, counted, and the node keeps running.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    gossipsub::{self, IdentTopic, MessageId},
    identity::Keypair,
    noise,
    swarm::SwarmEvent,
    tcp, yamux, Swarm, SwarmBuilder,
};
use murmur::{
    core::{ContentTopic, WakuMessage},
    proto::protocol,
    transport::RejectReason,
};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::support::{addr, start_node, WAIT};

/// A rust-libp2p gossipsub peer that publishes whatever bytes it is given.
fn rogue_peer() -> Swarm<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id(protocol::RELAY, gossipsub::Version::V1_1)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
        .max_transmit_size(1024 * 1024)
        .build()
        .unwrap();
    SwarmBuilder::with_existing_identity(Keypair::generate_secp256k1())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap()
        })
        .unwrap()
        .build()
}

#[actix_rt::test]
async fn invalid_relay_messages_are_rejected_counted_and_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path()).await;
    let topic: ContentTopic = "/murmur/1/bad/proto".parse().unwrap();
    let pubsub = node.pubsub_topic(&topic);
    let mut inbox = node.subscribe_all().await.unwrap();

    let mut rogue = rogue_peer();
    let ident = IdentTopic::new(pubsub.as_str());
    rogue.behaviour_mut().subscribe(&ident).unwrap();
    rogue
        .dial(addr(&node, false).parse::<libp2p::Multiaddr>().unwrap())
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while rogue.behaviour().mesh_peers(&ident.hash()).count() == 0 {
        tokio::time::timeout_at(deadline, rogue.select_next_some())
            .await
            .expect("the rogue peer joins the mesh");
    }

    let bad = [
        vec![0xff, 0xff, 0xff],
        WakuMessage::new(topic.as_str(), Vec::new()).encode_to_vec(),
        WakuMessage::new("", vec![1]).encode_to_vec(),
        // A NUL, which PostgreSQL's text refuses: archived, it would fail
        // every write grouped with it.
        WakuMessage::new("/murmur/1/bad\0/proto", vec![1]).encode_to_vec(),
        WakuMessage::new(topic.as_str(), vec![7u8; 151 * 1024]).encode_to_vec(),
    ];
    for data in bad {
        rogue.behaviour_mut().publish(ident.clone(), data).unwrap();
    }
    let good = WakuMessage::new(topic.as_str(), b"fine".to_vec())
        .with_timestamp(murmur::core::now_nanos());
    rogue
        .behaviour_mut()
        .publish(ident.clone(), good.encode_to_vec())
        .unwrap();
    // Drive the rogue swarm while the node receives.
    let driver = tokio::spawn(async move {
        loop {
            if let SwarmEvent::ConnectionClosed { .. } = rogue.select_next_some().await {
                return;
            }
        }
    });

    let got = inbox
        .recv_timeout(WAIT)
        .await
        .expect("the valid message arrives");
    assert_eq!(got.message, good);
    assert!(inbox.recv_timeout(Duration::from_secs(1)).await.is_none());
    let metrics = node.transport_metrics();
    for reason in [
        RejectReason::Malformed,
        RejectReason::EmptyPayload,
        RejectReason::EmptyContentTopic,
        RejectReason::BadContentTopic,
        RejectReason::TooLarge,
    ] {
        assert_eq!(metrics.rejected(reason), 1, "{reason:?}");
    }
    assert_eq!(metrics.received(), 1);
    assert!(
        node.status().await.unwrap().peer_id.is_some(),
        "still running"
    );
    driver.abort();
}
