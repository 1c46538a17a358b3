use std::{collections::BTreeMap, time::Duration};

use actix::{
    dev::{MessageResponse, OneshotSender},
    prelude::*,
    ActorFutureExt, Recipient, ResponseFuture, Supervised, Supervisor, WrapFuture,
};
use murmur_core::{
    store::Page,
    transport::{
        self, Dial, Event, GetStatus, Publish, QueryStore, Status, Stop, Subscribe, Unsubscribe,
    },
    MessageHash, PubsubTopic,
};

use crate::{Config, Error, Node};

/// How many messages may wait in the actor's mailbox.
const MAILBOX: usize = 1024;
/// How long to wait before retrying a failed rebuild after a crash.
const REBUILD_RETRY: Duration = Duration::from_secs(1);

/// The transport stage actor: a thin shell around a [`Node`].
///
/// It runs under an actix [`Supervisor`]. If the swarm task panics, the actor
/// stops, the supervisor restarts it, and it rebuilds the node on the same
/// ports with the same identity and subscriptions; static peers are redialled
/// and the mailbox keeps what arrived in between.
pub struct Transport {
    config: Config,
    events: Recipient<Event>,
    node: Option<Node>,
    started: Option<Node>,
    /// Subscriptions to restore after a restart: topic -> content topics.
    topics: BTreeMap<PubsubTopic, Vec<String>>,
    /// Asked to leave the network: no rebuild after that.
    stopped: bool,
}

impl Transport {
    /// Starts the node and, once it listens, the supervised actor around it.
    /// Events go to `events`. Bind and build errors are returned here, before
    /// any actor exists.
    pub async fn start(
        config: Config,
        events: Recipient<Event>,
    ) -> Result<(Addr<Self>, Node), Error> {
        let node = Node::start_for(config.clone(), events.clone()).await?;
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
        });
        Ok((addr, handle))
    }

    fn attach(&mut self, node: Node, ctx: &mut Context<Self>) {
        ctx.spawn(node.died().into_actor(self).map(|panic, _, ctx| {
            tracing::error!(%panic, "transport crashed; the supervisor restarts it");
            ctx.stop();
        }));
        let topics: Vec<(PubsubTopic, Vec<String>)> = self
            .topics
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect();
        let resubscribe = node.clone();
        ctx.wait(
            async move {
                for (topic, content_topics) in topics {
                    if let Err(e) = resubscribe.subscribe_to(&topic, content_topics).await {
                        tracing::warn!(%topic, error = %e, "could not resubscribe after restart");
                    }
                }
            }
            .into_actor(self),
        );
        self.node = Some(node);
    }

    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        let config = self.config.clone();
        ctx.wait(
            Node::start_for(config, self.events.clone())
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(node) => {
                        tracing::info!(peer = %node.peer_id(), "transport restarted");
                        act.attach(node, ctx);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "transport could not restart; retrying");
                        ctx.run_later(REBUILD_RETRY, |act, ctx| act.rebuild(ctx));
                    }
                }),
        );
    }

    fn node(&self) -> Result<Node, transport::Error> {
        self.node.clone().ok_or(transport::Error::Stopped)
    }
}

impl Actor for Transport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        match self.started.take() {
            Some(node) => self.attach(node, ctx),
            None if self.stopped => {}
            None => self.rebuild(ctx),
        }
    }
}

impl Supervised for Transport {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Dropping the node aborts what is left of its task and frees its ports.
        self.node = None;
    }
}

impl Handler<Publish> for Transport {
    type Result = Forward;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Forward {
        Forward {
            node: self.node(),
            publish: msg,
        }
    }
}

/// A publish handed to the swarm with the asker's own reply channel: the
/// swarm answers the asker directly, so the actor spawns no task and adds no
/// channel per message (publishing is the hot path).
pub struct Forward {
    node: Result<Node, transport::Error>,
    publish: Publish,
}

impl MessageResponse<Transport, Publish> for Forward {
    fn handle(
        self,
        _: &mut Context<Transport>,
        tx: Option<OneshotSender<Result<MessageHash, transport::Error>>>,
    ) {
        let reply = tx.unwrap_or_else(|| tokio::sync::oneshot::channel().0);
        match self.node {
            Ok(node) => node.publish_to(self.publish.topic, self.publish.message, reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

impl Handler<Subscribe> for Transport {
    type Result = ResponseFuture<Result<(), transport::Error>>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let known = self.topics.entry(msg.topic.clone()).or_default();
        for c in &msg.content_topics {
            if !known.contains(c) {
                known.push(c.clone());
            }
        }
        let node = self.node();
        Box::pin(async move { node?.subscribe_to(&msg.topic, msg.content_topics).await })
    }
}

impl Handler<Unsubscribe> for Transport {
    type Result = ResponseFuture<Result<(), transport::Error>>;

    fn handle(&mut self, Unsubscribe(topic): Unsubscribe, _: &mut Context<Self>) -> Self::Result {
        self.topics.remove(&topic);
        let node = self.node();
        Box::pin(async move { node?.unsubscribe(&topic).await })
    }
}

impl Handler<Dial> for Transport {
    type Result = ResponseFuture<Result<transport::PeerId, transport::Error>>;

    fn handle(&mut self, Dial(address): Dial, _: &mut Context<Self>) -> Self::Result {
        let node = self.node();
        Box::pin(async move { node?.dial(&address).await })
    }
}

impl Handler<QueryStore> for Transport {
    type Result = ResponseFuture<Result<Page, transport::Error>>;

    fn handle(&mut self, msg: QueryStore, _: &mut Context<Self>) -> Self::Result {
        let node = self.node();
        Box::pin(async move { node?.query_store(&msg.peer, msg.query).await })
    }
}

impl Handler<Stop> for Transport {
    type Result = ();

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) {
        // The last handle to the node goes: its task ends, the swarm closes
        // its connections and listeners.
        self.stopped = true;
        self.node = None;
        self.started = None;
        tracing::info!("transport stopped; the node is offline");
    }
}

impl Handler<GetStatus> for Transport {
    type Result = ResponseFuture<Status>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let node = self.node.clone();
        Box::pin(async move {
            match node {
                Some(node) => node.status().await,
                None => Status::default(),
            }
        })
    }
}

/// Makes the transport's swarm task panic (tests of supervision only).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

#[cfg(feature = "fault-injection")]
impl Handler<InjectPanic> for Transport {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) -> Self::Result {
        let node = self.node.clone();
        Box::pin(async move {
            if let Some(node) = node {
                node.inject_panic().await;
            }
        })
    }
}
