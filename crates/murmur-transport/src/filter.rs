//! Filter v2, service side: light clients subscribe to content topics and we
//! push them every matching message, relayed or published here.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;
use murmur_core::Delivery;
use murmur_proto::{
    filter::{self as wire, kind, status, MessagePush, SubscribeRequest, SubscribeResponse},
    lp, protocol,
};
use prost::Message as _;
use tokio::sync::Semaphore;

use crate::{inbound::Incoming, services::Swarm};

pub(crate) const SUBSCRIBE: StreamProtocol = StreamProtocol::new(protocol::FILTER_SUBSCRIBE);
pub(crate) const PUSH: StreamProtocol = StreamProtocol::new(protocol::FILTER_PUSH);
const READ_TIMEOUT: Duration = Duration::from_secs(300);
const PUSH_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_CONCURRENT: usize = 32;
/// Pushes in flight at once; beyond, a push is dropped and counted.
pub(crate) const MAX_PUSHES: usize = 256;

/// nwaku's limits.
const MAX_CONTENT_TOPICS_PER_REQUEST: usize = 100;
const MAX_SUBSCRIBERS: usize = 100;
const MAX_CRITERIA_PER_SUBSCRIBER: usize = 1000;
/// A subscription not refreshed by a ping or subscribe for this long expires.
pub(crate) const SUBSCRIPTION_TTL: Duration = Duration::from_secs(300);

struct Subscriber {
    /// (pubsub topic, content topic)
    criteria: BTreeSet<(String, String)>,
    refreshed: Instant,
}

/// Who is subscribed to what: a plain state machine, driven by the swarm task.
#[derive(Default)]
pub(crate) struct Subscriptions {
    peers: HashMap<PeerId, Subscriber>,
}

impl Subscriptions {
    /// Applies a request; answers the status and its description.
    pub(crate) fn apply(
        &mut self,
        peer: PeerId,
        request: &SubscribeRequest,
        now: Instant,
    ) -> (u32, &'static str) {
        let criteria = || -> Result<Vec<(String, String)>, &'static str> {
            let topic = request
                .pubsub_topic
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or("a pubsub topic is required")?;
            if request.content_topics.is_empty() {
                return Err("content topics are required");
            }
            if request.content_topics.len() > MAX_CONTENT_TOPICS_PER_REQUEST {
                return Err("too many content topics (at most 100)");
            }
            Ok(request
                .content_topics
                .iter()
                .map(|c| (topic.to_owned(), c.clone()))
                .collect())
        };
        match request.filter_subscribe_type {
            kind::PING => match self.peers.get_mut(&peer) {
                Some(s) => {
                    s.refreshed = now;
                    (status::OK, "OK")
                }
                None => (status::NOT_FOUND, "peer has no subscriptions"),
            },
            kind::SUBSCRIBE => {
                let wanted = match criteria() {
                    Ok(c) => c,
                    Err(reason) => return (status::BAD_REQUEST, reason),
                };
                if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_SUBSCRIBERS {
                    return (status::SERVICE_UNAVAILABLE, "too many subscribers");
                }
                let subscriber = self.peers.entry(peer).or_insert_with(|| Subscriber {
                    criteria: BTreeSet::new(),
                    refreshed: now,
                });
                let new = wanted
                    .iter()
                    .filter(|c| !subscriber.criteria.contains(*c))
                    .count();
                if subscriber.criteria.len() + new > MAX_CRITERIA_PER_SUBSCRIBER {
                    if subscriber.criteria.is_empty() {
                        self.peers.remove(&peer);
                    }
                    return (
                        status::SERVICE_UNAVAILABLE,
                        "too many subscriptions for this peer",
                    );
                }
                subscriber.criteria.extend(wanted);
                subscriber.refreshed = now;
                (status::OK, "OK")
            }
            kind::UNSUBSCRIBE => {
                let unwanted = match criteria() {
                    Ok(c) => c,
                    Err(reason) => return (status::BAD_REQUEST, reason),
                };
                let Some(subscriber) = self.peers.get_mut(&peer) else {
                    return (status::NOT_FOUND, "peer has no subscriptions");
                };
                for c in &unwanted {
                    subscriber.criteria.remove(c);
                }
                subscriber.refreshed = now;
                if subscriber.criteria.is_empty() {
                    self.peers.remove(&peer);
                }
                (status::OK, "OK")
            }
            kind::UNSUBSCRIBE_ALL => match self.peers.remove(&peer) {
                Some(_) => (status::OK, "OK"),
                None => (status::NOT_FOUND, "peer has no subscriptions"),
            },
            _ => (status::BAD_REQUEST, "unknown request type"),
        }
    }

    /// The subscribers of `content_topic` on `pubsub_topic`.
    pub(crate) fn matching(&self, pubsub_topic: &str, content_topic: &str) -> Vec<PeerId> {
        // The common case on a relay node: nobody to push to, nothing to allocate.
        if self.peers.is_empty() {
            return Vec::new();
        }
        let key = (pubsub_topic.to_owned(), content_topic.to_owned());
        self.peers
            .iter()
            .filter(|(_, s)| s.criteria.contains(&key))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Drops subscriptions not refreshed within the TTL; answers how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let before = self.peers.len();
        self.peers
            .retain(|_, s| now.duration_since(s.refreshed) < SUBSCRIPTION_TTL);
        before - self.peers.len()
    }
}

