use actix::{dev::SendError, Recipient};
use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    future::Future,
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt};
use libp2p::{
    core::ConnectedPoint,
    gossipsub::{self, IdentTopic, MessageAcceptance, PublishError},
    multiaddr::Protocol,
    noise,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError, SwarmEvent,
    },
    tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use murmur_core::{
    transport::{self, Event, Status},
    Delivery, MessageHash, PubsubTopic, WakuMessage,
};
use murmur_proto::{metadata::Metadata, MAX_WAKU_MESSAGE_LEN};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    behaviour::{topic_score_params, Behaviour, BehaviourEvent},
    inbound::Incoming,
    metadata, Config, Error, Metrics, RejectReason,
};

const COMMAND_BUFFER: usize = 1024;
const REPORT_BUFFER: usize = 256;
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);
const REDIAL_MIN: Duration = Duration::from_secs(1);
const REDIAL_MAX: Duration = Duration::from_secs(60);
const REDIAL_TICK: Duration = Duration::from_millis(250);
/// Commands handled per wake-up at most, before the swarm is polled again.
const COMMAND_BATCH: usize = 64;
/// How often a backlog of events is offered again to a consumer that was full.
const FLUSH_TICK: Duration = Duration::from_millis(1);

type Reply<T> = oneshot::Sender<Result<T, transport::Error>>;

enum Command {
    Publish {
        topic: PubsubTopic,
        message: WakuMessage,
        reply: Reply<MessageHash>,
    },
    Subscribe {
        topic: PubsubTopic,
        content_topics: Vec<String>,
        reply: Reply<()>,
    },
    Unsubscribe {
        topic: PubsubTopic,
        reply: Reply<()>,
    },
    Dial {
        address: String,
        reply: Reply<transport::PeerId>,
    },
    Status(oneshot::Sender<Status>),
    QueryStore {
        peer: PeerId,
        query: murmur_core::store::Query,
        reply: Reply<murmur_core::store::Page>,
    },
    /// A lightpush we serve: publish and tell how many relay peers got it.
    Push {
        topic: PubsubTopic,
        message: WakuMessage,
        reply: Reply<(Delivery, usize)>,
    },
    /// A pushed message, archived: hand it to the local pipeline.
    Local(Delivery),
    /// A message our filter service pushed to us.
    Inbound(Delivery),
    /// Peer exchange, served: records to hand to `asker`.
    SamplePeers {
        n: usize,
        asker: PeerId,
        reply: oneshot::Sender<Vec<Vec<u8>>>,
    },
    /// Peer exchange, asked: query `peer` and learn what it answers.
    PeerExchange {
        peer: PeerId,
        n: u64,
        reply: Reply<Vec<crate::enr::Record>>,
    },
    /// Records learned from a peer exchange we asked for.
    Learned(Vec<crate::enr::Record>),
    /// A relay message whose archiving finished: accept it now.
    Archived {
        id: gossipsub::MessageId,
        source: PeerId,
        delivery: Delivery,
        saved: Result<bool, ()>,
    },
    /// A filter subscribe, unsubscribe or ping from `peer`.
    Filter {
        peer: PeerId,
        request: murmur_proto::filter::SubscribeRequest,
        reply: oneshot::Sender<(u32, &'static str)>,
    },
    /// A lightpush we make, through `peer`.
    LightPush {
        peer: PeerId,
        topic: PubsubTopic,
        message: WakuMessage,
        version: crate::lightpush::Version,
        reply: Reply<u32>,
    },
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// A running Waku node: the swarm lives on a thread of its own (or, see
/// [`Config::with_own_thread`], on the starter's runtime), driven through a
/// bounded command channel. Cloning shares the node; the swarm stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    bound: Vec<Multiaddr>,
    enr: String,
    died: watch::Receiver<Option<String>>,
    meshed: watch::Receiver<Meshed>,
}

/// Mesh peers per subscribed topic, as the swarm last counted them.
pub(crate) type Meshed = std::collections::BTreeMap<PubsubTopic, usize>;

impl Node {
    /// Builds the swarm, binds every listen address and starts dialling the
    /// static peers. Returns once the node listens, with the stream of its events.
    ///
    /// Must be called inside a tokio runtime (actix's is one).
    pub async fn start(config: Config) -> Result<(Self, mpsc::Receiver<Event>), Error> {
        let (tx, rx) = mpsc::channel(config.event_buffer);
        let node = Self::start_with(config, Sink::Channel(tx)).await?;
        Ok((node, rx))
    }

    /// Like [`Node::start`], but events go straight to an actor: one hop less
    /// on the hot path than a channel and a forwarding task.
    pub async fn start_for(config: Config, events: Recipient<Event>) -> Result<Self, Error> {
        Self::start_with(config, Sink::Actor(events)).await
    }

