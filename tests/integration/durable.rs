//! The durable inbox over real nodes: a subscriber that falls behind reads
//! on from the database where a live inbox misses; a position saved is
//! where a restarted node resumes; a message sent again under its id is
//! kept once; a receipt that never reached the outbox is sent after a
//! restart; a write to the inbox answered out of order is not passed over;
//! a message that comes while the node starts is kept.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur::node::{
    chat::{DeliveryState, MessageId},
    Builder, Node,
};
use murmur_core::storage;
use murmur_test_kit::{gate, Valve};

use crate::support::{befriend, eventually, loopback_config, meshed_for, WAIT};

#[path = "../../examples/durable_inbox.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[actix_rt::test]
async fn the_example_handles_each_message_once_across_a_restart() {
    let tally = example::run().await.unwrap();
    let expected: Vec<String> = (1..=5).map(|i| format!("message {i}")).collect();
    assert_eq!(tally, expected);
}

async fn node(dir: &std::path::Path, key: &Keypair, peer: Option<&Node>) -> Node {
    crate::support::keyed_node(dir, key, peer, |_| {}).await
}

#[actix_rt::test]
async fn a_durable_subscriber_that_falls_behind_reads_on_from_the_database() {
    const SENT: usize = 1_300;
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob = node(dirs[1].path(), &Keypair::generate_secp256k1(), Some(&alice)).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut durable = bob.durable_inbox("slow").await.unwrap();
    let mut live = bob.inbox().await.unwrap();
    let chat = alice.conversation(bob_id);
    chat.send_text("first").await.unwrap();
    let first = tokio::time::timeout(WAIT, durable.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.message.text(), Some("first"));
    assert!(live.recv_timeout(WAIT).await.is_some());

    // Neither reads while more arrive than a queue holds (1,024).
    for i in 0..SENT {
        chat.send_text(format!("n{i}")).await.unwrap();
    }
    eventually("bob opened every message", || async {
        bob.stats().await.unwrap().chat_opened > SENT as u64
    })
    .await;

    // Read under a timeout so short that many calls are dropped half way
    // (reading a page from the database, waiting for the live queue), as
    // a REST long-poll or a `select!` drops them: nothing is lost.
    let mut texts = BTreeSet::new();
    let mut last = first.seq;
    let mut dropped = 0;
    for _ in 0..SENT {
        // Every other call is cut short; the others may take their time,
        // so that reading goes on however slow the machine.
        let entry = match tokio::time::timeout(Duration::from_micros(200), durable.recv()).await {
            Ok(entry) => entry,
            Err(_) => {
                dropped += 1;
                tokio::time::timeout(WAIT, durable.recv())
                    .await
                    .expect("the durable subscriber reads on")
            }
        }
        .expect("the node runs");
        assert_eq!(entry.seq, last + 1, "in the inbox's order, no gap");
        last = entry.seq;
        texts.insert(entry.message.text().unwrap().to_owned());
    }
    assert_eq!(texts.len(), SENT, "every message, once");
    assert!(dropped > 0, "some calls were cut off");
    durable.done(last).await.unwrap();

    // The live inbox kept what its queue held and missed the rest.
    let mut heard = 0;
    while live
        .recv_timeout(Duration::from_millis(200))
        .await
        .is_some()
    {
        heard += 1;
    }
    assert!(
        heard < SENT,
        "a live inbox misses what does not fit: {heard}"
    );
}

#[actix_rt::test]
async fn a_restarted_node_resumes_at_the_saved_position_and_a_resent_id_is_kept_once() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice = node(dirs[0].path(), &alice_key, None).await;
    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    let chat = alice.conversation(bob_id);
    for text in ["one", "two", "three"] {
        chat.send_text(text).await.unwrap();
    }
    let mut entries = Vec::new();
    for _ in 0..3 {
        entries.push(
            tokio::time::timeout(WAIT, inbox.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // Done with two; the third was handed out, not done.
    inbox.done(entries[1].seq).await.unwrap();
    drop(inbox);
    bob.go_offline().await.unwrap();
    drop(bob);

    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    assert_eq!(inbox.position(), entries[1].seq);
    let again = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, entries[2], "the message not done comes again");

    // Sent twice under one id (a retry after a crash): kept once.
    meshed_for(&alice, bob_id).await;
    let id = MessageId([7; 16]);
    for _ in 0..2 {
        chat.send_as(id, murmur::core::chat::Body::Text("once".into()))
            .await
            .unwrap();
    }
    chat.send_text("after").await.unwrap();
    let once = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((once.message.id, once.message.text()), (id, Some("once")));
    let after = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.message.text(), Some("after"), "the copy was dropped");
    assert!(bob.stats().await.unwrap().duplicates >= 1);
}

