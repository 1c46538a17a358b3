//! The crypto stage's conformance suite. `$start` is an
//! `async fn(murmur_core::storage::Handle) -> murmur_core::crypto::Handle`
//! that starts the stage on that storage: with a fresh storage, a new
//! account and device; with one it used before, the same ones.

use std::future::Future;

use bytes::Bytes;
use murmur_core::{
    crypto::{
        self, Accept, AccountId, AddContact, BundleTopic, Bundles, ContactCode, Contacts, Decline,
        Error, Identity, LearnBundles, Open, OwnBundle, Pair, PairingCode, Requests, Revoke, Seal,
        Sealed, SignEvent, Topics,
    },
    storage,
    supervise::InjectPanic,
    Delivery, PubsubTopic, WakuMessage,
};

use crate::MemoryStorage;

mod accounts;
mod burst;
mod journal;
mod reset;
pub use accounts::{
    a_revoked_device_reads_nothing_after,
    a_stranger_hears_nothing_until_accepted_and_a_blocked_one_is_refused,
};
pub use burst::a_message_right_behind_the_pairing_answer_opens_with_the_new_identity;
pub use journal::keeps_what_it_opened_until_it_is_handled;
pub use reset::{
    a_broken_session_is_started_over_once_a_minute_at_most,
    a_reset_keeps_the_old_session_readable_and_comes_once_a_minute,
};

/// Runs the crypto stage's suite against `$start`.
#[macro_export]
macro_rules! crypto_conformance_tests {
    ($start:path) => {
        mod crypto_conformance {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        $crate::run($crate::crypto_conformance::$name($start));
                    }
                };
            }

            case!(seals_and_opens_both_ways_with_the_sender_verified);
            case!(refuses_what_is_not_for_it);
            case!(refuses_a_replay_and_goes_on);
            case!(refuses_unknown_contacts_and_bad_codes);
            case!(keeps_its_identity_and_sessions_across_a_restart);
            case!(sessions_started_at_once_converge_whatever_arrives_first);
            case!(sessions_started_at_once_converge_across_a_restart);
            case!(every_contact_reaches_a_paired_device_it_was_introduced_to);
            case!(survives_a_panic_in_a_handler_with_its_sessions);
            case!(names_its_topics_and_hands_out_bundles);
            case!(learns_bundles_and_reaches_an_account_known_by_them);
            case!(signs_group_events_only);
            case!(a_revoked_device_reads_nothing_after);
            case!(a_stranger_hears_nothing_until_accepted_and_a_blocked_one_is_refused);
            case!(keeps_what_it_opened_until_it_is_handled);
            case!(a_broken_session_is_started_over_once_a_minute_at_most);
            case!(a_reset_keeps_the_old_session_readable_and_comes_once_a_minute);
            case!(a_message_right_behind_the_pairing_answer_opens_with_the_new_identity);
        }
    };
}

fn storage() -> storage::Handle {
    storage::Handle::from(MemoryStorage::start())
}

fn delivery(sealed: &Sealed) -> Delivery {
    let topic: PubsubTopic = "/waku/2/rs/1/0".parse().expect("valid topic");
    Delivery::new(
        topic,
        WakuMessage::new(sealed.content_topic.as_str(), sealed.payload.clone())
            .with_timestamp(murmur_core::now_nanos()),
    )
}

async fn identity(stage: &crypto::Handle) -> (AccountId, crypto::DeviceId) {
    stage
        .identity
        .send(Identity)
        .await
        .expect("stage alive")
        .expect("an identity")
}

async fn seal(stage: &crypto::Handle, to: AccountId, text: &str) -> Result<Vec<Sealed>, Error> {
    stage
        .seal
        .send(Seal::new(to, Bytes::from(text.to_owned())))
        .await
        .expect("stage alive")
}

async fn open(stage: &crypto::Handle, sealed: &Sealed) -> Result<crypto::Opened, Error> {
    stage
        .open
        .send(Open(delivery(sealed)))
        .await
        .expect("stage alive")
}

