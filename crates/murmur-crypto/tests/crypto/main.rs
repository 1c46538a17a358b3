//! murmur-crypto's behaviour, through its public API only.

mod apart;
mod device;
mod known_answer;
mod ratchet;
mod secrets;
mod sessions;

use murmur_crypto::{x3dh, Account, Ciphertext, Installation, Limits, PrekeyPolicy, Session};

pub(crate) const NOW: u64 = 1_700_000_000;

pub(crate) fn device() -> Installation {
    Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW)
}

/// Alice's and Bob's sessions after Alice's first message reached Bob.
pub(crate) fn pair(limits: Limits) -> (Session, Session) {
    let alice = device();
    let mut bob = device();
    let mut a = x3dh::initiate(&alice, &bob.bundle(NOW), limits).expect("valid bundle");
    let Ciphertext::Prekey(init, m) = a.seal(b"hello").expect("seal") else {
        panic!("first message carries the X3DH header");
    };
    let (b, text) = x3dh::respond(&mut bob, &init, &m, limits).expect("respond");
    assert_eq!(text, b"hello");
    (a, b)
}
