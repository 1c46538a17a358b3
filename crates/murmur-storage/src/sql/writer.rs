//! The group writer's own SQLite connection, driven from the writer's
//! thread.
//!
//! A write through [`crate::Database`] hops from the caller's thread to the
//! database's (`murmur-db`), from there to the thread sqlx gives each
//! SQLite connection, and back the same way: four thread wake-ups (six
//! while the pool pinged each connection it handed out), more than the
//! commit itself costs. Every stage's state and every message's archiving
//! go through the group writer, one write after another, so the writer
//! keeps a connection of its own and talks to its SQLite thread directly:
//! two wake-ups. A connection that is not pooled is not handed back by a
//! task on some runtime when it is dropped (the reason `murmur-db`
//! exists). Dropped with the writer (a restart of the stage, a runtime
//! torn down), its thread stops at the next statement whose result nobody
//! waits for and closes the database, which rolls back the transaction
//! left open; a write whose `COMMIT` had already run stays committed while
//! its askers hear that the stage restarted, as through `murmur-db`.
//!
//! PostgreSQL's connections belong to the runtime that opened them, and a
//! write under a lease checks the lease in its own transaction: those go
//! through [`crate::Database`] as before.

use std::str::FromStr;

use sqlx::{sqlite::SqliteConnectOptions, Connection, Executor, SqliteConnection};

use super::*;
use crate::Database;

/// Commits the group writer's batches: on SQLite without a lease on its
/// own connection, otherwise through the database's thread.
pub(crate) struct Writer {
    db: Database,
    /// Opened at the first write that needs it, and again after one that
    /// left it in doubt.
    own: Option<SqliteConnection>,
}

impl Writer {
    pub(crate) fn new(db: Database) -> Self {
        Self { db, own: None }
    }

    /// Writes a batch in one transaction; answers, for each message
    /// archived, whether it was new.
    pub(crate) async fn write(&mut self, batch: crate::sql::Batch) -> Result<Vec<bool>, Error> {
        let sql = self.db.sql();
        let Some(url) = sql.sqlite_url.as_deref().filter(|_| !sql.fence.is_set()) else {
            self.own = None;
            return self.db.write(batch).await;
        };
        let conn = match &mut self.own {
            Some(conn) => conn,
            own @ None => own.insert(open(url).await?),
        };
        sql.superseding(&batch);
        let (text, args) = Sql::script(&batch, super::Kind::Sqlite).transaction();
        match script::bind(sqlx::query(&text), args)
            .fetch_all(&mut *conn)
            .await
        {
            Ok(rows) => {
                let added = rows
                    .iter()
                    .map(|row| row.try_get(0).map_err(backend))
                    .collect::<Result<Vec<Vec<u8>>, Error>>()?;
                sql.growth.add(batch.bytes());
                sql.written(&batch, &added)
            }
            Err(e) => {
                // A failed statement may leave the transaction open: ended
                // here, or the connection goes and the next write opens
                // another.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    self.own = None;
                }
                Err(backend(e))
            }
        }
    }
}

/// A connection with every setting the pool's have.
async fn open(url: &str) -> Result<SqliteConnection, Error> {
    let options = SqliteConnectOptions::from_str(url).map_err(backend)?;
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(backend)?;
    for pragma in SQLITE_PRAGMAS {
        conn.execute(*pragma).await.map_err(backend)?;
    }
    // Its checkpoints run beside it (`checkpoint`): its own only as a bound.
    conn.execute(format!("PRAGMA wal_autocheckpoint = {}", Checkpoint::BACKSTOP).as_str())
        .await
        .map_err(backend)?;
    Ok(conn)
}
