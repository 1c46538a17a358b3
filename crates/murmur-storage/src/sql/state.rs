//! Other stages' state: opaque, sealed bytes by name.

use super::*;

impl Sql {
    /// Writes (or, with `None`, deletes) entries of stage state in one
    /// transaction.
    pub(crate) async fn save_state(
        &self,
        entries: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), Error> {
        let mut script = script::Script::default();
        state(&mut script, entries);
        // Before and after, as for a batch (`Sql::superseding`).
        self.superseded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        script.commit(self).await?;
        self.superseded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// On SQLite, when state changed since the last call: a truncating
    /// checkpoint, so that the WAL's copies of superseded state are gone
    /// (the database file's were zeroed by `secure_delete`); answers
    /// whether they are. PostgreSQL keeps old row versions until VACUUM,
    /// and in its own WAL and any archive of it: nothing murmur can erase
    /// (docs/security.md).
    pub(crate) async fn erase_superseded(&self) -> Result<bool, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.kind != Kind::Sqlite || !self.superseded.swap(false, Relaxed) {
            return Ok(false);
        }
        let held = self.checkpointing.lock().await;
        let busy = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get::<i64, _>(0))
            .map_err(backend);
        drop(held);
        if busy != Ok(0) {
            // A reader on an older snapshot, a writer, or a checkpoint a
            // commit ran (the writer's past its bound) kept the WAL from
            // being truncated, or the checkpoint failed: what it holds is
            // erased at the next call, not left until the next state write.
            self.superseded.store(true, Relaxed);
        }
        busy.map(|busy| busy == 0)
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

/// Writes `entries` as if one after the other: the last entry of a name
/// wins. Many saves share a group commit, so this is a few statements for
/// the whole group (upserts and deletions, 100 names each), not one per
/// entry.
pub(super) fn state(script: &mut script::Script, entries: &[(String, Option<Vec<u8>>)]) {
    let mut last = std::collections::BTreeMap::new();
    for (name, value) in entries {
        last.insert(name.as_str(), value.as_ref());
    }
    let (kept, gone): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, v)| v.is_some());
    let updated_at = now_nanos();
    for chunk in kept.chunks(100) {
        // One row per name: PostgreSQL refuses an upsert that meets a row twice.
        let sql = format!(
            "INSERT INTO state (name, value, updated_at) VALUES {} \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            script::rows(chunk.len(), 3)
        );
        let mut args = Vec::with_capacity(3 * chunk.len());
        for (name, value) in chunk {
            args.extend([
                Arg::Text((*name).to_owned()),
                Arg::Blob(value.cloned().unwrap_or_default()),
                Arg::Int(updated_at),
            ]);
        }
        script.push(sql, args);
    }
    for chunk in gone.chunks(100) {
        script.push(
            format!(
                "DELETE FROM state WHERE name IN ({})",
                script::list(chunk.len())
            ),
            chunk
                .iter()
                .map(|(name, _)| Arg::Text((*name).to_owned()))
                .collect(),
        );
    }
}
