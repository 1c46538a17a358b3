//! The persistence stage's conformance suite. `$start` is an
//! `async fn() -> murmur_core::storage::Handle` that starts an empty store.
//! A backend that several processes can share also names, after
//! `shared =`, an `async fn() -> (Handle, Handle)` that starts two stages on
//! one empty database, for the cases of its lease.

use std::{future::Future, time::Duration};

use murmur_core::{
    storage::{
        self, Cursor, ListState, LoadCursor, LoadState, Prune, SaveCursor, SaveRaw, SaveState,
    },
    store::{Page, Query},
    supervise::InjectPanic,
    Delivery, MessageHash, PubsubTopic, WakuMessage,
};

/// Runs the persistence stage's suite against `$start`.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($start:path, shared = $pair:path) => {
        $crate::storage_conformance_tests!($start);

        /// Two stages on one database, as two processes sharing it are.
        mod storage_conformance_shared {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        $crate::run($crate::storage_conformance::$name($pair));
                    }
                };
            }

            case!(fences_a_holder_whose_lease_was_taken);
            case!(gives_a_contested_lease_to_one);
        }
    };
    ($start:path) => {
        mod storage_conformance {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        $crate::run($crate::storage_conformance::$name($start));
                    }
                };
            }

            case!(saves_once_and_skips_ephemeral);
            case!(takes_copies_arriving_together_once);
            case!(saves_many_in_one_request);
            case!(refuses_alone_what_it_cannot_hold);
            case!(round_trips_messages_byte_for_byte);
            case!(filters_by_topic_and_time);
            case!(pages_forward_with_an_exclusive_cursor);
            case!(pages_backward_newest_first_each_page_ascending);
            case!(pages_a_time_range_both_ways);
            case!(answers_the_final_query_with_an_empty_page);
            case!(looks_up_hashes_with_and_without_data);
            case!(refuses_bad_queries);
            case!(prunes_by_count_and_age);
            case!(keeps_an_outbox);
            case!(puts_an_entry_in_the_turn_of_the_one_it_replaces);
            case!(keeps_cursors);
            case!(keeps_stage_state_by_name_and_prefix);
            case!(survives_a_panic_in_a_handler);
            case!(keeps_a_lease_for_one_holder_at_a_time);
            case!(hands_on_a_lapsed_lease);
        }
    };
}

mod kept_once;
pub use kept_once::{
    keeps_an_outbox, puts_an_entry_in_the_turn_of_the_one_it_replaces,
    refuses_alone_what_it_cannot_hold, saves_many_in_one_request, saves_once_and_skips_ephemeral,
    takes_copies_arriving_together_once,
};
mod lease;
pub use lease::{
    fences_a_holder_whose_lease_was_taken, gives_a_contested_lease_to_one, hands_on_a_lapsed_lease,
    keeps_a_lease_for_one_holder_at_a_time,
};

fn topic(n: u16) -> PubsubTopic {
    format!("/waku/2/rs/1/{n}").parse().expect("valid topic")
}

fn delivery(shard: u16, content: &str, timestamp: i64, tag: u32) -> Delivery {
    let message = WakuMessage::new(content, format!("message {tag}").into_bytes())
        .with_timestamp(timestamp)
        .with_meta(tag.to_be_bytes().to_vec());
    Delivery::new(topic(shard), message)
}

async fn save(store: &storage::Handle, d: &Delivery) -> bool {
    store
        .save_raw
        .send(SaveRaw(d.clone()))
        .await
        .expect("store alive")
        .expect("save succeeds")
}

async fn query(store: &storage::Handle, q: Query) -> Result<Page, storage::Error> {
    store
        .query
        .send(storage::Query(q))
        .await
        .expect("store alive")
}

fn hashes(page: &Page) -> Vec<MessageHash> {
    page.messages.iter().map(|m| m.hash).collect()
}

/// `n` messages on shard 1, content topic `/c/1/a/proto`, timestamps 1000, 1010, ...
async fn fill(store: &storage::Handle, n: u32) -> Vec<Delivery> {
    let mut all = Vec::new();
    for i in 0..n {
        let d = delivery(1, "/c/1/a/proto", 1000 + 10 * i64::from(i), i);
        assert!(save(store, &d).await);
        all.push(d);
    }
    all
}