    async fn start_with(config: Config, sink: Sink) -> Result<Self, Error> {
        for addr in &config.static_peers {
            if peer_of(addr).is_none() {
                return Err(Error::StaticPeerWithoutId(addr.clone()));
            }
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
        let relay = Relay(commands.downgrade());
        let (ready_tx, ready_rx) = oneshot::channel();
        let (died_tx, died) = watch::channel(None);
        let (meshed_tx, meshed) = watch::channel(Meshed::new());
        let own_thread = config.own_thread;
        let timer_nice = config.timer_nice;
        let network = run_network(
            config,
            sink,
            (command_rx, relay),
            ready_tx,
            (died_tx, meshed_tx),
        );
        // It ends by itself once the last `Node` clone, and with it the
        // command channel, is gone.
        if own_thread {
            // A thread and a runtime of its own, so that the network keeps
            // its pace whatever the application's actors are doing.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Build(e.to_string()))?;
            std::thread::Builder::new()
                .name("murmur-net".to_owned())
                .spawn(move || runtime.block_on(network))
                .map_err(|e| Error::Build(format!("cannot start the network thread: {e}")))?;
        } else {
            tokio::spawn(network);
        }
        let started = ready_rx
            .await
            .map_err(|_| Error::Build("the network thread ended during start".to_owned()))??;
        crate::timer::lower_priority(timer_nice);
        Ok(Self {
            commands,
            peer_id: started.peer_id,
            listen_addrs: started.listen_addrs,
            bound: started.bound,
            enr: started.enr,
            died,
            meshed,
        })
    }

    /// Mesh peers per topic, updated as the mesh changes (every 250 ms at
    /// most); after the swarm died, the last count it made.
    pub(crate) fn meshed(&self) -> watch::Receiver<Meshed> {
        self.meshed.clone()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Every address the node listens on, ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The configured listen addresses with the ports actually bound, so that
    /// a restarted node listens where peers knew it.
    pub fn bound_addrs(&self) -> &[Multiaddr] {
        &self.bound
    }

    /// Publishes `message` on `topic`, setting its timestamp to now if it has none.
    pub async fn publish(
        &self,
        topic: &PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, transport::Error> {
        self.ask(|reply| Command::Publish {
            topic: topic.clone(),
            message,
            reply,
        })
        .await
    }

    /// Publishes like [`Node::publish`], answering on `reply`: for a caller
    /// that already holds a reply channel (the transport actor's asker).
    pub(crate) fn publish_to(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
        reply: Reply<MessageHash>,
    ) {
        let command = Command::Publish {
            topic,
            message,
            reply,
        };
        // The asker's channel is not ours to drop: tell it the node is gone.
        self.submit(command, |command| {
            if let Command::Publish { reply, .. } = command {
                let _ = reply.send(Err(transport::Error::Stopped));
            }
        });
    }

    /// Subscribes to `topic` (a relay node receives all of it).
    pub async fn subscribe(&self, topic: &PubsubTopic) -> Result<(), transport::Error> {
        self.subscribe_to(topic, Vec::new()).await
    }

    /// Subscribes to these content topics on `topic`; a light client asks its
    /// filter service for exactly these.
    pub async fn subscribe_to(
        &self,
        topic: &PubsubTopic,
        content_topics: Vec<String>,
    ) -> Result<(), transport::Error> {
        self.ask(|reply| Command::Subscribe {
            topic: topic.clone(),
            content_topics,
            reply,
        })
        .await
    }

    /// Unsubscribes from `topic`.
    pub async fn unsubscribe(&self, topic: &PubsubTopic) -> Result<(), transport::Error> {
        self.ask(|reply| Command::Unsubscribe {
            topic: topic.clone(),
            reply,
        })
        .await
    }

    /// Connects to `address`; answers once the connection is up.
    pub async fn dial(&self, address: &str) -> Result<transport::PeerId, transport::Error> {
        let address = address.to_owned();
        let dial = self.ask(|reply| Command::Dial {
            address: address.clone(),
            reply,
        });
        tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .unwrap_or_else(|_| {
                Err(transport::Error::Dial {
                    address,
                    reason: "timed out".to_owned(),
                })
            })
    }

    /// Connects to `address` (if not connected yet) and answers the peer's id.
    async fn connect(&self, address: &str) -> Result<PeerId, transport::Error> {
        let peer = self.dial(address).await?;
        peer.0.parse().map_err(|_| transport::Error::Address {
            address: address.to_owned(),
            reason: "no peer id".to_owned(),
        })
    }

    /// Asks the store node at `address` for one page of `query`, connecting
    /// first if needed.
    pub async fn query_store(
        &self,
        address: &str,
        query: murmur_core::store::Query,
    ) -> Result<murmur_core::store::Page, transport::Error> {
        let peer = self.connect(address).await?;
        self.ask(|reply| Command::QueryStore { peer, query, reply })
            .await
    }

    /// Pushes `message` through the lightpush service at `address` (v3, or v2
    /// if that is all it speaks), connecting first if needed; answers how many
    /// relay peers it reached.
    pub async fn lightpush(
        &self,
        address: &str,
        topic: &PubsubTopic,
        message: WakuMessage,
    ) -> Result<u32, transport::Error> {
        self.lightpush_with(address, topic, message, crate::lightpush::Version::V3)
            .await
    }

    /// Like [`Node::lightpush`], choosing the protocol version.
    pub async fn lightpush_with(
        &self,
        address: &str,
        topic: &PubsubTopic,
        message: WakuMessage,
        version: crate::lightpush::Version,
    ) -> Result<u32, transport::Error> {
        let peer = self.connect(address).await?;
        let topic = topic.clone();
        self.ask(|reply| Command::LightPush {
            peer,
            topic,
            message,
            version,
            reply,
        })
        .await
    }

    /// Asks the node at `address` for up to `n` peer records (peer exchange),
    /// connecting first if needed. The records are kept to hand out in turn;
    /// [`crate::enr::addresses`] tells where to dial each.
    pub async fn peer_exchange(
        &self,
        address: &str,
        n: u64,
    ) -> Result<Vec<crate::enr::Record>, transport::Error> {
        let peer = self.connect(address).await?;
        self.ask(|reply| Command::PeerExchange { peer, n, reply })
            .await
    }

    /// The node's own record, `enr:…`, signed with its key.
    pub fn enr(&self) -> &str {
        &self.enr
    }

    /// The node's view of the network.
    pub async fn status(&self) -> Status {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Status(reply)).await.is_err() {
            return Status::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Resolves with the panic message if the swarm task panics.
    pub fn died(&self) -> impl Future<Output = String> + Send + 'static {
        let mut died = self.died.clone();
        async move {
            let message = died
                .wait_for(Option::is_some)
                .await
                .map(|m| m.clone().unwrap_or_default());
            match message {
                Ok(message) => message,
                // The task ended without panicking: never resolve.
                Err(_) => futures::future::pending().await,
            }
        }
    }

    /// Makes the swarm task panic, to exercise supervision.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self) {
        let _ = self.commands.send(Command::Panic).await;
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, transport::Error> {
        let (reply, rx) = oneshot::channel();
        // Refused, the command drops its reply channel: `rx` then says so.
        self.submit(command(reply), drop);
        rx.await.map_err(|_| transport::Error::Stopped)?
    }

    /// Queues `command` for the swarm without waiting: most of the time there
    /// is room; when the channel is full a task waits for it, and the caller
    /// waits for its answer meanwhile (back-pressure). A command the node can
    /// no longer take goes to `refused`.
    fn submit(&self, command: Command, refused: impl FnOnce(Command) + Send + 'static) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                tokio::spawn(async move {
                    if let Err(mpsc::error::SendError(command)) = commands.send(command).await {
                        refused(command);
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(command)) => refused(command),
        }
    }
}

/// What protocol services hold to reach the swarm: a weak sender, so that
/// they never keep a dropped node alive.
#[derive(Clone)]
pub(crate) struct Relay(mpsc::WeakSender<Command>);

impl Relay {
    /// Sends a command that expects no answer; nothing if the node is gone.
    async fn tell(&self, command: Command) {
        if let Some(commands) = self.0.upgrade() {
            let _ = commands.send(command).await;
        }
    }

    /// Sends a command and waits for its answer; `None` if the node is gone.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let commands = self.0.upgrade()?;
        let (reply, rx) = oneshot::channel();
        commands.send(command(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Publishes on relay; answers the delivery and how many peers got it.
    pub(crate) async fn publish(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<(Delivery, usize), transport::Error> {
        self.ask(|reply| Command::Push {
            topic,
            message,
            reply,
        })
        .await
        .unwrap_or(Err(transport::Error::Stopped))
    }

    /// Applies a filter request from `peer`.
    pub(crate) async fn filter(
        &self,
        peer: PeerId,
        request: murmur_proto::filter::SubscribeRequest,
    ) -> (u32, &'static str) {
        self.ask(|reply| Command::Filter {
            peer,
            request,
            reply,
        })
        .await
        .unwrap_or((
            murmur_proto::filter::status::SERVICE_UNAVAILABLE,
            "the node is stopping",
        ))
    }

    /// Reports that a relay message was archived (or not).
    pub(crate) async fn archived(
        &self,
        id: gossipsub::MessageId,
        source: PeerId,
        delivery: Delivery,
        saved: Result<bool, ()>,
    ) {
        self.tell(Command::Archived {
            id,
            source,
            delivery,
            saved,
        })
        .await;
    }

    /// Up to `n` known peer records for `asker`.
    pub(crate) async fn sample_peers(&self, n: usize, asker: PeerId) -> Vec<Vec<u8>> {
        self.ask(|reply| Command::SamplePeers { n, asker, reply })
            .await
            .unwrap_or_default()
    }

    /// Keeps records learned from a peer exchange, to hand out in turn.
    pub(crate) async fn learn(&self, records: Vec<crate::enr::Record>) {
        self.tell(Command::Learned(records)).await;
    }

    /// Hands a message our filter service pushed to the local pipeline.
    pub(crate) async fn inbound(&self, delivery: Delivery) {
        self.tell(Command::Inbound(delivery)).await;
    }

    /// Hands a pushed message to the local pipeline.
    pub(crate) async fn deliver_locally(&self, delivery: Delivery) {
        self.tell(Command::Local(delivery)).await;
    }
}

/// What the network thread reports once it listens.
struct Started {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    bound: Vec<Multiaddr>,
    enr: String,
}

/// Builds the swarm, binds, reports, then drives it until every `Node` clone
/// is gone or it panics.
async fn run_network(
    config: Config,
    sink: Sink,
    (commands, relay): (mpsc::Receiver<Command>, Relay),
    ready: oneshot::Sender<Result<Started, Error>>,
    (died, meshed): (watch::Sender<Option<String>>, watch::Sender<Meshed>),
) {
    let (mut driver, services, ours, started) =
        match prepare(&config, sink, commands, (relay.clone(), meshed)).await {
            Ok(parts) => parts,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
    if ready.send(Ok(started)).is_err() {
        return;
    }
    let mut served = vec![tokio::spawn(metadata::serve(
        services.metadata,
        ours,
        driver.reports_tx.clone(),
    ))];
    if let Some((incoming, archive)) = services.store {
        served.push(tokio::spawn(crate::store::serve(incoming, archive)));
    }
    if let Some(incoming) = services.peer_exchange {
        served.push(tokio::spawn(crate::peer_exchange::serve(
            incoming,
            relay.clone(),
        )));
    }
    if let Some(incoming) = services.filter_push {
        served.push(tokio::spawn(crate::filter::receive(
            incoming,
            relay.clone(),
        )));
    }
    if let Some(incoming) = services.filter {
        served.push(tokio::spawn(crate::filter::serve(incoming, relay.clone())));
    }
    if let Some((v3, v2)) = services.lightpush {
        let service = crate::lightpush::Service {
            relay,
            archive: config.archive.clone(),
            sharding: config.sharding(),
        };
        served.push(tokio::spawn(crate::lightpush::serve(
            v3,
            service.clone(),
            false,
        )));
        served.push(tokio::spawn(crate::lightpush::serve(v2, service, true)));
    }
    driver.dial_static_peers();
    let outcome = AssertUnwindSafe(driver.run()).catch_unwind().await;
    for task in served {
        task.abort();
    }
    // Free the ports before anyone hears of the crash and rebinds them.
    drop(driver);
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(panic = %message, "transport task panicked");
        let _ = died.send(Some(message));
    }
}

async fn prepare(
    config: &Config,
    sink: Sink,
    commands: mpsc::Receiver<Command>,
    (myself, meshed): (Relay, watch::Sender<Meshed>),
) -> Result<(Driver, Services, Metadata, Started), Error> {
    // Protocols must be registered before any connection exists: js-waku
    // does not support identify push and would never learn of them.
    let mut served = crate::inbound::Registry::default();
    let incoming = served.accept(metadata::PROTOCOL);
    let lightpush = config.lightpush.then(|| {
        (
            served.accept(crate::lightpush::V3),
            served.accept(crate::lightpush::V2),
        )
    });
    let filter = config
        .filter
        .then(|| served.accept(crate::filter::SUBSCRIBE));
    let peer_exchange = config
        .peer_exchange
        .then(|| served.accept(crate::peer_exchange::PROTOCOL));
    let filter_push = config
        .light
        .is_some()
        .then(|| served.accept(crate::filter::PUSH));
    let store = config
        .store
        .as_ref()
        .map(|archive| (served.accept(crate::store::PROTOCOL), archive.clone()));
    let mut swarm = build_swarm(config, served).await?;
    let control = swarm.behaviour().streams.new_control();

    let mut pending = HashMap::new();
    for addr in &config.listen {
        let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            address: addr.clone(),
            reason: root_cause(&e),
        })?;
        pending.insert(id, addr.clone());
    }
    let peer_id = *swarm.local_peer_id();
    let mut listen_addrs = Vec::new();
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| Error::Build("listeners did not come up in time".to_owned()))?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some(requested) = pending.remove(&listener_id) {
                    bound.push(with_port_of(&requested, &address));
                }
                listen_addrs.push(address.with(Protocol::P2p(peer_id)));
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if pending.contains_key(&listener_id) => {
                let address = pending
                    .remove(&listener_id)
                    .unwrap_or_else(Multiaddr::empty);
                let reason = match reason {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => root_cause(&e),
                };
                return Err(Error::Listen { address, reason });
            }
            _ => {}
        }
    }

