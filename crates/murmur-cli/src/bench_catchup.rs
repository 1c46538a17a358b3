//! `murmur bench catchup`: a node that was offline catching up from a store
//! node. Each round, a default murmur node serves store with `--messages`
//! messages on one content topic in its archive, and a fresh default node
//! (archive on, SQLite) with it as its static peer subscribes to the topic
//! and runs a round of store sync, timed from the round's start to the last
//! message in its inbox (fetched page by page, archived by hash, handed
//! to the subscription).
//!
//! The reference, in the same round against the same store node (each
//! side first in every other round): a client of the same transport asks
//! for the same pages (the same time range, 100 a page) and writes each
//! page to its own SQLite file with murmur's schema, one transaction a
//! page, on a writer beside the fetching (`bench_bare::Bare`, tuned as murmur's
//! storage stage writes). The store client and server are the same on both
//! sides, so the ratio is what the node's inbound path costs: the
//! store-sync stage, the pipeline, the storage stage, the subscription.

use std::time::{Duration, Instant};

use libp2p::{identity::Keypair, Multiaddr};
use murmur_core::{
    store::{Query, MAX_PAGE},
    ContentTopic, Delivery, PubsubTopic, Sharding, WakuMessage,
};
use murmur_node::{Builder, Config, Node};
use murmur_sync::OVERLAP;

use crate::{
    bench::{median, RUN_LIMIT, SETUP},
    bench_bare::Bare,
    error::CliError,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Messages in the store node's archive, all fetched in each run.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Rounds, each side first in every other one; the ratio is the
    /// median of the rounds' ratios.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// A default node (chat on, archive on, SQLite) listening on loopback.
fn loopback(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")];
    config
}

fn topic() -> ContentTopic {
    "/murmur/1/bench-catchup/proto"
        .parse()
        .expect("a valid content topic")
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.messages == 0 || args.rounds == 0 {
        return Err(CliError::Usage(
            "--messages and --rounds must be at least 1".to_owned(),
        ));
    }
    let dir = tempfile::tempdir()?;
    let progress = crate::progress::Progress::new("catch-up benchmark");
    let mut rounds = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        progress.set(format!(
            "catch-up benchmark, round {round} of {}",
            args.rounds
        ));
        // A store node of its own each round, filled just before: a fresh
        // node's first round asks for what came in the last two minutes
        // (`murmur_sync::OVERLAP`) page by page, and only lists the hashes
        // of what is older.
        let config = loopback(&dir.path().join(format!("store-{round}")));
        let store = Builder::new(config.clone())
            .with_keypair(Keypair::generate_secp256k1())
            .start()
            .await?;
        let pubsub = store.pubsub_topic(&topic());
        fill(&config, &pubsub, &args).await?;
        let address = store.listen_addrs()[0].clone();
        let bare_dir = dir.path().join(format!("bare-{round}"));
        let node_dir = dir.path().join(format!("node-{round}"));
        // Each first in every other round, so that neither always meets
        // the store node's caches first.
        let (murmur, bare) = if round % 2 == 1 {
            let bare = reference(&address, &pubsub, &bare_dir, &args).await?;
            (murmur(&address, &node_dir, &args).await?, bare)
        } else {
            let murmur = murmur(&address, &node_dir, &args).await?;
            (
                murmur,
                reference(&address, &pubsub, &bare_dir, &args).await?,
            )
        };
        rounds.push((murmur, bare));
        store.close().await?;
    }
    drop(progress);
    report(&args, &rounds);
    Ok(())
}

/// The store node's archive: `messages` on the benchmark's topic, stamped
/// now and a nanosecond apart, written beside the node as relay traffic
/// would have written them.
async fn fill(config: &Config, pubsub: &PubsubTopic, args: &Args) -> Result<(), CliError> {
    let archive = murmur_storage::Database::open(&config.store_url())
        .await
        .map_err(|e| CliError::Node(e.into()))?;
    let now = murmur_core::now_nanos();
    let mut stamp = 0;
    while stamp < args.messages {
        let batch: Vec<Delivery> = (stamp..args.messages.min(stamp + 1_000))
            .map(|i| {
                let mut payload = format!("caught up {i} ").into_bytes();
                payload.resize(args.size.max(payload.len()), b'.');
                let message = WakuMessage::new(topic().as_str(), payload)
                    .with_timestamp(now - (args.messages - i) as i64);
                Delivery::new(pubsub.clone(), message)
            })
            .collect();
        archive
            .save_batch(&batch)
            .await
            .map_err(|e| CliError::Node(e.into()))?;
        stamp += batch.len();
    }
    Ok(())
}

/// Messages per second of one run.
fn rate(messages: usize, took: Duration) -> f64 {
    messages as f64 / took.as_secs_f64().max(1e-9)
}

