//! The tests an attacker would write, against real nodes on loopback.
//!
//! The attacker is built from murmur's public pieces, not from a node's
//! good behaviour: a sans-I/O [`Device`] holds its account and sessions,
//! a [`murmur_groups::Log`] its own view of a group, and a plain node
//! only carries raw frames (`Node::send` on any topic, `Node::subscribe`
//! to read the victims' partitions). It signs, seals and publishes what
//! it likes. One test per finding of the issue "Removal that sticks" that
//! an outsider or a member can act out over the network: C1 (back-dating),
//! M1 (a moderator's unban), H3 (a stranger's event), H1/H2 (a revoked
//! phone), H4/M5/M9 (a flood of strangers), M4 (chain squatting), M2 (an
//! equivocating admin). Those of someone who writes the database (M6, M7)
//! are in `tests/integration/vault.rs` and
//! `crates/murmur-storage/tests/erase.rs`.

use std::time::Duration;

use murmur::crypto::{device::Device, Limits, Vault};
use murmur::node::{chat::AccountId, Builder, Node};
use murmur_core::ContentTopic;
use murmur_groups::{Action, Event, JoinMode, Log, MemberId};
use murmur_proto::chat::{Content, GroupControl};
use prost::Message as _;

mod batches;
mod receipts;

const WAIT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A default chat node on loopback, its data in `dir`.
async fn node(dir: &std::path::Path, peer: Option<&Node>) -> Node {
    let mut config = murmur::node::Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    if let Some(peer) = peer {
        config.network.peers = vec![peer.listen_addrs()[0].parse().unwrap()];
    }
    Builder::new(config).start().await.expect("node starts")
}

/// A chat message as a node encodes it: `text` under an id of `id`s.
fn message(id: u8, text: &str) -> Content {
    Content {
        id: vec![id; 16],
        sent_at: 1,
        text: Some(text.to_owned()),
        ..Content::default()
    }
}

fn partition_topic(account: AccountId) -> ContentTopic {
    murmur::node::crypto::partition_topic(murmur::crypto::envelope::partition(
        &murmur::crypto::AccountId(account.0),
        64,
    ))
}

/// Polls `check` until it holds, at most [`WAIT`]: state with no event to
/// wait on.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An account run by hand: its device, and a node that carries its raw
/// frames.
struct Attacker {
    device: Device,
    wire: Node,
    inbox: murmur::node::Subscription,
}

