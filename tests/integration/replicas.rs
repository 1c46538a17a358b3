//! Two bot processes on one PostgreSQL database are one device: one runs,
//! the other stands by and takes over when the first is killed with
//! `kill -9`, as the same device, answering every message once. A replica
//! paused past its lease (`SIGSTOP`) and woken after the other took over
//! writes nothing and stops. Real processes (this test binary run again as
//! `crash::child`), a real PostgreSQL server, loopback sockets.

use std::{path::Path, time::Duration};

use libp2p::identity::secp256k1;
use murmur::node::{keys, Node};
use tokio::time::Instant;

use crate::{
    crash::{answered_once, sender, Running, LEASE_SECS},
    support::{addr, meshed_for},
};

/// Messages in the takeover stream.
const MESSAGES: usize = 1_200;
/// Where in the stream the replica that runs is killed.
const KILLS: [usize; 2] = [400, 800];
/// How long anything here may take.
const WITHIN: Duration = Duration::from_secs(60);
/// How far the sender runs ahead of what the bot has done.
const AHEAD: usize = 300;

/// Two data folders holding one node key, a fresh database, and a sender
/// (the bot's contact and its store node).
struct Replicas {
    dirs: [tempfile::TempDir; 3],
    url: String,
    sender: Node,
    peer: String,
    contact: String,
}

impl Replicas {
    async fn new() -> Self {
        let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
        let server = std::env::var("TEST_POSTGRES_URL")
            .expect("TEST_POSTGRES_URL must name a PostgreSQL server; .ci/run sets one up");
        let url = murmur_storage::Database::create_fresh(&server)
            .await
            .unwrap();
        // One node, so one node key: it seals the state they share.
        let secret = hex::encode(secp256k1::SecretKey::generate().to_bytes());
        for dir in &dirs[1..] {
            keys::import(dir.path(), &secret).unwrap();
        }
        let sender = sender(dirs[0].path()).await;
        let peer = addr(&sender, false);
        let contact = sender.contact_code().await.unwrap();
        Self {
            dirs,
            url,
            sender,
            peer,
            contact,
        }
    }

    fn folder(&self, replica: usize) -> &Path {
        self.dirs[1 + replica].path()
    }

    /// Starts replica `0` or `1` and waits until it is about to start its
    /// node (running it, or standing by).
    async fn start(&self, replica: usize) -> Running {
        let child = Running::spawn(
            "bot",
            self.folder(replica),
            &self.peer,
            &self.contact,
            Some(&self.url),
        );
        child
            .said(WITHIN, |s| s.starting.then_some(()))
            .await
            .expect("the replica starts");
        child
    }
}

/// Asserts that `standby` has not started its node: it stands by.
fn stands_by(standby: &mut Running) {
    assert!(standby.alive(), "the standby exited");
    let said = standby.so_far();
    assert!(
        said.code.is_none() && said.device.is_none(),
        "the standby started its node while the other held the lease: {said:?}"
    );
}

#[actix_rt::test]
async fn bot_replicas_on_one_database_take_over_from_each_other_as_one_device() {
    let replicas = Replicas::new().await;
    let mut running = replicas.start(0).await;
    let code = running.ready().await;
    let device = running.so_far().device.expect("says its device");
    let mut standby = replicas.start(1).await;

    let sender = &replicas.sender;
    let account = sender.add_contact(&code).await.unwrap();
    meshed_for(sender, account).await;
    let chat = sender.conversation(account);
    let mut takeovers = Vec::new();
    // Which folder the replica that runs has: the killed one stands by next.
    let mut folder = 0;
    for i in 0..MESSAGES {
        if KILLS.contains(&i) {
            stands_by(&mut standby);
            let killed = Instant::now();
            running.kill().await;
            running = standby;
            running.ready().await;
            takeovers.push(killed.elapsed());
            assert_eq!(
                running.so_far().device.as_ref(),
                Some(&device),
                "the replica that took over is the same device"
            );
            standby = replicas.start(folder).await;
            folder = 1 - folder;
        }
        if i >= AHEAD {
            running.keeps_up(i - AHEAD, i).await;
        }
        chat.send_text(format!("m{i}")).await.unwrap();
    }
    answered_once(sender, MESSAGES, &running).await;
    running.counted(MESSAGES).await;
    let devices: Vec<String> = sender
        .devices(account)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(devices, vec![device], "the contact knows one device");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("takeovers after kill -9 (lease {LEASE_SECS} s): {takeovers:?}");
    }
    for took in takeovers {
        assert!(
            took < Duration::from_secs(LEASE_SECS + 20),
            "a takeover took {took:?}"
        );
    }
    stands_by(&mut standby);
    running.kill().await;
}

#[actix_rt::test]
async fn a_replica_paused_past_its_lease_writes_nothing_when_it_wakes() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .try_init();
    }
    let replicas = Replicas::new().await;
    let paused = replicas.start(0).await;
    let code = paused.ready().await;
    let mut standby = replicas.start(1).await;
    let sender = &replicas.sender;
    let account = sender.add_contact(&code).await.unwrap();
    meshed_for(sender, account).await;
    let chat = sender.conversation(account);
    for i in 0..300 {
        chat.send_text(format!("m{i}")).await.unwrap();
    }
    // Paused in the middle of the stream, most likely inside a handler:
    // when it wakes, it finishes that message with what it read before the
    // other replica took over.
    paused.keeps_up(100, 300).await;
    signal("-STOP", paused.pid());
    stands_by(&mut standby);
    standby.ready().await;
    assert_eq!(
        standby.so_far().device,
        paused.so_far().device,
        "the same device took over"
    );
    standby.counted(300).await;

    signal("-CONT", paused.pid());
    let why = paused
        .said(WITHIN, |s| s.stopped.clone())
        .await
        .expect("the woken replica stops");
    assert!(why.contains("lease"), "it stopped because: {why}");
    // Had its late writes landed (its count, its position, its session
    // state), the replica that runs would count from them.
    for i in 300..400 {
        chat.send_text(format!("m{i}")).await.unwrap();
    }
    answered_once(sender, 400, &standby).await;
    standby.counted(400).await;
    // The handler the woken replica was in when it froze runs to its end
    // (its every write refused): it may have seen that message after the
    // other replica did. Its bot took no other message.
    let twice = paused.duplicates();
    assert!(twice.len() <= 1, "the woken replica handled: {twice:?}");

    // What the woken replica did before it stopped (decrypting what had
    // waited in its socket, finishing its handler) wrote nothing: a
    // replica that starts from the database now answers as the running
    // one would have (its sessions' chains where the running one left
    // them, its count, its position).
    drop(paused);
    standby.kill().await;
    let again = replicas.start(0).await;
    again.ready().await;
    for i in 400..500 {
        chat.send_text(format!("m{i}")).await.unwrap();
    }
    answered_once(sender, 500, &again).await;
    again.counted(500).await;
    again.kill().await;
}

/// Sends `signal` (`-STOP`, `-CONT`) to a process.
fn signal(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}
