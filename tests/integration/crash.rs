//! A node killed with `kill -9` loses nothing and hands nothing twice to
//! its application: real processes, a real SQLite file, real sockets.
//!
//! The child is this test binary run again as `crash::child` (ignored
//! unless `MURMUR_CRASH_CHILD` names its role): a receiving node whose
//! application marks each message done in the same transaction as its
//! position in the durable inbox, or a bot whose handler keeps each message
//! in its store and replies. The parent is the sender, and the store node
//! the child catches up from; it kills the child twice in the middle of a
//! stream of messages (to the receiving node 32 at a time, which the sender
//! seals together, so that the kills come in the middle of batches) and
//! starts it again on the same data folder.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use murmur::{
    bot::{Bot, HandlerResult, Reply, Store},
    core::chat::ChatMessage,
    node::{Builder, Node},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::watch,
};

use crate::support::{addr, loopback_config, meshed_for};

const ROLE: &str = "MURMUR_CRASH_CHILD";
const DATA: &str = "MURMUR_CRASH_DATA";
const PEER: &str = "MURMUR_CRASH_PEER";
const CONTACT: &str = "MURMUR_CRASH_CONTACT";
/// A database to use instead of the data folder's SQLite file (replicas).
const STORE: &str = "MURMUR_CRASH_STORE";
/// The lease's term, in seconds, on a shared database.
pub(crate) const LEASE_SECS: u64 = 3;
/// Messages in the stream.
const MESSAGES: usize = 10_000;
/// Where in the stream the child is killed.
const KILLS: [usize; 2] = [2_500, 6_000];
/// How long the child may take to show progress.
const PROGRESS: Duration = Duration::from_secs(60);
/// How far the sender runs ahead of what the child has done: a stream a
/// receiver keeps up with. What the child misses while it is down comes
/// back from the store behind newer messages, and one chain skips at most
/// `chat.max_skip` (1000) keys.
const AHEAD: usize = 300;

/// The child process: a node on the data folder it is given, with the
/// parent's node as its peer and store.
#[test]
#[ignore = "a child process of the crash tests"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // What a child did, when a failing run is run again to see why: with
    // RUST_LOG set, each child logs to /tmp/murmur-child-<pid>.log.
    if std::env::var_os("RUST_LOG").is_some() {
        let log = format!("/tmp/murmur-child-{}.log", std::process::id());
        let file = std::fs::File::create(log).unwrap();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    }
    murmur_test_kit::run(async move {
        let mut config = loopback_config(
            Path::new(&std::env::var(DATA).unwrap()),
            &["/ip4/127.0.0.1/tcp/0"],
        );
        config.network.peers = vec![std::env::var(PEER).unwrap().parse().unwrap()];
        if let Ok(url) = std::env::var(STORE) {
            config.store.url = url;
            config.store.lease_secs = LEASE_SECS;
            // Replicas share a peer id: what the sender wrote into the
            // socket of one paused or dying comes from the store instead.
            config.store.sync_interval_secs = 5;
        }
        say("starting");
        // A replica waits here while another holds the database's lease.
        let node = Builder::new(config).start().await.unwrap();
        node.add_contact(&std::env::var(CONTACT).unwrap())
            .await
            .unwrap();
        let (_, device) = node.chat_identity().await.unwrap();
        say(&format!("device {device}"));
        say(&format!("code {}", node.contact_code().await.unwrap()));
        match role.as_str() {
            "receiver" => receive(node).await,
            _ => serve(node).await,
        }
    });
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("@@ {line}");
}

fn count_of(bytes: Option<Vec<u8>>) -> u64 {
    bytes.map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
}

/// The application of a receiving node: each message marked seen in the
/// same transaction as the position; a message seen before is a failure.
async fn receive(node: Node) {
    let mut inbox = node.durable_inbox("app").await.unwrap();
    let mut count = count_of(node.load_app_state("count").await.unwrap());
    say(&format!("count {count}"));
    let synced = node.clone();
    actix::spawn(async move {
        synced.sync_now().await.unwrap();
        say("synced");
    });
    while let Some(entry) = inbox.recv().await {
        let key = format!("seen/{}", entry.message.id);
        let mut state = Vec::new();
        if node.load_app_state(&key).await.unwrap().is_some() {
            say(&format!("dup {}", entry.message.text().unwrap_or("")));
        } else {
            count += 1;
            state.push((key, Some(vec![1])));
            state.push(("count".to_owned(), Some(count.to_be_bytes().to_vec())));
        }
        inbox.commit(entry.seq, state).await.unwrap();
        if count.is_multiple_of(50) || count > MESSAGES as u64 {
            say(&format!("count {count}"));
        }
    }
}

