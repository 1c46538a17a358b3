//! Chat messages to one account, or one group, sealed together while the
//! envelope before them is being sealed (`chat.batch`), over real nodes: a
//! burst arrives whole, each message once (and, 1:1, acknowledged), in
//! fewer envelopes than messages; with `chat.batch = 1` each goes alone;
//! and a batch whose messages reach the durable inbox only in part keeps
//! its plaintext, so that what is missing comes at the next start.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use actix::prelude::*;
use futures::future::join_all;
use libp2p::identity::Keypair;
use murmur::node::{
    chat::{AccountId, DeliveryState},
    Builder, Node,
};
use murmur_core::storage;

use crate::support::{
    befriend, keyed_node, loopback_config, members, meshed_for, next_in_group, WAIT,
};

/// Messages sent at once, none awaited before the next.
const BURST: usize = 24;

async fn node(dir: &std::path::Path, key: &Keypair, peer: Option<&Node>, batch: usize) -> Node {
    keyed_node(dir, key, peer, |c| c.chat.batch = batch).await
}

/// Alice writes `texts` to Bob all at once; answers once each is
/// acknowledged.
async fn burst(alice: &Node, bob: AccountId, texts: &[String]) {
    let chat = alice.conversation(bob);
    let sent = join_all(texts.iter().map(|t| chat.send_text(t.clone()))).await;
    for sent in sent {
        let mut sent = sent.expect("sent");
        assert!(
            matches!(
                sent.acknowledged(WAIT).await,
                DeliveryState::Acknowledged { .. }
            ),
            "not acknowledged: {:?}",
            sent.state()
        );
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("burst {i}")).collect()
}

/// Alice and Bob, contacts and meshed, Bob's first message read; answers
/// how many envelopes Bob opened a burst of [`BURST`] in, and what his
/// inbox read.
async fn envelopes_for_a_burst(batch: usize) -> (u64, Vec<String>) {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None, batch).await;
    let bob = node(
        dirs[1].path(),
        &Keypair::generate_secp256k1(),
        Some(&alice),
        batch,
    )
    .await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut inbox = bob.inbox().await.unwrap();
    burst(&alice, bob_id, &["first".to_owned()]).await;
    assert!(inbox.recv_timeout(WAIT).await.is_some());
    let before = bob.stats().await.unwrap().chat_opened;

    burst(&alice, bob_id, &texts(BURST)).await;
    let mut read = Vec::new();
    while read.len() < BURST {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .expect("every message arrives");
        read.push(m.text().unwrap().to_owned());
    }
    read.sort();
    let opened = bob.stats().await.unwrap().chat_opened - before;
    (opened, read)
}

#[actix_rt::test]
async fn a_burst_arrives_whole_and_once_in_fewer_envelopes_than_messages() {
    let (envelopes, read) = envelopes_for_a_burst(64).await;
    let mut expected = texts(BURST);
    expected.sort();
    assert_eq!(read, expected, "every message, once");
    assert!(
        envelopes <= (BURST / 4) as u64,
        "{BURST} messages sent at once came in {envelopes} envelopes"
    );
}

#[actix_rt::test]
async fn with_batches_off_each_message_has_an_envelope_of_its_own() {
    let (envelopes, read) = envelopes_for_a_burst(1).await;
    assert_eq!(read.len(), BURST);
    assert_eq!(envelopes, BURST as u64);
}

#[actix_rt::test]
async fn a_burst_to_a_group_arrives_whole_and_once_in_fewer_messages_than_sent() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None, 64).await;
    let bob = node(
        dirs[1].path(),
        &Keypair::generate_secp256k1(),
        Some(&alice),
        64,
    )
    .await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let group = alice.create_group("burst").await.unwrap();
    group.add(bob_id).await.unwrap();
    members(&bob, &group, 2).await;
    crate::groups::meshed(&[&alice, &bob], &group).await;
    let mut inbox = bob.inbox().await.unwrap();
    group.send_text("first").await.unwrap();
    let first = next_in_group(&mut inbox, Some(group.id()), "the first").await;
    assert_eq!(first.text(), Some("first"));
    let before = bob.stats().await.unwrap().group_opened;

    let sent = join_all(texts(BURST).into_iter().map(|t| group.send_text(t))).await;
    assert!(sent.iter().all(Result::is_ok), "every send answered");
    let mut read = Vec::new();
    while read.len() < BURST {
        let m = next_in_group(&mut inbox, Some(group.id()), "the burst").await;
        read.push(m.text().unwrap().to_owned());
    }
    read.sort();
    let mut expected = texts(BURST);
    expected.sort();
    assert_eq!(read, expected, "every message, once");
    let opened = bob.stats().await.unwrap().group_opened - before;
    assert!(
        opened <= (BURST / 4) as u64,
        "{BURST} group messages sent at once came in {opened}"
    );
}

