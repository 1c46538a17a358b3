//! Raw relay traffic does not wait behind decryption: while a chat envelope
//! is held in the crypto stage, messages on other topics still reach their
//! subscribers; once it is let go, the chat message arrives.
//!
//! The crypto stage here is the default one behind a gate on `Open` (a
//! replacement stage through `Builder::with_crypto`, as an integrator would
//! write one that wraps the default). Before the chat lane, the pipeline's
//! mailbox waited for each envelope to open, and the raw message behind it
//! waited too.

use murmur_core::ContentTopic;

use crate::gate::gated_open;
use crate::support::{addr, chat_node, loopback_config, partition_topic_of, WAIT};

#[actix_rt::test]
async fn raw_traffic_is_not_held_behind_a_chat_envelope_being_opened() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = chat_node(dirs[0].path(), None).await;
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    let (bob, mut valve) = gated_open(config).await;
    let bob_id = alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let raw: ContentTopic = "/murmur/1/raw/proto".parse().unwrap();
    let mut bob_raw = bob.subscribe([&raw]).await.unwrap();
    let mut bob_inbox = bob.inbox().await.unwrap();
    for (node, topic) in [
        (&alice, partition_topic_of(bob_id)),
        (&alice, raw.clone()),
        (&bob, raw.clone()),
    ] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await
            .expect("a peer on the shard");
    }

    alice
        .conversation(bob_id)
        .send_text("held at the gate")
        .await
        .unwrap();
    valve.holding(1).await;

    let hash = alice.send(&raw, b"not held".to_vec()).await.unwrap().hash();
    let got = bob_raw
        .recv_timeout(WAIT)
        .await
        .expect("raw traffic passes while an envelope waits to be opened");
    assert_eq!(got.hash, hash);
    assert_eq!(valve.held(), 1, "the envelope is still at the gate");

    valve.open();
    let message = bob_inbox
        .recv_timeout(WAIT)
        .await
        .expect("then the chat message");
    assert_eq!(message.text(), Some("held at the gate"));
}
