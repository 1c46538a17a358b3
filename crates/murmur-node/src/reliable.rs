//! Reliable channels: Scalable Data Sync ([`murmur_sds`]) on a plain
//! content topic, the same channel js-waku applications open with
//! `ReliableChannel` (`@waku/sdk` 0.0.36).
//!
//! The channel's messages travel unencrypted, as js-waku's do with a
//! version-0 encoder: seal the content first where it must stay private.
//! Each participant names itself (`sender`); keep the name across restarts,
//! as js-waku's documentation asks, or the others take it for a newcomer.
//!
//! What the node does for the channel, beside the [`murmur_sds::Channel`]
//! it runs:
//! - receives the topic through a durable subscriber, so that nothing that
//!   came while the application was away is missed, and saves the channel's
//!   state in the same transaction that moves the subscriber's position;
//! - publishes as `Node::publish` does (what the network does not take
//!   waits in the outbox), so that a send never fails for want of a peer,
//!   and gives each message's Waku hash as its retrieval hint;
//! - fetches what the channel misses from store nodes by that hint (the
//!   store-sync stage's `FetchMissing`), every `fetch_every`;
//! - sends again what nobody acknowledged, answers repair requests, and
//!   sends sync messages, on the channel's clock.

use std::time::Duration;

use murmur_core::{
    sync::{CatchUp, FetchMissing},
    ContentTopic, Delivery, MessageHash, WakuMessage,
};
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use murmur_sds::{Channel, Message};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::{Durable, Error, Node};

pub use murmur_sds::{Config, Delivered, Event};

/// Events queued for the application at most: a channel whose events are
/// not read stops reading the network (its messages wait in the archive).
const EVENTS: usize = 256;

/// How often the channel's clock is looked at.
const TICK: Duration = Duration::from_secs(1);

/// Hashes asked for in one fetch.
const FETCH: usize = 100;

/// The topic is read over `Options::reread` at most this often.
const REREAD_EVERY: Duration = Duration::from_secs(300);

/// What a reliable channel is and how it behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The content topic it travels on.
    pub topic: ContentTopic,
    /// The channel's id, shared by its participants.
    pub channel: String,
    /// This participant's name in it.
    pub sender: String,
    /// The SDS settings (js-waku's defaults).
    pub config: Config,
    /// Missing messages are asked of store nodes this often (js-waku: 10 s).
    pub fetch_every: Duration,
    /// When asking by hash finds a missing message three times running
    /// not, the topic is read from store nodes over this much of the past
    /// (1 hour; `None` never). js-waku 0.0.36 can name a hash of a copy it
    /// never sent (it stamps the message again between hashing and pushing
    /// it).
    pub reread: Option<Duration>,
}

impl Options {
    /// Channel `channel` on `topic`, as `sender`.
    pub fn new(topic: ContentTopic, channel: impl Into<String>, sender: impl Into<String>) -> Self {
        Self {
            topic,
            channel: channel.into(),
            sender: sender.into(),
            config: Config::default(),
            fetch_every: Duration::from_secs(10),
            reread: Some(Duration::from_secs(3600)),
        }
    }

    /// With these SDS settings.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Asking store nodes for missing messages this often.
    pub fn with_fetch_every(mut self, every: Duration) -> Self {
        self.fetch_every = every;
        self
    }

    /// Reading this much of the topic's past when hashes find nothing
    /// (`None`: never).
    pub fn with_reread(mut self, reread: Option<Duration>) -> Self {
        self.reread = reread;
        self
    }
}

enum Command {
    Send(Vec<u8>, oneshot::Sender<Result<String, Error>>),
    Close(oneshot::Sender<()>),
}

/// An open reliable channel: send into it, and read what happens on it.
///
/// Events come at least once: a message's place on the topic is saved
/// only once the application asked for the event after its own (as a bot
/// framework acknowledges a message when its handler returns); a process
/// that dies before that hands it again after a restart, with the same id.
#[derive(Debug)]
pub struct Reliable {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    /// Events received so far; what the runner reads as done once the
    /// application asks for the next.
    received: u64,
    done: Arc<AtomicU64>,
    asked: Arc<Notify>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Send(..) => "Send",
            Self::Close(_) => "Close",
        })
    }
}

