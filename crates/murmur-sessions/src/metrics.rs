//! The crypto stage's counters.

use prometheus_client::metrics::histogram::Histogram;

use super::*;

/// The crypto stage's counters (sealed, opened, refused by reason) and how
/// long it takes to answer a seal and an open.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) sealed: Counter,
    pub(crate) opened: Counter,
    pub(crate) refused: Family<Reason, Counter>,
    pub(crate) resets: Counter,
    pub(crate) envelope_panics: Counter,
    pub(crate) seal_seconds: Histogram,
    pub(crate) open_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sealed: Counter::default(),
            opened: Counter::default(),
            refused: Family::default(),
            resets: Counter::default(),
            envelope_panics: Counter::default(),
            seal_seconds: Histogram::new(murmur_core::latency::bounds()),
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
        registry.register(
            "seal_seconds",
            "From taking a seal to answering it, for those that took a session step: the step, the envelope sealed on the envelope threads, the step written (one per request, however many envelopes it sealed)",
            self.seal_seconds.clone(),
        );
        registry.register(
            "open_seconds",
            "From taking an open to answering it, refusals included: the envelope opened on the envelope threads, the session step in arrival order, the step and the plaintext written",
            self.open_seconds.clone(),
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
