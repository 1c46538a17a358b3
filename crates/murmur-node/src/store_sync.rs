//! When the store-sync stage runs a round: at start, on every new
//! connection (after an outage, or when a store node comes back), and
//! every `store.sync_interval_secs`, give or take a fifth. Before each round
//! the node tells the stage what to watch: its chat topics (pairwise and
//! groups, which change as groups are joined) and what [`Node::subscribe`]
//! asked for.

use std::{sync::Arc, time::Duration};

use murmur_core::{
    sync::{Reason, Round, Watch},
    ContentTopic,
};
use tokio::sync::Notify;

use crate::{Error, Node};

/// Connections that come in a burst (a node starting, a network coming
/// back) lead to one round, this long after the first; the first round
/// runs this long after start.
const SETTLE: Duration = Duration::from_secs(2);

/// Rounds for new connections come at least this far apart.
const MIN_GAP: Duration = Duration::from_secs(30);

/// Runs rounds for `node` until it is dropped; none with an interval of 0.
pub(crate) fn spawn(node: &Node, connected: Arc<Notify>, config: &crate::config::Store) {
    if config.sync_interval_secs == 0 {
        return;
    }
    let every = Duration::from_secs(config.sync_interval_secs);
    let node = Arc::downgrade(&node.inner);
    actix::spawn(async move {
        // The first round once the static peers have connected; their
        // connections are what it runs for, not a reason for another.
        tokio::time::sleep(SETTLE).await;
        let _ = tokio::time::timeout(Duration::ZERO, connected.notified()).await;
        let mut reason = Reason::Start;
        loop {
            // The node is gone once every handle is dropped.
            let Some(inner) = node.upgrade() else { return };
            match (Node { inner }).sync_round(reason).await {
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
