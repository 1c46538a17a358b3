//! `murmur bench chat`'s group runs: one member of a private group of
//! `--members` accounts sends, another reads. The other members exist
//! (their accounts, their devices' bundles, their place in the group's
//! log and its chain keys handed to them) but are offline, as most of a
//! large group is at any moment: a group message costs its sender one
//! encryption and one publish however many members there are, and each
//! member online one opening.
//!
//! Beside it, the bare composition: two gossipsub swarms, a sending chain
//! of `murmur-crypto`'s groups (hash ratchet, signed messages) used
//! directly, and the reader writing each batch it opened and its chain's
//! state in one sqlx transaction.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Instant,
};

use actix::Arbiter;
use futures::{stream::FuturesUnordered, StreamExt as _};
use libp2p::{gossipsub::IdentTopic, Multiaddr};
use murmur_crypto::group::{GroupMessage, ReceiverChain, SenderChain};
use murmur_node::{Builder, Config, Node};
use tokio::sync::Notify;

use crate::{
    bench::{start_node, RUN_LIMIT, SETUP},
    bench_bare::{events, listening, messages, on_own_thread, subscribed, tell_address},
    bench_chat::{Args, Clock, Report, BATCH},
    bench_chat_bare::Pack,
    bench_chat_bare::{database, publish, save},
    bench_stages::{Snapshot, Stages},
    error::CliError,
};

/// A node in the configuration `murmur node` runs, on loopback.
fn config(dir: &Path, peers: Vec<Multiaddr>) -> Config {
    let mut c = Config::new(dir);
    c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")];
    c.network.peers = peers;
    c
}

/// The contact codes of `n` accounts, each on a node started in `dir`
/// and closed again: the offline members.
pub(crate) async fn offline_members(n: usize, dir: &Path) -> Result<Vec<String>, CliError> {
    let mut codes = Vec::with_capacity(n);
    for i in 0..n {
        let node = Builder::new(config(&dir.join(format!("member-{i}")), Vec::new()))
            .start()
            .await?;
        codes.push(node.contact_code().await?);
        node.close().await?;
    }
    Ok(codes)
}

/// How many messages reached the reader, and a wake-up for each.
#[derive(Default)]
struct Arrivals {
    count: AtomicUsize,
    notify: Notify,
}

