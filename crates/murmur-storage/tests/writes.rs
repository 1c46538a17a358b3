//! On SQLite a write's statements go to the connection as one request with
//! their `BEGIN` and `COMMIT`: a statement that fails part-way must leave
//! nothing of the write behind, and no connection (the pool's, or the
//! storage stage's group writer's own) inside the transaction it left open.

use murmur_core::{
    storage::{Error, LoadState, SaveState},
    supervise::InjectPanic,
};
use murmur_storage::{Database, Storage};

async fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap()
}

/// The storage stage on `db`, with `kept/before` written through it (its
/// writer's connection open).
async fn started(db: &Database) -> actix::Addr<Storage> {
    let storage = Storage::start(db.clone());
    storage
        .send(save(vec![("kept/before", Some(b"in"))]))
        .await
        .unwrap()
        .unwrap();
    storage
}

/// A write of stage state entries.
fn save(entries: Vec<(&str, Option<&[u8]>)>) -> SaveState {
    SaveState(
        entries
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.map(<[u8]>::to_vec)))
            .collect(),
    )
}

/// A state entry whose deletion fails: ABORT ends that statement, not the
/// transaction, so what the write did before it stays pending in it.
async fn arm_fuse(db: &Database) {
    db.save_state(&[("kept/fuse".to_owned(), Some(b"armed".to_vec()))])
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER fuse BEFORE DELETE ON state WHEN old.name = 'kept/fuse' \
         BEGIN SELECT RAISE(ABORT, 'the fuse holds'); END",
    )
    .execute(db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_write_that_fails_part_way_leaves_nothing_and_the_next_writes_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    arm_fuse(&db).await;

    let failed = db
        .save_state(&[
            ("kept/a".to_owned(), Some(b"half of a write".to_vec())),
            ("kept/fuse".to_owned(), None),
        ])
        .await;
    let error = failed.expect_err("the delete of the fuse fails");
    assert!(error.to_string().contains("the fuse holds"), "{error}");
    assert_eq!(db.load_state("kept/a").await.unwrap(), None);
    assert_eq!(
        db.load_state("kept/fuse").await.unwrap().as_deref(),
        Some(&b"armed"[..])
    );

    // More writes than the pool has connections, at once: a connection
    // left inside the failed transaction would hold SQLite's write lock
    // (the others' writes then fail as locked) or refuse a new BEGIN.
    let writes = (0..16).map(|i| {
        let db = db.clone();
        async move {
            db.save_state(&[
                (format!("kept/{i}"), Some(vec![i])),
                ("kept/a".to_owned(), None),
            ])
            .await
        }
    });
    for written in futures::future::join_all(writes).await {
        written.unwrap();
    }
    for i in 0..16u8 {
        assert_eq!(
            db.load_state(&format!("kept/{i}")).await.unwrap(),
            Some(vec![i])
        );
    }
}

/// The same through the storage stage, whose group writer commits on a
/// connection of its own: a failed write leaves nothing, and the writes
/// after it (the next group, on the same connection) go through.
#[actix_rt::test]
async fn a_group_write_that_fails_part_way_leaves_nothing_and_the_next_groups_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    arm_fuse(&db).await;
    let storage = started(&db).await;

    let failed = storage
        .send(save(vec![
            ("kept/a", Some(b"half of a write")),
            ("kept/fuse", None),
        ]))
        .await
        .unwrap();
    let error = failed.expect_err("the delete of the fuse fails");
    assert!(error.to_string().contains("the fuse holds"), "{error}");
    assert_eq!(db.load_state("kept/a").await.unwrap(), None);

    // One after another, so that each is a group of its own on the
    // writer's connection: one left inside the failed transaction would
    // refuse the next BEGIN.
    for i in 0..4u8 {
        let name = format!("kept/{i}");
        storage
            .send(save(vec![(name.as_str(), Some(&[i][..]))]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.load_state(&name).await.unwrap(), Some(vec![i]));
    }
    assert_eq!(
        db.load_state("kept/before").await.unwrap().as_deref(),
        Some(&b"in"[..])
    );
    assert_eq!(
        db.load_state("kept/fuse").await.unwrap().as_deref(),
        Some(&b"armed"[..])
    );
}

/// The stage restarts (a caught panic) while its writer's own connection
/// is in the middle of a write: here the write waits for SQLite's write
/// lock, which another connection holds. The writer goes with the
/// restart; its connection's thread gives up the write when it finds
/// nobody waiting for the answer and closes, rolling it back. Nothing of
/// the write lands, its asker hears the stage restarted, and the restarted
/// stage's writes go through.
#[actix_rt::test]
async fn a_restart_in_the_middle_of_a_write_lands_none_of_it_and_the_next_writes_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let storage = started(&db).await;
    let mut lock = db.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let caught = storage.send(save(vec![("kept/caught", Some(b"never"))]));
    let caught = actix::spawn(caught);
    // However far the write got (queued, or waiting in SQLite for the
    // lock), nothing of it can land while the lock is held; a moment
    // lets it reach SQLite, which is the case this test is for.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The next guarded request panics: the stage restarts, and a request
    // after it is answered by the restarted stage, so the writer is gone
    // before the lock is.
    storage.send(InjectPanic).await.unwrap();
    let met = storage.send(LoadState("kept/before".to_owned())).await;
    assert!(matches!(met, Ok(Err(Error::Restarted(_)))), "{met:?}");
    let read = storage.send(LoadState("kept/before".to_owned())).await;
    assert_eq!(read.unwrap().unwrap().as_deref(), Some(&b"in"[..]));
    sqlx::query("COMMIT").execute(&mut *lock).await.unwrap();
    drop(lock);

    let answer = caught.await.unwrap().unwrap();
    assert!(matches!(answer, Err(Error::Restarted(_))), "{answer:?}");
    storage
        .send(save(vec![("kept/after", Some(b"in"))]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.load_state("kept/caught").await.unwrap(), None);
    assert_eq!(
        db.load_state("kept/after").await.unwrap().as_deref(),
        Some(&b"in"[..])
    );
    assert_eq!(
        db.load_state("kept/before").await.unwrap().as_deref(),
        Some(&b"in"[..])
    );
}
