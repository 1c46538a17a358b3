//! Peers from DNS discovery: the EIP-1459 trees of
//! `network.dns_discovery_urls`, read at start and every minute until each
//! has read once (as nwaku does). The records of this node's cluster are
//! dialled; the store nodes among them are given to store sync, asked after
//! the static peers. Store sync's first round waits a few seconds for the
//! first reading, so that a node with no static store node catches up at
//! start.

use std::{sync::Arc, time::Duration};

use murmur_core::sync::Stores;
use murmur_transport::{
    dns::{self, Txt, Url},
    enr::{self, Record},
};
use tokio::sync::watch;

use crate::Node;

/// A tree that did not read is tried again this often.
const RETRY: Duration = Duration::from_secs(60);

/// Reads `urls` with `txt` for `node` (of `cluster`); answers a flag that
/// turns true once every tree was tried once.
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
    let node = Arc::downgrade(&node.inner);
    actix::spawn(async move {
        let mut pending = urls;
        loop {
            let mut failed = Vec::new();
            for url in pending {
                match dns::resolve(&url, txt.as_ref()).await {
                    Ok(records) => {
                        let Some(inner) = node.upgrade() else { return };
                        tracing::info!(
                            tree = url.domain(),
                            records = records.len(),
                            "DNS discovery"
                        );
                        Node { inner }.use_found(&records, cluster).await;
                    }
                    Err(e) => {
                        tracing::warn!(tree = url.domain(), error = %e, "DNS discovery failed; trying again in a minute");
                        failed.push(url);
                    }
                }
            }
            tried.send_replace(true);
            if failed.is_empty() {
                return;
            }
            pending = failed;
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}

impl Node {
    /// Dials the peers of `records` that are in `cluster` (a record that
    /// names no cluster is tried too), and has store sync ask the store
    /// nodes among them.
    async fn use_found(&self, records: &[Record], cluster: u16) {
        let me = self.peer_id();
        let mut stores = Vec::new();
        for record in records {
            if enr::shards(record).is_some_and(|(c, _)| c != cluster) {
                continue;
            }
            let Some(address) = enr::addresses(record)
                .iter()
                .map(ToString::to_string)
                .find(|a| !a.contains("/ws"))
            else {
                continue;
            };
            if address.ends_with(&me) {
                continue;
            }
            if let Err(e) = self.dial(&address).await {
                tracing::debug!(%address, error = %e, "a discovered peer not reached");
            }
            if enr::capabilities(record).is_some_and(|bits| bits & enr::capability::STORE != 0) {
                stores.push(address);
            }
        }
        if !stores.is_empty() {
            let _ = self.inner.sync.stores.send(Stores(stores)).await;
        }
    }
}
