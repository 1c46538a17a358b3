//! End-to-end encrypted 1:1 chat over real libp2p nodes on loopback: sealed
//! sender on partition topics, receipts, catching up from a store node, bad
//! envelopes refused and counted, and what an observer sees.

use std::time::Duration;

use bytes::Bytes;
use libp2p::identity::Keypair;
use murmur::node::{
    chat::{Body, ChatMessage, DeliveryState, Inbox},
    Builder, Node,
};
use murmur_core::WakuMessage;

use crate::support::{
    addr, befriend, eventually, loopback_config, members, meshed_for, next_in_group, WAIT,
};

async fn node_with_peer(dir: &std::path::Path, peer: Option<&Node>) -> Node {
    crate::support::chat_node(dir, peer).await
}

/// The next message in `inbox`, waiting at most [`WAIT`].
async fn next(inbox: &mut Inbox, what: &str) -> ChatMessage {
    inbox
        .recv_timeout(WAIT)
        .await
        .unwrap_or_else(|| panic!("no message within {WAIT:?}: {what}"))
}

/// Whether nothing arrives in `inbox` within `within`.
async fn silent(inbox: &mut Inbox, within: Duration) -> bool {
    inbox.recv_timeout(within).await.is_none()
}

/// `node` adds `other`'s contact code; answers `other`'s account.
async fn introduce(node: &Node, other: &Node) -> murmur::node::chat::AccountId {
    node.add_contact(&other.contact_code().await.unwrap())
        .await
        .unwrap()
}

/// Waits until `node` has a peer on the shard of `other`'s chat topic.
async fn meshed(node: &Node, other: &Node) {
    let topic = murmur::node::crypto::partition_topic(partition_of(other, 64).await);
    node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
        .await
        .expect("a peer on the shard");
}

#[actix_rt::test]
async fn two_accounts_chat_end_to_end_with_receipts_and_a_verified_sender() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = node_with_peer(dirs[0].path(), None).await;
    let bob = node_with_peer(dirs[1].path(), Some(&alice)).await;
    let (alice_id, _) = alice.chat_identity().await.unwrap();
    let (bob_id, bob_device) = bob.chat_identity().await.unwrap();
    assert_eq!(introduce(&alice, &bob).await, bob_id);
    let mut bob_inbox = bob.inbox().await.unwrap();
    let mut alice_inbox = alice.inbox().await.unwrap();
    meshed(&alice, &bob).await;

    let mut sent = alice
        .conversation(bob_id)
        .send_text("hello Bob")
        .await
        .expect("sealed and published");
    let got = next(&mut bob_inbox, "Bob receives").await;
    assert_eq!(got.text(), Some("hello Bob"));
    assert_eq!(
        got.sender, alice_id,
        "the sender is verified by the session"
    );
    assert_eq!(got.id, sent.id);
    // Bob never added Alice: a message request. Nothing went back (the
    // pipeline counted it instead of sending a receipt).
    assert!(got.request);
    assert_eq!(bob.requests().await.unwrap(), vec![alice_id]);
    assert_eq!(bob.stats().await.unwrap().requests, 1);
    // Bob accepts: the receipt held for Alice goes now.
    bob.accept(alice_id).await.unwrap();
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 }
    );
    assert!(bob.requests().await.unwrap().is_empty());
    // Each stage on the way timed its part (`/metrics`): Alice's seal,
    // Bob's archiving before he accepted it, his open, their writes.
    for (node, name) in [
        (&alice, "murmur_crypto_seal_seconds_count"),
        (&alice, "murmur_storage_write_seconds_count"),
        (&bob, "murmur_transport_archive_seconds_count"),
        (&bob, "murmur_crypto_open_seconds_count"),
    ] {
        assert!(crate::support::metric(node, name).await >= 1, "{name}");
    }

    // Bob answers without having added Alice: the session she opened is
    // enough.
    bob.conversation(alice_id)
        .send_typed("com.example.point", Bytes::from_static(b"\x01\x02"))
        .await
        .expect("Bob answers");
    let got = next(&mut alice_inbox, "Alice receives").await;
    assert_eq!(got.sender, bob_id);
    assert_eq!(got.device, bob_device);
    assert_eq!(
        got.body,
        Body::Typed {
            kind: "com.example.point".into(),
            data: Bytes::from_static(b"\x01\x02"),
        }
    );
    for i in 0..5 {
        alice
            .conversation(bob_id)
            .send_text(format!("more {i}"))
            .await
            .unwrap();
    }
    for i in 0..5 {
        let got = next(&mut bob_inbox, "in order").await;
        assert_eq!(got.text(), Some(format!("more {i}").as_str()));
        assert!(!got.request, "Alice is accepted now");
    }
}

