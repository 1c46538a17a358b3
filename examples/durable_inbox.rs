//! Exactly once across a restart: Bob's application reads his node's
//! durable inbox and keeps a tally of what it handled, saving the tally in
//! the same transaction as its position. It stops after three of five
//! messages (as a crash would, one handed out and not done); started again
//! on the same folder, it gets the other two, and the first three never
//! again.
//!
//! Run it: `cargo run --example durable_inbox`

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::node::{chat::Durable, Builder, Config, Node};

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

/// Handles `n` messages: each one's text goes into the tally, saved with
/// the position. Answers the tally.
async fn handle(
    node: &Node,
    inbox: &mut Durable,
    n: usize,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut tally: Vec<String> = match node.load_app_state("tally").await? {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        None => Vec::new(),
    };
    for _ in 0..n {
        let entry = tokio::time::timeout(WAIT, inbox.recv())
            .await?
            .ok_or("the node stopped")?;
        tally.push(entry.message.text().unwrap_or_default().to_owned());
        let state = vec![("tally".to_owned(), Some(serde_json::to_vec(&tally)?))];
        inbox.commit(entry.seq, state).await?;
    }
    Ok(tally)
}

/// The whole story; answers Bob's tally at the end.
pub async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice = start(a.path(), &alice_key, None).await?;
    let bob = start(b.path(), &bob_key, Some(&alice)).await?;
    alice.add_contact(&bob.contact_code().await?).await?;
    let bob_id = bob.chat_identity().await?.0;
    let bob_topic = alice.pubsub_topic(&murmur::node::crypto::partition_topic(
        murmur::crypto::envelope::partition(&murmur::crypto::AccountId(bob_id.0), 64),
    ));
    alice.wait_for_peers(&bob_topic, 1, WAIT).await?;

    let mut inbox = bob.durable_inbox("tally").await?;
    for i in 1..=5 {
        alice
            .conversation(bob_id)
            .send_text(format!("message {i}"))
            .await?;
    }
    handle(&bob, &mut inbox, 3).await?;
    // The fourth is handed out and never done: the process "dies".
    tokio::time::timeout(WAIT, inbox.recv()).await?;
    drop(inbox);
    bob.go_offline().await?;
    drop(bob);

    let bob = start(b.path(), &bob_key, Some(&alice)).await?;
    let mut inbox = bob.durable_inbox("tally").await?;
    let tally = handle(&bob, &mut inbox, 2).await?;
    Ok(tally)
}

#[actix::main]
#[allow(dead_code, clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for text in run().await? {
        println!("handled once: {text}");
    }
    Ok(())
}