impl Attacker {
    async fn new(dir: &std::path::Path, peer: &Node) -> Self {
        let (device, _) = Device::create(Vault::new(b"attacker"), Limits::default(), now());
        let wire = node(dir, Some(peer)).await;
        let topic = partition_topic(AccountId(device.account().0));
        let inbox = wire.subscribe([&topic]).await.unwrap();
        wire.wait_for_peers(&wire.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
        Self {
            device,
            wire,
            inbox,
        }
    }

    /// Adds `node`'s contact code, as anyone who was shown it can.
    async fn meet(&mut self, node: &Node) {
        self.device
            .add_contact(&node.contact_code().await.unwrap(), now())
            .unwrap();
    }

    fn member(&self) -> MemberId {
        MemberId(self.device.account().0)
    }

    fn code(&self) -> String {
        self.device.contact_code(now())
    }

    /// Seals `content` for `to` and publishes it on `to`'s partition.
    async fn send(&mut self, to: AccountId, content: &Content) {
        let (out, _) = self
            .device
            .seal(
                murmur::crypto::AccountId(to.0),
                &content.encode_to_vec(),
                now(),
            )
            .expect("a known contact");
        for o in out {
            let topic = partition_topic(AccountId(o.to.0));
            self.wire.send(&topic, o.envelope).await.unwrap();
        }
    }

    /// The next chat content sealed for this account.
    async fn receive(&mut self) -> Content {
        loop {
            let delivery = self.inbox.recv_timeout(WAIT).await.expect("an envelope");
            if let Ok((received, _)) = self.device.open(&delivery.message.payload, now()) {
                if let Some(app) = received.app {
                    return Content::decode(app.as_slice()).expect("chat content");
                }
            }
        }
    }

    /// Takes group control messages until `log` satisfies `done`.
    async fn follow(&mut self, log: &mut Log, done: impl Fn(&Log) -> bool) {
        while !done(log) {
            let content = self.receive().await;
            for bytes in content.group.map(|g| g.events).unwrap_or_default() {
                let _ = log.insert(Event::from_bytes(&bytes).expect("an event"));
            }
        }
    }

    /// Signs `action` on top of `view`, with the account key.
    fn sign(&self, view: &Log, action: Action) -> Event {
        let unsigned = view.prepare(self.member(), action);
        let signature = self
            .device
            .sign_group_event(&unsigned.signed_bytes())
            .expect("the first device signs group events");
        unsigned.sign(signature)
    }
}

fn control(group: murmur::node::chat::GroupId, events: &[Event]) -> Content {
    Content {
        id: vec![7; 16],
        sent_at: 1,
        group: Some(GroupControl {
            group: group.0.to_vec(),
            events: events.iter().map(Event::to_bytes).collect(),
            ..GroupControl::default()
        }),
        ..Content::default()
    }
}

/// C1: an admin the owner removed signs, on its view from before the
/// removal, an event that opens the group, and sends it to the owner. It
/// changes nothing, and is counted as refused.
#[actix_rt::test]
async fn a_removed_admin_back_dating_an_event_changes_nothing() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let mut eve = Attacker::new(dirs[1].path(), &alice).await;
    let e = alice.add_contact(&eve.code()).await.unwrap();
    let group = alice.create_group("club").await.unwrap();
    let mut eves_view = Log::new(murmur_groups::EventId(group.id().0));
    group.add(e).await.unwrap();
    group.promote(e).await.unwrap();
    let me = eve.member();
    eve.follow(&mut eves_view, |log| {
        log.state().role(&me) == Some(murmur_groups::Role::Admin)
    })
    .await;
    group.remove(e).await.unwrap();
    let before = alice.group(group.id()).info().await.unwrap();
    assert!(!before.members.iter().any(|(a, _)| *a == e));

    let open = eve.sign(&eves_view, Action::JoinMode(JoinMode::Open));
    eve.send(account(&alice).await, &control(group.id(), &[open]))
        .await;
    eventually(
        "Alice's log takes the back-dated event as rejected",
        || async { alice.group(group.id()).info().await.unwrap().rejected > before.rejected },
    )
    .await;
    let after = alice.group(group.id()).info().await.unwrap();
    assert_eq!(after.join_mode, murmur_core::groups::JoinMode::Invite);
    assert_eq!(after.members, before.members);
}

/// H3: an account that was never a member pushes an event for the group
/// (it knows the group's id, which is its creation event's): refused, not
/// kept, and counted.
#[actix_rt::test]
async fn a_stranger_writes_nothing_into_a_groups_log() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = metered(dirs[0].path()).await;
    let mut mallory = Attacker::new(dirs[1].path(), &alice).await;
    alice.add_contact(&mallory.code()).await.unwrap();
    mallory.meet(&alice).await;
    let group = alice.create_group("club").await.unwrap();
    let before = alice.group(group.id()).info().await.unwrap();
    let id = murmur_groups::EventId(group.id().0);
    let forged = murmur_groups::Unsigned::new(
        id,
        mallory.member(),
        2,
        vec![id],
        Action::Add(mallory.member()),
    );
    let signature = mallory
        .device
        .sign_group_event(&forged.signed_bytes())
        .unwrap();
    mallory
        .send(
            account(&alice).await,
            &control(group.id(), &[forged.sign(signature)]),
        )
        .await;
    let refused = "murmur_groups_refused_total{reason=\"invalid_event\"}";
    eventually("Alice refuses the stranger's event", || async {
        metric(&alice, refused).await >= 1
    })
    .await;
    let after = alice.group(group.id()).info().await.unwrap();
    assert_eq!(after.members, before.members);
    assert_eq!(after.rejected, 0, "not even kept as rejected");
}

