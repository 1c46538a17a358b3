//! A write transaction's statements, built before any of them runs.
//!
//! Every statement sqlx runs is a round trip to the thread that owns the
//! connection, and on SQLite that round trip (two thread wake-ups) cost
//! more than the statement: a group commit of archive rows, outbox rows and
//! stage state was six of them. SQLite runs several statements in one
//! request, so there a write's statements go as one; PostgreSQL's extended
//! protocol takes one statement per request, so there they go one by one.
//! The transaction around them is the caller's either way.

use super::*;

/// The statements of one write, with their arguments. A statement's SQL
/// marks each argument's place with `?`, which [`Script::run`] numbers as
/// the backend reads them (SQLite numbers `?` across the statements of a
/// request, PostgreSQL wants `$1`, `$2`, ... per statement).
#[derive(Default)]
pub(super) struct Script {
    statements: Vec<(String, Vec<Arg>)>,
}

impl Script {
    /// Adds a statement; `sql` has one `?` per argument.
    pub(super) fn push(&mut self, sql: String, args: Vec<Arg>) {
        debug_assert_eq!(sql.matches('?').count(), args.len());
        self.statements.push((sql, args));
    }

    /// Runs the statements in order in one transaction; answers the first
    /// column of the rows they returned, as bytes, in order.
    pub(super) async fn commit(self, sql: &Sql) -> Result<Vec<Vec<u8>>, Error> {
        if sql.kind == Kind::Sqlite && !sql.fence.is_set() {
            return self.alone(&sql.pool).await;
        }
        let mut tx = sql.begin_write().await?;
        let rows = match sql.kind {
            Kind::Sqlite => {
                let (text, args) = self.joined();
                bind(sqlx::query(&text), args)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(backend)?
            }
            Kind::Postgres => {
                let mut rows = Vec::new();
                for (text, args) in self.statements {
                    rows.extend(
                        bind(sqlx::query(&numbered(&text)), args)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(backend)?,
                    );
                }
                rows
            }
        };
        tx.commit().await.map_err(backend)?;
        first_columns(&rows)
    }

    /// On SQLite with no lease to check first: `BEGIN`, the statements and
    /// `COMMIT` as one request.
    async fn alone(self, pool: &AnyPool) -> Result<Vec<Vec<u8>>, Error> {
        let mut conn = pool.acquire().await.map_err(backend)?;
        let (text, args) = self.transaction();
        match bind(sqlx::query(&text), args).fetch_all(&mut *conn).await {
            Ok(rows) => first_columns(&rows),
            Err(e) => {
                // What ran before the failed statement is in a transaction
                // still open, unless SQLite ended it: ended either way
                // before the connection goes back to the pool, or it goes.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    let _ = conn.close().await;
                }
                Err(backend(e))
            }
        }
    }

    /// On SQLite: `BEGIN`, the statements and `COMMIT` as one request, and
    /// their arguments.
    pub(super) fn transaction(self) -> (String, Vec<Arg>) {
        let (text, args) = self.joined();
        (format!("BEGIN;\n{text}COMMIT;"), args)
    }

    /// The statements as one SQLite request, and their arguments: SQLite
    /// numbers `?` across a request's statements.
    fn joined(self) -> (String, Vec<Arg>) {
        let mut text = String::new();
        let mut all = Vec::new();
        for (sql, args) in self.statements {
            text.push_str(&sql);
            text.push_str(";\n");
            all.extend(args);
        }
        (text, all)
    }
}

/// The first column of each row, as bytes.
fn first_columns(rows: &[AnyRow]) -> Result<Vec<Vec<u8>>, Error> {
    rows.iter()
        .map(|row| row.try_get(0).map_err(backend))
        .collect()
}

/// `sql` with its `?`s numbered `$1`, `$2`, ...
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Binds `args` in order, for either driver the statements go through:
/// `Any` (the pool) or SQLite's own (the group writer's connection).
pub(super) fn bind<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for arg in args {
        q = match arg {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
            Arg::Blob(b) => q.bind(b),
        };
    }
    q
}

/// `(?, ?), (?, ?)` for 2 rows of 2 columns.
pub(super) fn rows(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// `?, ?, ?` for 3 values.
pub(super) fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_numbered_per_statement() {
        assert_eq!(
            numbered("INSERT INTO t VALUES (?, ?), (?, ?)"),
            "INSERT INTO t VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(rows(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(list(3), "?, ?, ?");
    }
}
