//! A raw message is durable before `send` answers: taken by the network, or
//! else in the outbox. Sent with no peer there, it waits (across a restart
//! too) and goes out once one is; once out, a store node's confirmation
//! makes it acknowledged. One the network took never enters the outbox.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix::prelude::*;
use libp2p::identity::Keypair;
use murmur::{
    core::{store::Query, ContentTopic, MessageHash, WakuMessage},
    node::{Builder, Node, PublishState},
};
use murmur_core::storage;

use crate::support::{loopback_config, WAIT};

mod stamps;

fn topic() -> ContentTopic {
    "/murmur/1/outbox/proto".parse().unwrap()
}

/// A port on loopback nobody listens on yet, for a store node started later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where a store node with `key` will listen on `port`.
fn store_addr(key: &Keypair, port: u16) -> String {
    format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        key.public().to_peer_id()
    )
}

/// A store node (archiving, serving store) on `port`.
async fn store_on(dir: &std::path::Path, key: &Keypair, port: u16) -> Node {
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    Builder::new(loopback_config(dir, &[&listen]))
        .with_keypair(key.clone())
        .start()
        .await
        .expect("store node starts")
}

/// A relay node without a store of its own, whose static peer (and store
/// node to confirm with) is `store`, reachable or not.
async fn sender(dir: &std::path::Path, key: &Keypair, store: &str) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![store.parse().unwrap()];
    config.store.enabled = false;
    Builder::new(config)
        .with_keypair(key.clone())
        .require_static_peers(false)
        .start()
        .await
        .expect("sender starts")
}

#[actix_rt::test]
async fn a_message_sent_with_no_peer_waits_goes_out_when_one_comes_and_is_acknowledged() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice = sender(dirs[0].path(), &Keypair::generate_secp256k1(), &store).await;

    // Nobody to publish to: the send answers, durable, queued.
    let mut sent = alice
        .send(&topic(), b"when you can".to_vec())
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    let queued_as = sent.hash();

    // The store node comes; the outbox's retry publishes, and the store
    // node, asked by hash, confirms it.
    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    alice.dial(&store).await.unwrap();
    assert_eq!(sent.published(WAIT).await, PublishState::Published);
    assert_eq!(
        sent.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_eq!(sent.hash(), queued_as, "sent soon enough to keep its stamp");
    let got = inbox.recv_timeout(WAIT).await.expect("relayed");
    assert_eq!(got.hash, queued_as);
    assert_eq!(got.message.payload.as_ref(), b"when you can");

    // Sent with a peer there: published at once. An ephemeral message,
    // which store nodes never keep, is not acknowledged, while one
    // published after it, asked about in the same round or later, is.
    let pubsub = alice.pubsub_topic(&topic());
    let ephemeral = WakuMessage::new(topic().as_str(), b"not kept".to_vec()).with_ephemeral(true);
    let ephemeral = alice.publish(pubsub, ephemeral).await.unwrap();
    let mut kept = alice.send(&topic(), b"kept".to_vec()).await.unwrap();
    assert_eq!(kept.state(), PublishState::Published);
    assert_eq!(
        kept.acknowledged(WAIT * 2).await,
        PublishState::Acknowledged
    );
    assert_eq!(ephemeral.state(), PublishState::Published);
}

#[actix_rt::test]
async fn a_message_queued_before_a_restart_goes_out_after_it_once() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let alice_key = Keypair::generate_secp256k1();

    let alice = sender(dirs[0].path(), &alice_key, &store).await;
    let sent = alice
        .send(&topic(), b"across a restart".to_vec())
        .await
        .unwrap();
    assert_eq!(sent.state(), PublishState::Queued);
    alice.go_offline().await.unwrap();
    drop(alice);

    let node = store_on(dirs[1].path(), &store_key, port).await;
    let mut inbox = node.subscribe([&topic()]).await.unwrap();
    let _back = sender(dirs[0].path(), &alice_key, &store).await;
    let got = inbox
        .recv_timeout(WAIT)
        .await
        .expect("sent after the restart");
    assert_eq!(got.message.payload.as_ref(), b"across a restart");
    assert!(
        inbox.recv_timeout(Duration::from_secs(1)).await.is_none(),
        "sent once"
    );
}

