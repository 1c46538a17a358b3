//! The bare references of `murmur bench relay`: rust-libp2p gossipsub with
//! murmur's relay settings and nothing of murmur's on the path, and the
//! same with every message archived through sqlx, for murmur's archiving
//! node.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use futures::{FutureExt as _, StreamExt};
use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance},
    identity::Keypair,
    noise,
    swarm::SwarmEvent,
    tcp, yamux, Swarm, SwarmBuilder,
};
use murmur_core::{Delivery, PubsubTopic, WakuMessage};
use murmur_storage::{Checkpoint, Growth};
use prost::Message as _;

use crate::{
    bench::{bench_topic, Progress, RelayArgs, Report, RUN_LIMIT, SETUP},
    error::CliError,
};

/// Messages the archiving reference gathers into one transaction: what
/// its receiver's swarm hands over at once, at most this many, and what
/// queued for a writer while it wrote, until it holds this many or more.
/// murmur's group commit takes up to 1,000 at once; with 256 in flight
/// (the default window) it never gathers more than that.
const ARCHIVE_BATCH: usize = 256;

/// Where a bare writer is handed what it archives, a batch at a time.
type Batches = tokio::sync::mpsc::Sender<Vec<WakuMessage>>;

/// A bare composition's SQLite database with murmur's schema, written as
/// murmur's storage stage writes, so that the reference is tuned as murmur
/// is: on one connection held for the run (murmur's writer keeps its own),
/// each transaction's statements sent with their `BEGIN` and `COMMIT` as
/// one request, the WAL checkpointed beside the writes (a passive checkpoint each time
/// about [`Checkpoint::EVERY`] bytes were committed), the commits' own
/// checkpoints only past [`Checkpoint::BACKSTOP`] pages.
pub(crate) struct Bare {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    /// What it committed since the last checkpoint it asked for.
    growth: Arc<Growth>,
    /// The storage stage's checkpoints beside the writes
    /// ([`murmur_storage::checkpoint_beside`]), stopped with it.
    checkpoints: tokio::task::JoinHandle<()>,
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

impl Bare {
    /// Opens (creating) `path`.
    pub(crate) async fn open(path: &std::path::Path) -> Result<Self, CliError> {
        let db = murmur_storage::Database::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(|e| CliError::Node(e.into()))?;
        Self::on(db).await
    }

    /// On `db`, a SQLite database.
    pub(crate) async fn on(db: murmur_storage::Database) -> Result<Self, CliError> {
        let fail = |e: sqlx::Error| CliError::Failed(format!("bare sqlx: {e}"));
        let mut conn = db.pool().acquire().await.map_err(fail)?;
        let backstop = format!("PRAGMA wal_autocheckpoint = {}", Checkpoint::BACKSTOP);
        sqlx::query(&backstop)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        let growth = Arc::<Growth>::default();
        let checkpoints = tokio::spawn(murmur_storage::checkpoint_beside(
            db,
            growth.clone(),
            murmur_storage::Metrics::default(),
        ));
        Ok(Self {
            conn,
            growth,
            checkpoints,
        })
    }

    /// Runs `script` (its statements between `BEGIN;` and `COMMIT;`, as
    /// [`Bare::script`] makes it) as one request on the held connection;
    /// `bytes` count toward the next checkpoint.
    pub(crate) async fn commit<'q>(
        &mut self,
        script: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        bytes: usize,
    ) -> Result<(), CliError> {
        if let Err(e) = script.execute(&mut *self.conn).await {
            let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
            return Err(CliError::Failed(format!("bare sqlx: {e}")));
        }
        self.growth.add(bytes as u64);
        Ok(())
    }

    /// How many messages the archive holds.
    pub(crate) async fn archived(&mut self) -> Result<usize, CliError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut *self.conn)
            .await
            .map_err(|e| CliError::Failed(format!("bare sqlx: {e}")))?;
        usize::try_from(count).map_err(|e| CliError::Failed(e.to_string()))
    }

    /// One transaction's text: `statements` (with `?` placeholders) between
    /// `BEGIN;` and `COMMIT;`.
    pub(crate) fn script(statements: &[String]) -> String {
        let mut text = String::from("BEGIN;\n");
        for statement in statements {
            text.push_str(statement);
            text.push_str(";\n");
        }
        text.push_str("COMMIT;");
        text
    }
}

