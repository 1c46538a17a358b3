//! `murmur bench chat`: encrypted 1:1 messages end to end between two
//! nodes as `murmur node` runs them (default configuration: archive on,
//! SQLite, every stage as shipped), beside a bare composition of the same
//! primitives in the same process (`bench_chat_bare.rs`) in four variants:
//! with or without murmur's sealed-sender envelope around each ratchet
//! message (what hiding the sender costs, apart from what murmur's stages
//! cost), and with the messages the window lets go at once in one ratchet
//! message, as murmur seals together what waits (`chat.batch`), or each
//! alone.
//!
//! Each message counts once it is in the recipient's inbox (opened,
//! persisted) and its receipt is back at the sender; the latency is from
//! the send to the inbox. After the tables, where the last murmur run's
//! time went, step by step, from the nodes' `/metrics`
//! (`bench_stages.rs`).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use actix::Arbiter;
use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::Multiaddr;
use murmur_node::{chat::DeliveryState, Config};

use crate::{
    bench::{median, start_node, RUN_LIMIT, SETUP},
    bench_chat_bare::{Pack, Wrap},
    bench_stages::{Path, Snapshot, Stages},
    bench_store::percentile,
    error::CliError,
};

/// Writes the bare composition gathers into one transaction at most.
pub(crate) const BATCH: usize = 64;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) messages: usize,
    /// Text bytes per message.
    #[arg(long, default_value_t = 200)]
    pub(crate) size: usize,
    /// Messages sent and not yet acknowledged (in a group: not yet read),
    /// at most.
    #[arg(long, default_value_t = 64)]
    pub(crate) window: usize,
    /// Members of the group of the group runs (all but two offline); 0
    /// runs 1:1 only.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Rounds, each a murmur run then a bare one; the ratio is the median
    /// of the rounds' ratios.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Threads for the envelopes' key agreements in each murmur node of
    /// the 1:1 runs (`chat.envelope_threads`; 0: on the crypto stage's
    /// thread); unset, the default.
    #[arg(long)]
    pub(crate) envelope_threads: Option<usize>,
    /// Whether each murmur node's swarm runs on a thread of its own
    /// (`network.own_thread`), or on the node's actix thread; unset, the
    /// default.
    #[arg(long)]
    own_thread: Option<bool>,
    /// The most messages sealed together (`chat.batch` of the murmur
    /// nodes, and the bare compositions' batches); 1: each alone.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Send times and inbox latencies of one run.
pub(crate) struct Clock {
    start: Instant,
    latencies: Mutex<Vec<Duration>>,
}

impl Clock {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            latencies: Mutex::new(Vec::new()),
        })
    }

    /// The text of message `seq`: its sequence and send time, padded.
    pub(crate) fn text(&self, seq: usize, size: usize) -> String {
        let mut text = format!("{seq:08} {:016} ", self.start.elapsed().as_nanos());
        while text.len() < size {
            text.push('x');
        }
        text
    }

    /// A message's text came to the inbox.
    pub(crate) fn arrived(&self, text: &str) {
        let Some(sent) = text.split(' ').nth(1).and_then(|t| t.parse::<u64>().ok()) else {
            return;
        };
        let latency = self
            .start
            .elapsed()
            .saturating_sub(Duration::from_nanos(sent));
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(latency);
    }

    pub(crate) fn report(&self, n: usize, elapsed: Duration) -> Result<Report, CliError> {
        let mut latencies = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if latencies.len() != n {
            return Err(CliError::Failed(format!(
                "{} of {n} messages reached the inbox",
                latencies.len()
            )));
        }
        latencies.sort();
        Ok(Report {
            per_second: n as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
        })
    }
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.messages == 0 || args.window == 0 || args.rounds == 0 || args.batch == 0 {
        return Err(CliError::Usage(
            "--messages, --window, --rounds and --batch must be at least 1".to_owned(),
        ));
    }
    if args.members == 1 {
        return Err(CliError::Usage(
            "--members is 0 (1:1 only) or at least 2".to_owned(),
        ));
    }
    let progress = crate::progress::Progress::new("chat benchmark");
    let members = tempfile::tempdir()?;
    let others = if args.members >= 2 {
        progress.set(format!(
            "chat benchmark, {} offline members",
            args.members - 2
        ));
        crate::bench_group::offline_members(args.members - 2, members.path()).await?
    } else {
        Vec::new()
    };
    let mut bare: [Vec<(Report, Report)>; 4] = Default::default();
    let mut groups = Vec::with_capacity(args.rounds);
    let mut groups_alone = Vec::with_capacity(args.rounds);
    let mut stages = [Stages::default(); 2];
    let mut group_stages = [Stages::default(); 2];
    for round in 1..=args.rounds {
        progress.set(format!("chat benchmark, round {round} of {}", args.rounds));
        tracing::info!(round, "murmur run, default configuration");
        let murmur;
        (murmur, stages) = murmur_run(&args).await?;
        for (runs, variant) in bare.iter_mut().zip(&VARIANTS) {
            tracing::info!(round, variant = variant.key, "bare run");
            let run = crate::bench_chat_bare::run(&args, variant.wrap, variant.pack).await?;
            runs.push((murmur, run));
        }
        if args.members >= 2 {
            tracing::info!(
                round,
                members = args.members,
                "group run, default configuration"
            );
            let murmur;
            (murmur, group_stages) = crate::bench_group::murmur_run(&args, &others).await?;
            tracing::info!(round, "bare group run");
            let bare = crate::bench_group::bare_run(&args, Pack::Together).await?;
            groups.push((murmur, bare));
            tracing::info!(round, "bare group run, each message alone");
            let bare = crate::bench_group::bare_run(&args, Pack::Alone).await?;
            groups_alone.push((murmur, bare));
        }
    }
    drop(progress);
    print(
        &args,
        &bare,
        [&groups, &groups_alone],
        [stages, group_stages],
    );
    Ok(())
}

