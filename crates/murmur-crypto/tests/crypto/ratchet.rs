//! Double Ratchet properties: any order and loss within the bounds decrypts,
//! any flipped bit fails, used keys are gone, replays fail, and no failure
//! changes the session.

use murmur_crypto::{x3dh, Ciphertext, DecryptError, Limits, Message, Session};
use proptest::prelude::*;

use crate::pair;

fn text(i: usize) -> Vec<u8> {
    format!("message {i}").into_bytes()
}

fn send(from: &mut Session, range: std::ops::Range<usize>) -> Vec<(usize, Message)> {
    range
        .map(|i| (i, from.encrypt(&text(i)).expect("encrypt")))
        .collect()
}

/// Alice's first chain, then a reply from Bob that makes Alice ratchet, then
/// Alice's second chain: what Bob has not received yet, in flight together.
fn two_chains(first: usize, second: usize) -> (Session, Session, Vec<(usize, Message)>) {
    let (mut alice, mut bob) = pair(Limits::default());
    let mut flight = send(&mut alice, 0..first);
    let reply = bob.encrypt(b"reply").expect("encrypt");
    assert_eq!(alice.decrypt(&reply).expect("reply decrypts"), b"reply");
    flight.extend(send(&mut alice, first..first + second));
    (alice, bob, flight)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_order_and_loss_within_bounds_decrypts(
        first in 1usize..40,
        second in 1usize..40,
        order in any::<u64>(),
        lost in proptest::collection::vec(any::<bool>(), 80),
    ) {
        let (_, mut bob, mut flight) = two_chains(first, second);
        let mut rng = order;
        // Fisher-Yates with a xorshift stream: proptest shrinks the seed.
        for i in (1..flight.len()).rev() {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            flight.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for (k, (i, m)) in flight.iter().enumerate() {
            if lost[k % lost.len()] {
                continue;
            }
            prop_assert_eq!(bob.decrypt(m).expect("in-bounds message decrypts"), text(*i));
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_and_the_session_survives(bit in any::<usize>()) {
        let (mut alice, mut bob) = pair(Limits::default());
        // Bob answers, so Alice's messages no longer carry the X3DH header.
        alice.decrypt(&bob.encrypt(b"ok").expect("encrypt")).expect("answer");
        let sealed = alice.seal(b"the real message").expect("seal");
        prop_assert!(matches!(sealed, Ciphertext::Message(_)));
        let mut bytes = sealed.to_bytes();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let outcome = Ciphertext::from_bytes(&bytes).map(|c| bob.decrypt(c.message()));
        prop_assert!(!matches!(outcome, Ok(Ok(_))), "bit {} flipped and still decrypted", bit);
        prop_assert_eq!(bob.decrypt(sealed.message()).expect("original decrypts"), b"the real message");
    }

    #[test]
    fn a_flipped_bit_in_a_first_message_fails_and_keeps_the_prekeys(bit in any::<usize>()) {
        let alice = crate::device();
        let mut bob = crate::device();
        let mut s = x3dh::initiate(&alice, &bob.bundle(crate::NOW), Limits::default()).expect("ok");
        let sealed = s.seal(b"first").expect("seal");
        let mut bytes = sealed.to_bytes();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let left = bob.one_time_left();
        if let Ok(Ciphertext::Prekey(init, m)) = Ciphertext::from_bytes(&bytes) {
            prop_assert!(x3dh::respond(&mut bob, &init, &m, Limits::default()).is_err(), "bit {} flipped", bit);
        }
        prop_assert_eq!(bob.one_time_left(), left);
        let Ciphertext::Prekey(init, m) = sealed else { panic!("first message") };
        prop_assert!(x3dh::respond(&mut bob, &init, &m, Limits::default()).is_ok());
    }
}

#[test]
fn a_replay_fails_and_used_keys_are_gone() {
    let (mut alice, mut bob) = pair(Limits::default());
    let m0 = alice.encrypt(b"zero").expect("encrypt");
    let m1 = alice.encrypt(b"one").expect("encrypt");
    let m2 = alice.encrypt(b"two").expect("encrypt");
    assert_eq!(bob.decrypt(&m2).expect("m2"), b"two");
    assert_eq!(bob.skipped_keys(), 2, "m0 and m1 were skipped over");
    assert_eq!(bob.decrypt(&m0).expect("m0"), b"zero");
    assert_eq!(bob.skipped_keys(), 1, "m0's key is gone once used");
    for replay in [&m0, &m2] {
        assert!(matches!(
            bob.decrypt(replay),
            Err(DecryptError::Replay { .. })
        ));
    }
    assert_eq!(bob.decrypt(&m1).expect("m1"), b"one");
    assert_eq!(bob.skipped_keys(), 0);
    assert!(matches!(bob.decrypt(&m1), Err(DecryptError::Replay { .. })));
}

#[test]
fn a_replay_from_an_old_chain_is_named() {
    let (mut alice, mut bob) = pair(Limits::default());
    let old = alice.encrypt(b"old chain").expect("encrypt");
    assert!(bob.decrypt(&old).is_ok());
    // Two round trips retire Alice's first ratchet key at Bob's.
    for _ in 0..2 {
        let r = bob.encrypt(b"r").expect("encrypt");
        alice.decrypt(&r).expect("reply");
        let m = alice.encrypt(b"m").expect("encrypt");
        bob.decrypt(&m).expect("m");
    }
    assert!(matches!(
        bob.decrypt(&old),
        Err(DecryptError::Replay { .. })
    ));
}

#[test]
fn a_skip_beyond_the_bound_fails_and_the_session_goes_on() {
    let limits = Limits {
        max_skip: 5,
        max_stored: 10,
    };
    let (mut alice, mut bob) = pair(limits);
    let flight = send(&mut alice, 0..8);
    assert!(matches!(
        bob.decrypt(&flight[7].1),
        Err(DecryptError::TooFarAhead { gap: 7, max: 5 })
    ));
    assert_eq!(bob.skipped_keys(), 0, "nothing was kept from the failure");
    assert_eq!(
        bob.decrypt(&flight[5].1).expect("within the bound"),
        text(5)
    );
    assert_eq!(bob.decrypt(&flight[7].1).expect("now within"), text(7));
}

#[test]
fn stored_skipped_keys_are_bounded_oldest_first() {
    let limits = Limits {
        max_skip: 100,
        max_stored: 3,
    };
    let (mut alice, mut bob) = pair(limits);
    let flight = send(&mut alice, 0..6);
    bob.decrypt(&flight[5].1).expect("m5");
    assert_eq!(bob.skipped_keys(), 3);
    assert!(matches!(
        bob.decrypt(&flight[0].1),
        Err(DecryptError::Replay { index: 1 })
    ));
    assert_eq!(bob.decrypt(&flight[4].1).expect("kept"), text(4));
}

#[test]
fn a_message_for_another_session_fails_and_both_sessions_go_on() {
    let (mut alice, mut bob) = pair(Limits::default());
    let (mut carol, _dave) = pair(Limits::default());
    let stray = carol.encrypt(b"for dave").expect("encrypt");
    assert_eq!(bob.decrypt(&stray), Err(DecryptError::Authentication));
    let m = alice.encrypt(b"for bob").expect("encrypt");
    assert_eq!(bob.decrypt(&m).expect("still works"), b"for bob");
}

#[test]
fn ping_pong_ratchets_every_turn() {
    let (mut alice, mut bob) = pair(Limits::default());
    let mut keys = std::collections::HashSet::new();
    for turn in 0..20 {
        let (from, to) = if turn % 2 == 0 {
            (&mut bob, &mut alice)
        } else {
            (&mut alice, &mut bob)
        };
        let m = from.encrypt(&text(turn)).expect("encrypt");
        assert!(
            keys.insert(m.header.ratchet_key),
            "a new ratchet key each turn"
        );
        assert_eq!(to.decrypt(&m).expect("decrypt"), text(turn));
    }
    assert!(
        alice.pending().is_none(),
        "the X3DH header stops once Bob answered"
    );
}

#[test]
fn state_survives_a_round_trip_through_bytes() {
    let (mut alice, bob) = pair(Limits::default());
    let flight = send(&mut alice, 0..4);
    let mut bob = Session::from_bytes(&bob.to_bytes()).expect("bob's state");
    bob.decrypt(&flight[3].1).expect("m3");
    let mut bob = Session::from_bytes(&bob.to_bytes()).expect("with skipped keys");
    assert_eq!(bob.skipped_keys(), 3);
    for (i, m) in &flight[..3] {
        assert_eq!(bob.decrypt(m).expect("skipped key survived"), text(*i));
    }
    let mut alice = Session::from_bytes(&alice.to_bytes()).expect("alice's state");
    let m = alice.seal(b"after restore").expect("seal");
    assert!(
        matches!(m, Ciphertext::Prekey(..)),
        "still waiting for Bob's answer"
    );
    assert_eq!(bob.decrypt(m.message()).expect("decrypt"), b"after restore");
}

#[test]
fn truncated_or_foreign_state_is_a_typed_error() {
    let (alice, _) = pair(Limits::default());
    let bytes = alice.to_bytes();
    for len in [0, 1, 40, bytes.len() - 1] {
        assert!(Session::from_bytes(&bytes[..len]).is_err(), "{len} bytes");
    }
    let mut other = bytes.to_vec();
    other[0] = 99;
    assert!(matches!(
        Session::from_bytes(&other),
        Err(murmur_crypto::DecodeError::Version { found: 99, .. })
    ));
}
