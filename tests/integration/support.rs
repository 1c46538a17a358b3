//! Helpers shared by the integration tests.

use std::{path::PathBuf, time::Duration};

use libp2p::identity::Keypair;
use murmur::node::{Builder, Config, Node};

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A node config on loopback ports chosen by the system, its data in `dir`.
pub(crate) fn loopback_config(dir: &std::path::Path, listen: &[&str]) -> Config {
    let mut config = Config::new(dir);
    config.network.listen = listen.iter().map(|a| a.parse().unwrap()).collect();
    config
}

/// A node on loopback TCP with `key`, `peer` its static peer, its config
/// changed by `edit` first.
pub(crate) async fn keyed_node(
    dir: &std::path::Path,
    key: &Keypair,
    peer: Option<&Node>,
    edit: impl FnOnce(&mut Config),
) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    edit(&mut config);
    Builder::new(config)
        .with_keypair(key.clone())
        .start()
        .await
        .unwrap()
}

/// Starts a libp2p node on loopback TCP and WebSocket.
pub(crate) async fn start_node(dir: &std::path::Path) -> Node {
    Builder::new(loopback_config(
        dir,
        &["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"],
    ))
    .with_keypair(Keypair::generate_secp256k1())
    .start()
    .await
    .expect("node starts")
}

/// The first listen address whose transport is `/ws` (or not).
pub(crate) fn addr(node: &Node, websocket: bool) -> String {
    node.listen_addrs()
        .iter()
        .find(|a| a.contains("/ws/") == websocket)
        .cloned()
        .expect("the node listens on that transport")
}

pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// A node on loopback TCP whose only static peer is `service`; a light client
/// of it if `light`.
pub(crate) async fn peer_of(dir: &std::path::Path, service: &Node, light: bool) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(service, false).parse().unwrap()];
    config.network.light = light;
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap()
}

/// A node on loopback TCP, its only static peer `peer` (if any).
pub(crate) async fn chat_node(dir: &std::path::Path, peer: Option<&Node>) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    if let Some(peer) = peer {
        config.network.peers = vec![addr(peer, false).parse().unwrap()];
    }
    Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .expect("node starts")
}

/// `a` adds `b`'s contact code and `b` adds `a`'s, as two people who
/// exchanged codes: each accepts the other. Answers `b`'s account.
pub(crate) async fn befriend(a: &Node, b: &Node) -> murmur::node::chat::AccountId {
    b.add_contact(&a.contact_code().await.unwrap())
        .await
        .unwrap();
    a.add_contact(&b.contact_code().await.unwrap())
        .await
        .unwrap()
}

/// Waits until `node` has a peer on the shard of `account`'s partition.
pub(crate) async fn meshed_for(node: &Node, account: murmur::node::chat::AccountId) {
    let topic = partition_topic_of(account);
    node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
        .await
        .expect("a peer on the shard");
}

/// The value of the sample `name` (with its labels) that `node` serves
/// on `/metrics`, 0 if absent.
pub(crate) async fn metric(node: &Node, name: &str) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `node`'s chat account.
pub(crate) async fn account(node: &Node) -> murmur::node::chat::AccountId {
    node.chat_identity().await.unwrap().0
}

/// Waits until `sent` is acknowledged by `devices` devices of its
/// recipient.
pub(crate) async fn acknowledged_by(sent: &murmur::node::chat::Sent, devices: usize) {
    let mut state = sent.watch();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| *s == murmur::node::chat::DeliveryState::Acknowledged { devices }),
    )
    .await
    .unwrap_or_else(|_| panic!("not acknowledged by {devices} devices within {WAIT:?}"))
    .unwrap();
}

/// Pairs `device` with `primary`, its account's first device; answers
/// once `device` is a device of that account.
pub(crate) async fn pair(device: &Node, primary: &Node) {
    let joined = account(primary).await;
    device
        .pair(&primary.pairing_code().await.unwrap())
        .await
        .unwrap();
    eventually("the device joins the account", || async {
        account(device).await == joined
    })
    .await;
}

