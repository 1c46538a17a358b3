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
//! - publishes through the outbox, so that a send never fails for want of
//!   a peer, and gives each message's Waku hash as its retrieval hint;
//! - fetches what the channel misses from store nodes by that hint (the
//!   store-sync stage's `FetchMissing`), every `fetch_every`;
//! - sends again what nobody acknowledged, answers repair requests, and
//!   sends sync messages, on the channel's clock.

use std::time::Duration;

use murmur_core::{
    sync::{CatchUp, FetchMissing},
    ContentTopic, Delivery, MessageHash, WakuMessage,
};
use murmur_sds::{Channel, Message};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::{Durable, Error, Node};

pub use murmur_sds::{Config, Delivered, Event};

/// Events queued for the application at most: a channel whose events are
/// not read stops reading the network (its messages wait in the archive).
const EVENTS: usize = 256;

/// How often the channel's clock is looked at.
const TICK: Duration = Duration::from_secs(1);

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
#[derive(Debug)]
pub struct Reliable {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
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
    /// content, as js-waku names it) once it is in the outbox. It is sent
    /// again until a participant acknowledges it ([`Event::Acknowledged`]).
    /// The same content is the same message: sending it again while it
    /// waits for an acknowledgement changes nothing, and afterwards is
    /// refused ([`murmur_sds::Error::Repeated`]).
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
    /// the channel or the node is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Saves the channel's state and stops it. (Dropping it stops it too,
    /// with the state as last saved: after every message.)
    pub async fn close(self) {
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
        let run = Run {
            node: self.clone(),
            options,
            key,
            channel,
            inbox,
            events: events_tx,
            fetches: 0,
        };
        actix::spawn(run.run(rx));
        Ok(Reliable { commands, events })
    }
}

/// The task behind a [`Reliable`].
struct Run {
    node: Node,
    options: Options,
    key: String,
    channel: Channel,
    inbox: Durable<Delivery>,
    events: mpsc::Sender<Event>,
    /// Fetch rounds in a row that found something still missing.
    fetches: u32,
}

impl Run {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut clock = tokio::time::interval(TICK);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_fetch = tokio::time::Instant::now();
        loop {
            // `Durable::recv` keeps what it read in the subscriber, so a
            // tick or command that wins the race loses nothing.
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send(content, reply)) => {
                        let _ = reply.send(self.send(&content).await);
                    }
                    Some(Command::Close(done)) => {
                        self.save().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                entry = self.inbox.recv() => {
                    let Some(entry) = entry else { return };
                    if !self.receive(entry.message).await {
                        return;
                    }
                    let state = vec![(self.key.clone(), Some(self.channel.save()))];
                    if let Err(e) = self.inbox.commit(entry.seq, state).await {
                        tracing::warn!(channel = %self.options.channel, error = %e, "reliable channel state not saved");
                    }
                }
                _ = clock.tick() => {
                    if !self.tick().await {
                        return;
                    }
                    if last_fetch.elapsed() >= self.options.fetch_every {
                        last_fetch = tokio::time::Instant::now();
                        self.fetch_missing().await;
                    }
                }
            }
        }
    }

    /// Hands events to the application; false once it is gone.
    async fn hand(&self, events: Vec<Event>) -> bool {
        for event in events {
            if self.events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn receive(&mut self, delivery: Delivery) -> bool {
        if delivery.message.content_topic != self.options.topic.as_str() {
            return true;
        }
        let hint = Some(delivery.hash.as_bytes().to_vec());
        match self
            .channel
            .receive_bytes(&delivery.message.payload, hint, now_ms())
        {
            Ok(events) => self.hand(events).await,
            Err(e) => {
                tracing::debug!(channel = %self.options.channel, hash = %delivery.hash, error = %e, "not an SDS message of this channel");
                true
            }
        }
    }

    async fn send(&mut self, content: &[u8]) -> Result<String, Error> {
        let message = self
            .channel
            .send(content, now_ms())
            .map_err(Error::Reliable)?;
        let id = message.message_id.clone();
        self.publish(&message).await?;
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
    /// up waiting. False once the application is gone.
    async fn tick(&mut self) -> bool {
        let tick = self.channel.tick(now_ms());
        let busy = !tick.publish.is_empty() || tick.sync.is_some() || !tick.events.is_empty();
        for message in tick.publish.iter().chain(tick.sync.iter()) {
            if let Err(e) = self.publish(message).await {
                tracing::debug!(channel = %self.options.channel, error = %e, "reliable channel message not published");
            }
        }
        if busy {
            self.save().await;
        }
        self.hand(tick.events).await
    }

    /// Asks store nodes for what the channel misses, by the hashes it was
    /// told; what comes back arrives through the subscriber.
    async fn fetch_missing(&mut self) {
        if self.channel.missing().next().is_none() {
            self.fetches = 0;
            return;
        }
        self.fetches += 1;
        if let Some(reread) = self
            .options
            .reread
            .filter(|_| self.fetches.is_multiple_of(3))
        {
            let since = murmur_core::now_nanos()
                .saturating_sub(i64::try_from(reread.as_nanos()).unwrap_or(i64::MAX));
            let pubsub = self.node.pubsub_topic(&self.options.topic);
            let read = CatchUp::new(pubsub, vec![self.options.topic.clone()]).since(Some(since));
            let catch_up = self.node.inner.sync.catch_up.clone();
            actix::spawn(async move {
                let _ = catch_up.send(read).await;
            });
        }
        let hashes: Vec<MessageHash> = self
            .channel
            .missing()
            .filter_map(|e| e.retrieval_hint.as_deref())
            .filter_map(|h| <[u8; 32]>::try_from(h).ok())
            .map(MessageHash)
            .take(100)
            .collect();
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

    async fn save(&self) {
        if let Err(e) = self
            .node
            .save_app_state(&self.key, Some(self.channel.save()))
            .await
        {
            tracing::warn!(channel = %self.options.channel, error = %e, "reliable channel state not saved");
        }
    }
}
