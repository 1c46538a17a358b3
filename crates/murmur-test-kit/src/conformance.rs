//! Conformance suites: what every implementation of a stage must do.
//!
//! A suite is a set of async functions, and a macro that turns them into
//! `#[test]`s for one implementation. Each function takes the
//! implementation's start function: given one events recipient per stage
//! instance, it starts that many instances, connected to each other, and
//! returns their handles.

use std::{future::Future, time::Duration};

use actix::prelude::*;
use murmur_core::{
    store::Query,
    supervise::InjectPanic,
    transport::{self, Dial, Event, GetStatus, Publish, QueryStore, Stop, Subscribe, Unsubscribe},
    MessageHash, PubsubTopic, WakuMessage,
};

use crate::{Events, Probe};

const MESH_WAIT: Duration = Duration::from_secs(15);
/// How long a message that must not arrive is waited for.
const QUIET: Duration = Duration::from_millis(1500);

/// Runs the transport stage's suite against `$start`, an `async fn(Vec<Recipient<Event>>) -> Vec<transport::Handle>`.
///
/// ```text
/// murmur_test_kit::transport_conformance_tests!(start_my_transports);
/// ```
#[macro_export]
macro_rules! transport_conformance_tests {
    ($start:path) => {
        mod transport_conformance {
            use super::*;

            #[test]
            fn delivers_intact_with_the_same_hash() {
                $crate::run($crate::conformance::delivers_intact_with_the_same_hash(
                    $start,
                ));
            }

            #[test]
            fn refuses_invalid_messages() {
                $crate::run($crate::conformance::refuses_invalid_messages($start));
            }

            #[test]
            fn delivers_only_subscribed_topics() {
                $crate::run($crate::conformance::delivers_only_subscribed_topics($start));
            }

            #[test]
            fn stamps_a_missing_timestamp() {
                $crate::run($crate::conformance::stamps_a_missing_timestamp($start));
            }

            #[test]
            fn reports_subscriptions_in_status() {
                $crate::run($crate::conformance::reports_subscriptions_in_status($start));
            }

            #[test]
            fn leaves_the_network_when_stopped() {
                $crate::run($crate::conformance::leaves_the_network_when_stopped($start));
            }

            #[test]
            fn delivers_nothing_after_unsubscribe() {
                $crate::run($crate::conformance::delivers_nothing_after_unsubscribe(
                    $start,
                ));
            }

            #[test]
            fn dials_a_peer_and_refuses_a_bad_address() {
                $crate::run($crate::conformance::dials_a_peer_and_refuses_a_bad_address(
                    $start,
                ));
            }

            #[test]
            fn answers_a_store_query_it_cannot_make_with_an_error() {
                $crate::run(
                    $crate::conformance::answers_a_store_query_it_cannot_make_with_an_error($start),
                );
            }

            #[test]
            fn answers_peer_exchange_it_cannot_make_with_an_error() {
                $crate::run(
                    $crate::conformance::answers_peer_exchange_it_cannot_make_with_an_error($start),
                );
            }

            #[test]
            fn survives_a_panic_in_a_handler() {
                $crate::run($crate::conformance::survives_a_panic_in_a_handler($start));
            }
        }
    };
}

async fn start_n<F, Fut>(start: F, n: usize) -> (Vec<transport::Handle>, Vec<Events>)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (probes, events): (Vec<_>, Vec<_>) = (0..n).map(|_| Probe::start()).unzip();
    let handles = start(probes.into_iter().map(Addr::recipient).collect()).await;
    assert_eq!(
        handles.len(),
        n,
        "the start function must start {n} transports"
    );
    (handles, events)
}

fn topic(shard: u16) -> PubsubTopic {
    format!("/waku/2/rs/1/{shard}")
        .parse()
        .expect("valid topic")
}

