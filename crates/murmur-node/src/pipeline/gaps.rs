//! A gap in a conversation, noticed from the next message (SDS's causal
//! history, inside the encryption): every chat message names its sender
//! device's last [`EARLIER`] messages in that conversation, with when each
//! was sent. A receiver that never got one of them reads the
//! conversation's topic (its own partition topic for 1:1, the group's
//! topic) from store nodes, from a minute before the earliest it lacks:
//! one topic over a short window, not a round over everything.
//!
//! No bloom filter, lamport clock or resend here, unlike a reliable
//! channel: receipts acknowledge 1:1 messages, the outbox sends until the
//! network takes a message, and the ratchets order what they open.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use murmur_core::{
    crypto::{AccountId, DeviceId},
    groups::GroupId,
};

use crate::chat::{prefix, Earlier, MessageId, Prefix};

/// Earlier messages a message names: a longer gap is found a few at a
/// time, as the messages read back name theirs. Eight cost a 200-byte
/// text a second padding bucket (1,038 bytes on the wire instead of 567);
/// four of 8-byte prefixes fit.
pub(crate) const EARLIER: usize = 4;

/// A missing message is looked for this long after it was named: a
/// message can overtake the one before it on the way.
const SETTLE: Duration = Duration::from_secs(3);
/// A conversation's topic is read at most this often.
const READ_EVERY: Duration = Duration::from_secs(20);
/// How far before the missing message's send time a read starts (clocks
/// differ).
const MARGIN_MS: u64 = 60_000;
/// How far back a read goes at most: a send time is the sender's word, and
/// a made-up one must not make this node read a topic's whole history.
/// Store sync rounds bring anything older.
const LOOKBACK_MS: u64 = 3_600_000;
/// Missing messages waited for per sending device.
const PER_DEVICE: usize = 16;
/// Reads for a missing message before it is given up.
const TRIES: u8 = 2;
/// Conversations remembered on either side, ids per sender device and
/// conversation, missing messages at once.
const STREAMS: usize = 4096;
const SEEN: usize = 64;
const WAITING: usize = 1024;

/// A conversation as one device writes in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Stream {
    /// 1:1 with this account (from the receiver's side: the message's
    /// recipient, which is the receiver's own account unless the message is
    /// a copy from one of its other devices).
    Account(AccountId),
    /// A group.
    Group(GroupId),
}

#[derive(Debug)]
struct Waiting {
    stream: Stream,
    sent_at: u64,
    due: Instant,
    tries: u8,
}

/// A read of a conversation's topic to do: from `since_ms`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Read {
    pub(super) stream: Stream,
    pub(super) since_ms: u64,
}

/// Both sides: what this device sent, what it saw, what it waits for.
#[derive(Debug, Default)]
pub(super) struct Gaps {
    sent: HashMap<Stream, VecDeque<(MessageId, u64)>>,
    seen: HashMap<(AccountId, DeviceId, Stream), VecDeque<Prefix>>,
    waiting: HashMap<(AccountId, DeviceId, Stream, Prefix), Waiting>,
    read_at: HashMap<Stream, Instant>,
    /// Missing messages noticed, and given up, since start.
    pub(super) noticed: u64,
    pub(super) given_up: u64,
}

impl Gaps {
    /// The messages to name in the next one on `stream`; `id` is that one,
    /// sent now (`sent_at`, ms).
    pub(super) fn sending(&mut self, stream: Stream, id: MessageId, sent_at: u64) -> Vec<Earlier> {
        if !self.sent.contains_key(&stream) && self.sent.len() >= STREAMS {
            let Some(old) = self.sent.keys().next().copied() else {
                return Vec::new();
            };
            self.sent.remove(&old);
        }
        let sent = self.sent.entry(stream).or_default();
        let earlier: Vec<Earlier> = sent
            .iter()
            .filter(|(e, _)| *e != id)
            .map(|(e, at)| (prefix(*e), *at))
            .collect();
        if !sent.iter().any(|(e, _)| *e == id) {
            sent.push_back((id, sent_at));
            while sent.len() > EARLIER {
                sent.pop_front();
            }
        }
        earlier
    }

