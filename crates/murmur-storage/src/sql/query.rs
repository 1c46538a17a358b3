//! Store queries: one page at a time, in the archive's (timestamp, hash)
//! order.

use super::*;

/// The bounds of a page of a content query in time order: which of the
/// query's own time bounds and the cursor's still narrow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    start: Option<i64>,
    end: Option<i64>,
    cursor: bool,
}

impl Bounds {
    /// Leaves out the bound on the cursor's side that the other one
    /// implies. Both would be true, but given two lower bounds (or two
    /// upper ones), SQLite ranges the index on the plain timestamp and
    /// tests the cursor's row value on every row after it: each page would
    /// read the pages before it again, and a catch-up page by page would
    /// take time quadratic in its length.
    fn of(forward: bool, start: Option<i64>, end: Option<i64>, cursor: Option<i64>) -> Self {
        let Some(at) = cursor else {
            return Self {
                start,
                end,
                cursor: false,
            };
        };
        if forward {
            // After (at, hash): from `at` on. Before `start`: every row from
            // `start` on is after it.
            match start {
                Some(start) if at < start => Self {
                    start: Some(start),
                    end,
                    cursor: false,
                },
                _ => Self {
                    start: None,
                    end,
                    cursor: true,
                },
            }
        } else {
            // Before (at, hash): up to `at`. At or after `end`: every row
            // before `end` is before it.
            match end {
                Some(end) if at >= end => Self {
                    start,
                    end: Some(end),
                    cursor: false,
                },
                _ => Self {
                    start,
                    end: None,
                    cursor: true,
                },
            }
        }
    }
}

impl Sql {
    /// Answers one page of a store query.
    pub(crate) async fn query(&self, query: &Query) -> Result<Page, Error> {
        query.check().map_err(Error::BadQuery)?;
        let cursor = match query.cursor {
            Some(cursor) => {
                let row = sqlx::query("SELECT timestamp FROM messages WHERE hash = $1")
                    .bind(cursor.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .ok_or(Error::UnknownCursor(cursor))?;
                let timestamp: i64 = row.try_get(0).map_err(backend)?;
                Some((timestamp, cursor))
            }
            None => None,
        };
        let (sql, args) = select(query, cursor)?;
        let rows = script::bind(sqlx::query(&sql), args.0)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let messages = rows
            .iter()
            .map(|row| read_stored(row, query.include_data))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(messages, query))
    }
}

