//! The lease: one holder at a time, a lapsed lease goes on, and a holder
//! whose lease was taken writes nothing (run on two stages of one database
//! by backends that several processes can share).

use std::{future::Future, time::Duration};

use murmur_core::{
    storage::{
        self, Acquire, Cursor, Enqueue, Lease, LoadState, MarkSent, Prune, Release, SaveAll,
        SaveCursor, SaveRaw, SaveState,
    },
    store::Query,
    MessageHash, WakuMessage,
};

use super::{delivery, hashes, query, topic};

/// The lease every case asks for.
const NAME: &str = "node";
/// A lease no case waits out.
const LONG: Duration = Duration::from_secs(600);
/// A lease a case waits out.
const SHORT: Duration = Duration::from_millis(300);

async fn acquire(store: &storage::Handle, holder: &str, ttl: Duration) -> Lease {
    store
        .acquire
        .send(Acquire::new(NAME, holder, ttl))
        .await
        .expect("store alive")
        .expect("the lease table answers")
}

async fn release(store: &storage::Handle, holder: &str) {
    store
        .release
        .send(Release::new(NAME, holder))
        .await
        .expect("store alive")
        .expect("released");
}

fn epoch(lease: &Lease) -> u64 {
    match lease {
        Lease::Held { epoch } => *epoch,
        Lease::Taken { holder, .. } => panic!("expected to hold the lease; {holder} does"),
    }
}

/// Asks for the lease until it lapses and `holder` gets it (a lease is
/// waited out by asking, as a standby does); fails after five seconds.
async fn take_when_lapsed(store: &storage::Handle, holder: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match acquire(store, holder, LONG).await {
            Lease::Held { epoch } => return epoch,
            Lease::Taken { remaining, .. } => {
                assert!(
                    remaining <= SHORT,
                    "a lease of {SHORT:?} has {remaining:?} left"
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the lease never lapsed"
                );
                tokio::time::sleep(remaining.max(Duration::from_millis(20))).await;
            }
        }
    }
}

async fn save_state(store: &storage::Handle, value: u8) -> Result<(), storage::Error> {
    store
        .save_state
        .send(SaveState(vec![("lease/x".to_owned(), Some(vec![value]))]))
        .await
        .expect("store alive")
}

async fn load_state(store: &storage::Handle) -> Option<Vec<u8>> {
    store
        .load_state
        .send(LoadState("lease/x".to_owned()))
        .await
        .expect("store alive")
        .expect("loads")
}

fn fenced<T: std::fmt::Debug>(what: &str, answer: Result<T, storage::Error>, by: &str) {
    match answer {
        Err(storage::Error::Fenced(holder)) => {
            assert!(holder.contains(by), "{what}: fenced by {holder}, not {by}");
        }
        other => panic!("{what} by a holder whose lease was taken: {other:?}"),
    }
}

/// One holder at a time: the holder renews and keeps its epoch, another
/// asker is told who holds it and for how long, a release hands it on at
/// once under a new epoch, and the stage that released writes nothing
/// until it holds the lease again.
pub async fn keeps_a_lease_for_one_holder_at_a_time<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    save_state(&store, 1)
        .await
        .expect("a stage that never asked for a lease writes");
    let first = epoch(&acquire(&store, "a", LONG).await);
    assert_eq!(
        epoch(&acquire(&store, "a", LONG).await),
        first,
        "renewing keeps the epoch"
    );
    match acquire(&store, "b", LONG).await {
        Lease::Taken { holder, remaining } => {
            assert_eq!(holder, "a");
            assert!(
                remaining > Duration::ZERO && remaining <= LONG,
                "{remaining:?}"
            );
        }
        held => panic!("a second holder got a held lease: {held:?}"),
    }
    release(&store, "b").await;
    assert!(
        matches!(acquire(&store, "b", LONG).await, Lease::Taken { .. }),
        "a release by one who does not hold the lease changes nothing"
    );
    save_state(&store, 2).await.expect("the holder writes");
    release(&store, "a").await;
    fenced(
        "a write after the release",
        save_state(&store, 3).await,
        "nobody",
    );
    let second = epoch(&acquire(&store, "b", LONG).await);
    assert!(second > first, "a new holder, a new epoch");
    save_state(&store, 4).await.expect("the new holder writes");
    assert_eq!(load_state(&store).await, Some(vec![4]));
}

