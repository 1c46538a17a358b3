//! Channels against each other and against someone who means harm.

use prost::Message as _;

use crate::{bloom, message_id, Channel, Config, Error, Event, HistoryEntry, Message};

const T0: u64 = 1_700_000_000_000;

fn quiet() -> Config {
    Config {
        sync_every: 0,
        ..Config::default()
    }
}

fn channel(me: &str) -> Channel {
    Channel::new("room", me, quiet(), T0)
}

/// Sends `text` from `from`, as published in a Waku message with a hash
/// made from the text.
fn send(from: &mut Channel, text: &str, now: u64) -> Message {
    let message = from.send(text.as_bytes(), now).unwrap();
    from.sent(&message.message_id, Some(hint(text)), now);
    message
}

fn hint(text: &str) -> Vec<u8> {
    let mut h = [0u8; 32];
    h[..text.len().min(32)].copy_from_slice(&text.as_bytes()[..text.len().min(32)]);
    h.to_vec()
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.message_id.clone()).collect()
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

fn acked(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Acknowledged(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_arrive_in_causal_order_whatever_order_they_come_in() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let sent: Vec<Message> = (0..5)
        .map(|i| send(&mut alice, &format!("m{i}"), T0 + i))
        .collect();
    let mut got = Vec::new();
    for i in [4, 2, 0, 3, 1] {
        let events = bob.receive(sent[i].clone(), None, T0 + 10).unwrap();
        got.extend(delivered(&events));
    }
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(bob.buffered(), 0);
    assert_eq!(bob.missing().count(), 0);
}

#[test]
fn a_gap_names_the_store_hash_to_fetch() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    send(&mut alice, "lost", T0);
    let next = send(&mut alice, "next", T0 + 1);
    let events = bob.receive(next, None, T0 + 2).unwrap();
    let Event::Missing(missing) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(missing[0].message_id, message_id(b"lost"));
    assert_eq!(missing[0].retrieval_hint, Some(hint("lost")));
    assert_eq!(missing[0].sender_id.as_deref(), Some("alice"));
    assert_eq!(bob.buffered(), 1);
}

#[test]
fn a_message_is_acknowledged_by_causal_history_or_by_two_filters() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let first = send(&mut alice, "first", T0);
    bob.receive(first.clone(), None, T0 + 1).unwrap();
    let reply = send(&mut bob, "reply", T0 + 2);
    assert_eq!(
        acked(&alice.receive(reply, None, T0 + 3).unwrap()),
        std::slice::from_ref(&first.message_id)
    );

    // Carol's filter has it, but carol names nothing: two filters make it.
    let second = send(&mut alice, "second", T0 + 4);
    let mut carol = channel("carol");
    carol.receive(first, None, T0 + 5).unwrap();
    carol.receive(second.clone(), None, T0 + 5).unwrap();
    let mut sync = carol.sync(T0 + 6).unwrap();
    sync.causal_history.clear();
    let events = alice.receive(sync.clone(), None, T0 + 7).unwrap();
    assert!(matches!(
        &events[..],
        [Event::PossiblyAcknowledged { count: 1, .. }]
    ));
    sync.message_id = "sync-2".into();
    assert_eq!(
        acked(&alice.receive(sync, None, T0 + 8).unwrap()),
        [second.message_id]
    );
    assert_eq!(alice.unacknowledged().count(), 0);
}

#[test]
fn a_stranger_with_a_filter_of_every_bit_acknowledges_nothing() {
    let mut alice = channel("alice");
    send(&mut alice, "hello", T0);
    for i in 0..3 {
        let forged = Message {
            sender_id: "mallory".into(),
            message_id: format!("sync-{i}"),
            channel_id: "room".into(),
            lamport_timestamp: Some(T0),
            bloom_filter: Some(vec![0xff; bloom::LEN]),
            ..Default::default()
        };
        assert!(alice.receive(forged, None, T0 + 1).unwrap().is_empty());
    }
    assert_eq!(alice.unacknowledged().count(), 1);
}

#[test]
fn a_message_made_up_under_a_real_ones_id_is_refused_and_the_real_one_arrives() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let real = send(&mut alice, "pay carol 5", T0);
    let mut forged = real.clone();
    forged.sender_id = "mallory".into();
    forged.content = Some(b"pay mallory 500".to_vec());
    assert_eq!(
        bob.receive(forged, None, T0 + 1),
        Err(Error::WrongId(real.message_id.clone()))
    );
    assert_eq!(
        delivered(&bob.receive(real, None, T0 + 2).unwrap()),
        ["pay carol 5"]
    );
}

