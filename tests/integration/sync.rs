//! Store sync by itself: rounds the node runs with nothing called.

use libp2p::identity::Keypair;
use murmur::node::Builder;

use crate::support::{addr, loopback_config, meshed_for, WAIT};

/// A store node that serves no filter: a light client of it receives
/// nothing but what its own store-sync rounds fetch.
async fn store_without_filter(dir: &std::path::Path) -> murmur::node::Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.filter = false;
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("the store node starts")
}

/// A node of `store` that runs a store round every second, as `edit`
/// makes it.
async fn every_second(
    dir: &std::path::Path,
    store: &murmur::node::Node,
    edit: impl FnOnce(&mut murmur::node::Config),
) -> murmur::node::Node {
    let key = Keypair::generate_secp256k1();
    crate::support::keyed_node(dir, &key, Some(store), |config| {
        config.store.sync_interval_secs = 1;
        edit(config);
    })
    .await
}

#[actix_rt::test]
async fn periodic_rounds_bring_what_nothing_else_would() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_without_filter(&dir.path().join("store")).await;
    let carol = every_second(&dir.path().join("carol"), &store, |config| {
        config.network.light = true;
    })
    .await;
    let mut inbox = carol.inbox().await.unwrap();
    let carol_id = crate::support::account(&carol).await;
    let carol_code = carol.contact_code().await.unwrap();

    let dave = crate::support::chat_node(&dir.path().join("dave"), Some(&store)).await;
    dave.add_contact(&carol_code).await.unwrap();
    meshed_for(&dave, carol_id).await;
    // Each text reaches Carol only through a round: the first may come
    // with the one at start, the later ones only with periodic rounds.
    for i in 0..3 {
        let text = format!("only through the store, {i}");
        dave.conversation(carol_id)
            .send_text(text.clone())
            .await
            .unwrap();
        let got = inbox
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("not fetched: {text}"));
        assert_eq!(got.text(), Some(text.as_str()));
    }
    assert!(
        carol.status().await.unwrap().topics.is_empty(),
        "a light node relays nothing"
    );
}