async fn subscribe(handle: &transport::Handle, topic: &PubsubTopic) {
    handle
        .subscribe
        .send(Subscribe::new(topic.clone()))
        .await
        .expect("transport alive")
        .expect("subscribe succeeds");
}

/// Waits until `handle` has at least one peer to publish to on `topic`.
pub async fn wait_for_peers(handle: &transport::Handle, topic: &PubsubTopic) {
    wait_for(handle, topic, true).await;
}

/// Waits until `handle` has peers to publish to on `topic` (or, if not
/// `peers`, none).
async fn wait_for(handle: &transport::Handle, topic: &PubsubTopic, peers: bool) {
    let deadline = tokio::time::Instant::now() + MESH_WAIT;
    loop {
        let status = handle
            .status
            .send(GetStatus)
            .await
            .expect("transport alive");
        if status.topics.iter().any(|(t, n)| t == topic && *n > 0) == peers {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers on {topic} still {} after {MESH_WAIT:?}",
            if peers { "missing" } else { "there" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(
    handle: &transport::Handle,
    topic: &PubsubTopic,
    message: WakuMessage,
) -> Result<MessageHash, transport::Error> {
    handle
        .publish
        .send(Publish::new(topic.clone(), message))
        .await
        .expect("transport alive")
}

/// A published message arrives at a subscribed peer byte for byte, with the
/// hash the publisher was given.
pub async fn delivers_intact_with_the_same_hash<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let t = topic(4);
    subscribe(&handles[0], &t).await;
    subscribe(&handles[1], &t).await;
    wait_for_peers(&handles[0], &t).await;
    wait_for_peers(&handles[1], &t).await;
    for (from, to) in [(0, 1), (1, 0)] {
        let message = WakuMessage::new("/conformance/1/intact/proto", vec![from as u8 + 1; 1000])
            .with_timestamp(murmur_core::now_nanos())
            .with_meta(b"meta".to_vec());
        let hash = publish(&handles[from], &t, message.clone())
            .await
            .expect("publish succeeds");
        assert_eq!(hash, MessageHash::of(&t, &message));
        let got = events[to].next_message().await;
        assert_eq!(got.hash, hash);
        assert_eq!(got.pubsub_topic, t);
        assert_eq!(got.message, message);
    }
}

/// Messages every Waku peer would reject are refused with a typed error.
pub async fn refuses_invalid_messages<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, _events) = start_n(start, 2).await;
    let t = topic(1);
    subscribe(&handles[0], &t).await;
    subscribe(&handles[1], &t).await;
    let empty = WakuMessage::new("/conformance/1/bad/proto", Vec::new());
    assert!(matches!(
        publish(&handles[0], &t, empty).await,
        Err(transport::Error::Invalid(_))
    ));
    let huge = WakuMessage::new("/conformance/1/bad/proto", vec![0u8; 151 * 1024]);
    assert!(matches!(
        publish(&handles[0], &t, huge).await,
        Err(transport::Error::TooLarge { .. })
    ));
    let meta = WakuMessage::new("/conformance/1/bad/proto", vec![1]).with_meta(vec![0u8; 65]);
    assert!(matches!(
        publish(&handles[0], &t, meta).await,
        Err(transport::Error::Invalid(_))
    ));
}

/// A peer receives nothing on a topic it did not subscribe to.
pub async fn delivers_only_subscribed_topics<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let (wanted, other) = (topic(2), topic(3));
    subscribe(&handles[0], &wanted).await;
    subscribe(&handles[0], &other).await;
    subscribe(&handles[1], &wanted).await;
    wait_for_peers(&handles[0], &wanted).await;
    let stray = WakuMessage::new("/conformance/1/stray/proto", vec![1]);
    // Nobody else is on `other`: either refused for lack of peers or sent to no one.
    let _ = publish(&handles[0], &other, stray).await;
    let wanted_msg = WakuMessage::new("/conformance/1/wanted/proto", vec![2]);
    let hash = publish(&handles[0], &wanted, wanted_msg)
        .await
        .expect("publish succeeds");
    let got = events[1].next_message().await;
    assert_eq!(got.hash, hash, "the stray message must not arrive");
    assert!(events[1].message_within(QUIET).await.is_none());
}

