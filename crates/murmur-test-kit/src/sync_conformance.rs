//! The store-sync stage's conformance suite. `$start` is an
//! `async fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> sync::Handle`
//! that starts the stage asking store nodes through the first, handing
//! what comes back to the second, knowing the store nodes of the third, and
//! keeping how far it has seen its watched topics in the fourth.
//!
//! The store node is a [`MemoryStore`] over a [`MemoryStorage`]; what the
//! stage hands on is read by a [`Probe`].

use std::{collections::BTreeSet, future::Future, time::Duration};

use actix::prelude::*;
use murmur_core::{
    storage::{self, SaveRaw},
    supervise::InjectPanic,
    sync::{self, CatchUp, Confirm, Error, FetchMissing, Reason, Round, Watch},
    transport::{self, QueryStore},
    ContentTopic, Delivery, MessageHash, PubsubTopic, WakuMessage,
};

use crate::{Events, MemoryStorage, MemoryStore, Probe};

/// How long a message that must not come is waited for.
const QUIET: Duration = Duration::from_millis(300);

/// Runs the store-sync stage's suite against `$start`.
#[macro_export]
macro_rules! sync_conformance_tests {
    ($start:path) => {
        mod sync_conformance {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        $crate::run($crate::sync_conformance::$name($start));
                    }
                };
            }

            case!(catches_up_every_page_of_a_topic);
            case!(catches_up_only_since_a_time_and_only_its_topics);
            case!(falls_back_to_the_next_store_node);
            case!(asks_the_store_nodes_it_learned_after_its_own);
            case!(says_why_no_store_node_answered);
            case!(fetches_missing_messages_by_hash);
            case!(confirms_which_messages_a_store_node_holds);
            case!(survives_a_panic_in_a_handler);
            case!(a_round_fetches_what_came_on_watched_topics_since_they_were_watched);
            case!(a_round_no_store_answered_fails_and_the_next_fetches_what_was_missed);
            case!(a_round_asks_every_store_node_so_a_partition_loses_nothing);
        }
    };
}

fn topic() -> PubsubTopic {
    "/waku/2/rs/1/4".parse().expect("valid topic")
}

fn content(name: &str) -> ContentTopic {
    format!("/conformance/1/{name}/proto")
        .parse()
        .expect("valid topic")
}

/// A store node holding `n` messages on content topic `name`, stamped 1000,
/// 1010, ...; answers it and the messages.
async fn store_with(name: &str, n: u32) -> (Addr<MemoryStore>, storage::Handle, Vec<Delivery>) {
    let storage = storage::Handle::from(MemoryStorage::start());
    let mut kept = Vec::new();
    for i in 0..n {
        let message = WakuMessage::new(content(name).as_str(), format!("{name} {i}").into_bytes())
            .with_timestamp(1000 + 10 * i64::from(i));
        let delivery = Delivery::new(topic(), message);
        storage
            .save_raw
            .send(SaveRaw(delivery.clone()))
            .await
            .expect("storage alive")
            .expect("saved");
        kept.push(delivery);
    }
    (MemoryStore::start(storage.clone()), storage, kept)
}

async fn start_with<F, Fut>(
    start: &F,
    store: &Addr<MemoryStore>,
    stores: &[&str],
) -> (sync::Handle, Events)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let positions = storage::Handle::from(MemoryStorage::start());
    start_on(start, store, stores, positions).await
}

/// [`start_with`], keeping positions in `positions` (a restart keeps them).
async fn start_on<F, Fut>(
    start: &F,
    store: &Addr<MemoryStore>,
    stores: &[&str],
    positions: storage::Handle,
) -> (sync::Handle, Events)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (probe, events) = Probe::start();
    let stage = start(
        store.clone().recipient(),
        probe.recipient(),
        stores.iter().map(|s| (*s).to_owned()).collect(),
        positions,
    )
    .await;
    (stage, events)
}

/// What reaches the inbound path, `n` messages, by hash.
async fn received(events: &mut Events, n: usize) -> BTreeSet<MessageHash> {
    let mut hashes = BTreeSet::new();
    for _ in 0..n {
        hashes.insert(events.next_message().await.hash);
    }
    assert!(
        events.message_within(QUIET).await.is_none(),
        "more than {n} messages came"
    );
    hashes
}

