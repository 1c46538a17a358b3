//! Dialling, static peers (redialled with backoff) and the metadata check
//! that drops peers of another cluster.

use super::*;

/// How long a static relay peer may take to send its subscriptions on a
/// new connection before the connection is closed and redialled (the
/// first time; each time after, twice as long).
const SILENT: Duration = Duration::from_secs(3);
/// Reconnections in a row to a static peer that sends no subscriptions,
/// at most: about three minutes of them.
const MAX_RECYCLES: u32 = 6;

pub(super) struct StaticPeer {
    pub(super) address: Multiaddr,
    pub(super) backoff: Duration,
    pub(super) due: Option<Instant>,
    pub(super) connected: bool,
    /// On another cluster: not redialled.
    pub(super) refused: bool,
    /// When its current connection was made, until its subscriptions came.
    pub(super) awaiting_topics: Option<Instant>,
    /// It says (identify) that it speaks relay.
    pub(super) relays: bool,
    /// Reconnected once already because its subscriptions never came.
    /// Reconnections in a row for want of its subscriptions.
    pub(super) recycles: u32,
}

impl StaticPeer {
    pub(super) fn new(address: Multiaddr) -> Self {
        Self {
            address,
            backoff: REDIAL_MIN,
            due: Some(Instant::now()),
            connected: false,
            refused: false,
            awaiting_topics: None,
            relays: false,
            recycles: 0,
        }
    }

    pub(super) fn schedule_redial(&mut self) {
        self.connected = false;
        self.due = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(REDIAL_MAX);
    }
}

/// What a connected peer said of itself.
#[derive(Default)]
pub(super) struct Profile {
    pub(super) agent: Option<String>,
    pub(super) protocols: Vec<String>,
    pub(super) shards: Vec<u16>,
}

impl Driver {
    /// The transport's view of the network: this node, its peers and topics.
    pub(super) fn status(&self) -> Status {
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
        status.connected = self.peer_views();
        status.topics = relay
            .topics()
            .filter_map(|hash| {
                let topic = hash.as_str().parse().ok()?;
                Some((topic, relay.mesh_peers(hash).count()))
            })
            .collect();
        status
    }

    /// Every connected peer with what it said of itself.
    pub(super) fn peer_views(&self) -> Vec<transport::Peer> {
        self.swarm
            .connected_peers()
            .map(|peer| {
                let mut address = self
                    .addresses
                    .get(peer)
                    .cloned()
                    .unwrap_or_else(Multiaddr::empty);
                if !matches!(address.iter().last(), Some(Protocol::P2p(_))) {
                    address.push(Protocol::P2p(*peer));
                }
                let mut view =
                    transport::Peer::new(transport::PeerId(peer.to_string()), address.to_string());
                if let Some(profile) = self.profiles.get(peer) {
                    view.agent = profile.agent.clone();
                    view.protocols = profile.protocols.clone();
                    view.shards = profile.shards.clone();
                }
                view.static_peer = self.static_peers.contains_key(peer);
                view
            })
            .collect()
    }

    /// Keeps the shards a peer of our cluster says it serves.
    fn note_shards(&mut self, peer: PeerId, theirs: &murmur_proto::metadata::Metadata) {
        if theirs.cluster_id != Some(u32::from(self.cluster)) || !self.swarm.is_connected(&peer) {
            return;
        }
        let shards = theirs
            .shards()
            .iter()
            .filter_map(|s| u16::try_from(*s).ok())
            .collect();
        self.profiles.entry(peer).or_default().shards = shards;
    }

    /// A peer said what it is: a static peer that relays is expected to
    /// tell its subscriptions.
    pub(super) fn on_identified(&mut self, peer: PeerId, info: &libp2p::identify::Info) {
        tracing::debug!(
            %peer,
            agent = %info.agent_version,
            protocols = ?info.protocols,
            "identified peer"
        );
        if self.swarm.is_connected(&peer) {
            let profile = self.profiles.entry(peer).or_default();
            profile.agent = Some(info.agent_version.clone());
            profile.protocols = info.protocols.iter().map(ToString::to_string).collect();
        }
        if let Some(p) = self.static_peers.get_mut(&peer) {
            p.relays = info
                .protocols
                .iter()
                .any(|p| p.as_ref() == murmur_proto::protocol::RELAY);
        }
    }

    /// A relay peer tells its subscriptions on its first connection with
    /// a peer only. A static peer that still held a connection from this
    /// node's previous life (a restart on the same key, before the peer saw
    /// the old connection close), or from another process with this key (a
    /// replica frozen while it ran this node), takes the new one for a
    /// second and never tells: this node would never learn its topics, and
    /// every publish would find no peers. Such a connection is closed and
    /// redialled, after 3 s of silence, then 6, 12 and so on, at most
    /// [`MAX_RECYCLES`] times in a row: the old connection goes when the
    /// peer sees it close, or when its pings time out there.
    pub(super) fn recycle_silent_static_peers(&mut self) {
        if self.light.is_some() {
            return;
        }
        let relay = &self.swarm.behaviour().relay;
        let with_topics: BTreeSet<PeerId> = relay
            .all_peers()
            .filter(|(_, topics)| !topics.is_empty())
            .map(|(peer, _)| *peer)
            .collect();
        let now = Instant::now();
        let mut silent = Vec::new();
        for (peer, p) in &mut self.static_peers {
            let Some(since) = p.awaiting_topics else {
                continue;
            };
            let waited = now.duration_since(since);
            if with_topics.contains(peer) {
                p.awaiting_topics = None;
                p.recycles = 0;
            } else if !p.relays && waited >= 10 * SILENT || p.recycles >= MAX_RECYCLES {
                p.awaiting_topics = None;
            } else if p.relays && waited >= SILENT * 2u32.pow(p.recycles) {
                p.awaiting_topics = None;
                p.recycles += 1;
                silent.push(*peer);
            }
        }
        for peer in silent {
            tracing::info!(%peer, "static peer sent no subscriptions; reconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    pub(super) fn dial_static_peers(&mut self) {
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
    pub(super) fn on_report(&mut self, report: metadata::Report) {
        match report {
            metadata::Report::Answer { peer, result } => match result {
                Ok(theirs) => {
                    self.note_shards(peer, &theirs);
                    self.check_cluster(peer, theirs.cluster_id);
                }
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
                self.note_shards(peer, &theirs);
                if theirs
                    .cluster_id
                    .is_some_and(|c| c != u32::from(self.cluster))
                {
                    self.check_cluster(peer, theirs.cluster_id);
                }
            }
        }
    }
    pub(super) fn check_cluster(&mut self, peer: PeerId, cluster: Option<u32>) {
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
    pub(super) fn confirm(&mut self, peer: PeerId) {
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
}
