//! Four nodes split into two halves for 60 s while both sides send, 1:1
//! and in a group, then healed: every message reaches every member it was
//! for, once. Each half is two nodes connected directly; the halves meet
//! only through TCP links this test runs on loopback, which it cuts (every
//! connection through them dropped, every new one refused) and heals.
//! Nothing is asked by hand: what crosses after the heal comes from the
//! store-sync rounds that a new connection brings. The time the network
//! took to converge is printed (docs/benchmarks.md, "Partition").

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur::node::{
    chat::{AccountId, ChatMessage, Inbox},
    Builder, Node,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

use crate::support::{account, addr, befriend, loopback_config, members};

/// How long the halves are apart.
const SPLIT: Duration = Duration::from_secs(60);
/// How often each node sends, while they are apart.
const EVERY: Duration = Duration::from_secs(10);
/// How long the network may take to converge after the heal: the static
/// peers' redial backoff reaches 60 s during the split, and a round for a
/// new connection waits up to 30 s after the last one.
const CONVERGE: Duration = Duration::from_secs(150);

/// A TCP link between the halves: forwards to its target while open.
struct Link {
    port: u16,
    target: watch::Sender<Option<SocketAddr>>,
    open: watch::Sender<bool>,
}

impl Link {
    async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (target, targets) = watch::channel(None::<SocketAddr>);
        let (open, opened) = watch::channel(true);
        actix::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (Some(to), true) = (*targets.borrow(), *opened.borrow()) else {
                    // Cut (or not wired yet): refused.
                    continue;
                };
                let mut cut = opened.clone();
                actix::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Self { port, target, open }
    }

    /// The address a node dials to reach `peer` through this link.
    fn to(&self, peer: &Keypair) -> String {
        format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            self.port,
            peer.public().to_peer_id()
        )
    }

    /// Forwards to `node` from now on.
    fn wire(&self, node: &Node) {
        let address = addr(node, false);
        let port: u16 = address.split('/').nth(4).unwrap().parse().unwrap();
        self.target
            .send_replace(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }
}

/// A node with `key`, whose static peers (and store nodes) are `peers`,
/// running a store-sync round every `sync` (and at start, and on every new
/// connection).
async fn start(dir: &std::path::Path, key: &Keypair, peers: Vec<String>, sync: Duration) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = peers.iter().map(|p| p.parse().unwrap()).collect();
    config.store.sync_interval_secs = sync.as_secs();
    Builder::new(config)
        .with_keypair(key.clone())
        // A link not wired yet refuses: redialled with backoff.
        .require_static_peers(false)
        .start()
        .await
        .unwrap()
}

/// Reads `inbox` until every text in `expected` came; fails on one that
/// comes twice, or was never sent to it.
async fn receive_all(
    name: &str,
    inbox: &mut Inbox,
    mut expected: BTreeSet<String>,
    until: Instant,
) {
    while !expected.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let Some(message) = inbox.recv_timeout(left).await else {
            panic!("{name} never got {expected:?}");
        };
        let text = text_of(&message);
        assert!(
            expected.remove(&text),
            "{name} got {text}, twice or never sent to it"
        );
    }
}

fn text_of(message: &ChatMessage) -> String {
    message.text().unwrap_or_default().to_owned()
}

#[actix_rt::test]
async fn four_nodes_split_in_two_for_a_minute_converge_once_healed() {
    split_and_heal(Speak::Everyone, Heal::Everywhere).await;
}

/// The same, where only the group's creator has written in it before the
/// split: the other members' chain keys were handed over when they joined,
/// and no message has shown yet that each reached every member (a key on
/// its way when the links were cut comes only after the heal, perhaps
/// after that member's last message).
#[actix_rt::test]
async fn members_who_never_wrote_before_the_split_are_read_once_healed() {
    split_and_heal(Speak::Creator, Heal::Everywhere).await;
}

/// Healed through one bridge only (a and c meet again; b and d never do):
/// c's store-sync round fetches from a what the other half sent, and d,
/// whose store nodes are c and the unreachable b, finds it at c in its
/// next periodic round, though those messages' times are long before where
/// d left c. The same for b through a.
#[actix_rt::test]
async fn a_partition_healed_through_one_bridge_converges_through_it() {
    split_and_heal(Speak::Creator, Heal::OneBridge).await;
}

/// Who writes in the group before the split.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Speak {
    /// Each member, and each message reaches every other.
    Everyone,
    /// Only the creator.
    Creator,
}

/// Which links come back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Heal {
    /// Both.
    Everywhere,
    /// a and c's only: b and d stay apart, and send each other nothing
    /// 1:1 (it would reach a's archive only, on d's topic, which no store
    /// node d asks holds: store nodes do not sync their archives with each
    /// other here).
    OneBridge,
}