impl Reliable {
    /// Sends `content`; answers its id (the lowercase hex SHA-256 of the
    /// content, as js-waku names it) once the network took it or it is in
    /// the outbox. It is sent again until a participant acknowledges it
    /// ([`Event::Acknowledged`]).
    /// The same content is the same message (another participant's too):
    /// sending it again while it waits for an acknowledgement sends it
    /// again (a resend, counted as one), and afterwards is refused
    /// ([`murmur_sds::Error::Repeated`]): add what tells them apart.
    pub async fn send(&self, content: impl Into<Vec<u8>>) -> Result<String, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Send(content.into(), tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The next event: a message delivered (in causal order), one of this
    /// participant's acknowledged, a gap, a message given up. `None` once
    /// the channel or the node is gone. Asking says the events before are
    /// done with.
    pub async fn recv(&mut self) -> Option<Event> {
        self.done.store(self.received, Ordering::Release);
        self.asked.notify_one();
        let event = self.events.recv().await;
        self.received += u64::from(event.is_some());
        event
    }

    /// The next event, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .ok()
            .flatten()
    }

    /// Saves the channel's state and stops it, the events received done
    /// with. (Dropping it stops it too, with the state as last saved; what
    /// was received and not followed by another `recv` comes again.)
    pub async fn close(self) {
        // Closing says the events received are done with.
        self.done.store(self.received, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(murmur_core::now_nanos() / 1_000_000).unwrap_or_default()
}

impl Node {
    /// Opens reliable channel `options.channel` on `options.topic` as
    /// `options.sender`, where this node left it last time (its state is
    /// kept in the node's database, under the channel and sender).
    pub async fn reliable_channel(&self, options: Options) -> Result<Reliable, Error> {
        let key = format!("sds/{}/{}", options.channel, options.sender);
        let now = now_ms();
        let channel = match self.load_app_state(&key).await? {
            Some(saved) => Channel::restore(
                options.channel.clone(),
                options.sender.clone(),
                options.config.clone(),
                &saved,
                now,
            )
            .map_err(|e| Error::Corrupt(format!("reliable channel {key}: {e}")))?,
            None => Channel::new(
                options.channel.clone(),
                options.sender.clone(),
                options.config.clone(),
                now,
            ),
        };
        let inbox = self.durable_subscribe(&key, [&options.topic]).await?;
        let (commands, rx) = mpsc::channel(16);
        let (events_tx, events) = mpsc::channel(EVENTS);
        let (done, asked) = (Arc::new(AtomicU64::new(0)), Arc::new(Notify::new()));
        let (entries, commits, finished) = read(inbox);
        let run = Run {
            node: self.clone(),
            options,
            key,
            channel,
            commits,
            events: events_tx,
            pending: VecDeque::new(),
            handed: 0,
            done: done.clone(),
            awaiting: None,
            fetches: 0,
            reread_at: None,
            fetch_from: 0,
        };
        actix::spawn(run.run(rx, entries, asked.clone(), finished));
        Ok(Reliable {
            commands,
            events,
            received: 0,
            done,
            asked,
        })
    }
}

/// What the topic's durable subscriber gave, and where it is told to
/// save its place (with the channel's state, if it changed).
type Entries = mpsc::Receiver<(u64, Delivery)>;
type Commits = mpsc::Sender<(u64, Option<Vec<u8>>)>;

/// Reads the durable subscriber in a task of its own, one entry at a time,
/// each committed before the next: `Durable::recv` is not safe to drop
/// half-way, as a `select!` would.
fn read(mut inbox: Durable<Delivery>) -> (Entries, Commits, oneshot::Receiver<()>) {
    let (entries_tx, entries) = mpsc::channel(1);
    let (commits, mut commits_rx) = mpsc::channel::<(u64, Option<Vec<u8>>)>(1);
    let (finished_tx, finished) = oneshot::channel::<()>();
    let key = inbox.name().to_owned();
    actix::spawn(async move {
        // Fires when this task ends, the subscriber let go.
        let _finished = finished_tx;
        loop {
            // Dropped half-way only when the channel is gone for good.
            let entry = tokio::select! {
                entry = inbox.recv() => entry,
                () = entries_tx.closed() => return,
            };
            let Some(entry) = entry else { return };
            if entries_tx.send((entry.seq, entry.message)).await.is_err() {
                return;
            }
            let Some((seq, state)) = commits_rx.recv().await else {
                return;
            };
            let state = state
                .map(|s| vec![(key.clone(), Some(s))])
                .unwrap_or_default();
            if let Err(e) = inbox.commit(seq, state).await {
                tracing::warn!(channel = %key, error = %e, "reliable channel state not saved");
            }
        }
    });
    (entries, commits, finished)
}

/// The task behind a [`Reliable`].
struct Run {
    node: Node,
    options: Options,
    key: String,
    channel: Channel,
    commits: Commits,
    events: mpsc::Sender<Event>,
    /// Events the application's queue had no room for yet.
    pending: VecDeque<Event>,
    /// Events made so far (in the queue or pending).
    handed: u64,
    /// Events the application is done with.
    done: Arc<AtomicU64>,
    /// An entry handled whose place is saved once the application is
    /// done with the events it made: its sequence and the events' end.
    awaiting: Option<(u64, u64)>,
    /// Fetch rounds in a row that found something still missing.
    fetches: u32,
    /// When the topic was last read over `reread`.
    reread_at: Option<tokio::time::Instant>,
    /// Where in the missing list the next fetch starts.
    fetch_from: usize,
}

impl Run {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut entries: Entries,
        asked: Arc<Notify>,
        finished: oneshot::Receiver<()>,
    ) {
        let mut clock = tokio::time::interval(TICK);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_fetch = tokio::time::Instant::now();
        loop {
            let events = self.events.clone();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send(content, reply)) => {
                        let _ = reply.send(self.send(&content).await);
                    }
                    Some(Command::Close(done)) => {
                        self.commit_if_done().await;
                        self.save().await;
                        // The reader commits, sees the channel gone, and
                        // lets the subscriber go before the answer.
                        drop(entries);
                        let _ = finished.await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                entry = entries.recv(), if self.awaiting.is_none() && self.pending.len() < EVENTS => {
                    let Some((seq, delivery)) = entry else { return };
                    self.receive(&delivery);
                    self.awaiting = Some((seq, self.handed));
                    if !self.commit_if_done().await {
                        return;
                    }
                }
                permit = events.reserve(), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { return };
                    if let Some(event) = self.pending.pop_front() {
                        permit.send(event);
                    }
                }
                () = asked.notified(), if self.awaiting.is_some() => {
                    if !self.commit_if_done().await {
                        return;
                    }
                }
                _ = clock.tick() => {
                    self.tick().await;
                    if last_fetch.elapsed() >= self.options.fetch_every {
                        last_fetch = tokio::time::Instant::now();
                        self.fetch_missing();
                    }
                }
            }
        }
    }

    /// Queues events for the application: never waits, so that commands
    /// are served while it does not read (the queue fills, and the topic
    /// is not read further until there is room).
    fn hand(&mut self, events: Vec<Event>) {
        for event in events {
            self.handed += 1;
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => self.pending.push_back(event),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Saves the awaited entry's place (with the channel's state) once the
    /// application is done with its events; false once the subscriber is
    /// gone.
    async fn commit_if_done(&mut self) -> bool {
        let Some((seq, through)) = self.awaiting else {
            return true;
        };
        if self.done.load(Ordering::Acquire) < through {
            return true;
        }
        self.awaiting = None;
        let state = self.channel.take_changed().then(|| self.channel.save());
        self.commits.send((seq, state)).await.is_ok()
    }

    fn receive(&mut self, delivery: &Delivery) {
        if delivery.message.content_topic != self.options.topic.as_str() {
            return;
        }
        let hint = Some(delivery.hash.as_bytes().to_vec());
        match self
            .channel
            .receive_bytes(&delivery.message.payload, hint, now_ms())
        {
            Ok(events) => self.hand(events),
            Err(e) => {
                tracing::debug!(channel = %self.options.channel, hash = %delivery.hash, error = %e, "not an SDS message of this channel");
            }
        }
    }

    async fn send(&mut self, content: &[u8]) -> Result<String, Error> {
        let message = self
            .channel
            .send(content, now_ms())
            .map_err(Error::Reliable)?;
        let id = message.message_id.clone();
        if let Err(e) = self.publish(&message).await {
            // Refused for good (too large, a hook): neither kept nor sent
            // again.
            self.channel.cancel(&id);
            return Err(e);
        }
        self.save().await;
        Ok(id)
    }

    /// Publishes an SDS message in a Waku message of its own; a content
    /// message then enters the channel's history with that message's hash.
    async fn publish(&mut self, message: &Message) -> Result<(), Error> {
        let waku = WakuMessage::new(self.options.topic.as_str(), message.encode_to_vec())
            .with_timestamp(murmur_core::now_nanos());
        let publication = self
            .node
            .publish(self.node.pubsub_topic(&self.options.topic), waku)
            .await?;
        if message.content.as_ref().is_some_and(|c| !c.is_empty())
            && message.lamport_timestamp.is_some()
            && message.sender_id == self.options.sender
        {
            let hint = publication.hash().as_bytes().to_vec();
            self.channel.sent(&message.message_id, Some(hint), now_ms());
        }
        Ok(())
    }

    /// The channel's clock: resends, repair answers, a sync, and what gave
    /// up waiting.
    async fn tick(&mut self) {
        let tick = self.channel.tick(now_ms());
        for message in tick.publish.iter().chain(tick.sync.iter()) {
            if let Err(e) = self.publish(message).await {
                tracing::debug!(channel = %self.options.channel, error = %e, "reliable channel message not published");
                // Tried: the next try waits as a resend would.
                if message.sender_id == self.options.sender {
                    self.channel.sent(&message.message_id, None, now_ms());
                }
            }
        }
        self.hand(tick.events);
        self.save().await;
    }

    /// Asks store nodes for what the channel misses, by the hashes it was
    /// told; what comes back arrives through the subscriber.
    fn fetch_missing(&mut self) {
        let missing = self.channel.missing().count();
        if missing == 0 {
            self.fetches = 0;
            return;
        }
        self.fetches += 1;
        let reread = self.options.reread.filter(|_| {
            self.fetches >= 3 && self.reread_at.is_none_or(|at| at.elapsed() >= REREAD_EVERY)
        });
        if let Some(reread) = reread {
            self.reread_at = Some(tokio::time::Instant::now());
            let since = murmur_core::now_nanos()
                .saturating_sub(i64::try_from(reread.as_nanos()).unwrap_or(i64::MAX));
            let pubsub = self.node.pubsub_topic(&self.options.topic);
            let read = CatchUp::new(pubsub, vec![self.options.topic.clone()]).since(Some(since));
            let catch_up = self.node.inner.sync.catch_up.clone();
            actix::spawn(async move {
                let _ = catch_up.send(read).await;
            });
        }
        // A hundred at a time, from a different place each round: names
        // that find nothing (made up, or not stored) do not keep the rest
        // from being asked for.
        let from = self.fetch_from % missing;
        let hashes: Vec<MessageHash> = self
            .channel
            .missing()
            .skip(from)
            .chain(self.channel.missing().take(from))
            .filter_map(|e| e.retrieval_hint.as_deref())
            .filter_map(|h| <[u8; 32]>::try_from(h).ok())
            .map(MessageHash)
            .take(FETCH)
            .collect();
        self.fetch_from = from + FETCH;
        if hashes.is_empty() {
            return;
        }
        let fetch = self.node.inner.sync.fetch_missing.clone();
        let channel = self.options.channel.clone();
        actix::spawn(async move {
            match fetch.send(FetchMissing(hashes)).await {
                Ok(Ok(n)) => tracing::debug!(%channel, fetched = n, "missing messages fetched"),
                Ok(Err(e)) => tracing::debug!(%channel, error = %e, "missing messages not fetched"),
                Err(_) => {}
            }
        });
    }

    /// Saves the channel's state if it changed, unless an entry's effects
    /// wait for the application: those are saved with the entry's place
    /// (saved before it, a crash would lose the entry's events).
    async fn save(&mut self) {
        if self.awaiting.is_some() || !self.channel.take_changed() {
            return;
        }
        if let Err(e) = self
            .node
            .save_app_state(&self.key, Some(self.channel.save()))
            .await
        {
            tracing::warn!(channel = %self.options.channel, error = %e, "reliable channel state not saved");
        }
    }
}
