//! The envelopes' key agreements beside the stage (`Settings::threads`):
//! a burst of envelopes is opened on several threads at once, yet each
//! session reads its messages in the order they came; a stage that
//! restarts meanwhile loses none of them; seals answer in the order of
//! their session steps.

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

/// Alice with `alice`, and Bob with `bob`, each other's contacts.
async fn alice_and_bob(
    alice: Settings,
    bob: Settings,
) -> (crypto::Handle, crypto::Handle, AccountId) {
    let alice = start(&alice).await;
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
    let (alice, bob, bob_id) = alice_and_bob(Settings::default(), Settings::new(64, 0, 0)).await;
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
fn a_restart_while_envelopes_are_on_the_pool_fails_only_the_request_that_panicked() {
    murmur_test_kit::run(
        a_restart_while_envelopes_are_on_the_pool_fails_only_the_request_that_panicked_(),
    );
}

async fn a_restart_while_envelopes_are_on_the_pool_fails_only_the_request_that_panicked_() {
    let strict = Settings::new(64, 0, 0).with_threads(4);
    let (alice, bob, _) = alice_and_bob(Settings::default(), strict).await;
    let alice_id = alice.identity.send(Identity).await.unwrap().unwrap().0;
    let bob_id = bob.identity.send(Identity).await.unwrap().unwrap().0;
    let sealed = sealed_burst(&alice, bob_id).await;
    // In Bob's mailbox in this order, before he handles any: the opens,
    // the fault, and a seal that meets it. The envelopes come back from
    // the pool after these, and the stage restarts while they do.
    let opens: Vec<_> = sealed
        .iter()
        .map(|s| bob.open.send(Open(delivery(s))))
        .collect();
    let fault = bob.inject_panic.send(InjectPanic);
    let seal = bob
        .seal
        .send(Seal::new(alice_id, Bytes::from_static(b"met the fault")));
    fault.await.unwrap();
    assert!(matches!(seal.await.unwrap(), Err(Error::Restarted(_))));
    // None of the envelopes is lost to the restart, nor read out of order
    // (Bob skips no key).
    for (i, open) in opens.into_iter().enumerate() {
        let opened = open.await.unwrap();
        let opened = opened.unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(text(&opened), i.to_string());
    }
}

#[test]
fn seals_answered_at_once_are_answered_in_the_order_of_their_steps() {
    murmur_test_kit::run(seals_answered_at_once_are_answered_in_the_order_of_their_steps_());
}

async fn seals_answered_at_once_are_answered_in_the_order_of_their_steps_() {
    use futures::StreamExt as _;
    // Alice seals on four threads, every fourth message large enough that
    // sealing it takes far longer than the small one after it; Bob skips no
    // key, so an envelope that left before one made earlier for him would
    // be refused.
    const SEALS: usize = 12;
    let text_of = |i: usize| {
        let fill = if i.is_multiple_of(4) { 256 << 10 } else { 0 };
        format!("{i} {}", "x".repeat(fill))
    };
    let alice_settings = Settings::default().with_threads(4);
    let (alice, bob, bob_id) = alice_and_bob(alice_settings, Settings::new(64, 0, 0)).await;
    let mut seals: futures::stream::FuturesUnordered<_> = (0..SEALS)
        .map(|i| {
            let seal = alice.seal.send(Seal::new(bob_id, Bytes::from(text_of(i))));
            async move { (i, seal.await) }
        })
        .collect();
    // Published as each answer comes, as the pipeline does.
    let mut published = Vec::new();
    while let Some((i, sealed)) = seals.next().await {
        published.push((i, sealed.unwrap().expect("sealed")));
    }
    let order: Vec<_> = published.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, (0..SEALS).collect::<Vec<_>>(), "answered in order");
    for (i, sealed) in published {
        let opened = bob.open.send(Open(delivery(&sealed[0]))).await.unwrap();
        let opened = opened.unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert!(text(&opened) == text_of(i), "message {i}");
    }
}

#[test]
fn an_envelope_sealed_on_the_stage_waits_for_the_seal_still_on_the_pool() {
    murmur_test_kit::run(an_envelope_sealed_on_the_stage_waits_for_the_seal_still_on_the_pool_());
}

async fn an_envelope_sealed_on_the_stage_waits_for_the_seal_still_on_the_pool_() {
    use futures::StreamExt as _;
    // A reset seals its first message on the stage, a step after the large
    // message still being sealed on the pool: it is answered after it.
    let alice_settings = Settings::default().with_threads(4);
    let (alice, bob, bob_id) = alice_and_bob(alice_settings, Settings::default()).await;
    let bob_device = bob.identity.send(Identity).await.unwrap().unwrap().1;
    let large = format!("0 {}", "x".repeat(256 << 10));
    let seal = alice
        .seal
        .send(Seal::new(bob_id, Bytes::from(large.clone())));
    let reset = alice.reset.send(murmur_core::crypto::Reset {
        account: bob_id,
        device: bob_device,
    });
    let mut answers: futures::stream::FuturesUnordered<_> = [
        Box::pin(async move { ("seal", seal.await.unwrap().expect("sealed")) })
            as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>,
        Box::pin(async move { ("reset", reset.await.unwrap().expect("reset")) }),
    ]
    .into_iter()
    .collect();
    let mut order = Vec::new();
    while let Some((what, sealed)) = answers.next().await {
        assert!(!sealed.is_empty(), "{what} sealed an envelope");
        order.push(what);
    }
    assert_eq!(
        order,
        ["seal", "reset"],
        "answered in the order of their steps"
    );
}