/// Four nodes, one group; split for [`SPLIT`] while all send; healed.
async fn split_and_heal(speak: Speak, heal: Heal) {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .try_init();
    }
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let keys = [(); 4].map(|_| Keypair::generate_secp256k1());
    let [a_key, b_key, c_key, d_key] = &keys;
    // a <-> c and b <-> d cross between the halves {a, b} and {c, d}.
    let (a_c, c_a, b_d, d_b) = (
        Link::new().await,
        Link::new().await,
        Link::new().await,
        Link::new().await,
    );
    // Through one bridge, only the periodic round reaches the store node
    // that got the other side's messages late.
    let sync = match heal {
        Heal::Everywhere => Duration::from_secs(300),
        Heal::OneBridge => Duration::from_secs(10),
    };
    let a = start(dirs[0].path(), a_key, vec![a_c.to(c_key)], sync).await;
    c_a.wire(&a);
    let c = start(dirs[2].path(), c_key, vec![c_a.to(a_key)], sync).await;
    a_c.wire(&c);
    let b = start(
        dirs[1].path(),
        b_key,
        vec![addr(&a, false), b_d.to(d_key)],
        sync,
    )
    .await;
    d_b.wire(&b);
    let d = start(
        dirs[3].path(),
        d_key,
        vec![addr(&c, false), d_b.to(b_key)],
        sync,
    )
    .await;
    b_d.wire(&d);
    let nodes = [&a, &b, &c, &d];
    let names = ["a", "b", "c", "d"];

    // Everyone knows everyone; one group of the four.
    let mut accounts = Vec::new();
    for n in nodes {
        accounts.push(account(n).await);
    }
    tracing::info!(?names, ?accounts, "who is who");
    for (i, x) in nodes.iter().enumerate() {
        for y in &nodes[i + 1..] {
            befriend(x, y).await;
        }
    }
    let group = a.create_group("halves").await.unwrap();
    for other in &accounts[1..] {
        group.add(*other).await.unwrap();
    }
    for n in nodes {
        members(n, &group, 4).await;
    }
    let mut inboxes = Vec::new();
    for n in nodes {
        inboxes.push(n.inbox().await.unwrap());
    }
    // The group works across the halves before the split: each member's
    // chain reaches every other.
    let speakers = if speak == Speak::Everyone { 4 } else { 1 };
    for (n, name) in nodes.iter().zip(names).take(speakers) {
        n.group(group.id())
            .send_text(format!("{name} before"))
            .await
            .unwrap();
    }
    let before = Instant::now() + CONVERGE;
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        let others = names[..speakers].iter().filter(|n| **n != names[i]);
        let expected = others.map(|n| format!("{n} before")).collect();
        receive_all(names[i], inbox, expected, before).await;
    }

    for link in [&a_c, &c_a, &b_d, &d_b] {
        link.cut();
    }
    // Each sends, on its side, to the one across (a and c, b and d) and
    // to the group, every ten seconds for the minute they are apart.
    let across: [usize; 4] = [2, 3, 0, 1];
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 4];
    let split = Instant::now();
    let mut round = 0;
    while split.elapsed() < SPLIT {
        for (i, n) in nodes.iter().enumerate() {
            if heal == Heal::Everywhere || matches!(names[i], "a" | "c") {
                let to: AccountId = accounts[across[i]];
                let text = format!("{} to {} #{round}", names[i], names[across[i]]);
                n.conversation(to).send_text(text.clone()).await.unwrap();
                expected[across[i]].insert(text);
            }
            let text = format!("{} to the group #{round}", names[i]);
            n.group(group.id()).send_text(text.clone()).await.unwrap();
            for (j, e) in expected.iter_mut().enumerate() {
                if j != i {
                    e.insert(text.clone());
                }
            }
        }
        round += 1;
        tokio::time::sleep_until(split + EVERY * round).await;
    }

    // Nothing crossed while they were apart: what each got from its own
    // half came; nothing from the other.
    let mut got_apart: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        while let Some(message) = inbox.recv_timeout(Duration::ZERO).await {
            let text = text_of(&message);
            let from = &text[..1];
            let same_half = matches!(
                (names[i], from),
                ("a" | "b", "a" | "b") | ("c" | "d", "c" | "d")
            );
            assert!(
                same_half,
                "{} got {text} while the halves were apart",
                names[i]
            );
            assert!(expected[i].remove(&text), "{} got {text} unasked", names[i]);
            got_apart.entry(i).or_default().insert(text);
        }
    }
    assert!(
        got_apart.values().all(|g| !g.is_empty()),
        "within a half, group messages kept flowing: {got_apart:?}"
    );

    let healing: &[&Link] = match heal {
        Heal::Everywhere => &[&a_c, &c_a, &b_d, &d_b],
        Heal::OneBridge => &[&a_c, &c_a],
    };
    for link in healing {
        link.heal();
    }
    let healed = Instant::now();
    let until = healed + CONVERGE;
    let mut converged = Vec::new();
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        receive_all(names[i], inbox, std::mem::take(&mut expected[i]), until).await;
        converged.push(healed.elapsed());
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "partition of {SPLIT:?}, {round} rounds of sends, healed {}: converged {:?} after the heal",
            if heal == Heal::Everywhere { "everywhere" } else { "through one bridge" },
            converged.iter().max().unwrap()
        );
    }
}
