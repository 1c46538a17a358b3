//! Peers from DNS discovery: the EIP-1459 trees of
//! `network.dns_discovery_urls`, read at start and every minute until each
//! has given records (as nwaku does). The store nodes a tree lists are
//! given to store sync first, asked after the static peers; then the
//! records of this node's cluster are dialled, all at once. Store sync's
//! first round waits a few seconds for the store nodes.
//!
//! And from discv5 (`network.discv5`): a random lookup every 5 seconds, as
//! nwaku runs it; the records of this node's cluster that share a shard
//! with it (or that it was given to start from) are dialled, the store
//! nodes among them told to store sync.

use std::{sync::Arc, time::Duration};

use actix::Recipient;
use murmur_core::{
    sync::Stores,
    transport::{Dial, PeerId},
};
use murmur_transport::{
    dns::{self, Txt, Url},
    enr::{self, Record},
};
use tokio::sync::watch;

use crate::Node;

/// A tree that gave nothing is read again this often.
const RETRY: Duration = Duration::from_secs(60);

/// Reads `urls` with `txt` for `node` (of `cluster`); answers a flag that
/// turns true once every tree was tried once and its store nodes handed
/// on. Holds no handle of the node: it ends when the node is gone.
pub(crate) fn spawn(
    node: &Node,
    urls: Vec<Url>,
    txt: Arc<dyn Txt>,
    cluster: u16,
) -> watch::Receiver<bool> {
    let (tried, rx) = watch::channel(urls.is_empty());
    if urls.is_empty() {
        return rx;
    }
    let alive = Arc::downgrade(&node.inner);
    let dial = node.inner.transport.dial.clone();
    let stores = node.inner.sync.stores.clone();
    let me = node.peer_id();
    actix::spawn(async move {
        let mut pending = urls;
        loop {
            let mut failed = Vec::new();
            let mut dials = Vec::new();
            for url in pending {
                if alive.strong_count() == 0 {
                    return;
                }
                let records = match dns::resolve(&url, txt.as_ref()).await {
                    Ok(records) if !records.is_empty() => records,
                    Ok(_) => {
                        tracing::warn!(
                            tree = url.domain(),
                            "DNS discovery found no records; trying again in a minute"
                        );
                        failed.push(url);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(tree = url.domain(), error = %e, "DNS discovery failed; trying again in a minute");
                        failed.push(url);
                        continue;
                    }
                };
                let (listed, peers) = sort(&records, cluster, &me);
                tracing::info!(
                    tree = url.domain(),
                    records = records.len(),
                    peers = peers.len(),
                    stores = listed.len(),
                    "DNS discovery"
                );
                if !listed.is_empty() {
                    let _ = stores.send(Stores::listed(listed)).await;
                }
                dials.extend(peers);
            }
            tried.send_replace(true);
            reach(&dial, dials).await;
            if failed.is_empty() {
                return;
            }
            pending = failed;
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}

/// The store nodes among `records`, and the addresses to dial: those of
/// `cluster` (or naming none), not this node (`me`), each by its first
/// TCP address.
fn sort(records: &[Record], cluster: u16, me: &str) -> (Vec<String>, Vec<String>) {
    let (mut stores, mut peers) = (Vec::new(), Vec::new());
    for record in records {
        if enr::shards(record).is_some_and(|(c, _)| c != cluster) {
            continue;
        }
        if enr::peer_id(record).is_some_and(|p| p.to_string() == me) {
            continue;
        }
        let tcp = enr::addresses(record).into_iter().find(|a| {
            a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
                && !a.iter().any(|p| {
                    matches!(
                        p,
                        libp2p::multiaddr::Protocol::Ws(_) | libp2p::multiaddr::Protocol::Wss(_)
                    )
                })
        });
        let Some(address) = tcp.map(|a| a.to_string()) else {
            continue;
        };
        if enr::capabilities(record).is_some_and(|bits| bits & enr::capability::STORE != 0) {
            stores.push(address.clone());
        }
        peers.push(address);
    }
    (stores, peers)
}

/// Dials every address at once (a tree lists at most a hundred).
async fn reach(dial: &Recipient<Dial>, addresses: Vec<String>) {
    let dials = addresses.into_iter().map(|address| async move {
        let outcome: Result<PeerId, String> = match dial.send(Dial(address.clone())).await {
            Ok(Ok(peer)) => Ok(peer),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the transport is gone".to_owned()),
        };
        if let Err(e) = outcome {
            tracing::debug!(%address, error = %e, "a discovered peer not reached");
        }
    });
    futures::future::join_all(dials).await;
}

/// How often discv5 looks for more peers (nwaku: 5 s).
const LOOKUP: Duration = Duration::from_secs(5);
/// A discovered peer that could not be reached (or did not stay) is tried
/// again after this at first, twice as long after each try since, up to
/// [`REDIAL`]: a peer lost to a moment's load is back within a few
/// lookups, one that is gone costs a dial a minute.
const REDIAL_FIRST: Duration = Duration::from_secs(10);
/// The longest wait before a discovered peer is tried again.
const REDIAL: Duration = Duration::from_secs(60);

/// When a discovered peer was last dialled, and how long until it may be
/// dialled again.
#[derive(Debug, Clone, Copy)]
struct Tried {
    at: tokio::time::Instant,
    wait: Duration,
}

impl Tried {
    /// Dialled now, after `before` (if it was dialled before).
    fn now(before: Option<Tried>) -> Self {
        let wait = before.map_or(REDIAL_FIRST, |t| (t.wait * 2).min(REDIAL));
        Self {
            at: tokio::time::Instant::now(),
            wait,
        }
    }

    fn due(&self) -> bool {
        self.at.elapsed() >= self.wait
    }
}
/// No more peers are dialled past this many connections.
const ENOUGH_PEERS: usize = 50;

/// The UDP socket discv5 runs on: the IP of the node's first IPv4 TCP
/// listen address, `network.discv5_udp_port`.
pub(crate) fn bind_udp(config: &crate::Config) -> Result<std::net::UdpSocket, crate::Error> {
    let ip = config
        .network
        .listen
        .iter()
        .find_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::Ip4(ip) => Some(ip),
                _ => None,
            })
        })
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let port = config.network.discv5_udp_port;
    std::net::UdpSocket::bind((ip, port)).map_err(|e| {
        crate::Error::Config(format!(
            "network.discv5_udp_port: cannot bind UDP {ip}:{port}: {e}"
        ))
    })
}

