//! Message requests over real nodes: a stranger's messages arrive flagged,
//! and it learns nothing back (no receipt, no device list, no group join)
//! until the user accepts it; a blocked account is refused unopened.

use murmur::node::{
    chat::{AccountId, DeliveryState, Group, Sent},
    Node,
};

use crate::{
    gate::gated_control,
    support::{
        account, addr, befriend, chat_node as node, eventually, keyed_node, loopback_config,
        members, meshed_for, metric, pair, WAIT,
    },
};

#[actix_rt::test]
async fn a_stranger_joins_this_account_to_no_group_until_accepted() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let bob = node(dirs[1].path(), Some(&alice)).await;
    let (a, group) = invite(&alice, &bob).await;
    assert!(
        bob.groups().await.unwrap().is_empty(),
        "a stranger added Bob to a group"
    );
    assert_eq!(
        metric(&bob, "murmur_groups_refused_total{reason=\"not_accepted\"}").await,
        1
    );
    assert_eq!(bob.requests().await.unwrap(), vec![a]);

    // Bob accepts Alice: the invite held is carried out.
    bob.accept(a).await.unwrap();
    members(&bob, &group, 2).await;
}

#[actix_rt::test]
async fn a_declined_account_is_forgotten_and_a_blocked_one_refused_unopened() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let bob = node(dirs[0].path(), None).await;
    let carol = node(dirs[1].path(), Some(&bob)).await;
    let alice = node(dirs[2].path(), Some(&bob)).await;
    let b = befriend(&alice, &bob).await;
    let c = account(&carol).await;
    carol
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let mut inbox = bob.inbox().await.unwrap();
    meshed_for(&carol, b).await;
    meshed_for(&alice, b).await;

    carol
        .conversation(b)
        .send_text("hi, it's Carol")
        .await
        .unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("the request arrives");
    assert!(got.request && got.sender == c);

    // Declined: forgotten. Carol's session was never answered, so what she
    // writes on it still starts it, with the header Bob saw once: refused
    // as a replay, not taken as a new request.
    bob.decline(c).await.unwrap();
    assert!(bob.requests().await.unwrap().is_empty());
    assert!(bob.devices(c).await.unwrap().is_empty());
    let replay = "murmur_crypto_refused_total{reason=\"replay\"}";
    carol
        .conversation(b)
        .send_text("still there?")
        .await
        .unwrap();
    eventually("the message on a declined session is refused", || async {
        metric(&bob, replay).await >= 1
    })
    .await;
    assert!(bob.requests().await.unwrap().is_empty());

    // Blocked: nothing Carol sends is opened, a new session included.
    bob.block(c).await.unwrap();
    let blocked = "murmur_crypto_refused_total{reason=\"blocked\"}";
    let mut sent = alice
        .conversation(b)
        .send_text("from a friend")
        .await
        .unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("a friend's message");
    assert_eq!(got.text(), Some("from a friend"));
    assert!(!got.request);
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 }
    );
    assert_eq!(metric(&bob, blocked).await, 0);
    carol.conversation(b).send_text("let me in").await.unwrap();
    eventually("Carol's envelopes are refused as blocked", || async {
        metric(&bob, blocked).await >= 1
    })
    .await;
    // Refused by the crypto stage: nothing of it can reach the inbox.
    assert!(
        inbox
            .recv_timeout(std::time::Duration::ZERO)
            .await
            .is_none(),
        "a blocked account's message arrived"
    );
    assert!(bob.requests().await.unwrap().is_empty());
}

/// Alice, a stranger to Bob, writes `text` to him: once his inbox has it,
/// as a request, answers her send and the two accounts (hers, his).
async fn request(alice: &Node, bob: &Node, text: &str) -> (Sent, AccountId, AccountId) {
    let a = account(alice).await;
    let b = alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let mut inbox = bob.inbox().await.unwrap();
    meshed_for(alice, b).await;
    let sent = alice.conversation(b).send_text(text).await.unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("the request arrives");
    assert!(got.request && got.sender == a && got.text() == Some(text));
    assert!(!matches!(sent.state(), DeliveryState::Acknowledged { .. }));
    (sent, a, b)
}