#[actix_rt::test]
async fn a_message_ahead_of_what_the_store_brings_back_is_held_until_it_opens() {
    const AWAY: usize = 1_050;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let store = crate::support::chat_node(dirs[0].path(), None).await;
    let alice = node(dirs[1].path(), &Keypair::generate_secp256k1(), Some(&store)).await;
    let bob_key = Keypair::generate_secp256k1();
    let bob = crate::support::away_node(dirs[2].path(), &bob_key, &store, false).await;
    let bob_id = befriend(&alice, &bob).await;
    // Both ends on the store's mesh of Bob's shard: Alice's being there
    // says nothing of Bob's.
    meshed_for(&alice, bob_id).await;
    meshed_for(&bob, bob_id).await;
    let chat = alice.conversation(bob_id);
    chat.send_text("hello").await.unwrap();
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    let hello = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    inbox.done(hello.seq).await.unwrap();
    drop(inbox);
    bob.go_offline().await.unwrap();
    drop(bob);

    // More than a session step may skip (chat.max_skip, 1000) while Bob
    // is away: the store keeps them.
    for i in 0..AWAY {
        chat.send_text(format!("away {i}")).await.unwrap();
    }
    // Back as a light client: the store's filter pushes what is new, and
    // nothing else comes until a round (a relay's gossip would bring
    // back some of what was sent in its last seconds).
    let bob = crate::support::away_node(dirs[2].path(), &bob_key, &store, true).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    // Heard before the store round: too far ahead of the session, held.
    chat.send_text("live").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bob.stats().await.unwrap().chat_ahead < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live message is not held: {:?}; refused as {:?}",
            bob.stats().await.unwrap(),
            [
                "replay",
                "undecryptable",
                "not_for_us",
                "unknown_session",
                "one_time_prekey_used",
                "too_far_ahead",
                "malformed",
                "bad_bundle",
                "revoked",
                "blocked",
                "request_limit"
            ]
            .map(|r| (r, bob.crypto_metrics().refused(r)))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bob.sync_now().await.unwrap();

    let mut texts = Vec::new();
    while texts.len() < AWAY + 1 {
        let entry = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {} arrived", texts.len(), AWAY + 1))
            .unwrap();
        texts.push(entry.message.text().unwrap().to_owned());
    }
    assert_eq!(
        texts.last().map(String::as_str),
        Some("live"),
        "it opens after the rest"
    );
    let away: BTreeSet<_> = texts[..AWAY].iter().cloned().collect();
    assert_eq!(away.len(), AWAY, "every message from the store, once");
}

/// As above, in a group: a group message further ahead of its chain than
/// `chat.max_skip` is held until the store round brings the ones before it.
#[actix_rt::test]
async fn a_group_message_ahead_of_what_the_store_brings_back_is_held_until_it_opens() {
    const AWAY: usize = 1_050;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let store = crate::support::chat_node(dirs[0].path(), None).await;
    let alice = node(dirs[1].path(), &Keypair::generate_secp256k1(), Some(&store)).await;
    let bob_key = Keypair::generate_secp256k1();
    let bob = crate::support::away_node(dirs[2].path(), &bob_key, &store, false).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    meshed_for(&bob, bob_id).await;
    let group = alice.create_group("away").await.unwrap();
    group.add(bob_id).await.unwrap();
    crate::support::members(&bob, &group, 2).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    // Until Bob's copy of the group hears Alice's chain.
    let hello = loop {
        group.send_text("hello").await.unwrap();
        if let Ok(Some(entry)) = tokio::time::timeout(Duration::from_secs(2), inbox.recv()).await {
            break entry;
        }
    };
    assert_eq!(hello.message.group, Some(group.id()));
    // Any later copy of "hello" is in the inbox before Bob goes.
    while let Ok(Some(entry)) = tokio::time::timeout(Duration::from_secs(1), inbox.recv()).await {
        assert_eq!(entry.message.text(), Some("hello"));
        inbox.done(entry.seq).await.unwrap();
    }
    inbox.done(hello.seq).await.unwrap();
    drop(inbox);
    bob.go_offline().await.unwrap();
    drop(bob);

    for i in 0..AWAY {
        group.send_text(format!("away {i}")).await.unwrap();
    }
    let bob = crate::support::away_node(dirs[2].path(), &bob_key, &store, true).await;
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    group.send_text("live").await.unwrap();
    eventually("the live group message is held", || async {
        bob.stats().await.unwrap().chat_ahead >= 1
    })
    .await;
    bob.sync_now().await.unwrap();

    let mut texts = Vec::new();
    while texts.len() < AWAY + 1 {
        let entry = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {} arrived", texts.len(), AWAY + 1))
            .unwrap();
        assert_eq!(entry.message.group, Some(group.id()));
        // A "hello" sent again while the first was on its way may come
        // back from the store too.
        if entry.message.text() != Some("hello") {
            texts.push(entry.message.text().unwrap().to_owned());
        }
    }
    assert_eq!(
        texts.last().map(String::as_str),
        Some("live"),
        "it opens after the rest"
    );
    let away: BTreeSet<_> = texts[..AWAY].iter().cloned().collect();
    assert_eq!(away.len(), AWAY, "every message from the store, once");
}

