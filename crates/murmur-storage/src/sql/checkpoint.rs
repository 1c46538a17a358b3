//! Checkpoints off the write path.
//!
//! A checkpoint copies what the WAL holds back into the database file and
//! syncs both. By default SQLite runs one inside the commit that takes the
//! WAL past 1,000 pages, so that one write in every few hundred waits for
//! the copy and two fsyncs: on a busy relay, a quarter of SQLite's time,
//! all of it on the path of the writes that publishes and deliveries wait
//! for. The group writer's own connection therefore checkpoints only as a
//! backstop ([`Checkpoint::BACKSTOP`] pages), and each time it has committed about
//! [`Checkpoint::EVERY`] bytes it asks for a passive checkpoint, which the storage
//! stage runs on a pooled connection, on other threads, while the writer
//! goes on committing.
//!
//! A passive checkpoint copies only what was committed when it began, and
//! the WAL starts over only once everything in it was copied, so under
//! writes that never pause the WAL could grow without end: the writer's
//! backstop then copies the little that is left and lets it start over.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::*;

/// What a writer committed since it last asked for a checkpoint: the
/// storage stage's group writer (on its own connection, or through the pool
/// under a lease), or a writer of one's own beside [`checkpoint_beside`].
#[derive(Debug, Default)]
pub struct Growth {
    written: AtomicU64,
    due: tokio::sync::Notify,
}

impl Growth {
    /// Counts `bytes` committed; past [`Checkpoint::EVERY`], a checkpoint is
    /// due. For one writer: a load and a store, not an atomic sum.
    pub fn add(&self, bytes: u64) {
        let total = self.written.load(Relaxed).saturating_add(bytes);
        if total >= Checkpoint::EVERY {
            self.written.store(0, Relaxed);
            self.due.notify_one();
        } else {
            self.written.store(total, Relaxed);
        }
    }

    /// Waits until a checkpoint is due (at once if one fell due meanwhile).
    async fn due(&self) {
        self.due.notified().await;
    }
}

/// Runs a passive checkpoint of `db` each time `growth` says one is due,
/// for as long as it is polled, counted in `metrics`: what the storage
/// stage runs beside its group writer. One due while another runs runs
/// right after it.
pub async fn checkpoint_beside(
    db: crate::Database,
    growth: std::sync::Arc<Growth>,
    metrics: crate::Metrics,
) {
    loop {
        growth.due().await;
        let started = std::time::Instant::now();
        // One not run leaves its pages to the next due one, and the
        // writer's backstop bounds the WAL meanwhile.
        match db.checkpoint().await {
            Ok(Some(c)) if !c.busy => {
                let pages = u64::try_from(c.copied).unwrap_or(0);
                metrics.checkpointed(pages, started.elapsed());
            }
            Ok(Some(_)) => {
                metrics.checkpoint_skipped();
                tracing::debug!("checkpoint not run: another was running");
            }
            Ok(None) => {}
            Err(e) => {
                metrics.checkpoint_skipped();
                tracing::warn!(error = %e, "checkpoint failed");
            }
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Another checkpoint was running (one a commit ran, or another
    /// process's): this one did nothing (and `log` and `copied` are -1).
    pub busy: bool,
    /// Pages the WAL held.
    pub log: i64,
    /// Of those, pages copied into the database file.
    pub copied: i64,
}

impl Checkpoint {
    /// Bytes the group writer commits between two checkpoints it asks for
    /// (rows' contents and [`Checkpoint::ROW`] each: pages rewritten make
    /// the WAL larger).
    pub const EVERY: u64 = 1 << 20;

    /// WAL pages past which the group writer's own commit checkpoints, as
    /// SQLite does by default at 1,000: reached only when the checkpoints
    /// asked for fall behind.
    pub const BACKSTOP: u32 = 8_000;

    /// Bytes counted for a row beside its contents: its key, its indexes'
    /// entries and its header, roughly.
    pub const ROW: usize = 128;
}

impl Sql {
    /// Copies what the WAL holds into the database file without waiting
    /// for (or holding up) the writer; `None` on PostgreSQL.
    pub(crate) async fn checkpoint(&self) -> Result<Option<Checkpoint>, Error> {
        if self.kind != Kind::Sqlite {
            return Ok(None);
        }
        let _held = self.checkpointing.lock().await;
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let column = |i| row.try_get::<i64, _>(i).map_err(backend);
        Ok(Some(Checkpoint {
            busy: column(0)? != 0,
            log: column(1)?,
            copied: column(2)?,
        }))
    }

    /// What the group writer committed since the last checkpoint it asked
    /// for.
    pub(crate) fn growth(&self) -> std::sync::Arc<Growth> {
        self.growth.clone()
    }
}

impl Batch {
    /// About how many bytes this batch writes.
    pub(crate) fn bytes(&self) -> u64 {
        const ROW: usize = Checkpoint::ROW;
        let messages = self
            .saves
            .iter()
            .chain(&self.queued)
            .map(|d| d.message.encoded_len() + ROW);
        let state = self
            .state
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len) + ROW);
        let sent = self.sent.len() * ROW;
        (messages.chain(state).sum::<usize>() + sent) as u64
    }
}
