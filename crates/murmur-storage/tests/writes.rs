//! On SQLite a write's statements go to the connection as one request with
//! their `BEGIN` and `COMMIT`: a statement that fails part-way must leave
//! nothing of the write behind, and no connection (the pool's, or the
//! storage stage's group writer's own) inside the transaction it left open.

use murmur_core::storage::SaveState;
use murmur_storage::{Database, Storage};

async fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap()
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
    let storage = Storage::start(db.clone());
    let save = |entries: Vec<(&str, Option<&[u8]>)>| {
        SaveState(
            entries
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.map(<[u8]>::to_vec)))
                .collect(),
        )
    };
    storage
        .send(save(vec![("kept/before", Some(b"in"))]))
        .await
        .unwrap()
        .unwrap();

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