/// Archives `batch` as murmur's archive does: by hash, 100 rows an insert,
/// one transaction.
pub(crate) async fn archive_batch(
    db: &mut Bare,
    pubsub: &PubsubTopic,
    batch: &[WakuMessage],
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    let inserts: Vec<String> = batch
        .chunks(100)
        .map(|chunk| murmur_storage::archive_insert(chunk.len(), true))
        .collect();
    let text = Bare::script(&inserts);
    let mut q = sqlx::query(&text);
    let (now, mut bytes) = (murmur_core::now_nanos(), 0);
    for m in batch {
        let delivery = Delivery::new(pubsub.clone(), m.clone());
        q = q
            .bind(delivery.hash.as_bytes().to_vec())
            .bind(pubsub.as_str().to_owned())
            .bind(m.content_topic.clone())
            .bind(m.timestamp.unwrap_or(0))
            .bind(m.encode_to_vec())
            .bind(now);
        bytes += m.encoded_len() + Checkpoint::ROW;
    }
    db.commit(q, bytes).await
}

pub(crate) fn bare_swarm() -> Result<Swarm<gossipsub::Behaviour>, CliError> {
    let fail = |e: String| CliError::Failed(format!("bare gossipsub: {e}"));
    Ok(
        SwarmBuilder::with_existing_identity(Keypair::generate_secp256k1())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                (yamux::Config::default, libp2p_mplex::Config::default),
            )
            .map_err(|e| fail(e.to_string()))?
            // murmur's relay exactly: its configuration and nwaku's peer scoring.
            .with_behaviour(|_| murmur_transport::relay_behaviour().map_err(Box::from))
            .map_err(|e| fail(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build(),
    )
}

/// Starts `future` now on a thread of its own with a current-thread runtime,
/// as murmur runs each node's swarm; the result arrives when it is done.
pub(crate) fn on_own_thread<F, T>(
    name: &'static str,
    future: F,
) -> impl std::future::Future<Output = Result<T, CliError>>
where
    F: std::future::Future<Output = Result<T, CliError>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(CliError::Io)
                .and_then(|rt| rt.block_on(future));
            let _ = tx.send(result);
        });
    async move {
        spawned?;
        rx.await
            .map_err(|_| CliError::Failed(format!("{name} thread died")))?
    }
}

/// A bare writer on a thread of its own, as murmur's storage stage has one
/// (the swarm goes on while a batch is written). It archives what it is
/// handed into a new database, in one transaction with whatever piled up
/// while it wrote the batch before (as murmur's group commit takes what is
/// queued), until that holds [`ARCHIVE_BATCH`] messages or more; then it
/// hands what it wrote to `then`.
struct Archiver {
    batches: Batches,
    done: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + Send>>,
    /// What found the writer's queue full, to go with the next batch.
    waiting: Vec<WakuMessage>,
}

impl Archiver {
    fn start(
        name: &'static str,
        file: std::path::PathBuf,
        pubsub: PubsubTopic,
        then: impl Fn(Vec<WakuMessage>) + Send + 'static,
    ) -> Self {
        let (batches, mut queue) = tokio::sync::mpsc::channel::<Vec<WakuMessage>>(16);
        let done = on_own_thread(name, async move {
            let mut db = Bare::open(&file).await?;
            while let Some(mut batch) = queue.recv().await {
                while batch.len() < ARCHIVE_BATCH {
                    match queue.try_recv() {
                        Ok(more) => batch.extend(more),
                        Err(_) => break,
                    }
                }
                archive_batch(&mut db, &pubsub, &batch).await?;
                then(batch);
            }
            Ok(())
        });
        Self {
            batches,
            done: Box::pin(done),
            waiting: Vec::new(),
        }
    }