/// Bob restarts before he accepts Alice's request: the receipt held for
/// her first message was in memory, but the message is in his durable
/// inbox, and accepting her acknowledges it from there, with the one she
/// sent after his restart (held as before). Without that, her first
/// message would stay unacknowledged for good.
#[actix_rt::test]
async fn a_request_accepted_after_a_restart_is_acknowledged() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let alice = node(dirs[0].path(), None).await;
    let bob = keyed_node(dirs[1].path(), &bob_key, Some(&alice), |_| {}).await;
    let (mut first, a, _) = request(&alice, &bob, "hi, it's Alice").await;

    bob.go_offline().await.unwrap();
    drop(bob);
    let bob = keyed_node(dirs[1].path(), &bob_key, Some(&alice), |_| {}).await;
    assert_eq!(bob.requests().await.unwrap(), vec![a], "still a request");
    let (mut again, ..) = request(&alice, &bob, "still there?").await;
    meshed_for(&bob, a).await;
    bob.accept(a).await.unwrap();
    for sent in [&mut first, &mut again] {
        assert_eq!(
            sent.acknowledged(WAIT).await,
            DeliveryState::Acknowledged { devices: 1 }
        );
    }
}

/// Bob answers Alice's request without accepting her first: writing to
/// an account accepts it, so the receipt held for her message goes too.
#[actix_rt::test]
async fn answering_a_request_acknowledges_it() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let bob = node(dirs[1].path(), Some(&alice)).await;
    let (mut sent, a, _) = request(&alice, &bob, "hi, it's Alice").await;

    meshed_for(&bob, a).await;
    bob.conversation(a).send_text("hi Alice").await.unwrap();
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 }
    );
    assert!(bob.requests().await.unwrap().is_empty());
}

/// Alice, who has Bob's code while Bob never heard of her, adds him to a
/// group; answers her account and the group once Bob holds the invite as
/// a request.
async fn invite(alice: &Node, bob: &Node) -> (AccountId, Group) {
    let a = account(alice).await;
    let b = alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let group = alice.create_group("party").await.unwrap();
    group.add(b).await.unwrap();
    eventually("Alice's invite is held as a request", || async {
        bob.stats().await.unwrap().requests >= 1
    })
    .await;
    (a, group)
}

/// What [`invite_then_restart`] leaves: the folders, Alice, Bob's
/// restarted node, Alice's account and her group.
type Invited = ([tempfile::TempDir; 2], Node, Node, AccountId, Group);

/// Alice, a stranger to Bob, adds him to a group; once its invite is held
/// (and, with `decline`, Bob declined her), Bob's node restarts.
async fn invite_then_restart(decline: bool) -> Invited {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let alice = node(dirs[0].path(), None).await;
    let bob = keyed_node(dirs[1].path(), &bob_key, Some(&alice), |_| {}).await;
    let (a, group) = invite(&alice, &bob).await;
    if decline {
        bob.decline(a).await.unwrap();
    }
    bob.go_offline().await.unwrap();
    drop(bob);
    let bob = keyed_node(dirs[1].path(), &bob_key, Some(&alice), |_| {}).await;
    (dirs, alice, bob, a, group)
}

/// The invite was held in memory, but its plaintext stays kept until it
/// is carried out: the restarted node holds it again, and accepting Alice
/// joins Bob to her group. Without that, the invite was lost.
#[actix_rt::test]
async fn a_strangers_invite_held_across_a_restart_is_carried_out_once_accepted() {
    let (_dirs, _alice, bob, a, group) = invite_then_restart(false).await;
    // The previous run's kept plaintexts are handled before anything else.
    assert_eq!(bob.stats().await.unwrap().requests, 1, "held again");
    assert!(bob.groups().await.unwrap().is_empty());
    assert_eq!(bob.requests().await.unwrap(), vec![a]);
    bob.accept(a).await.unwrap();
    members(&bob, &group, 2).await;
}