/// A chat node on a loopback port of its own, whose metrics a test reads.
async fn metered(dir: &std::path::Path) -> Node {
    let mut config = murmur::node::Config::new(dir);
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    Builder::new(config).start().await.expect("node starts")
}

/// The value of the sample `name` that `node` serves on `/metrics`.
async fn metric(node: &Node, name: &str) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// H4, M5, M9: strangers flood first messages. Each is opened once and at
/// constant cost, no more than `chat.max_requests` of them wait as
/// requests (the rest are refused before any X3DH), none gets an answer,
/// and a contact's messages still arrive.
#[actix_rt::test]
async fn a_flood_of_strangers_is_bounded_answered_by_nothing_and_stalls_no_contact() {
    const STRANGERS: usize = 40;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let mut config = murmur::node::Config::new(dirs[0].path());
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.chat.max_requests = 8;
    let bob = Builder::new(config).start().await.unwrap();
    let alice = node(dirs[1].path(), Some(&bob)).await;
    let flooder = Attacker::new(dirs[2].path(), &bob).await;
    let b = account(&bob).await;
    bob.add_contact(&alice.contact_code().await.unwrap())
        .await
        .unwrap();
    alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    let topic = partition_topic(b);
    for n in [&alice, &flooder.wire] {
        n.wait_for_peers(&n.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }
    let mut inbox = bob.inbox().await.unwrap();
    let mut answers = flooder.wire.subscribe_all().await.unwrap();

    let code = bob.contact_code().await.unwrap();
    for i in 0..STRANGERS {
        let (mut stranger, _) = Device::create(
            Vault::new(format!("s{i}").as_bytes()),
            Limits::default(),
            now(),
        );
        let (to, _) = stranger.add_contact(&code, now()).unwrap();
        let (out, _) = stranger.seal(to, b"let me in", now()).unwrap();
        for o in out {
            flooder.wire.send(&topic, o.envelope).await.unwrap();
        }
    }
    let mut sent = alice.conversation(b).send_text("a friend").await.unwrap();
    let got = loop {
        let m = inbox
            .recv_timeout(WAIT)
            .await
            .expect("the contact's message");
        if m.text() == Some("a friend") {
            break m;
        }
    };
    assert!(!got.request);
    assert!(matches!(
        sent.acknowledged(WAIT).await,
        murmur::node::chat::DeliveryState::Acknowledged { .. }
    ));
    let too_many = "murmur_crypto_refused_total{reason=\"too_many_requests\"}";
    eventually("every stranger opened or refused", || async {
        let refused = metric(&bob, too_many).await;
        refused + bob.requests().await.unwrap().len() as u64 == STRANGERS as u64
    })
    .await;
    assert_eq!(bob.requests().await.unwrap().len(), 8);
    // Nothing went back on any stranger's partition: the flooder heard
    // only its own frames and Alice's traffic.
    let (a, _) = alice.chat_identity().await.unwrap();
    while let Some(d) = answers.recv_timeout(Duration::from_millis(1)).await {
        let topic = d.message.content_topic.clone();
        assert!(
            topic == partition_topic(b).as_str()
                || topic == partition_topic(a).as_str()
                || topic.contains("bundles"),
            "an answer went to a stranger's partition: {topic}"
        );
    }
}

/// H1, H2: a thief keeps a paired phone after its account revoked it. The
/// phone still holds valid-looking keys and a certificate, and writes to a
/// contact that got the revocation, and to one that missed it and learns
/// it only from the account's bundle topic: both refuse it, unopened.
#[actix_rt::test]
async fn a_revoked_phone_reaches_no_contact_even_one_that_missed_the_revocation() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let bob = metered(dirs[0].path()).await;
    let mut carol_config = murmur::node::Config::new(dirs[1].path());
    carol_config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    carol_config.network.peers = vec![bob.listen_addrs()[0].parse().unwrap()];
    let carol = Builder::new(carol_config).start().await.unwrap();
    // Eve's first device (honest) and her phone, run by hand; `wire`
    // carries their frames.
    let mut eve = Attacker::new(dirs[2].path(), &bob).await;
    let (mut phone, _) = Device::create(Vault::new(b"phone"), Limits::default(), now());
    let (b, c) = (account(&bob).await, account(&carol).await);
    for n in [&bob, &carol] {
        eve.meet(n).await;
        n.add_contact(&eve.code()).await.unwrap();
    }
    let code = eve.device.pairing_code(now()).unwrap();
    let (request, _) = phone.pair(&code, now()).unwrap();
    for o in request {
        let (received, _) = eve.device.open(&o.envelope, now()).unwrap();
        for answer in received.reply {
            let _ = phone.open(&answer.envelope, now());
        }
    }
    assert_eq!(phone.account(), eve.device.account(), "paired");
    let e = AccountId(eve.device.account().0);
    for topic in [partition_topic(b), partition_topic(c)] {
        eve.wire
            .wait_for_peers(&eve.wire.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }

    // The phone is stolen; Eve revokes it. Bob gets the revocation; Carol
    // was away and missed it. It is on Eve's bundle topic too, beside her
    // bundle, as every node publishes them.
    let (revocation, _) = eve.device.revoke(phone.device(), now()).unwrap();
    for o in revocation.iter().filter(|o| AccountId(o.to.0) == b) {
        eve.wire
            .send(&partition_topic(b), o.envelope.clone())
            .await
            .unwrap();
    }
    let bundle_topic = murmur::node::crypto::bundle_topic(murmur::crypto::envelope::partition(
        &murmur::crypto::AccountId(e.0),
        64,
    ));
    for payload in eve
        .device
        .revocations_of(eve.device.account())
        .into_iter()
        .chain([eve.device.bundle(now()).to_bytes()])
    {
        eve.wire.send(&bundle_topic, payload).await.unwrap();
    }
    eventually("Bob takes the revocation", || async {
        !bob.devices(e)
            .await
            .unwrap()
            .contains(&murmur::node::chat::DeviceId(phone.device().0))
    })
    .await;

    // The thief writes to Bob: refused unopened.
    let revoked = "murmur_crypto_refused_total{reason=\"revoked\"}";
    let text = |t: &str| Content {
        id: vec![1; 16],
        sent_at: 1,
        text: Some(t.to_owned()),
        ..Content::default()
    };
    let mut bob_inbox = bob.inbox().await.unwrap();
    let (out, _) = phone
        .seal(
            murmur::crypto::AccountId(b.0),
            &text("it's Eve").encode_to_vec(),
            now(),
        )
        .unwrap();
    for o in out.iter().filter(|o| AccountId(o.to.0) == b) {
        eve.wire
            .send(&partition_topic(b), o.envelope.clone())
            .await
            .unwrap();
    }
    eventually("Bob refuses the revoked phone", || async {
        metric(&bob, revoked).await >= 1
    })
    .await;
    assert!(bob_inbox.recv_timeout(Duration::ZERO).await.is_none());

    // Carol reads Eve's bundle topic from a store (the node that relayed
    // it archived it), learns the revocation there, and then refuses the
    // thief too.
    let store = format!("{}/p2p/{}", eve.wire.listen_addrs()[0], eve.wire.peer_id());
    let published = murmur_core::store::Query::content(
        Some(carol.pubsub_topic(&bundle_topic)),
        vec![bundle_topic.as_str().to_owned()],
    );
    eventually("the bundle topic is in the store", || async {
        carol
            .query_store(&store, published.clone())
            .await
            .is_ok_and(|page| page.messages.len() >= 2)
    })
    .await;
    carol.refresh_contact(&store, e).await.unwrap();
    let mut carol_inbox = carol.inbox().await.unwrap();
    let (out, _) = phone
        .seal(
            murmur::crypto::AccountId(c.0),
            &text("it's Eve").encode_to_vec(),
            now(),
        )
        .unwrap();
    for o in out.iter().filter(|o| AccountId(o.to.0) == c) {
        eve.wire
            .send(&partition_topic(c), o.envelope.clone())
            .await
            .unwrap();
    }
    eventually("Carol refuses the revoked phone", || async {
        metric(&carol, revoked).await >= 1
    })
    .await;
    assert!(carol_inbox.recv_timeout(Duration::ZERO).await.is_none());
}

/// M1: a moderator lifts a ban the owner set, signing the unban on its
/// current view and sending it to the owner: refused, the ban holds.
#[actix_rt::test]
async fn a_moderator_cannot_lift_a_ban_set_above_it() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let banned = node(dirs[1].path(), Some(&alice)).await;
    let mut eve = Attacker::new(dirs[2].path(), &alice).await;
    let e = alice.add_contact(&eve.code()).await.unwrap();
    let x = account(&banned).await;
    alice
        .add_contact(&banned.contact_code().await.unwrap())
        .await
        .unwrap();
    banned
        .add_contact(&alice.contact_code().await.unwrap())
        .await
        .unwrap();
    let club = alice
        .create_community("club", &["general"], murmur_core::groups::JoinMode::Invite)
        .await
        .unwrap();
    club.add(e).await.unwrap();
    club.add(x).await.unwrap();
    club.set_role(e, murmur_core::groups::Role::Moderator)
        .await
        .unwrap();
    club.ban(x).await.unwrap();
    let mut eves_view = Log::new(murmur_groups::EventId(club.id().0));
    let (me, banned_member) = (eve.member(), MemberId(x.0));
    eve.follow(&mut eves_view, |log| {
        log.state().role(&me) == Some(murmur_groups::Role::Moderator)
            && log.state().banned.contains(&banned_member)
    })
    .await;
    let before = alice.group(club.id()).info().await.unwrap();
    let unban = eve.sign(&eves_view, Action::Unban(banned_member));
    eve.send(account(&alice).await, &control(club.id(), &[unban]))
        .await;
    eventually("the owner's log takes the unban as rejected", || async {
        alice.group(club.id()).info().await.unwrap().rejected > before.rejected
    })
    .await;
    assert!(alice
        .group(club.id())
        .info()
        .await
        .unwrap()
        .banned
        .contains(&x));
}

