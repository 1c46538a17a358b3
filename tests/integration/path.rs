//! Raw relay traffic does not wait behind decryption: while a chat envelope
//! is held in the crypto stage, messages on other topics still reach their
//! subscribers; once it is let go, the chat message arrives.
//!
//! The crypto stage here is the default one behind a gate on `Open` (a
//! replacement stage through `Builder::with_crypto`, as an integrator would
//! write one that wraps the default). Before the chat lane, the pipeline's
//! mailbox waited for each envelope to open, and the raw message behind it
//! waited too.

use actix::prelude::*;
use libp2p::identity::Keypair;
use murmur::node::{crypto::Crypto, Builder};
use murmur_core::{crypto, ContentTopic};
use tokio::sync::watch;

use crate::support::{addr, chat_node, loopback_config, partition_topic_of, WAIT};

/// Holds every `Open` until the gate is open, then hands it to the stage.
struct Gate {
    inner: Recipient<crypto::Open>,
    open: watch::Receiver<bool>,
    /// How many envelopes wait at the gate.
    waiting: watch::Sender<usize>,
}

impl Actor for Gate {
    type Context = Context<Self>;
}

impl Handler<crypto::Open> for Gate {
    type Result = ResponseFuture<Result<crypto::Opened, crypto::Error>>;

    fn handle(&mut self, msg: crypto::Open, _: &mut Context<Self>) -> Self::Result {
        let (inner, mut open, waiting) =
            (self.inner.clone(), self.open.clone(), self.waiting.clone());
        waiting.send_modify(|n| *n += 1);
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            waiting.send_modify(|n| *n -= 1);
            inner.send(msg).await.unwrap_or(Err(crypto::Error::State(
                "the crypto stage is gone".to_owned(),
            )))
        })
    }
}

#[actix_rt::test]
async fn raw_traffic_is_not_held_behind_a_chat_envelope_being_opened() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = chat_node(dirs[0].path(), None).await;
    let (gate, opened) = watch::channel(false);
    let (waiting_tx, mut waiting) = watch::channel(0usize);
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    let bob = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_crypto(move |cx| async move {
            let stage = Crypto::start(
                cx.storage,
                &cx.node_secret,
                &cx.settings.sessions(),
                cx.metrics,
            )
            .await?;
            let default = crypto::Handle::from(stage);
            let gate = Gate {
                inner: default.open.clone(),
                open: opened,
                waiting: waiting_tx,
            }
            .start();
            Ok(crypto::Handle {
                open: gate.recipient(),
                ..default
            })
        })
        .start()
        .await
        .unwrap();
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
    tokio::time::timeout(WAIT, waiting.wait_for(|n| *n > 0))
        .await
        .expect("the envelope reaches the gate")
        .unwrap();

    let hash = alice.send(&raw, b"not held".to_vec()).await.unwrap();
    let got = bob_raw
        .recv_timeout(WAIT)
        .await
        .expect("raw traffic passes while an envelope waits to be opened");
    assert_eq!(got.hash, hash);
    assert_eq!(*waiting.borrow(), 1, "the envelope is still at the gate");

    gate.send_replace(true);
    let message = bob_inbox
        .recv_timeout(WAIT)
        .await
        .expect("then the chat message");
    assert_eq!(message.text(), Some("held at the gate"));
}