fn hashes(deliveries: &[Delivery]) -> BTreeSet<MessageHash> {
    deliveries.iter().map(|d| d.hash).collect()
}

async fn catch_up(stage: &sync::Handle, ask: CatchUp) -> Result<usize, Error> {
    stage.catch_up.send(ask).await.expect("stage alive")
}

/// Every page of a topic is fetched (more than one page's worth), each
/// message handed on once, intact, with its pubsub topic.
pub async fn catches_up_every_page_of_a_topic<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("pages", 45).await;
    let (stage, mut events) = start_with(&start, &store, &[MemoryStore::ADDRESS]).await;
    let fetched = catch_up(&stage, CatchUp::new(topic(), vec![content("pages")])).await;
    assert_eq!(fetched, Ok(45));
    let first = events.next_message().await;
    assert_eq!(first.pubsub_topic, topic());
    assert_eq!(first, kept[0], "handed on byte for byte");
    let mut got = received(&mut events, 44).await;
    got.insert(first.hash);
    assert_eq!(got, hashes(&kept));
}

/// `since` and the content topics select; a named store is asked.
pub async fn catches_up_only_since_a_time_and_only_its_topics<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, storage, kept) = store_with("wanted", 10).await;
    let other = Delivery::new(
        topic(),
        WakuMessage::new(content("other").as_str(), b"not asked for".to_vec()).with_timestamp(1500),
    );
    storage
        .save_raw
        .send(SaveRaw(other))
        .await
        .expect("storage alive")
        .expect("saved");
    // The stage knows no store node: the request names one.
    let (stage, mut events) = start_with(&start, &store, &[]).await;
    let ask = CatchUp::new(topic(), vec![content("wanted")])
        .since(Some(1050))
        .from_store(MemoryStore::ADDRESS);
    assert_eq!(catch_up(&stage, ask).await, Ok(5));
    assert_eq!(received(&mut events, 5).await, hashes(&kept[5..]));
}

/// A store node that cannot be reached, or refuses, is passed over for the
/// next one.
pub async fn falls_back_to_the_next_store_node<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("fallback", 3).await;
    let stores = ["nowhere", MemoryStore::REFUSING, MemoryStore::ADDRESS];
    let (stage, mut events) = start_with(&start, &store, &stores).await;
    let fetched = catch_up(&stage, CatchUp::new(topic(), vec![content("fallback")])).await;
    assert_eq!(fetched, Ok(3));
    assert_eq!(received(&mut events, 3).await, hashes(&kept));
}

/// Store nodes learned later (peer exchange, discovery) are asked when the
/// stage's own fail; a flood of them keeps only the newest few of its
/// source, and does not push out what a signed tree listed.
pub async fn asks_the_store_nodes_it_learned_after_its_own<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("learned", 3).await;
    let (stage, mut events) = start_with(&start, &store, &[MemoryStore::REFUSING]).await;
    let ask = || CatchUp::new(topic(), vec![content("learned")]);
    assert!(matches!(
        catch_up(&stage, ask()).await,
        Err(Error::Store { .. })
    ));
    let learn = |stores: sync::Stores| stage.stores.send(stores);
    let listed = || sync::Stores::listed(vec![MemoryStore::ADDRESS.to_owned()]);
    assert_eq!(learn(listed()).await, Ok(2));
    assert_eq!(learn(listed()).await, Ok(2), "once");
    let flood = (0..100).map(|i| format!("made-up-{i}")).collect();
    assert_eq!(
        learn(sync::Stores::exchanged(flood)).await,
        Ok(2 + sync::Stores::KEPT)
    );
    assert_eq!(catch_up(&stage, ask()).await, Ok(3), "the listed one stays");
    assert_eq!(received(&mut events, 3).await, hashes(&kept));
}

