//! A reliable channel shared by two nodes, as js-waku applications share
//! one with `ReliableChannel`: Alice's messages reach Bob in the order she
//! wrote them, Alice learns that Bob has them, and what Bob misses while he
//! is away is fetched from Alice's store by the hashes her next message
//! names (Bob runs no store-sync rounds, so nothing else brings it back).
//!
//! Run it: `cargo run --example reliable_channel`

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::{
    core::ContentTopic,
    node::{
        reliable::{Config, Event, Options},
        Builder, Node, Reliable,
    },
};

const WAIT: Duration = Duration::from_secs(30);

async fn start(
    dir: &std::path::Path,
    key: &Keypair,
    peer: Option<&Node>,
) -> Result<Node, murmur::node::Error> {
    let mut config = murmur::node::Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    if let Some(peer) = peer {
        config.network.peers = vec![peer.listen_addrs()[0].parse().expect("valid multiaddr")];
        config.store.sync_interval_secs = 0;
    }
    Builder::new(config).with_keypair(key.clone()).start().await
}

/// The room, with clocks short enough for an example.
fn room(sender: &str) -> Result<Options, Box<dyn std::error::Error>> {
    let topic: ContentTopic = "/my-app/1/room/proto".parse()?;
    let config = Config {
        sync_every: 2_000,
        ..Config::default()
    };
    Ok(Options::new(topic, "room", sender)
        .with_config(config)
        .with_fetch_every(Duration::from_secs(1)))
}

/// Reads events until `n` messages were delivered; answers them.
async fn read(channel: &mut Reliable, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut texts = Vec::new();
    while texts.len() < n {
        match channel.recv_timeout(WAIT).await.ok_or("nothing came")? {
            Event::Delivered(d) => texts.push(String::from_utf8(d.content)?),
            Event::Missing(gap) => tracing::info!(missing = gap.len(), "a gap: fetching it"),
            _ => {}
        }
    }
    Ok(texts)
}

/// Waits until `id` is acknowledged.
async fn acknowledged(channel: &mut Reliable, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        if let Event::Acknowledged(acked) = channel.recv_timeout(WAIT).await.ok_or("no ack came")? {
            if acked == id {
                return Ok(());
            }
        }
    }
}

/// The whole story; answers what Bob read, in order.
pub async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice_node = start(a.path(), &alice_key, None).await?;
    let bob_node = start(b.path(), &bob_key, Some(&alice_node)).await?;
    let shard = alice_node.pubsub_topic(&room("alice")?.topic);
    alice_node.wait_for_peers(&shard, 1, WAIT).await?;
    let mut alice = alice_node.reliable_channel(room("alice")?).await?;
    let mut bob = bob_node.reliable_channel(room("bob")?).await?;

    let hello = alice.send("hello, Bob").await?;
    let mut read_by_bob = read(&mut bob, 1).await?;
    bob.send("hello, Alice").await?;
    acknowledged(&mut alice, &hello).await?;

    // Bob goes away; Alice's store keeps what she says meanwhile.
    bob.close().await;
    bob_node.go_offline().await?;
    drop(bob_node);
    alice.send("are you there?").await?;
    alice.send("I will wait").await?;

    let bob_node = start(b.path(), &bob_key, Some(&alice_node)).await?;
    bob_node.wait_for_peers(&shard, 1, WAIT).await?;
    let mut bob = bob_node.reliable_channel(room("bob")?).await?;
    alice.send("welcome back").await?;
    read_by_bob.extend(read(&mut bob, 3).await?);
    Ok(read_by_bob)
}

#[actix::main]
#[allow(dead_code, clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for text in run().await? {
        println!("bob read: {text}");
    }
    Ok(())
}