/// A lease its holder does not renew in time goes to the next asker, under
/// a new epoch.
pub async fn hands_on_a_lapsed_lease<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let first = epoch(&acquire(&store, "a", SHORT).await);
    assert!(matches!(
        acquire(&store, "b", LONG).await,
        Lease::Taken { .. }
    ));
    let second = take_when_lapsed(&store, "b").await;
    assert!(second > first);
}

/// Two stages of one database, as two processes are: a holder paused past
/// its lease, after the other took it, has every kind of write refused and
/// nothing it tried is there; the new holder writes, and the lease comes
/// back only when it is released.
pub async fn fences_a_holder_whose_lease_was_taken<F, Fut>(pair: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (storage::Handle, storage::Handle)>,
{
    let (old, new) = pair().await;
    let first = epoch(&acquire(&old, "old", SHORT).await);
    save_state(&old, 1).await.expect("the holder writes");
    let kept = delivery(1, "/c/1/a/proto", 1000, 1);
    assert!(old
        .save_raw
        .send(SaveRaw(kept.clone()))
        .await
        .unwrap()
        .unwrap());
    let second = take_when_lapsed(&new, "new").await;
    assert!(second > first);

    fenced("state", save_state(&old, 2).await, "new");
    let message = delivery(1, "/c/1/a/proto", 2000, 2);
    fenced(
        "an archive save",
        old.save_raw.send(SaveRaw(message.clone())).await.unwrap(),
        "new",
    );
    fenced(
        "archive saves in one request",
        old.save_all
            .send(SaveAll(vec![message.clone(), kept.clone()]))
            .await
            .unwrap(),
        "new",
    );
    fenced(
        "an outbox entry",
        old.enqueue
            .send(Enqueue::new(
                topic(1),
                WakuMessage::new("/c/1/a/proto", b"late".to_vec()),
            ))
            .await
            .unwrap(),
        "new",
    );
    fenced(
        "a sent mark",
        old.mark_sent
            .send(MarkSent(MessageHash([7; 32])))
            .await
            .unwrap(),
        "new",
    );
    fenced(
        "a cursor",
        old.save_cursor
            .send(SaveCursor {
                name: "lease/c".to_owned(),
                cursor: Cursor {
                    timestamp: 1,
                    hash: MessageHash([1; 32]),
                },
            })
            .await
            .unwrap(),
        "new",
    );
    fenced(
        "a prune",
        old.prune.send(Prune::new(None, Some(0))).await.unwrap(),
        "new",
    );
    assert!(
        matches!(acquire(&old, "old", LONG).await, Lease::Taken { holder, .. } if holder == "new"),
        "the old holder cannot take a held lease back"
    );

    assert_eq!(
        load_state(&new).await,
        Some(vec![1]),
        "the refused write left nothing"
    );
    let page = query(&new, Query::content(None, Vec::new())).await.unwrap();
    assert_eq!(
        hashes(&page),
        vec![kept.hash],
        "nor did the refused save or prune"
    );
    let pending = new.pending.send(storage::Pending).await.unwrap().unwrap();
    assert!(pending.is_empty(), "nor the refused outbox entry");
    save_state(&new, 5).await.expect("the new holder writes");

    release(&new, "new").await;
    let third = epoch(&acquire(&old, "old", LONG).await);
    assert!(third > second);
    save_state(&old, 6).await.expect("the holder writes again");
    fenced("state", save_state(&new, 7).await, "nobody");
    assert_eq!(load_state(&old).await, Some(vec![6]));
}

/// Two stages of one database asking at the same moment: one gets the
/// lease, the other is told it is taken.
pub async fn gives_a_contested_lease_to_one<F, Fut>(pair: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = (storage::Handle, storage::Handle)>,
{
    let (a, b) = pair().await;
    for round in 0..10 {
        let (x, y) = (format!("a{round}"), format!("b{round}"));
        let (first, second) = tokio::join!(acquire(&a, &x, LONG), acquire(&b, &y, LONG));
        let held = [&first, &second]
            .iter()
            .filter(|l| matches!(l, Lease::Held { .. }))
            .count();
        assert_eq!(held, 1, "round {round}: {first:?} and {second:?}");
        release(&a, &x).await;
        release(&b, &y).await;
    }
}
