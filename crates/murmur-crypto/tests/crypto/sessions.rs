//! X3DH: bundles are checked, one-time prekeys are used once, and a failed
//! first message leaves the responder as it was.

use murmur_crypto::{
    x3dh, Account, Bundle, BundleError, Ciphertext, Installation, Limits, PrekeyPolicy, Unpaired,
    X3dhError,
};

use crate::{device, NOW};

fn first_message(
    from: &Installation,
    to: &Bundle,
) -> (murmur_crypto::Initiation, murmur_crypto::Message) {
    let mut s = x3dh::initiate(from, to, Limits::default()).expect("valid bundle");
    match s.seal(b"first").expect("seal") {
        Ciphertext::Prekey(i, m) => (*i, m),
        Ciphertext::Message(_) => panic!("a first message carries the X3DH header"),
    }
}

#[test]
fn a_bundle_with_a_bad_signature_is_refused() {
    let alice = device();
    let bob = device();
    let good = bob.bundle(NOW);
    good.verify().expect("a fresh bundle verifies");

    let mut prekey = good.clone();
    prekey.signed_prekey.key.0[0] ^= 1;
    assert_eq!(
        x3dh::initiate(&alice, &prekey, Limits::default()).err(),
        Some(X3dhError::Bundle(BundleError::Signature(bob.device())))
    );

    let mut device_key = good.clone();
    device_key.certificate.identity_key.0[0] ^= 1;
    assert_eq!(
        device_key.verify(),
        Err(BundleError::Certificate(bob.account()))
    );

    // A device of another account cannot pass for one of Bob's.
    let mallory = device();
    let mut forged = mallory.bundle(NOW);
    forged.certificate.account = bob.account();
    assert!(forged.verify().is_err());
}

