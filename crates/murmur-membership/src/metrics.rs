//! The membership stage's counters.

use super::*;

/// The membership stage's counters.
#[derive(Clone, Default, Debug)]
pub struct Metrics {
    pub(crate) posted: Counter,
    pub(crate) opened: Counter,
    pub(crate) refused: Family<Reason, Counter>,
    pub(crate) pulled: Counter,
    pub(crate) served: Counter,
    pub(crate) equivocations: Counter,
    pub(crate) keys_asked: Counter,
    pub(crate) keys_served: Counter,
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
