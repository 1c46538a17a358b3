//! `murmur bench relay` runs every layout to the end, and the archiving
//! node beside its archiving reference: each run fails unless every
//! message arrives. Speed is not asserted here (see docs/benchmarks.md).

use std::process::Command;

#[test]
fn the_relay_benchmark_delivers_every_message_in_every_layout() {
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args([
            "bench",
            "relay",
            "--messages",
            "300",
            "--rounds",
            "2",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("murmur runs");
    assert!(
        out.status.success(),
        "bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let rounds = report["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        for run in [
            "bare",
            "murmur_thread_per_node",
            "murmur_default",
            "bare_archiving",
            "murmur_archiving",
        ] {
            let per_second = round[run]["per_second"].as_f64().expect(run);
            assert!(per_second > 0.0, "{run}: {per_second}");
        }
        // Each node's writes, read from its /metrics: archiving, every
        // message is archived on both sides. (A raw publish the network
        // took never enters the outbox.)
        for run in ["default", "archiving"] {
            for node in ["sender", "receiver"] {
                let stages = &round["stages"][run][node];
                assert!(stages["checkpoints"].as_f64().is_some(), "{run} {node}");
                let writes = stages["write"]["count"].as_f64().expect("writes");
                if run == "archiving" {
                    assert!(writes > 0.0, "{run} {node}: no write");
                }
            }
            let archived = round["stages"][run]["receiver"]["archive"]["count"]
                .as_f64()
                .expect("archived");
            let expected = if run == "archiving" { 300.0 } else { 0.0 };
            assert_eq!(archived, expected, "{run}: archived");
        }
    }
    for layout in ["thread_per_node", "default", "archiving"] {
        assert!(
            report["median_ratio"][layout].as_f64().is_some(),
            "{layout}"
        );
    }
}

/// Runs `murmur bench ARGS` and answers its one JSON object (or its
/// table, when it prints no JSON).
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("murmur runs");
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `murmur bench store` on SQLite, a few hundred messages: both runs
/// ingest every message and answer queries.
#[test]
fn the_store_benchmark_runs_both_sides() {
    let table = bench(&["store", "--messages", "400", "--size", "64"]);
    assert!(table.contains("bare sqlx"), "{table}");
    assert!(table.contains("ingest murmur / bare"), "{table}");
}

/// `murmur bench serve` with two client counts: no request fails.
#[test]
fn the_serve_benchmark_answers_every_request() {
    let report: serde_json::Value = serde_json::from_str(&bench(&[
        "serve",
        "--clients",
        "1,3",
        "--requests",
        "4",
        "--stored",
        "10",
        "--json",
    ]))
    .expect("one JSON object");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["failed"], 0, "{run}");
        assert!(run["requests_per_second"].as_f64().unwrap() > 0.0, "{run}");
    }
}

/// `murmur bench strangers`, a small flood: the contact's messages all
/// arrive, quiet and flooded.
#[test]
fn the_strangers_benchmark_measures_the_contact_through_a_flood() {
    let report: serde_json::Value = serde_json::from_str(&bench(&[
        "strangers",
        "--strangers",
        "20",
        "--rate",
        "100",
        "--messages",
        "10",
        "--json",
    ]))
    .expect("one JSON object");
    for key in ["contact_quiet_p50_ms", "contact_flooded_p99_ms"] {
        assert!(
            report[key].as_f64().is_some_and(|ms| ms > 0.0),
            "{key}: {report}"
        );
    }
}

