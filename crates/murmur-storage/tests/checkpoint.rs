//! The storage stage's writer has SQLite's WAL checkpointed beside its
//! writes, not inside them: each time it has committed about a mebibyte a
//! passive checkpoint runs on a pooled connection and copies pages into
//! the database file; and one more through `Database::checkpoint` leaves
//! every message in that file, readable without the WAL.

use murmur_core::{storage::SaveRaw, Delivery, WakuMessage};
use murmur_storage::{Database, Metrics, Storage};

/// Messages of 1 KiB: about four mebibytes in all.
const MESSAGES: usize = 4_000;
/// Saves sent at once, as a busy relay's arrive.
const AT_ONCE: usize = 200;

fn delivery(i: usize) -> Delivery {
    let payload = vec![u8::try_from(i % 251).unwrap_or(0); 1024];
    let message = WakuMessage::new("/murmur/1/bench/proto", payload)
        .with_timestamp(1_700_000_000_000_000_000 + i64::try_from(i).unwrap());
    Delivery::new("/waku/2/rs/1/0".parse().unwrap(), message)
}

async fn count(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[actix_rt::test]
async fn the_writer_has_the_wal_checkpointed_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("murmur.db");
    let db = Database::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let metrics = Metrics::default();
    let storage = Storage::start_with(db.clone(), metrics.clone());

    for first in (0..MESSAGES).step_by(AT_ONCE) {
        let saves = (first..first + AT_ONCE).map(|i| storage.send(SaveRaw(delivery(i))));
        for saved in futures::future::join_all(saves).await {
            assert!(saved.unwrap().unwrap(), "each message is new");
        }
    }
    // Asked for by the writer, run by the stage: counted once it ran and
    // copied pages.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metrics.checkpoint_pages() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint ran beside the writer after {MESSAGES} KiB"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Nothing writes now: a passive checkpoint copies all the WAL holds,
    // once the stage's own (still running, maybe) is done.
    let done = loop {
        let done = db.checkpoint().await.unwrap().expect("SQLite checkpoints");
        if !done.busy {
            break done;
        }
        assert!(std::time::Instant::now() < deadline, "always busy");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(done.copied, done.log, "{done:?}");
    assert!(done.log > 0, "{done:?}");
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(&path, alone.path().join("murmur.db")).unwrap();
    let copy = Database::open(&format!(
        "sqlite://{}",
        alone.path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(
        count(&copy).await,
        i64::try_from(MESSAGES).unwrap(),
        "the database file, without its WAL, holds every message"
    );
    assert_eq!(count(&db).await, i64::try_from(MESSAGES).unwrap());
}

/// PostgreSQL has no WAL of ours to checkpoint: the call says so.
#[tokio::test]
async fn postgres_has_nothing_to_checkpoint() {
    let url = std::env::var("TEST_POSTGRES_URL").expect(
        "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
    );
    let db = Database::open_fresh(&url).await.unwrap();
    assert_eq!(db.checkpoint().await.unwrap(), None);
}