/// A bot: each message kept in its store, answered, and a moment spent
/// before the handler returns, where a kill often lands.
async fn serve(node: Node) {
    // What did not open, and the repair attempted (the restore test).
    let mut unreadable = node.unreadable().await.unwrap();
    actix::spawn(async move {
        while let Some(event) = unreadable.recv().await {
            if let murmur::node::chat::Unreadable::Session { broken, reset, .. } = event {
                say(&format!("unreadable broken={broken} reset={reset}"));
            }
        }
    });
    let synced = node.clone();
    actix::spawn(async move {
        synced.sync_now().await.unwrap();
        say("synced");
    });
    // Every message of the stream is for it, the first ones included
    // (sent as it starts, perhaps a moment before its first start is kept).
    // A replica that lost the database's lease to another stops here.
    let stopped = Bot::new(node)
        .answer_backlog(true)
        .middleware(Tell)
        .on_message(|m: ChatMessage, store: Store, reply: Reply| async move {
            let key = format!("seen/{}", m.id);
            if store.get::<bool>(&key).await?.is_some() {
                say(&format!("dup {}", m.text().unwrap_or("")));
                return Ok(());
            }
            let count = store.get::<u64>("count").await?.unwrap_or(0) + 1;
            store.put(&key, &true).await?;
            store.put("count", &count).await?;
            reply
                .text(format!("ack {}", m.text().unwrap_or("")))
                .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
            if count.is_multiple_of(50) {
                say(&format!("count {count}"));
            }
            HandlerResult::Ok(())
        })
        .run()
        .await;
    if let Err(e) = stopped {
        say(&format!("stopped {e}"));
    }
}

/// Says every handler error, so that a failure of the test names it.
struct Tell;

impl murmur::bot::Middleware for Tell {
    fn after(&self, message: &ChatMessage, result: &HandlerResult) {
        if let Err(e) = result {
            say(&format!("error {}: {e}", message.text().unwrap_or("")));
        }
    }
}

/// A child process and what it says: its device and contact code, how
/// many messages it has done, whether its round from the store is over,
/// whether it stopped; a message handed twice or a handler's error fails
/// the test ([`Running::check`]).
pub(crate) struct Running {
    child: Child,
    said: watch::Receiver<Said>,
    count: watch::Receiver<usize>,
    synced: watch::Receiver<bool>,
    /// Messages handed twice, handlers that failed.
    faults: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// What did not open, as the child's node told it.
    unreadable: watch::Receiver<Vec<String>>,
}

/// What a child said about itself.
#[derive(Debug, Default, Clone)]
pub(crate) struct Said {
    /// It is about to start its node.
    pub(crate) starting: bool,
    /// Its device, once its node runs.
    pub(crate) device: Option<String>,
    /// Its contact code, once its node runs.
    pub(crate) code: Option<String>,
    /// Why its bot stopped, if it did.
    pub(crate) stopped: Option<String>,
}

impl Running {
    /// Starts a child and waits until its node runs.
    pub(crate) async fn start(role: &str, data: &Path, peer: &str, contact: &str) -> Self {
        let child = Self::spawn(role, data, peer, contact, None);
        child.ready().await;
        child
    }

