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
/// Swarm events handled per wake-up at most, before the other work of the
/// driver's loop gets a turn.
const SWARM_BATCH: usize = 64;
/// How often a backlog of events is offered again to a consumer that was full.
const FLUSH_TICK: Duration = Duration::from_millis(1);

type Reply<T> = oneshot::Sender<Result<T, transport::Error>>;

mod archive;
mod check;
mod driver;
mod events;
mod light;
mod peers;
mod relay;
mod start;

use check::check;
use driver::Driver;
use events::Sink;
use light::{filter_request, Light};
use peers::StaticPeer;
pub(crate) use relay::Relay;
use start::run_network;

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
    /// Service nodes a light client's service told of, to fail over to.
    Fallbacks(Vec<crate::enr::Record>),
    /// Relay messages whose archiving finished: accept them now.
    Archived(Vec<(archive::Held, archive::Saved)>),
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
pub struct Network {
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

impl Network {
    /// Builds the swarm, binds every listen address and starts dialling the
    /// static peers. Returns once the node listens, with the stream of its events.
    ///
    /// Must be called inside a tokio runtime (actix's is one).
    pub async fn start(config: Config) -> Result<(Self, mpsc::Receiver<Event>), Error> {
        let (tx, rx) = mpsc::channel(config.event_buffer);
        let node = Self::start_with(config, Sink::Channel(tx)).await?;
        Ok((node, rx))
    }

    /// Like [`Network::start`], but events go straight to an actor: one hop less
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
        // It ends by itself once the last `Network` clone, and with it the
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

    /// Publishes like [`Network::publish`], answering on `reply`: for a caller
    /// that already holds a reply channel (the transport actor's asker).
    /// When the swarm's command queue is full, answers a future that waits
    /// for room and then hands the publish over; the caller holds its own
    /// queue until it resolves, so back-pressure reaches the senders and no
    /// task is spawned per message.
    pub(crate) fn publish_to(
        &self,
        topic: PubsubTopic,
        message: WakuMessage,
        reply: Reply<MessageHash>,
    ) -> Option<impl Future<Output = ()> + 'static> {
        let command = Command::Publish {
            topic,
            message,
            reply,
        };
        // The asker's channel is not ours to drop: tell it the node is gone.
        let refused = |command| {
            if let Command::Publish { reply, .. } = command {
                let _ = reply.send(Err(transport::Error::Stopped));
            }
        };
        match self.commands.try_send(command) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Closed(command)) => {
                refused(command);
                None
            }
            Err(mpsc::error::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                Some(async move {
                    if let Err(mpsc::error::SendError(command)) = commands.send(command).await {
                        refused(command);
                    }
                })
            }
        }
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

    /// Like [`Network::lightpush`], choosing the protocol version.
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

    /// Hands `command` to the swarm, waiting for room in its queue
    /// (back-pressure on the caller), and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, transport::Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| transport::Error::Stopped)?;
        rx.await.map_err(|_| transport::Error::Stopped)?
    }
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
}
