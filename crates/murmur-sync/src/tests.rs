//! The stage's own tests: positions and what a round asks for.

use murmur_core::{storage::SaveRaw, sync::Reason, WakuMessage};
use murmur_test_kit::{MemoryStorage, MemoryStore, Probe};

use super::*;

const MINUTE: i64 = 60_000_000_000;

#[test]
fn a_round_asks_from_each_position_less_the_overlap_and_moves_it() {
    murmur_test_kit::run(positions_move());
}

async fn positions_move() {
    let pubsub: PubsubTopic = "/waku/2/rs/1/4".parse().unwrap();
    let content: ContentTopic = "/test/1/positions/proto".parse().unwrap();
    let save = |into: storage::Handle, text: &str, at: i64| {
        let message =
            WakuMessage::new(content.as_str(), text.as_bytes().to_vec()).with_timestamp(at);
        let delivery = Delivery::new(pubsub.clone(), message);
        async move {
            into.save_raw
                .send(SaveRaw(delivery.clone()))
                .await
                .unwrap()
                .unwrap();
            delivery.hash
        }
    };
    let kept = storage::Handle::from(MemoryStorage::start());
    let now = murmur_core::now_nanos();
    let keep = |text: &'static str, at: i64| save(kept.clone(), text, at);
    let _before = keep("before the position and the overlap", now - 73 * MINUTE).await;
    let within = keep("after the position", now - 69 * MINUTE).await;
    let fresh = keep("now", now).await;

    // The topic was last seen seventy minutes ago. This node's own
    // storage keeps the positions and its archive.
    let own = storage::Handle::from(MemoryStorage::start());
    let key = position_key(&pubsub, &content);
    save_positions(&own, vec![(key.clone(), now - 70 * MINUTE)])
        .await
        .unwrap();
    let (probe, mut events) = Probe::start();
    let stage = StoreSync::start(
        MemoryStore::start(kept.clone()).recipient(),
        probe.recipient(),
        vec![MemoryStore::ADDRESS.to_owned()],
        own.clone(),
    );
    // Watching a topic with a position keeps it.
    stage
        .send(Watch::new(pubsub.clone(), vec![content.clone()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stage.send(Round(Reason::Asked)).await.unwrap(), Ok(2));
    let got = [
        events.next_message().await.hash,
        events.next_message().await.hash,
    ];
    assert_eq!(got, [within, fresh]);
    // The pipeline archives what came.
    let _ = save(own.clone(), "after the position", now - 69 * MINUTE).await;
    let _ = save(own.clone(), "now", now).await;

    // Moved to the round's start.
    let moved = load_position(&own, key).await.unwrap().unwrap();
    assert!(moved >= now, "{moved} < {now}");
    // A message five minutes old reaches the store node only now (a
    // partition healed elsewhere): the next round finds it, though its
    // time is before the position less the overlap. Before that it
    // fetches nothing the archive holds; after it, everything again.
    let late = keep("five minutes old, come late", now - 5 * MINUTE).await;
    let _held = keep("half an hour old, archived", now - 30 * MINUTE).await;
    let _ = save(own.clone(), "half an hour old, archived", now - 30 * MINUTE).await;
    assert_eq!(stage.send(Round(Reason::Asked)).await.unwrap(), Ok(2));
    let got = [
        events.next_message().await.hash,
        events.next_message().await.hash,
    ];
    assert_eq!(got, [fresh, late]);
}

/// Passes queries on to a store node, keeping each one's page size.
struct Sizes {
    store: Recipient<QueryStore>,
    asked: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Actor for Sizes {
    type Context = Context<Self>;
}

impl Handler<QueryStore> for Sizes {
    type Result = ResponseFuture<Result<Page, transport::Error>>;

    fn handle(&mut self, ask: QueryStore, _: &mut Context<Self>) -> Self::Result {
        self.asked.lock().unwrap().push(ask.query.limit);
        let store = self.store.clone();
        Box::pin(async move {
            store
                .send(ask)
                .await
                .unwrap_or(Err(transport::Error::Stopped))
        })
    }
}

/// A round and a catch-up ask for pages as large as store nodes serve
/// (nwaku's cap, 100): a query's default of 20 made a catch-up five times
/// the round trips.
#[test]
fn rounds_and_catch_ups_ask_for_full_pages() {
    murmur_test_kit::run(async {
        let pubsub: PubsubTopic = "/waku/2/rs/1/4".parse().unwrap();
        let content: ContentTopic = "/test/1/pages/proto".parse().unwrap();
        let kept = storage::Handle::from(MemoryStorage::start());
        let now = murmur_core::now_nanos();
        for i in 0..150 {
            let message = WakuMessage::new(content.as_str(), format!("{i}").into_bytes())
                .with_timestamp(now - i);
            let saved = kept
                .save_raw
                .send(SaveRaw(Delivery::new(pubsub.clone(), message)));
            assert_eq!(saved.await.unwrap(), Ok(true));
        }
        let asked = Arc::default();
        let sizes = Sizes {
            store: MemoryStore::start(kept).recipient(),
            asked: Arc::clone(&asked),
        };
        let (probe, _events) = Probe::start();
        let stage = StoreSync::start(
            sizes.start().recipient(),
            probe.recipient(),
            vec![MemoryStore::ADDRESS.to_owned()],
            storage::Handle::from(MemoryStorage::start()),
        );
        stage
            .send(Watch::new(pubsub.clone(), vec![content.clone()]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stage.send(Round(Reason::Asked)).await.unwrap(), Ok(150));
        let catch_up = CatchUp::new(pubsub, vec![content]);
        assert_eq!(stage.send(catch_up).await.unwrap(), Ok(150));
        let asked = asked.lock().unwrap().clone();
        assert!(asked.len() >= 4, "{asked:?}");
        assert!(
            asked
                .iter()
                .all(|&limit| limit == murmur_core::store::MAX_PAGE),
            "{asked:?}"
        );
    });
}
