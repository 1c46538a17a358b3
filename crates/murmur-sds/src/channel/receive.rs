//! What arrives: order, acknowledgement, gaps, repeats.

use murmur_proto::sds::{HistoryEntry, Kind, Message};
use prost::Message as _;

use super::{message_id, random_below, Buffered, Channel, Delivered, Event, Logged, DAY_MS};
use crate::{bloom::Filter, repair, Error};

impl Channel {
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
    pub(super) fn has(&self, id: &str) -> bool {
        self.known.contains(id)
            || (self.log.len() >= self.config.remember && self.filter.contains(id))
    }

    /// Whether everything `message` names is here.
    pub(super) fn ready(&self, message: &Message) -> bool {
        message
            .causal_history
            .iter()
            .all(|e| self.has(&e.message_id))
    }

    /// Whether a content message was seen already: remembered, held back,
    /// or older than what is remembered and in the filter.
    pub(super) fn seen(&self, message: &Message) -> bool {
        let id = &message.message_id;
        if self.known.contains(id) || self.incoming.contains_key(id) {
            return true;
        }
        let oldest = self.log.front().map(|l| l.lamport);
        self.log.len() >= self.config.remember
            && oldest.is_some_and(|o| message.lamport_timestamp.unwrap_or_default() < o)
            && self.filter.contains(id)
    }

    pub(super) fn review_acks(&mut self, message: &Message, events: &mut Vec<Event>) {
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

    pub(super) fn deliver(
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
    pub(super) fn deliver_ready(&mut self, _now: u64, events: &mut Vec<Event>) {
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
    pub(super) fn release(&mut self, id: &str, events: &mut Vec<Event>) {
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

    pub(super) fn remember(&mut self, entry: HistoryEntry, lamport: u64, message: Message) {
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
}
