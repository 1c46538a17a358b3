//! Light-client mode: publishing through a service's lightpush, filter
//! subscriptions there (kept alive and renewed), and pushing to this node's
//! own filter subscribers.

use super::*;

/// How often a light client pings its filter service (subscriptions expire
/// after 5 minutes without one; js-waku pings every minute too).
pub(super) const FILTER_PING: Duration = Duration::from_secs(60);

/// A light client's state: its service and what it asked the service's filter for.
pub(super) struct Light {
    pub(super) service: PeerId,
    pub(super) filters: std::collections::BTreeMap<PubsubTopic, BTreeSet<String>>,
    pub(super) pinged: Instant,
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
}