#[actix_rt::test]
async fn an_unknown_contact_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let alice = node_with_peer(dir.path(), None).await;
    let stranger = murmur::node::chat::AccountId([7; 32]);
    let err = alice
        .conversation(stranger)
        .send_text("hi")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("add its contact code"), "{err}");
    // A code whose bundle signature does not verify.
    let other = tempfile::tempdir().unwrap();
    let bob = node_with_peer(other.path(), None).await;
    let code = bob.contact_code().await.unwrap();
    let mut bundle = murmur::node::crypto::parse_code(&code).unwrap();
    bundle.signed_prekey.key.0[0] ^= 1;
    let forged = format!("murmur:{}", base64_url(&bundle.to_bytes()));
    for bad in [
        "",
        "murmur:",
        "murmur:!!!",
        "hello",
        "murmur:AAAA",
        forged.as_str(),
    ] {
        assert!(alice.add_contact(bad).await.is_err(), "{bad:?}");
    }
    assert_eq!(alice.crypto_metrics().refused("bad_bundle"), 6);
    assert!(alice
        .devices(murmur::node::chat::AccountId(bundle.account().0))
        .await
        .unwrap()
        .is_empty());
}

/// Carol's device, set up in `carol_dir` and then away (not running),
/// and Dave (a peer of `store`, in `dave_dir`) having written her `texts`,
/// which `store` keeps. Answers Carol's key, her account and Dave.
async fn written_while_away(
    carol_dir: &std::path::Path,
    dave_dir: &std::path::Path,
    store: &Node,
    texts: &[String],
) -> (Keypair, murmur::node::chat::AccountId, Node) {
    let carol_key = Keypair::generate_secp256k1();
    let offline = Builder::new(loopback_config(carol_dir, &["/ip4/127.0.0.1/tcp/0"]))
        .with_keypair(carol_key.clone())
        .start()
        .await
        .unwrap();
    let (carol_id, _) = offline.chat_identity().await.unwrap();
    let carol_code = offline.contact_code().await.unwrap();
    drop(offline);

    let dave = node_with_peer(dave_dir, Some(store)).await;
    dave.add_contact(&carol_code).await.unwrap();
    meshed_for(&dave, carol_id).await;
    for t in texts {
        dave.conversation(carol_id)
            .send_text(t.clone())
            .await
            .unwrap();
    }
    let carol_topic = crate::support::partition_topic_of(carol_id);
    crate::support::stored(&dave, &addr(store, false), &carol_topic, texts.len()).await;
    (carol_key, carol_id, dave)
}

#[actix_rt::test]
async fn an_offline_device_catches_up_from_a_store_node_and_loses_nothing() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let store = node_with_peer(dirs[0].path(), None).await;
    let carol_dir = tempfile::tempdir().unwrap();
    let carol_config = |peer: &Node| {
        let mut c = loopback_config(carol_dir.path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.network.peers = vec![addr(peer, false).parse().unwrap()];
        // Asked by hand here: no round of its own.
        c.store.sync_interval_secs = 0;
        c
    };
    let texts: Vec<String> = (0..4).map(|i| format!("while you were away {i}")).collect();
    let (carol_key, carol_id, _dave) =
        written_while_away(carol_dir.path(), dirs[1].path(), &store, &texts).await;

    // Carol comes back online: the same data folder and key, so the same
    // account, device and prekeys, read back from the database.
    let carol = Builder::new(carol_config(&store))
        .with_keypair(carol_key)
        .start()
        .await
        .unwrap();
    assert_eq!(carol.chat_identity().await.unwrap().0, carol_id);
    let mut inbox = carol.inbox().await.unwrap();
    let fetched = carol
        .catch_up(&addr(&store, false), None)
        .await
        .expect("store answers");
    assert!(fetched >= texts.len(), "fetched {fetched}");
    for t in &texts {
        let got = next(&mut inbox, "caught up").await;
        assert_eq!(got.text(), Some(t.as_str()));
    }
    // A second catch-up delivers nothing twice.
    carol.catch_up(&addr(&store, false), None).await.unwrap();
    assert!(silent(&mut inbox, Duration::from_secs(1)).await);
}