#[test]
fn bundles_survive_the_wire_and_garbage_is_a_typed_error() {
    let bundle = device().bundle(NOW);
    let bytes = bundle.to_bytes();
    assert_eq!(Bundle::from_bytes(&bytes).expect("decodes"), bundle);
    for len in [0, 1, 100, bytes.len() - 1] {
        assert!(Bundle::from_bytes(&bytes[..len]).is_err(), "{len} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Bundle::from_bytes(&longer).is_err());
}

#[test]
fn a_one_time_prekey_is_used_once() {
    let alice = device();
    let mut bob = device();
    let before = bob.one_time_left();
    let (init, m) = first_message(&alice, &bob.bundle(NOW));
    let id = init.one_time.expect("the bundle had one-time prekeys");
    x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("first time");
    assert_eq!(bob.one_time_left(), before - 1);
    assert_eq!(
        x3dh::respond(&mut bob, &init, &m, Limits::default()).err(),
        Some(X3dhError::Replay),
        "a replayed first message opens no second session"
    );
    // Another initiator who picked the same one-time prekey finds it gone.
    let (mut other, m2) = first_message(&device(), &bob.bundle(NOW));
    other.one_time = Some(id);
    assert_eq!(
        x3dh::respond(&mut bob, &other, &m2, Limits::default()).err(),
        Some(X3dhError::OneTimePrekeyUsed(id))
    );
    assert!(bob.maintain(NOW), "the used key is replaced");
    assert_eq!(bob.one_time_left(), before);
}

#[test]
fn a_tampered_first_message_keeps_the_one_time_prekey() {
    let alice = device();
    let mut bob = device();
    let (init, mut m) = first_message(&alice, &bob.bundle(NOW));
    let left = bob.one_time_left();
    m.ciphertext[0] ^= 1;
    assert!(matches!(
        x3dh::respond(&mut bob, &init, &m, Limits::default()),
        Err(X3dhError::Decrypt(_))
    ));
    assert_eq!(bob.one_time_left(), left, "nothing consumed by a forgery");
}

#[test]
fn an_impostor_certificate_is_refused() {
    let alice = device();
    let mut bob = device();
    let (mut init, m) = first_message(&alice, &bob.bundle(NOW));
    init.certificate.account = device().account();
    assert!(matches!(
        x3dh::respond(&mut bob, &init, &m, Limits::default()),
        Err(X3dhError::Bundle(BundleError::Certificate(_)))
    ));
}

#[test]
fn a_message_for_another_device_does_not_open() {
    let alice = device();
    let bob = device();
    let mut carol = device();
    let (init, m) = first_message(&alice, &bob.bundle(NOW));
    assert!(x3dh::respond(&mut carol, &init, &m, Limits::default()).is_err());
}

#[test]
fn late_first_messages_reach_a_rotated_prekey_until_it_is_dropped() {
    let policy = PrekeyPolicy {
        rotate_after: 10,
        keep_previous: 1,
        one_time: 5,
    };
    let alice = device();
    let mut bob = Installation::create(&Account::generate(), policy, NOW);
    let old_bundle = bob.bundle(NOW);
    assert!(bob.maintain(NOW + 10), "rotation is due");
    let (init, m) = first_message(&alice, &old_bundle);
    x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("previous prekey still kept");
    bob.maintain(NOW + 20);
    let (init, m) = first_message(&alice, &old_bundle);
    assert_eq!(
        x3dh::respond(&mut bob, &init, &m, Limits::default()).err(),
        Some(X3dhError::UnknownPrekey(old_bundle.signed_prekey.id))
    );
}

#[test]
fn a_second_device_pairs_and_a_wrong_certificate_is_refused() {
    let account = Account::generate();
    let phone = Installation::create(&account, PrekeyPolicy::default(), NOW);
    let laptop = Unpaired::generate(PrekeyPolicy::default(), NOW);
    let other = Unpaired::generate(PrekeyPolicy::default(), NOW);
    let wrong = account.certify(&other.request(NOW), NOW);
    assert!(matches!(
        Unpaired::generate(PrekeyPolicy::default(), NOW).pair(wrong.clone()),
        Err(BundleError::WrongDevice { .. })
    ));
    // The request travels as bytes; the account completes the device's
    // bundle with its certificate, without the device's help.
    let request = murmur_crypto::PairingRequest::from_bytes(&laptop.request(NOW).to_bytes())
        .expect("decodes");
    assert!(request.complete(wrong).is_err());
    let cert = account.certify(&request, NOW);
    let laptop_bundle = request.complete(cert.clone()).expect("a valid bundle");
    let laptop = laptop.pair(cert).expect("paired");
    assert_eq!(laptop.account(), phone.account());
    assert_eq!(laptop_bundle.device(), laptop.device());
    // The two devices of one account talk like any two devices.
    let mut to_laptop = x3dh::initiate(&phone, &laptop_bundle, Limits::default()).expect("ok");
    let Ciphertext::Prekey(init, m) = to_laptop.seal(b"sync").expect("seal") else {
        panic!("first message")
    };
    let mut laptop = laptop;
    let (_, text) = x3dh::respond(&mut laptop, &init, &m, Limits::default()).expect("opens");
    assert_eq!(text, b"sync");
    // And the account can revoke the laptop, verifiably.
    let revocation = account.revoke(laptop.device(), NOW + 1);
    revocation.verify().expect("signed by the account");
    let mut forged = revocation.clone();
    forged.device = phone.device();
    assert!(forged.verify().is_err());
}

#[test]
fn installations_survive_a_round_trip_through_bytes() {
    let alice = device();
    let bob = device();
    let mut restored = Installation::from_bytes(&bob.to_bytes()).expect("decodes");
    assert_eq!(restored.bundle(NOW), bob.bundle(NOW));
    let (init, m) = first_message(&alice, &bob.bundle(NOW));
    x3dh::respond(&mut restored, &init, &m, Limits::default()).expect("restored keys work");
}

#[test]
fn an_envelope_opens_only_for_its_device_and_hides_the_sender() {
    use murmur_crypto::envelope;
    let alice = device();
    let mut bob = device();
    let carol = device();
    let mut s = x3dh::initiate(&alice, &bob.bundle(NOW), Limits::default()).expect("ok");
    let sealed = s.seal(b"sealed hello").expect("seal");
    let payload = envelope::seal(
        &bob.identity_key(),
        (alice.account(), alice.device()),
        &sealed,
    );
    // version (2) + ephemeral (2 + 32) + sealed's tag and length (3) + AEAD tag (16)
    assert_eq!(payload.len(), 512 + 55, "padded to a bucket");
    for secret_free in [
        alice.account().0.as_slice(),
        &alice.device().0,
        &alice.identity_key().0,
    ] {
        assert!(
            !payload.windows(secret_free.len()).any(|w| w == secret_free),
            "the sender's identity is not on the wire"
        );
    }
    assert_eq!(
        envelope::open(&carol, &payload),
        Err(envelope::EnvelopeError::NotForUs)
    );
    let opened = envelope::open(&bob, &payload).expect("for bob");
    assert_eq!(opened.sender_account, alice.account());
    assert_eq!(opened.sender_device, alice.device());
    let Ciphertext::Prekey(init, m) = opened.ciphertext else {
        panic!("first message")
    };
    let (_, text) = x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("respond");
    assert_eq!(text, b"sealed hello");

    let mut tampered = payload.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        envelope::open(&bob, &tampered),
        Err(envelope::EnvelopeError::NotForUs)
    );
    assert!(matches!(
        envelope::open(&bob, b"\x08\x02"),
        Err(envelope::EnvelopeError::Version(2))
    ));
    assert!(envelope::open(&bob, &[0xff; 7]).is_err());
}

#[test]
fn a_first_message_without_a_one_time_prekey_sets_up_one_session_only() {
    let alice = device();
    let mut bob = device();
    let (init, m) = first_message(&alice, &bob.bundle_with(NOW, 0));
    assert_eq!(init.one_time, None);
    x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("first time");
    assert_eq!(
        x3dh::respond(&mut bob, &init, &m, Limits::default()).err(),
        Some(X3dhError::Replay)
    );
    // Across a restart the device keeps the keys seen as records of their
    // own (device.rs: a_first_message_writes_the_same_few_records...).
    // Another initiator on the same prekey is welcome.
    let (init, m) = first_message(&device(), &bob.bundle_with(NOW, 0));
    assert!(x3dh::respond(&mut bob, &init, &m, Limits::default()).is_ok());
}

#[test]
fn many_initiators_with_copies_of_one_bundle_all_reach_its_device() {
    let mut bob = device();
    // One bundle with one-time prekeys, handed on to everyone.
    let copy = bob.bundle(NOW);
    let before = bob.one_time_left();
    for i in 0..3 * before {
        let mut s = x3dh::initiate_shared(&device(), &copy, Limits::default()).expect("valid");
        let Ciphertext::Prekey(init, m) = s.seal(b"first").expect("seal") else {
            panic!("a first message carries the X3DH header");
        };
        assert_eq!(
            init.one_time, None,
            "a copy's one-time prekeys are left alone"
        );
        let (_, plaintext) = x3dh::respond(&mut bob, &init, &m, Limits::default())
            .unwrap_or_else(|e| panic!("initiator {i} refused: {e}"));
        assert_eq!(plaintext, b"first");
    }
    assert_eq!(bob.one_time_left(), before, "none used up");
}
