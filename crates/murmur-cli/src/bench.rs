//! `murmur bench relay`: murmur's relay path against bare rust-libp2p
//! gossipsub with the same settings, in the same process and runtime.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use actix::{Arbiter, ArbiterHandle};
use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::{identity::Keypair, Multiaddr};
use murmur_core::{ContentTopic, PubsubTopic, WakuMessage};
use murmur_node::{Builder, Config, Node};

use crate::bench_stages::{Snapshot, Stages};
use tokio::sync::Notify;

use crate::error::CliError;

const TOPIC: &str = "/murmur/1/bench/proto";
pub(crate) const SETUP: Duration = Duration::from_secs(20);
/// A run that takes longer than this is reported as failed.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Relay throughput and latency between two nodes on loopback.
    Relay(RelayArgs),
    /// Archive ingest and store query latency, against bare sqlx.
    Store(crate::bench_store::Args),
    /// A service node under many store and lightpush clients at once.
    Serve(crate::bench_serve::Args),
    /// A contact's latency while unknown accounts flood first messages.
    Strangers(crate::bench_strangers::Args),
    /// One node's memory and operation times as its contacts, groups and
    /// archive grow.
    Scale(crate::bench_scale::Args),
    /// Encrypted 1:1 messages end to end, against a bare composition.
    Chat(crate::bench_chat::Args),
    /// A node catching up from a store node, against the same pages
    /// written straight to SQLite.
    Catchup(crate::bench_catchup::Args),
}

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
    /// Messages in flight (published, not yet received) at most.
    #[arg(long, default_value_t = 256)]
    pub(crate) window: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// `network.own_thread` of the default runs (default threads and
    /// archiving); unset, the node's default: a thread of its own on a
    /// machine with more than two cores.
    #[arg(long)]
    own_thread: Option<bool>,
    /// Leave out the run with archiving (SQLite ingest bounds it; see `bench store`).
    #[arg(long)]
    no_archive: bool,
    /// Rounds of every run, one after another; the ratios reported are the
    /// medians over rounds (one run alone varies by 10 % or more).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Nice value of gossipsub's timer thread, for every run alike (as a
    /// node sets it, `network.timer_thread_nice`); 0 leaves it as it is.
    #[arg(long, default_value_t = murmur_transport::timer::DEFAULT_NICE,
          value_parser = clap::value_parser!(u8).range(0..=i64::from(murmur_transport::timer::MAX_NICE)))]
    timer_nice: u8,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The receiving side's bookkeeping, shared with the publisher.
pub(crate) struct Progress {
    start: Instant,
    pub(crate) received: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
    last: Mutex<Option<Instant>>,
    pub(crate) notify: Notify,
}

