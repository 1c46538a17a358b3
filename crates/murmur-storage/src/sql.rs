use std::{path::Path, time::Duration};

use murmur_core::{
    now_nanos,
    storage::{Cursor, Error, Prune},
    store::{Criteria, Page, Query, Stored},
    Delivery, MessageHash, PubsubTopic, WakuMessage,
};
use prost::Message as _;
use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    AnyPool, Executor, Row,
};
use thiserror::Error;

mod checkpoint;
mod fresh;
mod lease;
mod outbox;
mod query;
mod script;
mod state;
mod writer;

pub use checkpoint::{checkpoint_beside, Checkpoint, Growth};
pub(crate) use outbox::Batch;
pub(crate) use writer::Writer;

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Why a database could not be opened. The URL in the message has its
/// password masked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Neither a SQLite path nor a PostgreSQL URL.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB")]
    Scheme(String),
    /// The database could not be reached or created.
    #[error("cannot open database {url}: {reason}")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The migrations could not be applied.
    #[error("cannot migrate database {url}: {reason}")]
    Migrate {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Every SQLite connection's settings, the pool's and the group writer's
/// own alike. WAL: readers do not block the writer. NORMAL: a commit
/// survives the process being killed (not a power cut) without an fsync
/// per message. `secure_delete`: a superseded sealed state (an old ratchet
/// step) is overwritten with zeros, not left in a free page; the WAL's
/// copies go at the next truncating checkpoint (`erase_superseded`).
/// `temp_store = MEMORY`: a statement's journal (what undoes a multi-row
/// insert that fails part-way) stays in memory; in a file, as by default
/// past 64 KiB, it cost a busy relay a fifth of SQLite's time in writes.
pub(crate) const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA secure_delete = ON",
    "PRAGMA temp_store = MEMORY",
];

/// The longest a PostgreSQL transaction of this process may wait for its
/// next statement: every transaction here runs its statements back to back.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    /// A multi-row insert into `table` (`columns`, `rows` of them) that
    /// skips the rows whose `hash` is there already.
    fn insert_new(self, table: &str, columns: &[&str], rows: usize) -> String {
        let values = script::rows(rows, columns.len());
        let columns = columns.join(", ");
        match self {
            // A multi-row insert whose constraints could abort it makes
            // SQLite copy every page it touches into a statement journal
            // first, to undo it alone; with OR IGNORE none can (the binds
            // are never NULL, so no row is skipped for a NOT NULL).
            Kind::Sqlite => format!("INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}"),
            Kind::Postgres => format!(
                "INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT (hash) DO NOTHING"
            ),
        }
    }
}

/// The archive, outbox and cursors in one SQL database: the statements,
/// run on the database's own thread by [`crate::Database`].
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pool: AnyPool,
    kind: Kind,
    /// State was overwritten or deleted since the last [`Sql::erase_superseded`].
    superseded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The lease every write checks, once this stage asked for one.
    fence: lease::Fence,
    /// What a SQLite database is opened with (`None` on PostgreSQL): for
    /// the group writer's own connection ([`writer::Writer`]).
    sqlite_url: Option<String>,
    /// What the group writer committed since it last asked for a
    /// checkpoint.
    growth: std::sync::Arc<checkpoint::Growth>,
    /// Held by each checkpoint this process runs through the pool: SQLite
    /// runs one at a time and answers a second with "busy" at once, so the
    /// truncating one that erases would otherwise lose to a passive one.
    checkpointing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

