//! On SQLite a write's statements go to the connection as one request with
//! their `BEGIN` and `COMMIT`: a statement that fails part-way must leave
//! nothing of the write behind, and no connection in the pool inside the
//! transaction it left open.

use murmur_storage::Database;

#[tokio::test]
async fn a_write_that_fails_part_way_leaves_nothing_and_the_next_writes_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    db.save_state(&[("kept/fuse".to_owned(), Some(b"armed".to_vec()))])
        .await
        .unwrap();
    // Deleting the fuse fails; ABORT ends that statement, not the
    // transaction, so the upsert before it stays pending in it.
    sqlx::query(
        "CREATE TRIGGER fuse BEFORE DELETE ON state WHEN old.name = 'kept/fuse' \
         BEGIN SELECT RAISE(ABORT, 'the fuse holds'); END",
    )
    .execute(db.pool())
    .await
    .unwrap();

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