/// The next message in `inbox` sent in a group (`group`, or any).
pub(crate) async fn next_in_group(
    inbox: &mut murmur::node::chat::Inbox,
    group: Option<murmur::node::chat::GroupId>,
    what: &str,
) -> murmur::node::chat::ChatMessage {
    loop {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("no message within {WAIT:?}: {what}"));
        if m.group.is_some() && (group.is_none() || m.group == group) {
            return m;
        }
    }
}

/// Waits until `node`'s copy of `group` has `members` members.
pub(crate) async fn members(node: &Node, group: &murmur::node::chat::Group, members: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(info) = node.group(group.id()).info().await {
            if info.members.len() == members {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never reached {members} members"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it holds, at most [`WAIT`]: for state that has no
/// event to wait on.
pub(crate) async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, WAIT, check).await;
}

/// [`eventually`], at most `wait`: for what runs on timers of its own
/// longer than [`WAIT`] allows for when the machine is loaded.
pub(crate) async fn eventually_within<F, Fut>(what: &str, wait: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + wait;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the store node at `store` holds at least `n` messages on
/// `topic`, asking through `node`.
pub(crate) async fn stored(node: &Node, store: &str, topic: &murmur::core::ContentTopic, n: usize) {
    eventually("the store holds the messages", || async {
        let query = murmur::core::store::Query::content(
            Some(node.pubsub_topic(topic)),
            vec![topic.as_str().to_owned()],
        );
        node.query_store(store, query)
            .await
            .is_ok_and(|page| page.messages.len() >= n)
    })
    .await;
}

/// The content topic where `account`'s devices read (the default 64
/// partitions).
pub(crate) fn partition_topic_of(
    account: murmur::node::chat::AccountId,
) -> murmur::core::ContentTopic {
    murmur::node::crypto::partition_topic(murmur::crypto::envelope::partition(
        &murmur::crypto::AccountId(account.0),
        64,
    ))
}

/// A node whose only static peer is `store`, a light client of it if
/// `light`, that catches up only when the test asks.
pub(crate) async fn away_node(
    dir: &std::path::Path,
    key: &Keypair,
    store: &Node,
    light: bool,
) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(store, false).parse().unwrap()];
    config.network.light = light;
    config.store.sync_interval_secs = 0;
    Builder::new(config)
        .with_keypair(key.clone())
        .start()
        .await
        .unwrap()
}

/// `from` sends `n` texts ("while away 0", …) to `to`, and waits until the
/// store node at `store` holds them.
pub(crate) async fn send_while_away(
    from: &Node,
    to: murmur::node::chat::AccountId,
    store: &Node,
    n: usize,
) {
    meshed_for(from, to).await;
    for i in 0..n {
        from.conversation(to)
            .send_text(format!("while away {i}"))
            .await
            .unwrap();
    }
    stored(from, &addr(store, false), &partition_topic_of(to), n).await;
}

/// Reads `inbox` until `n` different texts came; answers them. If nothing
/// comes for a while, `node` runs another store-sync round: a message can
/// reach the store node a moment after the round that was to bring it
/// (seen once in CI beside a release build: 4 of 5 came).
pub(crate) async fn caught_up(
    node: &Node,
    inbox: &mut murmur::node::Durable,
    n: usize,
) -> std::collections::BTreeSet<String> {
    let mut texts = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while texts.len() < n {
        if tokio::time::Instant::now() >= deadline {
            // What the node and the subscriber counted says where the rest
            // went (refused, duplicates, held, passed over): the failure is
            // rare, and its run may be the only one there is to read. Asked
            // with a limit, so that a stuck node fails rather than hangs.
            let stats = tokio::time::timeout(WAIT / 4, node.stats()).await;
            panic!(
                "{} of {n} caught up; passed over by the subscriber: {}; the node's counters: {stats:?}",
                texts.len(),
                inbox.lost(),
            );
        }
        match tokio::time::timeout(WAIT / 4, inbox.recv()).await {
            Ok(entry) => {
                let entry = entry.unwrap();
                texts.insert(entry.message.text().unwrap().to_owned());
            }
            Err(_) => {
                let _ = node.sync_now().await;
            }
        }
    }
    texts
}