/// A node on its default SQLite storage, whose outbox entries pass a gate,
/// and whose publishes pass another (both open until the test closes
/// them): a message is put in the outbox and handed to the network at
/// once, so holding its outbox entry alone would not keep it from the
/// other side.
async fn gated_outbox(dir: &std::path::Path, key: &Keypair, peer: &Node) -> (Node, [Valve; 2]) {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![crate::support::addr(peer, false).parse().unwrap()];
    let (valve_tx, valve) = tokio::sync::oneshot::channel();
    let (publish_tx, publish_valve) = tokio::sync::oneshot::channel();
    let node = Builder::new(config)
        .with_transport(move |cx| async move {
            let (addr, _) =
                murmur::transport::Transport::start(cx.transport_config(), cx.events).await?;
            let inner = murmur_core::transport::Handle::from(addr);
            let (publish, valve) = gate(inner.publish.clone(), || {
                Err(murmur_core::transport::Error::Stopped)
            });
            valve.open();
            let _ = publish_tx.send(valve);
            Ok(murmur_core::transport::Handle { publish, ..inner })
        })
        .with_keypair(key.clone())
        .with_storage(move |config| async move {
            let db = murmur_storage::Database::open(&config.store_url()).await?;
            let inner = storage::Handle::from(murmur_storage::Storage::start(db));
            let (enqueue, valve) = gate(inner.enqueue.clone(), || {
                Err(storage::Error::Backend(
                    "the storage stage is gone".to_owned(),
                ))
            });
            valve.open();
            let _ = valve_tx.send(valve);
            Ok(storage::Handle { enqueue, ..inner })
        })
        .start()
        .await
        .unwrap();
    (node, [valve.await.unwrap(), publish_valve.await.unwrap()])
}

/// Bob reads a message and stops while his receipt for it is still on its
/// way to his outbox. The plaintext he kept for it must outlive that
/// moment: his next start hands it on again (his inbox already has it) and
/// sends the receipt then. Had it been let go first, Alice would never see
/// the message acknowledged.
#[actix_rt::test]
async fn a_receipt_that_never_reached_the_outbox_is_sent_after_a_restart() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let (alice_key, bob_key) = (Keypair::generate_secp256k1(), Keypair::generate_secp256k1());
    let alice = node(dirs[0].path(), &alice_key, None).await;
    let (bob, [mut valve, publish]) = gated_outbox(dirs[1].path(), &bob_key, &alice).await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut inbox = bob.inbox().await.unwrap();
    let chat = alice.conversation(bob_id);
    let mut first = chat.send_text("first").await.unwrap();
    assert!(matches!(
        first.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { .. }
    ));
    assert!(inbox.recv_timeout(WAIT).await.is_some());

    valve.close();
    publish.close();
    let mut second = chat.send_text("second").await.unwrap();
    let read = inbox.recv_timeout(WAIT).await.expect("Bob reads it");
    assert_eq!(read.text(), Some("second"));
    // His receipt for it waits at the gate; he stops there.
    valve.holding(1).await;
    bob.go_offline().await.unwrap();
    drop((inbox, bob));
    assert!(!matches!(
        second.state(),
        DeliveryState::Acknowledged { .. }
    ));

    let _bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    assert!(
        matches!(
            second.acknowledged(WAIT).await,
            DeliveryState::Acknowledged { .. }
        ),
        "the receipt never came: {:?}",
        second.state()
    );
}

/// The sequence of the chat message a stage-state write keeps in the
/// durable inbox, if it keeps one (`inbox/m/` and twenty digits).
fn inbox_write(records: &[(String, Option<Vec<u8>>)]) -> Option<u64> {
    records.iter().find_map(|(name, value)| {
        value.as_ref()?;
        name.strip_prefix("inbox/m/")?.parse().ok()
    })
}

