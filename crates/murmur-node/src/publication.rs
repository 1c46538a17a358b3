//! A raw message on its way: what [`Node::send`](crate::Node::send) and
//! [`Node::publish`](crate::Node::publish) answer once it is durable.

use std::time::Duration;

use murmur_core::MessageHash;
use tokio::sync::watch;

/// Where a published message is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishState {
    /// In the outbox (durable), not yet taken by the network (no peer to
    /// publish to, or the node was stopped): offered again every few
    /// seconds, across restarts, until it is.
    Queued,
    /// Taken by the network: relay peers, or a lightpush service node.
    Published,
    /// A store node holds it: whoever catches up later gets it too. Asked
    /// of the store nodes the node syncs from for about a minute after it
    /// was published; without one, a message stays [`Published`](Self::Published).
    Acknowledged,
    /// Refused for good on a retry (a service node's refusal that asking
    /// again would not change); it left the outbox.
    Failed(String),
}

/// What moved last: the state, and the hash the message travels under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) hash: MessageHash,
    pub(crate) state: PublishState,
}

/// A message in the outbox or on the network: its hash and its state, to
/// await or watch.
///
/// ```no_run
/// # async fn example(node: murmur_node::Node) -> Result<(), murmur_node::Error> {
/// use std::time::Duration;
/// use murmur_node::PublishState;
///
/// let topic = "/my-app/1/lobby/proto".parse().expect("a content topic");
/// // Durable once this answers, whether or not a peer is connected.
/// let mut sent = node.send(&topic, "hello").await?;
/// if sent.acknowledged(Duration::from_secs(30)).await == PublishState::Acknowledged {
///     println!("a store node holds {}", sent.hash());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publication {
    progress: watch::Receiver<Progress>,
}

impl Publication {
    pub(crate) fn new(progress: watch::Receiver<Progress>) -> Self {
        Self { progress }
    }

    /// The message's hash, under which store nodes find it. A message that
    /// waited in the outbox longer than store nodes accept (they keep
    /// nothing stamped more than 20 s off their clock) is stamped again
    /// when it goes out, and travels under a new hash: this is the latest.
    pub fn hash(&self) -> MessageHash {
        self.progress.borrow().hash
    }

    /// The current state.
    pub fn state(&self) -> PublishState {
        self.progress.borrow().state.clone()
    }

    /// Waits until the network took the message (or it failed), at most
    /// `timeout`; answers the state it ended in.
    pub async fn published(&mut self, timeout: Duration) -> PublishState {
        self.until(timeout, |s| !matches!(s, PublishState::Queued))
            .await
    }

    /// Waits until a store node holds the message (or it failed), at most
    /// `timeout`; answers the state it ended in.
    pub async fn acknowledged(&mut self, timeout: Duration) -> PublishState {
        self.until(timeout, |s| {
            matches!(s, PublishState::Acknowledged | PublishState::Failed(_))
        })
        .await
    }

    async fn until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&PublishState) -> bool,
    ) -> PublishState {
        let _ = tokio::time::timeout(timeout, self.progress.wait_for(|p| done(&p.state))).await;
        self.state()
    }
}