/// `murmur bench chat`, two rounds of a hundred messages, 1:1 and in a
/// group of five (three offline): every message reaches the inbox (and in
/// 1:1 is acknowledged), in every run (each fails otherwise), the bare
/// run with sealed-sender envelopes included.
#[test]
fn the_chat_benchmark_delivers_and_acknowledges_every_message_both_ways() {
    let report: serde_json::Value = serde_json::from_str(&bench(&[
        "chat",
        "--messages",
        "100",
        "--rounds",
        "2",
        "--members",
        "5",
        "--json",
    ]))
    .expect("one JSON object on stdout");
    for runs in [
        &report,
        &report["sealed_sender"],
        &report["each_alone"],
        &report["sealed_sender_each_alone"],
        &report["group"],
        &report["group"]["each_alone"],
    ] {
        let rounds = runs["rounds"].as_array().expect("rounds");
        assert_eq!(rounds.len(), 2);
        for round in rounds {
            for run in ["murmur", "bare"] {
                let per_second = round[run]["per_second"].as_f64().expect(run);
                assert!(per_second > 0.0, "{run}: {per_second}");
            }
        }
        assert!(runs["ratio_median"].as_f64().is_some());
    }
    assert_eq!(report["group"]["members"], 5);
    // Where murmur's time went, from the nodes' /metrics: every step of
    // both nodes (the messages one way in batches, the receipts back),
    // and both wrote.
    let ran = |stages: &serde_json::Value, steps: &[(&str, &str)]| {
        for (node, step) in steps {
            let count = stages[node][step]["count"].as_f64().expect("a count");
            assert!(count >= 1.0, "{node} {step}: {count}");
            assert!(stages[node][step]["mean_ms"].as_f64().expect("a mean") > 0.0);
        }
    };
    ran(
        &report["stages"],
        &[
            ("sender", "seal"),
            ("receiver", "open"),
            ("receiver", "archive"),
            ("receiver", "seal"),
            ("sender", "archive"),
            ("sender", "open"),
            ("sender", "write"),
            ("receiver", "write"),
        ],
    );
    // And the group's: the sender's posts, the reader's archive and opens
    // of them, both nodes' writes.
    ran(
        &report["group"]["stages"],
        &[
            ("sender", "post"),
            ("reader", "archive"),
            ("reader", "group_open"),
            ("sender", "write"),
            ("reader", "write"),
        ],
    );
}

/// `murmur bench scale`, two small steps: each step holds the contacts,
/// groups and archived messages asked for, every operation timed ran, and
/// the plot is written.
#[test]
fn the_scale_benchmark_grows_a_node_step_by_step_and_draws_it() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let svg = dir.path().join("scale.svg");
    let report: serde_json::Value = serde_json::from_str(&bench(&[
        "scale",
        "--contacts",
        "20",
        "--groups",
        "4",
        "--messages",
        "3000",
        "--steps",
        "2",
        "--svg",
        svg.to_str().expect("a UTF-8 path"),
        "--json",
    ]))
    .expect("one JSON object on stdout");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    for (step, (contacts, groups, messages)) in steps.iter().zip([(10, 2, 1500), (20, 4, 3000)]) {
        assert_eq!(step["contacts"], contacts);
        assert_eq!(step["groups"], groups);
        assert_eq!(step["messages"], messages);
        for measured in [
            "rss_mb",
            "add_contact_ms",
            "create_group_ms",
            "send_ms",
            "query_p99_ms",
        ] {
            let value = step[measured].as_f64().expect(measured);
            assert!(value > 0.0, "{measured}: {value}");
        }
    }
    let drawn = std::fs::read_to_string(&svg).expect("the plot is written");
    assert!(
        drawn.starts_with("<svg") && drawn.contains("<polyline"),
        "{drawn}"
    );
}

/// `murmur bench catchup`, a few pages in two rounds: the node's inbox and
/// the reference's database each get every message (each run fails
/// otherwise).
#[test]
fn the_catchup_benchmark_brings_every_message_to_both_sides() {
    let report: serde_json::Value = serde_json::from_str(&bench(&[
        "catchup",
        "--messages",
        "250",
        "--rounds",
        "2",
        "--json",
    ]))
    .expect("one JSON object on stdout");
    let rounds = report["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        for run in ["murmur", "bare"] {
            let per_second = round[run]["per_second"].as_f64().expect(run);
            assert!(per_second > 0.0, "{run}: {per_second}");
        }
    }
    assert!(report["ratio_median"].as_f64().is_some());
}