/// `a` adds `b`'s contact code.
async fn introduce(a: &crypto::Handle, b: &crypto::Handle) -> AccountId {
    let code = b
        .contact_code
        .send(ContactCode)
        .await
        .expect("stage alive")
        .expect("a contact code");
    a.add_contact
        .send(AddContact(code))
        .await
        .expect("stage alive")
        .expect("a valid code")
}

/// Sealed for a contact, opened by it with the sender verified; the answer
/// goes back through the session the first message set up.
pub async fn seals_and_opens_both_ways_with_the_sender_verified<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob) = (start(storage()).await, start(storage()).await);
    let bob_id = introduce(&alice, &bob).await;
    assert_eq!(bob_id, identity(&bob).await.0);
    let sealed = seal(&alice, bob_id, "hello").await.expect("sealed");
    assert_eq!(sealed.len(), 1, "one envelope per device");
    assert!(
        !sealed[0].payload.windows(5).any(|w| w == b"hello"),
        "the plaintext is not on the wire"
    );
    let opened = open(&bob, &sealed[0]).await.expect("opens");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"hello"[..]));
    assert_eq!((opened.sender, opened.device), identity(&alice).await);
    let reply = seal(&bob, opened.sender, "hi").await.expect("answers");
    let opened = open(&alice, &reply[0]).await.expect("opens");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"hi"[..]));
    assert_eq!(opened.sender, bob_id);
}

/// An envelope for another device, and bytes that are no envelope, are
/// refused with typed errors.
pub async fn refuses_what_is_not_for_it<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob, carol) = (
        start(storage()).await,
        start(storage()).await,
        start(storage()).await,
    );
    let bob_id = introduce(&alice, &bob).await;
    let sealed = seal(&alice, bob_id, "for bob").await.expect("sealed");
    assert_eq!(open(&carol, &sealed[0]).await.err(), Some(Error::NotForUs));
    let junk = Sealed::new(sealed[0].content_topic.clone(), Bytes::from_static(b"junk"));
    assert!(matches!(
        open(&bob, &junk).await,
        Err(Error::Undecryptable(_))
    ));
    assert!(
        open(&bob, &sealed[0]).await.is_ok(),
        "the real one still opens"
    );
}

/// The same envelope twice: the second is a replay; the session goes on.
pub async fn refuses_a_replay_and_goes_on<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob) = (start(storage()).await, start(storage()).await);
    let bob_id = introduce(&alice, &bob).await;
    for text in ["one", "two"] {
        let sealed = seal(&alice, bob_id, text).await.expect("sealed");
        assert!(open(&bob, &sealed[0]).await.is_ok());
        assert_eq!(open(&bob, &sealed[0]).await.err(), Some(Error::Replay));
    }
}

/// Sealing for an account never introduced, and adding malformed codes,
/// are typed errors.
pub async fn refuses_unknown_contacts_and_bad_codes<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let alice = start(storage()).await;
    let stranger = AccountId([9; 32]);
    assert_eq!(
        seal(&alice, stranger, "hi").await.err(),
        Some(Error::UnknownContact(stranger))
    );
    for code in ["", "murmur:", "murmur:@@@", "not a code"] {
        let added = alice
            .add_contact
            .send(AddContact(code.to_owned()))
            .await
            .expect("stage alive");
        assert!(matches!(added, Err(Error::BadContact(_))), "{code:?}");
    }
}

/// Restarted on the storage it used, the stage is the same device with the
/// same sessions.
pub async fn keeps_its_identity_and_sessions_across_a_restart<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let bob_storage = storage();
    let alice = start(storage()).await;
    let bob = start(bob_storage.clone()).await;
    let me = identity(&bob).await;
    let bob_id = introduce(&alice, &bob).await;
    let first = seal(&alice, bob_id, "before").await.expect("sealed");
    assert!(open(&bob, &first[0]).await.is_ok());
    let bob = start(bob_storage).await;
    assert_eq!(identity(&bob).await, me);
    let second = seal(&alice, bob_id, "after").await.expect("sealed");
    let opened = open(&bob, &second[0]).await.expect("the session survived");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"after"[..]));
    assert_eq!(open(&bob, &first[0]).await.err(), Some(Error::Replay));
}