impl Arrivals {
    fn arrived(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// The group run on murmur: a sender and a reader in the default
/// configuration, each on a thread of its own, the reader a static peer
/// of the sender, both in a group with the offline members; one group
/// message read before the clock starts. Then `--messages` texts, at most `--window` sent and not yet
/// read.
/// Answers the run, and each node's steps (sender, reader) from its
/// `/metrics`.
pub(crate) async fn murmur_run(
    args: &Args,
    others: &[String],
) -> Result<(Report, [Stages; 2]), CliError> {
    let data = tempfile::tempdir()?;
    // Each node on an actix thread of its own, as in a process of its own.
    let threads = (Arbiter::new(), Arbiter::new());
    let reader = start_node(
        config(&data.path().join("reader"), Vec::new()),
        &threads.0.handle(),
    )
    .await?;
    let address = reader.listen_addrs()[0]
        .parse()
        .map_err(|_| CliError::Failed("a listen address that does not parse".to_owned()))?;
    let sender = start_node(
        config(&data.path().join("sender"), vec![address]),
        &threads.1.handle(),
    )
    .await?;
    let reader_id = sender.add_contact(&reader.contact_code().await?).await?;
    reader.add_contact(&sender.contact_code().await?).await?;
    let mut notices = reader.notices().await?;
    let group = sender.create_group("bench").await?;
    group.add(reader_id).await?;
    for code in others {
        group.add(sender.add_contact(code).await?).await?;
    }
    let members = others.len() + 2;
    members_seen(&reader, &mut notices, group.id(), members).await?;
    let mut inbox = reader.inbox().await?;
    group.send_text("set up").await?;
    if inbox.recv_timeout(SETUP).await.is_none() {
        return Err(CliError::Failed(
            "the first group message never came".to_owned(),
        ));
    }

    let before = [Snapshot::of(&sender), Snapshot::of(&reader)];
    let clock = Clock::new();
    let n = args.messages;
    let arrivals = Arc::new(Arrivals::default());
    let reading = {
        let (clock, arrivals) = (clock.clone(), arrivals.clone());
        actix::spawn(async move {
            for _ in 0..n {
                let message = inbox.recv_timeout(RUN_LIMIT).await?;
                clock.arrived(message.text().unwrap_or_default());
                arrivals.arrived(1);
            }
            Some(Instant::now())
        })
    };
    let started = Instant::now();
    let (mut sent, mut sending) = (0, FuturesUnordered::new());
    while arrivals.get() < n {
        // Sends in flight together, as 1:1's run has them.
        while sent < n && sent - arrivals.get() < args.window {
            let (group, text) = (group.clone(), clock.text(sent, args.size));
            sending.push(async move { group.send_text(text).await });
            sent += 1;
        }
        tokio::select! {
            Some(result) = sending.next() => {
                result?;
            }
            () = arrivals.notify.notified() => {}
            () = tokio::time::sleep(RUN_LIMIT) => {
                return Err(CliError::Failed("group messages stopped arriving".to_owned()));
            }
        }
    }
    let finished = reading
        .await
        .map_err(|_| CliError::Failed("the inbox reader stopped".to_owned()))?;
    let stages = [
        Stages::between(before[0], Snapshot::of(&sender)),
        Stages::between(before[1], Snapshot::of(&reader)),
    ];
    sender.close().await?;
    reader.close().await?;
    threads.0.stop();
    threads.1.stop();
    let finished = finished.ok_or_else(|| CliError::Failed("the inbox stopped".to_owned()))?;
    Ok((clock.report(n, finished.duration_since(started))?, stages))
}

/// Waits until `node` knows the group with `members` members, looking
/// again at each group notice it gives.
async fn members_seen(
    node: &Node,
    notices: &mut murmur_node::chat::Notices,
    id: murmur_node::chat::GroupId,
    members: usize,
) -> Result<(), CliError> {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Ok(info) = node.group(id).info().await {
            if info.members.len() == members {
                return Ok(());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if notices.recv_timeout(left).await.is_none() {
            return Err(CliError::Failed(format!(
                "the reader never saw the group's {members} members"
            )));
        }
    }
}

/// The same path with nothing of murmur's on it but the group chain: the
/// sender encrypts and signs each text with its sending chain and writes
/// the chain's state once per burst; the reader opens each message and
/// writes a batch of what is ready at once and its chain's state in one
/// transaction.
pub(crate) async fn bare_run(args: &Args, pack: Pack) -> Result<Report, CliError> {
    let fail = |e: String| CliError::Failed(format!("bare group: {e}"));
    let data = Arc::new(tempfile::tempdir()?);
    let mut chain = SenderChain::generate(b"bench sender");
    let mut reading_chain =
        ReceiverChain::new(&chain.chain_key(), 1_000).map_err(|e| fail(e.to_string()))?;
    let topic = IdentTopic::new("bench-group");
    let clock = Clock::new();
    let arrivals = Arc::new(Arrivals::default());
    let n = args.messages;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let reader = {
        let (clock, data, topic, arrivals) =
            (clock.clone(), data.clone(), topic.clone(), arrivals.clone());
        on_own_thread("bare-group-reader", async move {
            let fail = |e: String| CliError::Failed(format!("bare group reader: {e}"));
            let mut db = database(data.path(), "reader").await?;
            let mut swarm = listening(&[&topic])?;
            let mut addr_tx = Some(addr_tx);
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let mut received = 0;
            while received < n {
                let ready = events(&mut swarm, deadline, BATCH).await?;
                tell_address(&ready, &mut addr_tx);
                let mut opened = Vec::new();
                for data in messages(&mut swarm, ready) {
                    let message =
                        GroupMessage::from_bytes(&data).map_err(|e| fail(e.to_string()))?;
                    let plaintext = reading_chain
                        .decrypt(&message)
                        .map_err(|e| fail(e.to_string()))?;
                    for (i, text) in pack.texts(plaintext)?.into_iter().enumerate() {
                        let mut key = message.iteration.to_be_bytes().to_vec();
                        key.extend_from_slice(&(i as u32).to_be_bytes());
                        opened.push((key, text));
                    }
                }
                if opened.is_empty() {
                    continue;
                }
                save(&mut db, &opened, &reading_chain.to_bytes()).await?;
                for (_, text) in &opened {
                    clock.arrived(std::str::from_utf8(text).unwrap_or_default());
                }
                received += opened.len();
                arrivals.arrived(opened.len());
            }
            Ok(Instant::now())
        })
    };
    let addr = addr_rx
        .await
        .map_err(|_| fail("the reader did not listen".to_owned()))?;
    let (window, size, most) = (args.window, args.size, args.batch);
    let sender = {
        let (clock, arrivals) = (clock.clone(), arrivals.clone());
        on_own_thread("bare-group-sender", async move {
            let fail = |e: String| CliError::Failed(format!("bare group sender: {e}"));
            let mut db = database(data.path(), "sender").await?;
            let mut swarm = subscribed(&[&topic])?;
            swarm.dial(addr).map_err(|e| fail(e.to_string()))?;
            let setup = tokio::time::Instant::now() + SETUP;
            while swarm.behaviour().mesh_peers(&topic.hash()).count() == 0 {
                tokio::time::timeout_at(setup, swarm.select_next_some())
                    .await
                    .map_err(|_| fail("no mesh within 20 s".to_owned()))?;
            }
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + RUN_LIMIT;
            let mut sent = 0;
            while arrivals.get() < n {
                let mut sealed = 0;
                while sent < n && sent - arrivals.get() < window {
                    let room = (window - (sent - arrivals.get())).min(n - sent);
                    let texts = pack.next(&clock, &mut sent, room, most, size);
                    let message = chain.encrypt(&pack.plaintext(&texts));
                    publish(&mut swarm, &topic, message.to_bytes()).await?;
                    sealed += 1;
                }
                if sealed > 0 {
                    save(&mut db, &[], &chain.to_bytes()).await?;
                }
                tokio::select! {
                    _ = swarm.select_next_some() => {}
                    () = arrivals.notify.notified() => {}
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(fail("the run timed out".to_owned()));
                    }
                }
            }
            Ok(started)
        })
    };
    let started = sender.await?;
    let finished = reader.await?;
    clock.report(n, finished.duration_since(started))
}
