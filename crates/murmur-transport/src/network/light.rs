//! Light-client mode: publishing through a service's lightpush, filter
//! subscriptions there (kept alive and renewed), and pushing to this node's
//! own filter subscribers.

use super::*;

/// How often a light client pings its filter service (subscriptions expire
/// after 5 minutes without one; js-waku pings every minute too).
pub(super) const FILTER_PING: Duration = Duration::from_secs(60);

/// How long a light client's service may stay unreachable before the
/// client moves to another it knows of.
pub(super) const FAILOVER: Duration = Duration::from_secs(10);
/// Other service nodes kept, at most.
const FALLBACKS: usize = 8;

/// A light client's state: its service and what it asked the service's filter for.
pub(super) struct Light {
    pub(super) service: PeerId,
    pub(super) filters: std::collections::BTreeMap<PubsubTopic, BTreeSet<String>>,
    pub(super) pinged: Instant,
    /// Other service nodes (filter and lightpush) the service told of by
    /// peer exchange, to move to if it goes.
    pub(super) fallbacks: Vec<(PeerId, Multiaddr)>,
    /// Since when the service is unreachable.
    pub(super) lost: Option<Instant>,
    /// Whether the service was asked for others.
    pub(super) asked: bool,
}

pub(super) fn filter_request(
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

impl Driver {
    /// Light mode: publish through the service's lightpush.
    pub(super) fn light_publish(
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
    pub(super) fn light_subscribe(
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
    pub(super) fn refresh_filters(&mut self, resubscribe: bool) {
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
    pub(super) fn push_to_filter_subscribers(&mut self, delivery: &Delivery) {
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

    /// The service is reached: asked once for other service nodes by peer
    /// exchange (a light client finds its next service this way).
    pub(super) fn service_reached(&mut self) {
        let Some(light) = &mut self.light else {
            return;
        };
        light.lost = None;
        if light.asked {
            return;
        }
        light.asked = true;
        let (control, service, myself) = (self.control.clone(), light.service, self.myself.clone());
        self.run_beside("peer exchange for service nodes", async move {
            match crate::peer_exchange::request(control, service, FALLBACKS as u64 * 2).await {
                Ok(records) => myself.fallbacks(records).await,
                Err(e) => tracing::debug!(error = %e, "no other service nodes from peer exchange"),
            }
        });
    }

    /// Keeps the records of service nodes of our cluster: filter and
    /// lightpush, reachable over TCP, not the service itself.
    pub(super) fn keep_fallbacks(&mut self, records: &[crate::enr::Record]) {
        use crate::enr::{self, capability};
        for record in records {
            self.peer_cache.learn(record);
        }
        let cluster = self.cluster;
        let Some(light) = &mut self.light else {
            return;
        };
        let wanted = capability::FILTER | capability::LIGHTPUSH;
        for record in records {
            let serves = enr::capabilities(record).is_some_and(|bits| bits & wanted == wanted);
            let ours = enr::shards(record).is_none_or(|(c, _)| c == cluster);
            let (Some(peer), true, true) = (enr::peer_id(record), serves, ours) else {
                continue;
            };
            let tcp = enr::addresses(record).into_iter().find(|a| {
                a.iter().any(|p| matches!(p, Protocol::Tcp(_)))
                    && !a
                        .iter()
                        .any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)))
            });
            let Some(address) = tcp else {
                continue;
            };
            if peer != light.service
                && !light.fallbacks.iter().any(|(p, _)| *p == peer)
                && light.fallbacks.len() < FALLBACKS
            {
                tracing::debug!(%peer, %address, "a service node to fall back on");
                light.fallbacks.push((peer, address));
            }
        }
    }

    /// Moves to the next service node when the service has been
    /// unreachable for [`FAILOVER`]: the filter subscriptions follow when it
    /// is reached, and what is published goes there. The old one is kept
    /// last among the fallbacks.
    pub(super) fn fail_over(&mut self) {
        let Some(light) = &mut self.light else {
            return;
        };
        let due = light.lost.is_some_and(|at| at.elapsed() >= FAILOVER);
        if !due || light.fallbacks.is_empty() || self.swarm.is_connected(&light.service) {
            return;
        }
        let (next, address) = light.fallbacks.remove(0);
        let old = light.service;
        if let Some(previous) = self.static_peers.remove(&old) {
            light.fallbacks.push((old, previous.address));
        }
        light.service = next;
        light.lost = Some(Instant::now());
        // The new service has not heard of our subscriptions yet.
        light.pinged = Instant::now();
        tracing::warn!(from = %old, to = %next, %address, "filter and lightpush service unreachable; moving to another");
        self.static_peers.insert(next, StaticPeer::new(address));
    }
}
