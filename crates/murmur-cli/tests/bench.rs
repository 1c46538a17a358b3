//! `murmur bench relay` runs every layout to the end: each run fails unless
//! every message arrives. Speed is not asserted here (see docs/benchmarks.md).

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
            "--no-archive",
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
        for run in ["bare", "murmur_thread_per_node", "murmur_default"] {
            let per_second = round[run]["per_second"].as_f64().expect(run);
            assert!(per_second > 0.0, "{run}: {per_second}");
        }
        assert!(round["murmur_archiving"].is_null(), "--no-archive");
    }
    for layout in ["thread_per_node", "default"] {
        assert!(
            report["median_ratio"][layout].as_f64().is_some(),
            "{layout}"
        );
    }
}