/// A message published without a timestamp is stamped with the current time,
/// so that every implementation computes the same hash for it.
pub async fn stamps_a_missing_timestamp<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let t = topic(5);
    subscribe(&handles[0], &t).await;
    subscribe(&handles[1], &t).await;
    wait_for_peers(&handles[0], &t).await;
    let before = murmur_core::now_nanos();
    let mut message = WakuMessage::new("/conformance/1/stamp/proto", vec![7]);
    message.timestamp = None;
    let hash = publish(&handles[0], &t, message)
        .await
        .expect("publish succeeds");
    let got = events[1].next_message().await;
    assert_eq!(got.hash, hash);
    let stamped = got.message.timestamp.expect("a timestamp was set");
    assert!(stamped >= before && stamped <= murmur_core::now_nanos());
}

/// Status lists the node's subscriptions.
pub async fn reports_subscriptions_in_status<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, _events) = start_n(start, 1).await;
    let t = topic(6);
    subscribe(&handles[0], &t).await;
    let status = handles[0]
        .status
        .send(GetStatus)
        .await
        .expect("transport alive");
    assert!(status.topics.iter().any(|(topic, _)| *topic == t));
    assert!(status.peer_id.is_some());
}

/// After [`Stop`], a stage publishes nothing, receives nothing, and says so
/// with [`transport::Error::Stopped`]; its peers see it gone.
pub async fn leaves_the_network_when_stopped<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let t = topic(6);
    subscribe(&handles[0], &t).await;
    subscribe(&handles[1], &t).await;
    wait_for_peers(&handles[0], &t).await;
    handles[1].stop.send(Stop).await.expect("transport alive");
    let message = |n: u8| {
        WakuMessage::new("/conformance/1/stop/proto", vec![n; 10])
            .with_timestamp(murmur_core::now_nanos())
    };
    assert!(matches!(
        publish(&handles[1], &t, message(1)).await,
        Err(transport::Error::Stopped)
    ));
    // The other side finds nobody to publish to, or publishes into the
    // void: either way nothing arrives.
    let _ = publish(&handles[0], &t, message(2)).await;
    assert!(
        events[1].message_within(QUIET).await.is_none(),
        "a stopped stage receives nothing"
    );
}

fn marked(content: &str, n: u8) -> WakuMessage {
    WakuMessage::new(content, vec![n; 10]).with_timestamp(murmur_core::now_nanos())
}

/// After [`Unsubscribe`], the topic is gone from the status and nothing
/// published on it arrives: the next message is one on a topic still
/// subscribed, sent after it.
pub async fn delivers_nothing_after_unsubscribe<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let (left, kept) = (topic(2), topic(3));
    for t in [&left, &kept] {
        subscribe(&handles[0], t).await;
        subscribe(&handles[1], t).await;
        wait_for_peers(&handles[0], t).await;
    }
    handles[1]
        .unsubscribe
        .send(Unsubscribe(left.clone()))
        .await
        .expect("transport alive")
        .expect("unsubscribe succeeds");
    let status = handles[1]
        .status
        .send(GetStatus)
        .await
        .expect("transport alive");
    assert!(!status.topics.iter().any(|(t, _)| *t == left));
    wait_for(&handles[0], &left, false).await;
    // Nobody to send it to: refused, or published into the void.
    let _ = publish(&handles[0], &left, marked("/conformance/1/left/proto", 1)).await;
    let marker = publish(&handles[0], &kept, marked("/conformance/1/kept/proto", 2))
        .await
        .expect("publish succeeds");
    let got = events[1].next_message().await;
    assert_eq!(
        got.hash, marker,
        "only the subscribed topic's message arrives"
    );
}