#[actix_rt::test]
async fn tampered_and_replayed_envelopes_are_refused_counted_and_the_session_goes_on() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = node_with_peer(dirs[0].path(), None).await;
    let bob = node_with_peer(dirs[1].path(), Some(&alice)).await;
    let (bob_id, _) = bob.chat_identity().await.unwrap();
    introduce(&alice, &bob).await;
    let mut bob_inbox = bob.inbox().await.unwrap();
    // Bob's raw view of his partition: the envelopes as they travel.
    let bob_topic = murmur::node::crypto::partition_topic(partition_of(&bob, 64).await);
    let mut wire = bob.subscribe([&bob_topic]).await.unwrap();
    meshed(&alice, &bob).await;

    alice.conversation(bob_id).send_text("first").await.unwrap();
    assert_eq!(
        next(&mut bob_inbox, "a message").await.text(),
        Some("first")
    );
    let envelope = wire
        .recv_timeout(WAIT)
        .await
        .expect("the envelope")
        .message
        .payload;

    let before = bob.stats().await.unwrap().chat_refused;
    let mut tampered = envelope.to_vec();
    let i = tampered.len() - 3;
    tampered[i] ^= 0x40;
    // A new timestamp makes each a new Waku message, past relay and archive
    // dedupe: the crypto stage must refuse them itself.
    for bytes in [tampered, b"not an envelope".to_vec(), envelope.to_vec()] {
        let message =
            WakuMessage::new(bob_topic.as_str(), bytes).with_timestamp(murmur_core::now_nanos());
        alice
            .publish(alice.pubsub_topic(&bob_topic), message)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while bob.stats().await.unwrap().chat_refused < before + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusals counted: {before} -> {} ({:?} replay, {} malformed, {} not for us); {:?}",
            bob.stats().await.unwrap().chat_refused,
            bob.crypto_metrics().refused("replay"),
            bob.crypto_metrics().refused("malformed"),
            bob.crypto_metrics().refused("not_for_us"),
            bob.stats().await.unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bob.crypto_metrics().refused("replay") >= 1);
    assert!(bob.crypto_metrics().refused("malformed") >= 1);
    assert!(silent(&mut bob_inbox, Duration::from_millis(300)).await);

    alice
        .conversation(bob_id)
        .send_text("still here")
        .await
        .unwrap();
    assert_eq!(
        next(&mut bob_inbox, "a message").await.text(),
        Some("still here")
    );
}

async fn partition_of(node: &Node, partitions: u32) -> u32 {
    let (id, _) = node.chat_identity().await.unwrap();
    murmur::crypto::envelope::partition(&murmur::crypto::AccountId(id.0), partitions)
}