/// Answers subscribe, unsubscribe and ping requests.
pub(crate) async fn serve(incoming: Incoming, relay: Swarm) {
    crate::rpc::serve(incoming, wire::MAX_REQUEST_LEN, Server(relay)).await;
}

struct Server(Swarm);

impl crate::rpc::Answer for Server {
    async fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> Option<Vec<u8>> {
        let request = request.ok()?;
        let response = match SubscribeRequest::decode(request.as_slice()) {
            Ok(request) => {
                let id = crate::rpc::echo_id(&request.request_id);
                let (code, description) = self.0.filter(peer, request).await;
                SubscribeResponse {
                    request_id: id,
                    status_code: Some(code),
                    status_desc: Some(description.to_owned()),
                }
            }
            Err(_) => SubscribeResponse {
                request_id: crate::rpc::echo_id(""),
                status_code: Some(status::BAD_REQUEST),
                status_desc: Some("malformed request".to_owned()),
            },
        };
        tracing::debug!(%peer, status = ?response.status_code, "filter request answered");
        Some(response.encode_to_vec())
    }

    fn busy(&self, request: &[u8]) -> Option<Vec<u8>> {
        let id = SubscribeRequest::decode(request)
            .map(|r| r.request_id)
            .unwrap_or_default();
        let response = SubscribeResponse {
            request_id: crate::rpc::echo_id(&id),
            status_code: Some(status::TOO_MANY_REQUESTS),
            status_desc: Some("too many requests".to_owned()),
        };
        Some(response.encode_to_vec())
    }
}

/// Pushes `delivery` to `peer` on a new stream (go-waku's way; js-waku and
/// nwaku accept it). The permit bounds pushes in flight.
pub(crate) fn push(
    mut control: Control,
    peer: PeerId,
    frame: Arc<Vec<u8>>,
    permits: &Arc<Semaphore>,
) -> bool {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        return false;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let sent = tokio::time::timeout(PUSH_TIMEOUT, async {
            let mut stream = control.open_stream(peer, PUSH).await.ok()?;
            lp::write(&mut stream, &frame).await.ok()?;
            stream.close().await.ok()
        })
        .await;
        if !matches!(sent, Ok(Some(()))) {
            tracing::debug!(%peer, "filter push failed");
        }
    });
    true
}