    let ours = Metadata::new(
        u32::from(config.cluster()),
        config.shards.iter().map(|&s| u32::from(s)),
    );
    let (reports_tx, reports) = mpsc::channel(REPORT_BUFFER);
    let driver = Driver {
        swarm,
        control,
        ours: ours.clone(),
        cluster: config.cluster(),
        commands,
        sink,
        backlog: VecDeque::new(),
        backlog_limit: config.event_buffer,
        reports,
        reports_tx,
        metrics: config.metrics.clone(),
        static_peers: config
            .static_peers
            .iter()
            .filter_map(|a| Some((peer_of(a)?, StaticPeer::new(a.clone()))))
            .collect(),
        waiters: HashMap::new(),
        anonymous_dials: HashMap::new(),
        addresses: HashMap::new(),
        confirmed: BTreeSet::new(),
        filter: crate::filter::Subscriptions::default(),
        push_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(crate::filter::MAX_PUSHES)),
        light: config
            .light
            .as_ref()
            .and_then(peer_of)
            .map(|service| Light {
                service,
                filters: Default::default(),
                pinged: Instant::now(),
            }),
        archive: config.archive.clone(),
        peer_cache: {
            let mut cache = crate::peer_exchange::Cache::default();
            for record in &config.bootstrap {
                cache.learn(record);
            }
            cache
        },
        enr: String::new(),
        myself,
        meshed,
        tasks: crate::tasks::Tasks::new(),
    };
    let enr = {
        use crate::enr::capability;
        let mut capabilities = 0;
        if config.light.is_none() {
            capabilities |= capability::RELAY;
        }
        if config.store.is_some() {
            capabilities |= capability::STORE;
        }
        if config.filter {
            capabilities |= capability::FILTER;
        }
        if config.lightpush {
            capabilities |= capability::LIGHTPUSH;
        }
        crate::enr::build(
            &config.keypair,
            &listen_addrs,
            capabilities,
            config.cluster(),
            &config.shards,
        )
        .map_err(Error::Build)?
        .to_base64()
    };
    let mut driver = driver;
    driver.enr = enr.clone();
    let started = Started {
        peer_id,
        listen_addrs,
        bound,
        enr,
    };
    Ok((
        driver,
        Services {
            metadata: incoming,
            store,
            lightpush,
            filter,
            filter_push,
            peer_exchange,
        },
        ours,
        started,
    ))
}

