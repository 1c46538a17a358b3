//! A message the node acknowledged is in the archive even if the process is
//! killed right after: `murmur node` in a child process, SIGKILLed the moment
//! it answers a lightpush with 200.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur_core::{store::Query, MessageHash, PubsubTopic, Sharding, WakuMessage};
use murmur_storage::Database;
use murmur_transport::{Config, Node};

#[tokio::test]
async fn a_lightpush_acknowledged_is_archived_even_if_the_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();

    // The client is also the service's relay peer, so that the push is relayed.
    let topic: PubsubTopic = "/waku/2/rs/1/3".parse().unwrap();
    let config = Config::new(Keypair::generate_secp256k1(), Sharding::auto(1, 8))
        .with_listen(["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (client, _events) = Node::start(config).await.unwrap();
    client.subscribe(&topic).await.unwrap();
    client.dial(&address).await.unwrap();
    for _ in 0..200 {
        if client
            .status()
            .await
            .topics
            .iter()
            .any(|(t, n)| *t == topic && *n > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let message = WakuMessage::new("/murmur/1/durable/proto", b"must survive".to_vec())
        .with_timestamp(murmur_core::now_nanos());
    let hash = MessageHash::of(&topic, &message);
    let relayed_to = client.lightpush(&address, &topic, message).await.unwrap();
    assert!(relayed_to >= 1);
    child.kill().unwrap();
    child.wait().unwrap();

    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    let page = db.query(&Query::hashes(vec![hash])).await.unwrap();
    assert_eq!(
        page.messages.len(),
        1,
        "the acknowledged message survived SIGKILL"
    );
}