#[actix_rt::test]
async fn a_new_connection_brings_a_round() {
    // As above, a light node of a store that pushes nothing; its periodic
    // rounds are five minutes apart, so only the round at start and the
    // one a new connection brings can fetch anything here.
    let dir = tempfile::tempdir().unwrap();
    let store = store_without_filter(&dir.path().join("store")).await;
    let carol_key = Keypair::generate_secp256k1();
    let carol_config = |peers: Vec<String>| {
        let mut config = loopback_config(&dir.path().join("carol"), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.peers = peers.iter().map(|p| p.parse().unwrap()).collect();
        config.network.light = true;
        config.store.sync_interval_secs = 300;
        config
    };
    // Carol's device is set up, then away while Dave writes.
    let away = Builder::new(carol_config(Vec::new()))
        .with_keypair(carol_key.clone())
        .start()
        .await
        .unwrap();
    let carol_id = crate::support::account(&away).await;
    let carol_code = away.contact_code().await.unwrap();
    drop(away);
    let dave = crate::support::chat_node(&dir.path().join("dave"), Some(&store)).await;
    dave.add_contact(&carol_code).await.unwrap();
    meshed_for(&dave, carol_id).await;
    let to_carol = dave.conversation(carol_id);
    to_carol
        .send_text("before you came back".to_owned())
        .await
        .unwrap();
    let partition = crate::support::partition_topic_of(carol_id);
    crate::support::stored(&dave, &addr(&store, false), &partition, 1).await;

    // Back: the round at start brings the first.
    let carol = Builder::new(carol_config(vec![addr(&store, false)]))
        .with_keypair(carol_key)
        .start()
        .await
        .unwrap();
    let mut inbox = carol.inbox().await.unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("the round at start");
    assert_eq!(got.text(), Some("before you came back"));

    // The second comes with the round a new connection brings (at least
    // 30 s after the last round).
    to_carol.send_text("after".to_owned()).await.unwrap();
    crate::support::stored(&dave, &addr(&store, false), &partition, 2).await;
    carol.dial(&addr(&dave, false)).await.unwrap();
    let got = inbox
        .recv_timeout(std::time::Duration::from_secs(60))
        .await
        .expect("the round a new connection brings");
    assert_eq!(got.text(), Some("after"));
}

/// Store queries on their way to the transport: the first `after` go
/// through, the next waits until the test resumes it (a catch-up stopped
/// in the middle of its pages).
struct Pause {
    inner: actix::Recipient<murmur::core::transport::QueryStore>,
    after: usize,
    passed: usize,
    reached: tokio::sync::watch::Sender<bool>,
    resume: tokio::sync::watch::Receiver<bool>,
}

impl actix::Actor for Pause {
    type Context = actix::Context<Self>;
}

impl actix::Handler<murmur::core::transport::QueryStore> for Pause {
    type Result =
        actix::ResponseFuture<Result<murmur::core::store::Page, murmur::core::transport::Error>>;

    fn handle(
        &mut self,
        query: murmur::core::transport::QueryStore,
        _: &mut actix::Context<Self>,
    ) -> Self::Result {
        self.passed += 1;
        let wait = (self.passed > self.after).then(|| {
            self.reached.send_replace(true);
            self.resume.clone()
        });
        let inner = self.inner.clone();
        Box::pin(async move {
            if let Some(mut resume) = wait {
                let _ = resume.wait_for(|r| *r).await;
            }
            inner
                .send(query)
                .await
                .unwrap_or(Err(murmur::core::transport::Error::Stopped))
        })
    }
}

#[actix_rt::test]
async fn a_store_node_killed_while_a_light_client_catches_up_loses_nothing() {
    use actix::Actor as _;
    // Three pages of store sync's (100 each).
    const SENT: usize = 250;
    let dir = tempfile::tempdir().unwrap();
    let first = crate::support::chat_node(&dir.path().join("first"), None).await;
    let second = crate::support::chat_node(&dir.path().join("second"), Some(&first)).await;
    let dave = crate::support::chat_node(&dir.path().join("dave"), Some(&first)).await;
    let carol_key = Keypair::generate_secp256k1();
    let carol_config = || {
        let mut config = loopback_config(&dir.path().join("carol"), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.peers = [&first, &second]
            .iter()
            .map(|s| addr(s, false).parse().unwrap())
            .collect();
        config.network.light = true;
        config
    };
    // Carol's device exists, then goes away while Dave writes.
    let carol = Builder::new(carol_config())
        .with_keypair(carol_key.clone())
        .start()
        .await
        .unwrap();
    let carol_id = crate::support::account(&carol).await;
    dave.add_contact(&carol.contact_code().await.unwrap())
        .await
        .unwrap();
    carol.go_offline().await.unwrap();
    drop(carol);
    meshed_for(&dave, carol_id).await;
    for i in 0..SENT {
        dave.conversation(carol_id)
            .send_text(format!("while away {i}"))
            .await
            .unwrap();
    }
    let topic = crate::support::partition_topic_of(carol_id);
    for store in [&first, &second] {
        let store = addr(store, false);
        crate::support::eventually("both stores hold every message", || async {
            let mut query = murmur::core::store::Query::content(
                Some(dave.pubsub_topic(&topic)),
                vec![topic.as_str().to_owned()],
            )
            .with_limit(murmur::core::store::MAX_PAGE);
            let mut held = 0;
            loop {
                let Ok(page) = dave.query_store(&store, query.clone()).await else {
                    return false;
                };
                held += page.messages.len();
                match page.cursor {
                    Some(cursor) => query = query.with_cursor(Some(cursor)),
                    None => return held >= SENT,
                }
            }
        })
        .await;
    }

    // Back: its first round reads two pages from the first store, which
    // dies before the third.
    let (reached, mut paused) = tokio::sync::watch::channel(false);
    let (resume, resumed) = tokio::sync::watch::channel(false);
    let carol = Builder::new(carol_config())
        .with_keypair(carol_key)
        .with_sync(move |cx| async move {
            let query = Pause {
                inner: cx.query_store,
                after: 2,
                passed: 0,
                reached,
                resume: resumed,
            }
            .start()
            .recipient();
            let stage = murmur_sync::StoreSync::start(query, cx.inbound, cx.stores, cx.storage);
            Ok(murmur::core::sync::Handle::from(stage))
        })
        .start()
        .await
        .unwrap();
    let mut inbox = carol.durable_inbox("app").await.unwrap();
    tokio::time::timeout(WAIT, paused.wait_for(|p| *p))
        .await
        .expect("the catch-up reaches its third page")
        .unwrap();
    first.go_offline().await.unwrap();
    let killed = std::time::Instant::now();
    resume.send_replace(true);

    let mut texts = std::collections::BTreeSet::new();
    while texts.len() < SENT {
        let entry = tokio::time::timeout(WAIT, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {SENT} caught up", texts.len()))
            .unwrap();
        let text = entry.message.text().unwrap().to_owned();
        assert!(texts.insert(text.clone()), "handed twice: {text}");
    }
    for i in 0..SENT {
        assert!(texts.contains(&format!("while away {i}")));
    }
    // docs/benchmarks.md quotes it.
    eprintln!(
        "a store node gone mid catch-up: all {SENT} in the inbox {:?} later",
        killed.elapsed()
    );
}

/// A light client given one service node that keeps no store finds a store
/// node through it (peer exchange: the service node knows the store node's
/// record) and catches up from there.
#[actix_rt::test]
async fn a_light_client_finds_a_store_node_by_peer_exchange_and_catches_up_from_it() {
    const SENT: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let store = crate::support::chat_node(&dir.path().join("store"), None).await;
    let mut config = loopback_config(&dir.path().join("service"), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&store, false).parse().unwrap()];
    config.network.bootstrap_enrs = vec![store.enr().expect("a record").to_owned()];
    config.store.enabled = false;
    let service = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    let dave = crate::support::chat_node(&dir.path().join("dave"), Some(&store)).await;
    let carol_key = Keypair::generate_secp256k1();
    let carol_config = || {
        let mut config = loopback_config(&dir.path().join("carol"), &["/ip4/127.0.0.1/tcp/0"]);
        config.network.peers = vec![addr(&service, false).parse().unwrap()];
        config.network.light = true;
        config
    };
    let carol = Builder::new(carol_config())
        .with_keypair(carol_key.clone())
        .start()
        .await
        .unwrap();
    let carol_id = crate::support::account(&carol).await;
    dave.add_contact(&carol.contact_code().await.unwrap())
        .await
        .unwrap();
    carol.go_offline().await.unwrap();
    drop(carol);
    crate::support::send_while_away(&dave, carol_id, &store, SENT).await;

    // Back: its only static peer has no store; the round at start asks the
    // store node that peer told it of.
    let carol = Builder::new(carol_config())
        .with_keypair(carol_key)
        .start()
        .await
        .unwrap();
    let mut inbox = carol.durable_inbox("app").await.unwrap();
    crate::support::caught_up(&carol, &mut inbox, SENT).await;
}

/// What a store node returns comes a page at a time (`FetchedPage`) and is
/// archived as one request: each message enters once, in the page's order,
/// whether it came twice in one page, in an earlier page, or in both; the
/// archive holds each once, also beside one in its page that it cannot
/// hold. A store node may return anything, so the test hands the node's own
/// pipeline pages as a store-sync stage would.
#[actix_rt::test]
async fn a_fetched_page_enters_once_in_its_order() {
    use murmur::core::{transport::Event, Delivery, WakuMessage};
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let node = Builder::new(loopback_config(dir.path(), &["/ip4/127.0.0.1/tcp/0"]))
        .with_keypair(Keypair::generate_secp256k1())
        .with_sync(move |cx| async move {
            let _ = tx.send(cx.inbound.clone());
            let stage =
                murmur_sync::StoreSync::start(cx.query_store, cx.inbound, cx.stores, cx.storage);
            Ok(murmur::core::sync::Handle::from(stage))
        })
        .start()
        .await
        .unwrap();
    let inbound = rx.await.unwrap();
    let topic: murmur::core::ContentTopic = "/murmur/1/pages/proto".parse().unwrap();
    let mut inbox = node.subscribe([&topic]).await.unwrap();
    let pubsub = node.pubsub_topic(&topic);
    let message = |text: &str| {
        let message = WakuMessage::new(topic.as_str(), text.as_bytes().to_vec())
            .with_timestamp(murmur::core::now_nanos());
        Delivery::new(pubsub.clone(), message)
    };
    let (a, b, c) = (message("a"), message("b"), message("c"));
    inbound
        .send(Event::FetchedPage(vec![a.clone(), b.clone(), a.clone()]))
        .await
        .unwrap();
    inbound
        .send(Event::FetchedPage(vec![b.clone(), c.clone(), a.clone()]))
        .await
        .unwrap();
    // Then one more: anything handed on twice would come before it.
    let d = message("d");
    inbound
        .send(Event::FetchedPage(vec![d.clone()]))
        .await
        .unwrap();
    // A page with one message no archive takes (a NUL in its topic, which
    // PostgreSQL refuses; murmur's store clients drop such entries, another
    // transport may not): the others are archived all the same, in one
    // request.
    let (e, f) = (message("e"), message("f"));
    let unstorable = WakuMessage::new("/murmur/1/pa\0ges/proto", b"nul".to_vec())
        .with_timestamp(murmur::core::now_nanos());
    let unstorable = Delivery::new(pubsub.clone(), unstorable);
    inbound
        .send(Event::FetchedPage(vec![e.clone(), unstorable, f.clone()]))
        .await
        .unwrap();
    for expected in [&a, &b, &c, &d, &e, &f] {
        let got = inbox.recv_timeout(WAIT).await.expect("a fetched message");
        assert_eq!(got.hash, expected.hash, "in the pages' order, each once");
    }
    let query = murmur::core::store::Query::content(Some(pubsub), vec![topic.as_str().to_owned()]);
    let archived = node.query_archive(query).await.unwrap();
    assert_eq!(archived.messages.len(), 6, "each archived once");
    assert_eq!(node.stats().await.unwrap().duplicates, 3);
}

/// A node that archives nothing has no archive to say whether what a store
/// round brings is new, and every round asks again for the two minutes
/// before where the last one left off: what it handed on once in this run
/// it does not hand on again.
#[actix_rt::test]
async fn a_node_that_archives_nothing_hands_on_what_rounds_bring_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::support::start_node(&dir.path().join("store")).await;
    let carol = every_second(&dir.path().join("carol"), &store, |config| {
        config.store.archive = false;
    })
    .await;
    let topic: murmur::core::ContentTopic = "/murmur/1/rounds-again/proto".parse().unwrap();
    let mut subscription = carol.subscribe([&topic]).await.unwrap();
    store
        .wait_for_peers(&store.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    store.send(&topic, b"once".to_vec()).await.unwrap();
    let got = subscription.recv_timeout(WAIT).await.expect("delivered");
    assert_eq!(got.message.payload.as_ref(), b"once");

    // Two rounds that bring it again (each asks for the two minutes
    // before where the last left off), handled before anything that comes
    // after them; then a message that comes after.
    for _ in 0..2 {
        assert!(carol.sync_now().await.unwrap() >= 1, "the round brought it");
    }
    store.send(&topic, b"after".to_vec()).await.unwrap();
    let next = subscription.recv_timeout(WAIT).await.expect("delivered");
    assert_eq!(next.message.payload.as_ref(), b"after", "handed on again");
}