#[test]
fn a_replay_is_delivered_once_even_after_it_left_memory() {
    let config = Config {
        remember: 4,
        sync_every: 0,
        ..Config::default()
    };
    let mut alice = Channel::new("room", "alice", config.clone(), T0);
    let mut bob = Channel::new("room", "bob", config, T0);
    let sent: Vec<Message> = (0..10)
        .map(|i| send(&mut alice, &format!("m{i}"), T0 + i))
        .collect();
    let mut count = 0;
    for m in &sent {
        count += delivered(&bob.receive(m.clone(), None, T0 + 20).unwrap()).len();
    }
    assert_eq!(count, 10);
    // Everything again, the oldest long forgotten by id.
    for m in &sent {
        assert!(
            delivered(&bob.receive(m.clone(), None, T0 + 30).unwrap()).is_empty(),
            "{} delivered twice",
            m.message_id
        );
    }
}

#[test]
fn a_flood_of_messages_with_made_up_dependencies_is_bounded_and_loses_nothing() {
    let config = Config {
        max_buffered: 8,
        max_missing: 16,
        sync_every: 0,
        ..Config::default()
    };
    let mut bob = Channel::new("room", "bob", config, T0);
    let mut released = 0;
    for i in 0..100u64 {
        let content = format!("flood {i}").into_bytes();
        let message = Message {
            sender_id: "mallory".into(),
            message_id: message_id(&content),
            channel_id: "room".into(),
            lamport_timestamp: Some(T0 + i),
            causal_history: (0..200)
                .map(|j| HistoryEntry {
                    message_id: format!("{i}-{j}"),
                    retrieval_hint: Some(vec![0; 32]),
                    sender_id: None,
                })
                .collect(),
            content: Some(content),
            ..Default::default()
        };
        released += delivered(&bob.receive(message, None, T0 + i).unwrap()).len();
    }
    assert_eq!(bob.buffered(), 8);
    assert!(bob.missing().count() <= 16);
    assert_eq!(released, 92, "the oldest held back go on, with gaps named");
    // After the wait, the rest go too, and the gaps are given up.
    let tick = bob.tick(T0 + 200 + Config::default().lost_after);
    assert_eq!(delivered(&tick.events).len(), 8);
    assert!(tick.events.iter().any(|e| matches!(e, Event::Lost(_))));
    assert_eq!(bob.missing().count(), 0);
}

#[test]
fn a_held_back_message_waits_for_its_dependency_then_goes_on_with_the_gap_named() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    send(&mut alice, "never comes", T0);
    let next = send(&mut alice, "next", T0 + 1);
    bob.receive(next, None, T0 + 2).unwrap();
    assert!(delivered(&bob.tick(T0 + 3).events).is_empty());
    let tick = bob.tick(T0 + 2 + bob_config().lost_after);
    let Some(Event::Delivered(d)) = tick.events.first() else {
        panic!("{:?}", tick.events)
    };
    assert_eq!(d.content, b"next");
    assert_eq!(d.gaps[0].message_id, message_id(b"never comes"));
}

fn bob_config() -> Config {
    quiet()
}

#[test]
fn an_unacknowledged_message_is_sent_again_then_given_up() {
    let config = Config {
        max_resends: 2,
        sync_every: 0,
        ..Config::default()
    };
    let every = config.resend_every;
    let mut alice = Channel::new("room", "alice", config, T0);
    let first = send(&mut alice, "hello", T0);
    assert!(alice.tick(T0 + every - 1).publish.is_empty());
    let mut now = T0;
    for _ in 0..2 {
        now += every;
        let tick = alice.tick(now);
        assert_eq!(tick.publish.len(), 1);
        assert!(tick.publish[0] == first, "the same bytes again");
        alice.sent(&first.message_id, Some(vec![9; 32]), now);
    }
    let tick = alice.tick(now + every);
    assert!(tick.publish.is_empty());
    assert_eq!(tick.events, [Event::Unacknowledged(first.message_id)]);
}

#[test]
fn its_own_echo_other_channels_and_garbage_give_nothing_or_a_typed_error() {
    let mut alice = channel("alice");
    let own = send(&mut alice, "mine", T0);
    assert!(alice.receive(own.clone(), None, T0).unwrap().is_empty());
    let mut other = own.clone();
    other.channel_id = "elsewhere".into();
    other.sender_id = "bob".into();
    assert!(alice.receive(other, None, T0).unwrap().is_empty());
    assert!(matches!(
        alice.receive_bytes(&[0xff, 0xff, 0xff], None, T0),
        Err(Error::Malformed(_))
    ));
    let empty = Message {
        sender_id: "bob".into(),
        channel_id: "room".into(),
        ..Default::default()
    };
    assert_eq!(alice.receive(empty, None, T0), Err(Error::Empty));
    assert_eq!(alice.send(b"", T0), Err(Error::Empty));
}

