//! The crypto stage's counters.

use super::*;

/// The crypto stage's counters: sealed, opened, and refused by reason.
#[derive(Clone, Default, Debug)]
pub struct Metrics {
    pub(crate) sealed: Counter,
    pub(crate) opened: Counter,
    pub(crate) refused: Family<Reason, Counter>,
    pub(crate) resets: Counter,
    pub(crate) envelope_panics: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub(crate) reason: &'static str,
}

impl Metrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("sealed", "Envelopes sealed", self.sealed.clone());
        registry.register(
            "opened",
            "Envelopes opened and decrypted",
            self.opened.clone(),
        );
        registry.register(
            "refused",
            "Envelopes refused, by reason",
            self.refused.clone(),
        );
        registry.register(
            "resets",
            "Sessions started over with a device whose message the old one did not open",
            self.resets.clone(),
        );
        registry.register(
            "envelope_panics",
            "Envelope jobs that panicked on the envelope threads (a defect; the request heard Restarted)",
            self.envelope_panics.clone(),
        );
    }

    /// How many sessions this device started over.
    pub fn resets(&self) -> u64 {
        self.resets.get()
    }

    /// How many envelopes were refused for `reason`.
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&Reason { reason }).get()
    }

    /// How many envelopes were opened.
    pub fn opened(&self) -> u64 {
        self.opened.get()
    }

    /// How many envelope jobs panicked on the envelope threads: a defect
    /// each, whose request heard `Restarted`.
    pub fn envelope_panics(&self) -> u64 {
        self.envelope_panics.get()
    }
}