    /// Starts a child; `store` is a database URL in place of the data
    /// folder's SQLite file.
    pub(crate) fn spawn(
        role: &str,
        data: &Path,
        peer: &str,
        contact: &str,
        store: Option<&str>,
    ) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["crash::child", "--exact", "--ignored", "--nocapture"])
            .env(ROLE, role)
            .env(DATA, data)
            .env(PEER, peer)
            .env(CONTACT, contact);
        if let Some(url) = store {
            command.env(STORE, url);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (said_tx, said) = watch::channel(Said::default());
        let (count_tx, count) = watch::channel(0);
        let (synced_tx, synced) = watch::channel(false);
        let faults = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let faults_seen = faults.clone();
        let (unreadable_tx, unreadable) = watch::channel(Vec::new());
        actix::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(said) = line.strip_prefix("@@ ") else {
                    continue;
                };
                if said.starts_with("dup ") || said.starts_with("error ") {
                    faults_seen.lock().unwrap().push(said.to_owned());
                }
                if said == "starting" {
                    said_tx.send_modify(|s| s.starting = true);
                } else if let Some(device) = said.strip_prefix("device ") {
                    said_tx.send_modify(|s| s.device = Some(device.to_owned()));
                } else if let Some(code) = said.strip_prefix("code ") {
                    said_tx.send_modify(|s| s.code = Some(code.to_owned()));
                } else if let Some(why) = said.strip_prefix("stopped ") {
                    said_tx.send_modify(|s| s.stopped = Some(why.to_owned()));
                } else if let Some(n) = said.strip_prefix("count ") {
                    count_tx.send_replace(n.parse().unwrap());
                } else if said == "synced" {
                    synced_tx.send_replace(true);
                } else if let Some(event) = said.strip_prefix("unreadable ") {
                    unreadable_tx.send_modify(|u| u.push(event.to_owned()));
                }
            }
        });
        Self {
            child,
            said,
            count,
            synced,
            faults,
            unreadable,
        }
    }

    /// What the child's node told it so far about messages that did not
    /// open.
    pub(crate) fn unreadable_so_far(&self) -> Vec<String> {
        self.unreadable.borrow().clone()
    }

    /// Waits until the child's node told it `event` (`broken=… reset=…`)
    /// about a message that did not open.
    pub(crate) async fn told_unreadable(&self, event: &str) {
        let mut told = self.unreadable.clone();
        let waited =
            tokio::time::timeout(PROGRESS, told.wait_for(|u| u.iter().any(|e| e == event))).await;
        assert!(
            waited.is_ok_and(|w| w.is_ok()),
            "the child never said unreadable {event}: {:?}",
            *self.unreadable.borrow()
        );
    }

    /// Waits until the child said `what`, for at most `within`.
    pub(crate) async fn said<T>(
        &self,
        within: Duration,
        what: impl Fn(&Said) -> Option<T>,
    ) -> Option<T> {
        let mut said = self.said.clone();
        let answer = tokio::time::timeout(within, said.wait_for(|s| what(s).is_some()))
            .await
            .ok()?
            .ok()?;
        what(&answer)
    }

    /// What the child said so far.
    pub(crate) fn so_far(&self) -> Said {
        self.said.borrow().clone()
    }

    /// Waits until the child's node runs; answers its contact code.
    pub(crate) async fn ready(&self) -> String {
        self.said(PROGRESS, |s| s.code.clone())
            .await
            .expect("the child starts its node and says its code")
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process id, for signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("the child runs")
    }

    /// Fails the test if the child said a message was handed twice or a
    /// handler failed.
    pub(crate) fn check(&self) {
        let faults = self.faults.lock().unwrap();
        assert!(faults.is_empty(), "the child said: {faults:?}");
    }

    /// The messages the child said it was handed twice.
    pub(crate) fn duplicates(&self) -> Vec<String> {
        let faults = self.faults.lock().unwrap();
        faults
            .iter()
            .filter(|f| f.starts_with("dup "))
            .cloned()
            .collect()
    }

    /// How many messages the child has done.
    pub(crate) fn done(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until the child has done at least `n` messages, of `sent`.
    pub(crate) async fn keeps_up(&self, n: usize, sent: usize) {
        let mut count = self.count.clone();
        tokio::time::timeout(PROGRESS, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("the child stalled at {} of {sent}", self.done()))
            .expect("the child is alive");
    }

    /// Waits until the child has done `n` messages.
    pub(crate) async fn counted(&self, n: usize) {
        let mut count = self.count.clone();
        tokio::time::timeout(PROGRESS, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("the child did {} of {n}", self.done()))
            .expect("the child is alive");
        assert_eq!(self.done(), n, "the child did more than it was sent");
        self.check();
    }

    /// Waits until the child's first round from the store is over.
    async fn synced(&self) {
        let mut synced = self.synced.clone();
        tokio::time::timeout(PROGRESS, synced.wait_for(|s| *s))
            .await
            .expect("the round ends")
            .expect("the child is alive");
    }

    /// `kill -9`.
    pub(crate) async fn kill(mut self) {
        self.child.kill().await.unwrap();
        self.check();
    }
}

pub(crate) async fn sender(dir: &Path) -> Node {
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    // Every answer stays in its inbox until the test reads them.
    config.chat.inbox_keep = 2 * MESSAGES;
    Builder::new(config).start().await.unwrap()
}

