//! One participant's view of a channel: what it sent and delivered, in
//! causal order, what it still needs, what others acknowledged.

use std::collections::{BTreeMap, HashSet, VecDeque};

use murmur_proto::sds::{HistoryEntry, Kind, Message};
use prost::Message as _;

use crate::{
    bloom::Filter,
    repair::{self, Repairs, Timing},
    Error,
};

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

    /// A Waku payload came on the channel's topic, in the message with
    /// hash `hint`. Messages of other channels, and this participant's own,
    /// give no events.
    pub fn receive_bytes(
        &mut self,
        payload: &[u8],
        hint: Option<Vec<u8>>,
        now: u64,
    ) -> Result<Vec<Event>, Error> {
        let message = Message::decode(payload).map_err(|e| Error::Malformed(e.to_string()))?;
        self.receive(message, hint, now)
    }

    /// As [`Channel::receive_bytes`], decoded.
    pub fn receive(
        &mut self,
        mut message: Message,
        hint: Option<Vec<u8>>,
        now: u64,
    ) -> Result<Vec<Event>, Error> {
        if message.channel_id != self.id {
            return Ok(Vec::new());
        }
        // No honest participant names more (js-waku: 200 and 3); more is
        // only work an outsider makes for every participant.
        message.causal_history.truncate(self.config.causal_history);
        message.repair_request.truncate(repair::PER_MESSAGE);
        if message.sender_id == self.me
            && (message.kind() != Some(Kind::Content)
                || self.known.contains(&message.message_id)
                || self.outgoing.contains_key(&message.message_id))
        {
            // Its own echo. A content message of its own that it does not
            // know is from before it lost its state: others' messages
            // depend on it, so it is taken like anyone's (js-waku drops
            // it, and what depends on it waits for good).
            return Ok(Vec::new());
        }
        let kind = message.kind().ok_or(Error::Empty)?;
        let mut events = Vec::new();
        if kind != Kind::Sync {
            // The id is the content's hash: a message made up under a real
            // message's id must not take its place.
            let content = message.content.as_deref().unwrap_or_default();
            if message_id(content) != message.message_id {
                return Err(Error::WrongId(message.message_id));
            }
        }
        if kind == Kind::Ephemeral {
            events.push(Event::Ephemeral {
                sender: message.sender_id,
                content: message.content.unwrap_or_default(),
            });
            return Ok(events);
        }
        let id = message.message_id.clone();
        if kind == Kind::Content && self.incoming.contains_key(&id) && self.ready(&message) {
            // A copy held back for what it named, and now one that names
            // only what is here: the first may have been made up (the id
            // covers the content, not the history) to hold the real one
            // back. The one that can go, goes.
            self.incoming.remove(&id);
        }
        if kind == Kind::Content && self.seen(&message) {
            // A repeat (a resend, an answer to a repair, a replay): one
            // copy is enough, and an answer this one was to send is not
            // needed.
            self.repairs.arrived(&id);
            return Ok(events);
        }
        self.dirty = true;
        self.repairs.arrived(&id);
        if kind == Kind::Sync && self.config.sync_every > 0 {
            // Someone synced: this one need not for a while (as js-waku).
            self.next_sync = Some(now + random_below(self.config.sync_every));
        }
        let known = &self.known;
        let answerable = &self.answerable;
        self.repairs.requested(
            &self.me,
            &message.repair_request,
            |id| known.contains(id) && answerable.iter().any(|(a, _)| a == id),
            now,
            self.config.repair,
        );
        self.review_acks(&message, &mut events);
        if kind == Kind::Content {
            self.filter.insert(&id);
            self.missing.remove(&id);
            if self.config.sync_every > 0 {
                // Acknowledge soon.
                let soon = now + random_below(self.config.sync_every / 2 + 1);
                self.next_sync = Some(self.next_sync.map_or(soon, |at| at.min(soon)));
            }
        }
        let lacking: Vec<HistoryEntry> = message
            .causal_history
            .iter()
            .filter(|e| !self.has(&e.message_id) && e.message_id != id)
            .cloned()
            .collect();
        let new: Vec<HistoryEntry> = lacking
            .iter()
            .filter(|e| {
                !self.missing.contains_key(&e.message_id)
                    && !self.incoming.contains_key(&e.message_id)
            })
            .cloned()
            .collect();
        for entry in &new {
            if self.missing.len() >= self.config.max_missing {
                // Full: the longest missing goes, so that a flood of
                // made-up names cannot keep real gaps out for good.
                if let Some(oldest) = self
                    .missing
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(id, _)| id.clone())
                {
                    self.missing.remove(&oldest);
                }
            }
            self.missing
                .insert(entry.message_id.clone(), (entry.clone(), now));
            self.repairs
                .missing(&self.me, entry, now, self.config.repair);
        }
        if !new.is_empty() {
            events.push(Event::Missing(new));
        }
        if kind == Kind::Sync {
            return Ok(events);
        }
        if lacking.is_empty() {
            self.deliver(message, hint, Vec::new(), &mut events);
            self.deliver_ready(now, &mut events);
        } else {
            if self.incoming.len() >= self.config.max_buffered {
                // Full: the oldest goes to the application as it is
                // rather than be dropped.
                if let Some(oldest) = self
                    .incoming
                    .iter()
                    .min_by_key(|(_, b)| b.since)
                    .map(|(id, _)| id.clone())
                {
                    self.release(&oldest, &mut events);
                }
            }
            self.incoming.insert(
                id,
                Buffered {
                    message,
                    hint,
                    since: now,
                },
            );
        }
        Ok(events)
    }

    /// Whether a message named as a dependency is here: remembered, or,
    /// once the memory is full, in the filter (it may have been delivered
    /// and forgotten; a false yes, one in a thousand, delivers a message
    /// without waiting for that dependency).
    fn has(&self, id: &str) -> bool {
        self.known.contains(id)
            || (self.log.len() >= self.config.remember && self.filter.contains(id))
    }

    /// Whether everything `message` names is here.
    fn ready(&self, message: &Message) -> bool {
        message
            .causal_history
            .iter()
            .all(|e| self.has(&e.message_id))
    }

    /// Whether a content message was seen already: remembered, held back,
    /// or older than what is remembered and in the filter.
    fn seen(&self, message: &Message) -> bool {
        let id = &message.message_id;
        if self.known.contains(id) || self.incoming.contains_key(id) {
            return true;
        }
        let oldest = self.log.front().map(|l| l.lamport);
        self.log.len() >= self.config.remember
            && oldest.is_some_and(|o| message.lamport_timestamp.unwrap_or_default() < o)
            && self.filter.contains(id)
    }

    fn review_acks(&mut self, message: &Message, events: &mut Vec<Event>) {
        for entry in &message.causal_history {
            if self.outgoing.remove(&entry.message_id).is_some() {
                events.push(Event::Acknowledged(entry.message_id.clone()));
            }
        }
        let Some(filter) = message
            .bloom_filter
            .as_deref()
            .and_then(|b| Filter::from_bytes(b).ok())
            .filter(|f| !f.saturated())
        else {
            return;
        };
        let threshold = self.config.ack_threshold;
        self.outgoing.retain(|id, pending| {
            if pending.sends == 0 || !filter.contains(id) {
                return true;
            }
            pending.possible_acks += 1;
            if pending.possible_acks >= threshold {
                events.push(Event::Acknowledged(id.clone()));
                false
            } else {
                events.push(Event::PossiblyAcknowledged {
                    id: id.clone(),
                    count: pending.possible_acks,
                });
                true
            }
        });
    }

    fn deliver(
        &mut self,
        message: Message,
        hint: Option<Vec<u8>>,
        gaps: Vec<HistoryEntry>,
        events: &mut Vec<Event>,
    ) {
        let lamport = message.lamport_timestamp.unwrap_or_default();
        // A clock far ahead (made up, or a participant's clock) would
        // stamp every later message of this one's with it: followed only
        // up to a day past this one's own (which is at least its start).
        self.lamport = self
            .lamport
            .max(lamport.min(self.lamport.saturating_add(DAY_MS)));
        let delivered = Delivered {
            id: message.message_id.clone(),
            sender: message.sender_id.clone(),
            lamport,
            content: message.content.clone().unwrap_or_default(),
            gaps,
        };
        self.remember(
            HistoryEntry {
                message_id: message.message_id.clone(),
                retrieval_hint: hint,
                sender_id: Some(message.sender_id.clone()),
            },
            lamport,
            message,
        );
        events.push(Event::Delivered(delivered));
    }

    /// Delivers what was held back and now has every dependency, oldest
    /// first, until nothing more is ready.
    fn deliver_ready(&mut self, _now: u64, events: &mut Vec<Event>) {
        loop {
            let ready = self
                .incoming
                .iter()
                .filter(|(_, b)| self.ready(&b.message))
                .min_by_key(|(id, b)| (b.message.lamport_timestamp, (*id).clone()))
                .map(|(id, _)| id.clone());
            let Some(id) = ready else { return };
            let b = self.incoming.remove(&id).expect("just found");
            self.deliver(b.message, b.hint, Vec::new(), events);
        }
    }

    /// Delivers a held-back message now, naming what it still lacks.
    fn release(&mut self, id: &str, events: &mut Vec<Event>) {
        let Some(b) = self.incoming.remove(id) else {
            return;
        };
        let gaps: Vec<HistoryEntry> = b
            .message
            .causal_history
            .iter()
            .filter(|e| !self.has(&e.message_id))
            .cloned()
            .collect();
        self.deliver(b.message, b.hint, gaps, events);
    }

    fn remember(&mut self, entry: HistoryEntry, lamport: u64, message: Message) {
        let key = (lamport, entry.message_id.clone());
        let at = self
            .log
            .partition_point(|l| (l.lamport, &l.entry.message_id) < (key.0, &key.1));
        self.known.insert(entry.message_id.clone());
        self.missing.remove(&entry.message_id);
        self.answerable
            .push_back((entry.message_id.clone(), message));
        while self.answerable.len() > self.config.answerable {
            self.answerable.pop_front();
        }
        self.log.insert(at, Logged { entry, lamport });
        while self.log.len() > self.config.remember {
            if let Some(old) = self.log.pop_front() {
                self.known.remove(&old.entry.message_id);
            }
        }
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
