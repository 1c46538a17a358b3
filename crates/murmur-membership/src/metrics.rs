//! The membership stage's counters.

use prometheus_client::metrics::histogram::Histogram;

use super::*;

/// The membership stage's counters, and how long it takes to answer a post
/// and an open.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) posted: Counter,
    pub(crate) opened: Counter,
    pub(crate) refused: Family<Reason, Counter>,
    pub(crate) pulled: Counter,
    pub(crate) served: Counter,
    pub(crate) equivocations: Counter,
    pub(crate) keys_asked: Counter,
    pub(crate) keys_served: Counter,
    pub(crate) post_seconds: Histogram,
    pub(crate) open_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            posted: Counter::default(),
            opened: Counter::default(),
            refused: Family::default(),
            pulled: Counter::default(),
            served: Counter::default(),
            equivocations: Counter::default(),
            keys_asked: Counter::default(),
            keys_served: Counter::default(),
            post_seconds: Histogram::new(murmur_core::latency::bounds()),
            open_seconds: Histogram::new(murmur_core::latency::bounds()),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub(crate) reason: &'static str,
}

impl Metrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("posted", "Group messages sealed", self.posted.clone());
        registry.register("opened", "Group messages opened", self.opened.clone());
        registry.register(
            "refused",
            "Group messages, events and keys refused, by reason",
            self.refused.clone(),
        );
        registry.register(
            "pulled",
            "Logs asked of a member whose message named heads this device lacked",
            self.pulled.clone(),
        );
        registry.register(
            "served",
            "Logs sent to a member that asked for them",
            self.served.clone(),
        );
        registry.register(
            "keys_asked",
            "Group chain keys this device lacked and asked the members for",
            self.keys_asked.clone(),
        );
        registry.register(
            "keys_served",
            "Chain keys of this device handed again to a member that asked",
            self.keys_served.clone(),
        );
        registry.register(
            "equivocations",
            "Members caught signing two events neither of which cites the other",
            self.equivocations.clone(),
        );
        registry.register(
            "post_seconds",
            "From taking a group message to seal to answering it, for those sealed: the chain step, the signature, the group's keys written",
            self.post_seconds.clone(),
        );
        registry.register(
            "open_seconds",
            "From taking a group message to open to answering it, for those opened: the signature checked, the chain step, the keys and the plaintext written",
            self.open_seconds.clone(),
        );
    }

    /// How many times this device asked a member for its log.
    pub fn pulled(&self) -> u64 {
        self.pulled.get()
    }

    /// How many times this device sent its log to a member that asked.
    pub fn served(&self) -> u64 {
        self.served.get()
    }

    /// How many times this device asked the members for a chain key.
    pub fn keys_asked(&self) -> u64 {
        self.keys_asked.get()
    }

    /// How many times this device handed its chain key to a member again.
    pub fn keys_served(&self) -> u64 {
        self.keys_served.get()
    }

    /// How many messages, events or keys were refused for `reason`
    /// (`unknown_chain`, `replay`, `malformed`, `not_member`,
    /// `invalid_event`, `unauthorized`).
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&Reason { reason }).get()
    }

    /// How many group messages were opened.
    pub fn opened(&self) -> u64 {
        self.opened.get()
    }

    pub(crate) fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }
}
