//! `murmur bench serve`: a service node under many clients at once. A
//! default murmur node (archive on SQLite, store and lightpush served) with
//! one relay peer; for each client count, that many libp2p clients on
//! loopback each send `--requests` requests, store queries (a full page) and
//! lightpushes in turn, all at once. Reported per client count: requests
//! answered per second, how that grows against one client, p50 and p99
//! latency of each kind, and failures (a refusal or a reset counts).

use std::time::{Duration, Instant};

use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::identity::Keypair;
use murmur_core::{store::Query, ContentTopic, Sharding, WakuMessage};
use murmur_node::{Builder, Config, Node};

use crate::error::CliError;

const SETUP: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Client counts to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100")]
    clients: Vec<usize>,
    /// Requests per client in each run (store queries and lightpushes in turn).
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Messages in the store before the runs (a query asks for one page of 20).
    #[arg(long, default_value_t = 100)]
    stored: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One run's measurements of one request kind.
#[derive(Debug, Default, Clone)]
struct Kind {
    answered: usize,
    failed: usize,
    latencies: Vec<Duration>,
}

impl Kind {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        crate::bench_store::percentile(&sorted, p)
    }
}

/// What one client count measured.
#[derive(Debug, Clone)]
struct Run {
    clients: usize,
    seconds: f64,
    store: Kind,
    push: Kind,
}

impl Run {
    /// Requests of both kinds answered per second.
    fn per_second(&self) -> f64 {
        (self.store.answered + self.push.answered) as f64 / self.seconds
    }

    fn failed(&self) -> usize {
        self.store.failed + self.push.failed
    }
}

fn topic() -> ContentTopic {
    "/murmur/1/bench-serve/proto"
        .parse()
        .expect("a valid content topic")
}

pub(crate) fn loopback(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")];
    config.chat.enabled = false;
    config
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.requests == 0 || args.clients.contains(&0) {
        return Err(CliError::Usage(
            "--requests and every --clients count must be at least 1".to_owned(),
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::Failed(e.to_string()))?;
    let service = Builder::new(loopback(&dir.path().join("service")))
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await?;
    let address = service.listen_addrs()[0].clone();
    let mut relay_config = loopback(&dir.path().join("relay"));
    relay_config.network.peers = vec![address
        .parse()
        .map_err(|e| CliError::Failed(format!("{e}")))?];
    let relay = Builder::new(relay_config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await?;
    // The relay reads what is pushed, so that its queue never fills.
    let mut relaying = relay.subscribe([&topic()]).await?;
    actix::spawn(async move { while relaying.recv().await.is_some() {} });
    service
        .wait_for_peers(&service.pubsub_topic(&topic()), 1, SETUP)
        .await?;
    for i in 0..args.stored {
        service
            .send(&topic(), format!("stored {i}").into_bytes())
            .await?;
    }

    let mut runs = Vec::new();
    let progress = crate::progress::Progress::new("serve benchmark");
    for &clients in &args.clients {
        tracing::info!(clients, requests = args.requests, "serve run");
        progress.set(format!("serve benchmark: {clients} clients"));
        runs.push(serve(&service, &address, clients, args.requests).await?);
    }
    drop(progress);
    report(&runs, args.json);
    Ok(())
}

/// `clients` clients, each connected first, then all sending at once.
async fn serve(
    service: &Node,
    address: &str,
    clients: usize,
    requests: usize,
) -> Result<Run, CliError> {
    let sharding = Sharding::auto(1, 8);
    let mut nodes = Vec::with_capacity(clients);
    for _ in 0..clients {
        let config = murmur_transport::Config::new(Keypair::generate_secp256k1(), sharding.clone())
            .with_own_thread(false)
            .with_listen(Vec::new());
        let (node, _events) = murmur_transport::Network::start(config)
            .await
            .map_err(|e| CliError::Failed(format!("a client did not start: {e}")))?;
        node.dial(address)
            .await
            .map_err(|e| CliError::Failed(format!("a client did not connect: {e}")))?;
        nodes.push(node);
    }
    let pubsub = service.pubsub_topic(&topic());
    let query =
        Query::content(Some(pubsub.clone()), vec![topic().as_str().to_owned()]).with_limit(20);
    let start = Instant::now();
    let mut all: FuturesUnordered<_> = nodes
        .iter()
        .enumerate()
        .map(|(c, node)| {
            let (query, pubsub) = (query.clone(), pubsub.clone());
            async move {
                let (mut store, mut push) = (Kind::default(), Kind::default());
                for r in 0..requests {
                    let asked = Instant::now();
                    if r % 2 == 0 {
                        match node.query_store(address, query.clone()).await {
                            Ok(_) => store.answered += 1,
                            Err(_) => store.failed += 1,
                        }
                        store.latencies.push(asked.elapsed());
                    } else {
                        let message = WakuMessage::new(
                            topic().as_str(),
                            format!("client {c} push {r}").into_bytes(),
                        )
                        .with_timestamp(murmur_core::now_nanos());
                        match node.lightpush(address, &pubsub, message).await {
                            Ok(_) => push.answered += 1,
                            Err(_) => push.failed += 1,
                        }
                        push.latencies.push(asked.elapsed());
                    }
                }
                (store, push)
            }
        })
        .collect();
    let mut run = Run {
        clients,
        seconds: 0.0,
        store: Kind::default(),
        push: Kind::default(),
    };
    while let Some((store, push)) = all.next().await {
        for (total, part) in [(&mut run.store, store), (&mut run.push, push)] {
            total.answered += part.answered;
            total.failed += part.failed;
            total.latencies.extend(part.latencies);
        }
    }
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

#[allow(clippy::print_stdout)]
fn report(runs: &[Run], json: bool) {
    let one = runs.iter().find(|r| r.clients == 1).map(Run::per_second);
    let scale = |run: &Run| one.map(|o| run.per_second() / o);
    if json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "clients": r.clients,
                    "requests_per_second": r.per_second(),
                    "vs_one_client": scale(r),
                    "store_p50_ms": r.store.percentile(0.5),
                    "store_p99_ms": r.store.percentile(0.99),
                    "lightpush_p50_ms": r.push.percentile(0.5),
                    "lightpush_p99_ms": r.push.percentile(0.99),
                    "failed": r.failed(),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "runs": rows }));
        return;
    }
    println!(
        "{:>7} | {:>10} {:>6} | {:>9} {:>9} | {:>9} {:>9} | {:>6}",
        "clients", "requests/s", "vs 1", "store p50", "p99 ms", "push p50", "p99 ms", "failed"
    );
    for r in runs {
        let vs = scale(r).map_or_else(|| "-".to_owned(), |x| format!("{x:.1}x"));
        println!(
            "{:>7} | {:>10.0} {:>6} | {:>9.2} {:>9.2} | {:>9.2} {:>9.2} | {:>6}",
            r.clients,
            r.per_second(),
            vs,
            r.store.percentile(0.5),
            r.store.percentile(0.99),
            r.push.percentile(0.5),
            r.push.percentile(0.99),
            r.failed(),
        );
    }
}
