//! Reliable channels (Scalable Data Sync on a plain topic) over real
//! nodes, and shared with js-waku's `ReliableChannel` (@waku/sdk 0.0.36)
//! through a murmur service node: messages both ways, in order, each side's
//! acknowledged, and a gap made on each side while it is away repaired
//! from the store by the hashes the next message names.

use std::time::Duration;

use libp2p::identity::Keypair;
use murmur::{
    core::ContentTopic,
    node::{
        reliable::{Config, Event, Options},
        Node, Reliable,
    },
};
use serde_json::json;

use crate::{
    jswaku::light_client,
    peer::Peer,
    support::{addr, away_node, start_node, WAIT},
};

#[path = "../../examples/reliable_channel.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[actix_rt::test]
async fn the_example_reads_in_order_and_repairs_the_gap() {
    assert_eq!(
        example::run().await.unwrap(),
        [
            "hello, Bob",
            "are you there?",
            "I will wait",
            "welcome back"
        ]
    );
}

fn topic() -> ContentTopic {
    "/murmur/1/reliable/proto".parse().unwrap()
}

/// Short clocks, so that a test sees syncs and fetches within seconds;
/// resends none within a test (they would fill a gap as well, and the
/// tests are of the store path).
fn options(sender: &str) -> Options {
    let config = Config {
        sync_every: 2_000,
        resend_every: 600_000,
        ..Config::default()
    };
    Options::new(topic(), "room", sender)
        .with_config(config)
        .with_fetch_every(Duration::from_secs(1))
}

/// A relay node whose only peer is `service`, that runs no store-sync
/// rounds: what it misses comes back only by what the channel asks for.
async fn participant(dir: &std::path::Path, key: &Keypair, service: &Node) -> Node {
    away_node(dir, key, service, false).await
}

async fn meshed(node: &Node) {
    node.wait_for_peers(&node.pubsub_topic(&topic()), 1, WAIT)
        .await
        .unwrap();
}

/// Events until `done` says enough, or the wait runs out.
async fn events_until(
    channel: &mut Reliable,
    what: &str,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match channel.recv_timeout(left).await {
            Some(event) => seen.push(event),
            None => panic!("{what}: not within the wait; saw {}", summary(&seen)),
        }
    }
    seen
}

fn summary(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| match e {
            Event::Delivered(d) => format!("delivered {:?}", String::from_utf8_lossy(&d.content)),
            Event::Acknowledged(id) => format!("acked {}", &id[..8]),
            other => format!("{:?}", std::mem::discriminant(other)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn delivered(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered(d) => Some(String::from_utf8(d.content.clone()).unwrap()),
            _ => None,
        })
        .collect()
}

fn acked(events: &[Event], id: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Acknowledged(a) if a == id))
}

#[actix_rt::test]
async fn two_murmur_nodes_share_a_channel_and_a_gap_is_fetched_by_the_hash_it_names() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let service = start_node(dirs[0].path()).await;
    let alice_node = participant(dirs[1].path(), &Keypair::generate_secp256k1(), &service).await;
    let bob_key = Keypair::generate_secp256k1();
    let bob_node = participant(dirs[2].path(), &bob_key, &service).await;
    meshed(&alice_node).await;
    meshed(&bob_node).await;
    let mut alice = alice_node.reliable_channel(options("alice")).await.unwrap();
    // Hashes only: no reading the topic's past when they find nothing.
    let by_hash = || options("bob").with_reread(None);
    let mut bob = bob_node.reliable_channel(by_hash()).await.unwrap();

    let hello = alice.send("hello").await.unwrap();
    let seen = events_until(&mut bob, "bob gets hello", |e| !delivered(e).is_empty()).await;
    assert_eq!(delivered(&seen), ["hello"]);
    let reply = bob.send("hi alice").await.unwrap();
    let seen = events_until(&mut alice, "alice gets the reply and an ack", |e| {
        !delivered(e).is_empty() && acked(e, &hello)
    })
    .await;
    assert_eq!(delivered(&seen), ["hi alice"]);
    events_until(&mut bob, "bob's reply acknowledged", |e| acked(e, &reply)).await;

    // Bob goes away; what Alice sends meanwhile only the store has.
    bob.close().await;
    bob_node.go_offline().await.unwrap();
    drop(bob_node);
    for text in ["while away 1", "while away 2"] {
        alice.send(text).await.unwrap();
    }
    crate::support::stored(&alice_node, &addr(&service, false), &topic(), 4).await;
    let bob_node = participant(dirs[2].path(), &bob_key, &service).await;
    meshed(&bob_node).await;
    let mut bob = bob_node.reliable_channel(by_hash()).await.unwrap();
    // Its history names the two: Bob fetches them by hash, and delivers
    // all three in order, and nothing it had before again (what it had
    // would come first).
    alice.send("back?").await.unwrap();
    let seen = events_until(&mut bob, "bob repairs the gap", |e| delivered(e).len() >= 3).await;
    assert_eq!(delivered(&seen), ["while away 1", "while away 2", "back?"]);
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Missing(m) if m.len() == 2)),
        "the gap was noticed from the next message: {}",
        summary(&seen)
    );
}