/// One bare composition the murmur runs are set against.
struct Variant {
    /// Its key in the JSON report (the first's runs are the report's own).
    key: &'static str,
    wrap: Wrap,
    pack: Pack,
    /// What the table says it is.
    title: &'static str,
}

/// The bare compositions, the first: no envelope, batched as
/// murmur batches.
const VARIANTS: [Variant; 4] = [
    Variant {
        key: "bare",
        wrap: Wrap::Plain,
        pack: Pack::Together,
        title: "against the bare composition: no envelope, the messages the window lets go at once in one ratchet message (as murmur seals together what waits)",
    },
    Variant {
        key: "sealed_sender",
        wrap: Wrap::Sealed,
        pack: Pack::Together,
        title: "against the bare composition with murmur's sealed-sender envelope, batched the same way: the same work as murmur's, without its stages",
    },
    Variant {
        key: "each_alone",
        wrap: Wrap::Plain,
        pack: Pack::Alone,
        title: "against the bare composition with each message a ratchet message of its own, no envelope",
    },
    Variant {
        key: "sealed_sender_each_alone",
        wrap: Wrap::Sealed,
        pack: Pack::Alone,
        title: "against the bare composition with each message (and receipt) in an envelope of its own",
    },
];

fn ratio(rounds: &[(Report, Report)]) -> f64 {
    median(
        rounds
            .iter()
            .map(|(m, b)| m.per_second / b.per_second)
            .collect(),
    )
}

fn runs_json(rounds: &[(Report, Report)]) -> Vec<serde_json::Value> {
    rounds
        .iter()
        .map(|(m, b)| {
            serde_json::json!({
                "murmur": {"per_second": m.per_second, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms},
                "bare": {"per_second": b.per_second, "p50_ms": b.p50_ms, "p99_ms": b.p99_ms},
            })
        })
        .collect()
}

#[allow(clippy::print_stdout)]
fn print(
    args: &Args,
    bare: &[Vec<(Report, Report)>; 4],
    [groups, groups_alone]: [&[(Report, Report)]; 2],
    [[sender, receiver], [poster, reader]]: [[Stages; 2]; 2],
) {
    let rounds = &bare[0];
    // A group's messages per second against 1:1's, round by round.
    let group_vs_one = median(
        rounds
            .iter()
            .zip(groups)
            .map(|((one, _), (group, _))| group.per_second / one.per_second)
            .collect(),
    );
    if args.json {
        let mut report = serde_json::json!({
            "messages": args.messages,
            "size": args.size,
            "window": args.window,
            "batch": args.batch,
            "rounds": runs_json(rounds),
            "ratio_median": ratio(rounds),
            "stages": {"sender": sender.json(), "receiver": receiver.json()},
        });
        for (runs, variant) in bare.iter().zip(&VARIANTS).skip(1) {
            report[variant.key] = serde_json::json!({
                "rounds": runs_json(runs),
                "ratio_median": ratio(runs),
            });
        }
        if !groups.is_empty() {
            report["group"] = serde_json::json!({
                "members": args.members,
                "rounds": runs_json(groups),
                "ratio_median": ratio(groups),
                "vs_one_to_one_median": group_vs_one,
                "stages": {"sender": poster.json(), "reader": reader.json()},
                "each_alone": {
                    "rounds": runs_json(groups_alone),
                    "ratio_median": ratio(groups_alone),
                },
            });
        }
        println!("{report}");
        return;
    }
    println!(
        "encrypted 1:1, {} messages of {} bytes, {} in flight, at most {} sealed together, {} rounds",
        args.messages,
        args.size,
        args.window,
        args.batch,
        rounds.len()
    );
    for (i, (runs, variant)) in bare.iter().zip(&VARIANTS).enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}", variant.title);
        table(runs);
    }
    println!(
        "\nmurmur's steps in the last round, from each node's /metrics: how many, and the mean of each"
    );
    Stages::table(
        Path::Pairwise,
        &[("sender", sender), ("receiver", receiver)],
    );
    if !groups.is_empty() {
        println!(
            "\nprivate group of {} members (2 online), {} messages of {} bytes, {} in flight",
            args.members, args.messages, args.size, args.window
        );
        println!("against its bare composition, the messages the window lets go at once in one chain message");
        table(groups);
        println!("\nagainst its bare composition with each message a chain message of its own");
        table(groups_alone);
        println!("group msg/s against 1:1 msg/s, median of the rounds: {group_vs_one:.2}");
        println!(
            "\nthe group's steps in the last round, from each node's /metrics: how many, and the mean of each"
        );
        Stages::table(Path::Group, &[("sender", poster), ("reader", reader)]);
    }
}