/// Streams the messages to `role`'s child, at most [`AHEAD`] ahead of
/// what it has done, `burst` at a time (sent at once, so that the sender
/// seals them together), killing it at [`KILLS`] and starting it again;
/// answers the sender and the child still running.
async fn stream_with_kills(role: &str, dir: &Path, data: PathBuf, burst: usize) -> (Node, Running) {
    let sender = sender(dir).await;
    let peer = addr(&sender, false);
    let contact = sender.contact_code().await.unwrap();
    let mut child = Running::start(role, &data, &peer, &contact).await;
    let account = sender.add_contact(&child.ready().await).await.unwrap();
    meshed_for(&sender, account).await;
    let chat = sender.conversation(account);
    let recoveries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in (0..MESSAGES).step_by(burst) {
        let n = burst.min(MESSAGES - i);
        if KILLS.iter().any(|k| (i..i + n).contains(k)) {
            let done = *child.count.borrow();
            child.kill().await;
            let killed = std::time::Instant::now();
            child = Running::start(role, &data, &peer, &contact).await;
            let running = killed.elapsed();
            // How long until it hands out a message it had not: what the
            // application sees of a crash.
            let mut count = child.count.clone();
            let recoveries = recoveries.clone();
            actix::spawn(async move {
                if count.wait_for(|c| *c > done).await.is_ok() {
                    recoveries.lock().unwrap().push((running, killed.elapsed()));
                }
            });
        }
        if i >= AHEAD {
            child.keeps_up(i - AHEAD, i).await;
        }
        let sends = futures::future::join_all((i..i + n).map(|j| chat.send_text(format!("m{j}"))));
        for sent in sends.await {
            sent.unwrap();
        }
    }
    // docs/benchmarks.md quotes it.
    eprintln!(
        "{role} killed -9: (node running, handing out again) after {:?}",
        recoveries.lock().unwrap()
    );
    (sender, child)
}

#[actix_rt::test]
async fn a_receiving_node_killed_twice_mid_stream_loses_nothing_and_repeats_nothing() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let data = dirs[1].path().to_owned();
    // In bursts: the sender seals each together, and the kills come while
    // the child is in the middle of batches.
    let (sender, child) = stream_with_kills("receiver", dirs[0].path(), data.clone(), 32).await;
    child.counted(MESSAGES).await;

    // Started once more: the store's copies of what it handled (a round
    // overlaps) are not handed again. A last message, sent after the round,
    // comes after every copy the round brought.
    child.kill().await;
    let contact = sender.contact_code().await.unwrap();
    let child = Running::start("receiver", &data, &addr(&sender, false), &contact).await;
    child.counted(MESSAGES).await;
    child.synced().await;
    let account = sender.add_contact(&child.ready().await).await.unwrap();
    meshed_for(&sender, account).await;
    sender
        .conversation(account)
        .send_text("last")
        .await
        .unwrap();
    child.counted(MESSAGES + 1).await;
    child.kill().await;
}

#[actix_rt::test]
async fn a_bot_killed_twice_mid_handler_answers_every_message_once() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let data = dirs[1].path().to_owned();
    let (sender, child) = stream_with_kills("bot", dirs[0].path(), data.clone(), 1).await;
    answered_once(&sender, MESSAGES, &child).await;
    child.counted(MESSAGES).await;
    child.kill().await;
}

/// Reads the sender's answers until `n` distinct ones came; fails if any
/// came twice or `m<i>` for some `i < n` went unanswered.
pub(crate) async fn answered_once(sender: &Node, n: usize, child: &Running) {
    let mut replies = sender.durable_inbox("replies").await.unwrap();
    let mut answered: HashMap<String, usize> = HashMap::new();
    while answered.len() < n {
        let Ok(entry) = tokio::time::timeout(PROGRESS, replies.recv()).await else {
            child.check();
            let missing: Vec<_> = (0..n)
                .filter(|i| !answered.contains_key(&format!("ack m{i}")))
                .take(10)
                .collect();
            panic!(
                "answers stopped at {} of {n}; the first missing: {missing:?}",
                answered.len()
            );
        };
        let entry = entry.expect("the node runs");
        let text = entry.message.text().unwrap_or_default().to_owned();
        *answered.entry(text).or_default() += 1;
    }
    let twice: Vec<_> = answered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "answered twice: {twice:?}");
    for i in 0..n {
        assert!(
            answered.contains_key(&format!("ack m{i}")),
            "m{i} unanswered"
        );
    }
}
