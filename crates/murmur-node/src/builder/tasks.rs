//! The node's background work that the builder starts beside the stages:
//! publishing this device's bundle, retention, DNS discovery.

use std::{sync::Arc, time::Duration};

use actix::Recipient;
use murmur_core::storage;

use crate::{Config, Error, Node};

/// Publishes the device's bundle (and its account's revocations) at a
/// random time in the first `chat.bundle_delay_secs` after start, then
/// every six hours give or take an hour; a failed attempt (no peers yet)
/// is retried every thirty seconds. Random, so that the first relay does
/// not see a bundle, which names the account, leave a peer the moment it
/// connects. Not at all with `chat.publish_bundle = false`.
pub(super) fn spawn_bundle_publisher(node: &Node, config: &crate::config::Chat) {
    const EVERY: Duration = Duration::from_secs(5 * 3600);
    const RETRY: Duration = Duration::from_secs(30);
    if !config.publish_bundle {
        return;
    }
    let jitter = |max: u64| Duration::from_secs(rand::random::<u64>() % max.max(1));
    let first = jitter(config.bundle_delay_secs);
    let node = std::sync::Arc::downgrade(&node.inner);
    actix::spawn(async move {
        let mut wait = first;
        loop {
            tokio::time::sleep(wait).await;
            // The node is gone once every handle is dropped.
            let Some(inner) = node.upgrade() else { return };
            wait = match (Node { inner }).publish_bundle().await {
                Ok(sent) => {
                    tracing::debug!(hash = %sent.hash(), state = ?sent.state(), "bundle sent");
                    EVERY + jitter(2 * 3600)
                }
                Err(Error::Stopped) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "bundle not published yet");
                    RETRY
                }
            };
        }
    });
}

/// Applies the configured retention in the background, every
/// `store.retention_interval_secs`.
pub(super) fn spawn_retention(config: &Config, prune: Recipient<storage::Prune>) {
    let store = &config.store;
    let max_age = (store.max_age_secs > 0).then(|| Duration::from_secs(store.max_age_secs));
    let max_count = (store.max_messages > 0).then_some(store.max_messages);
    if max_age.is_none() && max_count.is_none() {
        return;
    }
    let every = Duration::from_secs(store.retention_interval_secs.max(1));
    actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match prune.send(storage::Prune::new(max_age, max_count)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(deleted = n, "retention applied"),
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                // The storage stage is gone: the node is stopping.
                Err(_) => return,
            }
        }
    });
}

/// Starts DNS discovery if trees are configured; answers when it has
/// tried each once.
pub(super) fn discover(
    config: &Config,
    dns: Option<Arc<dyn murmur_transport::dns::Txt>>,
    node: &Node,
) -> tokio::sync::watch::Receiver<bool> {
    let urls: Vec<murmur_transport::dns::Url> = config
        .network
        .dns_discovery_urls
        .iter()
        .filter_map(|u| u.parse().ok())
        .collect();
    let txt = match dns {
        Some(txt) => Some(txt),
        None if urls.is_empty() => None,
        None => match murmur_transport::dns::SystemDns::new() {
            Ok(system) => Some(Arc::new(system) as Arc<dyn murmur_transport::dns::Txt>),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS discovery: the system resolver is not usable");
                None
            }
        },
    };
    match txt {
        Some(txt) => crate::discovery::spawn(node, urls, txt, config.network.cluster),
        None => tokio::sync::watch::channel(true).1,
    }
}