#[test]
fn a_filter_of_the_wrong_length_is_ignored_not_fatal() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    send(&mut alice, "hello", T0);
    let mut reply = send(&mut bob, "hi", T0 + 1);
    reply.bloom_filter = Some(vec![0; 3]);
    assert_eq!(
        delivered(&alice.receive(reply, None, T0 + 2).unwrap()),
        ["hi"]
    );
}

#[test]
fn the_same_content_twice_is_one_message() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let first = send(&mut alice, "ok", T0);
    assert_eq!(alice.send(b"ok", T0 + 1).unwrap(), first, "still pending");
    bob.receive(first.clone(), None, T0 + 2).unwrap();
    alice
        .receive(send(&mut bob, "ack", T0 + 3), None, T0 + 4)
        .unwrap();
    assert_eq!(
        alice.send(b"ok", T0 + 5),
        Err(Error::Repeated(first.message_id))
    );
}

#[test]
fn a_restored_participant_keeps_its_clock_history_and_what_waits_for_an_ack() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let pending = send(&mut alice, "unacked", T0);
    let from_bob = send(&mut bob, "from bob", T0 + 1);
    alice.receive(from_bob.clone(), None, T0 + 2).unwrap();
    let held = {
        send(&mut bob, "lost on the way", T0 + 3);
        send(&mut bob, "held", T0 + 4)
    };
    alice.receive(held, None, T0 + 5).unwrap();

    let saved = alice.save();
    let mut again = Channel::restore("room", "alice", quiet(), &saved, T0 + 10).unwrap();
    assert!(again.is_pending(&pending.message_id));
    assert!(
        again.receive(from_bob, None, T0 + 11).unwrap().is_empty(),
        "no repeat"
    );
    assert_eq!(again.buffered(), 1);
    assert_eq!(again.missing().count(), 1);
    let tick = again.tick(T0 + 11);
    assert_eq!(
        ids(&tick.publish),
        [pending.message_id],
        "sent again at once after a restart"
    );
    let next = again.send(b"later", T0 + 12).unwrap();
    assert!(next.lamport_timestamp.unwrap() > T0 + 4);
    assert!(matches!(
        Channel::restore("room", "alice", quiet(), &saved[..10], T0),
        Err(Error::BadState(_))
    ));
}

#[test]
fn a_missing_message_is_asked_for_on_the_channel_and_its_author_sends_it_again() {
    let config = Config {
        resend_every: 1_000_000,
        ..quiet()
    };
    let mut alice = Channel::new("room", "alice", config, T0);
    let mut bob = channel("bob");
    let lost = send(&mut alice, "lost", T0);
    bob.receive(send(&mut alice, "next", T0 + 1), None, T0 + 2)
        .unwrap();
    let repair = Config::default().repair;
    // Not asked before the window opens; asked once it has.
    assert!(bob
        .send(b"early", T0 + 3)
        .unwrap()
        .repair_request
        .is_empty());
    let sync = bob.sync(T0 + 2 + repair.t_max).unwrap();
    assert_eq!(sync.repair_request[0].message_id, lost.message_id);
    alice.receive(sync, None, T0 + repair.t_max + 3).unwrap();
    let tick = alice.tick(T0 + repair.t_max + 3);
    assert_eq!(
        ids(&tick.publish),
        std::slice::from_ref(&lost.message_id),
        "the author answers at once"
    );
    let events = bob.receive(lost, None, T0 + repair.t_max + 4).unwrap();
    assert_eq!(delivered(&events), ["lost", "next"]);
    assert_eq!(bob.repairs_open(), 0);
}

#[test]
fn sync_messages_follow_the_clock_and_come_after_content_to_acknowledge_it() {
    let config = Config {
        sync_every: 1_000,
        ..Config::default()
    };
    let mut alice = Channel::new("room", "alice", config.clone(), T0);
    let mut bob = Channel::new("room", "bob", config, T0);
    assert!(bob.tick(T0 + 10_000).sync.is_none(), "nothing to sync yet");
    let hello = send(&mut alice, "hello", T0);
    bob.receive(hello.clone(), None, T0 + 1).unwrap();
    let sync = bob
        .tick(T0 + 1 + 501)
        .sync
        .expect("a sync within half the interval");
    assert!(sync.encode_to_vec().len() > bloom::LEN);
    assert_eq!(
        acked(&alice.receive(sync, None, T0 + 600).unwrap()),
        [hello.message_id]
    );
}

