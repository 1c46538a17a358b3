//! `murmur bench scale`: how one node in its default configuration grows
//! with what it holds. In `--steps` steps it takes on contacts (each a
//! real account's contact code, added as a user would), groups it creates,
//! and messages in its archive, up to `--contacts`, `--groups` and
//! `--messages`; after each step it measures its resident memory and the
//! time of the operations a user runs at that size: a 1:1 send, a store
//! query of its archive, a contact added, a group created. `--svg` draws
//! memory and those times against the step.

use std::{
    fmt::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use murmur_core::{store::Query, Delivery, PubsubTopic, WakuMessage};
use murmur_crypto::{device::Device, Limits, Vault};
use murmur_node::{Builder, Config};

use crate::{bench_store::percentile, error::CliError};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Contacts at the last step.
    #[arg(long, default_value_t = 10_000)]
    contacts: usize,
    /// Groups this node created, at the last step.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Messages in the archive at the last step.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Steps from nothing to those counts.
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// Where to write the plot (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one step measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Step {
    contacts: usize,
    groups: usize,
    messages: usize,
    rss_mb: f64,
    add_contact_ms: f64,
    create_group_ms: f64,
    send_ms: f64,
    query_p99_ms: f64,
}

/// Sends and queries timed per step.
const SAMPLES: usize = 100;

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    if args.steps == 0 {
        return Err(CliError::Usage("--steps must be at least 1".to_owned()));
    }
    let data = tempfile::tempdir()?;
    let mut config = Config::new(data.path().join("node"));
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    let node = Builder::new(config.clone()).start().await?;
    // The archive is filled beside the node, as relay traffic would fill it.
    let archive = murmur_storage::Database::open(&config.store_url())
        .await
        .map_err(|e| CliError::Node(e.into()))?;
    let pubsub: PubsubTopic = "/waku/2/rs/1/0".parse().expect("a valid pubsub topic");
    let progress = crate::progress::Progress::new("scale benchmark");
    let (mut contacts, mut groups, mut messages) = (Vec::new(), 0, 0);
    let mut steps = Vec::with_capacity(args.steps);
    for step in 1..=args.steps {
        let target = |total: usize| total * step / args.steps;
        progress.set(format!("scale benchmark, step {step} of {}", args.steps));
        let started = Instant::now();
        let added = target(args.contacts) - contacts.len();
        for _ in 0..added {
            contacts.push(node.add_contact(&contact_code()).await?);
        }
        let add_contact_ms = per_op(started.elapsed(), added);
        let started = Instant::now();
        let created = target(args.groups) - groups;
        for i in 0..created {
            node.create_group(&format!("group {}", groups + i)).await?;
        }
        groups += created;
        let create_group_ms = per_op(started.elapsed(), created);
        while messages < target(args.messages) {
            let batch: Vec<Delivery> = (messages..target(args.messages).min(messages + 1_000))
                .map(|i| {
                    let message = WakuMessage::new(
                        format!("/bench/1/t{}/proto", i % 100),
                        format!("archived {i}").into_bytes(),
                    )
                    // Stamped now: older ones would go with the node's
                    // retention (two days) while it is measured.
                    .with_timestamp(murmur_core::now_nanos());
                    Delivery::new(pubsub.clone(), message)
                })
                .collect();
            archive
                .save_batch(&batch)
                .await
                .map_err(|e| CliError::Node(e.into()))?;
            messages += batch.len();
        }
        let send_ms = match contacts.last() {
            Some(to) => {
                let chat = node.conversation(*to);
                let started = Instant::now();
                for i in 0..SAMPLES {
                    chat.send_text(format!("at step {step}, {i}")).await?;
                }
                per_op(started.elapsed(), SAMPLES)
            }
            None => 0.0,
        };
        let mut took = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let query = Query::content(
                Some(pubsub.clone()),
                vec![format!("/bench/1/t{}/proto", i % 100)],
            );
            let started = Instant::now();
            archive
                .query(&query)
                .await
                .map_err(|e| CliError::Node(e.into()))?;
            took.push(started.elapsed());
        }
        took.sort();
        steps.push(Step {
            contacts: contacts.len(),
            groups,
            messages,
            rss_mb: rss_mb(),
            add_contact_ms,
            create_group_ms,
            send_ms,
            query_p99_ms: percentile(&took, 0.99),
        });
    }
    drop(progress);
    node.close().await?;
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&steps))?;
    }
    print(&args, &steps);
    Ok(())
}

