//! `murmur bench strangers`: a node flooded with first messages from
//! accounts it never met, and how long a contact's messages take meanwhile.
//!
//! Three default nodes on loopback (SQLite, every stage as shipped): Bob,
//! Alice (a contact of Bob's) and a flooder. The flooder publishes, at
//! `--rate` per second, first messages that `--strangers` fresh accounts
//! sealed to Bob's contact code (each a real X3DH start Bob must open),
//! while Alice writes to Bob every `--interval-ms`. The same Alice run
//! without the flood, in the same process, is the reference. Reported:
//! Alice's send-to-inbox latency (p50, p99) quiet and flooded, their
//! ratio, the flood's rate, and what Bob did with the strangers (opened as
//! message requests, or refused past `chat.max_requests`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::identity::Keypair;
use murmur_core::ContentTopic;
use murmur_crypto::{device::Device, Limits, Vault};
use murmur_node::{chat::AccountId, Builder, Config, Node};

use crate::error::CliError;

const SETUP: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// First messages from distinct unknown accounts in the flood.
    #[arg(long, default_value_t = 2000)]
    strangers: usize,
    /// First messages published per second.
    #[arg(long, default_value_t = 400)]
    rate: u32,
    /// Messages Alice sends in each run (at the defaults, for as long as
    /// the flood lasts).
    #[arg(long, default_value_t = 250)]
    messages: usize,
    /// Milliseconds between Alice's messages.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

fn config(dir: &std::path::Path, peer: Option<&Node>) -> Result<Config, CliError> {
    let mut config = Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().map_err(failed)?];
    if let Some(peer) = peer {
        config.network.peers = vec![peer.listen_addrs()[0].parse().map_err(failed)?];
    }
    Ok(config)
}

async fn start(config: Config) -> Result<Node, CliError> {
    Ok(Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await?)
}

/// Latencies of one run of Alice's messages, in milliseconds.
struct Run {
    p50: f64,
    p99: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.messages == 0 || args.rate == 0 {
        return Err(CliError::Usage(
            "--messages and --rate must be at least 1".to_owned(),
        ));
    }
    let dir = tempfile::tempdir().map_err(failed)?;
    let bob = start(config(&dir.path().join("bob"), None)?).await?;
    let alice = start(config(&dir.path().join("alice"), Some(&bob))?).await?;
    let mut flooder_config = config(&dir.path().join("flooder"), Some(&bob))?;
    flooder_config.chat.enabled = false;
    let flooder = start(flooder_config).await?;
    let (bob_id, _) = bob.chat_identity().await?;
    let (alice_id, _) = alice.chat_identity().await?;
    bob.add_contact(&alice.contact_code().await?).await?;
    alice.add_contact(&bob.contact_code().await?).await?;
    let topic: ContentTopic = murmur_node::crypto::partition_topic(
        murmur_crypto::envelope::partition(&murmur_crypto::AccountId(bob_id.0), 64),
    );
    for node in [&alice, &flooder] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, SETUP)
            .await?;
    }
    let mut inbox = bob.inbox().await?;
    // Sessions set up both ways before anything is measured.
    alice.conversation(bob_id).send_text("warm up").await?;
    inbox
        .recv_timeout(WAIT)
        .await
        .ok_or_else(|| failed("Bob never got Alice's first message"))?;

    tracing::info!(
        strangers = args.strangers,
        "sealing the strangers' first messages"
    );
    let code = bob.contact_code().await?;
    let now = u64::try_from(murmur_core::now_nanos() / 1_000_000_000).map_err(failed)?;
    let mut flood = Vec::with_capacity(args.strangers);
    for i in 0..args.strangers {
        let (mut stranger, _) = Device::create(
            Vault::new(format!("stranger {i}").as_bytes()),
            Limits::default(),
            now,
        );
        let (bob_account, _) = stranger.add_contact(&code, now).map_err(failed)?;
        let (out, _) = stranger
            .seal(bob_account, b"let me in", now)
            .map_err(failed)?;
        flood.extend(out.into_iter().map(|o| o.envelope));
    }

    tracing::info!("quiet run");
    let quiet = alice_run(&alice, &mut inbox, bob_id, alice_id, &args).await?;
    tracing::info!("flooded run");
    let flooding = {
        let flooder = flooder.clone();
        let topic = topic.clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
        actix::spawn(async move {
            let started = Instant::now();
            let mut next = tokio::time::Instant::now();
            let mut published = 0usize;
            for envelope in flood {
                next += period;
                tokio::time::sleep_until(next).await;
                if flooder.send(&topic, envelope).await.is_ok() {
                    published += 1;
                }
            }
            (published, started.elapsed())
        })
    };
    let flooded = alice_run(&alice, &mut inbox, bob_id, alice_id, &args).await?;
    let (published, took) = flooding.await.map_err(failed)?;
    let requests = bob.requests().await?.len();
    report(&args, &quiet, &flooded, published, took, requests);
    Ok(())
}

/// Alice sends `args.messages` to Bob, one every `args.interval_ms`; the
/// latency of each from send to Bob's inbox.
async fn alice_run(
    alice: &Node,
    inbox: &mut murmur_node::chat::Inbox,
    bob: AccountId,
    alice_id: AccountId,
    args: &Args,
) -> Result<Run, CliError> {
    let mut sent_at = HashMap::new();
    let mut latencies = Vec::with_capacity(args.messages);
    let mut tick = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    let mut sent = 0;
    while latencies.len() < args.messages {
        tokio::select! {
            _ = tick.tick(), if sent < args.messages => {
                let s = alice.conversation(bob).send_text(format!("contact {sent}")).await?;
                sent_at.insert(s.id, Instant::now());
                sent += 1;
            }
            m = tokio::time::timeout(WAIT, inbox.recv()) => {
                let m = m.map_err(|_| failed("Alice's messages stopped arriving"))?
                    .ok_or_else(|| failed("Bob's inbox closed"))?;
                if m.sender != alice_id {
                    continue;
                }
                if let Some(at) = sent_at.remove(&m.id) {
                    latencies.push(at.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Run {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    })
}

#[allow(clippy::print_stdout)]
fn report(
    args: &Args,
    quiet: &Run,
    flooded: &Run,
    published: usize,
    took: Duration,
    requests: usize,
) {
    let rate = published as f64 / took.as_secs_f64().max(1e-9);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "strangers": args.strangers,
                "flood_per_second": rate,
                "requests_waiting": requests,
                "contact_quiet_p50_ms": quiet.p50,
                "contact_quiet_p99_ms": quiet.p99,
                "contact_flooded_p50_ms": flooded.p50,
                "contact_flooded_p99_ms": flooded.p99,
            })
        );
        return;
    }
    println!(
        "flood: {published} first messages from unknown accounts at {rate:.0}/s; \
         {requests} accounts wait as message requests (the rest were refused past \
         chat.requests_per_minute or chat.max_requests before any X3DH, or were \
         not yet opened when Alice's run ended)"
    );
    println!(
        "{:<28} {:>10} {:>10}",
        "a contact's messages", "p50 ms", "p99 ms"
    );
    println!("{:<28} {:>10.1} {:>10.1}", "quiet", quiet.p50, quiet.p99);
    println!(
        "{:<28} {:>10.1} {:>10.1}",
        "during the flood", flooded.p50, flooded.p99
    );
    println!(
        "{:<28} {:>10.2} {:>10.2}",
        "flooded / quiet",
        flooded.p50 / quiet.p50,
        flooded.p99 / quiet.p99
    );
}
