use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Why a relay message was rejected in gossipsub validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[non_exhaustive]
pub enum RejectReason {
    /// The bytes are not a WakuMessage.
    Malformed,
    /// Larger than 150 KiB.
    TooLarge,
    /// Empty payload.
    EmptyPayload,
    /// Empty content topic.
    EmptyContentTopic,
    /// A control character in the content topic (ignored, not rejected:
    /// a rule of murmur's own, which other Waku peers do not apply).
    BadContentTopic,
    /// `meta` over 64 bytes.
    MetaTooLong,
    /// Not a `/waku/2/rs/<cluster>/<shard>` topic.
    BadTopic,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
}

/// The transport's counters; clones share them.
#[derive(Debug, Clone)]
pub struct Metrics {
    received: Counter,
    rejected: Family<RejectLabels, Counter>,
    published: Counter,
    dropped: Counter,
    peers: Gauge,
    archive_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            received: Counter::default(),
            rejected: Family::default(),
            published: Counter::default(),
            dropped: Counter::default(),
            peers: Gauge::default(),
            archive_seconds: Histogram::new(murmur_core::latency::bounds()),
        }
    }
}

impl Metrics {
    /// Registers every series under `registry` (prefix it with `murmur_transport`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "relay_messages_received",
            "Valid relay messages received",
            self.received.clone(),
        );
        registry.register(
            "relay_messages_rejected",
            "Relay messages rejected in validation, by reason",
            self.rejected.clone(),
        );
        registry.register(
            "relay_messages_published",
            "Messages this node published",
            self.published.clone(),
        );
        registry.register(
            "events_dropped",
            "Deliveries dropped because the consumer fell behind",
            self.dropped.clone(),
        );
        registry.register("peers", "Connected peers", self.peers.clone());
        registry.register(
            "archive_seconds",
            "From a relay message's arrival to its archiving (or the archive's failure), before this node accepts (and so forwards) it",
            self.archive_seconds.clone(),
        );
    }

    /// How many relay messages were rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get_or_create(&RejectLabels { reason }).get()
    }

    /// How many valid relay messages arrived.
    pub fn received(&self) -> u64 {
        self.received.get()
    }

    /// How many relay messages this node published.
    pub fn published(&self) -> u64 {
        self.published.get()
    }

    /// How many deliveries were dropped because the consumer was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    pub(crate) fn inc_rejected(&self, reason: RejectReason) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }

    pub(crate) fn inc_received(&self) {
        self.received.inc();
    }

    pub(crate) fn inc_published(&self) {
        self.published.inc();
    }

    pub(crate) fn archived_after(&self, took: std::time::Duration) {
        self.archive_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn inc_dropped(&self) {
        self.dropped.inc();
    }

    pub(crate) fn set_peers(&self, n: usize) {
        self.peers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
