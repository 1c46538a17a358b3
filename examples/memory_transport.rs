//! The transport stage swapped for an in-memory one, with the same pipeline.
//!
//! murmur's pipeline holds each stage only as `Recipient`s of that stage's
//! messages, so any actor that handles `murmur_core::transport`'s messages can
//! stand in for the libp2p node: here, `murmur_test_kit::MemoryNetwork`, which
//! moves messages between nodes in this process with Waku's validation rules.
//! A REST gateway, a simulator or a recorder plugs in the same way.
//!
//! Run it: `cargo run --example memory_transport`

use libp2p::identity::Keypair;
use murmur::{
    core::{hook::Verdict, storage, transport, ContentTopic},
    node::{Builder, Config, Node},
};
use murmur_test_kit::{MemoryNetwork, MemoryStorage};

/// An inbound hook: drops messages that shout.
struct NoShouting;

impl murmur::core::hook::Hook for NoShouting {
    fn name(&self) -> &str {
        "no-shouting"
    }

    fn inbound(
        &mut self,
        delivery: &murmur::core::Delivery,
    ) -> Result<Verdict, murmur::core::hook::BoxError> {
        let text = String::from_utf8_lossy(&delivery.message.payload);
        Ok(if text.chars().any(char::is_lowercase) {
            Verdict::Deliver
        } else {
            Verdict::Drop {
                reason: "all caps".to_owned(),
            }
        })
    }
}

async fn node_on(
    net: &MemoryNetwork,
    name: &str,
    data: &std::path::Path,
) -> Result<Node, murmur::node::Error> {
    let config = Config::new(data.join(name));
    let net = net.clone();
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        // The two lines that differ from a node on the real network.
        .with_transport(move |cx| async move { Ok(transport::Handle::from(net.start(cx.events))) })
        .with_storage(|_| async { Ok(storage::Handle::from(MemoryStorage::start())) })
        .with_hook(NoShouting)
        .start()
        .await
}

#[allow(clippy::print_stdout)]
#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let net = MemoryNetwork::new();
    let alice = node_on(&net, "alice", data.path()).await?;
    let bob = node_on(&net, "bob", data.path()).await?;

    let topic: ContentTopic = "/murmur/1/memory/proto".parse()?;
    let mut inbox = bob.subscribe([&topic]).await?;
    for text in ["hello bob", "HELLO BOB", "over an in-memory transport"] {
        let hash = alice.send(&topic, text.as_bytes().to_vec()).await?.hash();
        println!("alice sent {hash}: {text}");
    }
    while let Some(delivery) = inbox
        .recv_timeout(std::time::Duration::from_millis(500))
        .await
    {
        println!(
            "bob received {}: {}",
            delivery.hash,
            String::from_utf8_lossy(&delivery.message.payload)
        );
    }
    let stats = bob.stats().await?;
    println!(
        "bob delivered {}, hooks dropped {}",
        stats.delivered, stats.dropped_by_hooks
    );
    Ok(())
}