/// With no store node to ask, or none that answers, the error says why.
pub async fn says_why_no_store_node_answered<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, _) = store_with("none", 1).await;
    let ask = || CatchUp::new(topic(), vec![content("none")]);
    let (stage, _events) = start_with(&start, &store, &[]).await;
    assert_eq!(catch_up(&stage, ask()).await, Err(Error::NoStoreNode));
    let (stage, _events) = start_with(&start, &store, &[MemoryStore::REFUSING]).await;
    assert!(matches!(
        catch_up(&stage, ask()).await,
        Err(Error::Store { code: 503, .. })
    ));
    let (stage, _events) = start_with(&start, &store, &["nowhere"]).await;
    assert!(matches!(
        catch_up(&stage, ask()).await,
        Err(Error::Unreachable { .. })
    ));
}

/// Messages asked for by hash come back, and only those.
pub async fn fetches_missing_messages_by_hash<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("missing", 6).await;
    let (stage, mut events) = start_with(&start, &store, &[MemoryStore::ADDRESS]).await;
    let wanted = vec![kept[1].hash, kept[4].hash];
    let fetched = stage
        .fetch_missing
        .send(FetchMissing(wanted.clone()))
        .await
        .expect("stage alive");
    assert_eq!(fetched, Ok(2));
    assert_eq!(received(&mut events, 2).await, wanted.into_iter().collect());
}

/// A store node is asked which messages it holds, past a store node that
/// does not answer: the ones it holds, and none it does not (a message
/// never published, or one held by no store yet), with nothing handed to
/// the inbound path; more hashes than one query takes are asked in turn.
pub async fn confirms_which_messages_a_store_node_holds<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("confirm", 3).await;
    let (stage, mut events) = start_with(&start, &store, &["nowhere", MemoryStore::ADDRESS]).await;
    let stranger = Delivery::new(
        topic(),
        WakuMessage::new(content("confirm").as_str(), b"never published".to_vec())
            .with_timestamp(murmur_core::now_nanos()),
    )
    .hash;
    let mut asked: Vec<MessageHash> = vec![kept[0].hash, stranger, kept[2].hash];
    // Past what one query takes: the last, held, is in the second query.
    let filler = (0..=u8::MAX).take(murmur_core::store::MAX_HASHES);
    asked.splice(2..2, filler.map(|i| MessageHash([i; 32])));
    let mut held = stage
        .confirm
        .send(Confirm(asked))
        .await
        .expect("stage alive")
        .expect("a store node answered");
    held.sort();
    let mut want = vec![kept[0].hash, kept[2].hash];
    want.sort();
    assert_eq!(held, want);
    assert!(
        events.message_within(QUIET).await.is_none(),
        "a confirmation hands nothing to the inbound path"
    );
    let (alone, _events) = start_with(&start, &store, &[]).await;
    assert_eq!(
        alone
            .confirm
            .send(Confirm(vec![kept[0].hash]))
            .await
            .expect("stage alive"),
        Err(Error::NoStoreNode)
    );
}

/// A panic in a handler is answered with [`Error::Restarted`]; the stage
/// restarts and catches up again.
pub async fn survives_a_panic_in_a_handler<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, _, kept) = store_with("panic", 2).await;
    let (stage, mut events) = start_with(&start, &store, &[MemoryStore::ADDRESS]).await;
    stage
        .inject_panic
        .send(InjectPanic)
        .await
        .expect("stage alive");
    let ask = || CatchUp::new(topic(), vec![content("panic")]);
    assert!(matches!(
        catch_up(&stage, ask()).await,
        Err(Error::Restarted(_))
    ));
    assert_eq!(catch_up(&stage, ask()).await, Ok(2));
    assert_eq!(received(&mut events, 2).await, hashes(&kept));
    // Watching and rounds work after the restart too (what the store has
    // predates the watch).
    watch(&stage, "panic").await;
    assert_eq!(round(&stage).await, Ok(0));
}

async fn watch(stage: &sync::Handle, name: &str) {
    stage
        .watch
        .send(Watch::new(topic(), vec![content(name)]))
        .await
        .expect("stage alive")
        .expect("watched");
}

async fn round(stage: &sync::Handle) -> Result<usize, Error> {
    stage
        .round
        .send(Round(Reason::Asked))
        .await
        .expect("stage alive")
}

/// A message on `name` stamped now, kept by the store node's `storage`.
async fn arrives_now(storage: &storage::Handle, name: &str, text: &str) -> Delivery {
    let message = WakuMessage::new(content(name).as_str(), text.as_bytes().to_vec())
        .with_timestamp(murmur_core::now_nanos());
    let delivery = Delivery::new(topic(), message);
    storage
        .save_raw
        .send(SaveRaw(delivery.clone()))
        .await
        .expect("storage alive")
        .expect("saved");
    delivery
}

