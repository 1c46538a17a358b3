//! Superseded state does not linger on disk: an overwritten or deleted
//! state entry's bytes are gone from the SQLite file and its WAL once
//! `erase_superseded` ran (the storage stage runs it every 30 seconds).

use murmur_core::storage::SaveState;
use murmur_storage::{Database, Storage};

const OLD: &[u8] = b"an old ratchet state, never to be read again";

/// A write of the session state `crypto/session/x`.
fn entry(value: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    vec![("crypto/session/x".to_owned(), Some(value.to_vec()))]
}

/// Whether `needle` occurs in any file of `dir`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// A SQLite database in a folder of its own.
async fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    (dir, db)
}

#[tokio::test]
async fn an_overwritten_and_a_deleted_state_are_erased_from_the_file_and_the_wal() {
    let (dir, db) = open().await;
    db.save_state(&entry(OLD)).await.unwrap();
    db.save_state(&[(
        "crypto/gone".to_owned(),
        Some(OLD.iter().rev().copied().collect()),
    )])
    .await
    .unwrap();
    assert!(on_disk(dir.path(), OLD), "the state was written");
    db.save_state(&entry(b"the next state")).await.unwrap();
    db.save_state(&[("crypto/gone".to_owned(), None)])
        .await
        .unwrap();
    assert!(db.erase_superseded().await.unwrap());
    let reversed: Vec<u8> = OLD.iter().rev().copied().collect();
    assert!(!on_disk(dir.path(), OLD), "an overwritten state lingers");
    assert!(!on_disk(dir.path(), &reversed), "a deleted state lingers");
    assert_eq!(
        db.load_state("crypto/session/x").await.unwrap().as_deref(),
        Some(&b"the next state"[..])
    );
    // Nothing changed since: nothing to do.
    assert!(!db.erase_superseded().await.unwrap());
}

/// The same for state written through the storage stage, whose group
/// writer commits on a connection of its own: that connection zeroes what
/// it deletes too (`secure_delete`), or an old state would stay in the
/// database file after the checkpoint.
#[actix_rt::test]
async fn state_the_storage_stage_overwrote_or_deleted_is_erased_too() {
    let (dir, db) = open().await;
    let storage = Storage::start(db.clone());
    let reversed: Vec<u8> = OLD.iter().rev().copied().collect();
    let writes = [
        ("crypto/session/x", Some(OLD.to_vec())),
        ("crypto/gone", Some(reversed.clone())),
        ("crypto/session/x", Some(b"the next state".to_vec())),
        ("crypto/gone", None),
    ];
    for (i, (name, value)) in writes.into_iter().enumerate() {
        storage
            .send(SaveState(vec![(name.to_owned(), value)]))
            .await
            .unwrap()
            .unwrap();
        if i == 1 {
            assert!(on_disk(dir.path(), OLD), "the state was written");
        }
    }
    // Not its answer: the stage's own timer may have erased first.
    db.erase_superseded().await.unwrap();
    assert!(!on_disk(dir.path(), OLD), "an overwritten state lingers");
    assert!(!on_disk(dir.path(), &reversed), "a deleted state lingers");
}

/// A checkpoint that a reader on an older snapshot holds back (it waits
/// for the reader up to the busy timeout, then gives up) erases nothing:
/// the next one, once the reader is gone, does, without another state
/// write in between.
#[tokio::test]
async fn a_checkpoint_a_reader_held_back_is_tried_again() {
    let (dir, db) = open().await;
    db.save_state(&entry(OLD)).await.unwrap();
    let mut reader = db.pool().begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM state")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    db.save_state(&entry(b"the next state")).await.unwrap();

    assert!(
        !db.erase_superseded().await.unwrap(),
        "the reader holds the WAL"
    );
    assert!(on_disk(dir.path(), OLD), "nothing could be erased yet");
    reader.rollback().await.unwrap();
    assert!(db.erase_superseded().await.unwrap(), "tried again");
    assert!(!on_disk(dir.path(), OLD), "an overwritten state lingers");
}

/// A node killed before its stage's first erase leaves the superseded
/// state in the WAL: the next start's first erase takes it out, though
/// nothing was written since.
#[tokio::test]
async fn what_a_killed_run_superseded_is_erased_by_the_next() {
    let (dir, db) = open().await;
    db.save_state(&entry(OLD)).await.unwrap();
    db.save_state(&entry(b"the next state")).await.unwrap();
    assert!(on_disk(dir.path(), OLD), "the state was written");
    // Killed: its connections are never closed (a clean close would
    // checkpoint the WAL), as a process that died leaves them.
    std::mem::forget(db);

    let again = Database::open(&format!(
        "sqlite://{}",
        dir.path().join("murmur.db").display()
    ))
    .await
    .unwrap();
    assert!(again.erase_superseded().await.unwrap());
    assert!(!on_disk(dir.path(), OLD), "an overwritten state lingers");
}

/// The passive checkpoints the storage stage runs beside its writer do not
/// make the erasing one give up: SQLite answers a second checkpoint with
/// "busy" at once, so each waits for the other instead.
#[tokio::test]
async fn an_erase_beside_a_passive_checkpoint_still_erases() {
    let (dir, db) = open().await;
    for round in 0..20u8 {
        let old = [OLD, &[round][..]].concat();
        db.save_state(&entry(&old)).await.unwrap();
        db.save_state(&entry(b"the next state")).await.unwrap();
        let (passive, erased) = tokio::join!(db.checkpoint(), db.erase_superseded());
        assert!(!passive.unwrap().expect("SQLite").busy, "round {round}");
        assert!(erased.unwrap(), "round {round}: the erase gave up");
        assert!(!on_disk(dir.path(), &old), "round {round}: it lingers");
    }
}