/// [`Dial`] of a peer's listen address answers its peer id, and the peer is
/// then among [`GetStatus`]'s connected peers; an address
/// that means nothing is refused with a typed error.
pub async fn dials_a_peer_and_refuses_a_bad_address<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, _events) = start_n(start, 2).await;
    let other = handles[1]
        .status
        .send(GetStatus)
        .await
        .expect("transport alive");
    // A plain address where there is one (a WebSocket listener is dialled
    // the same way, but one is enough here).
    let address = other
        .listen_addrs
        .iter()
        .find(|a| !a.contains("/ws"))
        .or(other.listen_addrs.first())
        .expect("a listen address")
        .clone();
    let peer = handles[0]
        .dial
        .send(Dial(address))
        .await
        .expect("transport alive")
        .expect("dials a listening peer");
    assert_eq!(Some(peer.clone()), other.peer_id);
    let mine = handles[0]
        .status
        .send(GetStatus)
        .await
        .expect("transport alive");
    assert!(
        mine.connected
            .iter()
            .any(|p| p.id == peer && !p.address.is_empty()),
        "a dialled peer is among the connected, with an address: {:?}",
        mine.connected
    );
    let refused = handles[0]
        .dial
        .send(Dial("not an address".to_owned()))
        .await
        .expect("transport alive");
    assert!(
        matches!(
            refused,
            Err(transport::Error::Address { .. } | transport::Error::Dial { .. })
        ),
        "{refused:?}"
    );
}

/// A store query to somewhere that cannot answer it is refused with a typed
/// error, and the stage goes on.
pub async fn answers_a_store_query_it_cannot_make_with_an_error<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, _events) = start_n(start, 1).await;
    let answer = handles[0]
        .query_store
        .send(QueryStore::new(
            "not an address".to_owned(),
            Query::content(None, Vec::new()),
        ))
        .await
        .expect("transport alive");
    assert!(answer.is_err(), "{answer:?}");
    let t = topic(5);
    subscribe(&handles[0], &t).await;
}

/// Peer exchange with somewhere that cannot answer it is refused with a
/// typed error, and the stage goes on.
pub async fn answers_peer_exchange_it_cannot_make_with_an_error<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, _events) = start_n(start, 1).await;
    let answer = handles[0]
        .peer_exchange
        .send(transport::PeerExchange::new("not an address", 10))
        .await
        .expect("transport alive");
    assert!(answer.is_err(), "{answer:?}");
    let t = topic(6);
    subscribe(&handles[0], &t).await;
}

/// A panic in a handler is answered with [`transport::Error::Restarted`];
/// the stage is restarted and relays both ways again.
pub async fn survives_a_panic_in_a_handler<F, Fut>(start: F)
where
    F: FnOnce(Vec<Recipient<Event>>) -> Fut,
    Fut: Future<Output = Vec<transport::Handle>>,
{
    let (handles, mut events) = start_n(start, 2).await;
    let t = topic(7);
    subscribe(&handles[0], &t).await;
    subscribe(&handles[1], &t).await;
    wait_for_peers(&handles[0], &t).await;
    handles[0]
        .inject_panic
        .send(InjectPanic)
        .await
        .expect("transport alive");
    let met = publish(&handles[0], &t, marked("/conformance/1/panic/proto", 1)).await;
    assert!(
        matches!(met, Err(transport::Error::Restarted(_))),
        "the publish that met the panic: {met:?}"
    );
    wait_for_peers(&handles[0], &t).await;
    wait_for_peers(&handles[1], &t).await;
    for (from, to) in [(0, 1), (1, 0)] {
        let hash = publish(
            &handles[from],
            &t,
            marked("/conformance/1/panic/proto", 2 + from as u8),
        )
        .await
        .expect("publishes after the restart");
        assert_eq!(events[to].next_message().await.hash, hash);
    }
}
