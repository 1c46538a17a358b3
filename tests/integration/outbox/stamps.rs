//! The outbox's stamps: a message that waited too long is stamped again
//! as it goes (store nodes keep nothing more than 20 s off their clock),
//! in its turn, one entry a tick through an outage; one whose new stamp
//! could not be written waits; two alike but for their stamps stay two.

use super::*;

/// Publishes `n` texts ("late 0", …) stamped a minute ago, each `apart`
/// nanoseconds after the one before, through `node`, with no peer to take
/// them: each waits in the outbox.
async fn queue_late(node: &Node, n: usize, apart: i64) -> Vec<murmur::node::Publication> {
    let pubsub = node.pubsub_topic(&topic());
    let minute_ago = murmur::core::now_nanos() - 60_000_000_000;
    let mut queued = Vec::with_capacity(n);
    for i in 0..n {
        let stamp = minute_ago + apart * i64::try_from(i).unwrap();
        let message = WakuMessage::new(topic().as_str(), format!("late {i}").into_bytes())
            .with_timestamp(stamp);
        let sent = node.publish(pubsub.clone(), message).await.unwrap();
        assert_eq!(sent.state(), PublishState::Queued);
        queued.push(sent);
    }
    queued
}

/// Waits until an entry other than `queued` enters the outbox: one of them
/// stamped again.
async fn stamped_again(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Moved>,
    queued: &[MessageHash],
) {
    loop {
        let event = tokio::time::timeout(WAIT * 2, events.recv())
            .await
            .expect("stamped again within a few ticks")
            .expect("the watched stage is there");
        if matches!(event, Moved::In(hash) if !queued.contains(&hash)) {
            return;
        }
    }
}

/// Store nodes keep nothing stamped more than 20 s off their clock: a
/// message that waited longer in the outbox is stamped again as it goes
/// out, so that those who catch up later get it too.
#[actix_rt::test]
async fn a_message_that_waited_past_the_store_window_is_stamped_again_and_kept() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;

    // As a message queued a minute ago would be.
    let minute_ago = murmur::core::now_nanos() - 60_000_000_000;
    let message = WakuMessage::new(topic().as_str(), b"late".to_vec()).with_timestamp(minute_ago);
    let mut sent = alice
        .publish(alice.pubsub_topic(&topic()), message)
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    let queued_as = sent.hash();

    let node = store_on(dirs[1].path(), &store_key, port).await;
    alice.dial(&store).await.unwrap();
    assert_eq!(
        sent.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_ne!(sent.hash(), queued_as, "stamped again");
    let page = alice
        .query_store(&store, Query::hashes(vec![sent.hash()]))
        .await
        .unwrap();
    let kept = page.messages[0].message.as_ref().expect("with its data");
    assert_eq!(kept.payload.as_ref(), b"late");
    assert!(kept.timestamp.unwrap() > minute_ago);
    drop(node);
}

/// Through an outage, a tick stamps again only the oldest message that
/// waited too long, and offers only it: while nobody takes it, the rest of
/// the queue is left as it is, not written again every tick.
#[actix_rt::test]
async fn through_an_outage_a_tick_stamps_again_only_the_oldest_message() {
    const QUEUED: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let store = store_addr(&Keypair::generate_secp256k1(), free_port());
    let mut alice = watched_sender(dir.path(), &store).await;
    let queued: Vec<_> = queue_late(&alice.node, QUEUED, 0)
        .await
        .iter()
        .map(|q| q.hash())
        .collect();
    moved(&mut alice.events, Moved::In, queued.iter().copied()).await;
    // The first two new entries: each from a tick of its own (5 s apart).
    let mut stamped_at = Vec::new();
    while stamped_at.len() < 2 {
        stamped_again(&mut alice.events, &queued).await;
        stamped_at.push(std::time::Instant::now());
    }
    let apart = stamped_at[1] - stamped_at[0];
    assert!(
        apart > Duration::from_secs(2),
        "two entries stamped again {apart:?} apart, in one tick"
    );
}

