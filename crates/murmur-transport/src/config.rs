use std::{fmt, time::Duration};

use libp2p::{identity::Keypair, Multiaddr};
use murmur_core::{PubsubTopic, Shard, Sharding};

use crate::Metrics;

/// How a [`Network`](crate::Network) is set up.
#[derive(Clone)]
pub struct Config {
    pub(crate) keypair: Keypair,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) static_peers: Vec<Multiaddr>,
    pub(crate) sharding: Sharding,
    pub(crate) shards: Vec<u16>,
    pub(crate) idle_timeout: Duration,
    pub(crate) own_thread: bool,
    pub(crate) timer_nice: u8,
    pub(crate) event_buffer: usize,
    pub(crate) max_tasks: usize,
    pub(crate) metrics: Metrics,
    pub(crate) store: Option<actix::Recipient<murmur_core::storage::Query>>,
    pub(crate) archive: Option<actix::Recipient<murmur_core::storage::SaveAll>>,
    pub(crate) lightpush: bool,
    pub(crate) filter: bool,
    pub(crate) light: Option<Multiaddr>,
    pub(crate) peer_exchange: bool,
    pub(crate) bootstrap: Vec<crate::enr::Record>,
    pub(crate) discv5_port: Option<u16>,
}

impl Config {
    /// A node with identity `keypair` on `sharding`'s cluster, serving every shard
    /// of it, listening on loopback TCP and WebSocket ports chosen by the system.
    pub fn new(keypair: Keypair, sharding: Sharding) -> Self {
        Self {
            keypair,
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/127.0.0.1/tcp/0/ws".parse().expect("valid multiaddr"),
            ],
            static_peers: Vec::new(),
            shards: sharding.shards().map(|s| s.index).collect(),
            sharding,
            // nwaku keeps idle connections for 5 minutes; js-waku light clients
            // redial every few seconds if we drop them sooner.
            idle_timeout: Duration::from_secs(300),
            own_thread: true,
            timer_nice: crate::timer::DEFAULT_NICE,
            event_buffer: 4096,
            max_tasks: crate::tasks::LIMIT,
            metrics: Metrics::default(),
            store: None,
            archive: None,
            lightpush: true,
            filter: true,
            light: None,
            peer_exchange: true,
            bootstrap: Vec::new(),
            discv5_port: None,
        }
    }

    /// Names the UDP port discv5 runs on in the node's record (`udp`), for
    /// a node that runs it ([`discv5::Discovery`](crate::discv5::Discovery)).
    pub fn with_discv5_port(mut self, port: u16) -> Self {
        self.discv5_port = Some(port);
        self
    }

    /// Runs the swarm on a thread of its own (the default) or, with `false`,
    /// as a task on the runtime that starts the node, beside its callers:
    /// no hand-off between threads when the caller lives there too.
    pub fn with_own_thread(mut self, own: bool) -> Self {
        self.own_thread = own;
        self
    }

    /// The nice value the node gives gossipsub's timer thread at start
    /// ([`timer::DEFAULT_NICE`](crate::timer::DEFAULT_NICE) unless set; 0
    /// leaves it as it is); see [`timer`](crate::timer) for why.
    pub fn with_timer_nice(mut self, nice: u8) -> Self {
        self.timer_nice = nice;
        self
    }

    /// Listens on exactly these addresses instead of the defaults.
    pub fn with_listen(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.listen = addrs.into_iter().collect();
        self
    }

    /// Adds a static peer: dialled at start and redialled with backoff whenever
    /// the connection drops. The address must end in `/p2p/<peer id>`.
    pub fn with_static_peer(mut self, addr: Multiaddr) -> Self {
        self.static_peers.push(addr);
        self
    }

    /// Serves only these shards of the cluster (announced in metadata).
    pub fn with_shards(mut self, shards: impl IntoIterator<Item = u16>) -> Self {
        self.shards = shards.into_iter().collect();
        self
    }

    /// How long a connection with no open stream is kept.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many events may wait for the consumer before relay deliveries are
    /// dropped (and counted).
    pub fn with_event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity.max(1);
        self
    }

    /// How much work the swarm driver runs at once (store and lightpush
    /// requests, filter requests, metadata exchanges, archiving a relay
    /// message before accepting it); past it an asker gets
    /// `transport::Error::Busy` at once and a relay message is let go
    /// unforwarded, counted. 4,096 by default.
    pub fn with_max_tasks(mut self, max: usize) -> Self {
        self.max_tasks = max.max(1);
        self
    }

    /// Records into these metrics instead of fresh ones.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Serves store v3 queries from this persistence stage.
    pub fn with_store(mut self, archive: actix::Recipient<murmur_core::storage::Query>) -> Self {
        self.store = Some(archive);
        self
    }

    /// Archives what light clients push here before answering them, and
    /// relay messages before accepting (and so forwarding) them, so that an
    /// acknowledged or accepted message survives a crash. The relay messages
    /// one poll of the swarm brings go in one request. A relay message whose
    /// archive failed (an error, a restart of the storage stage) is accepted
    /// all the same, so that the mesh does not lose it for this node's disk,
    /// and handed on as not archived: the pipeline archives it again before
    /// it delivers it.
    pub fn with_archive(
        mut self,
        archive: actix::Recipient<murmur_core::storage::SaveAll>,
    ) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Serves lightpush (v3 and v2) to light clients; on by default.
    pub fn with_lightpush(mut self, serve: bool) -> Self {
        self.lightpush = serve;
        self
    }

    /// Serves filter v2 to light clients; on by default.
    pub fn with_filter(mut self, serve: bool) -> Self {
        self.filter = serve;
        self
    }

    /// Runs as a light client of the service node at `service` (an address
    /// ending in `/p2p/<peer id>`): publishing goes out by lightpush,
    /// subscriptions are kept by the service's filter, nothing is relayed, and
    /// no service is offered. Above the transport nothing changes.
    pub fn light(mut self, service: Multiaddr) -> Self {
        if !self.static_peers.contains(&service) {
            self.static_peers.push(service.clone());
        }
        self.light = Some(service);
        self.lightpush = false;
        self.filter = false;
        self.store = None;
        self
    }

    /// Whether this is a light client.
    pub fn is_light(&self) -> bool {
        self.light.is_some()
    }

    /// Serves peer exchange (34/WAKU2-PEER-EXCHANGE); on by default.
    pub fn with_peer_exchange(mut self, serve: bool) -> Self {
        self.peer_exchange = serve;
        self
    }

    /// Records of peers to hand out through peer exchange, until the node
    /// learns others.
    pub fn with_bootstrap(mut self, records: impl IntoIterator<Item = crate::enr::Record>) -> Self {
        self.bootstrap.extend(records);
        self
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The cluster.
    pub fn cluster(&self) -> u16 {
        self.sharding.cluster
    }

    /// Where content topics go: the cluster's autosharding, kept to the
    /// shards served.
    pub fn sharding(&self) -> &Sharding {
        &self.sharding
    }

    /// The pubsub topics of the shards this node serves.
    pub fn pubsub_topics(&self) -> impl Iterator<Item = PubsubTopic> + '_ {
        self.shards.iter().map(|&index| {
            Shard {
                cluster: self.sharding.cluster,
                index,
            }
            .pubsub_topic()
        })
    }
}

// The keypair is a secret: Debug shows the peer id only.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("peer_id", &self.peer_id())
            .field("listen", &self.listen)
            .field("static_peers", &self.static_peers)
            .field("sharding", &self.sharding)
            .field("shards", &self.shards)
            .field("idle_timeout", &self.idle_timeout)
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}