/// M2: an admin shows the owner one history and a member another (two
/// events on the same view). The member sees heads it lacks in the
/// owner's next message, pulls the owner's log, and reports the admin.
#[actix_rt::test]
async fn an_equivocating_admin_is_caught_by_the_member_it_lied_to() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let bob = node(dirs[1].path(), Some(&alice)).await;
    let mut eve = Attacker::new(dirs[2].path(), &alice).await;
    let e = alice.add_contact(&eve.code()).await.unwrap();
    eve.meet(&alice).await;
    eve.meet(&bob).await;
    bob.add_contact(&eve.code()).await.unwrap();
    let b = account(&bob).await;
    alice
        .add_contact(&bob.contact_code().await.unwrap())
        .await
        .unwrap();
    bob.add_contact(&alice.contact_code().await.unwrap())
        .await
        .unwrap();
    let group = alice.create_group("club").await.unwrap();
    group.add(e).await.unwrap();
    group.add(b).await.unwrap();
    group.promote(e).await.unwrap();
    let mut view = Log::new(murmur_groups::EventId(group.id().0));
    let me = eve.member();
    eve.follow(&mut view, |log| {
        log.state().role(&me) == Some(murmur_groups::Role::Admin)
            && log.state().members.contains_key(&MemberId(b.0))
    })
    .await;
    eventually("Bob is in", || async {
        bob.group(group.id())
            .info()
            .await
            .is_ok_and(|i| i.members.len() == 3)
    })
    .await;
    let to_alice = eve.sign(&view, Action::Rename("for Alice".into()));
    let to_bob = eve.sign(&view, Action::Rename("for Bob".into()));
    eve.send(account(&alice).await, &control(group.id(), &[to_alice]))
        .await;
    eve.send(b, &control(group.id(), &[to_bob])).await;
    eventually("each took its own version", || async {
        alice.group(group.id()).info().await.unwrap().name == "for Alice"
            && bob.group(group.id()).info().await.unwrap().name == "for Bob"
    })
    .await;
    assert!(bob
        .group(group.id())
        .info()
        .await
        .unwrap()
        .equivocators
        .is_empty());
    let topic = murmur::node::groups::group_topic(group.id());
    for n in [&alice, &bob] {
        n.wait_for_peers(&n.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
    }
    group.send_text("hello all").await.unwrap();
    eventually("Bob pulls Alice's log and sees the fork", || async {
        bob.group(group.id()).info().await.unwrap().equivocators == vec![e]
    })
    .await;
}

