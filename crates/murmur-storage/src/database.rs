//! The database handle: every statement runs on the database's own thread.
//!
//! sqlx returns a pooled connection by spawning a task on the runtime it is
//! dropped in. A connection dropped with the runtime that held it (a program
//! returning from `main` with a save still in flight, an actix system torn
//! down) therefore panicked with "this functionality requires a Tokio
//! context". Here the pool lives on a runtime of its own, on a thread of its
//! own: the callers only await the answer, so dropping a caller abandons the
//! wait while the statement still finishes where its connection lives, and
//! when the last handle goes the thread closes the pool (waiting for what is
//! in flight) and ends. The storage stage's group writer commits on SQLite
//! through a connection of its own instead (`sql/writer.rs`).

use std::{future::Future, sync::Arc};

use murmur_core::{
    storage::{Acquire, Cursor, Error, Lease, Prune, Release},
    store::{Page, Query},
    Delivery, MessageHash, PubsubTopic, WakuMessage,
};
use sqlx::AnyPool;
use tokio::{runtime, sync::oneshot};

use crate::{
    sql::{mask, Sql},
    OpenError,
};

/// The archive, outbox and cursors in one SQL database (SQLite or
/// PostgreSQL), reached from any runtime.
#[derive(Debug, Clone)]
pub struct Database {
    sql: Sql,
    thread: Arc<Thread>,
}

/// The database's thread: its runtime's handle, and the signal that ends it
/// once the last [`Database`] handle is dropped.
#[derive(Debug)]
struct Thread {
    runtime: runtime::Handle,
    _done: oneshot::Sender<()>,
}

impl Thread {
    /// Starts the thread; it runs until the returned value is dropped, then
    /// closes the pool it is handed through `pool`.
    fn start(url: &str) -> Result<(Self, oneshot::Sender<AnyPool>), OpenError> {
        let failed = |e: std::io::Error| OpenError::Connect {
            url: mask(url),
            reason: format!("cannot start the database thread: {e}"),
        };
        let rt = runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let runtime = rt.handle().clone();
        let (done, until_done) = oneshot::channel::<()>();
        let (pool_tx, pool_rx) = oneshot::channel::<AnyPool>();
        std::thread::Builder::new()
            .name("murmur-db".to_owned())
            .spawn(move || {
                rt.block_on(async move {
                    let _ = until_done.await;
                    // Waits for the connections still out: what was asked
                    // before the last handle went is carried out.
                    if let Ok(pool) = pool_rx.await {
                        pool.close().await;
                    }
                });
            })
            .map_err(failed)?;
        Ok((
            Self {
                runtime,
                _done: done,
            },
            pool_tx,
        ))
    }
}