    /// Hands `batch` over, waiting for room in the writer's queue.
    async fn hand(&mut self, batch: Vec<WakuMessage>) -> Result<(), CliError> {
        match self.batches.send(batch).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure().await),
        }
    }

    /// Hands `batch` over without waiting: what finds the queue full goes
    /// with the next.
    async fn offer(&mut self, batch: Vec<WakuMessage>) -> Result<(), CliError> {
        self.waiting.extend(batch);
        if self.waiting.is_empty() {
            return Ok(());
        }
        match self.batches.try_send(std::mem::take(&mut self.waiting)) {
            Ok(()) => Ok(()),
            Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                self.waiting = back;
                Ok(())
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(self.failure().await),
        }
    }

    /// Why the writer stopped before it was told to.
    async fn failure(&mut self) -> CliError {
        match (&mut self.done).await {
            Err(e) => e,
            Ok(()) => CliError::Failed("an archive writer stopped early".to_owned()),
        }
    }

    /// Hands over what still waits and waits until all of it is written.
    async fn finish(mut self) -> Result<(), CliError> {
        let waiting = std::mem::take(&mut self.waiting);
        if !waiting.is_empty() {
            self.hand(waiting).await?;
        }
        let Self { batches, done, .. } = self;
        drop(batches);
        done.await
    }
}

/// Two bare gossipsub swarms with murmur's relay settings, each on its own
/// thread like murmur's, carrying the same WakuMessage bytes; the receiver
/// accepts each message after decoding it to read the send time. With
/// `archive`, the reference for murmur's archiving node, where both nodes
/// archive: the receiver hands what arrived at once (at most
/// [`ARCHIVE_BATCH`]) to a writer of its own, which archives it into SQLite
/// with murmur's schema ([`Archiver`]), and counts it only then, as murmur
/// archives before it delivers; the sender hands what each turn of its loop published to a
/// writer of its own (without waiting: what finds its queue full goes with
/// the next turn's), which archives it into a database of its own beside
/// the swarm, as murmur's sender archives what the network took.
pub(crate) async fn bare_gossipsub(args: &RelayArgs, archive: bool) -> Result<Report, CliError> {
    let (content, pubsub) = bench_topic()?;
    let topic = IdentTopic::new(pubsub.as_str());
    let progress = Progress::new();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let n = args.messages;
    let data = tempfile::tempdir()?;
    let archive = archive.then(|| data.path().to_owned());
    let receiving = {
        let progress = progress.clone();
        let topic = topic.clone();
        let (pubsub, archive) = (pubsub.clone(), archive.clone());
        on_own_thread("bare-receiver", async move {
            let fail = |e: String| CliError::Failed(format!("bare gossipsub: {e}"));
            let mut receiver = subscribed(&[&topic])?;
            receiver
                .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"))
                .map_err(|e| fail(e.to_string()))?;
            let mut addr_tx = Some(addr_tx);
            let mut writer = archive.map(|dir| {
                let progress = progress.clone();
                Archiver::start(
                    "bare-archiver",
                    dir.join("receiver.db"),
                    pubsub,
                    move |batch| {
                        for m in batch {
                            progress.record(&m.payload);
                        }
                    },
                )
            });
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            // Without an archive each message counts at once, as before;
            // with one, what is ready goes in one write.
            let most = if writer.is_some() { ARCHIVE_BATCH } else { 1 };
            let mut taken = 0;
            while taken < n {
                let ready = events(&mut receiver, deadline, most).await?;
                for event in &ready {
                    if let SwarmEvent::NewListenAddr { address, .. } = event {
                        if let Some(tx) = addr_tx.take() {
                            let _ = tx.send(address.clone());
                        }
                    }
                }
                let batch: Vec<WakuMessage> = messages(&mut receiver, ready)
                    .iter()
                    .filter_map(|data| WakuMessage::decode(data.as_slice()).ok())
                    .collect();
                taken += batch.len();
                match &mut writer {
                    Some(writer) if !batch.is_empty() => writer.hand(batch).await?,
                    Some(_) => {}
                    None => {
                        for m in &batch {
                            progress.record(&m.payload);
                        }
                    }
                }
            }
            if let Some(writer) = writer {
                writer.finish().await?;
            }
            Ok(())
        })
    };
    let addr = addr_rx
        .await
        .map_err(|_| CliError::Failed("bare receiver did not listen".to_owned()))?;
    let window = args.window;
    let size = args.size;
    let publishing = {
        let progress = progress.clone();
        let archive = archive.map(|dir| dir.join("sender.db"));
        on_own_thread("bare-publisher", async move {
            let fail = |e: String| CliError::Failed(format!("bare gossipsub: {e}"));
            // What an archiving node publishes it archives too, after the
            // network took it, beside the swarm (murmur's sender does).
            let mut writer =
                archive.map(|file| Archiver::start("bare-sender-archiver", file, pubsub, drop));
            let mut publisher = subscribed(&[&topic])?;
            publisher.dial(addr).map_err(|e| fail(e.to_string()))?;
            let deadline = tokio::time::Instant::now() + SETUP;
            while publisher.behaviour().mesh_peers(&topic.hash()).count() == 0 {
                tokio::time::timeout_at(deadline, publisher.select_next_some())
                    .await
                    .map_err(|_| fail("no mesh within 20 s".to_owned()))?;
            }
            let first_send = Instant::now();
            let run_deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let mut sent = 0;
            while progress.received.load(Ordering::Acquire) < n {
                let mut published = Vec::new();
                while sent < n && progress.in_flight(sent) < window {
                    let message = WakuMessage::new(content.as_str(), progress.payload(sent, size))
                        .with_timestamp(murmur_core::now_nanos());
                    match publisher
                        .behaviour_mut()
                        .publish(topic.clone(), message.encode_to_vec())
                    {
                        Ok(_) => {
                            sent += 1;
                            published.push(message);
                        }
                        // The send queue is full: let the swarm drain it.
                        Err(gossipsub::PublishError::AllQueuesFull(_)) => break,
                        Err(e) => return Err(fail(e.to_string())),
                    }
                }
                if let Some(writer) = &mut writer {
                    writer.offer(published).await?;
                }
                tokio::select! {
                    _ = publisher.select_next_some() => {}
                    () = progress.notify.notified() => {}
                    () = tokio::time::sleep_until(run_deadline) => {
                        return Err(fail("timed out".to_owned()));
                    }
                }
            }
            if let Some(writer) = writer {
                writer.finish().await?;
            }
            Ok(first_send)
        })
    };
    let first_send = publishing.await?;
    receiving.await?;
    Ok(progress.report(first_send))
}

