//! The handle an application holds: a running node's stages behind one
//! cheap, cloneable value.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use bytes::Bytes;
use murmur_core::{
    hook::Outgoing,
    storage,
    transport::{self, Dial, GetStatus, QueryStore, Status, Subscribe},
    ContentTopic, Delivery, PubsubTopic, Sharding, WakuMessage,
};
use tokio::sync::mpsc;

use crate::{
    chat::{
        AccountId, Body, Conversation, DeliveryState, DeviceId, Group, GroupId, Inbox, Notices,
        Sent, Summary,
    },
    pipeline::{
        AddInbox, AddNotices, AddSubscriber, ApplyEffects, ChatOutbound, GetStats, Position,
        PublishEnvelopes, SendChat, Which,
    },
    Error, Pipeline, Publication, Stats,
};

pub(crate) const SUBSCRIBER_QUEUE: usize = 1024;

/// Where the application's state lives among the node's.
pub(crate) const APP_STATE: &str = "app/";

/// The name of the application's state under `key`.
pub(crate) fn app_state_name(key: &str) -> String {
    format!("{APP_STATE}{key}")
}

mod chat;

/// A running node: what an application, a bot or a test holds. Clones are
/// cheap and share the node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pipeline: Addr<Pipeline>,
    pub(crate) transport: transport::Handle,
    pub(crate) sharding: Sharding,
    pub(crate) status: Status,
    pub(crate) metrics: murmur_transport::Metrics,
    /// Every stage's metrics, for `/metrics`.
    pub(crate) registry: Arc<prometheus_client::registry::Registry>,
    /// What the node was started with.
    pub(crate) config: Arc<crate::Config>,
    pub(crate) crypto_metrics: crate::crypto::Metrics,
    pub(crate) group_metrics: crate::groups::Metrics,
    pub(crate) chat: Option<murmur_core::crypto::Handle>,
    pub(crate) groups: Option<murmur_core::groups::Handle>,
    /// The durable inbox's records, when chat is on.
    pub(crate) inbox: Option<Arc<crate::inbox::Shelf<crate::inbox::Chat>>>,
    /// The raw inbox's records (durable subscriptions).
    pub(crate) raw: Arc<crate::inbox::Shelf<crate::inbox::Raw>>,
    pub(crate) storage: storage::Handle,
    pub(crate) sync: murmur_core::sync::Handle,
    /// The content topics subscribed through [`Node::subscribe`], which
    /// store sync keeps up to date beside the chat topics.
    pub(crate) watched: std::sync::Mutex<std::collections::BTreeSet<ContentTopic>>,
    /// This process's hold on the database (`store.lease`).
    pub(crate) lease: Option<crate::lease::Tenure>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Not given up (that needs the database): it lapses, and a standby
        // takes over after its term.
        if let Some(lease) = &self.lease {
            lease.stop_renewing();
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

/// A stage of a running node, to inject a fault into (tests of supervision).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageId {
    /// The pipeline.
    Pipeline,
    /// The transport stage.
    Transport,
    /// The crypto stage.
    Crypto,
    /// The membership stage.
    Membership,
    /// The persistence stage.
    Storage,
    /// The store-sync stage.
    Sync,
}

