//! Private groups over real libp2p nodes on loopback: one message on the
//! wire for every member, members who never met each other, a removed
//! member who reads nothing sent afterwards, and refusals that change
//! nothing.

use std::time::Duration;

use murmur::node::{
    chat::{ChatMessage, Group, Inbox, Role, Unreadable},
    groups::group_topic,
    Error, Node,
};
use murmur_core::{groups, WakuMessage};

use crate::support::{
    account, befriend, chat_node, eventually, members, metric, next_in_group, WAIT,
};

async fn node(dir: &std::path::Path, peer: Option<&Node>) -> Node {
    chat_node(dir, peer).await
}

async fn next(inbox: &mut Inbox, what: &str) -> ChatMessage {
    next_in_group(inbox, None, what).await
}

/// Three accounts: Alice knows Bob and Carol, who have never met.
async fn three() -> ([tempfile::TempDir; 3], Node, Node, Node) {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let bob = node(dirs[1].path(), Some(&alice)).await;
    let carol = node(dirs[2].path(), Some(&alice)).await;
    for other in [&bob, &carol] {
        befriend(&alice, other).await;
    }
    (dirs, alice, bob, carol)
}

/// A metered node on `dir` with `key` whose one peer is `relay`: the same
/// node each time it starts again, after being away.
async fn away(dir: &std::path::Path, key: &libp2p::identity::Keypair, relay: &Node) -> Node {
    let mut c = crate::support::loopback_config(dir, &["/ip4/127.0.0.1/tcp/0"]);
    c.network.peers = vec![crate::support::addr(relay, false).parse().unwrap()];
    murmur::node::Builder::new(c)
        .with_keypair(key.clone())
        .start()
        .await
        .unwrap()
}

pub(crate) async fn meshed(nodes: &[&Node], group: &Group) {
    let topic = group_topic(group.id());
    for n in nodes {
        n.wait_for_peers(&n.pubsub_topic(&topic), 1, WAIT)
            .await
            .expect("a peer on the group's shard");
    }
}

#[actix_rt::test]
async fn a_removed_member_reads_nothing_sent_after_its_removal() {
    let (_dirs, alice, bob, carol) = three().await;
    let (a, b, c) = (
        account(&alice).await,
        account(&bob).await,
        account(&carol).await,
    );
    let mut inboxes = [
        alice.inbox().await.unwrap(),
        bob.inbox().await.unwrap(),
        carol.inbox().await.unwrap(),
    ];

    let group = alice.create_group("friends").await.expect("created");
    group.add(b).await.expect("Alice is an admin");
    group.add(c).await.expect("Alice is an admin");
    members(&bob, &group, 3).await;
    members(&carol, &group, 3).await;
    meshed(&[&alice, &bob, &carol], &group).await;
    let info = bob.group(group.id()).info().await.unwrap();
    assert_eq!(info.name, "friends");
    assert!(info.members.contains(&(a, Role::Owner)));
    assert!(info.members.contains(&(c, Role::Member)));

    let sent = group.send_text("hello group").await.expect("sent");
    for (inbox, who) in inboxes[1..].iter_mut().zip(["Bob, first", "Carol, first"]) {
        let got = next(inbox, who).await;
        assert_eq!(got.text(), Some("hello group"));
        assert_eq!(got.sender, a, "the sender is the chain's owner");
        assert_eq!(got.group, Some(group.id()));
        assert_eq!(got.id, sent.id);
    }
    // The membership stage timed its part (`/metrics`): Alice's post,
    // Bob's open.
    for (node, name) in [
        (&alice, "murmur_groups_post_seconds_count"),
        (&bob, "murmur_groups_open_seconds_count"),
    ] {
        assert!(crate::support::metric(node, name).await >= 1, "{name}");
    }
    // Carol and Bob never met: they read each other through the keys the
    // group handed over.
    carol
        .group(group.id())
        .send_text("hi, from Carol")
        .await
        .unwrap();
    for (i, who) in [(0, "Alice"), (1, "Bob")] {
        let got = next(&mut inboxes[i], who).await;
        assert_eq!((got.text(), got.sender), (Some("hi, from Carol"), c));
    }

    // Bob is a member, not an admin: his removal of Carol is refused and
    // changes nothing.
    let err = bob.group(group.id()).remove(c).await.unwrap_err();
    assert!(
        matches!(err, Error::Group(groups::Error::Forbidden(_))),
        "{err}"
    );
    assert_eq!(bob.group(group.id()).info().await.unwrap().members.len(), 3);

    group.remove(b).await.expect("Alice removes Bob");
    members(&carol, &group, 2).await;
    members(&bob, &group, 2).await;
    let refused_before = bob.stats().await.unwrap().group_refused;
    group.send_text("after Bob left").await.unwrap();
    assert_eq!(
        next(&mut inboxes[2], "Carol, after the removal")
            .await
            .text(),
        Some("after Bob left")
    );
    carol
        .group(group.id())
        .send_text("Carol, after Bob")
        .await
        .unwrap();
    assert_eq!(
        next(&mut inboxes[0], "Alice, after the removal")
            .await
            .text(),
        Some("Carol, after Bob")
    );
    assert!(
        inboxes[1]
            .recv_timeout(Duration::from_secs(2))
            .await
            .is_none(),
        "the removed member reads nothing"
    );
    let stats = bob.stats().await.unwrap();
    assert!(
        stats.group_refused >= refused_before + 2,
        "both messages reached Bob and did not open: {stats:?}"
    );
    let err = bob
        .group(group.id())
        .send_text("still here?")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Group(groups::Error::NotMember(_))),
        "{err}"
    );
    assert!(!bob.group(group.id()).info().await.unwrap().member);
}

