//! When the store-sync stage runs a round: at start, on every new
//! connection (after an outage, or when a store node comes back), and
//! every `store.sync_interval_secs`, give or take a fifth. Before each round
//! the node tells the stage what to watch: its chat topics (pairwise and
//! groups, which change as groups are joined) and what [`Node::subscribe`]
//! asked for; and, at most every [`FIND_EVERY`], which store nodes its
//! static peers know of (peer exchange), to ask after the static peers.

use std::{sync::Arc, time::Duration};

use murmur_core::{
    sync::{Reason, Round, Stores, Watch},
    transport::PeerExchange,
    ContentTopic,
};
use tokio::sync::Notify;

use crate::{Error, Node};

/// Connections that come in a burst (a node starting, a network coming
/// back) lead to one round, this long after the first; the first round
/// runs this long after start.
const SETTLE: Duration = Duration::from_secs(2);

/// The first round waits at most this long for DNS discovery.
const DISCOVERY_WAIT: Duration = Duration::from_secs(10);

/// Rounds for new connections come at least this far apart.
const MIN_GAP: Duration = Duration::from_secs(30);

/// Static peers are asked for the store nodes they know this often.
pub(crate) const FIND_EVERY: Duration = Duration::from_secs(600);

/// Peers asked for per static peer.
const FIND: u64 = 20;

/// Runs rounds for `node` until it is dropped; none with an interval of 0.
/// With `find_stores`, the static `peers` are asked for store nodes first.
pub(crate) fn spawn(
    node: &Node,
    connected: Arc<Notify>,
    config: &crate::config::Store,
    peers: Vec<String>,
    mut discovered: tokio::sync::watch::Receiver<bool>,
) {
    if config.sync_interval_secs == 0 {
        return;
    }
    let every = Duration::from_secs(config.sync_interval_secs);
    let find = config.find_stores.then_some(peers);
    let mut found_at: Option<tokio::time::Instant> = None;
    let node = Arc::downgrade(&node.inner);
    actix::spawn(async move {
        // The first round once the static peers have connected; their
        // connections are what it runs for, not a reason for another.
        tokio::time::sleep(SETTLE).await;
        // The store nodes DNS discovery finds are asked in the first round.
        let _ = tokio::time::timeout(DISCOVERY_WAIT, discovered.wait_for(|tried| *tried)).await;
        let _ = tokio::time::timeout(Duration::ZERO, connected.notified()).await;
        let mut reason = Reason::Start;
        loop {
            // The node is gone once every handle is dropped.
            let Some(inner) = node.upgrade() else { return };
            let strong = Node { inner };
            if let Some(peers) = &find {
                if found_at.is_none_or(|at| at.elapsed() >= FIND_EVERY) {
                    strong.find_stores(peers).await;
                    found_at = Some(tokio::time::Instant::now());
                }
            }
            let round = strong.sync_round(reason).await;
            // Not held while waiting for the next round.
            drop(strong);
            match round {
                Ok(fetched) => tracing::debug!(?reason, fetched, "store sync"),
                Err(Error::Stopped) => return,
                Err(e) => tracing::debug!(?reason, error = %e, "store sync round failed"),
            }
            let ran = tokio::time::Instant::now();
            // A fifth either way, so that nodes started together spread out.
            let next = every.mul_f64(0.8 + rand::random::<f64>() * 0.4);
            reason = tokio::select! {
                () = tokio::time::sleep(next) => Reason::Periodic,
                () = connected.notified() => {
                    // A busy relay sees peers come and go all the time.
                    tokio::time::sleep_until((ran + MIN_GAP).max(tokio::time::Instant::now() + SETTLE)).await;
                    Reason::Reconnected
                }
            };
        }
    });
}

impl Node {
    /// Runs a round of store sync now: fetches from the node's static peers
    /// what came on its chat topics and subscriptions since it last saw them
    /// (the node does this at start, on every new connection and
    /// periodically by itself); answers how many messages came back, the
    /// ones it already had included.
    pub async fn sync_now(&self) -> Result<usize, Error> {
        self.sync_round(Reason::Asked).await
    }

    /// Asks each of `peers` by peer exchange for the peers it knows, and
    /// has store sync ask those that serve store, after the static peers.
    pub(crate) async fn find_stores(&self, peers: &[String]) {
        let mut stores = Vec::new();
        for peer in peers {
            let ask = PeerExchange::new(peer.clone(), FIND);
            match self.inner.transport.peer_exchange.send(ask).await {
                Ok(Ok(found)) => stores.extend(
                    found
                        .into_iter()
                        .filter(|f| f.store)
                        .filter_map(|f| f.addresses.into_iter().next()),
                ),
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "no peers from peer exchange"),
                Err(_) => return,
            }
        }
        if stores.is_empty() {
            return;
        }
        let learned = stores.len();
        stores.truncate(Stores::KEPT);
        if let Ok(asked) = self.inner.sync.stores.send(Stores::exchanged(stores)).await {
            tracing::debug!(learned, asked, "store nodes found by peer exchange");
        }
    }

    async fn sync_round(&self, reason: Reason) -> Result<usize, Error> {
        let mut topics: Vec<ContentTopic> = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if let Some(crypto) = &self.inner.chat {
            topics.extend(crypto.topics.send(murmur_core::crypto::Topics).await??);
        }
        if let Some(groups) = &self.inner.groups {
            topics.extend(groups.topics.send(murmur_core::groups::Topics).await??);
        }
        let sync = &self.inner.sync;
        for (shard, content_topics) in self.by_shard(&topics) {
            let content_topics = content_topics
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect();
            sync.watch.send(Watch::new(shard, content_topics)).await??;
        }
        Ok(sync.round.send(Round(reason)).await??)
    }
}