#[allow(clippy::print_stdout)]
fn table(rounds: &[(Report, Report)]) {
    let of = |f: fn(&(Report, Report)) -> f64| median(rounds.iter().map(f).collect());
    println!("round  murmur msg/s  p50 ms  p99 ms   bare msg/s  p50 ms  p99 ms  ratio");
    for (i, (m, b)) in rounds.iter().enumerate() {
        println!(
            "{:>5}  {:>12.0}  {:>6.1}  {:>6.1}  {:>11.0}  {:>6.1}  {:>6.1}  {:>5.2}",
            i + 1,
            m.per_second,
            m.p50_ms,
            m.p99_ms,
            b.per_second,
            b.p50_ms,
            b.p99_ms,
            m.per_second / b.per_second
        );
    }
    println!(
        "median {:>11.0}  {:>6.1}  {:>6.1}  {:>11.0}  {:>6.1}  {:>6.1}  {:>5.2}",
        of(|r| r.0.per_second),
        of(|r| r.0.p50_ms),
        of(|r| r.0.p99_ms),
        of(|r| r.1.per_second),
        of(|r| r.1.p50_ms),
        of(|r| r.1.p99_ms),
        ratio(rounds)
    );
}

/// Two nodes in their default configuration but for loopback ports, each
/// on an actix thread of its own, one the other's static peer; each adds the other's contact code; one
/// message goes and is acknowledged before the clock starts (the session
/// and the mesh are set up).
async fn murmur_run(args: &Args) -> Result<(Report, [Stages; 2]), CliError> {
    let data = tempfile::tempdir()?;
    let config = |name: &str, peers: Vec<Multiaddr>| {
        let mut c = Config::new(data.path().join(name));
        c.chat.envelope_threads = args.envelope_threads;
        c.chat.batch = args.batch;
        if let Some(own) = args.own_thread {
            c.network.own_thread = own;
        }
        c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
        c.network.peers = peers;
        c
    };
    // Each node on an actix thread of its own, as in a process of its
    // own: sharing one, each would wait for the other's actors.
    let threads = (Arbiter::new(), Arbiter::new());
    let receiver = start_node(config("receiver", Vec::new()), &threads.0.handle()).await?;
    let address = receiver.listen_addrs()[0]
        .parse()
        .map_err(|_| CliError::Failed("a listen address that does not parse".to_owned()))?;
    let sender = start_node(config("sender", vec![address]), &threads.1.handle()).await?;
    let account = sender.add_contact(&receiver.contact_code().await?).await?;
    receiver.add_contact(&sender.contact_code().await?).await?;
    let mut inbox = receiver.inbox().await?;
    let chat = sender.conversation(account);
    let mut first = chat.send_text("set up").await?;
    acknowledged(first.acknowledged(SETUP).await)?;
    if inbox.recv_timeout(SETUP).await.is_none() {
        return Err(CliError::Failed("the first message never came".to_owned()));
    }

    let before = [Snapshot::of(&sender), Snapshot::of(&receiver)];
    let clock = Clock::new();
    let n = args.messages;
    let reading = {
        let clock = clock.clone();
        actix::spawn(async move {
            for _ in 0..n {
                let message = inbox.recv_timeout(RUN_LIMIT).await?;
                clock.arrived(message.text().unwrap_or_default());
            }
            Some(())
        })
    };
    let started = Instant::now();
    let mut waiting = FuturesUnordered::new();
    let (mut sent, mut done) = (0, 0);
    while done < n {
        while sent < n && waiting.len() < args.window {
            let chat = sender.conversation(account);
            let text = clock.text(sent, args.size);
            waiting.push(async move {
                let mut sent = chat.send_text(text).await?;
                Ok::<_, CliError>(sent.acknowledged(RUN_LIMIT).await)
            });
            sent += 1;
        }
        match waiting.next().await {
            Some(state) => acknowledged(state?)?,
            None => break,
        }
        done += 1;
    }
    let elapsed = started.elapsed();
    let read = reading
        .await
        .map_err(|_| CliError::Failed("the inbox reader stopped".to_owned()))?;
    let stages = [
        Stages::between(before[0], Snapshot::of(&sender)),
        Stages::between(before[1], Snapshot::of(&receiver)),
    ];
    sender.close().await?;
    receiver.close().await?;
    threads.0.stop();
    threads.1.stop();
    if read.is_none() {
        return Err(CliError::Failed("the inbox stopped".to_owned()));
    }
    Ok((clock.report(n, elapsed)?, stages))
}

fn acknowledged(state: DeliveryState) -> Result<(), CliError> {
    match state {
        DeliveryState::Acknowledged { .. } => Ok(()),
        other => Err(CliError::Failed(format!(
            "a message was not acknowledged: {other:?}"
        ))),
    }
}
