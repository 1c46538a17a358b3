//! The envelopes' key agreements beside the stage (`Settings::threads`):
//! a burst of envelopes is opened on several threads at once, yet each
//! session reads its messages in the order they came, and a stage that
//! restarts meanwhile answers every one of them.

use bytes::Bytes;
use murmur_core::{
    crypto::{self, AccountId, AddContact, ContactCode, Error, Identity, Open, Seal, Sealed},
    storage,
    supervise::InjectPanic,
    Delivery, WakuMessage,
};
use murmur_sessions::{Crypto, Metrics, Settings};
use murmur_test_kit::MemoryStorage;

const SECRET: &[u8] = b"the node key of this test";

/// As many envelopes as a busy conversation brings in one burst, and more.
const BURST: usize = 300;

async fn start(settings: &Settings) -> crypto::Handle {
    let storage = storage::Handle::from(MemoryStorage::start());
    let stage = Crypto::start(storage, SECRET, settings, Metrics::default())
        .await
        .expect("a new stage");
    crypto::Handle::from(stage)
}

/// Alice, and Bob with `bob`.
async fn alice_and_bob(bob: Settings) -> (crypto::Handle, crypto::Handle, AccountId) {
    let alice = start(&Settings::default()).await;
    let bob = start(&bob).await;
    let code = bob.contact_code.send(ContactCode).await.unwrap().unwrap();
    let bob_id = alice
        .add_contact
        .send(AddContact(code))
        .await
        .unwrap()
        .unwrap();
    let code = alice.contact_code.send(ContactCode).await.unwrap().unwrap();
    bob.add_contact
        .send(AddContact(code))
        .await
        .unwrap()
        .unwrap();
    (alice, bob, bob_id)
}

async fn sealed_burst(alice: &crypto::Handle, bob_id: AccountId) -> Vec<Sealed> {
    let seals: Vec<_> = (0..BURST)
        .map(|i| {
            alice
                .seal
                .send(Seal::new(bob_id, Bytes::from(i.to_string())))
        })
        .collect();
    let mut out = Vec::new();
    for s in seals {
        let sealed = s.await.unwrap().expect("sealed");
        assert_eq!(sealed.len(), 1, "one device");
        out.extend(sealed);
    }
    out
}

fn delivery(sealed: &Sealed) -> Delivery {
    let message = WakuMessage::new(sealed.content_topic.as_str(), sealed.payload.clone())
        .with_timestamp(murmur_core::now_nanos());
    Delivery::new("/waku/2/rs/1/0".parse().unwrap(), message)
}

fn text(opened: &crypto::Opened) -> String {
    String::from_utf8_lossy(opened.plaintext.as_deref().unwrap_or_default()).into_owned()
}

#[test]
fn a_burst_opened_on_several_threads_is_read_in_the_order_it_came() {
    murmur_test_kit::run(a_burst_opened_on_several_threads_is_read_in_the_order_it_came_());
}

async fn a_burst_opened_on_several_threads_is_read_in_the_order_it_came_() {
    // Bob's sessions skip no message key: an envelope of a session
    // stepped before an earlier one would be refused, not read.
    let (alice, bob, bob_id) = alice_and_bob(Settings::new(64, 0, 0)).await;
    let sealed = sealed_burst(&alice, bob_id).await;
    // Every envelope in Bob's mailbox before the first answer is awaited.
    let opens: Vec<_> = sealed
        .iter()
        .map(|s| bob.open.send(Open(delivery(s))))
        .collect();
    for (i, open) in opens.into_iter().enumerate() {
        let opened = open
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(text(&opened), i.to_string());
    }
}

#[test]
fn a_restart_among_envelopes_being_opened_answers_each_and_loses_none() {
    murmur_test_kit::run(a_restart_among_envelopes_being_opened_answers_each_and_loses_none_());
}

async fn a_restart_among_envelopes_being_opened_answers_each_and_loses_none_() {
    let (alice, bob, bob_id) = alice_and_bob(Settings::default().with_threads(4)).await;
    let sealed = sealed_burst(&alice, bob_id).await;
    let (first, rest) = sealed.split_at(BURST / 3);
    let opens: Vec<_> = first
        .iter()
        .map(|s| bob.open.send(Open(delivery(s))))
        .collect();
    bob.inject_panic.send(InjectPanic).await.unwrap();
    let later: Vec<_> = rest
        .iter()
        .map(|s| bob.open.send(Open(delivery(s))))
        .collect();
    let mut again = Vec::new();
    let mut read = 0;
    for (i, open) in opens.into_iter().chain(later).enumerate() {
        match open.await.unwrap() {
            Ok(opened) => {
                assert_eq!(text(&opened), i.to_string());
                read += 1;
            }
            Err(Error::Restarted(_)) => again.push(i),
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    assert!(!again.is_empty(), "the restart met the burst");
    // What the restart answered is asked again, as the pipeline does, and
    // read: the stage reloaded before any step it had not saved, and the
    // envelopes that came after it were read with the keys skipped.
    for i in again {
        let opened = bob.open.send(Open(delivery(&sealed[i]))).await.unwrap();
        assert_eq!(
            text(&opened.unwrap_or_else(|e| panic!("message {i}: {e}"))),
            i.to_string()
        );
        read += 1;
    }
    assert_eq!(read, BURST);
    bob.identity.send(Identity).await.unwrap().unwrap();
}