/// Waits until `node` has a peer on the shard of `account`'s chat topic.
#[actix_rt::test]
async fn a_second_device_pairs_gets_copies_both_ways_and_once_revoked_gets_nothing() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let alice = node_with_peer(dirs[0].path(), None).await;
    let phone = node_with_peer(dirs[1].path(), Some(&alice)).await;
    // The laptop keeps its node key: its chat state is sealed with it.
    let laptop_key = Keypair::generate_secp256k1();
    let laptop_config = || {
        let mut c = loopback_config(dirs[2].path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.network.peers = vec![addr(&alice, false).parse().unwrap()];
        c
    };
    let laptop = Builder::new(laptop_config())
        .with_keypair(laptop_key.clone())
        .start()
        .await
        .unwrap();
    let (alice_id, _) = alice.chat_identity().await.unwrap();
    let (bob_id, phone_device) = phone.chat_identity().await.unwrap();
    let (throwaway, _) = laptop.chat_identity().await.unwrap();
    for node in [&alice, &phone, &laptop] {
        for account in [alice_id, bob_id, throwaway] {
            meshed_for(node, account).await;
        }
    }
    assert_eq!(befriend(&alice, &phone).await, bob_id);
    let mut alice_inbox = alice.inbox().await.unwrap();
    let mut phone_inbox = phone.inbox().await.unwrap();
    let mut laptop_inbox = laptop.inbox().await.unwrap();

    // Alice and Bob's phone already talk.
    alice.conversation(bob_id).send_text("hello").await.unwrap();
    assert!(phone_inbox.recv_timeout(WAIT).await.is_some());

    // Pairing: only the first device issues codes.
    let code = phone.pairing_code().await.unwrap();
    assert!(
        laptop.pairing_code().await.is_ok(),
        "the laptop is still its own first device"
    );
    laptop.pair(&code).await.unwrap();
    eventually("the laptop joins Bob's account", || async {
        laptop.chat_identity().await.unwrap().0 == bob_id
    })
    .await;
    let (_, laptop_device) = laptop.chat_identity().await.unwrap();
    assert!(matches!(
        laptop.pairing_code().await,
        Err(murmur::node::Error::Crypto(
            murmur_core::crypto::Error::NotPrimary
        ))
    ));
    eventually("Alice learns Bob's new device from the phone", || async {
        alice
            .devices(bob_id)
            .await
            .unwrap()
            .contains(&laptop_device)
    })
    .await;
    // Someone who starts talking to Bob only now learns both devices from
    // the first answer.
    let dave_dir = tempfile::tempdir().unwrap();
    let dave = node_with_peer(dave_dir.path(), Some(&alice)).await;
    meshed_for(&dave, bob_id).await;
    introduce(&dave, &phone).await;
    dave.conversation(bob_id)
        .send_text("hi Bob, I'm Dave")
        .await
        .unwrap();
    let got = next(&mut phone_inbox, "the phone receives").await;
    assert_eq!(got.text(), Some("hi Bob, I'm Dave"));
    // A stranger learns Bob's devices once Bob accepts him.
    assert!(got.request);
    phone.accept(got.sender).await.unwrap();
    eventually("Dave learns Bob's laptop", || async {
        dave.devices(bob_id).await.unwrap().contains(&laptop_device)
    })
    .await;
    assert_eq!(phone.devices(bob_id).await.unwrap(), vec![laptop_device]);
    assert_eq!(laptop.devices(bob_id).await.unwrap(), vec![phone_device]);
    meshed_for(&laptop, bob_id).await;

    // Incoming: both of Bob's devices get Alice's message, both acknowledge.
    let sent = alice
        .conversation(bob_id)
        .send_text("to both of you")
        .await
        .unwrap();
    for inbox in [&mut phone_inbox, &mut laptop_inbox] {
        let got = next(inbox, "each device receives").await;
        assert_eq!(
            (got.text(), got.sender, got.to),
            (Some("to both of you"), alice_id, bob_id)
        );
    }
    crate::support::acknowledged_by(&sent, 2).await;

    // Outgoing: what the phone sends, the laptop gets a copy of.
    phone
        .conversation(alice_id)
        .send_text("from the phone")
        .await
        .unwrap();
    let got = next(&mut alice_inbox, "Alice receives").await;
    assert_eq!(
        (got.text(), got.sender, got.device),
        (Some("from the phone"), bob_id, phone_device)
    );
    let copy = next(&mut laptop_inbox, "the laptop gets a copy").await;
    assert_eq!(
        (copy.text(), copy.sender, copy.to),
        (Some("from the phone"), bob_id, alice_id)
    );
    laptop
        .conversation(alice_id)
        .send_text("from the laptop")
        .await
        .unwrap();
    let got = next(&mut alice_inbox, "Alice receives").await;
    assert_eq!((got.sender, got.device), (bob_id, laptop_device));
    let copy = next(&mut phone_inbox, "the phone gets a copy").await;
    assert_eq!(copy.text(), Some("from the laptop"));

    // The laptop goes offline; Alice writes; the laptop comes back and
    // catches up from a store node, each message once.
    laptop.go_offline().await.unwrap();
    let missed = ["while you were off 1", "while you were off 2"];
    for text in missed {
        alice.conversation(bob_id).send_text(text).await.unwrap();
        assert_eq!(next(&mut phone_inbox, "a message").await.text(), Some(text));
    }
    assert!(silent(&mut laptop_inbox, Duration::from_millis(500)).await);
    let laptop = Builder::new(laptop_config())
        .with_keypair(laptop_key)
        .start()
        .await
        .unwrap();
    assert_eq!(
        laptop.chat_identity().await.unwrap(),
        (bob_id, laptop_device)
    );
    let mut laptop_inbox = laptop.inbox().await.unwrap();
    laptop.catch_up(&addr(&alice, false), None).await.unwrap();
    for text in missed {
        assert_eq!(
            next(&mut laptop_inbox, "a message").await.text(),
            Some(text)
        );
    }
    assert!(silent(&mut laptop_inbox, Duration::from_millis(500)).await);
    meshed_for(&laptop, alice_id).await;

    // A group with Bob: both of his devices hold its keys.
    let group = alice.create_group("with Bob").await.unwrap();
    group.add(bob_id).await.unwrap();
    for node in [&phone, &laptop] {
        members(node, &group, 2).await;
    }
    let topic = murmur::node::groups::group_topic(group.id());
    for node in [&alice, &phone, &laptop] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }
    group.send_text("group, before").await.unwrap();
    for inbox in [&mut phone_inbox, &mut laptop_inbox] {
        let got = next_in_group(inbox, Some(group.id()), "each device reads the group").await;
        assert_eq!(got.text(), Some("group, before"));
    }

    // The laptop is lost: the phone revokes it.
    assert!(
        laptop.revoke(phone_device).await.is_err(),
        "only the first device revokes"
    );
    phone.revoke(laptop_device).await.unwrap();
    // In the group too: the phone dropped the laptop's chain and writes on
    // a new one that the laptop never gets.
    let laptop_refused = laptop.stats().await.unwrap().group_refused;
    phone
        .group(group.id())
        .send_text("group, from the phone")
        .await
        .unwrap();
    let got = next_in_group(&mut alice_inbox, Some(group.id()), "Alice reads the phone").await;
    assert_eq!(got.text(), Some("group, from the phone"));
    eventually("the laptop cannot open the phone's new chain", || async {
        laptop.stats().await.unwrap().group_refused > laptop_refused
    })
    .await;
    eventually("Alice forgets the revoked device", || async {
        !alice
            .devices(bob_id)
            .await
            .unwrap()
            .contains(&laptop_device)
    })
    .await;
    alice
        .conversation(bob_id)
        .send_text("after the revocation")
        .await
        .unwrap();
    assert_eq!(
        next(&mut phone_inbox, "the phone still receives")
            .await
            .text(),
        Some("after the revocation")
    );
    assert!(
        silent(&mut laptop_inbox, Duration::from_secs(2)).await,
        "the revoked laptop reads nothing new"
    );
    let refused = alice.crypto_metrics().refused("revoked");
    let _ = laptop.conversation(alice_id).send_text("still me?").await;
    eventually("Alice refuses the revoked device", || async {
        alice.crypto_metrics().refused("revoked") > refused
    })
    .await;
    assert!(silent(&mut alice_inbox, Duration::from_millis(500)).await);
    // What the laptop writes in the group, the phone no longer opens.
    let phone_refused = phone.stats().await.unwrap().group_refused;
    let _ = laptop
        .group(group.id())
        .send_text("group, from the laptop")
        .await;
    eventually("the phone refuses the laptop's chain", || async {
        phone.stats().await.unwrap().group_refused > phone_refused
    })
    .await;
}

