//! Public entry points flooded past their bounds: what waits for room loses
//! nothing, what is refused is refused at once and counted.
//!
//! - 4,500 sends at once into one node (past the pipeline's mailbox of
//!   4,096, its background queue of 1,024, the transport's mailbox and
//!   command channel of 1,024 each) are all published and all archived;
//! - chat messages past the chat queue (`chat.queue`) all open, in order;
//! - a relay node forwards nothing it has not archived;
//! - relay messages past the swarm's work bound (`network.max_tasks`) are
//!   let go and counted, and a request then fails at once with `Busy`.

use std::time::Duration;

use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::identity::Keypair;
use murmur::{
    core::{store::Query, transport, ContentTopic},
    node::{Builder, Config, Node},
};

use crate::gate::{gated_archive, gated_open};
use crate::support::{
    addr, chat_node, eventually, loopback_config, partition_topic_of, peer_of, start_node, WAIT,
};

/// Past every bound of murmur's own on the way out, and under gossipsub's
/// per-peer send queue (5,000): past that one a publish fails at once with
/// `Busy` when the peer reads slower than the node publishes, which is the
/// network's back-pressure, not murmur's.
const FLOOD: usize = 4_500;

#[actix_rt::test]
async fn a_flood_of_sends_is_published_and_archived_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&dir.path().join("node")).await;
    let peer = peer_of(&dir.path().join("peer"), &node, false).await;
    let topic: ContentTopic = "/murmur/1/flood/proto".parse().unwrap();
    let _at_peer = peer.subscribe([&topic]).await.unwrap();
    node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();

    let mut sends: FuturesUnordered<_> = (0..FLOOD)
        .map(|i| node.send(&topic, format!("flood {i}").into_bytes()))
        .collect();
    let mut published = 0;
    while let Some(sent) = sends.next().await {
        sent.expect("published, after waiting for room");
        published += 1;
    }
    assert_eq!(published, FLOOD);

    // The sender's own archive holds every one (it archives what it
    // publishes, whether beside its mailbox or in the caller's wait).
    let mut archived = 0;
    let mut query = Query::content(
        Some(node.pubsub_topic(&topic)),
        vec![topic.as_str().to_owned()],
    )
    .with_limit(100);
    loop {
        let page = peer
            .query_store(&addr(&node, false), query.clone())
            .await
            .unwrap();
        archived += page.messages.len();
        match page.cursor {
            Some(c) => query = query.with_cursor(Some(c)),
            None => break,
        }
    }
    assert_eq!(archived, FLOOD, "every published message is in the archive");
}

#[actix_rt::test]
async fn chat_past_its_queue_waits_and_opens_every_message_in_order() {
    const QUEUE: usize = 8;
    const SENT: usize = 5 * QUEUE;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = chat_node(dirs[0].path(), None).await;
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    config.chat.queue = QUEUE;
    let (bob, mut valve) = gated_open(config).await;
    let bob_id = alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let mut inbox = bob.inbox().await.unwrap();
    let dm = partition_topic_of(bob_id);
    alice
        .wait_for_peers(&alice.pubsub_topic(&dm), 1, WAIT)
        .await
        .unwrap();

    let conversation = alice.conversation(bob_id);
    for i in 0..SENT {
        conversation.send_text(format!("m{i}")).await.unwrap();
    }
    // The first is held being opened; the queue behind it fills, and the
    // pipeline waits with the rest.
    valve.holding(1).await;
    valve.open();
    for i in 0..SENT {
        let got = inbox.recv_timeout(WAIT).await.expect("every message opens");
        assert_eq!(got.text(), Some(format!("m{i}").as_str()), "in order");
    }
    let stats = bob.stats().await.unwrap();
    assert!(
        stats.chat_queue_full > 0,
        "{SENT} messages behind one held must have found the queue of {QUEUE} full"
    );
    assert_eq!(stats.chat_refused, 0);
}