// Used as `map_err(backend)`, which hands over the error by value.
#[allow(clippy::needless_pass_by_value)]
fn backend(e: sqlx::Error) -> Error {
    Error::Backend(e.to_string())
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub(crate) fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl Sql {
    /// Opens (creating a SQLite file and its folder if needed) and migrates.
    /// `url` is `sqlite://PATH` (or a plain path) or `postgres://...`.
    pub(crate) async fn open(url: &str) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let masked = mask(url);
        let (kind, connect_url) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (Kind::Postgres, url.to_owned())
            } else if let Some(path) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .or_else(|| (!url.contains("://")).then_some(url))
            {
                let path = path.split('?').next().unwrap_or(path);
                if let Some(dir) = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| OpenError::Connect {
                        url: masked.clone(),
                        reason: e.to_string(),
                    })?;
                }
                (Kind::Sqlite, format!("sqlite://{path}?mode=rwc"))
            } else {
                return Err(OpenError::Scheme(masked));
            };
        let options = AnyPoolOptions::new()
            .max_connections(if kind == Kind::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings an idle connection before handing it out: on
            // SQLite a round trip to the connection's thread that can only
            // succeed (the database is a file in this process), two thread
            // wake-ups added to every statement and write.
            .test_before_acquire(kind == Kind::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == Kind::Sqlite {
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                    } else {
                        // A process frozen in the middle of a transaction
                        // (stopped, cut off) would hold its locks, the
                        // lease row's among them, until it woke: the
                        // server ends such a transaction instead, and a
                        // replica standing by can take over.
                        conn.execute(
                            format!(
                                "SET idle_in_transaction_session_timeout = {}",
                                IDLE_IN_TRANSACTION.as_millis()
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(&connect_url)
            .await
            .map_err(|e| OpenError::Connect {
                url: masked.clone(),
                reason: e.to_string(),
            })?;
        let migrator = match kind {
            Kind::Sqlite => &SQLITE,
            Kind::Postgres => &POSTGRES,
        };
        migrator.run(&pool).await.map_err(|e| OpenError::Migrate {
            url: masked,
            reason: e.to_string(),
        })?;
        Ok(Self {
            pool,
            kind,
            // A previous run may have stopped before it erased what it
            // superseded: the first tick checks.
            superseded: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                kind == Kind::Sqlite,
            )),
            fence: lease::Fence::default(),
            sqlite_url: (kind == Kind::Sqlite).then_some(connect_url),
            growth: std::sync::Arc::default(),
            checkpointing: std::sync::Arc::default(),
        })
    }

    /// Archives a message; `false` if its hash was there already or it is ephemeral.
    pub(crate) async fn save(&self, delivery: &Delivery) -> Result<bool, Error> {
        let new = self.save_batch(std::slice::from_ref(delivery)).await?;
        Ok(new.first().copied().unwrap_or(false))
    }

    /// Archives several messages in one transaction (multi-row inserts of up to
    /// 100 rows); answers, for each, whether it was new. Ephemeral messages are
    /// skipped (`false`).
    pub(crate) async fn save_batch(&self, deliveries: &[Delivery]) -> Result<Vec<bool>, Error> {
        let batch = Batch {
            saves: deliveries.to_vec(),
            ..Batch::default()
        };
        self.write(&batch).await
    }

    /// Writes a batch in one transaction: the archive's messages first,
    /// then the outbox's; answers, for each message archived, whether it
    /// was new.
    pub(crate) async fn write(&self, batch: &Batch) -> Result<Vec<bool>, Error> {
        self.superseding(batch);
        let added = Self::script(batch, self.kind).commit(self).await?;
        if self.kind == Kind::Sqlite {
            self.growth.add(batch.bytes());
        }
        self.written(batch, &added)
    }

    /// Marks that `batch`, about to be written, may supersede state: set
    /// before the write, since a write whose answer never comes back (its
    /// asker gone with a restart) may still have committed.
    fn superseding(&self, batch: &Batch) {
        if !batch.state.is_empty() {
            self.superseded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A batch's statements: the archive's messages first, then the
    /// outbox's, then stage state. Only the archive's insert returns rows:
    /// the hashes it added.
    fn script(batch: &Batch, kind: Kind) -> script::Script {
        let mut script = script::Script::default();
        saves(&mut script, &batch.saves, kind);
        outbox::enqueue(&mut script, &batch.queued, &batch.in_place, kind);
        outbox::sent(&mut script, &batch.sent);
        state::state(&mut script, &batch.state);
        script
    }

    /// What a committed batch answers, given the hashes its archive insert
    /// added: for each message archived, whether it was new.
    fn written(&self, batch: &Batch, added: &[Vec<u8>]) -> Result<Vec<bool>, Error> {
        // Again once committed: a checkpoint since the mark before the
        // write may have run before this write landed.
        self.superseding(batch);
        let mut inserted = std::collections::HashSet::new();
        for hash in added {
            inserted.insert(to_hash(hash)?);
        }
        // A hash twice in one batch is new only the first time.
        let mut seen = std::collections::HashSet::new();
        Ok(batch
            .saves
            .iter()
            // An ephemeral copy shares the hash of the one kept, and is
            // never new itself.
            .map(|d| {
                !d.message.is_ephemeral() && inserted.contains(&d.hash) && seen.insert(d.hash)
            })
            .collect())
    }

    /// Applies retention; answers how many messages were deleted.
    pub(crate) async fn prune(&self, prune: Prune) -> Result<u64, Error> {
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        if let Some(age) = prune.max_age {
            let cutoff =
                now_nanos().saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX));
            deleted += sqlx::query("DELETE FROM messages WHERE timestamp < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        }
        if let Some(count) = prune.max_count {
            // The newest message that falls outside the kept count, if any.
            let edge = sqlx::query(
                "SELECT timestamp, hash FROM messages ORDER BY timestamp DESC, hash DESC LIMIT 1 OFFSET $1",
            )
            .bind(i64::try_from(count).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if let Some(edge) = edge {
                let timestamp: i64 = edge.try_get(0).map_err(backend)?;
                let hash: Vec<u8> = edge.try_get(1).map_err(backend)?;
                deleted += sqlx::query("DELETE FROM messages WHERE (timestamp, hash) <= ($1, $2)")
                    .bind(timestamp)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    /// Saves a reader's cursor.
    pub(crate) async fn save_cursor(&self, name: &str, cursor: Cursor) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO cursors (name, timestamp, hash, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET timestamp = excluded.timestamp, hash = excluded.hash, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(cursor.timestamp)
        .bind(cursor.hash.as_bytes().to_vec())
        .bind(now_nanos())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    /// Loads a reader's cursor.
    pub(crate) async fn load_cursor(&self, name: &str) -> Result<Option<Cursor>, Error> {
        let row = sqlx::query("SELECT timestamp, hash FROM cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| {
            Ok(Cursor {
                timestamp: row.try_get(0).map_err(backend)?,
                hash: to_hash(&row.try_get::<Vec<u8>, _>(1).map_err(backend)?)?,
            })
        })
        .transpose()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn is_sqlite(&self) -> bool {
        self.kind == Kind::Sqlite
    }
}

fn read_stored(row: &AnyRow, include_data: bool) -> Result<Stored, Error> {
    let hash = to_hash(&row.try_get::<Vec<u8>, _>(0).map_err(backend)?)?;
    if !include_data {
        return Ok(Stored::hash_only(hash));
    }
    let topic: String = row.try_get(2).map_err(backend)?;
    let bytes: Vec<u8> = row.try_get(3).map_err(backend)?;
    Ok(Stored::new(hash, parse_topic(&topic)?, decode(&bytes)?))
}

fn to_hash(bytes: &[u8]) -> Result<MessageHash, Error> {
    <[u8; 32]>::try_from(bytes)
        .map(MessageHash)
        .map_err(|_| Error::Corrupt(format!("a hash of {} bytes", bytes.len())))
}

fn parse_topic(topic: &str) -> Result<PubsubTopic, Error> {
    topic.parse().map_err(|e| Error::Corrupt(format!("{e}")))
}

fn decode(bytes: &[u8]) -> Result<WakuMessage, Error> {
    WakuMessage::decode(bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

/// The storage stage's insert of `rows` messages into the archive, for
/// whoever must write the archive the same way (the benchmarks' bare
/// references): `?` placeholders on SQLite, `$1`, `$2`, ... on PostgreSQL,
/// six a row, bound in the order hash, pubsub topic, content topic,
/// timestamp, the encoded message, the time it was stored.
pub fn archive_insert(rows: usize, sqlite: bool) -> String {
    if sqlite {
        Kind::Sqlite.insert_new("messages", &ARCHIVED, rows)
    } else {
        script::numbered(&Kind::Postgres.insert_new("messages", &ARCHIVED, rows))
    }
}

/// The archive's columns, in the order [`saves`] binds them.
const ARCHIVED: [&str; 6] = [
    "hash",
    "pubsub_topic",
    "content_topic",
    "timestamp",
    "message",
    "stored_at",
];

/// Archives `deliveries` (ephemeral ones are not kept), 100 rows a
/// statement; each statement returns the hashes it added.
fn saves(script: &mut script::Script, deliveries: &[Delivery], kind: Kind) {
    let keep: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| !d.message.is_ephemeral())
        .collect();
    let stored_at = now_nanos();
    for chunk in keep.chunks(100) {
        let sql = kind.insert_new("messages", &ARCHIVED, chunk.len()) + " RETURNING hash";
        let mut args = Vec::with_capacity(6 * chunk.len());
        for d in chunk {
            args.extend([
                Arg::Blob(d.hash.as_bytes().to_vec()),
                Arg::Text(d.pubsub_topic.as_str().to_owned()),
                Arg::Text(d.message.content_topic.as_str().to_owned()),
                Arg::Int(d.message.timestamp.unwrap_or(0)),
                Arg::Blob(d.message.encode_to_vec()),
                Arg::Int(stored_at),
            ]);
        }
        script.push(sql, args);
    }
}

/// `($1, $2), ($3, $4)` for 2 rows of 2 columns: numbered placeholders for a
/// multi-row insert, which SQLite and PostgreSQL both read.
pub fn row_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

enum Arg {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
}

/// Numbered placeholders (`$1`, `$2`, ...), which both SQLite and PostgreSQL read.
#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    fn push(&mut self, arg: Arg) -> String {
        self.0.push(arg);
        format!("${}", self.0.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.push(Arg::Text(s.to_owned()))
    }

    fn int(&mut self, i: i64) -> String {
        self.push(Arg::Int(i))
    }

    fn blob(&mut self, b: &[u8]) -> String {
        self.push(Arg::Blob(b.to_vec()))
    }
}

#[cfg(test)]
mod tests;