#[actix_rt::test]
async fn an_account_known_only_by_its_id_is_reached_through_its_published_bundle() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let alice = node_with_peer(dirs[0].path(), None).await;
    let bob = node_with_peer(dirs[1].path(), Some(&alice)).await;
    let mallory = node_with_peer(dirs[2].path(), Some(&alice)).await;
    let (bob_id, bob_device) = bob.chat_identity().await.unwrap();
    meshed(&alice, &bob).await;
    meshed(&bob, &alice).await;
    let bundle_topic = murmur::node::crypto::bundle_topic(partition_of(&bob, 64).await);
    mallory
        .wait_for_peers(&mallory.pubsub_topic(&bundle_topic), 1, WAIT)
        .await
        .unwrap();
    bob.publish_bundle().await.unwrap();
    // Mallory's own bundle, and junk, on Bob's bundle topic: neither is Bob's.
    let (mallory_id, _) = mallory.chat_identity().await.unwrap();
    let mallory_code = mallory.contact_code().await.unwrap();
    let mallory_bundle = murmur::node::crypto::parse_code(&mallory_code)
        .unwrap()
        .to_bytes();
    for payload in [mallory_bundle, b"junk".to_vec()] {
        let message = WakuMessage::new(bundle_topic.as_str(), payload)
            .with_timestamp(murmur_core::now_nanos());
        mallory
            .publish(mallory.pubsub_topic(&bundle_topic), message)
            .await
            .unwrap();
    }
    // Alice asks another store node: Mallory's, which relays and keeps
    // what it relays like any other.
    let store = addr(&mallory, false);
    eventually("Mallory's store holds the posts too", || async {
        let q = murmur_core::store::Query::content(
            Some(alice.pubsub_topic(&bundle_topic)),
            vec![bundle_topic.as_str().to_owned()],
        );
        alice
            .query_store(&store, q)
            .await
            .map(|p| p.messages.len())
            .unwrap_or(0)
            >= 3
    })
    .await;
    let mut bob_inbox = bob.inbox().await.unwrap();
    assert_eq!(alice.refresh_contact(&store, bob_id).await.unwrap(), 1);
    assert_eq!(alice.devices(bob_id).await.unwrap(), vec![bob_device]);
    assert!(alice.devices(mallory_id).await.unwrap().is_empty());
    assert_eq!(
        alice.refresh_contact(&store, bob_id).await.unwrap(),
        0,
        "nothing newer the second time"
    );
    alice
        .conversation(bob_id)
        .send_text("found you")
        .await
        .unwrap();
    assert_eq!(
        next(&mut bob_inbox, "Bob receives").await.text(),
        Some("found you")
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[actix_rt::test]
async fn a_message_with_nobody_to_hear_it_waits_in_the_outbox_even_across_a_restart() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let bob = node_with_peer(dirs[1].path(), None).await;
    let (bob_id, _) = bob.chat_identity().await.unwrap();
    let mut bob_inbox = bob.inbox().await.unwrap();
    let alice_key = Keypair::generate_secp256k1();
    let alice_alone = || {
        Builder::new(loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]))
            .with_keypair(alice_key.clone())
            .start()
    };

    // Alice is alone: the message is sealed, kept, and waits.
    let alice = alice_alone().await.unwrap();
    befriend(&alice, &bob).await;
    let mut sent = alice
        .conversation(bob_id)
        .send_text("when you can")
        .await
        .unwrap();
    assert_eq!(sent.state(), DeliveryState::Queued);
    // Once there is someone to publish to, it goes out by itself.
    alice.dial(&addr(&bob, false)).await.unwrap();
    assert_eq!(
        next(&mut bob_inbox, "delivered from the outbox")
            .await
            .text(),
        Some("when you can")
    );
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 }
    );

    // Queued, then the node goes away before any peer shows up: a node
    // started again on the same folder sends it.
    alice.go_offline().await.unwrap();
    let alone_again = alice_alone().await.unwrap();
    alone_again
        .conversation(bob_id)
        .send_text("across a restart")
        .await
        .unwrap();
    alone_again.go_offline().await.unwrap();
    let mut config = loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&bob, false).parse().unwrap()];
    let _back = Builder::new(config)
        .with_keypair(alice_key)
        .start()
        .await
        .unwrap();
    assert_eq!(
        next(&mut bob_inbox, "sent after the restart").await.text(),
        Some("across a restart")
    );
    assert!(silent(&mut bob_inbox, Duration::from_secs(1)).await, "once");
}