#[actix_rt::test]
async fn relay_past_the_work_bound_is_counted_and_a_request_is_busy_at_once() {
    const MAX_TASKS: usize = 4;
    const SENT: usize = 20;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = start_node(dirs[0].path()).await;
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    config.network.max_tasks = MAX_TASKS;
    config.chat.enabled = false;
    let (bob, mut valve) = gated_archive(config).await;
    let topic: ContentTopic = "/murmur/1/flood-relay/proto".parse().unwrap();
    let mut at_bob = bob.subscribe([&topic]).await.unwrap();
    for node in [&alice, &bob] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }

    let mut sent = std::collections::BTreeSet::new();
    for i in 0..SENT {
        sent.insert(
            alice
                .send(&topic, format!("r{i}").into_bytes())
                .await
                .unwrap()
                .hash(),
        );
    }
    // Four are being archived (held at the gate, in one request or in
    // several: what one poll of the swarm brought goes together); the rest
    // are let go, unforwarded, and counted.
    valve.holding(1).await;
    let dropped = || bob.transport_metrics().dropped() as usize;
    eventually("the messages past the bound are counted", || async {
        dropped() + MAX_TASKS >= SENT
    })
    .await;
    let query = Query::content(
        Some(alice.pubsub_topic(&topic)),
        vec![topic.as_str().to_owned()],
    );
    let err = bob
        .query_store(&addr(&alice, false), query.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, murmur::node::Error::Send(transport::Error::Busy)),
        "a request while the bound is full fails at once: {err}"
    );

    valve.open();
    let mut delivered = std::collections::BTreeSet::new();
    while delivered.len() + dropped() < SENT {
        let got = at_bob
            .recv_timeout(WAIT)
            .await
            .expect("the held ones arrive");
        assert!(sent.contains(&got.hash), "only what was sent");
        delivered.insert(got.hash);
    }
    assert_eq!(delivered.len(), MAX_TASKS);
    assert_eq!(
        delivered.len() + dropped(),
        SENT,
        "each one delivered or counted"
    );
    // The bound has room again.
    bob.query_store(&addr(&alice, false), query)
        .await
        .expect("answered once the work in flight is done");
}

/// A relay node forwards only what it has archived: while its archive is
/// held, the peer behind it gets nothing; once the archive answers, the
/// message goes on.
#[actix_rt::test]
async fn a_relay_node_forwards_nothing_it_has_not_archived() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    // Chat off everywhere: the only relay message is the one sent, so the
    // request held at bob's gate is it.
    let no_chat = |dir: &std::path::Path, peer: Option<&Node>| {
        let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
        config.network.peers = peer
            .map(|p| vec![addr(p, false).parse().unwrap()])
            .unwrap_or_default();
        config.chat.enabled = false;
        config
    };
    let alice = start_with(no_chat(dirs[0].path(), None)).await;
    let (bob, mut valve) = gated_archive(no_chat(dirs[1].path(), Some(&alice))).await;
    // Carol knows only bob: what she gets, bob forwarded.
    let carol = start_with(no_chat(dirs[2].path(), Some(&bob))).await;
    let topic: ContentTopic = "/murmur/1/held-forward/proto".parse().unwrap();
    let mut at_carol = carol.subscribe([&topic]).await.unwrap();
    let shard = bob.pubsub_topic(&topic);
    bob.wait_for_peers(&shard, 2, WAIT).await.unwrap();
    for node in [&alice, &carol] {
        node.wait_for_peers(&shard, 1, WAIT).await.unwrap();
    }

    let hash = alice
        .send(&topic, b"held at bob".to_vec())
        .await
        .unwrap()
        .hash();
    valve.holding(1).await;
    assert!(
        at_carol
            .recv_timeout(Duration::from_secs(1))
            .await
            .is_none(),
        "bob forwarded a message before archiving it"
    );
    valve.open();
    let got = at_carol
        .recv_timeout(WAIT)
        .await
        .expect("forwarded once archived");
    assert_eq!(got.hash, hash);
}

async fn start_with(config: Config) -> Node {
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("node starts")
}
