//! Two accounts chat end to end encrypted over real libp2p nodes on
//! loopback: Bob shares his contact code, Alice adds it and writes, Bob
//! answers; each sees the other's verified account, and Alice sees her
//! message acknowledged.
//!
//! Run it: `cargo run --example private_chat`

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::node::{Builder, Config, Node};

const WAIT: Duration = Duration::from_secs(20);

async fn start(dir: &std::path::Path, peer: Option<&Node>) -> Result<Node, murmur::node::Error> {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    if let Some(peer) = peer {
        config.network.peers = vec![peer.listen_addrs()[0].parse().expect("valid multiaddr")];
    }
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
}

#[actix::main]
#[allow(clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let alice = start(a.path(), None).await?;
    let bob = start(b.path(), Some(&alice)).await?;

    // Bob's code travels out of band: a link, a QR code, a message.
    let code = bob.contact_code().await?;
    let bob_id = alice.add_contact(&code).await?;
    let mut bob_inbox = bob.inbox().await?;
    let mut alice_inbox = alice.inbox().await?;
    // Wait until the two nodes share a relay mesh.
    let bob_topic = alice.pubsub_topic(&murmur::node::crypto::partition_topic(
        murmur::crypto::envelope::partition(&murmur::crypto::AccountId(bob_id.0), 64),
    ));
    alice.wait_for_peers(&bob_topic, 1, WAIT).await?;

    let mut sent = alice.conversation(bob_id).send_text("hi Bob").await?;
    let message = bob_inbox.recv_timeout(WAIT).await.ok_or("no message")?;
    println!("bob got {:?} from {}", message.text(), message.sender);
    println!("alice's message is {:?}", sent.acknowledged(WAIT).await);

    bob.conversation(message.sender)
        .send_text("hi Alice")
        .await?;
    let reply = alice_inbox.recv_timeout(WAIT).await.ok_or("no reply")?;
    println!("alice got {:?} from {}", reply.text(), reply.sender);
    Ok(())
}
