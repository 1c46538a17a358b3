//! Peers from DNS discovery: the EIP-1459 trees of
//! `network.dns_discovery_urls`, read at start and every minute until each
//! has given records (as nwaku does). The store nodes a tree lists are
//! given to store sync first, asked after the static peers; then the
//! records of this node's cluster are dialled, all at once. Store sync's
//! first round waits a few seconds for the store nodes.

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