/// M4: a member reads another member's chain id off the wire and hands a
/// newcomer a chain key of its own under that id, before the newcomer
/// joins (so that it is held and tried first). The newcomer refuses it
/// (a chain is bound to its owner's key) and reads the real owner.
#[actix_rt::test]
async fn a_member_cannot_squat_on_another_members_chain_at_a_newcomer() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = node(dirs[0].path(), None).await;
    let mut carol_config = murmur::node::Config::new(dirs[1].path());
    carol_config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    carol_config.network.peers = vec![alice.listen_addrs()[0].parse().unwrap()];
    let carol = Builder::new(carol_config).start().await.unwrap();
    let mut eve = Attacker::new(dirs[2].path(), &alice).await;
    let e = alice.add_contact(&eve.code()).await.unwrap();
    let c = account(&carol).await;
    alice
        .add_contact(&carol.contact_code().await.unwrap())
        .await
        .unwrap();
    carol
        .add_contact(&alice.contact_code().await.unwrap())
        .await
        .unwrap();
    carol.add_contact(&eve.code()).await.unwrap();
    eve.meet(&carol).await;
    let group = alice.create_group("club").await.unwrap();
    let topic = murmur::node::groups::group_topic(group.id());
    let mut wire = eve.wire.subscribe([&topic]).await.unwrap();
    group.add(e).await.unwrap();
    let mut view = Log::new(murmur_groups::EventId(group.id().0));
    let me = eve.member();
    eve.follow(&mut view, |log| log.state().members.contains_key(&me))
        .await;
    alice
        .wait_for_peers(&alice.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    // Alice's chain id, off the wire.
    group.send_text("hello").await.unwrap();
    let seen = wire
        .recv_timeout(WAIT)
        .await
        .expect("Alice's group message");
    let alices = murmur::crypto::group::GroupMessage::from_bytes(&seen.message.payload)
        .expect("a group message")
        .chain;
    // Eve's own chain key, under Alice's id, to Carol before she joins.
    let mut forged = murmur::crypto::group::SenderChain::generate(&[0; 48])
        .chain_key()
        .to_bytes()
        .to_vec();
    forged[1..17].copy_from_slice(&alices.0);
    let squat = Content {
        id: vec![3; 16],
        sent_at: 1,
        group: Some(GroupControl {
            group: group.id().0.to_vec(),
            chain: Some(forged),
            ..GroupControl::default()
        }),
        ..Content::default()
    };
    eve.send(c, &squat).await;
    let held = "murmur_groups_refused_total{reason=\"not_member\"}";
    eventually("Carol holds the key of a group she is not in", || async {
        metric(&carol, held).await >= 1
    })
    .await;

    // Alice adds Carol: Eve's held key is tried first, and refused (it is
    // not bound to Eve's device); Alice's own key then takes the chain.
    let mut inbox = carol.inbox().await.unwrap();
    group.add(c).await.unwrap();
    eventually("Carol is in", || async {
        carol.group(group.id()).info().await.is_ok_and(|i| i.member)
    })
    .await;
    let squatted = "murmur_groups_refused_total{reason=\"not_own_chain\"}";
    assert_eq!(metric(&carol, squatted).await, 1);
    carol
        .wait_for_peers(&carol.pubsub_topic(&topic), 1, WAIT)
        .await
        .unwrap();
    group.send_text("welcome Carol").await.unwrap();
    let got = inbox.recv_timeout(WAIT).await.expect("Carol reads Alice");
    assert_eq!(got.text(), Some("welcome Carol"));
}

async fn account(node: &Node) -> AccountId {
    node.chat_identity().await.unwrap().0
}
