//! Chain keys asked for again: how often this device asks, and answers.
//!
//! A device that cannot read a group message does not know whose chain it
//! is (a chain id names its owner only to whoever holds the key), so it
//! asks every member, and the owner answers. Anyone who can put bytes on a
//! group's topic can make up chain ids; without limits each made-up
//! message would make every member write to every other. So a chain is
//! asked for at most once per [`ASK_AGAIN`], at most [`NEW_PER_WINDOW`]
//! new chains per group per [`WINDOW`], and a member is answered for a
//! chain at most once per [`ANSWER_AGAIN`].

use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    time::{Duration, Instant},
};

use murmur_core::{crypto::AccountId, groups::GroupId};
use murmur_crypto::group::ChainId;

/// A chain is asked for again after this long without its key.
pub(crate) const ASK_AGAIN: Duration = Duration::from_secs(20);
/// A member asking for the same chain again is answered after this long.
pub(crate) const ANSWER_AGAIN: Duration = Duration::from_secs(5);
/// The window over which new chains asked for are counted, per group.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// New chains asked for per group per [`WINDOW`].
pub(crate) const NEW_PER_WINDOW: u32 = 8;
/// Entries each table keeps at most; past that the oldest go.
const REMEMBERED: usize = 1024;

/// When each key was last used, forgetting what is older than its
/// interval once full.
struct Seen<K>(HashMap<K, Instant>);

impl<K: Eq + Hash> Seen<K> {
    /// Whether `key` may go now (and if so, marks it).
    fn take(&mut self, key: K, every: Duration, now: Instant) -> bool {
        if self
            .0
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < every)
        {
            return false;
        }
        if self.0.len() >= REMEMBERED {
            self.0.retain(|_, at| now.duration_since(*at) < every);
            if self.0.len() >= REMEMBERED {
                return false;
            }
        }
        self.0.insert(key, now);
        true
    }
}

/// The limits of one device.
pub(crate) struct Repair {
    /// Per chain asked for: since when, and the members asked since.
    asked: HashMap<(GroupId, ChainId), (Instant, BTreeSet<AccountId>)>,
    answered: Seen<(GroupId, AccountId, ChainId)>,
    /// Per group: when its window started and how many new chains it asked.
    windows: HashMap<GroupId, (Instant, u32)>,
}

impl Default for Repair {
    fn default() -> Self {
        Self {
            asked: HashMap::new(),
            answered: Seen(HashMap::new()),
            windows: HashMap::new(),
        }
    }
}

impl Repair {
    /// Which of `members` of `group` to ask for `chain` now: all of them
    /// when it was not asked for in the last [`ASK_AGAIN`], else those not
    /// asked yet (members this device learned of since: the chain may be a
    /// newcomer's).
    pub(crate) fn ask(
        &mut self,
        group: GroupId,
        chain: ChainId,
        members: Vec<AccountId>,
        now: Instant,
    ) -> Vec<AccountId> {
        let fresh = |at: &Instant| now.duration_since(*at) < ASK_AGAIN;
        if let Some((at, asked)) = self.asked.get_mut(&(group, chain)) {
            if fresh(at) {
                let new: Vec<AccountId> =
                    members.into_iter().filter(|m| asked.insert(*m)).collect();
                return new;
            }
            *at = now;
            *asked = members.iter().copied().collect();
            return members;
        }
        if self.windows.len() >= REMEMBERED {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = self.windows.entry(group).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= NEW_PER_WINDOW {
            return Vec::new();
        }
        if self.asked.len() >= REMEMBERED {
            self.asked.retain(|_, (at, _)| fresh(at));
            if self.asked.len() >= REMEMBERED {
                return Vec::new();
            }
        }
        *count += 1;
        self.asked
            .insert((group, chain), (now, members.iter().copied().collect()));
        members
    }

    /// Whether to answer `from`'s request for `chain` now (with the key, if
    /// it is this device's, or with the log it lacks).
    pub(crate) fn answer(
        &mut self,
        group: GroupId,
        from: AccountId,
        chain: ChainId,
        now: Instant,
    ) -> bool {
        self.answered.take((group, from, chain), ANSWER_AGAIN, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AccountId = AccountId([10; 32]);
    const B: AccountId = AccountId([11; 32]);

    #[test]
    fn a_chain_is_asked_for_once_per_interval_and_of_a_new_member_at_once() {
        let mut r = Repair::default();
        let (g, c, t) = (GroupId([1; 32]), ChainId([2; 16]), Instant::now());
        assert_eq!(r.ask(g, c, vec![A], t), vec![A]);
        assert!(r.ask(g, c, vec![A], t + ASK_AGAIN / 2).is_empty());
        // B turned out to be a member since: asked now, A not again.
        assert_eq!(r.ask(g, c, vec![A, B], t + ASK_AGAIN / 2), vec![B]);
        assert_eq!(r.ask(g, c, vec![A, B], t + ASK_AGAIN), vec![A, B]);
    }

    #[test]
    fn made_up_chains_on_a_group_topic_cost_a_few_asks_a_minute() {
        let mut r = Repair::default();
        let (g, t) = (GroupId([1; 32]), Instant::now());
        let asked = (0..1000u32)
            .filter(|i| {
                let mut id = [0; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                !r.ask(g, ChainId(id), vec![A], t).is_empty()
            })
            .count();
        assert_eq!(asked, NEW_PER_WINDOW as usize);
        // Another group is not starved by this one...
        assert!(!r
            .ask(GroupId([2; 32]), ChainId([9; 16]), vec![A], t)
            .is_empty());
        // ...and this one asks again in the next window.
        assert!(!r
            .ask(g, ChainId([0xff; 16]), vec![A], t + WINDOW)
            .is_empty());
    }

    #[test]
    fn a_member_asking_again_and_again_is_answered_once_per_interval() {
        let mut r = Repair::default();
        let (g, a, c, t) = (
            GroupId([1; 32]),
            AccountId([3; 32]),
            ChainId([2; 16]),
            Instant::now(),
        );
        let answered = (0..100)
            .filter(|i| r.answer(g, a, c, t + Duration::from_millis(*i)))
            .count();
        assert_eq!(answered, 1);
        assert!(r.answer(g, AccountId([4; 32]), c, t), "another member");
        assert!(r.answer(g, a, c, t + ANSWER_AGAIN));
    }
}
