//! SQLite and PostgreSQL pass the persistence conformance suite, unchanged.

use murmur_core::storage;
use murmur_storage::{Database, Storage};

/// A fresh SQLite file per test, in a folder that lives as long as the process.
async fn start() -> storage::Handle {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let db = Database::open(&format!("sqlite://{}", dir.join("murmur.db").display()))
        .await
        .expect("opens");
    storage::Handle::from(Storage::start(db))
}

/// Two stages on one fresh SQLite file, each with its own connections, as
/// two processes would have.
async fn pair() -> (storage::Handle, storage::Handle) {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("murmur.db").display());
    let a = Database::open(&url).await.expect("opens");
    let b = Database::open(&url).await.expect("opens again");
    (
        storage::Handle::from(Storage::start(a)),
        storage::Handle::from(Storage::start(b)),
    )
}

murmur_test_kit::storage_conformance_tests!(start, shared = pair);

/// PostgreSQL: a fresh schema-less database per test on the server named by
/// `TEST_POSTGRES_URL` (.ci/run starts one and sets it).
mod postgres {
    use super::*;

    pub(super) async fn start() -> storage::Handle {
        let url = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
        );
        let db = Database::open_fresh(&url)
            .await
            .expect("opens a fresh database");
        storage::Handle::from(Storage::start(db))
    }

    /// Two stages on one fresh database, each with its own pool.
    pub(super) async fn pair() -> (storage::Handle, storage::Handle) {
        let server = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
        );
        let url = Database::create_fresh(&server).await.expect("creates");
        let a = Database::open(&url).await.expect("opens");
        let b = Database::open(&url).await.expect("opens again");
        (
            storage::Handle::from(Storage::start(a)),
            storage::Handle::from(Storage::start(b)),
        )
    }

    murmur_test_kit::storage_conformance_tests!(start, shared = pair);

    /// What `bench store` leaves on a server: nothing. A fresh database is
    /// dropped, even with a handle still open; the server's own database,
    /// or any name `create_fresh` does not make, is refused.
    #[actix_rt::test]
    async fn a_fresh_database_is_dropped_and_no_other() {
        let server = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
        );
        let url = Database::create_fresh(&server).await.expect("creates");
        let open = Database::open(&url).await.expect("opens");
        Database::drop_fresh(&server, &url).await.expect("dropped");
        drop(open);
        assert!(
            Database::open(&url).await.is_err(),
            "the dropped database does not open"
        );
        for other in [
            server.clone(),
            url.replace("murmur_test_", "murmur_"),
            format!("{url};DROP"),
        ] {
            assert!(
                Database::drop_fresh(&server, &other).await.is_err(),
                "{other} is not dropped"
            );
        }
        Database::open(&server)
            .await
            .expect("the server's own database is still there");
    }

    /// What test runs leave on a developer's server goes: a fresh database
    /// made more than six hours ago is dropped when the next one is made,
    /// and one made just before stays.
    #[actix_rt::test]
    async fn making_a_fresh_database_drops_those_left_from_long_ago() {
        let server = std::env::var("TEST_POSTGRES_URL").expect(
            "TEST_POSTGRES_URL must name a PostgreSQL server for these tests; .ci/run sets one up",
        );
        // Made in 1970, as its name says (by this process, so that two
        // runs of this test on one server do not meet).
        let old = format!("murmur_test_{}_1000_0", std::process::id());
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&server).await.expect("connects");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {old}"))
            .execute(&admin)
            .await
            .expect("drops a leftover of an earlier run of this test");
        sqlx::query(&format!("CREATE DATABASE {old}"))
            .execute(&admin)
            .await
            .expect("creates");
        let recent = Database::create_fresh(&server).await.expect("creates");
        let newest = Database::create_fresh(&server).await.expect("creates");
        let left: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'murmur_test_%'",
        )
        .fetch_all(&admin)
        .await
        .expect("lists");
        admin.close().await;
        assert!(!left.contains(&old), "{left:?}");
        for url in [&recent, &newest] {
            let name = url.rsplit_once('/').expect("a database name").1;
            assert!(left.iter().any(|n| n == name), "{name} went: {left:?}");
            Database::drop_fresh(&server, url).await.expect("dropped");
        }
    }
}

/// A flood of saves past every bound on the way (the stage's mailbox of
/// 4,096 and its save queue of 4,000): each saver waits for room, every save
/// is answered once it is committed, and every message is there after.
#[actix_rt::test]
async fn a_flood_of_saves_waits_for_room_and_loses_nothing() {
    use futures::{stream::FuturesUnordered, StreamExt};
    use murmur_core::{
        storage::SaveRaw,
        store::{self, Query},
        Delivery, WakuMessage,
    };

    const FLOOD: usize = 12_000;
    let store = start().await;
    let topic: murmur_core::PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
    let mut saves: FuturesUnordered<_> = (0..FLOOD)
        .map(|i| {
            let message = WakuMessage::new("/flood/1/a/proto", format!("{i}").into_bytes())
                .with_timestamp(1 + i as i64);
            store
                .save_raw
                .send(SaveRaw(Delivery::new(topic.clone(), message)))
        })
        .collect();
    let mut new = 0;
    while let Some(answer) = saves.next().await {
        if answer.expect("the stage answers").expect("saved") {
            new += 1;
        }
    }
    assert_eq!(new, FLOOD, "every save was new and answered");
    let mut stored = 0;
    let mut query = Query::content(Some(topic), vec!["/flood/1/a/proto".to_owned()])
        .with_limit(store::MAX_PAGE);
    loop {
        let page = store
            .query
            .send(storage::Query(query.clone()))
            .await
            .unwrap()
            .unwrap();
        stored += page.messages.len();
        match page.cursor {
            Some(c) => query = query.with_cursor(Some(c)),
            None => break,
        }
    }
    assert_eq!(stored, FLOOD, "nothing lost");
}