/// Declined, the invite is forgotten for good: the restarted node does
/// not hold it again (its kept plaintext went with the decline).
#[actix_rt::test]
async fn a_declined_strangers_invite_does_not_come_back_after_a_restart() {
    let (_dirs, _alice, bob, ..) = invite_then_restart(true).await;
    assert_eq!(bob.stats().await.unwrap().requests, 0, "held again");
    assert!(bob.requests().await.unwrap().is_empty());
    assert!(bob.groups().await.unwrap().is_empty());
}

/// Bob accepts Alice, and his node stops while her invite is being
/// carried out (the membership stage has not taken it: a gate holds it).
/// The invite's plaintext was kept: the restarted node finds Alice
/// accepted since it was opened and carries the invite out at once,
/// without asking Bob again. Without that replay check, the invite came
/// back as a request from a contact, or was lost.
#[actix_rt::test]
async fn an_invite_whose_acceptance_a_stop_interrupted_is_carried_out_at_the_next_start() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let bob_key = libp2p::identity::Keypair::generate_secp256k1();
    let alice = node(dirs[0].path(), None).await;
    let mut config = loopback_config(dirs[1].path(), &["/ip4/127.0.0.1/tcp/0"]);
    config.network.peers = vec![addr(&alice, false).parse().unwrap()];
    let (bob, mut valve) = gated_control(config, &bob_key).await;
    // The membership stage reads a request's invite (to hold it), then
    // the gate holds what comes after.
    valve.open();
    let (a, group) = invite(&alice, &bob).await;
    valve.close();

    let held = valve.held();
    bob.accept(a).await.unwrap();
    valve.holding(held + 1).await;
    assert!(bob.groups().await.unwrap().is_empty());
    bob.go_offline().await.unwrap();
    drop(bob);

    let bob = keyed_node(dirs[1].path(), &bob_key, Some(&alice), |_| {}).await;
    members(&bob, &group, 2).await;
    assert!(bob.requests().await.unwrap().is_empty());
    assert_eq!(bob.stats().await.unwrap().requests, 0, "not held again");
}

/// Bob's laptop, his second device, restarts before Bob accepts Alice on
/// his phone: the receipt it held for her message went with the restart,
/// but the phone's acceptance reaches the laptop inside their session, and
/// the laptop acknowledges her message from its durable inbox. Without
/// that, only the phone's receipt counted.
#[actix_rt::test]
async fn a_request_accepted_on_another_device_is_acknowledged_by_a_restarted_one() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let laptop_key = libp2p::identity::Keypair::generate_secp256k1();
    let alice = node(dirs[0].path(), None).await;
    let phone = node(dirs[1].path(), Some(&alice)).await;
    let laptop = keyed_node(dirs[2].path(), &laptop_key, Some(&alice), |_| {}).await;
    let (a, b, throwaway) = (
        account(&alice).await,
        account(&phone).await,
        account(&laptop).await,
    );
    for node in [&alice, &phone, &laptop] {
        for account in [a, b, throwaway] {
            meshed_for(node, account).await;
        }
    }
    pair(&laptop, &phone).await;
    // Alice, a stranger to Bob, has the codes of both his devices.
    for device in [&phone, &laptop] {
        alice
            .add_contact(&device.contact_code().await.unwrap())
            .await
            .unwrap();
    }
    let mut inboxes = [phone.inbox().await.unwrap(), laptop.inbox().await.unwrap()];
    let sent = alice.conversation(b).send_text("hi Bob").await.unwrap();
    for inbox in &mut inboxes {
        let got = inbox.recv_timeout(WAIT).await.expect("each device gets it");
        assert!(got.request && got.sender == a);
    }

    laptop.go_offline().await.unwrap();
    drop(laptop);
    let laptop = keyed_node(dirs[2].path(), &laptop_key, Some(&alice), |_| {}).await;
    meshed_for(&laptop, b).await;
    meshed_for(&laptop, a).await;
    phone.accept(a).await.unwrap();
    crate::support::acknowledged_by(&sent, 2).await;
}