/// A bare swarm subscribed to `topics`, listening on a loopback port.
pub(crate) fn listening(topics: &[&IdentTopic]) -> Result<Swarm<gossipsub::Behaviour>, CliError> {
    let mut swarm = subscribed(topics)?;
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"))
        .map_err(|e| CliError::Failed(format!("bare listen: {e}")))?;
    Ok(swarm)
}

/// Hands the first address among `events` the swarm listens on to `tx`.
pub(crate) fn tell_address(
    events: &[SwarmEvent<gossipsub::Event>],
    tx: &mut Option<tokio::sync::oneshot::Sender<libp2p::Multiaddr>>,
) {
    for event in events {
        if let SwarmEvent::NewListenAddr { address, .. } = event {
            if let Some(tx) = tx.take() {
                let _ = tx.send(address.clone());
            }
        }
    }
}

pub(crate) fn subscribed(topics: &[&IdentTopic]) -> Result<Swarm<gossipsub::Behaviour>, CliError> {
    let mut swarm = bare_swarm()?;
    for topic in topics {
        swarm
            .behaviour_mut()
            .subscribe(topic)
            .map_err(|e| CliError::Failed(format!("bare subscribe: {e}")))?;
    }
    Ok(swarm)
}

/// Waits for the swarm's next event, then takes every one that is ready
/// too, up to `max` in all.
pub(crate) async fn events(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    deadline: tokio::time::Instant,
    max: usize,
) -> Result<Vec<SwarmEvent<gossipsub::Event>>, CliError> {
    let first = tokio::time::timeout_at(deadline, swarm.select_next_some())
        .await
        .map_err(|_| CliError::Failed("bare run timed out".to_owned()))?;
    let mut events = vec![first];
    while events.len() < max {
        match swarm.select_next_some().now_or_never() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    Ok(events)
}

/// The messages among `events`, accepted for relay.
pub(crate) fn messages(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    events: Vec<SwarmEvent<gossipsub::Event>>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for event in events {
        if let SwarmEvent::Behaviour(gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        }) = event
        {
            swarm.behaviour_mut().report_message_validation_result(
                &message_id,
                &propagation_source,
                MessageAcceptance::Accept,
            );
            out.push(message.data);
        }
    }
    out
}