/// A js-waku light client of `service` with a reliable channel open as
/// `sender`.
async fn js_participant(service: &Node, sender: &str) -> Peer {
    let mut js = light_client().await;
    js.call(json!({"cmd": "dial", "addr": addr(service, true)}))
        .await;
    js.call(json!({
        "cmd": "waitForProtocols", "protocols": ["lightpush", "filter", "store"],
        "contentTopic": topic().as_str(), "timeoutMs": 20_000,
    }))
    .await;
    js.call(json!({
        "cmd": "reliableOpen", "channelId": "room", "senderId": sender,
        "contentTopic": topic().as_str(),
        "options": {
            "syncMinIntervalMs": 2_000, "retryIntervalMs": 600_000,
            "retrieveFrequencyMs": 1_000, "sweepInBufIntervalMs": 500,
        },
    }))
    .await;
    js
}

/// The next event of `kind` on the js-waku side whose `field` is `value`.
async fn js_event(js: &mut Peer, kind: &str, field: &str, value: &str) -> serde_json::Value {
    js_event_where(js, kind, &format!("{field} = {value}"), |e| {
        e[field] == value
    })
    .await
}

/// The next event of `kind` on the js-waku side that `wanted` accepts.
async fn js_event_where(
    js: &mut Peer,
    kind: &str,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut other = Vec::new();
    let found = tokio::time::timeout(WAIT * 3, async {
        loop {
            let event = js.next_event(kind).await;
            if wanted(&event) {
                return event;
            }
            other.push(event);
        }
    })
    .await;
    match found {
        Ok(event) => {
            // Others of the kind stay for whoever waits for them next.
            js.keep(other);
            event
        }
        Err(_) => panic!(
            "js-waku: no {kind} with {what}; of the kind: {other:?}; other events:\n{}",
            js.unread()
        ),
    }
}

fn hex_of(text: &str) -> String {
    hex::encode(text)
}