    /// A message arrived from `device` of `sender` on `stream`, naming
    /// `earlier`: what of that this device never got is waited for.
    pub(super) fn received(
        &mut self,
        sender: AccountId,
        device: DeviceId,
        stream: Stream,
        id: MessageId,
        earlier: &[Earlier],
        now: Instant,
    ) {
        let id = prefix(id);
        self.waiting.remove(&(sender, device, stream, id));
        let key = (sender, device, stream);
        if !self.seen.contains_key(&key) && self.seen.len() >= STREAMS {
            if let Some(old) = self.seen.keys().next().copied() {
                self.seen.remove(&old);
            }
        }
        let seen = self.seen.entry(key).or_default();
        if !seen.contains(&id) {
            seen.push_back(id);
            while seen.len() > SEEN {
                seen.pop_front();
            }
        }
        let mut from_device = self
            .waiting
            .keys()
            .filter(|(s, d, _, _)| *s == sender && *d == device)
            .count();
        for (missing, sent_at) in earlier {
            let wait = (sender, device, stream, *missing);
            if seen.contains(missing)
                || self.waiting.contains_key(&wait)
                || self.waiting.len() >= WAITING
                || from_device >= PER_DEVICE
            {
                continue;
            }
            from_device += 1;
            self.noticed += 1;
            self.waiting.insert(
                wait,
                Waiting {
                    stream,
                    sent_at: *sent_at,
                    due: now + SETTLE,
                    tries: 0,
                },
            );
        }
    }

    /// The reads due now, one per conversation, from a minute before the
    /// earliest message it lacks; a message read for [`TRIES`] times and
    /// still missing is given up.
    pub(super) fn due(&mut self, now: Instant, now_ms: u64) -> Vec<Read> {
        let mut reads: HashMap<Stream, u64> = HashMap::new();
        let mut gone = HashSet::new();
        for (id, w) in &mut self.waiting {
            if w.due > now {
                continue;
            }
            if self
                .read_at
                .get(&w.stream)
                .is_some_and(|at| now < *at + READ_EVERY)
            {
                continue;
            }
            if w.tries >= TRIES {
                gone.insert(*id);
                continue;
            }
            w.tries += 1;
            w.due = now + READ_EVERY;
            let since = w
                .sent_at
                .min(now_ms)
                .saturating_sub(MARGIN_MS)
                .max(now_ms.saturating_sub(LOOKBACK_MS));
            reads
                .entry(w.stream)
                .and_modify(|s| *s = (*s).min(since))
                .or_insert(since);
        }
        self.given_up += gone.len() as u64;
        self.waiting.retain(|id, _| !gone.contains(id));
        for stream in reads.keys() {
            self.read_at.insert(*stream, now);
        }
        self.read_at.retain(|_, at| now < *at + READ_EVERY);
        reads
            .into_iter()
            .map(|(stream, since_ms)| Read { stream, since_ms })
            .collect()
    }

