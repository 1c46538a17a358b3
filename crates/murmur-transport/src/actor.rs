use std::{collections::BTreeMap, time::Duration};

use actix::{
    dev::{MessageResponse, OneshotSender},
    prelude::*,
    ActorFutureExt, Recipient, ResponseFuture, Supervised, Supervisor, WrapFuture,
};
use murmur_core::{
    store::Page,
    supervise,
    transport::{
        self, Dial, Event, GetStatus, Publish, QueryStore, Status, Stop, Subscribe, Unsubscribe,
    },
    MessageHash, PubsubTopic,
};

use crate::{Config, Error, Network};

/// How many messages may wait in the actor's mailbox.
const MAILBOX: usize = 1024;
/// How long to wait before retrying a failed rebuild after a crash.
const REBUILD_RETRY: Duration = Duration::from_secs(1);
/// How long a rebuilt node may take to find peers again on the topics that
/// had them before the mailbox is served anyway.
const RECOVERY: Duration = Duration::from_secs(15);

/// The transport stage actor: a thin shell around a [`Network`].
///
/// It runs under an actix [`Supervisor`]. If the swarm task panics, the actor
/// stops, the supervisor restarts it, and it rebuilds the node on the same
/// ports with the same identity and subscriptions; static peers are redialled
/// and the mailbox keeps what arrived in between, served once the topics
/// that had mesh peers have them again (at most 15 s): a send issued during
/// the restart waits for it instead of failing for want of peers. If one of the actor's own
/// handlers panics, that request is answered with
/// [`transport::Error::Restarted`] and the actor restarts around the same
/// swarm, which never stopped.
pub struct Transport {
    config: Config,
    events: Recipient<Event>,
    node: Option<Network>,
    started: Option<Network>,
    /// Subscriptions to restore after a restart: topic -> content topics.
    topics: BTreeMap<PubsubTopic, Vec<String>>,
    /// Asked to leave the network: no rebuild after that.
    stopped: bool,
    /// The swarm itself died: the restart builds a new one. After a panic
    /// in one of the actor's own handlers the swarm is sound and is kept.
    swarm_died: bool,
    /// The topics that had mesh peers when the swarm died: the rebuilt node
    /// serves the mailbox once it has peers there again.
    meshed_before: Vec<PubsubTopic>,
    fuse: supervise::Fuse,
}

impl Transport {
    /// Starts the node and, once it listens, the supervised actor around it.
    /// Events go to `events`. Bind and build errors are returned here, before
    /// any actor exists.
    pub async fn start(
        config: Config,
        events: Recipient<Event>,
    ) -> Result<(Addr<Self>, Network), Error> {
        let node = Network::start_for(config.clone(), events.clone()).await?;
        let mut config = config;
        config.listen = node.bound_addrs().to_vec();
        let handle = node.clone();
        let addr = Supervisor::start(move |_| Self {
            config,
            events,
            node: None,
            started: Some(node),
            topics: BTreeMap::new(),
            stopped: false,
            swarm_died: false,
            meshed_before: Vec::new(),
            fuse: supervise::Fuse::default(),
        });
        Ok((addr, handle))
    }

    fn attach(&mut self, node: Network, ctx: &mut Context<Self>, rebuilt: bool) {
        let meshed = node.meshed();
        ctx.spawn(node.died().into_actor(self).map(move |panic, act, ctx| {
            tracing::error!(%panic, "transport crashed; the supervisor restarts it");
            act.died(&meshed.borrow());
            ctx.stop();
        }));
        let topics: Vec<(PubsubTopic, Vec<String>)> = self
            .topics
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect();
        let resubscribe = node.clone();
        // A rebuilt node has lost its connections: what waits in the mailbox
        // (a send issued during the restart) is served once the topics that
        // had peers before have peers again, not refused for want of them.
        let meshed_before = std::mem::take(&mut self.meshed_before);
        let recover = rebuilt && !meshed_before.is_empty();
        ctx.wait(
            async move {
                for (topic, content_topics) in &topics {
                    let content_topics = content_topics.clone();
                    if let Err(e) = resubscribe.subscribe_to(topic, content_topics).await {
                        tracing::warn!(%topic, error = %e, "could not resubscribe after restart");
                    }
                }
                if recover {
                    recovered(&resubscribe, &meshed_before).await;
                }
            }
            .into_actor(self),
        );
        self.node = Some(node);
    }

    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        let config = self.config.clone();
        ctx.wait(
            Network::start_for(config, self.events.clone())
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(node) => {
                        tracing::info!(peer = %node.peer_id(), "transport restarted");
                        act.attach(node, ctx, true);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "transport could not restart; retrying");
                        ctx.run_later(REBUILD_RETRY, |act, ctx| act.rebuild(ctx));
                    }
                }),
        );
    }

    /// The swarm died with `meshed` as its last count of mesh peers.
    fn died(&mut self, meshed: &crate::network::Meshed) {
        self.swarm_died = true;
        self.meshed_before = meshed
            .iter()
            .filter(|(_, peers)| **peers > 0)
            .map(|(topic, _)| topic.clone())
            .collect();
    }

    fn node(&self) -> Result<Network, transport::Error> {
        self.node.clone().ok_or(transport::Error::Stopped)
    }
}

impl Actor for Transport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        match (self.started.take(), self.node.take()) {
            (Some(node), _) => self.attach(node, ctx, false),
            (None, _) if self.stopped => {}
            // Restarted after a panic in a handler: the same swarm goes on.
            (None, Some(node)) => self.attach(node, ctx, false),
            (None, None) => self.rebuild(ctx),
        }
    }
}

impl Supervised for Transport {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if std::mem::take(&mut self.swarm_died) {
            // Dropping the node aborts what is left of its task and frees
            // its ports for the new one.
            self.node = None;
        }
    }
}