/// An entry the outbox's storage stage took in, or out again, by hash.
#[derive(Debug, PartialEq)]
enum Moved {
    In(MessageHash),
    Out(MessageHash),
}

/// Between the pipeline and the storage stage: hands the outbox's writes on
/// in their order, and tells of each once the stage answered it.
struct Watched {
    inner: storage::Handle,
    moved: tokio::sync::mpsc::UnboundedSender<Moved>,
    /// Entries on this file's topic asked for, answered or not (the
    /// node's own chat envelopes, its bundle among them, left out).
    asked: Arc<AtomicUsize>,
}

impl Actor for Watched {
    type Context = Context<Self>;
}

/// Answers `answer` once it came, telling `moved` first what `what` makes
/// of it if it succeeded.
fn told<T: 'static>(
    answer: impl std::future::Future<Output = Result<Result<T, storage::Error>, MailboxError>> + 'static,
    moved: tokio::sync::mpsc::UnboundedSender<Moved>,
    what: impl FnOnce(&T) -> Moved + 'static,
) -> ResponseFuture<Result<T, storage::Error>> {
    Box::pin(async move {
        let answer = answer
            .await
            .unwrap_or_else(|_| Err(storage::Error::Backend("gone".to_owned())));
        if let Ok(done) = &answer {
            let _ = moved.send(what(done));
        }
        answer
    })
}

impl Handler<storage::Enqueue> for Watched {
    type Result = ResponseFuture<Result<MessageHash, storage::Error>>;

    fn handle(&mut self, enqueue: storage::Enqueue, _: &mut Context<Self>) -> Self::Result {
        if enqueue.message.content_topic == topic().as_str() {
            self.asked.fetch_add(1, Ordering::SeqCst);
        }
        // An entry put in another's place takes that one out.
        let (replaces, moved) = (enqueue.replaces, self.moved.clone());
        told(
            self.inner.enqueue.send(enqueue),
            self.moved.clone(),
            move |hash| {
                if let Some(old) = replaces {
                    let _ = moved.send(Moved::Out(old));
                }
                Moved::In(*hash)
            },
        )
    }
}

impl Handler<storage::MarkSent> for Watched {
    type Result = ResponseFuture<Result<(), storage::Error>>;

    fn handle(&mut self, sent: storage::MarkSent, _: &mut Context<Self>) -> Self::Result {
        let hash = sent.0;
        told(
            self.inner.mark_sent.send(sent),
            self.moved.clone(),
            move |()| Moved::Out(hash),
        )
    }
}

/// A sender whose outbox writes pass a [`Watched`] stage, whose static peer
/// (and store node to confirm with) is `store`, reachable or not.
struct WatchedSender {
    node: Node,
    /// The watched stage, which keeps its mailbox's order.
    stage: Addr<Watched>,
    events: tokio::sync::mpsc::UnboundedReceiver<Moved>,
    asked: Arc<AtomicUsize>,
    metrics: murmur_storage::Metrics,
}

async fn watched_sender(dir: &std::path::Path, store: &str) -> WatchedSender {
    let metrics = murmur_storage::Metrics::default();
    let (tell, events) = tokio::sync::mpsc::unbounded_channel();
    let asked = Arc::new(AtomicUsize::new(0));
    let (hand, stage) = tokio::sync::oneshot::channel();
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![store.parse().unwrap()];
    config.store.enabled = false;
    let (counted, counter) = (metrics.clone(), asked.clone());
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .require_static_peers(false)
        .with_storage(move |config| async move {
            let db = murmur_storage::Database::open(&config.store_url()).await?;
            let inner = storage::Handle::from(murmur_storage::Storage::start_with(db, counted));
            let watched = Watched {
                inner: inner.clone(),
                moved: tell,
                asked: counter,
            }
            .start();
            let _ = hand.send(watched.clone());
            Ok(storage::Handle {
                enqueue: watched.clone().recipient(),
                mark_sent: watched.recipient(),
                ..inner
            })
        })
        .start()
        .await
        .expect("sender starts");
    WatchedSender {
        node,
        stage: stage.await.expect("the storage stage was built"),
        events,
        asked,
        metrics,
    }
}