#[test]
fn a_participant_that_lost_its_state_takes_its_own_old_messages_back() {
    let mut before = channel("alice");
    let mut bob = channel("bob");
    let old = send(&mut before, "said before the loss", T0);
    bob.receive(old.clone(), None, T0 + 1).unwrap();
    let reply = send(&mut bob, "reply", T0 + 2);
    // Alice starts over under the same name, with nothing remembered.
    let mut alice = channel("alice");
    let events = alice.receive(reply.clone(), None, T0 + 3).unwrap();
    assert!(matches!(&events[..], [Event::Missing(m)] if m[0].message_id == old.message_id));
    let events = alice.receive(old, None, T0 + 4).unwrap();
    assert_eq!(delivered(&events), ["said before the loss", "reply"]);
    // Its echo of what it sends now is still nothing.
    let now = send(&mut alice, "now", T0 + 5);
    assert!(alice.receive(now, None, T0 + 6).unwrap().is_empty());
}

#[test]
fn a_copy_made_up_to_hold_a_real_message_back_gives_way_to_the_real_one() {
    let mut alice = channel("alice");
    let mut bob = channel("bob");
    let real = send(&mut alice, "meet at noon", T0);
    // Mallory saw it on the topic and sends it first, naming a made-up
    // dependency: the id covers the content, not the history.
    let mut held = real.clone();
    held.causal_history = vec![HistoryEntry {
        message_id: "f".repeat(64),
        retrieval_hint: None,
        sender_id: None,
    }];
    assert!(delivered(&bob.receive(held, None, T0 + 1).unwrap()).is_empty());
    let events = bob.receive(real, None, T0 + 2).unwrap();
    assert_eq!(
        delivered(&events),
        ["meet at noon"],
        "at once, not after a wait"
    );
    assert_eq!(bob.buffered(), 0);
}

#[test]
fn a_history_of_thousands_and_a_clock_at_its_end_cost_nothing_more_than_an_honest_message() {
    let mut bob = channel("bob");
    let content = b"huge".to_vec();
    let huge = Message {
        sender_id: "mallory".into(),
        message_id: message_id(&content),
        channel_id: "room".into(),
        lamport_timestamp: Some(u64::MAX),
        causal_history: (0..5_000)
            .map(|i| HistoryEntry {
                message_id: format!("{i:064}"),
                retrieval_hint: None,
                sender_id: None,
            })
            .collect(),
        repair_request: (0..1_000)
            .map(|i| HistoryEntry {
                message_id: format!("r{i}"),
                retrieval_hint: None,
                sender_id: Some("bob".into()),
            })
            .collect(),
        content: Some(content),
        ..Default::default()
    };
    let events = bob.receive(huge, None, T0).unwrap();
    let Some(Event::Missing(missing)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(missing.len(), Config::default().causal_history);
    // Released after the wait, its clock is not taken whole.
    bob.tick(T0 + Config::default().lost_after);
    let next = bob
        .send(b"after", T0 + Config::default().lost_after + 1)
        .unwrap();
    assert!(next.lamport_timestamp.unwrap() < u64::MAX / 2);
}

#[test]
fn a_flood_of_made_up_names_does_not_keep_a_real_gap_out() {
    let config = Config {
        max_missing: 16,
        sync_every: 0,
        ..Config::default()
    };
    let mut bob = Channel::new("room", "bob", config.clone(), T0);
    let junk = Message {
        sender_id: "mallory".into(),
        message_id: "sync-1".into(),
        channel_id: "room".into(),
        lamport_timestamp: Some(T0),
        causal_history: (0..16)
            .map(|i| HistoryEntry {
                message_id: format!("{i:064}"),
                retrieval_hint: None,
                sender_id: None,
            })
            .collect(),
        ..Default::default()
    };
    bob.receive(junk, None, T0).unwrap();
    let mut alice = Channel::new("room", "alice", config, T0);
    let lost = send(&mut alice, "lost", T0 + 1);
    bob.receive(send(&mut alice, "next", T0 + 2), None, T0 + 3)
        .unwrap();
    assert!(bob.missing().any(|m| m.message_id == lost.message_id));
    assert_eq!(bob.missing().count(), 16);
}