#[actix_rt::test]
async fn tampered_replayed_and_garbage_group_messages_are_refused_and_counted() {
    let (_dirs, alice, bob, carol) = three().await;
    let group = alice.create_group("g").await.unwrap();
    group.add(account(&bob).await).await.unwrap();
    members(&bob, &group, 2).await;
    meshed(&[&alice, &bob, &carol], &group).await;
    let mut inbox = bob.inbox().await.unwrap();
    // Carol is no member; she relays the group's shard and sees its
    // messages go by.
    let topic = group_topic(group.id());
    let mut wire = carol.subscribe([&topic]).await.unwrap();
    group.send_text("original").await.unwrap();
    assert_eq!(next(&mut inbox, "Bob").await.text(), Some("original"));
    let seen = wire
        .recv_timeout(WAIT)
        .await
        .expect("Carol relays it")
        .message;
    assert!(!seen.payload.windows(8).any(|w| w == b"original"));

    let shard = carol.pubsub_topic(&topic);
    let mut tampered = seen.clone();
    let mut payload = tampered.payload.to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    tampered.payload = payload.into();
    tampered.timestamp = Some(murmur_core::now_nanos());
    let mut replayed = seen.clone();
    replayed.timestamp = Some(murmur_core::now_nanos() + 1);
    let garbage = WakuMessage::new(topic.as_str(), b"not a group message".to_vec());
    let metrics = bob.group_metrics();
    let before = (metrics.refused("malformed"), metrics.refused("replay"));
    for m in [tampered, replayed, garbage] {
        carol.publish(shard.clone(), m).await.unwrap();
    }
    group.send_text("after the noise").await.unwrap();
    assert_eq!(
        next(&mut inbox, "Bob").await.text(),
        Some("after the noise")
    );
    let metrics = bob.group_metrics();
    eventually("the noise is refused", || async {
        metrics.refused("malformed") >= before.0 + 2 && metrics.refused("replay") > before.1
    })
    .await;
    assert!(
        inbox.recv_timeout(Duration::ZERO).await.is_none(),
        "none of the noise was delivered"
    );
    assert_eq!(
        metrics.refused("malformed"),
        before.0 + 2,
        "tampered and garbage"
    );
    assert_eq!(metrics.refused("replay"), before.1 + 1);
}