    /// Missing messages waited for now.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl super::Pipeline {
    /// Reads, from store nodes, the conversations whose gaps are due; what
    /// comes back enters the inbound path like anything else (the archive
    /// drops what this node has).
    pub(super) fn read_gaps(&mut self, ctx: &mut actix::Context<Self>) {
        let (Some(chat), Some(catch_up)) = (self.chat.as_mut(), self.catch_up.clone()) else {
            return;
        };
        let reads = chat.gaps.due(Instant::now(), crate::chat::now_millis());
        if reads.is_empty() {
            return;
        }
        let mut asks = Vec::new();
        for read in reads {
            let topics: Vec<murmur_core::ContentTopic> = match read.stream {
                Stream::Account(_) => chat.topics.iter().filter_map(|t| t.parse().ok()).collect(),
                Stream::Group(group) => vec![murmur_core::groups::topic(group)],
            };
            let mut shards: HashMap<murmur_core::PubsubTopic, Vec<murmur_core::ContentTopic>> =
                HashMap::new();
            for topic in topics {
                shards
                    .entry(chat.sharding.pubsub_topic(&topic))
                    .or_default()
                    .push(topic);
            }
            let since = i64::try_from(read.since_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000);
            for (shard, topics) in shards {
                asks.push(murmur_core::sync::CatchUp::new(shard, topics).since(Some(since)));
            }
        }
        self.background(ctx, "reading a conversation's gap", async move {
            for ask in asks {
                match catch_up.send(ask).await {
                    Ok(Ok(fetched)) => tracing::debug!(fetched, "a conversation's gap read"),
                    Ok(Err(e)) => tracing::debug!(error = %e, "a conversation's gap not read"),
                    Err(_) => return Err(crate::Error::Stopped),
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId([n; 16])
    }

    fn p(n: u8) -> Prefix {
        [n; 8]
    }

    /// The time of the tests' reads (ms): a little after the messages'.
    const NOW_MS: u64 = 300_000;

    #[test]
    fn a_sender_names_its_last_messages_in_that_conversation_only() {
        let mut gaps = Gaps::default();
        let bob = Stream::Account(AccountId([2; 32]));
        let group = Stream::Group(GroupId([3; 32]));
        assert!(gaps.sending(bob, id(1), 10).is_empty());
        gaps.sending(group, id(2), 11);
        assert_eq!(gaps.sending(bob, id(3), 12), [(p(1), 10)]);
        // A send again under the same id names what came before it.
        assert_eq!(gaps.sending(bob, id(3), 13), [(p(1), 10)]);
        for n in 4..20 {
            gaps.sending(bob, id(n), u64::from(n));
        }
        assert_eq!(gaps.sending(bob, id(20), 20).len(), EARLIER);
    }

    #[test]
    fn a_missing_message_is_read_for_after_a_moment_and_given_up_after_two_reads() {
        let mut gaps = Gaps::default();
        let (alice, device) = (AccountId([1; 32]), DeviceId([1; 16]));
        let stream = Stream::Account(AccountId([9; 32]));
        let t0 = Instant::now();
        gaps.received(alice, device, stream, id(1), &[], t0);
        gaps.received(
            alice,
            device,
            stream,
            id(3),
            &[(p(1), 100_000), (p(2), 200_000)],
            t0,
        );
        assert_eq!(gaps.waiting(), 1, "only the one it lacks");
        assert!(gaps.due(t0, NOW_MS).is_empty(), "it may be on its way");
        let reads = gaps.due(t0 + SETTLE, NOW_MS);
        assert_eq!(
            reads,
            [Read {
                stream,
                since_ms: 200_000 - MARGIN_MS
            }]
        );
        assert!(gaps
            .due(t0 + SETTLE + Duration::from_secs(1), NOW_MS)
            .is_empty());
        assert_eq!(gaps.due(t0 + SETTLE + READ_EVERY, NOW_MS).len(), 1);
        assert!(gaps.due(t0 + SETTLE + READ_EVERY * 2, NOW_MS).is_empty());
        assert_eq!((gaps.waiting(), gaps.given_up), (0, 1));
    }

    #[test]
    fn a_made_up_send_time_reads_an_hour_back_at_most() {
        let mut gaps = Gaps::default();
        let t0 = Instant::now();
        let stream = Stream::Account(AccountId([9; 32]));
        let (mallory, device) = (AccountId([7; 32]), DeviceId([7; 16]));
        gaps.received(mallory, device, stream, id(1), &[(p(2), 1)], t0);
        let now_ms = 10 * LOOKBACK_MS;
        let reads = gaps.due(t0 + SETTLE, now_ms);
        assert_eq!(
            reads,
            [Read {
                stream,
                since_ms: now_ms - LOOKBACK_MS
            }]
        );
    }

    #[test]
    fn a_message_that_comes_on_its_own_is_not_read_for() {
        let mut gaps = Gaps::default();
        let (alice, device) = (AccountId([1; 32]), DeviceId([1; 16]));
        let stream = Stream::Group(GroupId([3; 32]));
        let t0 = Instant::now();
        gaps.received(alice, device, stream, id(3), &[(p(2), 5)], t0);
        gaps.received(alice, device, stream, id(2), &[], t0);
        assert!(gaps.due(t0 + SETTLE, NOW_MS).is_empty());
        // The same id from another device of the account is another stream.
        gaps.received(alice, DeviceId([2; 16]), stream, id(4), &[(p(2), 5)], t0);
        assert_eq!(gaps.waiting(), 1);
    }

    #[test]
    fn a_stranger_naming_made_up_messages_costs_one_read_per_conversation_and_a_bounded_memory() {
        let mut gaps = Gaps::default();
        let t0 = Instant::now();
        let stream = Stream::Account(AccountId([9; 32]));
        for n in 0..2000u32 {
            let mut made_up = [0u8; 16];
            made_up[..4].copy_from_slice(&n.to_be_bytes());
            let earlier: Vec<Earlier> = (0..8u8)
                .map(|k| {
                    let mut e = made_up;
                    e[7] = k + 1;
                    (prefix(MessageId(e)), 1)
                })
                .collect();
            gaps.received(
                AccountId([7; 32]),
                DeviceId([7; 16]),
                stream,
                MessageId(made_up),
                &earlier,
                t0,
            );
        }
        assert_eq!(
            gaps.waiting(),
            PER_DEVICE,
            "a stranger's device fills no more"
        );
        assert_eq!(
            gaps.due(t0 + SETTLE, NOW_MS).len(),
            1,
            "one read for the conversation"
        );
        assert!(gaps
            .due(t0 + SETTLE + Duration::from_secs(1), NOW_MS)
            .is_empty());
    }
}