/// The storage stage's state writes, refusing once the one that holds
/// `name` (a durable inbox entry), as a full disk would.
struct RefuseOnce {
    inner: Recipient<storage::SaveState>,
    name: String,
    refused: Arc<AtomicBool>,
}

impl Actor for RefuseOnce {
    type Context = Context<Self>;
}

impl Handler<storage::SaveState> for RefuseOnce {
    type Result = ResponseFuture<Result<(), storage::Error>>;

    fn handle(&mut self, save: storage::SaveState, _: &mut Context<Self>) -> Self::Result {
        if save.0.iter().any(|(n, _)| *n == self.name) && !self.refused.swap(true, Ordering::SeqCst)
        {
            return Box::pin(async { Err(storage::Error::Backend("disk full".to_owned())) });
        }
        let inner = self.inner.send(save);
        Box::pin(async move {
            inner
                .await
                .unwrap_or_else(|_| Err(storage::Error::Backend("gone".to_owned())))
        })
    }
}

/// Bob reads a burst that came in one envelope, and the durable inbox
/// write of one message in the middle of it fails. The plaintext his
/// crypto stage kept for the envelope must outlive the messages that were
/// written: his next start hands the batch on again, and the one missing
/// reaches his durable inbox, the others not twice. Let go with the first
/// message written, that one would be gone.
#[actix_rt::test]
async fn a_batch_written_to_the_inbox_in_part_is_kept_until_every_message_is() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice = node(dirs[0].path(), &alice_key, None, 64).await;
    let refused = Arc::new(AtomicBool::new(false));
    let bob = {
        let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.peers = vec![crate::support::addr(&alice, false).parse().unwrap()];
        let refused = refused.clone();
        Builder::new(config)
            .with_keypair(bob_key.clone())
            .with_storage(move |config| async move {
                let db = murmur_storage::Database::open(&config.store_url()).await?;
                let inner = storage::Handle::from(murmur_storage::Storage::start(db));
                // The first message is 1, the burst 2 on: one in its middle.
                let name = format!("inbox/m/{:020}", 2 + BURST / 2);
                let save_state = RefuseOnce {
                    inner: inner.save_state.clone(),
                    name,
                    refused,
                }
                .start()
                .recipient();
                Ok(storage::Handle {
                    save_state,
                    ..inner
                })
            })
            .start()
            .await
            .unwrap()
    };
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut durable = bob.durable_inbox("app").await.unwrap();
    burst(&alice, bob_id, &["first".to_owned()]).await;
    let before = bob.stats().await.unwrap().chat_opened;

    burst(&alice, bob_id, &texts(BURST)).await;
    assert!(refused.load(Ordering::SeqCst), "the write was refused");
    assert_eq!(
        bob.stats().await.unwrap().chat_opened - before,
        1,
        "the burst came in one envelope"
    );
    let mut kept = Vec::new();
    while let Ok(Some(entry)) =
        tokio::time::timeout(std::time::Duration::from_secs(1), durable.recv()).await
    {
        kept.push(entry.message.text().unwrap().to_owned());
    }
    assert_eq!(kept.len(), BURST, "all but the refused one: {kept:?}");
    drop(durable);
    bob.go_offline().await.unwrap();
    drop(bob);

    let bob = node(dirs[1].path(), &bob_key, Some(&alice), 64).await;
    let mut durable = bob.durable_inbox("app").await.unwrap();
    let mut all = Vec::new();
    while let Ok(Some(entry)) = tokio::time::timeout(WAIT, durable.recv()).await {
        all.push(entry.message.text().unwrap().to_owned());
        if all.len() == BURST + 1 {
            break;
        }
    }
    let mut expected = vec!["first".to_owned()];
    expected.extend(texts(BURST));
    all.sort();
    expected.sort();
    assert_eq!(all, expected, "every message in the durable inbox, once");
    // And nothing after it.
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(1), durable.recv())
            .await
            .is_err()
    );
}