/// A round fetches what came on the watched topics since they were
/// watched: not what the store held from long before (a new device does not
/// pull the past), not other topics.
pub async fn a_round_fetches_what_came_on_watched_topics_since_they_were_watched<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, storage, _old) = store_with("watched", 5).await;
    let (stage, mut events) = start_with(&start, &store, &[MemoryStore::ADDRESS]).await;
    watch(&stage, "watched").await;
    let new = [
        arrives_now(&storage, "watched", "one").await,
        arrives_now(&storage, "watched", "two").await,
    ];
    arrives_now(&storage, "not-watched", "no").await;
    assert_eq!(round(&stage).await, Ok(2));
    assert_eq!(received(&mut events, 2).await, hashes(&new));
    // Watching again changes nothing.
    watch(&stage, "watched").await;
    assert_eq!(
        round(&stage).await,
        Ok(2),
        "within the overlap, asked again"
    );
    assert_eq!(received(&mut events, 2).await, hashes(&new));
}

/// A round no store node answered says why and moves nothing: the next
/// round, a store node answering, fetches what the first missed; positions
/// are kept across a restart of the stage.
pub async fn a_round_no_store_answered_fails_and_the_next_fetches_what_was_missed<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (store, storage, _) = store_with("missed", 0).await;
    let positions = storage::Handle::from(MemoryStorage::start());
    let (stage, _events) = start_on(&start, &store, &["nowhere"], positions.clone()).await;
    watch(&stage, "missed").await;
    let missed = arrives_now(&storage, "missed", "while no store answered").await;
    assert!(matches!(
        round(&stage).await,
        Err(Error::Unreachable { .. })
    ));
    // Nothing watched: nothing to ask, nothing fails.
    let (idle, _idle_events) = start_with(&start, &store, &[]).await;
    assert_eq!(round(&idle).await, Ok(0));

    let (stage, mut events) = start_on(&start, &store, &[MemoryStore::ADDRESS], positions).await;
    watch(&stage, "missed").await;
    assert_eq!(round(&stage).await, Ok(1));
    assert_eq!(received(&mut events, 1).await, hashes(&[missed]));
}

/// A round asks every store node, each from where this node left it: a
/// message only one store node holds (it was on the sender's side of a
/// partition) comes from that one, once the partition heals, however many
/// rounds other store nodes answered in between.
pub async fn a_round_asks_every_store_node_so_a_partition_loses_nothing<F, Fut>(start: F)
where
    F: Fn(Recipient<QueryStore>, Recipient<transport::Event>, Vec<String>, storage::Handle) -> Fut,
    Fut: Future<Output = sync::Handle>,
{
    let (near, far) = (
        storage::Handle::from(MemoryStorage::start()),
        storage::Handle::from(MemoryStorage::start()),
    );
    let known = ["store-near", "store-far"];
    // While the partition lasts, the far store node cannot be reached.
    let cut = MemoryStore::start_many([("store-near", near.clone())]);
    let healed =
        MemoryStore::start_many([("store-near", near.clone()), ("store-far", far.clone())]);
    let positions = storage::Handle::from(MemoryStorage::start());

    let (stage, mut events) = start_on(&start, &cut, &known, positions.clone()).await;
    watch(&stage, "split").await;
    let here = arrives_now(&near, "split", "sent on this side").await;
    let there = arrives_now(&far, "split", "sent on the other side").await;
    assert_eq!(round(&stage).await, Ok(1), "the near store node answers");
    assert_eq!(
        received(&mut events, 1).await,
        hashes(std::slice::from_ref(&here))
    );
    assert_eq!(round(&stage).await, Ok(1), "and again, within the overlap");
    received(&mut events, 1).await;

    let (stage, mut events) = start_on(&start, &healed, &known, positions).await;
    watch(&stage, "split").await;
    assert_eq!(round(&stage).await, Ok(2), "each store node answers");
    assert_eq!(received(&mut events, 2).await, hashes(&[here, there]));
}