#[actix_rt::test]
async fn a_member_restarted_on_its_folder_still_reads_and_writes_the_group() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = node(dirs[0].path(), None).await;
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let bob_config = |alice: &Node| {
        let mut c = crate::support::loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.network.peers = vec![crate::support::addr(alice, false).parse().unwrap()];
        c
    };
    let bob = murmur::node::Builder::new(bob_config(&alice))
        .with_keypair(bob_key.clone())
        .start()
        .await
        .unwrap();
    let b = account(&bob).await;
    befriend(&alice, &bob).await;
    let group = alice.create_group("kept").await.unwrap();
    group.add(b).await.unwrap();
    members(&bob, &group, 2).await;
    meshed(&[&alice, &bob], &group).await;
    let mut alice_inbox = alice.inbox().await.unwrap();
    bob.group(group.id())
        .send_text("before the restart")
        .await
        .unwrap();
    assert_eq!(
        next(&mut alice_inbox, "before").await.text(),
        Some("before the restart")
    );

    // Bob's node stops; a new one starts on the same folder and key.
    bob.go_offline().await.unwrap();
    drop(bob);
    let bob = murmur::node::Builder::new(bob_config(&alice))
        .with_keypair(bob_key)
        .start()
        .await
        .unwrap();
    assert_eq!(
        bob.groups().await.unwrap().len(),
        1,
        "the group was persisted"
    );
    meshed(&[&alice, &bob], &group).await;
    let mut bob_inbox = bob.inbox().await.unwrap();
    group.send_text("after the restart").await.unwrap();
    assert_eq!(
        next(&mut bob_inbox, "Bob reads").await.text(),
        Some("after the restart")
    );
    bob.group(group.id()).send_text("and writes").await.unwrap();
    assert_eq!(
        next(&mut alice_inbox, "Alice reads").await.text(),
        Some("and writes")
    );
}

#[actix_rt::test]
async fn a_member_who_joins_reads_nothing_sent_before_it_joined() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let bob = node(dirs[1].path(), Some(&alice)).await;
    let carol = node(dirs[2].path(), Some(&alice)).await;
    let b = befriend(&alice, &bob).await;
    let c = befriend(&alice, &carol).await;
    let group = alice.create_group("g").await.unwrap();
    group.add(b).await.unwrap();
    members(&bob, &group, 2).await;
    meshed(&[&alice, &bob, &carol], &group).await;
    // Carol relays the group's shard and keeps what goes by, as a store
    // would; she is not a member yet.
    let mut wire = carol.subscribe([&group_topic(group.id())]).await.unwrap();
    let mut bob_inbox = bob.inbox().await.unwrap();
    group.send_text("before Carol").await.unwrap();
    assert_eq!(
        next(&mut bob_inbox, "Bob").await.text(),
        Some("before Carol")
    );
    let earlier = wire
        .recv_timeout(WAIT)
        .await
        .expect("Carol relays it")
        .message;

    group.add(c).await.unwrap();
    members(&carol, &group, 3).await;
    let mut carol_inbox = carol.inbox().await.unwrap();
    let refused = carol.stats().await.unwrap().group_refused;
    // The earlier message comes again (a store, a replay): it does not open.
    let mut again = earlier.clone();
    again.timestamp = Some(murmur_core::now_nanos());
    alice
        .publish(alice.pubsub_topic(&group_topic(group.id())), again)
        .await
        .unwrap();
    group.send_text("after Carol").await.unwrap();
    assert_eq!(
        next(&mut carol_inbox, "Carol").await.text(),
        Some("after Carol")
    );
    assert!(carol_inbox
        .recv_timeout(Duration::from_millis(500))
        .await
        .is_none());
    assert!(carol.stats().await.unwrap().group_refused > refused);
}

#[actix_rt::test]
async fn a_member_that_missed_a_change_while_offline_pulls_it_from_the_next_message() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    // A relay that stays up: what Alice publishes while Bob is away goes
    // out, and Bob never sees it.
    let relay = node(dirs[2].path(), None).await;
    let alice = chat_node(dirs[0].path(), Some(&relay)).await;
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let start_bob = || away(dirs[1].path(), &bob_key, &relay);
    let bob = start_bob().await;
    let b = befriend(&alice, &bob).await;
    let group = alice.create_group("before").await.unwrap();
    group.add(b).await.unwrap();
    members(&bob, &group, 2).await;

    // Bob is away while Alice renames the group: the event goes out to the
    // relay and Bob never gets it (nor asks a store node for it).
    bob.go_offline().await.unwrap();
    drop(bob);
    group.rename("after").await.unwrap();
    let bob = start_bob().await;
    assert_eq!(bob.group(group.id()).info().await.unwrap().name, "before");
    meshed(&[&alice, &bob], &group).await;
    crate::support::meshed_for(&alice, b).await;
    let mut bob_inbox = bob.inbox().await.unwrap();
    group.send_text("did you see the new name?").await.unwrap();
    next(&mut bob_inbox, "Alice's message").await;
    // Her message named her log's heads; Bob lacked one and asked her.
    eventually("Bob learns the rename from Alice's log", || async {
        bob.group(group.id()).info().await.unwrap().name == "after"
    })
    .await;
    assert_eq!(metric(&bob, "murmur_groups_pulled_total").await, 1);
    assert_eq!(metric(&alice, "murmur_groups_served_total").await, 1);
}

