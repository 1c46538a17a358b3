//! Exactly once across a restart, on a raw topic: Bob's application sums
//! the readings Alice publishes, saving the sum in the same transaction as
//! its position in a durable subscription. It stops after three of five
//! readings (as a crash would, one handed out and not done); Alice
//! publishes the fifth while Bob's node is back but his application has not
//! subscribed again, and the node keeps it. Started again, the application
//! gets the last two, and the first three never again: the sum is exact.
//!
//! Run it: `cargo run --example durable_subscription`

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::{
    core::{ContentTopic, Delivery},
    node::{Builder, Config, Durable, Node},
};

const WAIT: Duration = Duration::from_secs(20);

async fn start(
    dir: &std::path::Path,
    key: &Keypair,
    peer: Option<&Node>,
) -> Result<Node, murmur::node::Error> {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    if let Some(peer) = peer {
        config.network.peers = vec![peer.listen_addrs()[0].parse().expect("valid multiaddr")];
    }
    Builder::new(config).with_keypair(key.clone()).start().await
}

/// Adds `n` readings to the sum, each saved with the position; answers it.
async fn handle(
    node: &Node,
    readings: &mut Durable<Delivery>,
    n: usize,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut sum: u64 = match node.load_app_state("sum").await? {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        None => 0,
    };
    for _ in 0..n {
        let entry = tokio::time::timeout(WAIT, readings.recv())
            .await?
            .ok_or("the node stopped")?;
        sum += std::str::from_utf8(&entry.message.message.payload)?.parse::<u64>()?;
        let state = vec![("sum".to_owned(), Some(serde_json::to_vec(&sum)?))];
        readings.commit(entry.seq, state).await?;
    }
    Ok(sum)
}

/// The whole story; answers Bob's sum at the end.
pub async fn run() -> Result<u64, Box<dyn std::error::Error>> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let topic: ContentTopic = "/my-sensors/1/readings/proto".parse()?;
    let alice = start(a.path(), &alice_key, None).await?;
    let bob = start(b.path(), &bob_key, Some(&alice)).await?;
    let mut readings = bob.durable_subscribe("sum", [&topic]).await?;
    let shard = alice.pubsub_topic(&topic);
    alice.wait_for_peers(&shard, 1, WAIT).await?;

    for reading in [10, 20, 30, 40] {
        alice.send(&topic, reading.to_string()).await?;
    }
    handle(&bob, &mut readings, 3).await?;
    // The fourth is handed out and never done: the process "dies".
    tokio::time::timeout(WAIT, readings.recv()).await?;
    drop(readings);
    bob.go_offline().await?;
    drop(bob);

    // Back, before the application subscribes again: the node keeps the
    // fifth, since the subscription asked for its topic before.
    let bob = start(b.path(), &bob_key, Some(&alice)).await?;
    alice.wait_for_peers(&shard, 1, WAIT).await?;
    alice.send(&topic, "50").await?;
    let mut readings = bob.durable_subscribe("sum", [&topic]).await?;
    let sum = handle(&bob, &mut readings, 2).await?;
    Ok(sum)
}

#[actix::main]
#[allow(dead_code, clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("the sum of the readings, each once: {}", run().await?);
    Ok(())
}