/// What comes back is what went in, every field.
pub async fn round_trips_messages_byte_for_byte<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let mut d = delivery(3, "/c/1/b/proto", -7, 9);
    d.message.rate_limit_proof = Some(vec![1, 2, 3].into());
    d.message.version = Some(1);
    let d = Delivery::new(d.pubsub_topic, d.message);
    save(&store, &d).await;
    let page = query(&store, Query::hashes(vec![d.hash])).await.unwrap();
    let got = &page.messages[0];
    assert_eq!(got.hash, d.hash);
    assert_eq!(got.pubsub_topic.as_ref(), Some(&d.pubsub_topic));
    assert_eq!(got.message.as_ref(), Some(&d.message));
}

/// Content queries select by pubsub topic, content topics and a half-open time range.
pub async fn filters_by_topic_and_time<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let a1 = delivery(1, "/c/1/a/proto", 100, 1);
    let b1 = delivery(1, "/c/1/b/proto", 200, 2);
    let a2 = delivery(2, "/c/1/a/proto", 300, 3);
    let a1_late = delivery(1, "/c/1/a/proto", 400, 4);
    for d in [&a1_late, &b1, &a2, &a1] {
        save(&store, d).await;
    }
    let only_a_on_1 = Query::content(Some(topic(1)), vec!["/c/1/a/proto".into()]);
    let page = query(&store, only_a_on_1.clone()).await.unwrap();
    assert_eq!(
        hashes(&page),
        vec![a1.hash, a1_late.hash],
        "ascending by time"
    );
    let both = Query::content(
        Some(topic(1)),
        vec!["/c/1/a/proto".into(), "/c/1/b/proto".into()],
    );
    let page = query(&store, both).await.unwrap();
    assert_eq!(hashes(&page), vec![a1.hash, b1.hash, a1_late.hash]);
    let ranged = only_a_on_1.with_time(Some(100), Some(400));
    let page = query(&store, ranged).await.unwrap();
    assert_eq!(
        hashes(&page),
        vec![a1.hash],
        "start inclusive, end exclusive"
    );
    let everything = query(&store, Query::content(None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(everything.messages.len(), 4);
}

async fn collect(store: &storage::Handle, q: Query) -> (Vec<MessageHash>, usize) {
    let mut q = q;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = query(store, q.clone()).await.unwrap();
        pages += 1;
        assert!(page.messages.len() <= q.limit);
        let mut ordered = page.messages.clone();
        ordered.sort_by_key(|m| {
            m.message
                .as_ref()
                .map(|m| (m.timestamp.unwrap_or(0), m.content_topic.clone()))
        });
        assert_eq!(ordered, page.messages, "every page is in ascending order");
        if q.forward {
            all.extend(hashes(&page));
        } else {
            let mut h = hashes(&page);
            h.extend(all);
            all = h;
        }
        match page.cursor {
            Some(c) => q = q.with_cursor(Some(c)),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (all, pages)
}

/// 45 messages come back in pages of 20, 20 and 5, each exactly once, in order.
pub async fn pages_forward_with_an_exclusive_cursor<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 45).await;
    let q = Query::content(Some(topic(1)), vec!["/c/1/a/proto".into()]);
    let (got, pages) = collect(&store, q).await;
    assert_eq!(pages, 3);
    assert_eq!(got, all.iter().map(|d| d.hash).collect::<Vec<_>>());
}

/// Backward pages start at the newest; each page is still oldest first.
pub async fn pages_backward_newest_first_each_page_ascending<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 45).await;
    let q = Query::content(Some(topic(1)), vec!["/c/1/a/proto".into()])
        .with_forward(false)
        .with_limit(20);
    let first = query(&store, q.clone()).await.unwrap();
    assert_eq!(
        hashes(&first),
        all[25..].iter().map(|d| d.hash).collect::<Vec<_>>(),
        "the newest 20, ascending"
    );
    let (got, pages) = collect(&store, q).await;
    assert_eq!(pages, 3);
    assert_eq!(got, all.iter().map(|d| d.hash).collect::<Vec<_>>());
}

