//! A message the node acknowledged is in the archive even if the process is
//! killed right after: `murmur node` in a child process, SIGKILLed the moment
//! it answers a lightpush with 200, or the moment it forwards a relay message.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur_core::{
    store::Query, transport::Event, MessageHash, PubsubTopic, Sharding, WakuMessage,
};
use murmur_storage::Database;
use murmur_transport::{Config, Network};
use tokio::sync::mpsc;

/// Starts `murmur node` on loopback with its data in `dir`; answers the child
/// (with its stdout kept open) and its first listen address.
fn spawn_node(dir: &Path) -> ((Child, BufReader<std::process::ChildStdout>), String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    ((child, stdout), address)
}

/// A relay peer of the node at `address`, subscribed to `topic`.
async fn relay_peer(address: &str, topic: &PubsubTopic) -> (Network, mpsc::Receiver<Event>) {
    let config = Config::new(Keypair::generate_secp256k1(), Sharding::auto(1, 8))
        .with_listen(["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (peer, events) = Network::start(config).await.unwrap();
    peer.subscribe(topic).await.unwrap();
    peer.dial(address).await.unwrap();
    for _ in 0..200 {
        if peer
            .status()
            .await
            .topics
            .iter()
            .any(|(t, n)| t == topic && *n > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (peer, events)
}

async fn archived(dir: &Path, hash: MessageHash) -> bool {
    let db = Database::open(&format!("sqlite://{}", dir.join("murmur.db").display()))
        .await
        .unwrap();
    let page = db.query(&Query::hashes(vec![hash])).await.unwrap();
    page.messages.len() == 1
}

fn message(text: &str) -> WakuMessage {
    WakuMessage::new("/murmur/1/durable/proto", text.as_bytes().to_vec())
        .with_timestamp(murmur_core::now_nanos())
}

#[tokio::test]
async fn a_lightpush_acknowledged_is_archived_even_if_the_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ((mut child, _stdout), address) = spawn_node(dir.path());
    // The client is also the node's relay peer, so that the push is relayed.
    let topic: PubsubTopic = "/waku/2/rs/1/3".parse().unwrap();
    let (client, _events) = relay_peer(&address, &topic).await;

    let message = message("must survive");
    let hash = MessageHash::of(&topic, &message);
    let relayed_to = client.lightpush(&address, &topic, message).await.unwrap();
    assert!(relayed_to >= 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        archived(dir.path(), hash).await,
        "the acknowledged message survived SIGKILL"
    );
}

#[tokio::test]
async fn a_relay_message_forwarded_is_archived_even_if_the_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ((mut child, _stdout), address) = spawn_node(dir.path());
    let topic: PubsubTopic = "/waku/2/rs/1/3".parse().unwrap();
    let (sender, _) = relay_peer(&address, &topic).await;
    let (_receiver, mut received) = relay_peer(&address, &topic).await;

    let hash = sender.publish(&topic, message("relayed")).await.unwrap();
    // The receiver knows only the node: getting the message means the node
    // accepted it, and it accepts only what it has archived.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("forwarded within 20 s")
            .expect("events open");
        if let Event::Message(d) = event {
            assert_eq!(d.hash, hash);
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        archived(dir.path(), hash).await,
        "the forwarded message survived SIGKILL"
    );
}
