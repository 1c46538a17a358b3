//! What the binary's tests share: `murmur node` in a child process.
// Each test file uses its own part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

/// Kills the node when the test ends, however it ends.
pub(crate) struct Killed(pub(crate) std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a node prints after its start, line by line.
pub(crate) type Printed = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// `murmur node` with these flags and its data in `dir`; answers the child,
/// what it printed at start (listen addresses, record, REST address), read
/// up to its REST line if `rest`, else up to its first line, and the rest
/// of its output.
pub(crate) fn spawn(
    dir: &std::path::Path,
    flags: &[&str],
    rest: bool,
) -> (Killed, Vec<String>, Printed) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(flags)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let killed = Killed(child);
    let mut printed = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let done = !rest || line.starts_with("rest ");
        printed.push(line);
        if done {
            break;
        }
    }
    (killed, printed, lines)
}
