//! How the default persistence stage's writes go.

use prometheus_client::{
    metrics::{counter::Counter, histogram::Histogram},
    registry::Registry,
};

/// The writer's counters and how long each group write takes; clones
/// share them.
#[derive(Debug, Clone)]
pub struct Metrics {
    writes: Counter,
    requests: Counter,
    write_seconds: Histogram,
    checkpoints: Counter,
    checkpoint_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            writes: Counter::default(),
            requests: Counter::default(),
            write_seconds: Histogram::new(murmur_core::latency::bounds()),
            checkpoints: Counter::default(),
            checkpoint_seconds: Histogram::new(murmur_core::latency::bounds()),
        }
    }
}

impl Metrics {
    /// Registers every series under `registry` (prefix it with
    /// `murmur_storage`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "writes",
            "Group writes: one transaction each, for every request queued while the one before was written",
            self.writes.clone(),
        );
        registry.register(
            "write_requests",
            "Write requests (archive saves, outbox entries in and out, stage state), answered once their group committed",
            self.requests.clone(),
        );
        registry.register(
            "write_seconds",
            "From the writer taking a group to its commit (or its failure)",
            self.write_seconds.clone(),
        );
        registry.register(
            "checkpoints",
            "Checkpoints of SQLite's WAL run beside the writer (passive), each once it committed about a mebibyte",
            self.checkpoints.clone(),
        );
        registry.register(
            "checkpoint_seconds",
            "How long each of those checkpoints took (or took to fail)",
            self.checkpoint_seconds.clone(),
        );
    }

    /// How many group writes were made.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// How many write requests they carried.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// How many checkpoints ran beside the writer.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.get()
    }

    pub(crate) fn checkpointed(&self, took: std::time::Duration) {
        self.checkpoints.inc();
        self.checkpoint_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn written(&self, requests: usize, took: std::time::Duration) {
        self.writes.inc();
        self.requests.inc_by(requests as u64);
        self.write_seconds.observe(took.as_secs_f64());
    }
}
