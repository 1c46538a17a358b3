//! The key schedule computed independently, here, from the published
//! structure of X3DH and the Double Ratchet (Signal's specifications) and
//! murmur's info strings, with nothing from murmur-crypto but the bytes it
//! keeps: Bob's secrets read out of his state, then Alice's messages opened
//! by hand.

use chacha20poly1305::{aead::Aead as _, aead::Payload, ChaCha20Poly1305, KeyInit as _};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit as _, Mac as _};
use murmur_crypto::{x3dh, Ciphertext, Limits, Message};
use sha2_011::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{device, NOW};

fn dh(secret: [u8; 32], public: [u8; 32]) -> [u8; 32] {
    StaticSecret::from(secret)
        .diffie_hellman(&PublicKey::from(public))
        .to_bytes()
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .expect("valid length");
    out
}

fn hmac(key: &[u8; 32], byte: u8) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(&[byte]);
    mac.finalize().into_bytes().into()
}

/// `KDF_RK`: (root, chain).
fn kdf_rk(rk: &[u8; 32], dh_out: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let okm: [u8; 64] = hkdf(rk, dh_out, b"murmur/ratchet/root/v1");
    (
        okm[..32].try_into().expect("32"),
        okm[32..].try_into().expect("32"),
    )
}

fn open(mk: &[u8; 32], ad: &[u8], m: &Message) -> Vec<u8> {
    let okm: [u8; 44] = hkdf(&[0u8; 32], mk, b"murmur/ratchet/message/v1");
    let mut aad = ad.to_vec();
    aad.extend_from_slice(&m.header.ratchet_key.0);
    aad.extend_from_slice(&m.header.previous.to_be_bytes());
    aad.extend_from_slice(&m.header.index.to_be_bytes());
    ChaCha20Poly1305::new((&okm[..32]).into())
        .decrypt(
            (&okm[32..]).into(),
            Payload {
                msg: &m.ciphertext,
                aad: &aad,
            },
        )
        .expect("the independently derived key opens the message")
}

/// Bob's secrets, read from `Installation::to_bytes` (layout version 2:
/// version, device 16, signing key 32, identity key 32, certificate 192,
/// signed prekeys as count and (id, secret, created, sessions seen),
/// one-time prekeys as count and (id, secret)).
struct BobSecrets {
    identity: [u8; 32],
    signed: Vec<(u32, [u8; 32])>,
    one_time: Vec<(u32, [u8; 32])>,
}

fn read_installation(bytes: &[u8]) -> BobSecrets {
    let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4"));
    let key_at = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32") };
    assert_eq!(bytes[0], 2, "installation layout version 2");
    let identity = key_at(1 + 16 + 32);
    let mut at = 1 + 16 + 32 + 32 + 192;
    let mut signed = Vec::new();
    for _ in 0..u32_at(at) {
        signed.push((u32_at(at + 4), key_at(at + 8)));
        // id, secret, created, then the sessions seen on it.
        at += 44 + 4 + 32 * u32_at(at + 4 + 44) as usize;
    }
    at += 4;
    let mut one_time = Vec::new();
    for _ in 0..u32_at(at) {
        one_time.push((u32_at(at + 4), key_at(at + 8)));
        at += 36;
    }
    BobSecrets {
        identity,
        signed,
        one_time,
    }
}

#[test]
fn x3dh_and_the_ratchet_follow_the_published_key_schedule() {
    let alice = device();
    let mut bob = device();
    let bob_secrets = read_installation(&bob.to_bytes());
    let mut to_bob = x3dh::initiate(&alice, &bob.bundle(NOW), Limits::default()).expect("ok");
    let Ciphertext::Prekey(init, first) = to_bob.seal(b"known answer").expect("seal") else {
        panic!("first message carries the X3DH header");
    };
    let second = to_bob.encrypt(b"second").expect("encrypt");

    // X3DH, responder's side: DH1 = DH(SPK_B, IK_A), DH2 = DH(IK_B, EK_A),
    // DH3 = DH(SPK_B, EK_A), DH4 = DH(OPK_B, EK_A).
    let spk = bob_secrets
        .signed
        .iter()
        .find(|(id, _)| *id == init.signed_prekey)
        .expect("Bob's signed prekey")
        .1;
    let opk = bob_secrets
        .one_time
        .iter()
        .find(|(id, _)| Some(*id) == init.one_time)
        .expect("Bob's one-time prekey")
        .1;
    let ek = init.ephemeral.0;
    let mut ikm = vec![0xFF; 32];
    ikm.extend_from_slice(&dh(spk, init.certificate.identity_key.0));
    ikm.extend_from_slice(&dh(bob_secrets.identity, ek));
    ikm.extend_from_slice(&dh(spk, ek));
    ikm.extend_from_slice(&dh(opk, ek));
    let sk: [u8; 32] = hkdf(&[0u8; 32], &ikm, b"murmur/x3dh/v1");

    // Associated data: both accounts and identity keys, initiator first.
    let mut ad = b"murmur/ad/v1".to_vec();
    ad.extend_from_slice(&alice.account().0);
    ad.extend_from_slice(&alice.identity_key().0);
    ad.extend_from_slice(&bob.account().0);
    ad.extend_from_slice(&bob.identity_key().0);

    // Alice's first sending chain: KDF_RK(SK, DH(A_ratchet, SPK_B)).
    let a_ratchet = first.header.ratchet_key.0;
    let (rk1, ck0) = kdf_rk(&sk, &dh(spk, a_ratchet));
    assert_eq!(open(&hmac(&ck0, 0x01), &ad, &first), b"known answer");
    let ck1 = hmac(&ck0, 0x02);
    assert_eq!(open(&hmac(&ck1, 0x01), &ad, &second), b"second");

    // Bob's answer: a DH ratchet step on a fresh key pair, whose secret is
    // read from his session state (layout version 1: version, peer account
    // 32, peer device 16, associated data as length and bytes, root 32,
    // ratchet secret 32).
    let (mut to_alice, _) = x3dh::respond(&mut bob, &init, &first, Limits::default()).expect("ok");
    let reply = to_alice.encrypt(b"reply").expect("encrypt");
    let state = to_alice.to_bytes();
    let ad_len = u32::from_be_bytes(state[49..53].try_into().expect("4")) as usize;
    assert_eq!(
        &state[53..53 + ad_len],
        ad.as_slice(),
        "both identities in the AD"
    );
    let root_at = 53 + ad_len;
    let bob_ratchet: [u8; 32] = state[root_at + 32..root_at + 64].try_into().expect("32");
    let (rk2, bob_ck0) = kdf_rk(&rk1, &dh(bob_ratchet, a_ratchet));
    assert_eq!(&state[root_at..root_at + 32], &rk2, "root after one step");
    assert_eq!(open(&hmac(&bob_ck0, 0x01), &ad, &reply), b"reply");
}