/// The push frame for a delivery, with the pubsub topic always set.
pub(crate) fn frame(delivery: &Delivery) -> Arc<Vec<u8>> {
    Arc::new(
        MessagePush {
            waku_message: Some(delivery.message.clone()),
            pubsub_topic: Some(delivery.pubsub_topic.as_str().to_owned()),
        }
        .encode_to_vec(),
    )
}

/// Sends a filter request to `peer` (we are its client), [`patiently`].
pub(crate) async fn request(
    control: Control,
    peer: PeerId,
    request: SubscribeRequest,
) -> Result<(), murmur_core::transport::Error> {
    patiently(|| request_once(control.clone(), peer, request.clone())).await
}

/// How many times a rate-limited filter request is tried again.
const RATE_LIMITED_TRIES: u64 = 3;

/// Runs `attempt`, and on a 429 runs it again after one second, then two,
/// then three: services limit filter requests per client (go-waku to one
/// a second, pings included), and a light client that subscribes to
/// several shards at start asks several times at once.
async fn patiently<F, Fut>(mut attempt: F) -> Result<(), murmur_core::transport::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), murmur_core::transport::Error>>,
{
    let mut waited = 0;
    loop {
        match attempt().await {
            Err(murmur_core::transport::Error::Remote { code, .. })
                if code == status::TOO_MANY_REQUESTS && waited < RATE_LIMITED_TRIES =>
            {
                waited += 1;
                tracing::debug!(waited, "filter service is rate-limiting; trying again");
                tokio::time::sleep(Duration::from_secs(waited)).await;
            }
            result => return result,
        }
    }
}