/// A new account's contact code, as another person's device makes it.
fn contact_code() -> String {
    let now = murmur_core::now_nanos().unsigned_abs() / 1_000_000_000;
    // The device's keys are its own, random; the vault only seals its
    // records, which this benchmark throws away.
    let (device, _) = Device::create(Vault::new(b"bench scale"), Limits::default(), now);
    device.contact_code(now)
}

fn per_op(elapsed: Duration, ops: usize) -> f64 {
    if ops == 0 {
        return 0.0;
    }
    elapsed.as_secs_f64() * 1_000.0 / ops as f64
}

/// This process's resident memory (the node runs in it), in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1_000.0)
}

#[allow(clippy::print_stdout)]
fn print(args: &Args, steps: &[Step]) {
    if args.json {
        println!("{}", serde_json::json!({ "steps": steps }));
        return;
    }
    println!("contacts  groups  archived  RSS MB  add contact ms  create group ms  send ms  query p99 ms");
    for s in steps {
        println!(
            "{:>8}  {:>6}  {:>8}  {:>6.1}  {:>14.2}  {:>15.2}  {:>7.2}  {:>12.2}",
            s.contacts,
            s.groups,
            s.messages,
            s.rss_mb,
            s.add_contact_ms,
            s.create_group_ms,
            s.send_ms,
            s.query_p99_ms
        );
    }
}

/// A line of the plot: its name, its colour, and its value at a step.
type Series = (&'static str, &'static str, fn(&Step) -> f64);

/// Two panels against the step: resident memory, and the times per
/// operation.
fn svg(steps: &[Step]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const PAD: f64 = 48.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n",
        2.0 * H
    );
    let panels: [(&str, Vec<Series>); 2] = [
        (
            "resident memory, MB",
            vec![("RSS", "#1f77b4", |s| s.rss_mb)],
        ),
        (
            "time per operation, ms",
            vec![
                ("send", "#d62728", |s| s.send_ms),
                ("store query p99", "#2ca02c", |s| s.query_p99_ms),
                ("add contact", "#9467bd", |s| s.add_contact_ms),
                ("create group", "#ff7f0e", |s| s.create_group_ms),
            ],
        ),
    ];
    for (panel, (title, series)) in panels.iter().enumerate() {
        let top = panel as f64 * H;
        let max = series
            .iter()
            .flat_map(|(_, _, f)| steps.iter().map(f))
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let x = |i: usize| PAD + (W - 2.0 * PAD) * (i + 1) as f64 / steps.len().max(1) as f64;
        let y = |v: f64| top + H - PAD - (H - 2.0 * PAD) * v / max;
        let _ = writeln!(
            out,
            "<text x=\"{PAD}\" y=\"{}\">{title} (top of axis {max:.2})</text>",
            top + 20.0
        );
        let _ = writeln!(
            out,
            "<line x1=\"{PAD}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>",
            top + H - PAD,
            W - PAD
        );
        for (i, s) in steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.1}k/{}/{}k</text>",
                x(i),
                top + H - PAD + 16.0,
                s.contacts as f64 / 1_000.0,
                s.groups,
                s.messages / 1_000
            );
        }
        for (k, (name, colour, f)) in series.iter().enumerate() {
            let points: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{:.1},{:.1}", x(i), y(f(s))))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{name}</text>",
                W - PAD - 120.0,
                top + 36.0 + 14.0 * k as f64
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{PAD}\" y=\"{:.1}\">steps: contacts (k) / groups / archived messages (k)</text>",
        2.0 * H - 6.0
    );
    out.push_str("</svg>\n");
    out
}
