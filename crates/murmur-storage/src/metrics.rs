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
    checkpoint_pages: Counter,
    checkpoints_skipped: Counter,
    checkpoint_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            writes: Counter::default(),
            requests: Counter::default(),
            write_seconds: Histogram::new(murmur_core::latency::bounds()),
            checkpoints: Counter::default(),
            checkpoint_pages: Counter::default(),
            checkpoints_skipped: Counter::default(),
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
            "checkpoint_pages",
            "WAL pages those checkpoints copied into the database file",
            self.checkpoint_pages.clone(),
        );
        registry.register(
            "checkpoints_skipped",
            "Checkpoints due beside the writer that did not run: another was running (a commit's, another process's), or it failed",
            self.checkpoints_skipped.clone(),
        );
        registry.register(
            "checkpoint_seconds",
            "How long each checkpoint that ran beside the writer took",
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

    /// How many WAL pages they copied into the database file.
    pub fn checkpoint_pages(&self) -> u64 {
        self.checkpoint_pages.get()
    }

    /// A checkpoint beside the writer ran and copied `pages`.
    pub(crate) fn checkpointed(&self, pages: u64, took: std::time::Duration) {
        self.checkpoints.inc();
        self.checkpoint_pages.inc_by(pages);
        self.checkpoint_seconds.observe(took.as_secs_f64());
    }

    /// A checkpoint beside the writer was due and did not run.
    pub(crate) fn checkpoint_skipped(&self) {
        self.checkpoints_skipped.inc();
    }

    pub(crate) fn written(&self, requests: usize, took: std::time::Duration) {
        self.writes.inc();
        self.requests.inc_by(requests as u64);
        self.write_seconds.observe(took.as_secs_f64());
    }
}
