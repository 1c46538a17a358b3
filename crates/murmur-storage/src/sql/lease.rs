//! The lease's statements: which of several processes on one database runs
//! the node, and the fence every write of the holder passes.

use std::sync::{Arc, Mutex, PoisonError};

use murmur_core::storage::{Acquire, Lease, Release};

use super::*;

/// What this stage's writes are fenced with: nothing until it first
/// acquires the lease; then the tenure it holds, or none after a release.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fence(Arc<Mutex<Option<Tenure>>>);

#[derive(Debug, Clone)]
struct Tenure {
    name: String,
    holder: String,
    /// `None` once given up.
    epoch: Option<i64>,
}

impl Fence {
    fn get(&self) -> Option<Tenure> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether writes pass this fence: once the stage asked for a lease.
    pub(super) fn is_set(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn set(&self, tenure: Tenure) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(tenure);
    }

    /// Fences every later write, if this stage holds the lease for the
    /// holder that gives it up.
    fn give_up(&self, ask: &Release) {
        if let Some(tenure) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            if tenure.name == ask.name && tenure.holder == ask.holder {
                tenure.epoch = None;
            }
        }
    }
}

impl Sql {
    /// Now, in milliseconds since the Unix epoch, by the database's clock:
    /// replicas on several machines agree on it whatever their own clocks say.
    fn now_millis(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Kind::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Takes or renews a lease; see [`Acquire`].
    pub(crate) async fn acquire(&self, ask: &Acquire) -> Result<Lease, Error> {
        let now = self.now_millis();
        let ttl = i64::try_from(ask.ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if self.kind == Kind::Postgres {
            // The holder's writes share-lock the row; a standby asks again
            // rather than wait behind a holder that froze mid-write.
            sqlx::query("SET LOCAL lock_timeout = 2000")
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        // One statement, so that two askers at once are ordered by the
        // row's lock: the holder renews, anyone takes a lapsed lease.
        sqlx::query(&format!(
            "INSERT INTO lease (name, holder, epoch, expires) VALUES ($1, $2, 1, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
             epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch \
             ELSE lease.epoch + 1 END, \
             holder = excluded.holder, expires = excluded.expires \
             WHERE lease.holder = excluded.holder OR lease.expires <= {now}"
        ))
        .bind(ask.name.as_str())
        .bind(ask.holder.as_str())
        .bind(ttl)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let row = sqlx::query(&format!(
            "SELECT holder, epoch, expires - {now} FROM lease WHERE name = $1"
        ))
        .bind(ask.name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let holder: String = row.try_get(0).map_err(backend)?;
        let epoch: i64 = row.try_get(1).map_err(backend)?;
        let remaining: i64 = row.try_get(2).map_err(backend)?;
        if holder != ask.holder {
            return Ok(Lease::Taken {
                holder,
                remaining: Duration::from_millis(u64::try_from(remaining).unwrap_or(0)),
            });
        }
        self.fence.set(Tenure {
            name: ask.name.clone(),
            holder,
            epoch: Some(epoch),
        });
        Ok(Lease::Held {
            epoch: u64::try_from(epoch)
                .map_err(|_| Error::Corrupt(format!("lease epoch {epoch}")))?,
        })
    }

    /// Gives a lease up; see [`Release`].
    pub(crate) async fn release(&self, ask: &Release) -> Result<(), Error> {
        // Fenced first: no write of this stage commits after the lease can
        // have gone to another.
        self.fence.give_up(ask);
        sqlx::query("UPDATE lease SET expires = 0 WHERE name = $1 AND holder = $2")
            .bind(ask.name.as_str())
            .bind(ask.holder.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Begins a write transaction that commits only while this stage holds
    /// the lease it acquired, if it acquired one. On PostgreSQL the lease
    /// row is share-locked until the commit, so a takeover waits for the
    /// writes begun before it; SQLite orders every write anyway.
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(tenure) = self.fence.get() else {
            return Ok(tx);
        };
        let Some(epoch) = tenure.epoch else {
            return Err(Error::Fenced(format!(
                "nobody ({} gave it up)",
                tenure.holder
            )));
        };
        let lock = match self.kind {
            Kind::Postgres => " FOR SHARE",
            Kind::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT holder, epoch FROM lease WHERE name = $1{lock}"
        ))
        .bind(tenure.name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Err(Error::Fenced("nobody (the lease is gone)".to_owned()));
        };
        let holder: String = row.try_get(0).map_err(backend)?;
        let held: i64 = row.try_get(1).map_err(backend)?;
        if holder == tenure.holder && held == epoch {
            Ok(tx)
        } else {
            Err(Error::Fenced(holder))
        }
    }
}