/// A time range pages as every query does, both ways, each message once;
/// a cursor from outside the range (a client may send any) starts at the
/// range's edge. (Store sync and js-waku ask for time ranges page by
/// page.)
pub async fn pages_a_time_range_both_ways<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 45).await;
    // 1100 up to 1350: the 10th to the 34th.
    let ranged = Query::content(Some(topic(1)), vec!["/c/1/a/proto".into()])
        .with_time(Some(1100), Some(1350))
        .with_limit(10);
    let inside: Vec<MessageHash> = all[10..35].iter().map(|d| d.hash).collect();
    for forward in [true, false] {
        let (got, pages) = collect(&store, ranged.clone().with_forward(forward)).await;
        assert_eq!(pages, 3, "forward: {forward}");
        assert_eq!(got, inside, "forward: {forward}");
    }
    let before = ranged.clone().with_cursor(Some(all[2].hash));
    let page = query(&store, before).await.unwrap();
    assert_eq!(
        hashes(&page),
        inside[..10].to_vec(),
        "forward from before the range"
    );
    let after = ranged.with_forward(false).with_cursor(Some(all[40].hash));
    let page = query(&store, after).await.unwrap();
    assert_eq!(
        hashes(&page),
        inside[15..].to_vec(),
        "backward from after the range"
    );
}

/// js-waku pages with the hash of the last message it got until a page is
/// empty: that final query gets an empty page, not an error.
pub async fn answers_the_final_query_with_an_empty_page<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 3).await;
    let q =
        Query::content(Some(topic(1)), vec!["/c/1/a/proto".into()]).with_cursor(Some(all[2].hash));
    let page = query(&store, q).await.unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.cursor, None);
}

/// Hash lookups return what is there; without data, only hashes.
pub async fn looks_up_hashes_with_and_without_data<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 5).await;
    let missing = MessageHash([7; 32]);
    let q = Query::hashes(vec![all[3].hash, missing, all[1].hash]);
    let page = query(&store, q.clone()).await.unwrap();
    assert_eq!(hashes(&page), vec![all[1].hash, all[3].hash]);
    let mut presence = q;
    presence.include_data = false;
    let page = query(&store, presence).await.unwrap();
    assert_eq!(hashes(&page), vec![all[1].hash, all[3].hash]);
    assert!(page.messages.iter().all(|m| m.message.is_none()));
}

/// Queries that break the protocol's limits are refused with a typed error.
pub async fn refuses_bad_queries<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    fill(&store, 2).await;
    let eleven = (0..11).map(|i| format!("/c/1/{i}/proto")).collect();
    assert!(matches!(
        query(&store, Query::content(Some(topic(1)), eleven)).await,
        Err(storage::Error::BadQuery(_))
    ));
    let nul = vec!["/c/1/a\0/proto".to_owned()];
    assert!(matches!(
        query(&store, Query::content(Some(topic(1)), nul)).await,
        Err(storage::Error::BadQuery(_))
    ));
    let many = (0..101u8).map(|i| MessageHash([i; 32])).collect();
    assert!(matches!(
        query(&store, Query::hashes(many)).await,
        Err(storage::Error::BadQuery(_))
    ));
    let unknown = Query::content(None, Vec::new()).with_cursor(Some(MessageHash([9; 32])));
    assert!(matches!(
        query(&store, unknown).await,
        Err(storage::Error::UnknownCursor(_))
    ));
}