fn text(o: crypto::Opened) -> Option<String> {
    o.plaintext
        .map(|p| String::from_utf8_lossy(&p).into_owned())
}

/// Two stages, each with its storage, named by (account, device): the tie
/// of a simultaneous start is broken by it.
async fn ordered_pair<F, Fut>(start: &F) -> [(crypto::Handle, storage::Handle); 2]
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (a_storage, b_storage) = (storage(), storage());
    let (a, b) = (
        start(a_storage.clone()).await,
        start(b_storage.clone()).await,
    );
    introduce(&a, &b).await;
    introduce(&b, &a).await;
    if identity(&a).await < identity(&b).await {
        [(a, a_storage), (b, b_storage)]
    } else {
        [(b, b_storage), (a, a_storage)]
    }
}

/// Both write first, and the large side's answer on the small side's
/// session overtakes the large side's own first message: each reads
/// everything, and they end up writing on different sessions.
async fn start_at_once(small: &crypto::Handle, large: &crypto::Handle) {
    let (small_id, large_id) = (identity(small).await.0, identity(large).await.0);
    let from_small = seal(small, large_id, "small 1").await.expect("sealed");
    let from_large = seal(large, small_id, "large 1").await.expect("sealed");
    let opened = open(large, &from_small[0]).await.expect("opens");
    assert_eq!(text(opened).as_deref(), Some("small 1"));
    let answer = seal(large, small_id, "large 2").await.expect("sealed");
    let opened = open(small, &answer[0]).await.expect("the answer opens");
    assert_eq!(text(opened).as_deref(), Some("large 2"));
    let opened = open(small, &from_large[0])
        .await
        .expect("the late first message opens");
    assert_eq!(text(opened).as_deref(), Some("large 1"));
}

/// Rounds of one message each way, every one read.
async fn exchange(small: &crypto::Handle, large: &crypto::Handle) {
    let (small_id, large_id) = (identity(small).await.0, identity(large).await.0);
    for round in 2..5 {
        let words = format!("small {round}");
        let sealed = seal(small, large_id, &words).await.expect("sealed");
        let opened = open(large, &sealed[0]).await.expect("the large side reads");
        assert_eq!(text(opened), Some(words));
        let words = format!("large {}", round + 1);
        let sealed = seal(large, small_id, &words).await.expect("sealed");
        let opened = open(small, &sealed[0]).await.expect("the small side reads");
        assert_eq!(text(opened), Some(words));
    }
}

/// Both sides write first, and one side's answer on the other's session
/// overtakes its own first message: every message still opens, and after
/// one exchange both write on the same session.
pub async fn sessions_started_at_once_converge_whatever_arrives_first<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let [(small, _), (large, _)] = ordered_pair(&start).await;
    start_at_once(&small, &large).await;
    exchange(&small, &large).await;
}

/// As above, with both sides restarted while they still write on different
/// sessions: what each keeps to read the other's session survives.
pub async fn sessions_started_at_once_converge_across_a_restart<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let [(small, small_storage), (large, large_storage)] = ordered_pair(&start).await;
    start_at_once(&small, &large).await;
    let (small, large) = (start(small_storage).await, start(large_storage).await);
    exchange(&small, &large).await;
}

/// Opens every envelope of `sealed` that is for `stage`; the others (for
/// other devices) must be refused as such.
async fn open_mine(stage: &crypto::Handle, sealed: &[Sealed]) -> Vec<crypto::Opened> {
    let mut opened = Vec::new();
    for envelope in sealed {
        match open(stage, envelope).await {
            Ok(o) => opened.push(o),
            Err(Error::NotForUs) => {}
            Err(e) => panic!("an envelope for this device was refused: {e}"),
        }
    }
    opened
}

