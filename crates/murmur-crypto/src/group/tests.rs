use super::*;

fn pair() -> (SenderChain, ReceiverChain) {
    let s = SenderChain::generate(b"owner");
    let r = ReceiverChain::new(
        &ChainKey::from_bytes(&s.chain_key().to_bytes()).expect("decodes"),
        100,
    )
    .expect("valid key");
    (s, r)
}

#[test]
fn a_chain_at_its_last_position_is_refused_not_wrapped() {
    let mut s = SenderChain::generate(b"owner");
    s.iteration = u32::MAX - 1;
    let mut r = ReceiverChain::new(
        &ChainKey::from_bytes(&s.chain_key().to_bytes()).expect("decodes"),
        100,
    )
    .expect("valid key");
    let before_last = s.encrypt(b"one");
    assert_eq!(r.decrypt(&before_last).expect("reads"), b"one");
    let last = s.encrypt(b"two");
    assert_eq!(last.iteration, u32::MAX);
    assert!(matches!(r.decrypt(&last), Err(GroupError::Exhausted)));
    // The sender stays at the end instead of wrapping to 0.
    assert_eq!(s.encrypt(b"three").iteration, u32::MAX);
    assert!(matches!(
        r.decrypt(&before_last),
        Err(GroupError::Replay(_))
    ));
}

#[test]
fn members_read_in_any_order_once() {
    let (mut s, mut r) = pair();
    let m: Vec<_> = (0..5u8).map(|i| s.encrypt(&[i; 40])).collect();
    for i in [3usize, 0, 4, 1, 2] {
        let wire = GroupMessage::from_bytes(&m[i].to_bytes()).expect("decodes");
        assert_eq!(r.decrypt(&wire).expect("reads"), vec![i as u8; 40]);
    }
    for msg in &m {
        assert!(matches!(r.decrypt(msg), Err(GroupError::Replay(_))));
    }
}

#[test]
fn a_forged_or_altered_message_fails_and_the_chain_goes_on() {
    let (mut s, mut r) = pair();
    let mut m = s.encrypt(b"hello");
    m.ciphertext[0] ^= 1;
    assert_eq!(r.decrypt(&m), Err(GroupError::BadSignature));
    // Someone with the chain key but not the signing key.
    let mut impostor = SenderChain::generate(b"owner");
    impostor.chain = s.chain;
    impostor.key = s.key.clone();
    impostor.iteration = s.iteration;
    assert_eq!(
        r.decrypt(&impostor.encrypt(b"me too")),
        Err(GroupError::BadSignature)
    );
    assert_eq!(r.decrypt(&s.encrypt(b"still")).expect("reads"), b"still");
}

#[test]
fn a_member_who_joins_reads_nothing_from_before() {
    let mut s = SenderChain::generate(b"owner");
    let before = s.encrypt(b"before");
    let mut late = ReceiverChain::new(&s.chain_key(), 100).expect("valid key");
    assert_eq!(late.decrypt(&before), Err(GroupError::Replay(0)));
    assert_eq!(late.decrypt(&s.encrypt(b"after")).expect("reads"), b"after");
}

#[test]
fn a_new_chain_is_unreadable_with_the_old_key() {
    let (mut s, mut r) = pair();
    assert!(r.decrypt(&s.encrypt(b"old")).is_ok());
    // A member was removed: a new chain, handed only to those who stay.
    let mut s = SenderChain::generate(b"owner");
    assert_eq!(r.decrypt(&s.encrypt(b"new")), Err(GroupError::WrongChain));
}

#[test]
fn chains_survive_their_stored_form() {
    let (mut s, mut r) = pair();
    let m: Vec<_> = (0..3).map(|i| s.encrypt(&[i; 8])).collect();
    assert!(r.decrypt(&m[2]).is_ok());
    let mut s = SenderChain::from_bytes(&s.to_bytes()).expect("decodes");
    let mut r = ReceiverChain::from_bytes(&r.to_bytes()).expect("decodes");
    assert_eq!(r.decrypt(&m[0]).expect("skipped key kept"), [0; 8]);
    assert_eq!(r.decrypt(&s.encrypt(b"next")).expect("reads"), b"next");
    assert_eq!(r.decrypt(&m[2]), Err(GroupError::Replay(2)));
    let stored = r.to_bytes();
    for cut in 0..stored.len() {
        assert!(ReceiverChain::from_bytes(&stored[..cut]).is_err());
    }
}