/// Retention keeps the newest `max_count` and nothing older than `max_age`.
pub async fn prunes_by_count_and_age<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let all = fill(&store, 10).await;
    let deleted = store
        .prune
        .send(Prune::new(None, Some(3)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted, 7);
    let page = query(&store, Query::content(None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(
        hashes(&page),
        all[7..].iter().map(|d| d.hash).collect::<Vec<_>>()
    );
    let recent = delivery(1, "/c/1/a/proto", murmur_core::now_nanos(), 99);
    save(&store, &recent).await;
    let deleted = store
        .prune
        .send(Prune::new(Some(Duration::from_secs(60)), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted, 3, "the old ones go");
    let page = query(&store, Query::content(None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(hashes(&page), vec![recent.hash]);
}

/// Cursors are saved, overwritten and loaded by name.
pub async fn keeps_cursors<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let load = |name: &str| store.load_cursor.send(LoadCursor(name.to_owned()));
    assert_eq!(load("bot").await.unwrap().unwrap(), None);
    for timestamp in [5, 9] {
        let cursor = Cursor {
            timestamp,
            hash: MessageHash([timestamp as u8; 32]),
        };
        store
            .save_cursor
            .send(SaveCursor {
                name: "bot".into(),
                cursor,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(load("bot").await.unwrap().unwrap(), Some(cursor));
    }
    assert_eq!(load("other").await.unwrap().unwrap(), None);
}

/// Stage state: saved in one batch, overwritten, deleted, listed by prefix in
/// name order (with `%` and `_` taken literally), bytes kept exactly; a name
/// twice in one save, and many saves in flight at once, as if applied one
/// after the other.
pub async fn keeps_stage_state_by_name_and_prefix<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let save = |entries: Vec<(&str, Option<Vec<u8>>)>| {
        store.save_state.send(SaveState(
            entries
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
        ))
    };
    let all_bytes: Vec<u8> = (0..=255).collect();
    save(vec![
        ("crypto/session/b", Some(vec![2])),
        ("crypto/session/a", Some(all_bytes.clone())),
        ("crypto/session%", Some(vec![9])),
        ("crypto/installation", Some(vec![1])),
        ("groups/x", Some(vec![3])),
    ])
    .await
    .unwrap()
    .unwrap();
    let load = |name: &str| store.load_state.send(LoadState(name.to_owned()));
    assert_eq!(
        load("crypto/session/a").await.unwrap().unwrap(),
        Some(all_bytes.clone())
    );
    assert_eq!(load("nothing").await.unwrap().unwrap(), None);
    let list = store
        .list_state
        .send(ListState("crypto/session/".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        list,
        vec![
            ("crypto/session/a".to_owned(), all_bytes),
            ("crypto/session/b".to_owned(), vec![2]),
        ]
    );
    save(vec![
        ("crypto/session/a", None),
        ("crypto/session/b", Some(vec![7])),
    ])
    .await
    .unwrap()
    .unwrap();
    assert_eq!(load("crypto/session/a").await.unwrap().unwrap(), None);
    assert_eq!(
        load("crypto/session/b").await.unwrap().unwrap(),
        Some(vec![7])
    );

    // Within one save, entries apply one after the other.
    save(vec![
        ("crypto/x", Some(vec![1])),
        ("crypto/x", None),
        ("crypto/y", None),
        ("crypto/y", Some(vec![2])),
        ("crypto/z", Some(vec![1])),
        ("crypto/z", Some(vec![4])),
    ])
    .await
    .unwrap()
    .unwrap();
    assert_eq!(load("crypto/x").await.unwrap().unwrap(), None);
    assert_eq!(load("crypto/y").await.unwrap().unwrap(), Some(vec![2]));
    assert_eq!(load("crypto/z").await.unwrap().unwrap(), Some(vec![4]));

    // Saves in flight together (a stage may commit them as one) land in
    // the order they were sent, each whole.
    let names: Vec<String> = (0..50).map(|i| format!("crypto/k{i:02}")).collect();
    // (actix queues a message when it is sent, not when it is awaited.)
    let saves: Vec<_> = (0..50u8)
        .map(|i| {
            save(vec![
                ("crypto/n", Some(vec![i])),
                (names[usize::from(i)].as_str(), Some(vec![i])),
            ])
        })
        .collect();
    for saved in saves {
        saved.await.unwrap().unwrap();
    }
    assert_eq!(load("crypto/n").await.unwrap().unwrap(), Some(vec![49]));
    let listed = store
        .list_state
        .send(ListState("crypto/k".into()))
        .await
        .unwrap()
        .unwrap();
    let expected: Vec<_> = (0..50u8)
        .map(|i| (names[usize::from(i)].clone(), vec![i]))
        .collect();
    assert_eq!(listed, expected);
}

/// A panic in a handler is answered with [`storage::Error::Restarted`]; the
/// stage restarts and keeps what it had saved, and takes saves again.
pub async fn survives_a_panic_in_a_handler<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let kept = fill(&store, 3).await;
    store
        .inject_panic
        .send(InjectPanic)
        .await
        .expect("store alive");
    let met = delivery(1, "/c/1/a/proto", 2000, 100);
    let answer = store
        .save_raw
        .send(SaveRaw(met.clone()))
        .await
        .expect("answered, not dropped");
    assert!(
        matches!(answer, Err(storage::Error::Restarted(_))),
        "the save that met the panic: {answer:?}"
    );
    let after = delivery(1, "/c/1/a/proto", 2010, 101);
    assert!(save(&store, &after).await, "saves again after the restart");
    let page = query(&store, Query::content(None, Vec::new()))
        .await
        .expect("queries again after the restart");
    let mut expected: Vec<MessageHash> = kept.iter().map(|d| d.hash).collect();
    expected.push(after.hash);
    assert_eq!(hashes(&page), expected, "nothing saved before was lost");
}