/// A group send queued for want of a peer says published once the outbox
/// sends it (a group message gets no receipt: without that its state stayed
/// queued for ever).
#[actix_rt::test]
async fn a_queued_group_message_is_told_published_when_the_outbox_sends_it() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let relay = node_with_peer(dirs[1].path(), None).await;
    let alice = Builder::new(loopback_config(dirs[0].path(), &["/ip4/127.0.0.1/tcp/0"]))
        .with_keypair(Keypair::generate_secp256k1())
        .start()
        .await
        .unwrap();
    let group = alice.create_group("alone for now").await.unwrap();
    let sent = group.send_text("when someone is there").await.unwrap();
    assert_eq!(sent.state(), DeliveryState::Queued);
    let mut state = sent.watch();
    alice.dial(&addr(&relay, false)).await.unwrap();
    tokio::time::timeout(
        WAIT,
        state.wait_for(|s| matches!(s, DeliveryState::Published { .. })),
    )
    .await
    .expect("told published")
    .unwrap();
}

#[actix_rt::test]
async fn two_accounts_that_start_a_session_at_once_end_up_on_one() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let alice = node_with_peer(dirs[0].path(), None).await;
    let bob = node_with_peer(dirs[1].path(), Some(&alice)).await;
    let bob_id = introduce(&alice, &bob).await;
    let alice_id = introduce(&bob, &alice).await;
    meshed(&alice, &bob).await;
    meshed(&bob, &alice).await;
    let mut alice_inbox = alice.inbox().await.unwrap();
    let mut bob_inbox = bob.inbox().await.unwrap();
    // Both write first: two sessions cross on the wire.
    let (to_bob, to_alice) = (alice.conversation(bob_id), bob.conversation(alice_id));
    let (a, b) = futures::join!(to_bob.send_text("hi Bob"), to_alice.send_text("hi Alice"));
    a.unwrap();
    b.unwrap();
    assert_eq!(next(&mut bob_inbox, "crossed").await.text(), Some("hi Bob"));
    assert_eq!(
        next(&mut alice_inbox, "crossed").await.text(),
        Some("hi Alice")
    );
    for round in 0..3 {
        let text = format!("alice {round}");
        alice
            .conversation(bob_id)
            .send_text(text.clone())
            .await
            .unwrap();
        assert_eq!(
            next(&mut bob_inbox, "after").await.text(),
            Some(text.as_str())
        );
        let text = format!("bob {round}");
        bob.conversation(alice_id)
            .send_text(text.clone())
            .await
            .unwrap();
        assert_eq!(
            next(&mut alice_inbox, "after").await.text(),
            Some(text.as_str())
        );
    }
}