impl Node {
    /// Makes `stage` panic in its next handler, as a defect there would:
    /// the stage answers that request with a `Restarted` error and is
    /// restarted by its supervisor (tests of supervision).
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self, stage: StageId) -> Result<(), Error> {
        use murmur_core::supervise::InjectPanic;
        let inner = &self.inner;
        match stage {
            StageId::Pipeline => inner.pipeline.send(InjectPanic).await?,
            StageId::Transport => inner.transport.inject_panic.send(InjectPanic).await?,
            StageId::Crypto => {
                let crypto = inner.chat.as_ref().ok_or(Error::ChatDisabled)?;
                crypto.inject_panic.send(InjectPanic).await?;
            }
            StageId::Membership => {
                let groups = inner.groups.as_ref().ok_or(Error::ChatDisabled)?;
                groups.inject_panic.send(InjectPanic).await?;
            }
            StageId::Storage => inner.storage.inject_panic.send(InjectPanic).await?,
            StageId::Sync => inner.sync.inject_panic.send(InjectPanic).await?,
        }
        Ok(())
    }

    /// Waits until this process loses the database's lease to another
    /// (`store.lease`: replicas on one database); answers who took it. The
    /// node writes nothing from then on: stop it, and start it again to
    /// stand by. Never answers on a node that holds no lease.
    pub async fn lease_lost(&self) -> String {
        match &self.inner.lease {
            Some(lease) => lease.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Whether this process may hand a message to its application: it holds
    /// no lease, or surely holds it (waiting for a renewal's word after a
    /// freeze).
    pub(crate) async fn holds_lease(&self) -> bool {
        match &self.inner.lease {
            Some(lease) => lease.confirmed().await.is_ok(),
            None => true,
        }
    }

    /// Gives up the database's lease, so that a replica standing by takes
    /// over now instead of after the lease lapses; the node writes nothing
    /// from then on. The last thing to call before the process ends
    /// (`murmur node` and `Bot::run` do on Ctrl-C or SIGTERM). Nothing to
    /// do on a node that holds no lease.
    pub async fn close(&self) -> Result<(), Error> {
        match &self.inner.lease {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> String {
        self.inner
            .status
            .peer_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The node's discovery record (`enr:…`), for other nodes' bootstrap lists.
    pub fn enr(&self) -> Option<&str> {
        self.inner.status.enr.as_deref()
    }

    /// Where the node listens, each address ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[String] {
        &self.inner.status.listen_addrs
    }

    /// The pubsub topic a content topic travels on (autosharding).
    pub fn pubsub_topic(&self, topic: &ContentTopic) -> PubsubTopic {
        self.inner.sharding.pubsub_topic(topic)
    }

    /// Publishes `payload` on `topic`, stamped with the current time; see
    /// [`Node::publish`].
    pub async fn send(
        &self,
        topic: &ContentTopic,
        payload: impl Into<Bytes>,
    ) -> Result<Publication, Error> {
        let message =
            WakuMessage::new(topic.as_str(), payload).with_timestamp(murmur_core::now_nanos());
        self.publish(self.pubsub_topic(topic), message).await
    }

    /// Publishes a message as given on `pubsub_topic`, through the outbound
    /// hooks and the outbox.
    ///
    /// Answers once the message is durable: in the outbox, or taken by the
    /// network. It does not fail because no peer is connected: the message
    /// then waits in the outbox ([`Queued`](crate::PublishState::Queued)) and is offered
    /// again every few seconds, across restarts. The [`Publication`]
    /// follows it on to published and acknowledged (a store node holds it).
    /// Errors are for what will never go out: a hook dropped it, the network
    /// would refuse it (too large, malformed), or a service node refused it.
    ///
    /// A message the network took is answered at once and never enters the
    /// outbox: a process that dies before the bytes left can lose it, as
    /// any Waku node would. Wait for [`Publication::acknowledged`] where
    /// that matters. (Chat envelopes enter the outbox either way, and their
    /// sends wait for it.)
    ///
    /// Dropping the future before it answers may or may not stop the
    /// message (it may already be in the outbox or on the network).
    pub async fn publish(
        &self,
        pubsub_topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<Publication, Error> {
        crate::pipeline::publish(&self.inner.pipeline, Outgoing::new(pubsub_topic, message)).await
    }

    /// Receives the messages on these content topics from now on
    /// (subscribing their shards if this node does not serve them already).
    /// Nothing is kept for it: a delivery that comes while its queue is full
    /// is missed (counted in [`Stats::subscriber_overflows`]).
    /// [`Node::durable_subscribe`] is the subscriber that loses nothing.
    pub async fn subscribe<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> Result<Subscription, Error> {
        let topics: Vec<ContentTopic> = topics.into_iter().cloned().collect();
        let names = topics.iter().map(|t| t.as_str().to_owned()).collect();
        self.watch(&topics).await?;
        let rx = self
            .inner
            .pipeline
            .send(AddSubscriber {
                topics: Some(names),
                capacity: SUBSCRIBER_QUEUE,
            })
            .await?;
        Ok(Subscription { rx })
    }

    /// A durable subscriber of these content topics, named `name` (one
    /// reader per name at a time): every message on them at least once, in
    /// arrival order, from where it last said it was done, across restarts
    /// and crashes ([`Durable`](crate::Durable)). From the first call on, the
    /// node keeps what comes on these topics (`store.subscription_keep`, never
    /// one this subscriber has not passed), also after a restart before the
    /// application asks again, and store sync catches them up after an
    /// outage. A message is kept once per hash. [`Node::forget_durable`]
    /// ends it.
    pub async fn durable_subscribe<'a>(
        &self,
        name: &str,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> Result<crate::Durable<Delivery>, Error> {
        let topics: Vec<ContentTopic> = topics.into_iter().cloned().collect();
        self.watch(&topics).await?;
        let names = topics.iter().map(|t| t.as_str().to_owned()).collect();
        crate::Durable::raw(self, name, names, SUBSCRIBER_QUEUE).await
    }

    /// Subscribes the shards of `topics` and has store sync keep them up to
    /// date.
    pub(crate) async fn watch(&self, topics: &[ContentTopic]) -> Result<(), Error> {
        self.subscribe_shards(topics.iter()).await?;
        self.inner
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(topics.iter().cloned());
        Ok(())
    }

    /// Content topics grouped by the shard (pubsub topic) they travel on.
    pub(crate) fn by_shard<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> std::collections::BTreeMap<PubsubTopic, Vec<String>> {
        let mut shards: std::collections::BTreeMap<PubsubTopic, Vec<String>> = Default::default();
        for topic in topics {
            shards
                .entry(self.pubsub_topic(topic))
                .or_default()
                .push(topic.as_str().to_owned());
        }
        shards
    }

    /// Subscribes the transport to the shards of these content topics.
    pub(crate) async fn subscribe_shards<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> Result<(), Error> {
        for (shard, content_topics) in self.by_shard(topics) {
            self.inner
                .transport
                .subscribe
                .send(Subscribe::new(shard).with_content_topics(content_topics))
                .await??;
        }
        Ok(())
    }

    /// Receives every message on every subscribed pubsub topic.
    pub async fn subscribe_all(&self) -> Result<Subscription, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddSubscriber {
                topics: None,
                capacity: SUBSCRIBER_QUEUE,
            })
            .await?;
        Ok(Subscription { rx })
    }

    /// Connects to a peer.
    pub async fn dial(&self, address: &str) -> Result<transport::PeerId, Error> {
        Ok(self
            .inner
            .transport
            .dial
            .send(Dial(address.to_owned()))
            .await??)
    }

    /// Takes the node off the network: connections and listeners close, and
    /// it relays and receives nothing more. Its data stays in its folder;
    /// a node started again on that folder (and key) is the same node, and
    /// [`Node::catch_up`] fetches what it missed.
    pub async fn go_offline(&self) -> Result<(), Error> {
        Ok(self.inner.transport.stop.send(transport::Stop).await?)
    }

    /// The transport's view of the network.
    pub async fn status(&self) -> Result<Status, Error> {
        Ok(self.inner.transport.status.send(GetStatus).await?)
    }

    /// Asks the store node at `peer` (an address ending in `/p2p/<peer id>`)
    /// for one page of `query`.
    pub async fn query_store(
        &self,
        peer: &str,
        query: murmur_core::store::Query,
    ) -> Result<murmur_core::store::Page, Error> {
        Ok(self
            .inner
            .transport
            .query_store
            .send(QueryStore::new(peer, query))
            .await??)
    }

    /// The pipeline's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        Ok(self.inner.pipeline.send(GetStats).await?)
    }

    /// The transport's metrics (when it is the libp2p transport).
    pub fn transport_metrics(&self) -> &murmur_transport::Metrics {
        &self.inner.metrics
    }

    /// Every metric of the node in the OpenMetrics text format, as
    /// `/metrics` serves it (`murmur-rest`).
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a metric that could not be
        // encoded would leave the text short, not wrong.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &crate::Config {
        &self.inner.config
    }

    /// Receives `topic` (a pubsub topic) from now on, beside the shards the
    /// configuration names: a relay node relays the whole topic (nwaku's
    /// `POST /relay/v1/subscriptions`), a light client asks its filter
    /// service for `content_topics` on it (`POST /filter/v2/subscriptions`).
    /// What comes reaches [`Node::subscribe_all`].
    pub async fn subscribe_pubsub(
        &self,
        topic: PubsubTopic,
        content_topics: Vec<String>,
    ) -> Result<(), Error> {
        Ok(self
            .inner
            .transport
            .subscribe
            .send(Subscribe::new(topic).with_content_topics(content_topics))
            .await??)
    }

    /// Stops receiving `topic`. A shard the configuration names, or one the
    /// node's own conversations travel on, should not be given up: the
    /// caller decides (`murmur-rest` gives up only what it asked for).
    pub async fn unsubscribe_pubsub(&self, topic: PubsubTopic) -> Result<(), Error> {
        Ok(self
            .inner
            .transport
            .unsubscribe
            .send(transport::Unsubscribe(topic))
            .await??)
    }

    /// One page of `query` from this node's own archive (what its store
    /// service answers others).
    pub async fn query_archive(
        &self,
        query: murmur_core::store::Query,
    ) -> Result<murmur_core::store::Page, Error> {
        Ok(self
            .inner
            .storage
            .query
            .send(storage::Query(query))
            .await??)
    }

    /// Waits until at least `n` peers receive what this node publishes on `topic`.
    pub async fn wait_for_peers(
        &self,
        topic: &PubsubTopic,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await?;
            if status
                .topics
                .iter()
                .any(|(t, count)| t == topic && *count >= n)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Send(transport::Error::NoPeers(topic.clone())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A queue of deliveries for one subscriber.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The next delivery; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// The next delivery, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}