/// The statement of one page of `query`, after `cursor` (its timestamp and
/// hash) if there is one, and its arguments.
fn select(query: &Query, cursor: Option<(i64, MessageHash)>) -> Result<(String, Args), Error> {
    let mut sql = String::from(if query.include_data {
        "SELECT hash, timestamp, pubsub_topic, message FROM messages WHERE 1 = 1"
    } else {
        "SELECT hash, timestamp FROM messages WHERE 1 = 1"
    });
    let mut args = Args::default();
    let mut after_cursor = cursor.is_some();
    match &query.criteria {
        Criteria::Content {
            pubsub_topic,
            content_topics,
            start,
            end,
        } => {
            if let Some(topic) = pubsub_topic {
                sql += &format!(" AND pubsub_topic = {}", args.text(topic.as_str()));
            }
            if !content_topics.is_empty() {
                let list: Vec<String> = content_topics.iter().map(|t| args.text(t)).collect();
                sql += &format!(" AND content_topic IN ({})", list.join(", "));
            }
            let bounds = Bounds::of(query.forward, *start, *end, cursor.map(|(at, _)| at));
            after_cursor = bounds.cursor;
            if let Some(start) = bounds.start {
                sql += &format!(" AND timestamp >= {}", args.int(start));
            }
            if let Some(end) = bounds.end {
                sql += &format!(" AND timestamp < {}", args.int(end));
            }
        }
        Criteria::Hashes(hashes) => {
            let list: Vec<String> = hashes.iter().map(|h| args.blob(h.as_bytes())).collect();
            sql += &format!(" AND hash IN ({})", list.join(", "));
        }
        _ => return Err(Error::BadQuery("criteria this store does not know")),
    }
    if let Some((timestamp, hash)) = cursor.filter(|_| after_cursor) {
        let op = if query.forward { ">" } else { "<" };
        // Row values compare (timestamp, hash) lexicographically: the
        // store's order, so the cursor is exclusive and stable.
        sql += &format!(
            " AND (timestamp, hash) {op} ({}, {})",
            args.int(timestamp),
            args.blob(hash.as_bytes())
        );
    }
    let order = if query.forward { "ASC" } else { "DESC" };
    // One more than a page tells whether another page follows.
    let limit = query.limit.clamp(1, murmur_core::store::MAX_PAGE);
    sql += &format!(
        " ORDER BY timestamp {order}, hash {order} LIMIT {}",
        args.int(i64::try_from(limit + 1).unwrap_or(i64::MAX))
    );
    Ok((sql, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(start: Option<i64>, end: Option<i64>, cursor: bool) -> Bounds {
        Bounds { start, end, cursor }
    }

    #[test]
    fn without_a_cursor_the_query_keeps_its_bounds() {
        for forward in [true, false] {
            assert_eq!(
                Bounds::of(forward, Some(1), Some(9), None),
                bounds(Some(1), Some(9), false)
            );
        }
    }

    #[test]
    fn forward_the_later_of_start_and_cursor_bounds_the_page() {
        // The cursor at or after the start: the start says nothing more.
        assert_eq!(
            Bounds::of(true, Some(5), Some(9), Some(5)),
            bounds(None, Some(9), true)
        );
        assert_eq!(
            Bounds::of(true, Some(5), None, Some(7)),
            bounds(None, None, true)
        );
        // A cursor before the start (a client may send any): the start.
        assert_eq!(
            Bounds::of(true, Some(5), Some(9), Some(4)),
            bounds(Some(5), Some(9), false)
        );
        assert_eq!(
            Bounds::of(true, None, None, Some(4)),
            bounds(None, None, true)
        );
    }

    #[test]
    fn backward_the_earlier_of_end_and_cursor_bounds_the_page() {
        // The cursor before the end: the end says nothing more.
        assert_eq!(
            Bounds::of(false, Some(1), Some(9), Some(8)),
            bounds(Some(1), None, true)
        );
        // At or after the end (exclusive): the end.
        assert_eq!(
            Bounds::of(false, Some(1), Some(9), Some(9)),
            bounds(Some(1), Some(9), false)
        );
        assert_eq!(
            Bounds::of(false, None, None, Some(9)),
            bounds(None, None, true)
        );
    }

    /// SQLite's plan for each page of a time range after a cursor, both ways:
    /// an index range on the topic and the cursor's row value (or the range's
    /// edge), never a range on the time alone with the cursor tested on every
    /// row after it (a catch-up page by page was quadratic so).
    #[test]
    fn a_page_after_a_cursor_ranges_the_index_from_the_cursor() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sql = Sql::open(&format!(
                "sqlite://{}",
                dir.path().join("plan.db").display()
            ))
            .await
            .unwrap();
            let topic: murmur_core::PubsubTopic = "/waku/2/rs/1/0".parse().unwrap();
            let ranged = Query::content(Some(topic), vec!["/c/1/a/proto".to_owned()])
                .with_time(Some(1_000), Some(9_000));
            let cursor = (5_000, MessageHash([7; 32]));
            for (forward, range) in [
                (true, "(timestamp,hash)>(?,?)"),
                (false, "(timestamp,hash)<(?,?)"),
            ] {
                let (text, args) =
                    select(&ranged.clone().with_forward(forward), Some(cursor)).unwrap();
                let plan = script::bind(sqlx::query(&format!("EXPLAIN QUERY PLAN {text}")), args.0)
                    .fetch_all(&sql.pool)
                    .await
                    .unwrap();
                let detail: Vec<String> = plan
                    .iter()
                    .map(|row| row.try_get("detail").unwrap())
                    .collect();
                let detail = detail.join("; ");
                assert!(
                    detail.contains("messages_by_topic") && detail.contains(range),
                    "forward {forward}: {detail}"
                );
            }
        });
    }
}
