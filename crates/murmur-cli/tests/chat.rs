//! `murmur chat` with two real people's nodes and a store node between
//! them, each run a process: codes exchanged, a message sent by one
//! command and read by another after the store kept it, shown once; the
//! interactive client driven through its standard input.

mod support;

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Output, Stdio},
};

use support::{spawn, Killed};

/// `murmur chat` with the data in `dir`, the store node `peer` and `args`.
fn chat(dir: &Path, peer: &str, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args([
            "chat",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--peer",
            peer,
            "--data-dir",
        ])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "murmur chat {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A store node both people's clients reach.
fn store_node(dir: &Path) -> (Killed, String) {
    let (node, printed, _) = spawn(dir, &[], false);
    let address = printed[0]
        .strip_prefix("listening on ")
        .expect("the first line is a listen address")
        .to_owned();
    (node, address)
}

#[test]
fn two_people_chat_from_the_command_line() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (_store, store) = store_node(dirs[2].path());
    let (alice, bob) = (dirs[0].path(), dirs[1].path());

    let alice_code = stdout(&chat(alice, &store, &["--code"]));
    let bob_code = stdout(&chat(bob, &store, &["--code"]));
    assert!(alice_code.starts_with("murmur:"), "{alice_code}");
    let bob_account = stdout(&chat(alice, &store, &["--add", &bob_code, "--name", "bob"]));
    assert_eq!(bob_account.len(), 64, "{bob_account}");
    chat(bob, &store, &["--add", &alice_code, "--name", "alice"]);

    // Alice sends by name and is gone before Bob starts: the store node
    // keeps it, and Bob's client reads it when it starts.
    let sent = stdout(&chat(
        alice,
        &store,
        &["--send", "bob", "hello bob, from the command line"],
    ));
    assert!(sent.contains("sent"), "the network took it: {sent}");
    let read = stdout(&chat(bob, &store, &["--read", "--wait", "20"]));
    assert_eq!(read, "alice: hello bob, from the command line");
    // Shown once: the next read has nothing.
    let again = stdout(&chat(bob, &store, &["--read", "--wait", "2"]));
    assert_eq!(again, "", "shown once");

    // The interactive client: Bob answers from his terminal, and his
    // history holds both lines after the restart.
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args([
            "chat",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--peer",
            &store,
            "--data-dir",
        ])
        .arg(bob)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _bob_client = Killed(child);
    writeln!(stdin, "/open alice\nhi alice, typed\n/history").unwrap();
    let mut seen = Vec::new();
    let shown = loop {
        let line = lines.next().expect("the client prints").unwrap();
        seen.push(line.clone());
        if line == "me: hi alice, typed" {
            break seen;
        }
    };
    assert!(shown.iter().any(|l| l == "talking to alice"), "{shown:?}");
    assert!(
        shown
            .iter()
            .any(|l| l == "alice: hello bob, from the command line"),
        "the history survived the restart: {shown:?}"
    );
    // The network takes what Bob typed: its mark comes.
    loop {
        let line = lines.next().expect("a delivery mark").unwrap();
        if line.contains("hi alice, typed") && (line.contains("sent") || line.contains("delivered"))
        {
            break;
        }
    }
    writeln!(stdin, "/quit").unwrap();
    drop(stdin);

    let read = stdout(&chat(alice, &store, &["--read", "--wait", "20"]));
    assert_eq!(read, "bob: hi alice, typed");
}
