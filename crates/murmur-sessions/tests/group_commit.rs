//! The crypto stage's group commit: what requests change while a write is
//! on its way goes as one group, in order, and no answer runs ahead of
//! what storage holds, when a write fails or the stage restarts meanwhile.

use bytes::Bytes;
use murmur_core::{
    crypto::{self, AccountId, AddContact, ContactCode, Error, Identity, Open, Seal, Sealed},
    storage,
    supervise::InjectPanic,
    Delivery, WakuMessage,
};
use murmur_sessions::{Crypto, Metrics, Settings};
use murmur_test_kit::{gate_saves, MemoryStorage, Valve};

const SECRET: &[u8] = b"the node key of this test";

/// Alice (her saves behind a gate the test opens, closes, or makes
/// refuse) and Bob, each other's contacts.
struct Pair {
    alice: crypto::Handle,
    bob: crypto::Handle,
    bob_id: AccountId,
    /// Alice's storage itself, for a stage started again on it.
    storage: storage::Handle,
    valve: Valve,
}

async fn start(storage: storage::Handle) -> crypto::Handle {
    let stage = Crypto::start(storage, SECRET, &Settings::default(), Metrics::default())
        .await
        .expect("the stage starts on what it saved");
    crypto::Handle::from(stage)
}

async fn pair() -> Pair {
    let storage = storage::Handle::from(MemoryStorage::start());
    let (gated, valve) = gate_saves(&storage);
    let alice = start(gated).await;
    let bob = start(storage::Handle::from(MemoryStorage::start())).await;
    let code = bob.contact_code.send(ContactCode).await.unwrap().unwrap();
    let bob_id = alice
        .add_contact
        .send(AddContact(code))
        .await
        .unwrap()
        .unwrap();
    // A session both ways, so that a message key used twice would show.
    let hello = seal(&alice, bob_id, "hello").await.unwrap().unwrap();
    assert_eq!(open(&bob, &hello).await.unwrap(), "hello");
    let alice_id = alice.identity.send(Identity).await.unwrap().unwrap().0;
    let back = seal(&bob, alice_id, "back").await.unwrap().unwrap();
    assert_eq!(open(&alice, &back).await.unwrap(), "back");
    Pair {
        alice,
        bob,
        bob_id,
        storage,
        valve,
    }
}

fn seal(stage: &crypto::Handle, to: AccountId, text: &str) -> actix::dev::RecipientRequest<Seal> {
    // Queued in the stage's mailbox now, answered when awaited.
    stage.seal.send(Seal::new(to, Bytes::from(text.to_owned())))
}

async fn open(stage: &crypto::Handle, sealed: &[Sealed]) -> Result<String, Error> {
    let message = WakuMessage::new(sealed[0].content_topic.as_str(), sealed[0].payload.clone())
        .with_timestamp(murmur_core::now_nanos());
    let delivery = Delivery::new("/waku/2/rs/1/0".parse().unwrap(), message);
    let opened = stage.open.send(Open(delivery)).await.unwrap()?;
    Ok(String::from_utf8_lossy(&opened.plaintext.unwrap_or_default()).into_owned())
}

/// Everything sent to `stage` before this was handled.
async fn handled(stage: &crypto::Handle) {
    stage.identity.send(Identity).await.unwrap().unwrap();
}

impl Pair {
    /// A stage started again on Alice's storage reads what she saved
    /// (refused if a group left it rolled back or torn) and reaches Bob.
    async fn starts_again_and_reaches_bob(&self, text: &str) {
        let again = start(self.storage.clone()).await;
        let sealed = seal(&again, self.bob_id, text).await.unwrap().unwrap();
        assert_eq!(open(&self.bob, &sealed).await.unwrap(), text);
    }
}

#[test]
fn seals_made_while_a_write_is_on_its_way_go_as_one_group_in_order() {
    murmur_test_kit::run(seals_made_while_a_write_is_on_its_way_go_as_one_group_in_order_());
}

async fn seals_made_while_a_write_is_on_its_way_go_as_one_group_in_order_() {
    let mut p = pair().await;
    let before = p.valve.arrived();
    p.valve.close();
    let first = seal(&p.alice, p.bob_id, "0");
    p.valve.holding(1).await;
    let rest: Vec<_> = (1..=20)
        .map(|i| seal(&p.alice, p.bob_id, &i.to_string()))
        .collect();
    handled(&p.alice).await;
    assert_eq!(p.valve.arrived() - before, 1, "one write at a time");
    p.valve.open();
    let mut sealed = vec![first.await.unwrap().unwrap()];
    for s in rest {
        sealed.push(s.await.unwrap().unwrap());
    }
    assert_eq!(
        p.valve.arrived() - before,
        2,
        "the twenty seals made meanwhile are one write"
    );
    for (i, s) in sealed.iter().enumerate() {
        assert_eq!(open(&p.bob, s).await.unwrap(), i.to_string());
    }
    p.starts_again_and_reaches_bob("after the groups").await;
}

#[test]
fn a_write_that_fails_fails_the_group_made_on_top_of_it() {
    murmur_test_kit::run(a_write_that_fails_fails_the_group_made_on_top_of_it_());
}

async fn a_write_that_fails_fails_the_group_made_on_top_of_it_() {
    let mut p = pair().await;
    p.valve.close();
    let first = seal(&p.alice, p.bob_id, "lost");
    p.valve.holding(1).await;
    let on_top = [
        seal(&p.alice, p.bob_id, "lost too"),
        seal(&p.alice, p.bob_id, "lost as well"),
    ];
    handled(&p.alice).await;
    // Only the held write fails; what comes after it would be written.
    p.valve.refuse();
    assert!(matches!(first.await.unwrap(), Err(Error::State(_))));
    for s in on_top {
        assert!(
            matches!(s.await.unwrap(), Err(Error::State(_))),
            "answered only if written"
        );
    }
    p.valve.open();
    let next = seal(&p.alice, p.bob_id, "next").await.unwrap().unwrap();
    assert_eq!(open(&p.bob, &next).await.unwrap(), "next");
    p.starts_again_and_reaches_bob("after the failure").await;
}

#[test]
fn a_restart_while_a_write_is_on_its_way_answers_it_and_reads_back_after_it() {
    murmur_test_kit::run(
        a_restart_while_a_write_is_on_its_way_answers_it_and_reads_back_after_it_(),
    );
}

async fn a_restart_while_a_write_is_on_its_way_answers_it_and_reads_back_after_it_() {
    let mut p = pair().await;
    p.valve.close();
    let written = seal(&p.alice, p.bob_id, "written");
    p.valve.holding(1).await;
    let gathering = seal(&p.alice, p.bob_id, "gathering");
    p.alice.inject_panic.send(InjectPanic).await.unwrap();
    let met = seal(&p.alice, p.bob_id, "met the panic");
    assert!(matches!(met.await.unwrap(), Err(Error::Restarted(_))));
    assert!(
        matches!(gathering.await.unwrap(), Err(Error::Restarted(_))),
        "its change went with the restart"
    );
    p.valve.open();
    let written = written
        .await
        .unwrap()
        .expect("a write handed to storage before the restart is answered as it went");
    // The restarted stage read its state back after that write landed:
    // its next message follows it, and Bob reads both.
    let next = seal(&p.alice, p.bob_id, "next").await.unwrap().unwrap();
    assert_eq!(open(&p.bob, &written).await.unwrap(), "written");
    assert_eq!(open(&p.bob, &next).await.unwrap(), "next");
    p.starts_again_and_reaches_bob("after the restart").await;
}