/// Whether discv5 should dial `record`: a record it was given to start
/// from, or one of a Waku node (`waku2` set) of `cluster` sharing a shard
/// with `shards` (nwaku's predicate).
fn wanted(record: &Record, cluster: u16, shards: &[u16], bootstrap: &[String]) -> bool {
    if bootstrap.iter().any(|b| *b == record.to_base64()) {
        return true;
    }
    let waku = enr::capabilities(record).is_some_and(|bits| bits != 0);
    let shared = enr::shards(record)
        .is_some_and(|(c, theirs)| c == cluster && theirs.iter().any(|s| shards.contains(s)));
    waku && shared
}

/// Runs discv5 for `node` on `socket` until the node is gone.
pub(crate) fn spawn_discv5(
    node: &Node,
    keypair: &libp2p::identity::Keypair,
    socket: std::net::UdpSocket,
    config: &crate::Config,
) {
    let Some(record) = node.enr().map(str::to_owned) else {
        tracing::warn!("no discv5: the transport has no node record");
        return;
    };
    let alive = Arc::downgrade(&node.inner);
    let dial = node.inner.transport.dial.clone();
    let status = node.inner.transport.status.clone();
    let stores = node.inner.sync.stores.clone();
    let me = node.peer_id();
    let keypair = keypair.clone();
    let bootstrap = config.network.discv5_bootstrap_nodes.clone();
    let cluster = config.network.cluster;
    let shards = config.shards();
    actix::spawn(async move {
        let discovery =
            match murmur_transport::discv5::Discovery::start(&keypair, &record, socket, &bootstrap)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "discv5 did not start");
                    return;
                }
            };
        tracing::info!(bootstrap = bootstrap.len(), "discv5 running");
        let mut tried: std::collections::HashMap<String, Tried> = std::collections::HashMap::new();
        loop {
            if alive.strong_count() == 0 {
                return;
            }
            let mut found = match discovery.find().await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %e, "discv5 lookup");
                    Vec::new()
                }
            };
            found.extend(discovery.known());
            let Ok(now) = status.send(murmur_core::transport::GetStatus).await else {
                return;
            };
            let connected: std::collections::HashSet<String> =
                now.peers.iter().map(|p| p.0.clone()).collect();
            // Reached: should it go, it is tried again soon.
            tried.retain(|id, _| !connected.contains(id));
            let records: Vec<Record> = found
                .into_iter()
                .filter(|r| wanted(r, cluster, &shards, &bootstrap))
                .filter(|r| {
                    let Some(id) = enr::peer_id(r).map(|p| p.to_string()) else {
                        return false;
                    };
                    let due = tried.get(&id).is_none_or(Tried::due);
                    !connected.contains(&id) && due
                })
                .collect();
            if !records.is_empty() && connected.len() < ENOUGH_PEERS {
                for r in &records {
                    if let Some(id) = enr::peer_id(r) {
                        let before = tried.get(&id.to_string()).copied();
                        tried.insert(id.to_string(), Tried::now(before));
                    }
                }
                let (listed, peers) = sort(&records, cluster, &me);
                tracing::info!(
                    peers = peers.len(),
                    stores = listed.len(),
                    "discv5 found peers"
                );
                if !listed.is_empty() {
                    let _ = stores.send(Stores::exchanged(listed)).await;
                }
                reach(&dial, peers).await;
            }
            tokio::time::sleep(LOOKUP).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn record(caps: u8, cluster: u16, shards: &[u16]) -> Record {
        enr::build(
            &Keypair::generate_secp256k1(),
            &["/ip4/127.0.0.1/tcp/60000".parse().unwrap()],
            caps,
            cluster,
            shards,
            Some(9000),
        )
        .unwrap()
    }

    #[test]
    fn a_peer_not_reached_is_tried_again_sooner_first_then_up_to_a_minute_apart() {
        let first = Tried::now(None);
        assert!(!first.due());
        let waits: Vec<Duration> =
            std::iter::successors(Some(first), |t| Some(Tried::now(Some(*t))))
                .take(5)
                .map(|t| t.wait)
                .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(waits, [secs(10), secs(20), secs(40), secs(60), secs(60)]);
    }

    #[test]
    fn discv5_dials_waku_nodes_of_its_cluster_that_share_a_shard() {
        let relay = enr::capability::RELAY;
        assert!(wanted(&record(relay, 1, &[0, 3]), 1, &[3, 4], &[]));
        // Another cluster, no shard in common, not a Waku node: not dialled.
        assert!(!wanted(&record(relay, 16, &[3]), 1, &[3], &[]));
        assert!(!wanted(&record(relay, 1, &[5]), 1, &[3], &[]));
        assert!(!wanted(&record(0, 1, &[3]), 1, &[3], &[]));
        // A record it was given to start from is dialled whatever it says.
        let given = record(0, 16, &[9]);
        assert!(wanted(&given, 1, &[3], &[given.to_base64()]));
    }
}
