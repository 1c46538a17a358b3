//! `murmur bench store`: the persistence stage against bare sqlx on the same
//! database engine, in the same run.

use std::time::{Duration, Instant};

use futures::{stream::FuturesUnordered, StreamExt};
use murmur_core::{
    storage::{self, SaveRaw},
    store::Query,
    Delivery, PubsubTopic, WakuMessage,
};
use murmur_storage::{Database, Storage};
use prost::Message as _;

use crate::error::CliError;

const CONTENT_TOPIC: &str = "/murmur/1/bench-store/proto";
/// Rows per statement in the bare batched insert, as murmur's.
const BATCH: usize = 100;
const QUERIES: usize = 1000;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Messages to store in each run.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// A PostgreSQL server URL; without it, SQLite files in a temporary folder.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// SaveRaw requests in flight at once in the murmur run; the bare run
    /// commits this many rows per transaction, the most murmur's group
    /// commit can gather.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Rounds, each a bare and a murmur run, in turn first; the ratios are
    /// the medians of the rounds' ratios.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
}

struct Run {
    ingest_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn deliveries(n: usize, size: usize) -> (PubsubTopic, Vec<Delivery>) {
    let topic: PubsubTopic = "/waku/2/rs/1/0".parse().expect("valid topic");
    // Spread over the last n milliseconds, one content topic (and a second one
    // every tenth message, so that the query has something to filter out).
    let start = murmur_core::now_nanos() - i64::try_from(n).unwrap_or(0) * 1_000_000;
    let all = (0..n)
        .map(|i| {
            let content = if i % 10 == 9 {
                "/murmur/1/other/proto"
            } else {
                CONTENT_TOPIC
            };
            let mut payload = vec![0u8; size.max(8)];
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let message = WakuMessage::new(content, payload)
                .with_timestamp(start + i64::try_from(i).unwrap_or(0) * 1_000_000);
            Delivery::new(topic.clone(), message)
        })
        .collect();
    (topic, all)
}

/// Where a run keeps its archive: a SQLite folder, or a database of its own
/// on the PostgreSQL server; gone after the run ([`Scratch::discard`]).
enum Scratch {
    Sqlite(std::path::PathBuf),
    Postgres { server: String, url: String },
}

async fn open(args: &Args, name: &str) -> Result<(Database, Scratch), CliError> {
    let fail = |e: murmur_storage::OpenError| CliError::Node(e.into());
    match &args.postgres {
        Some(server) => {
            let url = Database::create_fresh(server).await.map_err(fail)?;
            let db = Database::open(&url).await.map_err(fail)?;
            let server = server.clone();
            Ok((db, Scratch::Postgres { server, url }))
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("murmur-bench-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let db = Database::open(&format!("sqlite://{}", dir.join("bench.db").display()))
                .await
                .map_err(fail)?;
            Ok((db, Scratch::Sqlite(dir)))
        }
    }
}

impl Scratch {
    /// Removes what the run wrote (10 million messages are gigabytes).
    async fn discard(self) -> Result<(), CliError> {
        match self {
            Self::Sqlite(dir) => Ok(std::fs::remove_dir_all(dir)?),
            Self::Postgres { server, url } => Database::drop_fresh(&server, &url)
                .await
                .map_err(|e| CliError::Node(e.into())),
        }
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn the_query(topic: &PubsubTopic, newest: i64) -> Query {
    // One content topic, the last ten minutes, a page of 20, newest first
    // (what a chat client asks when it opens a conversation).
    Query::content(Some(topic.clone()), vec![CONTENT_TOPIC.to_owned()])
        .with_time(Some(newest - 600_000_000_000), Some(newest + 1))
        .with_forward(false)
        .with_limit(20)
}

/// Through the Storage actor: SaveRaw per message, `concurrency` in flight;
/// queries through `storage::Query`.
async fn murmur_run(args: &Args) -> Result<Run, CliError> {
    let (db, scratch) = open(args, "murmur").await?;
    let run = murmur_on(args, db).await;
    scratch.discard().await?;
    run
}

async fn murmur_on(args: &Args, db: Database) -> Result<Run, CliError> {
    let (topic, all) = deliveries(args.messages, args.size);
    let newest = all.last().and_then(|d| d.message.timestamp).unwrap_or(0);
    let store = storage::Handle::from(Storage::start(db));
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for d in all {
        if inflight.len() >= args.concurrency {
            if let Some(r) = inflight.next().await {
                check(r)?;
            }
        }
        inflight.push(store.save_raw.send(SaveRaw(d)));
    }
    while let Some(r) = inflight.next().await {
        check(r)?;
    }
    let ingest = args.messages as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let t = Instant::now();
        let page = store
            .query
            .send(storage::Query(the_query(&topic, newest)))
            .await
            .map_err(|_| CliError::Failed("storage stopped".to_owned()))?
            .map_err(|e| CliError::Failed(e.to_string()))?;
        latencies.push(t.elapsed());
        if page.messages.len() != 20 {
            return Err(CliError::Failed(format!(
                "a page of {}",
                page.messages.len()
            )));
        }
    }
    latencies.sort();
    Ok(Run {
        ingest_per_second: ingest,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    })
}

fn check(r: Result<Result<bool, storage::Error>, actix::MailboxError>) -> Result<(), CliError> {
    match r {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CliError::Failed(e.to_string())),
        Err(_) => Err(CliError::Failed("storage stopped".to_owned())),
    }
}

/// Bare sqlx on the same schema: transactions of `concurrency` rows in
/// multi-row inserts of 100, and the same select murmur runs for that
/// query.
async fn bare_run(args: &Args) -> Result<Run, CliError> {
    let (db, scratch) = open(args, "bare").await?;
    let run = bare_on(args, db).await;
    scratch.discard().await?;
    run
}

/// Binds each delivery's row, in the columns of murmur's archive insert.
fn bind_rows<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &[Delivery],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    rows.iter().fold(q, |q, d| {
        q.bind(d.hash.as_bytes().to_vec())
            .bind(d.pubsub_topic.as_str().to_owned())
            .bind(d.message.content_topic.clone())
            .bind(d.message.timestamp.unwrap_or(0))
            .bind(d.message.encode_to_vec())
            .bind(murmur_core::now_nanos())
    })
}

async fn bare_on(args: &Args, db: Database) -> Result<Run, CliError> {
    let (topic, all) = deliveries(args.messages, args.size);
    let newest = all.last().and_then(|d| d.message.timestamp).unwrap_or(0);
    let pool = db.pool();
    let fail = |e: sqlx::Error| CliError::Failed(format!("bare sqlx: {e}"));
    // On SQLite written as murmur's storage stage writes (`Bare`: one
    // connection, a transaction as one request, checkpoints beside the
    // writes); PostgreSQL's writes go through the pool, as murmur's do.
    let mut sqlite = match args.postgres {
        None => Some(crate::bench_bare::Bare::on(db.clone()).await?),
        Some(_) => None,
    };
    let started = Instant::now();
    for commit in all.chunks(args.concurrency.max(1)) {
        let inserts: Vec<String> = commit
            .chunks(BATCH)
            .map(|chunk| murmur_storage::archive_insert(chunk.len(), sqlite.is_some()))
            .collect();
        match &mut sqlite {
            Some(bare) => {
                let text = crate::bench_bare::Bare::script(&inserts);
                let bytes = commit
                    .iter()
                    .map(|d| d.message.encoded_len() + murmur_storage::Checkpoint::ROW)
                    .sum();
                bare.commit(bind_rows(sqlx::query(&text), commit), bytes)
                    .await?;
            }
            None => {
                let mut tx = pool.begin().await.map_err(fail)?;
                for (sql, chunk) in inserts.into_iter().zip(commit.chunks(BATCH)) {
                    bind_rows(sqlx::query(&sql), chunk)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
            }
        }
    }
    drop(sqlite);
    let ingest = args.messages as f64 / started.elapsed().as_secs_f64();
    let query = the_query(&topic, newest);
    let (start, end) = match &query.criteria {
        murmur_core::store::Criteria::Content { start, end, .. } => {
            (start.unwrap_or(0), end.unwrap_or(0))
        }
        _ => (0, 0),
    };
    let sql = "SELECT hash, timestamp, pubsub_topic, message FROM messages WHERE 1 = 1 \
               AND pubsub_topic = $1 AND content_topic IN ($2) AND timestamp >= $3 AND timestamp < $4 \
               ORDER BY timestamp DESC, hash DESC LIMIT $5";
    let mut latencies = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let t = Instant::now();
        let rows = sqlx::query(sql)
            .bind(topic.as_str().to_owned())
            .bind(CONTENT_TOPIC)
            .bind(start)
            .bind(end)
            .bind(21_i64)
            .fetch_all(pool)
            .await
            .map_err(fail)?;
        latencies.push(t.elapsed());
        if rows.len() != 21 {
            return Err(CliError::Failed(format!("bare: {} rows", rows.len())));
        }
    }
    latencies.sort();
    Ok(Run {
        ingest_per_second: ingest,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    })
}

#[allow(clippy::print_stdout)]
pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.messages == 0 || args.rounds == 0 || args.concurrency == 0 {
        return Err(CliError::Usage(
            "--messages, --rounds and --concurrency must be at least 1".to_owned(),
        ));
    }
    let backend = if args.postgres.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    let progress = crate::progress::Progress::new(format!("store benchmark on {backend}"));
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        progress.set(format!(
            "store benchmark on {backend}, round {round} of {}",
            args.rounds
        ));
        // In turn first: the second run of a round meets a warmer disk.
        let (bare, murmur) = if round % 2 == 1 {
            let bare = bare_run(&args).await?;
            (bare, murmur_run(&args).await?)
        } else {
            let murmur = murmur_run(&args).await?;
            (bare_run(&args).await?, murmur)
        };
        rounds.push((bare, murmur));
    }
    drop(progress);
    println!(
        "store on {backend}, {} messages of {} bytes, {} rounds (bare first in odd rounds)",
        args.messages,
        args.size,
        rounds.len()
    );
    println!(
        "bare sqlx: transactions of {} rows, inserts of {BATCH}; murmur: SaveRaw with {} in flight, group-committed",
        args.concurrency, args.concurrency
    );
    println!(
        "{:<7} {:>12} {:>12} {:>12} {:>12} {:>7} {:>7}",
        "round", "bare msg/s", "murmur msg/s", "bare p99 ms", "murmur p99", "ingest", "p99"
    );
    for (i, (b, m)) in rounds.iter().enumerate() {
        println!(
            "{:<7} {:>12.0} {:>12.0} {:>12.3} {:>12.3} {:>7.2} {:>7.2}",
            i + 1,
            b.ingest_per_second,
            m.ingest_per_second,
            b.p99_ms,
            m.p99_ms,
            m.ingest_per_second / b.ingest_per_second,
            m.p99_ms / b.p99_ms
        );
    }
    let median =
        |f: &dyn Fn(&(Run, Run)) -> f64| crate::bench::median(rounds.iter().map(f).collect());
    println!(
        "ingest murmur / bare: {:.2}x; query p99 murmur / bare: {:.2}x (medians of the rounds' ratios; query p50 bare {:.3} ms, murmur {:.3} ms)",
        median(&|(b, m)| m.ingest_per_second / b.ingest_per_second),
        median(&|(b, m)| m.p99_ms / b.p99_ms),
        median(&|(b, _)| b.p50_ms),
        median(&|(_, m)| m.p50_ms),
    );
    Ok(())
}