/// Bob is away while Alice adds Carol: the event and Carol's chain key go
/// out through the relay, which keeps nothing (no store), so Bob never
/// gets them. When Carol writes, Bob cannot read her message: he asks the
/// members he knows (Alice) for the key, Alice sees from his heads that
/// he lacks events and sends her log with her members' bundles, Bob learns
/// that Carol (whom he never met) is a member, asks her, and reads the
/// message, parked until then. Fails without the key request (Bob never
/// reads it).
#[actix_rt::test]
async fn a_member_that_missed_a_newcomers_key_while_offline_asks_for_it_and_reads_on() {
    let dirs = [(); 4].map(|_| tempfile::tempdir().unwrap());
    let relay = {
        let mut c = crate::support::loopback_config(dirs[3].path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.store.enabled = false;
        c.store.archive = false;
        murmur::node::Builder::new(c)
            .with_keypair(libp2p::identity::Keypair::generate_secp256k1())
            .start()
            .await
            .unwrap()
    };
    let alice = chat_node(dirs[0].path(), Some(&relay)).await;
    let carol = chat_node(dirs[2].path(), Some(&relay)).await;
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let start_bob = || away(dirs[1].path(), &bob_key, &relay);
    let bob = start_bob().await;
    let b = befriend(&alice, &bob).await;
    // Bob and Carol never met: Bob learns Carol's bundles with Alice's log.
    let c = befriend(&alice, &carol).await;
    let group = alice.create_group("while bob is away").await.unwrap();
    group.add(b).await.unwrap();
    members(&bob, &group, 2).await;

    // What goes to Bob's partition while he is away, as the relay sees
    // it: Alice's event and Carol's key, and (if their partitions are
    // Bob's too) Carol's key to Alice and Alice's log to Carol.
    let a = crate::support::account(&alice).await;
    let partition = crate::support::partition_topic_of;
    let mut to_bob = relay.subscribe([&partition(b)]).await.unwrap();
    let expected =
        2 + usize::from(partition(a) == partition(b)) + usize::from(partition(c) == partition(b));
    bob.go_offline().await.unwrap();
    drop(bob);
    group.add(c).await.unwrap();
    for _ in 0..expected {
        to_bob
            .recv_timeout(crate::support::WAIT)
            .await
            .expect("Alice's event and Carol's key go out while Bob is away");
    }

    let bob = start_bob().await;
    assert_eq!(bob.group(group.id()).info().await.unwrap().members.len(), 2);
    meshed(&[&carol, &bob], &group).await;
    let mut bob_inbox = bob.inbox().await.unwrap();
    let mut unreadable = bob.unreadable().await.unwrap();
    carol
        .group(group.id())
        .send_text("hello from the newcomer")
        .await
        .unwrap();
    assert_eq!(
        unreadable.recv_timeout(WAIT).await,
        Some(Unreadable::ChainKey {
            topic: group_topic(group.id()),
            asked: true
        }),
        "Bob is told what did not open, and that the key was asked for"
    );
    let got = next(&mut bob_inbox, "Carol's message").await;
    assert_eq!(got.text(), Some("hello from the newcomer"));
    assert_eq!(got.sender, c);
    assert!(metric(&bob, "murmur_groups_keys_asked_total").await >= 2);
    assert_eq!(metric(&carol, "murmur_groups_keys_served_total").await, 1);
    assert_eq!(metric(&alice, "murmur_groups_keys_served_total").await, 0);
    assert_eq!(bob.group(group.id()).info().await.unwrap().members.len(), 3);
}