#[test]
fn skipping_beyond_the_bound_fails() {
    let (mut s, _) = pair();
    let mut r = ReceiverChain::new(&s.chain_key(), 3).expect("valid key");
    let m: Vec<_> = (0..6).map(|_| s.encrypt(b"x")).collect();
    assert!(matches!(
        r.decrypt(&m[5]),
        Err(GroupError::TooFarAhead { gap: 5, max: 3 })
    ));
    assert!(r.decrypt(&m[3]).is_ok());
    assert!(r.decrypt(&m[5]).is_ok());
    // Four keys were skipped (0, 1, 2, 4); the bound keeps the newest three.
    assert_eq!(r.decrypt(&m[0]), Err(GroupError::Replay(0)));
    assert!(
        r.decrypt(&m[1]).is_ok(),
        "skipped keys kept within the bound"
    );
}

#[test]
fn a_lost_key_is_handed_again_from_the_message_asked_for_not_before() {
    let mut s = SenderChain::generate(b"owner");
    let m: Vec<_> = (0..200u32).map(|i| s.encrypt(&i.to_be_bytes())).collect();
    let key = s.chain_key_at(130);
    assert_eq!(key.iteration, 130);
    let mut r = ReceiverChain::new(&key, 100).expect("valid key");
    assert_eq!(r.decrypt(&m[129]), Err(GroupError::Replay(129)));
    for i in [130usize, 199, 150] {
        assert_eq!(r.decrypt(&m[i]).expect("reads"), (i as u32).to_be_bytes());
    }
    assert_eq!(r.decrypt(&s.encrypt(b"next")).expect("reads"), b"next");
    // Asked past the present: the present key, nothing ahead of it.
    assert_eq!(s.chain_key_at(u32::MAX).iteration, 201);
}

#[test]
fn a_key_is_handed_again_only_within_the_checkpoint_window() {
    let mut s = SenderChain::generate(b"owner");
    let total = CHECKPOINT_EVERY * (CHECKPOINTS as u32 + 3);
    let m: Vec<_> = (0..total).map(|_| s.encrypt(b"x")).collect();
    let oldest = total - CHECKPOINT_EVERY * (CHECKPOINTS as u32 - 1);
    let key = s.chain_key_at(0);
    assert_eq!(key.iteration, oldest, "nothing older is kept");
    let mut r = ReceiverChain::new(&key, 100).expect("valid key");
    assert_eq!(r.decrypt(&m[0]), Err(GroupError::Replay(0)));
    assert!(r.decrypt(&m[oldest as usize]).is_ok());
}

#[test]
fn checkpoints_survive_the_stored_form_and_the_old_form_still_reads() {
    let mut s = SenderChain::generate(b"owner");
    let m: Vec<_> = (0..100).map(|_| s.encrypt(b"y")).collect();
    let stored = s.to_bytes();
    let back = SenderChain::from_bytes(&stored).expect("decodes");
    let mut r = ReceiverChain::new(&back.chain_key_at(70), 100).expect("valid key");
    assert!(r.decrypt(&m[70]).is_ok());
    for cut in 0..stored.len() {
        assert!(SenderChain::from_bytes(&stored[..cut]).is_err());
    }
    // Version 1: no checkpoints; the current key is the oldest one held.
    let mut w = Writer::new(1);
    w.bytes(&s.chain.0)
        .u32(s.iteration)
        .bytes(&s.key.0)
        .bytes(s.signing.as_bytes());
    let old = SenderChain::from_bytes(&w.finish()).expect("version 1 reads");
    assert_eq!(old.chain_key_at(0).iteration, 100);
}