/// The pipeline hands the storage stage several inbox writes at once, and
/// with its mailbox full a later one can be committed first. A subscriber
/// reading the inbox meanwhile must not see the later message alone: it
/// would take the gap before it for retention, and drop the earlier one
/// when it came.
#[actix_rt::test]
async fn a_subscriber_does_not_pass_over_a_message_whose_write_a_later_one_overtook() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    // The write of the chat message with this sequence waits (none at 0).
    let held = Arc::new(AtomicU64::new(0));
    let picked = held.clone();
    let (bob, mut valve, stage) = crate::gate::gated_state(
        dirs[1].path(),
        &Keypair::generate_secp256k1(),
        &alice,
        move |storage::SaveState(records)| {
            inbox_write(records) == Some(picked.load(Ordering::SeqCst))
        },
    )
    .await;
    let bob_id = befriend(&alice, &bob).await;
    meshed_for(&alice, bob_id).await;
    let mut reader = bob.durable_inbox("reader").await.unwrap();
    let start = reader.skip_to_end().await.unwrap();
    drop(reader);

    held.store(start + 1, Ordering::SeqCst);
    let chat = alice.conversation(bob_id);
    chat.send_text("first").await.unwrap();
    chat.send_text("second").await.unwrap();
    valve.holding(1).await;
    let second = format!("inbox/m/{:020}", start + 2);
    eventually("the second message is in the database", || async {
        let load = stage.load_state.send(storage::LoadState(second.clone()));
        matches!(load.await, Ok(Ok(Some(_))))
    })
    .await;

    let mut reader = bob.durable_inbox("reader").await.unwrap();
    // Nothing to read until the first is written: watched for a while
    // (recv is cancel-safe), which only a faulty reader cuts short.
    let early = tokio::time::timeout(Duration::from_secs(1), reader.recv()).await;
    assert!(early.is_err(), "read past a write on its way: {early:?}");
    valve.open();
    for (seq, text) in [(start + 1, "first"), (start + 2, "second")] {
        let entry = tokio::time::timeout(WAIT, reader.recv())
            .await
            .unwrap_or_else(|_| panic!("{text} never came"))
            .expect("the node runs");
        assert_eq!((entry.seq, entry.message.text()), (seq, Some(text)));
    }
    assert_eq!(reader.lost(), 0);
}

/// Messages that arrive while the node is being assembled are kept like
/// any other, in the order they came. Here the transport reports them
/// before the builder attached a stage; on the network, a filter service
/// that still holds a light client's subscription from before its restart
/// pushes as soon as it connects. Handled then, they found no chat stage
/// (or no durable inbox), went to no one, and were not taken again in the
/// run.
#[actix_rt::test]
async fn messages_that_arrive_while_the_node_starts_are_kept_in_order() {
    const SENT: usize = 3;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let bob_key = Keypair::generate_secp256k1();
    let alice = node(dirs[0].path(), &Keypair::generate_secp256k1(), None).await;
    let bob = node(dirs[1].path(), &bob_key, Some(&alice)).await;
    let bob_id = befriend(&alice, &bob).await;
    bob.go_offline().await.unwrap();
    drop(bob);

    // Bob's envelopes, as a node on his shard hears them.
    let watcher = node(dirs[2].path(), &Keypair::generate_secp256k1(), Some(&alice)).await;
    let topic = crate::support::partition_topic_of(bob_id);
    let mut heard = watcher.subscribe([&topic]).await.unwrap();
    watcher
        .wait_for_peers(&watcher.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    let mut envelopes = Vec::with_capacity(SENT);
    for i in 0..SENT {
        let chat = alice.conversation(bob_id);
        chat.send_text(format!("while starting {i}")).await.unwrap();
        envelopes.push(heard.recv_timeout(WAIT).await.expect("the envelope"));
    }

    // Bob again, with no peer: the envelopes can come only as his
    // transport reports them, before anything else is attached.
    let bob = Builder::new(loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]))
        .with_keypair(bob_key)
        .with_transport(move |cx| async move {
            let events = cx.events.clone();
            let (addr, _) =
                murmur::transport::Transport::start(cx.transport_config(), cx.events).await?;
            for envelope in envelopes {
                events.do_send(murmur_core::transport::Event::Message(envelope));
            }
            Ok(murmur_core::transport::Handle::from(addr))
        })
        .start()
        .await
        .unwrap();
    let mut inbox = bob.durable_inbox("app").await.unwrap();
    for i in 0..SENT {
        let entry = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .expect("the message, kept")
            .unwrap();
        let expected = format!("while starting {i}");
        assert_eq!(entry.message.text(), Some(expected.as_str()), "in order");
    }
    assert_eq!(bob.stats().await.unwrap().chat_opened, SENT as u64);
}