impl supervise::Restartable for Transport {
    const NAME: &'static str = "transport";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Transport);

/// Resolves once `node` has mesh peers again on each of `topics`, or after
/// [`RECOVERY`].
async fn recovered(node: &Network, topics: &[PubsubTopic]) {
    let mut meshed = node.meshed();
    let back = meshed.wait_for(|m| {
        topics
            .iter()
            .all(|t| m.get(t).is_some_and(|peers| *peers > 0))
    });
    if !matches!(tokio::time::timeout(RECOVERY, back).await, Ok(Ok(_))) {
        tracing::warn!("the topics' peers are not back after the restart; serving anyway");
    }
}

impl Handler<Publish> for Transport {
    type Result = Forward;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Forward {
        let node = supervise::guard(self, ctx, |act, _| act.node());
        Forward {
            node: node.unwrap_or_else(|p| Err(p.into())),
            publish: msg,
        }
    }
}

/// A publish handed to the swarm with the asker's own reply channel: the
/// swarm answers the asker directly, so the actor spawns no task and adds no
/// channel per message (publishing is the hot path).
pub struct Forward {
    node: Result<Network, transport::Error>,
    publish: Publish,
}

impl MessageResponse<Transport, Publish> for Forward {
    fn handle(
        self,
        ctx: &mut Context<Transport>,
        tx: Option<OneshotSender<Result<MessageHash, transport::Error>>>,
    ) {
        let reply = tx.unwrap_or_else(|| tokio::sync::oneshot::channel().0);
        match self.node {
            Ok(node) => {
                // The swarm's queue is full: the mailbox waits with it.
                if let Some(room) = node.publish_to(self.publish.topic, self.publish.message, reply)
                {
                    ctx.wait(actix::fut::wrap_future(room));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

impl Handler<Subscribe> for Transport {
    type Result = ResponseFuture<Result<(), transport::Error>>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        let node = supervise::guard(self, ctx, |act, _| {
            let known = act.topics.entry(msg.topic.clone()).or_default();
            for c in &msg.content_topics {
                if !known.contains(c) {
                    known.push(c.clone());
                }
            }
            act.node()
        });
        Box::pin(async move { node??.subscribe_to(&msg.topic, msg.content_topics).await })
    }
}

impl Handler<Unsubscribe> for Transport {
    type Result = ResponseFuture<Result<(), transport::Error>>;

    fn handle(&mut self, Unsubscribe(topic): Unsubscribe, ctx: &mut Context<Self>) -> Self::Result {
        let node = supervise::guard(self, ctx, |act, _| {
            act.topics.remove(&topic);
            act.node()
        });
        Box::pin(async move { node??.unsubscribe(&topic).await })
    }
}

impl Handler<Dial> for Transport {
    type Result = ResponseFuture<Result<transport::PeerId, transport::Error>>;

    fn handle(&mut self, Dial(address): Dial, ctx: &mut Context<Self>) -> Self::Result {
        let node = supervise::guard(self, ctx, |act, _| act.node());
        Box::pin(async move { node??.dial(&address).await })
    }
}

impl Handler<QueryStore> for Transport {
    type Result = ResponseFuture<Result<Page, transport::Error>>;

    fn handle(&mut self, msg: QueryStore, ctx: &mut Context<Self>) -> Self::Result {
        let node = supervise::guard(self, ctx, |act, _| act.node());
        Box::pin(async move { node??.query_store(&msg.peer, msg.query).await })
    }
}

impl Handler<transport::PeerExchange> for Transport {
    type Result = ResponseFuture<Result<Vec<transport::Found>, transport::Error>>;

    fn handle(&mut self, msg: transport::PeerExchange, ctx: &mut Context<Self>) -> Self::Result {
        let node = supervise::guard(self, ctx, |act, _| act.node());
        Box::pin(async move {
            let records = node??.peer_exchange(&msg.peer, msg.n).await?;
            Ok(records
                .iter()
                .map(|record| {
                    let addresses = crate::enr::addresses(record)
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    let store = crate::enr::capabilities(record)
                        .is_some_and(|bits| bits & crate::enr::capability::STORE != 0);
                    transport::Found::new(addresses, store)
                })
                .collect())
        })
    }
}

impl Handler<Stop> for Transport {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        let _ = supervise::guard(self, ctx, |act, _| {
            // The last handle to the node goes: its task ends, the swarm
            // closes its connections and listeners.
            act.stopped = true;
            act.node = None;
            act.started = None;
            tracing::info!("transport stopped; the node is offline");
        });
    }
}

impl Handler<GetStatus> for Transport {
    type Result = ResponseFuture<Status>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        // After a panic here the status is that of a node restarting: empty.
        let node = supervise::guard(self, ctx, |act, _| act.node.clone()).unwrap_or_default();
        Box::pin(async move {
            match node {
                Some(node) => node.status().await,
                None => Status::default(),
            }
        })
    }
}

/// Makes the transport's swarm task panic (tests of supervision only), and
/// answers once the actor has noticed: whatever is sent to the stage after
/// the answer is handled by the rebuilt node.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct CrashSwarm;

#[cfg(feature = "fault-injection")]
impl Handler<CrashSwarm> for Transport {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: CrashSwarm, _: &mut Context<Self>) -> Self::Result {
        let node = self.node.clone();
        let meshed = node.as_ref().map(Network::meshed);
        AtomicResponse::new(Box::pin(
            async move {
                if let Some(node) = node {
                    let died = node.died();
                    node.inject_panic().await;
                    died.await;
                }
            }
            .into_actor(self)
            .map(move |(), act, ctx| {
                if let Some(meshed) = meshed {
                    act.died(&meshed.borrow());
                }
                ctx.stop();
            }),
        ))
    }
}