#[actix_rt::test]
async fn a_member_that_missed_a_revocation_drops_the_devices_group_chain_from_the_bundle_topic() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    // Alice relays and keeps what she relays (a store node); Carol owns a
    // group with Bob, whose phone and laptop are both in it.
    let alice = node_with_peer(dirs[0].path(), None).await;
    let phone = node_with_peer(dirs[1].path(), Some(&alice)).await;
    let laptop = node_with_peer(dirs[2].path(), Some(&alice)).await;
    let carol_key = Keypair::generate_secp256k1();
    let carol_config = || {
        let mut c = loopback_config(dirs[3].path(), &["/ip4/127.0.0.1/tcp/0"]);
        c.network.peers = vec![addr(&alice, false).parse().unwrap()];
        c
    };
    let start_carol = || {
        Builder::new(carol_config())
            .with_keypair(carol_key.clone())
            .start()
    };
    let carol = start_carol().await.unwrap();
    let (bob_id, _) = phone.chat_identity().await.unwrap();
    let (throwaway, _) = laptop.chat_identity().await.unwrap();
    let (carol_id, _) = carol.chat_identity().await.unwrap();
    for node in [&phone, &laptop, &carol] {
        for account in [bob_id, throwaway, carol_id] {
            meshed_for(node, account).await;
        }
    }
    crate::support::pair(&laptop, &phone).await;
    let (_, laptop_device) = laptop.chat_identity().await.unwrap();
    befriend(&carol, &phone).await;
    // Carol writes first; the phone's answer lists Bob's devices.
    carol
        .conversation(bob_id)
        .send_text("hi Bob")
        .await
        .unwrap();
    eventually("Carol learns Bob's laptop", || async {
        carol
            .devices(bob_id)
            .await
            .unwrap()
            .contains(&laptop_device)
    })
    .await;
    let group = carol.create_group("with Bob").await.unwrap();
    group.add(bob_id).await.unwrap();
    for node in [&phone, &laptop] {
        members(node, &group, 2).await;
    }
    let topic = murmur::node::groups::group_topic(group.id());
    for node in [&carol, &laptop] {
        node.wait_for_peers(&node.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }
    let mut carol_inbox = carol.inbox().await.unwrap();
    laptop
        .group(group.id())
        .send_text("from the laptop, before")
        .await
        .unwrap();
    let got = next_in_group(&mut carol_inbox, Some(group.id()), "Carol reads the laptop").await;
    assert_eq!(got.text(), Some("from the laptop, before"));

    // Carol is away while Bob revokes the laptop; his phone publishes the
    // revocation beside its bundle, and Alice keeps it.
    carol.go_offline().await.unwrap();
    drop(carol);
    phone.revoke(laptop_device).await.unwrap();
    phone.publish_bundle().await.unwrap();
    let carol = start_carol().await.unwrap();
    assert!(carol
        .devices(bob_id)
        .await
        .unwrap()
        .contains(&laptop_device));
    let bundles = murmur::node::crypto::bundle_topic(murmur::crypto::envelope::partition(
        &murmur::crypto::AccountId(bob_id.0),
        64,
    ));
    let query = murmur::core::store::Query::content(
        Some(carol.pubsub_topic(&bundles)),
        vec![bundles.as_str().to_owned()],
    );
    eventually("the revocation is in Alice's store", || async {
        alice
            .query_store(&addr(&alice, false), query.clone())
            .await
            .is_ok_and(|p| p.messages.len() >= 2)
            || carol
                .query_store(&addr(&alice, false), query.clone())
                .await
                .is_ok_and(|p| p.messages.len() >= 2)
    })
    .await;
    carol
        .refresh_contact(&addr(&alice, false), bob_id)
        .await
        .unwrap();
    assert!(!carol
        .devices(bob_id)
        .await
        .unwrap()
        .contains(&laptop_device));
    // The laptop's group chain is gone at Carol's: what it writes there she
    // no longer opens.
    carol
        .wait_for_peers(&carol.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    let refused = carol.stats().await.unwrap().group_refused;
    laptop
        .group(group.id())
        .send_text("from the laptop, after")
        .await
        .unwrap();
    eventually("Carol refuses the revoked laptop's chain", || async {
        carol.stats().await.unwrap().group_refused > refused
    })
    .await;
}

#[actix_rt::test]
async fn an_offline_device_catches_up_by_itself_when_it_comes_back() {
    catches_up_by_itself(4, None).await;
}

/// The same with a lane of one: the catch-up's page waits for room at
/// every message, and still opens them in order (the page's messages
/// once reached the lane last first when it was full).
#[actix_rt::test]
async fn an_offline_device_with_a_full_lane_catches_up_in_order() {
    catches_up_by_itself(12, Some(1)).await;
}

async fn catches_up_by_itself(sent: usize, lane: Option<usize>) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let store = node_with_peer(dirs[0].path(), None).await;
    let carol_dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..sent).map(|i| format!("kept for you {i}")).collect();
    let (carol_key, _carol_id, _dave) =
        written_while_away(carol_dir.path(), dirs[1].path(), &store, &texts).await;

    // Back, with the store node as its static peer: nothing is asked by hand.
    let mut config = loopback_config(carol_dir.path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&store, false).parse().unwrap()];
    if let Some(lane) = lane {
        config.chat.queue = lane;
    }
    let carol = Builder::new(config)
        .with_keypair(carol_key)
        .start()
        .await
        .unwrap();
    let mut inbox = carol.inbox().await.unwrap();
    for t in &texts {
        let got = next(&mut inbox, "caught up by itself").await;
        assert_eq!(got.text(), Some(t.as_str()));
    }
    let stats = carol.stats().await.unwrap();
    assert_eq!(stats.chat_opened, texts.len() as u64);
    if lane.is_some() {
        assert!(stats.chat_queue_full > 0, "the lane was never full");
    }
    // A round asked for now finds nothing new to deliver.
    carol.sync_now().await.unwrap();
    assert!(silent(&mut inbox, Duration::from_secs(1)).await);
}