/// The inbound protocol handlers to run beside the swarm.
struct Services {
    metadata: Incoming,
    store: Option<(Incoming, actix::Recipient<murmur_core::storage::Query>)>,
    lightpush: Option<(Incoming, Incoming)>,
    filter: Option<Incoming>,
    filter_push: Option<Incoming>,
    peer_exchange: Option<Incoming>,
}

async fn build_swarm(
    config: &Config,
    served: crate::inbound::Registry,
) -> Result<Swarm<Behaviour>, Error> {
    let build = |e: &dyn std::error::Error| Error::Build(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            // js-waku speaks only mplex; nwaku both; go-waku only yamux.
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .map_err(|e| build(&e))?
        .with_dns()
        .map_err(|e| build(&e))?
        .with_websocket(
            noise::Config::new,
            (yamux::Config::default, libp2p_mplex::Config::default),
        )
        .await
        .map_err(|e| build(&e))?
        .with_behaviour(|key| Behaviour::new(key, served).map_err(Box::from))
        .map_err(|e| Error::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// How often a light client pings its filter service (subscriptions expire
/// after 5 minutes without one; js-waku pings every minute too).
const FILTER_PING: Duration = Duration::from_secs(60);

/// A light client's state: its service and what it asked the service's filter for.
struct Light {
    service: PeerId,
    filters: std::collections::BTreeMap<PubsubTopic, BTreeSet<String>>,
    pinged: Instant,
}

fn filter_request(
    kind: i32,
    topic: &PubsubTopic,
    content_topics: Vec<String>,
) -> murmur_proto::filter::SubscribeRequest {
    murmur_proto::filter::SubscribeRequest {
        request_id: murmur_core::RequestId::next().to_string(),
        filter_subscribe_type: kind,
        pubsub_topic: Some(topic.as_str().to_owned()),
        content_topics,
    }
}

/// Where events go.
enum Sink {
    Channel(mpsc::Sender<Event>),
    Actor(Recipient<Event>),
}

/// What became of an event offered to the consumer.
// Lives for one match, never stored: boxing the event would cost more.
#[allow(clippy::large_enum_variant)]
enum Offer {
    Taken,
    /// No room now; here it is back.
    Full(Event),
    /// The consumer is gone.
    Gone,
}

impl Sink {
    fn offer(&self, event: Event) -> Offer {
        match self {
            Self::Channel(tx) => match tx.try_send(event) {
                Ok(()) => Offer::Taken,
                Err(mpsc::error::TrySendError::Full(event)) => Offer::Full(event),
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            },
            Self::Actor(to) => match to.try_send(event) {
                Ok(()) => Offer::Taken,
                Err(SendError::Full(event)) => Offer::Full(event),
                Err(SendError::Closed(_)) => Offer::Gone,
            },
        }
    }
}

struct StaticPeer {
    address: Multiaddr,
    backoff: Duration,
    due: Option<Instant>,
    connected: bool,
    /// On another cluster: not redialled.
    refused: bool,
}

impl StaticPeer {
    fn new(address: Multiaddr) -> Self {
        Self {
            address,
            backoff: REDIAL_MIN,
            due: Some(Instant::now()),
            connected: false,
            refused: false,
        }
    }

    fn schedule_redial(&mut self) {
        self.connected = false;
        self.due = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(REDIAL_MAX);
    }
}

struct Driver {
    swarm: Swarm<Behaviour>,
    control: libp2p_stream::Control,
    ours: Metadata,
    cluster: u16,
    commands: mpsc::Receiver<Command>,
    sink: Sink,
    /// Events the consumer had no room for yet, oldest first.
    backlog: VecDeque<Event>,
    backlog_limit: usize,
    reports: mpsc::Receiver<metadata::Report>,
    reports_tx: mpsc::Sender<metadata::Report>,
    metrics: Metrics,
    static_peers: HashMap<PeerId, StaticPeer>,
    waiters: HashMap<PeerId, Vec<(String, Reply<transport::PeerId>)>>,
    anonymous_dials: HashMap<ConnectionId, (String, Reply<transport::PeerId>)>,
    addresses: HashMap<PeerId, Multiaddr>,
    confirmed: BTreeSet<PeerId>,
    filter: crate::filter::Subscriptions,
    push_permits: std::sync::Arc<tokio::sync::Semaphore>,
    light: Option<Light>,
    /// Where relay messages are archived before they are accepted.
    archive: Option<actix::Recipient<murmur_core::storage::SaveRaw>>,
    /// Records to hand out through peer exchange.
    peer_cache: crate::peer_exchange::Cache,
    /// Our own record.
    enr: String,
    /// The driver's own command channel, weakly, for tasks that report back.
    myself: Relay,
    /// Where the mesh counts go, for the transport actor to tell, after a
    /// crash, which topics had peers.
    meshed: watch::Sender<Meshed>,
    /// Requests and archiving in flight, bounded.
    tasks: crate::tasks::Tasks,
}

impl Driver {
    async fn run(&mut self) {
        let mut redial = tokio::time::interval(REDIAL_TICK);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(FLUSH_TICK);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = flush.tick(), if !self.backlog.is_empty() => self.flush(),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command);
                        // Under load commands arrive faster than the swarm
                        // needs polling: take what is queued before the next
                        // (costly) poll of every connection and behaviour.
                        for _ in 1..COMMAND_BATCH {
                            match self.commands.try_recv() {
                                Ok(command) => self.on_command(command),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                Some(report) = self.reports.recv() => self.on_report(report),
                () = self.tasks.next(), if !self.tasks.is_empty() => {}
                _ = redial.tick() => {
                    self.count_mesh();
                    self.dial_static_peers();
                    self.refresh_filters(false);
                    let expired = self.filter.expire(Instant::now());
                    if expired > 0 {
                        tracing::debug!(expired, "filter subscriptions expired");
                    }
                }
            }
        }
        tracing::debug!("transport task stopping");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                topic,
                message,
                reply,
            } => match &self.light {
                Some(light) => self.light_publish(light.service, topic, message, reply),
                None => {
                    let _ = reply.send(
                        self.publish_counted(&topic, message, false)
                            .map(|(d, _)| d.hash),
                    );
                }
            },
            Command::Subscribe {
                topic,
                content_topics,
                reply,
            } => {
                if self.light.is_some() {
                    self.light_subscribe(&topic, content_topics, reply);
                    return;
                }
                let relay = &mut self.swarm.behaviour_mut().relay;
                let ident = IdentTopic::new(topic.as_str());
                let result =
                    relay
                        .subscribe(&ident)
                        .map(|_| ())
                        .map_err(|e| transport::Error::Address {
                            address: topic.to_string(),
                            reason: e.to_string(),
                        });
                if result.is_ok() {
                    if let Err(e) = relay.set_topic_params(ident, topic_score_params()) {
                        tracing::warn!(%topic, error = e, "topic score parameters refused");
                    }
                    tracing::info!(%topic, "subscribed");
                }
                let _ = reply.send(result);
            }
            Command::Unsubscribe { topic, reply } => {
                if let Some(light) = &mut self.light {
                    // Light mode: tell the filter service we want none of it.
                    let content: Vec<String> = light
                        .filters
                        .remove(&topic)
                        .map(|c| c.into_iter().collect())
                        .unwrap_or_default();
                    if content.is_empty() {
                        let _ = reply.send(Ok(()));
                        return;
                    }
                    let request =
                        filter_request(murmur_proto::filter::kind::UNSUBSCRIBE, &topic, content);
                    let (control, service) = (self.control.clone(), light.service);
                    self.answer(reply, crate::filter::request(control, service, request));
                    return;
                }
                self.swarm
                    .behaviour_mut()
                    .relay
                    .unsubscribe(&IdentTopic::new(topic.as_str()));
                let _ = reply.send(Ok(()));
            }
            Command::Dial { address, reply } => self.dial(address, reply),
            Command::Status(reply) => {
                self.count_mesh();
                let _ = reply.send(self.status());
            }
            Command::Push {
                topic,
                message,
                reply,
            } => {
                let _ = reply.send(self.publish_counted(&topic, message, true));
            }
            Command::Local(delivery) => self.emit(Event::Pushed(delivery)),
            Command::Archived {
                id,
                source,
                delivery,
                saved,
            } => {
                // Forwarded only now: what we accept is on disk first.
                self.swarm
                    .behaviour_mut()
                    .relay
                    .report_message_validation_result(&id, &source, MessageAcceptance::Accept);
                match saved {
                    Ok(true) => {
                        self.metrics.inc_received();
                        self.push_to_filter_subscribers(&delivery);
                        self.emit(Event::Archived(delivery));
                    }
                    // Archived before (a store sync, a lightpush relayed back):
                    // already delivered here.
                    Ok(false) => {}
                    // The archive failed: the pipeline tries again and delivers.
                    Err(()) => {
                        self.metrics.inc_received();
                        self.push_to_filter_subscribers(&delivery);
                        self.emit(Event::Message(delivery));
                    }
                }
            }
            Command::SamplePeers { n, asker, reply } => {
                let _ = reply.send(self.peer_cache.sample(n, asker));
            }
            Command::PeerExchange { peer, n, reply } => {
                let control = self.control.clone();
                let myself = self.myself.clone();
                self.answer(reply, async move {
                    let result = crate::peer_exchange::request(control, peer, n).await;
                    if let Ok(records) = &result {
                        myself.learn(records.clone()).await;
                    }
                    result
                });
            }
            Command::Learned(records) => {
                for record in &records {
                    self.peer_cache.learn(record);
                }
            }
            Command::Inbound(delivery) => {
                self.metrics.inc_received();
                self.emit(Event::Message(delivery));
            }
            Command::Filter {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(self.filter.apply(peer, &request, Instant::now()));
            }
            Command::LightPush {
                peer,
                topic,
                message,
                version,
                reply,
            } => {
                let control = self.control.clone();
                self.answer(
                    reply,
                    crate::lightpush::request(control, peer, topic, message, version),
                );
            }
            Command::QueryStore { peer, query, reply } => {
                let control = self.control.clone();
                self.answer(reply, crate::store::request(control, peer, query));
            }
            #[cfg(feature = "fault-injection")]
            Command::Panic => panic!("fault injected into the transport task"),
        }
    }

    /// Publishes, answering the delivery as published and, if `count`, how
    /// many peers on the topic it was sent to (0 otherwise).
    fn publish_counted(
        &mut self,
        topic: &PubsubTopic,
        mut message: WakuMessage,
        count: bool,
    ) -> Result<(Delivery, usize), transport::Error> {
        if message.timestamp.is_none() {
            message.timestamp = Some(murmur_core::now_nanos());
        }
        let bytes = message.encode_to_vec();
        transport::validate(&message, bytes.len())?;
        let topic_hash = gossipsub::TopicHash::from_raw(topic.as_str());
        let relay = &mut self.swarm.behaviour_mut().relay;
        // Only a lightpush answer needs the count; it costs a walk over every peer.
        let peers = if count {
            relay
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&topic_hash))
                .count()
        } else {
            0
        };
        let delivery = Delivery::new(topic.clone(), message);
        let hash = delivery.hash;
        match relay.publish(topic_hash, bytes) {
            Ok(_) => {
                self.metrics.inc_published();
                tracing::debug!(%topic, %hash, "published");
                self.push_to_filter_subscribers(&delivery);
                Ok((delivery, peers))
            }
            Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::AllQueuesFull(0)) => {
                Err(transport::Error::NoPeers(topic.clone()))
            }
            Err(PublishError::Duplicate) => Err(transport::Error::Duplicate(hash)),
            Err(PublishError::MessageTooLarge) => Err(transport::Error::TooLarge {
                len: delivery.message.encoded_len(),
                max: MAX_WAKU_MESSAGE_LEN,
            }),
            Err(PublishError::AllQueuesFull(_)) => Err(transport::Error::Dial {
                address: topic.to_string(),
                reason: "every peer's send queue is full; slow down".to_owned(),
            }),
            Err(e) => Err(transport::Error::Dial {
                address: topic.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Light mode: publish through the service's lightpush.
    fn light_publish(
        &mut self,
        service: PeerId,
        topic: PubsubTopic,
        mut message: WakuMessage,
        reply: Reply<MessageHash>,
    ) {
        message.timestamp.get_or_insert_with(murmur_core::now_nanos);
        if let Err(e) = transport::validate(&message, message.encoded_len()) {
            let _ = reply.send(Err(e));
            return;
        }
        let hash = MessageHash::of(&topic, &message);
        let control = self.control.clone();
        self.answer(reply, async move {
            crate::lightpush::request(
                control,
                service,
                topic,
                message,
                crate::lightpush::Version::V3,
            )
            .await
            .map(|_| hash)
        });
    }

    /// Light mode: ask the service's filter for these content topics.
    fn light_subscribe(
        &mut self,
        topic: &PubsubTopic,
        content_topics: Vec<String>,
        reply: Reply<()>,
    ) {
        let Some(light) = &mut self.light else {
            return;
        };
        if content_topics.is_empty() {
            let _ = reply.send(Err(transport::Error::Invalid(
                "a light client subscribes to content topics, through its filter service",
            )));
            return;
        }
        light
            .filters
            .entry(topic.clone())
            .or_default()
            .extend(content_topics.iter().cloned());
        let request = filter_request(murmur_proto::filter::kind::SUBSCRIBE, topic, content_topics);
        let (control, service) = (self.control.clone(), light.service);
        self.answer(reply, crate::filter::request(control, service, request));
    }

    /// Light mode: refresh our filter subscriptions (every minute), and
    /// subscribe again where the service has forgotten us.
    fn refresh_filters(&mut self, resubscribe: bool) {
        let Some(light) = &mut self.light else {
            return;
        };
        if light.filters.is_empty() || !self.swarm.is_connected(&light.service) {
            return;
        }
        let now = Instant::now();
        if !resubscribe && now.duration_since(light.pinged) < FILTER_PING {
            return;
        }
        light.pinged = now;
        let (control, service) = (self.control.clone(), light.service);
        let subscriptions: Vec<_> = light
            .filters
            .iter()
            .map(|(t, c)| {
                filter_request(
                    murmur_proto::filter::kind::SUBSCRIBE,
                    t,
                    c.iter().cloned().collect(),
                )
            })
            .collect();
        self.run_beside("filter refresh", async move {
            let ping = murmur_proto::filter::SubscribeRequest {
                request_id: murmur_core::RequestId::next().to_string(),
                filter_subscribe_type: murmur_proto::filter::kind::PING,
                ..Default::default()
            };
            let alive = !resubscribe
                && crate::filter::request(control.clone(), service, ping)
                    .await
                    .is_ok();
            if !alive {
                for request in subscriptions {
                    if let Err(e) = crate::filter::request(control.clone(), service, request).await
                    {
                        tracing::warn!(error = %e, "filter resubscription failed");
                    }
                }
            }
        });
    }

    fn push_to_filter_subscribers(&mut self, delivery: &Delivery) {
        let peers = self.filter.matching(
            delivery.pubsub_topic.as_str(),
            &delivery.message.content_topic,
        );
        if peers.is_empty() {
            return;
        }
        let frame = crate::filter::frame(delivery);
        for peer in peers {
            if !crate::filter::push(
                self.control.clone(),
                peer,
                frame.clone(),
                &self.push_permits,
            ) {
                self.metrics.inc_dropped();
                tracing::warn!(%peer, "too many filter pushes in flight; push dropped");
            }
        }
    }

    fn dial(&mut self, address: String, reply: Reply<transport::PeerId>) {
        let addr: Multiaddr = match address.parse() {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(transport::Error::Address {
                    address,
                    reason: e.to_string(),
                }));
                return;
            }
        };
        let Some(peer) = peer_of(&addr) else {
            let opts = DialOpts::unknown_peer_id().address(addr).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.anonymous_dials.insert(id, (address, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(dial_error(address, &e)));
                }
            }
            return;
        };
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(transport::PeerId(peer.to_string())));
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            // Already dialling: the waiter rides on that attempt.
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                self.waiters.entry(peer).or_default().push((address, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(dial_error(address, &e)));
            }
        }
    }

    fn dial_static_peers(&mut self) {
        let now = Instant::now();
        let due: Vec<(PeerId, Multiaddr)> = self
            .static_peers
            .iter_mut()
            .filter(|(_, p)| !p.connected && !p.refused && p.due.is_some_and(|d| d <= now))
            .map(|(id, p)| {
                p.due = None;
                (*id, p.address.clone())
            })
            .collect();
        for (peer, address) in due {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            tracing::debug!(%peer, %address, "dialling static peer");
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![address])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(opts) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(e) => {
                    tracing::warn!(%peer, error = %root_cause(&e), "static peer dial failed");
                    if let Some(p) = self.static_peers.get_mut(&peer) {
                        p.schedule_redial();
                    }
                }
            }
        }
    }

    /// Answers `reply` with what `work` comes to, run beside the swarm; with
    /// [`transport::Error::Busy`] at once when too much is in flight.
    fn answer<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        work: impl Future<Output = Result<T, transport::Error>> + Send + 'static,
    ) {
        if self.tasks.is_full() {
            tracing::warn!("too many requests in flight; one refused");
            let _ = reply.send(Err(transport::Error::Busy));
            return;
        }
        let _ = self.tasks.start(async move {
            let _ = reply.send(work.await);
        });
    }

    /// Runs `work` beside the swarm, or lets it go (logged) when too much is
    /// in flight: for work nobody waits on.
    fn run_beside(&mut self, what: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        if self.tasks.start(work).is_err() {
            tracing::warn!(what, "too much in flight; not done");
        }
    }

    fn count_mesh(&self) {
        let relay = &self.swarm.behaviour().relay;
        let now: Meshed = relay
            .topics()
            .filter_map(|hash| Some((hash.as_str().parse().ok()?, relay.mesh_peers(hash).count())))
            .collect();
        self.meshed.send_if_modified(|meshed| {
            let changed = *meshed != now;
            *meshed = now;
            changed
        });
    }

    fn status(&self) -> Status {
        let relay = &self.swarm.behaviour().relay;
        let mut status = Status::default();
        status.peer_id = Some(transport::PeerId(self.swarm.local_peer_id().to_string()));
        status.enr = Some(self.enr.clone());
        status.listen_addrs = self
            .swarm
            .listeners()
            .map(|a| {
                a.clone()
                    .with(Protocol::P2p(*self.swarm.local_peer_id()))
                    .to_string()
            })
            .collect();
        status.peers = self
            .swarm
            .connected_peers()
            .map(|p| transport::PeerId(p.to_string()))
            .collect();
        status.topics = relay
            .topics()
            .filter_map(|hash| {
                let topic = hash.as_str().parse().ok()?;
                Some((topic, relay.mesh_peers(hash).count()))
            })
            .collect();
        status
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Relay(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_relay_message(propagation_source, &message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                tracing::debug!(
                    peer = %peer_id,
                    agent = %info.agent_version,
                    protocols = ?info.protocols,
                    "identified peer"
                );
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                let id = transport::PeerId(peer_id.to_string());
                if let Some((_, reply)) = self.anonymous_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(id.clone()));
                }
                for (_, reply) in self.waiters.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(id.clone()));
                }
                if let Some(p) = self.static_peers.get_mut(&peer_id) {
                    p.connected = true;
                    p.backoff = REDIAL_MIN;
                    p.due = None;
                }
                if num_established.get() == 1
                    && self.light.as_ref().is_some_and(|l| l.service == peer_id)
                {
                    // A new connection to our service: it may have forgotten us.
                    self.refresh_filters(true);
                }
                if num_established.get() == 1 {
                    self.addresses.insert(peer_id, remote);
                    let request = metadata::request(
                        self.control.clone(),
                        peer_id,
                        self.ours.clone(),
                        self.reports_tx.clone(),
                    );
                    self.run_beside("metadata request", request);
                }
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                self.addresses.remove(&peer_id);
                if self.confirmed.remove(&peer_id) {
                    tracing::info!(peer = %peer_id, "peer left");
                    self.emit(Event::PeerDisconnected {
                        peer: transport::PeerId(peer_id.to_string()),
                    });
                }
                if let Some(p) = self.static_peers.get_mut(&peer_id) {
                    if !p.refused {
                        tracing::info!(
                            peer = %peer_id,
                            cause = ?cause.map(|c| c.to_string()),
                            retry_in = ?p.backoff,
                            "static peer dropped; redialling"
                        );
                        p.schedule_redial();
                    }
                }
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let reason = root_cause(&error);
                if let Some((address, reply)) = self.anonymous_dials.remove(&connection_id) {
                    let _ = reply.send(Err(transport::Error::Dial {
                        address,
                        reason: reason.clone(),
                    }));
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        for (address, reply) in self.waiters.remove(&peer).unwrap_or_default() {
                            let _ = reply.send(Err(transport::Error::Dial {
                                address,
                                reason: reason.clone(),
                            }));
                        }
                    }
                    if let Some(p) = self.static_peers.get_mut(&peer) {
                        if !p.connected && !p.refused {
                            tracing::debug!(%peer, %reason, retry_in = ?p.backoff, "static peer unreachable");
                            p.schedule_redial();
                        }
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(error = %error, "listener error");
            }
            _ => {}
        }
    }

    fn on_relay_message(
        &mut self,
        source: PeerId,
        id: &gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let relay = &mut self.swarm.behaviour_mut().relay;
        match check(message) {
            Ok(delivery)
                if self.archive.is_some() && murmur_core::store::archivable(&delivery.message) =>
            {
                // Archive first, accept (and so forward) after: a message this
                // node accepted survives a crash.
                let archive = self.archive.clone();
                let myself = self.myself.clone();
                let task_id = id.clone();
                let archiving = async move {
                    let saved = match archive {
                        Some(archive) => match archive
                            .send(murmur_core::storage::SaveRaw(delivery.clone()))
                            .await
                        {
                            Ok(Ok(new)) => Ok(new),
                            _ => Err(()),
                        },
                        None => Err(()),
                    };
                    myself.archived(task_id, source, delivery, saved).await;
                };
                if self.tasks.start(archiving).is_err() {
                    // More archiving in flight than the bound: let this one
                    // go unforwarded (Ignore costs the sender nothing).
                    self.swarm
                        .behaviour_mut()
                        .relay
                        .report_message_validation_result(id, &source, MessageAcceptance::Ignore);
                    self.metrics.inc_dropped();
                    tracing::warn!("too many relay messages being archived; one let go");
                }
            }
            Ok(delivery) => {
                relay.report_message_validation_result(id, &source, MessageAcceptance::Accept);
                self.metrics.inc_received();
                self.push_to_filter_subscribers(&delivery);
                tracing::trace!(topic = %delivery.pubsub_topic, hash = %delivery.hash, "relay message");
                self.emit(Event::Message(delivery));
            }
            Err(reason) => {
                // Reject, not Ignore: the sender's score pays for it.
                relay.report_message_validation_result(id, &source, MessageAcceptance::Reject);
                self.metrics.inc_rejected(reason);
                tracing::debug!(peer = %source, ?reason, "relay message rejected");
            }
        }
    }

    fn on_report(&mut self, report: metadata::Report) {
        match report {
            metadata::Report::Answer { peer, result } => match result {
                Ok(theirs) => self.check_cluster(peer, theirs.cluster_id),
                Err(metadata::Failure::Unsupported) => {
                    // nwaku would drop such a peer; relay-only js-waku peers do
                    // not serve metadata, so we keep them.
                    tracing::debug!(%peer, "peer does not serve metadata");
                    self.confirm(peer);
                }
                Err(metadata::Failure::Other(reason)) => {
                    tracing::debug!(%peer, %reason, "metadata request failed");
                    self.confirm(peer);
                }
            },
            metadata::Report::Asked { peer, theirs } => {
                if theirs
                    .cluster_id
                    .is_some_and(|c| c != u32::from(self.cluster))
                {
                    self.check_cluster(peer, theirs.cluster_id);
                }
            }
        }
    }

    fn check_cluster(&mut self, peer: PeerId, cluster: Option<u32>) {
        if cluster == Some(u32::from(self.cluster)) {
            self.confirm(peer);
            return;
        }
        tracing::warn!(
            %peer,
            theirs = ?cluster,
            ours = self.cluster,
            "dropping peer on another cluster"
        );
        if let Some(p) = self.static_peers.get_mut(&peer) {
            p.refused = true;
            tracing::error!(%peer, address = %p.address, "static peer is on another cluster; not redialling it");
        }
        self.confirmed.remove(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn confirm(&mut self, peer: PeerId) {
        if !self.swarm.is_connected(&peer) || !self.confirmed.insert(peer) {
            return;
        }
        let address = self
            .addresses
            .get(&peer)
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info!(%peer, %address, "peer joined");
        self.emit(Event::PeerConnected {
            peer: transport::PeerId(peer.to_string()),
            address,
        });
    }

    /// Hands an event to the consumer without waiting: what it cannot take now
    /// waits in a bounded backlog, in order; beyond that, deliveries are
    /// dropped and counted (gossip still forwards them to other peers).
    fn emit(&mut self, event: Event) {
        self.flush();
        if self.backlog.is_empty() {
            match self.sink.offer(event) {
                Offer::Taken | Offer::Gone => return,
                Offer::Full(event) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
        if self.backlog.len() > self.backlog_limit {
            if let Some(event) = self.backlog.pop_front() {
                self.metrics.inc_dropped();
                tracing::warn!(?event, "event consumer is behind; event dropped");
            }
        }
    }

    fn flush(&mut self) {
        while let Some(event) = self.backlog.pop_front() {
            match self.sink.offer(event) {
                Offer::Taken => {}
                Offer::Full(event) => {
                    self.backlog.push_front(event);
                    return;
                }
                Offer::Gone => self.backlog.clear(),
            }
        }
    }
}

/// Relay validation: the checks every Waku implementation applies.
fn check(message: gossipsub::Message) -> Result<Delivery, RejectReason> {
    let topic: PubsubTopic = message
        .topic
        .as_str()
        .parse()
        .map_err(|_| RejectReason::BadTopic)?;
    let len = message.data.len();
    if len > MAX_WAKU_MESSAGE_LEN {
        return Err(RejectReason::TooLarge);
    }
    // Decoding from `Bytes` lets the payload share the received buffer.
    let waku = WakuMessage::decode(bytes::Bytes::from(message.data))
        .map_err(|_| RejectReason::Malformed)?;
    transport::validate(&waku, len).map_err(|e| match e {
        transport::Error::TooLarge { .. } => RejectReason::TooLarge,
        transport::Error::Invalid("empty payload") => RejectReason::EmptyPayload,
        transport::Error::Invalid("empty content topic") => RejectReason::EmptyContentTopic,
        _ => RejectReason::MetaTooLong,
    })?;
    Ok(Delivery::new(topic, waku))
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// `requested` with the TCP port taken from `actual`, so that a node asked for
/// port 0 can listen on the same port again after a restart.
fn with_port_of(requested: &Multiaddr, actual: &Multiaddr) -> Multiaddr {
    let port = actual.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    requested
        .iter()
        .map(|p| match (p, port) {
            (Protocol::Tcp(0), Some(port)) => Protocol::Tcp(port),
            (p, _) => p,
        })
        .collect()
}

fn dial_error(address: String, error: &DialError) -> transport::Error {
    transport::Error::Dial {
        address,
        reason: root_cause(error),
    }
}

/// The innermost cause: "Connection refused (os error 111)" rather than
/// libp2p's nested transport report.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(DialError::Transport(errors)) = error.downcast_ref::<DialError>() {
        if let Some((_, e)) = errors.first() {
            return root_cause(e);
        }
    }
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_becomes_the_bound_port() {
        let requested: Multiaddr = "/ip4/0.0.0.0/tcp/0/ws".parse().unwrap();
        let actual: Multiaddr = "/ip4/127.0.0.1/tcp/4242/ws".parse().unwrap();
        assert_eq!(
            with_port_of(&requested, &actual).to_string(),
            "/ip4/0.0.0.0/tcp/4242/ws"
        );
    }

    fn gossip(topic: &str, data: Vec<u8>) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data,
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw(topic),
        }
    }

    #[test]
    fn validation_rejects_what_waku_peers_reject() {
        let topic = "/waku/2/rs/1/0";
        let ok = WakuMessage::new("/a/1/b/c", vec![1]).encode_to_vec();
        assert!(check(gossip(topic, ok.clone())).is_ok());
        let cases = [
            (
                gossip("/waku/2/default-waku/proto", ok),
                RejectReason::BadTopic,
            ),
            (gossip(topic, vec![0xff, 0xff]), RejectReason::Malformed),
            (
                gossip(topic, WakuMessage::new("/a/1/b/c", vec![]).encode_to_vec()),
                RejectReason::EmptyPayload,
            ),
            (
                gossip(topic, WakuMessage::new("", vec![1]).encode_to_vec()),
                RejectReason::EmptyContentTopic,
            ),
            (
                gossip(
                    topic,
                    WakuMessage::new("/a/1/b/c", vec![1])
                        .with_meta(vec![0u8; 65])
                        .encode_to_vec(),
                ),
                RejectReason::MetaTooLong,
            ),
            (
                gossip(
                    topic,
                    WakuMessage::new("/a/1/b/c", vec![1u8; MAX_WAKU_MESSAGE_LEN]).encode_to_vec(),
                ),
                RejectReason::TooLarge,
            ),
        ];
        for (message, reason) in cases {
            assert_eq!(check(message).unwrap_err(), reason);
        }
    }
}