/// Waits until every one of `hashes` moved as `kind` makes of it, letting
/// the rest pass.
async fn moved(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Moved>,
    kind: fn(MessageHash) -> Moved,
    hashes: impl IntoIterator<Item = MessageHash>,
) {
    let mut waiting: Vec<Moved> = hashes.into_iter().map(kind).collect();
    while !waiting.is_empty() {
        let event = tokio::time::timeout(WAIT * 2, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} entries did not move within {:?}",
                    waiting.len(),
                    WAIT * 2
                )
            })
            .expect("the watched stage is there");
        waiting.retain(|w| *w != event);
    }
}

/// A burst that waited in the outbox goes out, once a peer is there, with
/// its archiving (and, for those that waited too long, their new stamps)
/// in a few group writes, and leaves the outbox at the ticks
/// after in a few more: a tick's writes go to the storage stage together,
/// not one write each (a node back from an outage would take a write per
/// message to catch up, and at a relay's rate the outbox would fill faster
/// than the ticks could empty it).
#[actix_rt::test]
async fn a_burst_the_network_took_leaves_the_outbox_in_a_few_writes() {
    const BURST: usize = 300;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let mut alice = watched_sender(dirs[0].path(), &store).await;
    let mut burst = Vec::with_capacity(BURST);
    let pubsub = alice.node.pubsub_topic(&topic());
    // Every other one as if queued a minute ago: stamped again as it goes.
    let minute_ago = murmur::core::now_nanos() - 60_000_000_000;
    for i in 0..BURST {
        let message = WakuMessage::new(topic().as_str(), format!("burst {i}").into_bytes());
        let message = match i % 2 {
            0 => message.with_timestamp(murmur::core::now_nanos()),
            _ => message.with_timestamp(minute_ago),
        };
        let sent = alice.node.publish(pubsub.clone(), message).await.unwrap();
        assert_eq!(sent.state(), PublishState::Queued);
        burst.push((sent.hash(), sent));
    }
    moved(&mut alice.events, Moved::In, burst.iter().map(|(h, _)| *h)).await;

    // The store node comes; a tick publishes them all (archiving each as it
    // goes), and the ticks after take them out.
    let node = store_on(dirs[1].path(), &store_key, port).await;
    let before = alice.metrics.writes();
    alice.node.dial(&store).await.unwrap();
    for (i, (queued_as, sent)) in burst.iter_mut().enumerate() {
        assert_eq!(sent.published(WAIT * 2).await, PublishState::Published);
        // (The others keep theirs unless the retry came 10 s after them.)
        if i % 2 == 1 {
            assert_ne!(sent.hash(), *queued_as, "stamped again: {i}");
        }
    }
    let went_out_in = alice.metrics.writes() - before;
    assert!(
        went_out_in < 30,
        "{BURST} entries published and archived in {went_out_in} writes"
    );
    let before = alice.metrics.writes();
    // Every entry published (under its new hash, if stamped again).
    moved(
        &mut alice.events,
        Moved::Out,
        burst.iter().map(|(_, s)| s.hash()),
    )
    .await;
    let taken_out_in = alice.metrics.writes() - before;
    assert!(
        taken_out_in < 30,
        "{BURST} entries taken out in {taken_out_in} writes"
    );
    drop(node);
}

/// A raw message the network took at once is answered without an outbox
/// entry: at a relay's rate, an entry in and out again for each would be
/// the node's busiest work, guarding nothing its caller waits for.
#[actix_rt::test]
async fn a_raw_message_the_network_took_never_enters_the_outbox() {
    const SENT: usize = 50;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store_key, port) = (Keypair::generate_secp256k1(), free_port());
    let store = store_addr(&store_key, port);
    let _store = store_on(dirs[1].path(), &store_key, port).await;
    let alice = watched_sender(dirs[0].path(), &store).await;
    let pubsub = alice.node.pubsub_topic(&topic());
    alice.node.wait_for_peers(&pubsub, 1, WAIT).await.unwrap();
    for i in 0..SENT {
        let sent = (alice.node)
            .send(&topic(), format!("taken {i}").into_bytes())
            .await
            .unwrap();
        assert_eq!(sent.state(), PublishState::Published);
    }
    // Behind whatever the pipeline asked of the stage before the answers.
    (alice.stage)
        .send(storage::MarkSent(MessageHash([0; 32])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alice.asked.load(Ordering::SeqCst),
        0,
        "outbox entries asked for"
    );
}