/// A fresh default node with the store node as its static peer: the time
/// from the start of a sync round to the last message in its inbox.
async fn murmur(address: &str, dir: &std::path::Path, args: &Args) -> Result<f64, CliError> {
    let mut config = loopback(dir);
    config.network.peers = vec![address
        .parse::<Multiaddr>()
        .map_err(|e| CliError::Failed(format!("the store node's address: {e}")))?];
    // Rounds only when asked: the one timed.
    config.store.sync_interval_secs = 0;
    let node: Node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await?;
    let mut inbox = node.subscribe([&topic()]).await?;
    node.wait_for_peers(&node.pubsub_topic(&topic()), 1, SETUP)
        .await?;
    let started = Instant::now();
    // Read as the round goes: a subscription's queue is bounded, and a
    // subscriber that falls behind misses deliveries. Each message counts
    // once, so that a copy cannot stand in for one lost.
    let reading = async {
        let mut received = std::collections::HashSet::new();
        while received.len() < args.messages {
            match inbox.recv().await {
                Some(delivery) => received.insert(delivery.hash),
                None => break,
            };
        }
        received.len()
    };
    let round = async { tokio::join!(node.sync_now(), reading) };
    let Ok((fetched, received)) = tokio::time::timeout(RUN_LIMIT, round).await else {
        return Err(CliError::Failed(format!(
            "catch-up: not done within {RUN_LIMIT:?}"
        )));
    };
    let fetched = fetched?;
    if received < args.messages {
        return Err(CliError::Failed(format!(
            "catch-up: {received} of {} messages in the inbox ({fetched} fetched)",
            args.messages
        )));
    }
    let took = started.elapsed();
    node.close().await?;
    Ok(rate(args.messages, took))
}

/// The reference: the same pages from the same store node, each written in
/// one transaction by a writer beside the fetching.
async fn reference(
    address: &str,
    pubsub: &PubsubTopic,
    path: &std::path::Path,
    args: &Args,
) -> Result<f64, CliError> {
    let config = murmur_transport::Config::new(Keypair::generate_secp256k1(), Sharding::auto(1, 8))
        .with_own_thread(false)
        .with_listen(Vec::new());
    let (client, _events) = murmur_transport::Network::start(config)
        .await
        .map_err(|e| CliError::Failed(format!("the reference client did not start: {e}")))?;
    client
        .dial(address)
        .await
        .map_err(|e| CliError::Failed(format!("the reference client did not connect: {e}")))?;
    let mut db = Bare::open(path).await?;
    // As the sync stage goes on to the next page while the pipeline
    // archives the last: one page waits at most.
    let (pages, mut writes) = tokio::sync::mpsc::channel::<Vec<WakuMessage>>(1);
    let writer = {
        let pubsub = pubsub.clone();
        tokio::spawn(async move {
            while let Some(page) = writes.recv().await {
                crate::bench_bare::archive_batch(&mut db, &pubsub, &page).await?;
            }
            db.archived().await
        })
    };
    let started = Instant::now();
    // As store sync asks a fresh node's first round: from two minutes back.
    let since = murmur_core::now_nanos() - i64::try_from(OVERLAP.as_nanos()).unwrap_or(i64::MAX);
    let mut query = Query::content(Some(pubsub.clone()), vec![topic().as_str().to_owned()])
        .with_time(Some(since), None)
        .with_limit(MAX_PAGE);
    loop {
        let page = client
            .query_store(address, query.clone())
            .await
            .map_err(|e| CliError::Failed(format!("the reference's store query: {e}")))?;
        let messages = page
            .messages
            .into_iter()
            .filter_map(|m| m.message)
            .collect();
        if pages.send(messages).await.is_err() {
            break;
        }
        match page.cursor {
            Some(cursor) => query = query.with_cursor(Some(cursor)),
            None => break,
        }
    }
    drop(pages);
    let written = writer
        .await
        .map_err(|e| CliError::Failed(format!("the reference's writer: {e}")))??;
    let took = started.elapsed();
    if written != args.messages {
        return Err(CliError::Failed(format!(
            "the reference archived {written} of {} messages",
            args.messages
        )));
    }
    Ok(rate(args.messages, took))
}

#[allow(clippy::print_stdout)]
fn report(args: &Args, rounds: &[(f64, f64)]) {
    let ratio = median(rounds.iter().map(|(m, b)| m / b).collect());
    if args.json {
        let rounds: Vec<_> = rounds
            .iter()
            .map(|(m, b)| {
                serde_json::json!({"murmur": {"per_second": m}, "bare": {"per_second": b}})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "messages": args.messages, "size": args.size,
                "rounds": rounds, "ratio_median": ratio,
            })
        );
        return;
    }
    println!(
        "catch-up from a store node, {} messages of {} bytes, {} round(s)",
        args.messages,
        args.size,
        rounds.len()
    );
    println!(
        "{:<6} {:>22} {:>24} {:>8}",
        "round", "murmur node msgs/s", "store client+sqlx msgs/s", "ratio"
    );
    for (i, (m, b)) in rounds.iter().enumerate() {
        println!("{:<6} {m:>22.0} {b:>24.0} {:>7.2}x", i + 1, m / b);
    }
    println!("median murmur / reference: {ratio:.2}x");
}
