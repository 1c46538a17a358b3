use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use libp2p::{
    gossipsub::{self, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams},
    identify,
    identity::Keypair,
    ping,
    swarm::NetworkBehaviour,
};
use murmur_proto::{protocol, MAX_WAKU_MESSAGE_LEN};
use sha2::{Digest, Sha256};

use crate::Error;

/// Room for the gossipsub RPC framing around a full-size WakuMessage.
const RPC_OVERHEAD: usize = 16 * 1024;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) relay: gossipsub::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    /// Outbound request streams (the clients of store, lightpush, filter...).
    pub(crate) streams: libp2p_stream::Behaviour,
    /// Inbound streams of the protocols this node serves.
    pub(crate) inbound: crate::inbound::Behaviour,
}

impl Behaviour {
    pub(crate) fn new(keypair: &Keypair, served: crate::inbound::Registry) -> Result<Self, Error> {
        let relay = relay_behaviour()?;
        let identify = identify::Behaviour::new(
            identify::Config::new("/ipfs/id/1.0.0".to_owned(), keypair.public())
                .with_agent_version(format!("murmur/{}", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Self {
            relay,
            identify,
            ping: ping::Behaviour::default(),
            streams: libp2p_stream::Behaviour::new(),
            inbound: crate::inbound::Behaviour::new(served),
        })
    }
}

/// Gossipsub as 11/WAKU2-RELAY: anonymous, [`relay_config`], nwaku's peer
/// scoring. Public so that benchmarks can run bare gossipsub exactly as murmur does.
pub fn relay_behaviour() -> Result<gossipsub::Behaviour, Error> {
    let mut relay = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Anonymous,
        relay_config().map_err(|e| Error::Build(e.to_string()))?,
    )
    .map_err(|e| Error::Build(e.to_owned()))?;
    relay
        .with_peer_score(score_params(), score_thresholds())
        .map_err(Error::Build)?;
    Ok(relay)
}

/// The gossipsub configuration of 11/WAKU2-RELAY, with nwaku's parameters.
///
/// Public so that benchmarks can run bare gossipsub with exactly these settings.
pub fn relay_config() -> Result<gossipsub::Config, gossipsub::ConfigBuilderError> {
    gossipsub::ConfigBuilder::default()
        .protocol_id(protocol::RELAY, gossipsub::Version::V1_1)
        // Waku relay is anonymous: no from, seqno, signature or key on the wire.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Every message is checked as a WakuMessage before it is forwarded.
        .validate_messages()
        // Identical in nwaku, go-waku and js-waku; IHAVE/IWANT depend on it.
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(8)
        .retain_scores(6)
        .mesh_outbound_min(3)
        .gossip_lazy(6)
        .gossip_factor(0.25)
        .heartbeat_interval(Duration::from_secs(1))
        .history_length(6)
        .history_gossip(3)
        .fanout_ttl(Duration::from_secs(60))
        .duplicate_cache_time(Duration::from_secs(120))
        .prune_backoff(Duration::from_secs(60))
        .unsubscribe_backoff(Duration::from_secs(5))
        .flood_publish(true)
        // The default 64 KiB would silently drop larger Waku messages. Larger
        // ones than 150 KiB get through here so that validation can reject
        // them and score the sender.
        .max_transmit_size(MAX_WAKU_MESSAGE_LEN + RPC_OVERHEAD)
        .build()
}

/// nwaku's peer-score thresholds.
fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -1000.0,
        graylist_threshold: -10000.0,
        opportunistic_graft_threshold: 0.0,
        ..PeerScoreThresholds::default()
    }
}

/// nwaku's peer-score parameters. Loopback is exempt from the IP-colocation
/// penalty so that several local nodes (tests, the demo) are not graylisted.
fn score_params() -> PeerScoreParams {
    PeerScoreParams {
        decay_interval: Duration::from_secs(12),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(600),
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: -50.0,
        ip_colocation_factor_threshold: 5.0,
        ip_colocation_factor_whitelist: [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_decay: 0.986,
        ..PeerScoreParams::default()
    }
}

/// nwaku's per-topic score parameters: an invalid message costs its sender 100.
pub(crate) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_accepted_by_gossipsub() {
        let keypair = Keypair::generate_secp256k1();
        Behaviour::new(&keypair, crate::inbound::Registry::default()).unwrap();
        topic_score_params().validate().unwrap();
    }
}