impl Progress {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            received: AtomicUsize::new(0),
            latencies: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            notify: Notify::new(),
        })
    }

    /// The payload: 8 bytes of sequence, 8 bytes of send time, padding.
    pub(crate) fn payload(&self, seq: usize, size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size.max(16)];
        p[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        let sent = self.start.elapsed().as_nanos() as u64;
        p[8..16].copy_from_slice(&sent.to_be_bytes());
        p
    }

    pub(crate) fn record(&self, payload: &[u8]) {
        if payload.len() < 16 {
            return;
        }
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&payload[8..16]);
        let sent = Duration::from_nanos(u64::from_be_bytes(sent));
        let latency = self.start.elapsed().saturating_sub(sent);
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(latency);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.received.fetch_add(1, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn in_flight(&self, sent: usize) -> usize {
        sent.saturating_sub(self.received.load(Ordering::Acquire))
    }

    pub(crate) fn report(&self, first_send: Instant) -> Report {
        let mut lat = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let last = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(Instant::now);
        let elapsed = last.duration_since(first_send).as_secs_f64().max(1e-9);
        Report {
            per_second: lat.len() as f64 / elapsed,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

/// How a murmur run lays its two nodes out on threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Each node on a thread of its own: its swarm, its stage actors and the
    /// loop that publishes to it or reads from it (`network.own_thread =
    /// false`, the node started on an actix arbiter), as each bare swarm runs
    /// with its loop.
    ThreadPerNode,
    /// The defaults, as `murmur node` runs a node in its own process (the
    /// node started on an actix arbiter of its own, as a process's actix
    /// thread): on a machine with more than two cores its swarm on a
    /// thread of its own (`network.own_thread`), its actors and the loop on
    /// the other; on two or fewer, as [`Layout::ThreadPerNode`].
    Default,
}

/// The runs of one round, in the order they run.
#[derive(Debug, Clone)]
struct Round {
    bare: Report,
    per_node: Report,
    default: Report,
    /// murmur archiving, and its reference: bare gossipsub archiving too.
    archiving: Option<(Report, Report)>,
    /// Each node's writes in the default-threads run, then in the
    /// archiving run: sender, receiver.
    stages: Vec<(&'static str, [Stages; 2])>,
}

pub(crate) async fn run(command: Command) -> Result<(), CliError> {
    let args = match command {
        Command::Relay(args) => args,
        Command::Store(args) => return crate::bench_store::run(args).await,
        Command::Serve(args) => return crate::bench_serve::run(args).await,
        Command::Strangers(args) => return crate::bench_strangers::run(args).await,
        Command::Chat(args) => return crate::bench_chat::run(args).await,
        Command::Scale(args) => return crate::bench_scale::run(args).await,
        Command::Catchup(args) => return crate::bench_catchup::run(args).await,
    };
    if args.messages == 0 || args.window == 0 || args.rounds == 0 {
        return Err(CliError::Usage(
            "--messages, --window and --rounds must be at least 1".to_owned(),
        ));
    }
    // Before the first bare run, so that every run has the same timer thread.
    murmur_transport::timer::lower_priority(args.timer_nice);
    let mut rounds = Vec::with_capacity(args.rounds);
    let progress = crate::progress::Progress::new("relay benchmark");
    for round in 1..=args.rounds {
        progress.set(format!("relay benchmark, round {round} of {}", args.rounds));
        tracing::info!(
            round,
            messages = args.messages,
            size = args.size,
            "bare gossipsub run"
        );
        let bare = crate::bench_bare::bare_gossipsub(&args, false).await?;
        tracing::info!(round, "murmur run, a thread per node");
        let (per_node, _) = murmur_relay(&args, false, Layout::ThreadPerNode).await?;
        tracing::info!(round, "murmur run, default threads");
        let (default, default_stages) = murmur_relay(&args, false, Layout::Default).await?;
        let mut stages = vec![("default", default_stages)];
        let archiving = if args.no_archive {
            None
        } else {
            tracing::info!(round, "bare run, archiving");
            let bare = crate::bench_bare::bare_gossipsub(&args, true).await?;
            tracing::info!(round, "murmur run, archiving");
            let (murmur, archiving_stages) = murmur_relay(&args, true, Layout::Default).await?;
            stages.push(("archiving", archiving_stages));
            Some((murmur, bare))
        };
        rounds.push(Round {
            bare,
            per_node,
            default,
            archiving,
            stages,
        });
    }
    drop(progress);
    print_rounds(&args, &rounds);
    Ok(())
}

/// The median of `values`: of an even count, the mean of the two middle
/// ones.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[allow(clippy::print_stdout)]
fn print_rounds(args: &RelayArgs, rounds: &[Round]) {
    let ratio = |f: fn(&Round) -> Option<Report>| {
        median(
            rounds
                .iter()
                .filter_map(|r| Some(f(r)?.per_second / r.bare.per_second))
                .collect(),
        )
    };
    let per_node = ratio(|r| Some(r.per_node));
    let default = ratio(|r| Some(r.default));
    // Against the bare run that archives too.
    let archiving = median(
        rounds
            .iter()
            .filter_map(|r| r.archiving.map(|(m, b)| m.per_second / b.per_second))
            .collect(),
    );
    if args.json {
        let report = |r: Report| serde_json::json!({"per_second": r.per_second, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms});
        let rounds: Vec<_> = rounds
            .iter()
            .map(|r| {
                serde_json::json!({
                    "bare": report(r.bare),
                    "murmur_thread_per_node": report(r.per_node),
                    "murmur_default": report(r.default),
                    "murmur_archiving": r.archiving.map(|(m, _)| report(m)),
                    "bare_archiving": r.archiving.map(|(_, b)| report(b)),
                    "stages": r.stages.iter().map(|(run, [sender, receiver])| {
                        (run.to_string(), serde_json::json!({"sender": sender.json(), "receiver": receiver.json()}))
                    }).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "messages": args.messages, "size": args.size, "window": args.window,
                "timer_nice": args.timer_nice,
                "rounds": rounds,
                "median_ratio": {
                    "thread_per_node": per_node,
                    "default": default,
                    "archiving": (!args.no_archive).then_some(archiving),
                },
            })
        );
        return;
    }
    println!(
        "relay, {} messages of {} bytes, window {}, {} round(s), timer thread at nice {}",
        args.messages,
        args.size,
        args.window,
        rounds.len(),
        args.timer_nice
    );
    let own = args
        .own_thread
        .unwrap_or_else(|| Config::default().network.own_thread);
    println!(
        "default threads: each node's swarm on {}",
        if own {
            "a thread of its own"
        } else {
            "the node's actix thread, beside its actors"
        }
    );
    println!(
        "{:<6} {:<26} {:>10} {:>9} {:>9} {:>8}",
        "round", "", "msgs/s", "p50 ms", "p99 ms", "/ bare"
    );
    for (i, round) in rounds.iter().enumerate() {
        // Each against its reference: the archiving run against the bare
        // run that archives too.
        let (archiving, bare_archiving) = round.archiving.unzip();
        let runs = [
            ("bare gossipsub", Some(round.bare), round.bare),
            (
                "murmur, a thread per node",
                Some(round.per_node),
                round.bare,
            ),
            ("murmur, default threads", Some(round.default), round.bare),
            ("bare gossipsub+sqlx", bare_archiving, round.bare),
            (
                "murmur+archive",
                archiving,
                bare_archiving.unwrap_or(round.bare),
            ),
        ];
        for (name, r, reference) in runs.into_iter().filter_map(|(n, r, f)| Some((n, r?, f))) {
            println!(
                "{:<6} {name:<26} {:>10.0} {:>9.3} {:>9.3} {:>7.2}x",
                i + 1,
                r.per_second,
                r.p50_ms,
                r.p99_ms,
                r.per_second / reference.per_second
            );
        }
    }
    print!(
        "median murmur / bare throughput: {per_node:.2}x a thread per node; {default:.2}x default threads"
    );
    if args.no_archive {
        println!();
    } else {
        println!("; {archiving:.2}x of bare gossipsub+sqlx archiving every message");
    }
    if let Some(last) = rounds.last() {
        println!();
        println!("murmur's writes in the last round, from each node's /metrics: how many, and the mean of each");
        Stages::writes_table(&last.stages);
    }
}

pub(crate) fn bench_topic() -> Result<(ContentTopic, PubsubTopic), CliError> {
    let content: ContentTopic = TOPIC.parse().map_err(murmur_node::Error::from)?;
    let pubsub = murmur_core::Sharding::auto(1, 8).pubsub_topic(&content);
    Ok((content, pubsub))
}

/// Two murmur nodes: publish through the pipeline actor and the transport
/// actor, receive through the transport, the pipeline and a subscription.
async fn murmur_relay(
    args: &RelayArgs,
    archive: bool,
    layout: Layout,
) -> Result<(Report, [Stages; 2]), CliError> {
    let (content, pubsub) = bench_topic()?;
    let data = tempfile::tempdir()?;
    let config = |name: &str, peers: Vec<Multiaddr>| {
        let mut c = Config::new(data.path().join(name));
        c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
        c.network.shards = vec![pubsub.shard().index];
        c.network.peers = peers;
        c.network.own_thread = match layout {
            Layout::ThreadPerNode => false,
            Layout::Default => args.own_thread.unwrap_or(c.network.own_thread),
        };
        c.network.timer_thread_nice = args.timer_nice;
        c.store.archive = archive;
        c
    };
    // Each node on an actix thread of its own: two nodes in one process
    // sharing one would wait for each other, which two processes do not.
    let threads = (Arbiter::new(), Arbiter::new());
    let (a_thread, b_thread) = (threads.0.handle(), threads.1.handle());
    let a = start_node(config("a", Vec::new()), &a_thread).await?;
    let a_addr = a.listen_addrs()[0].parse().expect("valid multiaddr");
    let b = start_node(config("b", vec![a_addr]), &b_thread).await?;
    let mut inbox = b.subscribe([&content]).await?;
    a.wait_for_peers(&pubsub, 1, SETUP).await?;
    b.wait_for_peers(&pubsub, 1, SETUP).await?;

    let progress = Progress::new();
    let receiving = {
        let progress = progress.clone();
        let n = args.messages;
        run_on(&b_thread, async move {
            while progress.received.load(Ordering::Acquire) < n {
                match inbox.recv().await {
                    Some(d) => progress.record(&d.message.payload),
                    None => break,
                }
            }
            Ok(())
        })
    };
    let before = [Snapshot::of(&a), Snapshot::of(&b)];
    let first_send = Instant::now();
    let (messages, window, size) = (args.messages, args.window, args.size);
    let sender = a.clone();
    let publishing = {
        let progress = progress.clone();
        run_on(&a_thread, async move {
            let mut sent = 0;
            let mut publishing = FuturesUnordered::new();
            while sent < messages || !publishing.is_empty() {
                while sent < messages && progress.in_flight(sent) < window {
                    let message = WakuMessage::new(content.as_str(), progress.payload(sent, size))
                        .with_timestamp(murmur_core::now_nanos());
                    let node = a.clone();
                    let topic = pubsub.clone();
                    publishing.push(async move { node.publish(topic, message).await });
                    sent += 1;
                }
                tokio::select! {
                    Some(result) = publishing.next() => { result?; }
                    () = progress.notify.notified() => {}
                }
            }
            Ok(())
        })
    };
    let published = publishing.await;
    let all = wait_all(&progress, args.messages).await;
    if all.is_ok() {
        // It stops after the last message; after a failure it would wait on.
        let _ = receiving.await;
    }
    let stages = [
        Stages::between(before[0], Snapshot::of(&sender)),
        Stages::between(before[1], Snapshot::of(&b)),
    ];
    drop((sender, b));
    threads.0.stop();
    threads.1.stop();
    published?;
    all?;
    Ok((progress.report(first_send), stages))
}

/// Starts a node with the default stages on `thread`, so that its actors
/// (and with `own_thread = false` its swarm) live there.
pub(crate) async fn start_node(config: Config, thread: &ArbiterHandle) -> Result<Node, CliError> {
    let make = || Builder::new(config).with_keypair(Keypair::generate_secp256k1());
    Ok(Builder::start_on(thread, make).await?)
}

/// Starts `future` now, on `thread`; its result arrives when it is done.
fn run_on<F>(
    thread: &ArbiterHandle,
    future: F,
) -> impl std::future::Future<Output = Result<(), CliError>>
where
    F: std::future::Future<Output = Result<(), CliError>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = async move {
        let _ = tx.send(future.await);
    };
    thread.spawn(run);
    async move {
        rx.await
            .map_err(|_| CliError::Failed("a benchmark loop stopped".to_owned()))?
    }
}

async fn wait_all(progress: &Progress, n: usize) -> Result<(), CliError> {
    let deadline = tokio::time::Instant::now() + SETUP;
    while progress.received.load(Ordering::Acquire) < n {
        if tokio::time::timeout_at(deadline, progress.notify.notified())
            .await
            .is_err()
        {
            return Err(CliError::Failed(format!(
                "only {} of {n} messages arrived",
                progress.received.load(Ordering::Acquire)
            )));
        }
    }
    Ok(())
}