/// `stage` opens `hello` from `stranger`, a message request: nothing goes
/// back until it accepts `stranger`, whose devices then open the answer
/// (this account's device list).
async fn answer_accepted(stage: &crypto::Handle, stranger: &crypto::Handle, hello: &[Sealed]) {
    for o in open_mine(stage, hello).await {
        assert!(o.request, "a first message from a stranger is a request");
        assert!(
            o.publish.is_empty(),
            "a stranger is answered before it is accepted"
        );
    }
    let answer = stage
        .accept
        .send(Accept(identity(stranger).await.0))
        .await
        .expect("stage alive")
        .expect("accepted");
    open_mine(stranger, &answer).await;
}

/// `second` pairs with `first`'s account: code, request, answer.
async fn pair(first: &crypto::Handle, second: &crypto::Handle) {
    let answers = pairing_answers(first, second).await;
    let opened = open_mine(second, &answers).await;
    assert!(opened.iter().any(|o| o.identity_changed), "paired");
}

/// What `first` publishes once `second` asked to pair with its account:
/// its answer to `second`, and its announcement to everyone else.
async fn pairing_answers(first: &crypto::Handle, second: &crypto::Handle) -> Vec<Sealed> {
    let code = first
        .pairing_code
        .send(PairingCode)
        .await
        .expect("stage alive")
        .expect("the first device makes pairing codes");
    let request = second
        .pair
        .send(Pair(code))
        .await
        .expect("stage alive")
        .expect("a valid code");
    let mut answers = Vec::new();
    for o in open_mine(first, &request).await {
        answers.extend(o.publish);
    }
    answers
}

/// A second device joins an account; the first device introduces it to
/// many contacts, each of which then writes to it: every first message
/// opens on the new device. (The bundle the first device hands on is one
/// copy for all of them: a one-time prekey in it can serve only one.)
pub async fn every_contact_reaches_a_paired_device_it_was_introduced_to<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    const CONTACTS: usize = 24;
    let (phone, laptop) = (start(storage()).await, start(storage()).await);
    pair(&phone, &laptop).await;
    let (account, laptop_device) = identity(&laptop).await;
    assert_eq!(account, identity(&phone).await.0);

    let mut contacts = Vec::new();
    for _ in 0..CONTACTS {
        let contact = start(storage()).await;
        introduce(&contact, &phone).await;
        let hello = seal(&contact, account, "hello").await.expect("sealed");
        // Once the phone accepts a new contact, its answer lists the
        // account's devices.
        answer_accepted(&phone, &contact, &hello).await;
        let devices = contact
            .devices
            .send(crypto::Devices(account))
            .await
            .expect("stage alive")
            .expect("the devices");
        assert!(devices.contains(&laptop_device), "introduced to the laptop");
        contacts.push(contact);
    }
    // The phone writes to its laptop too (a copy of what it sends).
    let contact_id = identity(&contacts[0]).await.0;
    let copy = seal(&phone, contact_id, "a copy").await.expect("sealed");
    let opened = open_mine(&laptop, &copy).await;
    assert_eq!(opened.len(), 1, "the phone's copy opens on the laptop");

    for (i, contact) in contacts.iter().enumerate() {
        let words = format!("from contact {i}");
        let sealed = seal(contact, account, &words).await.expect("sealed");
        let opened = open_mine(&laptop, &sealed).await;
        assert_eq!(
            opened.len(),
            1,
            "contact {i}'s first message opens on the laptop"
        );
        assert_eq!(opened[0].plaintext.as_deref(), Some(words.as_bytes()));
        assert_eq!(opened[0].sender, identity(contact).await.0);
    }
}

