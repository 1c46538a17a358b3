//! One participant's view of a channel: what it sent and delivered, in
//! causal order, what it still needs, what others acknowledged.

use std::collections::{BTreeMap, HashSet, VecDeque};

use murmur_proto::sds::{HistoryEntry, Message};

use crate::{
    bloom::Filter,
    repair::{self, Repairs, Timing},
    Error,
};

mod receive;

/// How a channel behaves. The defaults are js-waku's where it has one;
/// build one with `..Config::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Recent messages each message names as its causal history (200).
    pub causal_history: usize,
    /// Filter hits that make a message acknowledged (2); the first ones
    /// make it possibly acknowledged.
    pub ack_threshold: u32,
    /// Messages remembered, to order and to drop repeats (2,000): an older
    /// message seen again is dropped if the filter has it.
    pub remember: usize,
    /// Messages held back for a missing dependency (512): past that, the
    /// oldest is delivered with its gaps named, never dropped.
    pub max_buffered: usize,
    /// Missing dependencies tracked (1,024).
    pub max_missing: usize,
    /// How long a message waits for its dependencies before it is
    /// delivered with its gaps named (ms; 120 s).
    pub lost_after: u64,
    /// Unacknowledged messages are sent again this often (ms; 30 s).
    pub resend_every: u64,
    /// And this many times at most (10).
    pub max_resends: u32,
    /// A sync message goes out at a random time within this of the last
    /// one (ms; 30 s; sooner after content arrives, to acknowledge it;
    /// 0 sends none).
    pub sync_every: u64,
    /// Messages whose bytes are kept to answer repair requests (256).
    pub answerable: usize,
    /// SDS-R timing.
    pub repair: Timing,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            causal_history: 200,
            ack_threshold: 2,
            remember: 2_000,
            max_buffered: 512,
            max_missing: 1_024,
            lost_after: 120_000,
            resend_every: 30_000,
            max_resends: 10,
            sync_every: 30_000,
            answerable: 256,
            repair: Timing::default(),
        }
    }
}

/// A message delivered to the application, in causal order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Its id (lowercase hex SHA-256 of the content): stable everywhere.
    pub id: String,
    /// Its author.
    pub sender: String,
    /// Its lamport timestamp.
    pub lamport: u64,
    /// What the author sent.
    pub content: Vec<u8>,
    /// Messages it depends on that never came within
    /// [`Config::lost_after`]: delivered without them.
    pub gaps: Vec<HistoryEntry>,
}

/// What happened on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message for the application.
    Delivered(Delivered),
    /// Another participant has this one's message.
    Acknowledged(String),
    /// A filter says another participant may have it (`count` times).
    PossiblyAcknowledged {
        /// The message.
        id: String,
        /// Filters that said so.
        count: u32,
    },
    /// Messages named as dependencies that this participant lacks: fetch
    /// them (from store, by the hint).
    Missing(Vec<HistoryEntry>),
    /// A dependency that never came.
    Lost(HistoryEntry),
    /// One of this participant's messages was sent as often as it may be
    /// and nobody acknowledged it.
    Unacknowledged(String),
    /// An ephemeral message: neither ordered nor acknowledged.
    Ephemeral {
        /// Its author.
        sender: String,
        /// Its content.
        content: Vec<u8>,
    },
}

/// What [`Channel::tick`] wants done.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Tick {
    /// Messages to publish again: unacknowledged ones, and answers to
    /// repair requests. Call [`Channel::sent`] for the ones with content
    /// once published.
    pub publish: Vec<Message>,
    /// A sync message, when one is due.
    pub sync: Option<Message>,
    /// What happened.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
struct Logged {
    entry: HistoryEntry,
    lamport: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    message: Message,
    last_sent: Option<u64>,
    sends: u32,
    possible_acks: u32,
}

#[derive(Debug, Clone)]
struct Buffered {
    message: Message,
    hint: Option<Vec<u8>>,
    since: u64,
}

/// A participant in one channel, without I/O: messages in, events and
/// messages to publish out. Time is milliseconds since the epoch, given by
/// the caller.
#[derive(Debug)]
pub struct Channel {
    id: String,
    me: String,
    config: Config,
    lamport: u64,
    /// Sent and delivered messages, by (lamport, id).
    log: VecDeque<Logged>,
    known: HashSet<String>,
    filter: Filter,
    outgoing: BTreeMap<String, Pending>,
    incoming: BTreeMap<String, Buffered>,
    missing: BTreeMap<String, (HistoryEntry, u64)>,
    /// Encoded messages, newest last, to answer repair requests.
    answerable: VecDeque<(String, Message)>,
    repairs: Repairs,
    next_sync: Option<u64>,
    /// Changed since [`Channel::take_changed`] last said so.
    dirty: bool,
}

