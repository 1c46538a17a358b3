//! Other stages' state: opaque, sealed bytes by name.

use super::*;

impl Sql {
    /// Writes (or, with `None`, deletes) entries of stage state in one
    /// transaction.
    pub(crate) async fn save_state(
        &self,
        entries: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        for (name, value) in entries {
            match value {
                Some(value) => sqlx::query(
                    "INSERT INTO state (name, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at",
                )
                .bind(name.as_str())
                .bind(value.clone())
                .bind(now_nanos()),
                None => sqlx::query("DELETE FROM state WHERE name = $1").bind(name.as_str()),
            }
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        self.superseded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// On SQLite, when state changed since the last call: a truncating
    /// checkpoint, so that the WAL's copies of superseded state are gone
    /// (the database file's were zeroed by `secure_delete`). PostgreSQL
    /// keeps old row versions until VACUUM, and in its own WAL and any
    /// archive of it: nothing murmur can erase (docs/security.md).
    pub(crate) async fn erase_superseded(&self) -> Result<bool, Error> {
        if self.kind != Kind::Sqlite
            || !self
                .superseded
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(false);
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(true)
    }

    /// Reads one entry of stage state.
    pub(crate) async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let row = sqlx::query("SELECT value FROM state WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| row.try_get(0).map_err(backend)).transpose()
    }

    /// Reads every entry of stage state under a name prefix, by name.
    pub(crate) async fn list_state(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        // A range, not LIKE: names may hold `%` and `_`.
        let rows = sqlx::query("SELECT name, value FROM state WHERE name >= $1 ORDER BY name")
            .bind(prefix)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let name: String = row.try_get(0).map_err(backend)?;
            if !name.starts_with(prefix) {
                break;
            }
            out.push((name, row.try_get(1).map_err(backend)?));
        }
        Ok(out)
    }
}