/// A panic in a handler is answered with [`Error::Restarted`]; the stage
/// restarts from what it had saved, so the message that met the panic opens
/// when it is offered again, and the session goes on both ways.
pub async fn survives_a_panic_in_a_handler_with_its_sessions<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob) = (start(storage()).await, start(storage()).await);
    let bob_id = introduce(&alice, &bob).await;
    let first = seal(&alice, bob_id, "one").await.expect("sealed");
    open(&bob, &first[0]).await.expect("opens");
    let second = seal(&alice, bob_id, "two").await.expect("sealed");

    bob.inject_panic
        .send(InjectPanic)
        .await
        .expect("stage alive");
    let met = open(&bob, &second[0]).await;
    assert!(
        matches!(met, Err(Error::Restarted(_))),
        "the open that met the panic: {met:?}"
    );
    let opened = open(&bob, &second[0])
        .await
        .expect("opens after the restart: the panic changed nothing saved");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"two"[..]));
    let reply = seal(&bob, opened.sender, "three").await.expect("answers");
    let opened = open(&alice, &reply[0]).await.expect("opens");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"three"[..]));
}

/// The stage names its partition topic and its bundle topic, hands out its
/// own signed bundle, and the bundles it knows of an account.
pub async fn names_its_topics_and_hands_out_bundles<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob) = (start(storage()).await, start(storage()).await);
    let (account, _) = identity(&alice).await;
    let topics = alice
        .topics
        .send(Topics)
        .await
        .expect("stage alive")
        .expect("topics");
    assert_eq!(topics.len(), 1, "one partition topic: {topics:?}");
    let (topic, bundle) = alice
        .own_bundle
        .send(OwnBundle)
        .await
        .expect("stage alive")
        .expect("a bundle");
    let named = alice
        .bundle_topic
        .send(BundleTopic(account))
        .await
        .expect("stage alive")
        .expect("a bundle topic");
    assert_eq!(
        topic, named,
        "its own bundle goes on its account's bundle topic"
    );
    assert_ne!(topic, topics[0]);
    assert!(!bundle.is_empty());
    let own = alice
        .bundles
        .send(Bundles(account))
        .await
        .expect("stage alive")
        .expect("bundles");
    assert_eq!(own.len(), 1, "its own device");
    let bob_id = introduce(&alice, &bob).await;
    let known = alice
        .bundles
        .send(Bundles(bob_id))
        .await
        .expect("stage alive")
        .expect("bundles");
    assert_eq!(known.len(), 1, "bob's device, from his contact code");
    let strangers = alice
        .bundles
        .send(Bundles(AccountId([3; 32])))
        .await
        .expect("stage alive")
        .expect("bundles");
    assert!(strangers.is_empty());
}

/// An account known only by its bundles (as read from its bundle topic) can
/// be written to; garbage among the bundles is passed over.
pub async fn learns_bundles_and_reaches_an_account_known_by_them<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob) = (start(storage()).await, start(storage()).await);
    let (bob_id, _) = identity(&bob).await;
    let (_, bundle) = bob
        .own_bundle
        .send(OwnBundle)
        .await
        .expect("stage alive")
        .expect("a bundle");
    let learned = alice
        .learn_bundles
        .send(LearnBundles {
            account: bob_id,
            bundles: vec![Bytes::from_static(b"not a bundle"), bundle.clone()],
        })
        .await
        .expect("stage alive")
        .expect("learned");
    assert_eq!(learned, 1, "one device learned, the garbage passed over");
    let again = alice
        .learn_bundles
        .send(LearnBundles {
            account: bob_id,
            bundles: vec![bundle],
        })
        .await
        .expect("stage alive")
        .expect("learned");
    assert_eq!(again, 0, "a bundle known already teaches nothing");
    let sealed = seal(&alice, bob_id, "found you").await.expect("sealed");
    let opened = open(&bob, &sealed[0]).await.expect("opens");
    assert_eq!(opened.plaintext.as_deref(), Some(&b"found you"[..]));
}

/// The account key signs group membership events and nothing else.
pub async fn signs_group_events_only<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let alice = start(storage()).await;
    let refused = alice
        .sign_event
        .send(SignEvent(Bytes::from_static(
            b"a bundle, a revocation, anything",
        )))
        .await
        .expect("stage alive");
    assert_eq!(refused, Err(Error::NotSignable));
}