/// The id of a message with this content.
pub fn message_id(content: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(content))
}

impl Channel {
    /// Joins channel `id` as `me`, at `now`.
    pub fn new(id: impl Into<String>, me: impl Into<String>, config: Config, now: u64) -> Self {
        let next_sync = (config.sync_every > 0).then(|| now + random_below(config.sync_every));
        Self {
            id: id.into(),
            me: me.into(),
            config,
            lamport: now,
            log: VecDeque::new(),
            known: HashSet::new(),
            filter: Filter::default(),
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            missing: BTreeMap::new(),
            answerable: VecDeque::new(),
            repairs: Repairs::default(),
            next_sync,
            dirty: false,
        }
    }

    /// The channel's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This participant's sender id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Messages sent and not acknowledged yet.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &str> {
        self.outgoing.keys().map(String::as_str)
    }

    /// Dependencies missing now: what to fetch.
    pub fn missing(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.missing.values().map(|(entry, _)| entry)
    }

    /// Messages held back for a dependency.
    pub fn buffered(&self) -> usize {
        self.incoming.len()
    }

    fn tick_lamport(&mut self, now: u64) -> u64 {
        self.lamport = self.lamport.saturating_add(1).max(now);
        self.lamport
    }

    fn history(&self) -> Vec<HistoryEntry> {
        let skip = self.log.len().saturating_sub(self.config.causal_history);
        self.log
            .iter()
            .skip(skip)
            .map(|l| l.entry.clone())
            .collect()
    }

    /// A content message for `content`, to publish; then call
    /// [`Channel::sent`] with the hash it went in. Sending what is still
    /// unacknowledged gives the same message again (same id: the same
    /// content is the same message).
    pub fn send(&mut self, content: &[u8], now: u64) -> Result<Message, Error> {
        if content.is_empty() {
            return Err(Error::Empty);
        }
        let id = message_id(content);
        if let Some(pending) = self.outgoing.get(&id) {
            return Ok(pending.message.clone());
        }
        if self.known.contains(&id) {
            return Err(Error::Repeated(id));
        }
        let lamport = self.tick_lamport(now);
        let message = Message {
            sender_id: self.me.clone(),
            message_id: id.clone(),
            channel_id: self.id.clone(),
            lamport_timestamp: Some(lamport),
            causal_history: self.history(),
            bloom_filter: Some(self.filter.to_bytes()),
            repair_request: self.repairs.take_requests(now),
            content: Some(content.to_vec()),
        };
        self.outgoing.insert(
            id,
            Pending {
                message: message.clone(),
                last_sent: None,
                sends: 0,
                possible_acks: 0,
            },
        );
        self.dirty = true;
        Ok(message)
    }

    /// A message of this participant went out in the Waku message with
    /// hash `hint`: it enters the history others are told of.
    pub fn sent(&mut self, id: &str, hint: Option<Vec<u8>>, now: u64) {
        let Some(pending) = self.outgoing.get_mut(id) else {
            return;
        };
        pending.last_sent = Some(now);
        pending.sends += 1;
        self.dirty = true;
        let message = pending.message.clone();
        if let Some(logged) = self.log.iter_mut().find(|l| l.entry.message_id == id) {
            // Sent again: the newest copy is the one to fetch.
            if hint.is_some() {
                logged.entry.retrieval_hint = hint;
            }
            return;
        }
        self.filter.insert(id);
        self.remember(
            HistoryEntry {
                message_id: id.to_owned(),
                retrieval_hint: hint,
                sender_id: Some(self.me.clone()),
            },
            message.lamport_timestamp.unwrap_or_default(),
            message,
        );
        if self.config.sync_every > 0 {
            self.next_sync = Some(now + random_below(self.config.sync_every));
        }
    }

    /// A sync message, if there is anything to sync: this participant's
    /// history, filter and repair requests, no content.
    pub fn sync(&mut self, now: u64) -> Option<Message> {
        let repair_request = self.repairs.take_requests(now);
        if self.log.is_empty() && repair_request.is_empty() {
            return None;
        }
        let lamport = self.tick_lamport(now);
        Some(Message {
            sender_id: self.me.clone(),
            message_id: format!("sync-{:016x}", rand::random::<u64>()),
            channel_id: self.id.clone(),
            lamport_timestamp: Some(lamport),
            causal_history: self.history(),
            bloom_filter: Some(self.filter.to_bytes()),
            repair_request,
            content: None,
        })
    }

    /// An ephemeral message: delivered to whoever is there, not ordered,
    /// acknowledged or repaired.
    pub fn ephemeral(&self, content: &[u8]) -> Result<Message, Error> {
        if content.is_empty() {
            return Err(Error::Empty);
        }
        Ok(Message {
            sender_id: self.me.clone(),
            message_id: message_id(content),
            channel_id: self.id.clone(),
            content: Some(content.to_vec()),
            ..Default::default()
        })
    }

    /// Time passes: what is due (resends, repair answers, a sync) and what
    /// gave up waiting.
    pub fn tick(&mut self, now: u64) -> Tick {
        let tick = self.tick_inner(now);
        if !tick.publish.is_empty() || tick.sync.is_some() || !tick.events.is_empty() {
            self.dirty = true;
        }
        tick
    }

    fn tick_inner(&mut self, now: u64) -> Tick {
        let mut tick = Tick::default();
        // Held back too long: delivered with the gaps named.
        let stale: Vec<String> = self
            .incoming
            .iter()
            .filter(|(_, b)| now >= b.since + self.config.lost_after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.release(&id, &mut tick.events);
        }
        self.deliver_ready(now, &mut tick.events);
        let lost: Vec<String> = self
            .missing
            .iter()
            .filter(|(_, (_, since))| now >= since + self.config.lost_after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            if let Some((entry, _)) = self.missing.remove(&id) {
                self.repairs.arrived(&id);
                tick.events.push(Event::Lost(entry));
            }
        }
        let mut given_up = Vec::new();
        for (id, pending) in &mut self.outgoing {
            let Some(last) = pending.last_sent else {
                continue;
            };
            if now < last + self.config.resend_every {
                continue;
            }
            if pending.sends > self.config.max_resends {
                given_up.push(id.clone());
            } else {
                tick.publish.push(pending.message.clone());
            }
        }
        for id in given_up {
            self.outgoing.remove(&id);
            tick.events.push(Event::Unacknowledged(id));
        }
        for id in self
            .repairs
            .take_answers(now, self.config.repair, ANSWERS_PER_TICK)
        {
            if let Some((_, message)) = self.answerable.iter().find(|(a, _)| *a == id) {
                tick.publish.push(message.clone());
            }
        }
        if self.next_sync.is_some_and(|at| at <= now) {
            tick.sync = self.sync(now);
            self.next_sync = Some(now + random_below(self.config.sync_every.saturating_mul(2)));
        }
        tick
    }

    /// Whether anything worth saving changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Gives up a message [`Channel::send`] made that could not be
    /// published at all (refused, too large): it is neither sent again nor
    /// named, and the same content may be sent again.
    pub fn cancel(&mut self, id: &str) {
        if let Some(pending) = self.outgoing.get(id) {
            if pending.sends == 0 {
                self.outgoing.remove(id);
            }
        }
    }

    /// Whether `id`, one of this participant's, waits for acknowledgement.
    pub fn is_pending(&self, id: &str) -> bool {
        self.outgoing.contains_key(id)
    }

    pub(crate) fn parts(&self) -> crate::state::Parts<'_> {
        crate::state::Parts {
            lamport: self.lamport,
            log: self.log.iter().map(|l| (&l.entry, l.lamport)).collect(),
            filter: &self.filter,
            outgoing: self
                .outgoing
                .values()
                .map(|p| (&p.message, p.sends))
                .collect(),
            incoming: self
                .incoming
                .values()
                .map(|b| (&b.message, b.hint.as_deref()))
                .collect(),
        }
    }

    pub(crate) fn restore_parts(&mut self, restored: crate::state::Restored, now: u64) {
        self.lamport = self.lamport.max(restored.lamport);
        self.filter = restored.filter;
        for (entry, lamport) in restored.log {
            self.known.insert(entry.message_id.clone());
            self.log.push_back(Logged { entry, lamport });
        }
        for (message, sends) in restored.outgoing {
            self.outgoing.insert(
                message.message_id.clone(),
                Pending {
                    message,
                    // Due for a resend at once: nobody knows how long it
                    // was down.
                    last_sent: (sends > 0).then_some(0),
                    sends,
                    possible_acks: 0,
                },
            );
        }
        for (message, hint) in restored.incoming {
            for entry in &message.causal_history {
                if !self.known.contains(&entry.message_id) {
                    self.missing
                        .insert(entry.message_id.clone(), (entry.clone(), now));
                    self.repairs
                        .missing(&self.me, entry, now, self.config.repair);
                }
            }
            self.incoming.insert(
                message.message_id.clone(),
                Buffered {
                    message,
                    hint,
                    since: now,
                },
            );
        }
    }

    /// Open SDS-R requests.
    pub fn repairs_open(&self) -> usize {
        self.repairs.open()
    }
}

/// Repair answers sent at one tick at most (the rest wait for the next).
const ANSWERS_PER_TICK: usize = 8;

/// A day, in milliseconds.
const DAY_MS: u64 = 24 * 3600 * 1000;

fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        0
    } else {
        rand::random::<u64>() % bound
    }
}

/// Requests a message carries at most.
pub const REPAIRS_PER_MESSAGE: usize = repair::PER_MESSAGE;
