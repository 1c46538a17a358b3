//! `murmur demo` as a user runs it: it must finish, every message intact,
//! and its network observer must find no identity or plaintext on the wire.

use std::process::Command;

#[test]
fn the_demo_runs_and_the_observer_sees_no_identity_or_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .expect("murmur runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every one intact"), "{stdout}");
    assert!(stdout.contains("Acknowledged { devices: 1 }"), "{stdout}");
    assert!(
        stdout.contains("no account, device, identity key or text in any of them"),
        "{stdout}"
    );
    assert!(
        stdout.contains("read by bob (phone), bob (laptop) and carol"),
        "{stdout}"
    );
    assert!(
        stdout.contains("carol's node received it and could not open it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alice, a moderator, deletes it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("moderation plugin lets 5 through, drops 3"),
        "{stdout}"
    );
}
