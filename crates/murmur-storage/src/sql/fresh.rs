//! Databases made for one test or benchmark run on a PostgreSQL server,
//! and dropped again.

use super::*;

impl Sql {
    /// Creates a new, uniquely named database on the PostgreSQL server at
    /// `server_url`; answers its URL.
    pub(crate) async fn create_fresh(server_url: &str) -> Result<String, OpenError> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);

        sqlx::any::install_default_drivers();
        let masked = mask(server_url);
        let name = format!(
            "murmur_test_{}_{}_{}",
            std::process::id(),
            now_nanos(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(server_url)
            .await
            .map_err(|e| OpenError::Connect {
                url: masked.clone(),
                reason: e.to_string(),
            })?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|e| OpenError::Connect {
                url: masked,
                reason: e.to_string(),
            })?;
        sweep_fresh(&admin).await;
        admin.close().await;
        let (base, query) = match server_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (server_url, String::new()),
        };
        let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
        Ok(format!("{root}/{name}{query}"))
    }

    /// Drops a database [`Sql::create_fresh`] made on the server at
    /// `server_url`, given its URL; any other database is left alone.
    pub(crate) async fn drop_fresh(server_url: &str, fresh_url: &str) -> Result<(), OpenError> {
        let masked = mask(server_url);
        let failed = |reason: String| OpenError::Connect {
            url: masked.clone(),
            reason,
        };
        let name = fresh_url
            .split('?')
            .next()
            .and_then(|base| base.rsplit_once('/'))
            .map(|(_, name)| name)
            .filter(|name| {
                name.starts_with("murmur_test_")
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .ok_or_else(|| failed("not a database create_fresh made".to_owned()))?;
        sqlx::any::install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(server_url)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let dropped = admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .map_err(|e| failed(e.to_string()));
        admin.close().await;
        dropped.map(drop)
    }
}

/// How old a database [`Sql::create_fresh`] made may grow before the next
/// one drops it: no test or benchmark runs that long, and tests never drop
/// theirs (a test cannot wait for anything once it has failed).
const FRESH_FOR: Duration = Duration::from_secs(6 * 3600);

/// Drops the databases `create_fresh` made more than [`FRESH_FOR`] ago
/// (their name holds when), so that test runs do not pile them up on a
/// developer's server. Best effort: a failure is logged and changes nothing.
async fn sweep_fresh(admin: &AnyPool) {
    let rows = match sqlx::query(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'murmur\\_test\\_%'",
    )
    .fetch_all(admin)
    .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "old test databases not listed");
            return;
        }
    };
    let before =
        now_nanos().saturating_sub(i64::try_from(FRESH_FOR.as_nanos()).unwrap_or(i64::MAX));
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        if fresh_made_at(&name).is_none_or(|at| at >= before) {
            continue;
        }
        if let Err(e) = admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
        {
            tracing::debug!(error = %e, name, "old test database not dropped");
        }
    }
}

/// When `create_fresh` made the database `name`
/// (`murmur_test_{pid}_{nanos}_{n}`), or `None` for any other name.
fn fresh_made_at(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("murmur_test_")?;
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let mut parts = rest.split('_');
    let (_pid, nanos, _n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    nanos.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_create_fresh_makes_tell_when() {
        assert_eq!(fresh_made_at("murmur_test_12_3456_7"), Some(3456));
        for other in [
            "murmur",
            "murmur_test_",
            "murmur_test_12_3456",
            "murmur_test_12_3456_7_8",
            "murmur_test_12_34x_7",
            "murmur_test_12_3456_7;DROP",
        ] {
            assert_eq!(fresh_made_at(other), None, "{other}");
        }
    }
}
