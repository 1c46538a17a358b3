//! SDS-R: a participant that misses a message asks the channel for it on
//! its next messages, and a participant that holds it sends it again. Who
//! asks and who answers is spread by hash, as the spec's SDS-R section
//! says, so that a channel of many does not all ask or all answer at once:
//! the message's author answers at once, others later the further their id
//! is from the author's; a request or answer is dropped once someone else's
//! is seen.

use std::collections::BTreeMap;

use murmur_proto::sds::HistoryEntry;
use sha2::{Digest, Sha256};

/// Requests and answers kept at most (the spec's buffer size).
const CAP: usize = 1000;
/// Requests one message carries at most.
pub(crate) const PER_MESSAGE: usize = 3;

/// When repairs happen, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The earliest a missing message is asked for.
    pub t_min: u64,
    /// The latest a missing message is asked for, and the longest an
    /// answer waits.
    pub t_max: u64,
}

impl Default for Timing {
    /// js-waku's: 30 s and 120 s.
    fn default() -> Self {
        Self {
            t_min: 30_000,
            t_max: 120_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Request {
    entry: HistoryEntry,
    due: u64,
    asked: bool,
}

/// What this participant will ask for and answer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Repairs {
    requests: BTreeMap<String, Request>,
    answers: BTreeMap<String, u64>,
    /// When each id was last answered: a stranger repeating a request gets
    /// one answer per `t_max`.
    answered: BTreeMap<String, u64>,
}

/// The first eight bytes of SHA-256, big-endian.
pub(crate) fn h(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("32 bytes"))
}

impl Repairs {
    /// `entry` is missing: ask for it between `t_min` and `t_max` from now
    /// (where in that window depends on who this is and what is missing).
    pub(crate) fn missing(&mut self, me: &str, entry: &HistoryEntry, now: u64, timing: Timing) {
        if self.requests.contains_key(&entry.message_id) || self.requests.len() >= CAP {
            return;
        }
        let span = timing.t_max.saturating_sub(timing.t_min).max(1);
        let due = now + timing.t_min + h(&format!("{me}{}", entry.message_id)) % span;
        self.requests.insert(
            entry.message_id.clone(),
            Request {
                entry: entry.clone(),
                due,
                asked: false,
            },
        );
    }

    /// The message arrived: neither ask for it nor answer for it.
    pub(crate) fn arrived(&mut self, id: &str) {
        self.requests.remove(id);
        self.answers.remove(id);
    }

    /// Up to three requests that are due, each asked once.
    pub(crate) fn take_requests(&mut self, now: u64) -> Vec<HistoryEntry> {
        self.requests
            .values_mut()
            .filter(|r| !r.asked && r.due <= now)
            .take(PER_MESSAGE)
            .map(|r| {
                r.asked = true;
                r.entry.clone()
            })
            .collect()
    }

    /// Someone asked for `entries`. Another's request for what this one
    /// misses makes this one's unneeded; for what this one `holds` (and
    /// whose author is named), an answer is scheduled.
    pub(crate) fn requested(
        &mut self,
        me: &str,
        entries: &[HistoryEntry],
        holds: impl Fn(&str) -> bool,
        now: u64,
        timing: Timing,
    ) {
        for entry in entries {
            let id = &entry.message_id;
            self.requests.remove(id);
            let Some(author) = entry.sender_id.as_deref() else {
                continue;
            };
            let recently = self
                .answered
                .get(id)
                .is_some_and(|at| now < at + timing.t_max);
            if !holds(id) || recently || self.answers.contains_key(id) || self.answers.len() >= CAP
            {
                continue;
            }
            let distance = u128::from(h(me) ^ h(author));
            let wait = (distance * u128::from(h(id)) % u128::from(timing.t_max.max(1))) as u64;
            self.answers.insert(id.clone(), now + wait);
        }
    }

    /// The answers due, `limit` at most (the rest wait): ids to send
    /// again.
    pub(crate) fn take_answers(&mut self, now: u64, timing: Timing, limit: usize) -> Vec<String> {
        let due: Vec<String> = self
            .answers
            .iter()
            .filter(|(_, at)| **at <= now)
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            self.answers.remove(id);
            self.answered.insert(id.clone(), now);
        }
        self.answered.retain(|_, at| now < *at + timing.t_max);
        due
    }

    /// Missing ids whose requests are still open.
    pub(crate) fn open(&self) -> usize {
        self.requests.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, author: &str) -> HistoryEntry {
        HistoryEntry {
            message_id: id.into(),
            retrieval_hint: None,
            sender_id: Some(author.into()),
        }
    }

    /// Values computed by `@waku/sds` 0.0.8's dist code.
    #[test]
    fn the_hash_is_the_specs() {
        assert_eq!(h("abc"), 13_436_514_500_253_700_074);
        assert_eq!(h("alicem1"), 8_743_241_292_634_311_014);
        assert_eq!(h("alice") ^ h("bob"), 12_280_807_185_182_410_357);
    }

    #[test]
    fn a_request_waits_its_window_goes_out_once_and_ends_with_the_message() {
        let timing = Timing::default();
        let mut r = Repairs::default();
        r.missing("me", &entry("m1", "bob"), 0, timing);
        assert!(r.take_requests(timing.t_min - 1).is_empty());
        assert_eq!(r.take_requests(timing.t_max).len(), 1);
        assert!(r.take_requests(timing.t_max * 2).is_empty(), "asked once");
        r.arrived("m1");
        assert_eq!(r.open(), 0);
    }

    #[test]
    fn the_author_answers_at_once_others_later_and_a_repeated_request_once() {
        let timing = Timing::default();
        let mut author = Repairs::default();
        let asked = [entry("m1", "bob")];
        author.requested("bob", &asked, |_| true, 0, timing);
        assert_eq!(author.take_answers(0, timing, 8), ["m1"]);
        // A stranger repeating the request gets nothing more for a while.
        author.requested("bob", &asked, |_| true, 1, timing);
        assert!(author.take_answers(timing.t_max - 1, timing, 8).is_empty());

        let mut other = Repairs::default();
        other.requested("carol", &asked, |_| true, 0, timing);
        let mut other_missing = Repairs::default();
        other_missing.requested("carol", &asked, |_| false, 0, timing);
        assert!(other_missing
            .take_answers(timing.t_max, timing, 8)
            .is_empty());
        // Carol's answer waits, and goes if the message is seen meanwhile.
        other.arrived("m1");
        assert!(other.take_answers(timing.t_max, timing, 8).is_empty());
    }

    #[test]
    fn another_request_for_what_this_one_misses_ends_its_own() {
        let timing = Timing::default();
        let mut r = Repairs::default();
        r.missing("me", &entry("m1", "bob"), 0, timing);
        r.requested("me", &[entry("m1", "bob")], |_| false, 0, timing);
        assert_eq!(r.open(), 0);
    }
}