#[actix_rt::test]
async fn a_js_waku_reliable_channel_and_a_murmur_node_share_one_channel() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let service = start_node(dirs[0].path()).await;
    let key = Keypair::generate_secp256k1();
    let node = participant(dirs[1].path(), &key, &service).await;
    meshed(&node).await;
    let mut murmur = node.reliable_channel(options("murmur")).await.unwrap();
    let mut js = js_participant(&service, "js").await;

    // js-waku -> murmur, acknowledged back to js-waku.
    let sent = js
        .call(json!({"cmd": "reliableSend", "channelId": "room", "payload": hex_of("from js")}))
        .await;
    let js_id = sent["messageId"].as_str().unwrap().to_owned();
    assert_eq!(js_id, murmur::sds::message_id(b"from js"));
    let seen = events_until(&mut murmur, "murmur gets js-waku's message", |e| {
        !delivered(e).is_empty()
    })
    .await;
    assert_eq!(delivered(&seen), ["from js"]);
    js_event(
        &mut js,
        "reliable:message-acknowledged",
        "messageId",
        &js_id,
    )
    .await;

    // murmur -> js-waku, delivered there and acknowledged back.
    let id = murmur.send("from murmur").await.unwrap();
    js_event(
        &mut js,
        "reliable:sds:in:message-delivered",
        "messageId",
        &id,
    )
    .await;
    events_until(&mut murmur, "js-waku acknowledges murmur's message", |e| {
        acked(e, &id)
    })
    .await;

    // A gap on the murmur side: away while js-waku sends two.
    murmur.close().await;
    node.go_offline().await.unwrap();
    drop(node);
    let mut away = Vec::new();
    for text in ["js while murmur away 1", "js while murmur away 2"] {
        let sent = js
            .call(json!({"cmd": "reliableSend", "channelId": "room", "payload": hex_of(text)}))
            .await;
        let id = sent["messageId"].as_str().unwrap().to_owned();
        js_event(&mut js, "reliable:message-sent", "messageId", &id).await;
        away.push(id);
    }
    let node = participant(dirs[1].path(), &key, &service).await;
    meshed(&node).await;
    let mut murmur = node.reliable_channel(options("murmur")).await.unwrap();
    js.call(json!({"cmd": "reliableSend", "channelId": "room", "payload": hex_of("js again")}))
        .await;
    let seen = events_until(&mut murmur, "murmur repairs its gap", |e| {
        delivered(e).len() >= 3
    })
    .await;
    assert_eq!(
        delivered(&seen),
        [
            "js while murmur away 1",
            "js while murmur away 2",
            "js again"
        ]
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Missing(m) if m.iter().map(|m| &m.message_id).eq(&away))),
        "the gap was noticed from the next message: {}",
        summary(&seen)
    );
    for id in &away {
        js_event(&mut js, "reliable:message-acknowledged", "messageId", id).await;
    }

    // A gap on the js-waku side: its filter subscription goes (as one
    // that lapsed), murmur sends two, it subscribes again; murmur's next
    // message names what it missed, and js-waku fetches it from the
    // service node's store by hash.
    js.call(json!({"cmd": "reliableAway", "channelId": "room"}))
        .await;
    let mut missed = Vec::new();
    for text in ["murmur while js away 1", "murmur while js away 2"] {
        missed.push(murmur.send(text).await.unwrap());
    }
    crate::support::stored(&node, &addr(&service, false), &topic(), 8).await;
    js.call(json!({"cmd": "reliableBack", "channelId": "room"}))
        .await;
    let last = murmur.send("murmur again").await.unwrap();
    for id in missed.iter().chain([&last]) {
        js_event(
            &mut js,
            "reliable:sds:in:message-delivered",
            "messageId",
            id,
        )
        .await;
    }
    // It knew of them only from that message, which named their hashes.
    js_event_where(&mut js, "reliable:sds:in:message-missing", "the two", |e| {
        e["messageIds"] == json!(missed)
    })
    .await;
    events_until(&mut murmur, "js-waku acknowledges what it fetched", |e| {
        missed.iter().all(|id| acked(e, id))
    })
    .await;
    js.stop().await;
}

#[actix_rt::test]
async fn a_message_the_application_was_not_done_with_comes_again() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let service = start_node(dirs[0].path()).await;
    let alice_node = participant(dirs[1].path(), &Keypair::generate_secp256k1(), &service).await;
    let bob_node = participant(dirs[2].path(), &Keypair::generate_secp256k1(), &service).await;
    meshed(&alice_node).await;
    meshed(&bob_node).await;
    let alice = alice_node.reliable_channel(options("alice")).await.unwrap();
    let mut bob = bob_node.reliable_channel(options("bob")).await.unwrap();

    alice.send("once").await.unwrap();
    let seen = events_until(&mut bob, "bob gets it", |e| !delivered(e).is_empty()).await;
    assert_eq!(delivered(&seen), ["once"]);
    // The application dies with it in hand, before asking for more.
    drop(bob);
    let mut bob = bob_node.reliable_channel(options("bob")).await.unwrap();
    let seen = events_until(&mut bob, "it comes again", |e| !delivered(e).is_empty()).await;
    assert_eq!(delivered(&seen), ["once"]);
    // Done with this time (closing says so): it does not come a third time.
    bob.close().await;
    let mut bob = bob_node.reliable_channel(options("bob")).await.unwrap();
    alice.send("twice").await.unwrap();
    let seen = events_until(&mut bob, "the next", |e| !delivered(e).is_empty()).await;
    assert_eq!(delivered(&seen), ["twice"]);
}
