//! What delivery costs on the wire: per chat message, the messages and
//! payload bytes each side publishes beyond the message itself (receipts,
//! group and SDS metadata), counted by an outbound hook on real nodes.
//! docs/benchmarks.md ("Sync overhead per message") quotes its output
//! (`cargo test --test integration overhead -- --nocapture`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p::identity::Keypair;
use murmur::{
    core::hook::{BoxError, Hook, Outgoing, Verdict},
    node::{reliable, Builder, Node},
};

use crate::support::{
    account, addr, befriend, chat_node, loopback_config, members, meshed_for, next_in_group,
    partition_topic_of, WAIT,
};

/// Messages sent per measurement.
const N: usize = 50;
/// Bytes of each text.
const TEXT: usize = 200;

/// Messages and payload bytes a node published.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    messages: u64,
    bytes: u64,
}

/// Counts what a node publishes on one content topic (a node publishes
/// other things meanwhile: its bundle, group keys in pairwise sessions).
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<(String, Tally)>>);

impl Counter {
    /// Counts from now on, on `topic` only.
    fn watch(&self, topic: &murmur::core::ContentTopic) {
        *self.0.lock().unwrap() = (topic.as_str().to_owned(), Tally::default());
    }

    fn take(&self) -> Tally {
        self.0.lock().unwrap().1
    }
}

impl Hook for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn outbound(&mut self, outgoing: &Outgoing) -> Result<Verdict, BoxError> {
        let mut counted = self.0.lock().unwrap();
        if outgoing.message.content_topic == counted.0 {
            counted.1.messages += 1;
            counted.1.bytes += outgoing.message.payload.len() as u64;
        }
        Ok(Verdict::Deliver)
    }
}

async fn counted(dir: &std::path::Path, store: &Node) -> (Node, Counter) {
    let counter = Counter::default();
    let mut config = loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(store, false).parse().unwrap()];
    let node = Builder::new(config)
        .with_keypair(Keypair::generate_secp256k1())
        .with_hook(counter.clone())
        .start()
        .await
        .unwrap();
    (node, counter)
}

fn text(i: usize) -> String {
    format!("{i:04}{}", "x".repeat(TEXT - 4))
}

fn report(what: &str, sender: Tally, receiver: Tally) {
    let n = N as f64;
    eprintln!(
        "{what}: sender {:.2} messages, {:.0} payload bytes per message of {TEXT}; receiver {:.2} messages, {:.0} bytes",
        sender.messages as f64 / n,
        sender.bytes as f64 / n,
        receiver.messages as f64 / n,
        receiver.bytes as f64 / n,
    );
}

#[actix_rt::test]
async fn what_each_message_costs_on_the_wire() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let store = chat_node(dirs[0].path(), None).await;
    let (alice, alice_out) = counted(dirs[1].path(), &store).await;
    let (bob, bob_out) = counted(dirs[2].path(), &store).await;
    let bob_id = befriend(&alice, &bob).await;
    let alice_id = account(&alice).await;
    meshed_for(&alice, bob_id).await;
    meshed_for(&bob, alice_id).await;
    let mut inbox = bob.inbox().await.unwrap();

    // 1:1, once the session is set up (its first message carries X3DH).
    let chat = alice.conversation(bob_id);
    chat.send_text("hello")
        .await
        .unwrap()
        .acknowledged(WAIT)
        .await;
    inbox.recv_timeout(WAIT).await.unwrap();
    alice_out.watch(&partition_topic_of(bob_id));
    bob_out.watch(&partition_topic_of(alice_id));
    let mut sent = Vec::new();
    for i in 0..N {
        sent.push(chat.send_text(text(i)).await.unwrap());
    }
    for _ in 0..N {
        inbox
            .recv_timeout(WAIT)
            .await
            .expect("every message arrives");
    }
    for s in &mut sent {
        assert!(matches!(
            s.acknowledged(WAIT).await,
            murmur::node::chat::DeliveryState::Acknowledged { .. }
        ));
    }
    let (a, b) = (alice_out.take(), bob_out.take());
    report("1:1", a, b);
    assert_eq!(
        a.messages, N as u64,
        "one envelope per message, nothing more"
    );
    // Messages the receiver reads at once share a receipt.
    assert!(
        (1..=N as u64).contains(&b.messages),
        "at most one receipt per message: {b:?}"
    );
    // What a message names of the earlier ones must not push a short text
    // out of the smallest padding bucket (512 bytes, and the envelope).
    assert!(a.bytes / N as u64 <= 600, "{a:?}");

    // A group of two, once the keys are handed over.
    let group = alice.create_group("g").await.unwrap();
    group.add(bob_id).await.unwrap();
    members(&bob, &group, 2).await;
    group.send_text("hello group").await.unwrap();
    next_in_group(&mut inbox, Some(group.id()), "the first group message").await;
    let group_topic = murmur::core::groups::topic(group.id());
    alice_out.watch(&group_topic);
    bob_out.watch(&group_topic);
    for i in 0..N {
        group.send_text(text(i)).await.unwrap();
    }
    for _ in 0..N {
        next_in_group(&mut inbox, Some(group.id()), "a group message").await;
    }
    let (a, b) = (alice_out.take(), bob_out.take());
    report("group of two", a, b);
    assert_eq!(a.messages, N as u64, "one envelope per group message");
    assert!(a.bytes / N as u64 <= 600, "{a:?}");

    // A reliable channel (SDS, unencrypted), without its sync messages
    // (one per participant every 15 s on average, each the size of a
    // content message without content), which the random clock would
    // make a count of a few seconds vary.
    let topic: murmur::core::ContentTopic = "/murmur/1/overhead/proto".parse().unwrap();
    let quiet = || reliable::Config {
        sync_every: 0,
        ..reliable::Config::default()
    };
    let shard = alice.pubsub_topic(&topic);
    let mut alice_room = alice
        .reliable_channel(
            reliable::Options::new(topic.clone(), "room", "alice").with_config(quiet()),
        )
        .await
        .unwrap();
    let mut bob_room = bob
        .reliable_channel(reliable::Options::new(topic.clone(), "room", "bob").with_config(quiet()))
        .await
        .unwrap();
    alice.wait_for_peers(&shard, 1, WAIT).await.unwrap();
    alice_out.watch(&topic);
    bob_out.watch(&topic);
    for i in 0..N {
        alice_room.send(text(i)).await.unwrap();
    }
    let mut delivered = 0;
    while delivered < N {
        if let reliable::Event::Delivered(_) = bob_room
            .recv_timeout(WAIT)
            .await
            .expect("every message arrives")
        {
            delivered += 1;
        }
    }
    let (a, b) = (alice_out.take(), bob_out.take());
    report("reliable channel", a, b);
    assert_eq!(a.messages, N as u64, "no resends within seconds");
    // Drain what the rooms said meanwhile.
    while alice_room.recv_timeout(Duration::ZERO).await.is_some() {}
}
