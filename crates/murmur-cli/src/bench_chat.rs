//! `murmur bench chat`: encrypted 1:1 messages end to end between two
//! nodes as `murmur node` runs them (default configuration: archive on,
//! SQLite, every stage as shipped), beside a bare composition of the same
//! primitives in the same process: two rust-libp2p gossipsub swarms, a
//! Double Ratchet session of `murmur-crypto` used directly, and sqlx writes
//! of the messages and the session state in batches, with a receipt back
//! for every batch read at once, as murmur acknowledges what its lane read.
//!
//! Each message counts once it is in the recipient's inbox (opened,
//! persisted) and its receipt is back at the sender; the latency is from
//! the send to the inbox.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use actix::Arbiter;
use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::{
    gossipsub::{self, IdentTopic},
    Multiaddr, Swarm,
};
use murmur_crypto::{x3dh, Account, Ciphertext, Installation, Limits, PrekeyPolicy, Session};
use murmur_node::{chat::DeliveryState, Config};

use crate::{
    bench::{median, start_node, RUN_LIMIT, SETUP},
    bench_bare::{events, listening, messages, on_own_thread, subscribed, tell_address},
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
    if args.messages == 0 || args.window == 0 || args.rounds == 0 {
        return Err(CliError::Usage(
            "--messages, --window and --rounds must be at least 1".to_owned(),
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
    let mut rounds = Vec::with_capacity(args.rounds);
    let mut groups = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        progress.set(format!("chat benchmark, round {round} of {}", args.rounds));
        tracing::info!(round, "murmur run, default configuration");
        let murmur = murmur_run(&args).await?;
        tracing::info!(round, "bare run");
        let bare = bare_run(&args).await?;
        rounds.push((murmur, bare));
        if args.members >= 2 {
            tracing::info!(
                round,
                members = args.members,
                "group run, default configuration"
            );
            let murmur = crate::bench_group::murmur_run(&args, &others).await?;
            tracing::info!(round, "bare group run");
            let bare = crate::bench_group::bare_run(&args).await?;
            groups.push((murmur, bare));
        }
    }
    drop(progress);
    print(&args, &rounds, &groups);
    Ok(())
}

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
fn print(args: &Args, rounds: &[(Report, Report)], groups: &[(Report, Report)]) {
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
            "rounds": runs_json(rounds),
            "ratio_median": ratio(rounds),
        });
        if !groups.is_empty() {
            report["group"] = serde_json::json!({
                "members": args.members,
                "rounds": runs_json(groups),
                "ratio_median": ratio(groups),
                "vs_one_to_one_median": group_vs_one,
            });
        }
        println!("{report}");
        return;
    }
    println!(
        "encrypted 1:1, {} messages of {} bytes, {} in flight, {} rounds",
        args.messages,
        args.size,
        args.window,
        rounds.len()
    );
    table(rounds);
    if !groups.is_empty() {
        println!(
            "\nprivate group of {} members (2 online), {} messages of {} bytes, {} in flight",
            args.members, args.messages, args.size, args.window
        );
        table(groups);
        println!("group msg/s against 1:1 msg/s, median of the rounds: {group_vs_one:.2}");
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
async fn murmur_run(args: &Args) -> Result<Report, CliError> {
    let data = tempfile::tempdir()?;
    let config = |name: &str, peers: Vec<Multiaddr>| {
        let mut c = Config::new(data.path().join(name));
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
    sender.close().await?;
    receiver.close().await?;
    threads.0.stop();
    threads.1.stop();
    if read.is_none() {
        return Err(CliError::Failed("the inbox stopped".to_owned()));
    }
    clock.report(n, elapsed)
}

fn acknowledged(state: DeliveryState) -> Result<(), CliError> {
    match state {
        DeliveryState::Acknowledged { .. } => Ok(()),
        other => Err(CliError::Failed(format!(
            "a message was not acknowledged: {other:?}"
        ))),
    }
}

/// A session pair as X3DH leaves it, one message each way.
fn sessions() -> Result<(Session, Session), CliError> {
    let fail = |e: String| CliError::Failed(format!("bare sessions: {e}"));
    let now = murmur_core::now_nanos().unsigned_abs() / 1_000_000_000;
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
    let mut bob = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
    let mut a = x3dh::initiate(&alice, &bob.bundle(now), Limits::default())
        .map_err(|e| fail(e.to_string()))?;
    let Ciphertext::Prekey(init, m) = a.seal(b"hi").map_err(|e| fail(e.to_string()))? else {
        return Err(fail("the first message is not a prekey message".to_owned()));
    };
    let (mut b, _) =
        x3dh::respond(&mut bob, &init, &m, Limits::default()).map_err(|e| fail(e.to_string()))?;
    let answer = b.encrypt(b"ok").map_err(|e| fail(e.to_string()))?;
    a.decrypt(&answer).map_err(|e| fail(e.to_string()))?;
    Ok((a, b))
}

/// One side's SQLite database with the archive's schema.
pub(crate) async fn database(
    dir: &std::path::Path,
    name: &str,
) -> Result<murmur_storage::Database, CliError> {
    murmur_storage::Database::open(&format!(
        "sqlite://{}",
        dir.join(name).join("bare.db").display()
    ))
    .await
    .map_err(|e| CliError::Node(e.into()))
}

/// Writes `messages` (each its plaintext under a unique key) and the
/// session's (or chain's) state in one transaction.
pub(crate) async fn save(
    db: &murmur_storage::Database,
    messages: &[(Vec<u8>, Vec<u8>)],
    state: &[u8],
) -> Result<(), CliError> {
    let fail = |e: sqlx::Error| CliError::Failed(format!("bare sqlx: {e}"));
    let mut tx = db.pool().begin().await.map_err(fail)?;
    if !messages.is_empty() {
        let sql = format!(
            "INSERT INTO messages (hash, pubsub_topic, content_topic, timestamp, message, stored_at) VALUES {} ON CONFLICT (hash) DO NOTHING",
            murmur_storage::row_placeholders(messages.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        let now = murmur_core::now_nanos();
        for (hash, bytes) in messages {
            q = q
                .bind(hash.clone())
                .bind("bench")
                .bind("bench")
                .bind(now)
                .bind(bytes.clone())
                .bind(now);
        }
        q.execute(&mut *tx).await.map_err(fail)?;
    }
    sqlx::query(
        "INSERT INTO state (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind("session")
    .bind(state.to_vec())
    .bind(murmur_core::now_nanos())
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)
}

/// The same path with nothing of murmur's on it but the ratchet: the
/// receiver opens each message, writes it and the session's state (a batch
/// of what is ready at once per transaction), then seals and publishes one
/// receipt for the batch; the sender opens the receipts and writes its
/// session's state the same way.
async fn bare_run(args: &Args) -> Result<Report, CliError> {
    let data = Arc::new(tempfile::tempdir()?);
    let (sending, receiving) = sessions()?;
    let (there, back) = (
        IdentTopic::new("bench-messages"),
        IdentTopic::new("bench-receipts"),
    );
    let clock = Clock::new();
    let n = args.messages;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let receiver = {
        let (clock, data, there, back) = (clock.clone(), data.clone(), there.clone(), back.clone());
        on_own_thread("bare-chat-receiver", async move {
            let fail = |e: String| CliError::Failed(format!("bare receiver: {e}"));
            let db = database(data.path(), "receiver").await?;
            let mut session = receiving;
            let mut swarm = listening(&[&there, &back])?;
            let mut addr_tx = Some(addr_tx);
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let mut received = 0;
            while received < n {
                let ready = events(&mut swarm, deadline, BATCH).await?;
                tell_address(&ready, &mut addr_tx);
                let mut opened = Vec::new();
                for data in messages(&mut swarm, ready) {
                    let message = murmur_crypto::Message::from_bytes(&data)
                        .map_err(|e| fail(e.to_string()))?;
                    let text = session.decrypt(&message).map_err(|e| fail(e.to_string()))?;
                    // Its version and header: unique within the session.
                    let key = data[..data.len().min(1 + murmur_crypto::Header::LEN)].to_vec();
                    opened.push((key, text));
                }
                if opened.is_empty() {
                    continue;
                }
                save(&db, &opened, &session.to_bytes()).await?;
                // One receipt for the batch, as murmur sends one for what
                // its lane read at once: each message's first 8 bytes.
                let mut ids = Vec::with_capacity(8 * opened.len());
                for (_, text) in &opened {
                    clock.arrived(std::str::from_utf8(text).unwrap_or_default());
                    let mut id = [0u8; 8];
                    let k = 8.min(text.len());
                    id[..k].copy_from_slice(&text[..k]);
                    ids.extend_from_slice(&id);
                }
                let receipt = session.encrypt(&ids).map_err(|e| fail(e.to_string()))?;
                publish(&mut swarm, &back, receipt.to_bytes()).await?;
                save(&db, &[], &session.to_bytes()).await?;
                received += opened.len();
            }
            // The last receipts leave before the swarm goes.
            let linger = tokio::time::Instant::now() + Duration::from_millis(500);
            while tokio::time::timeout_at(linger, swarm.select_next_some())
                .await
                .is_ok()
            {}
            Ok(())
        })
    };
    let addr = addr_rx
        .await
        .map_err(|_| CliError::Failed("bare receiver did not listen".to_owned()))?;
    let (window, size) = (args.window, args.size);
    let sender = {
        let clock = clock.clone();
        on_own_thread("bare-chat-sender", async move {
            let fail = |e: String| CliError::Failed(format!("bare sender: {e}"));
            let db = database(data.path(), "sender").await?;
            let mut session = sending;
            let mut swarm = subscribed(&[&there, &back])?;
            swarm.dial(addr).map_err(|e| fail(e.to_string()))?;
            let setup = tokio::time::Instant::now() + SETUP;
            while swarm.behaviour().mesh_peers(&there.hash()).count() == 0
                || swarm.behaviour().mesh_peers(&back.hash()).count() == 0
            {
                tokio::time::timeout_at(setup, swarm.select_next_some())
                    .await
                    .map_err(|_| fail("no mesh within 20 s".to_owned()))?;
            }
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let (mut sent, mut acked) = (0, 0);
            while acked < n {
                let mut sealed = 0;
                while sent < n && sent - acked < window {
                    let message = session
                        .encrypt(clock.text(sent, size).as_bytes())
                        .map_err(|e| fail(e.to_string()))?;
                    publish(&mut swarm, &there, message.to_bytes()).await?;
                    sent += 1;
                    sealed += 1;
                }
                if sealed > 0 {
                    save(&db, &[], &session.to_bytes()).await?;
                }
                let ready = events(&mut swarm, deadline, BATCH).await?;
                let mut opened = 0;
                for data in messages(&mut swarm, ready) {
                    let receipt = murmur_crypto::Message::from_bytes(&data)
                        .map_err(|e| fail(e.to_string()))?;
                    opened += session
                        .decrypt(&receipt)
                        .map_err(|e| fail(e.to_string()))?
                        .len()
                        / 8;
                }
                if opened > 0 {
                    save(&db, &[], &session.to_bytes()).await?;
                    acked += opened;
                }
            }
            Ok(started.elapsed())
        })
    };
    let elapsed = sender.await?;
    receiver.await?;
    clock.report(n, elapsed)
}

/// Publishes `bytes` on `topic`, letting the swarm drain its queue while
/// it is full.
pub(crate) async fn publish(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    topic: &IdentTopic,
    bytes: Vec<u8>,
) -> Result<(), CliError> {
    loop {
        match swarm.behaviour_mut().publish(topic.clone(), bytes.clone()) {
            Ok(_) => return Ok(()),
            Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                let _ = swarm.select_next_some().await;
            }
            Err(e) => return Err(CliError::Failed(format!("bare publish: {e}"))),
        }
    }
}