/// What waits through an outage goes out in the order it was sent: the
/// entry a tick stamps again keeps its turn in the outbox. Put in behind
/// the rest, the oldest went last, and store nodes, which order by stamp,
/// kept the queue rotated.
#[actix_rt::test]
async fn what_waits_through_an_outage_goes_out_in_the_order_it_was_sent() {
    const QUEUED: usize = 3;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let mut alice = watched_sender(dirs[0].path(), &store).await;
    let queued = queue_late(&alice.node, QUEUED, 1).await;
    let hashes: Vec<_> = queued.iter().map(|q| q.hash()).collect();
    moved(&mut alice.events, Moved::In, hashes.iter().copied()).await;
    // A tick of the outage stamps the oldest again.
    stamped_again(&mut alice.events, &hashes).await;

    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    alice.node.dial(&store).await.unwrap();
    let mut stamps = Vec::with_capacity(QUEUED);
    for i in 0..QUEUED {
        let got = inbox
            .recv_timeout(WAIT * 2)
            .await
            .expect("every one relayed");
        let text = String::from_utf8_lossy(&got.message.payload).into_owned();
        assert_eq!(text, format!("late {i}"), "in the order sent");
        stamps.push(got.message.timestamp.unwrap());
    }
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "stamped in the order sent: {stamps:?}"
    );
}

/// An entry whose new stamp could not be written waits, under its old
/// hash, with what is behind it; those behind it already stamped again
/// are followed to their new hashes, so that every `Publication` still
/// learns that its message went out.
#[actix_rt::test]
async fn a_stamp_not_written_holds_its_entry_and_loses_no_state() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    // The entry stamped again in place of `refused` fails to be written.
    let refused: Arc<std::sync::Mutex<Option<MessageHash>>> = Arc::default();
    let (picked, (valve_tx, valve)) = (refused.clone(), tokio::sync::oneshot::channel());
    let mut config = loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![store.parse().unwrap()];
    config.store.enabled = false;
    let alice = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .require_static_peers(false)
        .with_storage(move |config| async move {
            let db = murmur_storage::Database::open(&config.store_url()).await?;
            let inner = storage::Handle::from(murmur_storage::Storage::start(db));
            let (enqueue, valve) = murmur_test_kit::gate_some(
                inner.enqueue.clone(),
                || Err(storage::Error::Backend("refused".to_owned())),
                move |e: &storage::Enqueue| {
                    e.replaces.is_some() && e.replaces == *picked.lock().unwrap()
                },
            );
            valve.refuse();
            let _ = valve_tx.send(valve);
            Ok(storage::Handle { enqueue, ..inner })
        })
        .start()
        .await
        .unwrap();
    let valve = valve.await.unwrap();
    let mut sent = queue_late(&alice, 3, 1).await;
    *refused.lock().unwrap() = Some(sent[1].hash());
    let queued_as: Vec<_> = sent.iter().map(|s| s.hash()).collect();

    // The first goes out alone; the second's new stamp is refused, the
    // third's is written: it waits behind the second, followed.
    let _store = store_on(dirs[1].path(), &store_key, port).await;
    alice.dial(&store).await.unwrap();
    assert_eq!(sent[0].published(WAIT * 2).await, PublishState::Published);
    crate::support::eventually("the third followed to its new stamp", || async {
        sent[2].hash() != queued_as[2]
    })
    .await;
    assert_eq!(sent[1].state(), PublishState::Queued);
    assert_eq!(
        sent[2].state(),
        PublishState::Queued,
        "not ahead of the second"
    );

    valve.open();
    for s in &mut sent[1..] {
        assert_eq!(s.published(WAIT * 2).await, PublishState::Published);
    }
    assert_ne!(
        sent[1].hash(),
        queued_as[1],
        "stamped again once it could be"
    );
}

/// Messages alike in all but their stamps, stamped again together, get a
/// stamp each: one stamp for all would make them one message (one hash),
/// and the outbox would keep only one of them.
#[actix_rt::test]
async fn messages_alike_but_for_their_stamps_stay_apart_when_stamped_again() {
    const ALIKE: usize = 4;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;
    let pubsub = alice.pubsub_topic(&topic());
    let minute_ago = murmur::core::now_nanos() - 60_000_000_000;
    let mut sent = Vec::with_capacity(ALIKE);
    for i in 0..ALIKE {
        let message = WakuMessage::new(topic().as_str(), b"the same".to_vec())
            .with_timestamp(minute_ago + i64::try_from(i).unwrap());
        sent.push(alice.publish(pubsub.clone(), message).await.unwrap());
    }
    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    alice.dial(&store).await.unwrap();
    for s in &mut sent {
        assert_eq!(s.published(WAIT * 2).await, PublishState::Published);
    }
    let hashes: std::collections::HashSet<_> = sent.iter().map(|s| s.hash()).collect();
    assert_eq!(hashes.len(), ALIKE, "each under a hash of its own");
    for _ in 0..ALIKE {
        let got = inbox.recv_timeout(WAIT).await.expect("every one relayed");
        assert!(hashes.contains(&got.hash));
    }
}