async fn request_once(
    mut control: Control,
    peer: PeerId,
    request: SubscribeRequest,
) -> Result<(), murmur_core::transport::Error> {
    let bad = |reason: String| murmur_core::transport::Error::BadResponse {
        service: "filter",
        reason,
    };
    let frame = crate::rpc::request(
        &mut control,
        peer,
        SUBSCRIBE,
        &request.encode_to_vec(),
        64 * 1024,
        PUSH_TIMEOUT,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    let response = SubscribeResponse::decode(frame.as_slice()).map_err(|e| bad(e.to_string()))?;
    match response.status_code {
        Some(status::OK) => Ok(()),
        code => Err(murmur_core::transport::Error::Remote {
            service: "filter",
            code: code.unwrap_or(0),
            description: response.status_desc.unwrap_or_default(),
        }),
    }
}

/// Receives pushes from our filter service: one or more frames per stream
/// (nwaku reuses a stream, go-waku opens one per push).
pub(crate) async fn receive(mut incoming: Incoming, relay: Swarm) {
    futures::stream::poll_fn(|cx| incoming.poll_recv(cx))
        .for_each_concurrent(MAX_CONCURRENT, |(peer, mut stream)| {
            let relay = relay.clone();
            async move {
                while let Ok(Ok(frame)) =
                    tokio::time::timeout(READ_TIMEOUT, lp::read(&mut stream, wire::MAX_PUSH_LEN))
                        .await
                {
                    let push = match MessagePush::decode(frame.as_slice()) {
                        Ok(p) => p,
                        Err(_) => {
                            tracing::debug!(%peer, "malformed filter push");
                            return;
                        }
                    };
                    let (Some(message), Some(topic)) = (push.waku_message, push.pubsub_topic)
                    else {
                        tracing::debug!(%peer, "filter push without a message or pubsub topic");
                        continue;
                    };
                    let Ok(topic) = topic.parse() else {
                        continue;
                    };
                    if murmur_core::transport::validate(&message, message.encoded_len()).is_err() {
                        continue;
                    }
                    relay.inbound(Delivery::new(topic, message)).await;
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: i32, topics: &[&str]) -> SubscribeRequest {
        SubscribeRequest {
            request_id: "1".into(),
            filter_subscribe_type: kind,
            pubsub_topic: Some("/waku/2/rs/1/0".into()),
            content_topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn subscribe_ping_unsubscribe_expire() {
        let mut subs = Subscriptions::default();
        let peer = PeerId::random();
        let now = Instant::now();
        assert_eq!(
            subs.apply(peer, &request(kind::PING, &[]), now).0,
            status::NOT_FOUND
        );
        assert_eq!(
            subs.apply(
                peer,
                &request(kind::SUBSCRIBE, &["/a/1/b/c", "/a/1/d/c"]),
                now
            )
            .0,
            status::OK
        );
        assert_eq!(subs.matching("/waku/2/rs/1/0", "/a/1/b/c"), vec![peer]);
        assert!(subs.matching("/waku/2/rs/1/1", "/a/1/b/c").is_empty());
        assert_eq!(
            subs.apply(peer, &request(kind::UNSUBSCRIBE, &["/a/1/b/c"]), now)
                .0,
            status::OK
        );
        assert!(subs.matching("/waku/2/rs/1/0", "/a/1/b/c").is_empty());
        assert_eq!(
            subs.apply(peer, &request(kind::PING, &[]), now).0,
            status::OK
        );
        assert_eq!(subs.expire(now + SUBSCRIPTION_TTL / 2), 0);
        assert_eq!(subs.expire(now + SUBSCRIPTION_TTL), 1);
        assert_eq!(
            subs.apply(peer, &request(kind::UNSUBSCRIBE_ALL, &[]), now)
                .0,
            status::NOT_FOUND
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_request_is_tried_again_then_given_up() {
        use murmur_core::transport::Error;
        let limited = || Error::Remote {
            service: "filter",
            code: status::TOO_MANY_REQUESTS,
            description: "filter request rejected due rate limit exceeded".into(),
        };
        // Two refusals, then the service takes it: after one second and two.
        let started = tokio::time::Instant::now();
        let mut answers = vec![Ok(()), Err(limited()), Err(limited())];
        assert!(patiently(|| std::future::ready(answers.pop().unwrap()))
            .await
            .is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // Refused every time: four tries, then the 429 itself.
        let mut tries = 0;
        let result = patiently(|| {
            tries += 1;
            std::future::ready(Err(limited()))
        })
        .await;
        assert_eq!(tries, 4);
        assert!(matches!(result, Err(Error::Remote { code: 429, .. })));
        // Any other error is not tried again.
        let mut tries = 0;
        let result = patiently(|| {
            tries += 1;
            std::future::ready(Err(Error::Invalid("no")))
        })
        .await;
        assert_eq!((tries, result), (1, Err(Error::Invalid("no"))));
    }

    #[test]
    fn bad_requests_and_limits() {
        let mut subs = Subscriptions::default();
        let now = Instant::now();
        let peer = PeerId::random();
        assert_eq!(
            subs.apply(peer, &request(kind::SUBSCRIBE, &[]), now).0,
            status::BAD_REQUEST
        );
        let mut no_topic = request(kind::SUBSCRIBE, &["/a/1/b/c"]);
        no_topic.pubsub_topic = None;
        assert_eq!(subs.apply(peer, &no_topic, now).0, status::BAD_REQUEST);
        let many: Vec<String> = (0..101).map(|i| format!("/a/{i}/b/c")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            subs.apply(peer, &request(kind::SUBSCRIBE, &refs), now).0,
            status::BAD_REQUEST
        );
        assert_eq!(
            subs.apply(peer, &request(9, &[]), now).0,
            status::BAD_REQUEST
        );
        for _ in 0..MAX_SUBSCRIBERS {
            assert_eq!(
                subs.apply(
                    PeerId::random(),
                    &request(kind::SUBSCRIBE, &["/a/1/b/c"]),
                    now
                )
                .0,
                status::OK
            );
        }
        assert_eq!(
            subs.apply(
                PeerId::random(),
                &request(kind::SUBSCRIBE, &["/a/1/b/c"]),
                now
            )
            .0,
            status::SERVICE_UNAVAILABLE
        );
    }
}
