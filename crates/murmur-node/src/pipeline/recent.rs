//! Which messages this run has seen, by hash, up to a bound.

use std::collections::{HashSet, VecDeque};

use murmur_core::MessageHash;

/// Hashes seen in this run, the newest [`Recent::CAPACITY`]: a set that
/// remembers without growing for ever.
#[derive(Default)]
pub(super) struct Recent {
    set: HashSet<MessageHash>,
    order: VecDeque<MessageHash>,
}

impl Recent {
    pub(super) const CAPACITY: usize = 1 << 16;

    /// Remembers `hash`; answers whether it is new.
    pub(super) fn insert(&mut self, hash: MessageHash) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets `hash`. Its place in the order stays: taken in again, it is
    /// forgotten as soon as it would have been the first time.
    pub(super) fn remove(&mut self, hash: &MessageHash) {
        self.set.remove(hash);
    }

    pub(super) fn contains(&self, hash: &MessageHash) -> bool {
        self.set.contains(hash)
    }
}
