//! A test peer in a child process (js-waku under Node.js, go-waku), driven
//! by JSON lines: one command per line on its stdin, answered by one line
//! with the same `id` on its stdout; events are lines without an `id`.

use std::{collections::VecDeque, path::Path, process::Stdio, time::Duration};

use murmur::core::PubsubTopic;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::support::WAIT;

/// A peer in a child process, driven by JSON lines.
pub(crate) struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    events: VecDeque<Value>,
    next_id: u64,
    pub(crate) peer_id: String,
    /// The line it printed when ready.
    pub(crate) ready: Value,
}

impl Peer {
    /// Runs `program args` in `dir` and waits for its `ready` line.
    pub(crate) async fn spawn(program: &Path, args: &[&str], dir: &Path) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut peer = Self {
            child,
            stdin,
            stdout,
            events: VecDeque::new(),
            next_id: 0,
            peer_id: String::new(),
            ready: Value::Null,
        };
        let ready = peer.read_line().await;
        assert_eq!(ready["event"], "ready", "{ready}");
        peer.peer_id = ready["peerId"].as_str().unwrap().to_owned();
        peer.ready = ready;
        peer
    }

    async fn read_line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .expect("the test peer answers in time")
            .unwrap()
            .expect("the test peer is alive");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    }

    /// Sends a command and answers its reply, which must be `ok`.
    pub(crate) async fn call(&mut self, command: Value) -> Value {
        let description = command.to_string();
        let value = self.call_raw(command).await;
        assert_eq!(value["ok"], true, "{description} failed: {value}");
        value
    }

    /// Sends a command and answers its reply, successful or not.
    pub(crate) async fn call_raw(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        loop {
            let value = self.read_line().await;
            if value["id"] == json!(id) {
                return value;
            }
            self.events.push_back(value);
        }
    }

    /// The next relay message it received.
    pub(crate) async fn next_message(&mut self) -> Value {
        self.next_event("message").await
    }

    /// The next event of this kind, keeping others for later.
    pub(crate) async fn next_event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == kind) {
            return self.events.remove(i).unwrap();
        }
        loop {
            let value = self.read_line().await;
            if value["event"] == kind {
                return value;
            }
            self.events.push_back(value);
        }
    }

    /// Puts events back, to be taken again.
    pub(crate) fn keep(&mut self, events: Vec<Value>) {
        self.events.extend(events);
    }

    /// The events read and not taken yet, for a failure's message.
    pub(crate) fn unread(&self) -> String {
        self.events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `peer` is in its gossipsub mesh for `topic`.
    pub(crate) async fn wait_for_mesh_peer(&mut self, topic: &PubsubTopic, peer: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mesh = self
                .call(json!({"cmd": "meshPeers", "topic": topic.as_str()}))
                .await;
            if mesh["peers"].as_array().unwrap().iter().any(|p| p == peer) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{peer} never joined the mesh"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether it is connected to `peer` (its `peers` answer lists ids, or
    /// entries with a `peerId`).
    pub(crate) async fn connected_to(&mut self, peer: &str) -> bool {
        let connected = self.call(json!({"cmd": "peers"})).await;
        connected["peers"]
            .as_array()
            .expect("a list of peers")
            .iter()
            .any(|p| p == peer || p["peerId"] == peer)
    }

    /// Stops it and waits for it to exit.
    pub(crate) async fn stop(mut self) {
        let _ = self.call(json!({"cmd": "stop"})).await;
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}