impl Database {
    /// Opens (creating a SQLite file and its folder if needed) and migrates.
    /// `url` is `sqlite://PATH` (or a plain path) or `postgres://...`.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let (thread, keep_pool) = Thread::start(url)?;
        let owned = url.to_owned();
        let sql = thread
            .runtime
            .spawn(async move { Sql::open(&owned).await })
            .await
            .map_err(|e| OpenError::Connect {
                url: mask(url),
                reason: e.to_string(),
            })??;
        let _ = keep_pool.send(sql.pool().clone());
        Ok(Self {
            sql,
            thread: Arc::new(thread),
        })
    }

    /// Creates a new, uniquely named database on the PostgreSQL server at
    /// `server_url` and opens it: for test suites that need an empty database
    /// each, such as the storage conformance suite.
    pub async fn open_fresh(server_url: &str) -> Result<Self, OpenError> {
        Self::open(&Self::create_fresh(server_url).await?).await
    }

    /// Creates a new, uniquely named database on the PostgreSQL server at
    /// `server_url`; answers its URL, for tests that open it more than once
    /// (two processes, or two stages, on one database).
    pub async fn create_fresh(server_url: &str) -> Result<String, OpenError> {
        let (thread, _) = Thread::start(server_url)?;
        let owned = server_url.to_owned();
        thread
            .runtime
            .spawn(async move { Sql::create_fresh(&owned).await })
            .await
            .map_err(|e| OpenError::Connect {
                url: mask(server_url),
                reason: e.to_string(),
            })?
    }

    /// Drops a database [`Database::create_fresh`] made on the server at
    /// `server_url`, given the URL it answered (its name says it is one;
    /// any other is refused). Connections still open to it are cut off.
    pub async fn drop_fresh(server_url: &str, fresh_url: &str) -> Result<(), OpenError> {
        let (thread, _) = Thread::start(server_url)?;
        let (server, fresh) = (server_url.to_owned(), fresh_url.to_owned());
        thread
            .runtime
            .spawn(async move { Sql::drop_fresh(&server, &fresh).await })
            .await
            .map_err(|e| OpenError::Connect {
                url: mask(server_url),
                reason: e.to_string(),
            })?
    }

    /// Runs `statement` on the database's thread and waits for its answer.
    async fn run<T, F>(&self, statement: impl FnOnce(Sql) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.thread
            .runtime
            .spawn(statement(self.sql.clone()))
            .await
            .map_err(|e| Error::Backend(format!("the database thread failed: {e}")))?
    }

    /// Archives a message; `false` if its hash was there already or it is ephemeral.
    pub async fn save(&self, delivery: &Delivery) -> Result<bool, Error> {
        let delivery = delivery.clone();
        self.run(|sql| async move { sql.save(&delivery).await })
            .await
    }

    /// Archives messages in one transaction; answers, for each, whether it was new.
    pub async fn save_batch(&self, deliveries: &[Delivery]) -> Result<Vec<bool>, Error> {
        let deliveries = deliveries.to_vec();
        self.run(|sql| async move { sql.save_batch(&deliveries).await })
            .await
    }

    /// Answers one page of a store query.
    pub async fn query(&self, query: &Query) -> Result<Page, Error> {
        let query = query.clone();
        self.run(|sql| async move { sql.query(&query).await }).await
    }

    /// Applies retention; answers how many messages were deleted.
    pub async fn prune(&self, prune: Prune) -> Result<u64, Error> {
        self.run(|sql| async move { sql.prune(prune).await }).await
    }

    /// Puts a message in the outbox, in `old`'s turn (and `old` taken
    /// out) if it names an entry waiting
    /// ([`Enqueue::in_place_of`](murmur_core::storage::Enqueue::in_place_of));
    /// answers its hash.
    pub async fn enqueue(
        &self,
        topic: &PubsubTopic,
        message: &WakuMessage,
        old: Option<MessageHash>,
    ) -> Result<MessageHash, Error> {
        let (topic, message) = (topic.clone(), message.clone());
        self.run(|sql| async move { sql.enqueue(&topic, &message, old).await })
            .await
    }

    /// Writes archived messages, outbox entries and entries sent in one
    /// transaction; answers, for each archived message, whether it was new.
    pub(crate) async fn write(&self, batch: crate::sql::Batch) -> Result<Vec<bool>, Error> {
        self.run(|sql| async move { sql.write(&batch).await }).await
    }

    /// Takes an entry the network took out of the outbox.
    pub async fn mark_sent(&self, hash: MessageHash) -> Result<(), Error> {
        self.run(|sql| async move { sql.mark_sent(hash).await })
            .await
    }

    /// The outbox entries not yet published, oldest first.
    pub async fn pending(&self) -> Result<Vec<Delivery>, Error> {
        self.run(|sql| async move { sql.pending().await }).await
    }

    /// Saves a named cursor.
    pub async fn save_cursor(&self, name: &str, cursor: Cursor) -> Result<(), Error> {
        let name = name.to_owned();
        self.run(|sql| async move { sql.save_cursor(&name, cursor).await })
            .await
    }

    /// Loads a named cursor.
    pub async fn load_cursor(&self, name: &str) -> Result<Option<Cursor>, Error> {
        let name = name.to_owned();
        self.run(|sql| async move { sql.load_cursor(&name).await })
            .await
    }

    /// Saves, overwrites or (with `None`) deletes stage state entries, in one
    /// transaction.
    pub async fn save_state(&self, entries: &[(String, Option<Vec<u8>>)]) -> Result<(), Error> {
        let entries = entries.to_vec();
        self.run(|sql| async move { sql.save_state(&entries).await })
            .await
    }

    /// Erases what superseded state left behind, where the backend can
    /// (SQLite: a truncating checkpoint of the WAL); true if it ran.
    pub async fn erase_superseded(&self) -> Result<bool, Error> {
        self.run(|sql| async move { sql.erase_superseded().await })
            .await
    }

    /// Copies what SQLite's WAL holds into the database file, without
    /// waiting for or holding up writes (a passive checkpoint); `None` on
    /// PostgreSQL. The storage stage runs one each time its writer has
    /// committed about a mebibyte.
    pub async fn checkpoint(&self) -> Result<Option<crate::Checkpoint>, Error> {
        self.run(|sql| async move { sql.checkpoint().await }).await
    }

    /// Loads one stage state entry.
    pub async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let name = name.to_owned();
        self.run(|sql| async move { sql.load_state(&name).await })
            .await
    }

    /// Every stage state entry whose name starts with `prefix`, by name.
    pub async fn list_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let prefix = prefix.to_owned();
        self.run(|sql| async move { sql.list_state(&prefix).await })
            .await
    }

    /// Takes or renews a lease; from then on every write of this handle
    /// (and its clones) commits only while it holds it.
    pub async fn acquire(&self, ask: &Acquire) -> Result<Lease, Error> {
        let ask = ask.clone();
        self.run(|sql| async move { sql.acquire(&ask).await }).await
    }

    /// Gives a lease up; this handle writes nothing more.
    pub async fn release(&self, ask: &Release) -> Result<(), Error> {
        let ask = ask.clone();
        self.run(|sql| async move { sql.release(&ask).await }).await
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.sql
    }

    /// The connection pool, for tools and benchmarks that compare against
    /// raw SQL. Its connections belong to the database's thread; statements
    /// run on it from another runtime still work.
    pub fn pool(&self) -> &AnyPool {
        self.sql.pool()
    }

    /// Whether this is the SQLite backend.
    pub fn is_sqlite(&self) -> bool {
        self.sql.is_sqlite()
    }
}
