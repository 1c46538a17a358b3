//! Where a murmur run's time went, step by step, read from each node's
//! `/metrics` before and after the run: how many seals and opens (the
//! crypto stage's, 1:1; the membership stage's, a group), archived relay
//! messages and group writes each node made, and their mean time. The
//! steps of one 1:1 message and its receipt, in order, are the sender's
//! seal, the receiver's archive and open, its receipt's seal, and the
//! sender's archive and open of that; of a group message, the sender's
//! post, the reader's archive and open. The writes are counted apart:
//! those of a seal or an open are inside its time, the outbox's and the
//! durable inbox's are not.

use murmur_node::Node;

/// The histograms read: their key in `--json`, and the name `/metrics`
/// gives them.
const STEPS: [(&str, &str); 6] = [
    ("seal", "murmur_crypto_seal_seconds"),
    ("open", "murmur_crypto_open_seconds"),
    ("post", "murmur_groups_post_seconds"),
    ("group_open", "murmur_groups_open_seconds"),
    ("archive", "murmur_transport_archive_seconds"),
    ("write", "murmur_storage_write_seconds"),
];

/// Which of [`STEPS`] a run's table shows first: its messages' seal and
/// open.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path {
    /// 1:1, the crypto stage's.
    Pairwise,
    /// A group, the membership stage's.
    Group,
}

/// A histogram's running totals.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    seconds: f64,
    count: f64,
}

/// One node's histogram totals, and its write requests, at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    /// Per step of [`STEPS`].
    steps: [Totals; 6],
    requests: f64,
    checkpoints: f64,
}

impl Snapshot {
    pub(crate) fn of(node: &Node) -> Self {
        let text = node.metrics_text();
        let sample = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| {
                    let (n, value) = l.split_once(' ')?;
                    (n == name).then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0.0)
        };
        let mut snapshot = Self {
            requests: sample("murmur_storage_write_requests_total"),
            checkpoints: sample("murmur_storage_checkpoints_total"),
            ..Self::default()
        };
        for (step, (_, name)) in snapshot.steps.iter_mut().zip(STEPS) {
            *step = Totals {
                seconds: sample(&format!("{name}_sum")),
                count: sample(&format!("{name}_count")),
            };
        }
        snapshot
    }
}

/// How many of one step a node made in a run, and their mean.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    count: f64,
    mean_ms: f64,
}

/// What one node did in a run, per step.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stages {
    steps: [Step; 6],
    /// Write requests per group write.
    per_write: f64,
    /// WAL checkpoints run beside the writer.
    checkpoints: f64,
}

impl Stages {
    /// Between two snapshots of one node.
    pub(crate) fn between(before: Snapshot, after: Snapshot) -> Self {
        let mut stages = Self::default();
        for ((step, b), a) in stages.steps.iter_mut().zip(before.steps).zip(after.steps) {
            let count = a.count - b.count;
            let mean_ms = if count > 0.0 {
                (a.seconds - b.seconds) / count * 1e3
            } else {
                0.0
            };
            *step = Step { count, mean_ms };
        }
        stages.checkpoints = after.checkpoints - before.checkpoints;
        let writes = stages.steps[5].count;
        if writes > 0.0 {
            stages.per_write = (after.requests - before.requests) / writes;
        }
        stages
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "requests_per_write": self.per_write,
            "checkpoints": self.checkpoints,
        });
        for ((name, _), step) in STEPS.iter().zip(self.steps) {
            value[*name] = serde_json::json!({ "count": step.count, "mean_ms": step.mean_ms });
        }
        value
    }

    #[allow(clippy::print_stdout)]
    pub(crate) fn table(path: Path, nodes: &[(&str, Stages)]) {
        let (seals, opens) = match path {
            Path::Pairwise => (("seals", "seal ms"), 0),
            Path::Group => (("posts", "post ms"), 2),
        };
        println!(
            "node     {:>7}  {:>7}   opens  open ms  archived  archive ms   writes  write ms  requests/write",
            seals.0, seals.1
        );
        for (name, s) in nodes {
            let (seal, open) = (s.steps[opens], s.steps[opens + 1]);
            let [.., archive, write] = s.steps;
            println!(
                "{name:<8} {:>7.0}  {:>7.2}  {:>6.0}  {:>7.2}  {:>8.0}  {:>10.2}  {:>7.0}  {:>8.2}  {:>14.1}",
                seal.count,
                seal.mean_ms,
                open.count,
                open.mean_ms,
                archive.count,
                archive.mean_ms,
                write.count,
                write.mean_ms,
                s.per_write
            );
        }
    }

    /// The relay runs' writes: each node's archiving, group writes and
    /// checkpoints beside the writer, per run.
    #[allow(clippy::print_stdout)]
    pub(crate) fn writes_table(runs: &[(&str, [Stages; 2])]) {
        println!(
            "run        node      archived  archive ms   writes  write ms  requests/write  checkpoints"
        );
        for (run, nodes) in runs {
            for (node, s) in ["sender", "receiver"].into_iter().zip(nodes) {
                let [.., archive, write] = s.steps;
                println!(
                    "{run:<10} {node:<8}  {:>8.0}  {:>10.2}  {:>7.0}  {:>8.2}  {:>14.1}  {:>11.0}",
                    archive.count,
                    archive.mean_ms,
                    write.count,
                    write.mean_ms,
                    s.per_write,
                    s.checkpoints
                );
            }
        }
    }
}
