//! murmur's Double Ratchet and X3DH beside vodozemac's Olm (the reference)
//! and beside the floor of the primitives, in one run, on 1 KiB messages.
//!
//! `cargo bench -p murmur-crypto --bench ratchet`
//!
//! - burst: one side encrypts, the other decrypts, in order (no DH step);
//! - ping-pong: the direction changes every message, so every message costs
//!   a DH ratchet step;
//! - session: X3DH (murmur: bundle signatures verified, four DH) or Olm's
//!   3DH, the first message sealed and opened;
//! - floor: the primitives one message needs and nothing else, called
//!   directly: for burst the chain HMACs, the message-key HKDFs and one
//!   ChaCha20-Poly1305 seal and open; for ping-pong the same plus one X25519
//!   and the two root-chain HKDFs. Burst also has the floor with Olm's
//!   cipher (AES-256-CBC and HMAC-SHA-256) in place of murmur's
//!   (ChaCha20-Poly1305), which separates cipher from implementation.

#![allow(missing_docs)]

use chacha20poly1305::{aead::Aead as _, aead::Payload, ChaCha20Poly1305, KeyInit as _};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit as _, Mac as _};
use murmur_crypto::{x3dh, Account, Ciphertext, Installation, Limits, PrekeyPolicy, Session};
use sha2_011::Sha256;
use vodozemac::olm::{self, OlmMessage, SessionConfig};

const NOW: u64 = 1_700_000_000;
const PAYLOAD: [u8; 1024] = [7; 1024];

fn murmur_pair() -> (Session, Session) {
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
    let mut bob = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
    let mut a = x3dh::initiate(&alice, &bob.bundle(NOW), Limits::default()).expect("bundle");
    let Ciphertext::Prekey(init, m) = a.seal(b"hi").expect("seal") else {
        unreachable!("first message")
    };
    let (mut b, _) = x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("respond");
    a.decrypt(&b.encrypt(b"ok").expect("encrypt"))
        .expect("answer");
    (a, b)
}

fn olm_pair() -> (olm::Session, olm::Session) {
    let alice = olm::Account::new();
    let mut bob = olm::Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().expect("one key");
    let mut a =
        alice.create_outbound_session(SessionConfig::version_2(), bob.curve25519_key(), otk);
    let OlmMessage::PreKey(m) = a.encrypt(b"hi") else {
        unreachable!("first message")
    };
    let mut b = bob
        .create_inbound_session(alice.curve25519_key(), &m)
        .expect("inbound")
        .session;
    a.decrypt(&b.encrypt(b"ok")).expect("answer");
    (a, b)
}

struct Floor {
    root: [u8; 32],
    /// The sender's and the receiver's copy of one chain.
    chains: [[u8; 32]; 2],
    dh_secret: x25519_dalek::StaticSecret,
    dh_public: x25519_dalek::PublicKey,
}

impl Floor {
    fn new() -> Self {
        let secret = x25519_dalek::StaticSecret::from([3u8; 32]);
        Self {
            root: [1; 32],
            chains: [[2; 32]; 2],
            dh_public: x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([4u8; 32])),
            dh_secret: secret,
        }
    }

    fn chain_step(&mut self, side: usize) -> [u8; 32] {
        let keyed = Hmac::<Sha256>::new_from_slice(&self.chains[side]).expect("any key");
        let mut mk = keyed.clone();
        mk.update(&[1]);
        let mut next = keyed;
        next.update(&[2]);
        self.chains[side] = next.finalize().into_bytes().into();
        mk.finalize().into_bytes().into()
    }

    fn root_step(&mut self, dh: &[u8; 32]) {
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(Some(&self.root), dh)
            .expand(b"root", &mut okm)
            .expect("64");
        self.root.copy_from_slice(&okm[..32]);
        self.chains = [okm[32..].try_into().expect("32"); 2];
    }

    /// Seal on one side, open on the other, each with its chain step and
    /// message-key expansion.
    fn seal_open(&mut self) -> Vec<u8> {
        let mut sealed = Vec::new();
        for side in 0..2 {
            let mk = self.chain_step(side);
            let mut okm = [0u8; 44];
            Hkdf::<Sha256>::new(Some(&[0u8; 32]), &mk)
                .expand(b"message", &mut okm)
                .expect("44");
            let aead = ChaCha20Poly1305::new((&okm[..32]).into());
            let payload = |msg| Payload {
                msg,
                aad: &[0u8; 40],
            };
            sealed = if side == 0 {
                aead.encrypt((&okm[32..]).into(), payload(&PAYLOAD))
                    .expect("seal")
            } else {
                aead.decrypt((&okm[32..]).into(), payload(&sealed))
                    .expect("open")
            };
        }
        sealed
    }
}

impl Floor {
    /// The same with Olm's cipher instead of murmur's: the message key
    /// expanded to 80 bytes (AES-256 key, HMAC-SHA-256 key, CBC IV),
    /// AES-256-CBC with PKCS#7 padding, and HMAC-SHA-256 over the header
    /// and ciphertext (full length, as Olm v2), checked before decrypting.
    fn seal_open_olm_cipher(&mut self) -> Vec<u8> {
        use cbc::cipher::{
            block_padding::Pkcs7, BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _,
        };
        let mut sealed = Vec::new();
        let mut tag = [0u8; 32];
        for side in 0..2 {
            let mk = self.chain_step(side);
            let mut okm = [0u8; 80];
            Hkdf::<Sha256>::new(Some(&[0u8; 32]), &mk)
                .expand(b"message", &mut okm)
                .expect("80");
            let (key, rest) = okm.split_at(32);
            let (mac_key, iv) = rest.split_at(32);
            let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).expect("any key");
            mac.update(&[0u8; 40]);
            if side == 0 {
                sealed = cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
                    .expect("lengths")
                    .encrypt_padded_vec_mut::<Pkcs7>(&PAYLOAD);
                mac.update(&sealed);
                tag = mac.finalize().into_bytes().into();
            } else {
                mac.update(&sealed);
                mac.verify_slice(&tag).expect("authentic");
                sealed = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                    .expect("lengths")
                    .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
                    .expect("open");
            }
        }
        sealed
    }
}

fn burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("burst");
    g.throughput(Throughput::Elements(1));
    let (mut a, mut b) = murmur_pair();
    g.bench_function("murmur", |i| {
        i.iter(|| {
            b.decrypt(&a.encrypt(&PAYLOAD).expect("encrypt"))
                .expect("decrypt")
        })
    });
    let (mut a, mut b) = olm_pair();
    g.bench_function("vodozemac", |i| {
        i.iter(|| b.decrypt(&a.encrypt(PAYLOAD)).expect("decrypt"))
    });
    let mut floor = Floor::new();
    g.bench_function("floor", |i| i.iter(|| floor.seal_open()));
    // Olm's cipher on the same floor: what separates the cipher's cost
    // from each implementation's.
    g.bench_function("floor_olm_cipher", |i| {
        i.iter(|| floor.seal_open_olm_cipher())
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    g.throughput(Throughput::Elements(1));
    let (mut a, mut b) = murmur_pair();
    let mut turn = false;
    g.bench_function("murmur", |i| {
        i.iter(|| {
            turn = !turn;
            let (from, to) = if turn {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            to.decrypt(&from.encrypt(&PAYLOAD).expect("encrypt"))
                .expect("decrypt")
        })
    });
    let (mut a, mut b) = olm_pair();
    g.bench_function("vodozemac", |i| {
        i.iter(|| {
            turn = !turn;
            let (from, to) = if turn {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            to.decrypt(&from.encrypt(PAYLOAD)).expect("decrypt")
        })
    });
    let mut floor = Floor::new();
    g.bench_function("floor", |i| {
        i.iter(|| {
            let dh = floor.dh_secret.diffie_hellman(&floor.dh_public).to_bytes();
            floor.root_step(&dh);
            floor.root_step(&dh);
            floor.seal_open()
        })
    });
    g.finish();
}

fn session(c: &mut Criterion) {
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
    let one_key = PrekeyPolicy {
        one_time: 1,
        ..PrekeyPolicy::default()
    };
    g.bench_function("murmur", |i| {
        i.iter_batched(
            || {
                let bob = Installation::create(&Account::generate(), one_key, NOW);
                let bundle = bob.bundle(NOW);
                (bob, bundle)
            },
            |(mut bob, bundle)| {
                let mut a = x3dh::initiate(&alice, &bundle, Limits::default()).expect("bundle");
                let Ciphertext::Prekey(init, m) = a.seal(&PAYLOAD).expect("seal") else {
                    unreachable!("first message")
                };
                x3dh::respond(&mut bob, &init, &m, Limits::default()).expect("respond")
            },
            BatchSize::SmallInput,
        )
    });
    let olm_alice = olm::Account::new();
    g.bench_function("vodozemac", |i| {
        i.iter_batched(
            || {
                let mut bob = olm::Account::new();
                bob.generate_one_time_keys(1);
                let otk = *bob.one_time_keys().values().next().expect("one key");
                (bob, otk)
            },
            |(mut bob, otk)| {
                let mut a = olm_alice.create_outbound_session(
                    SessionConfig::version_2(),
                    bob.curve25519_key(),
                    otk,
                );
                let OlmMessage::PreKey(m) = a.encrypt(PAYLOAD) else {
                    unreachable!("first message")
                };
                bob.create_inbound_session(olm_alice.curve25519_key(), &m)
                    .expect("inbound")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// One X25519 in each library: murmur's x25519-dalek, and the one vodozemac
/// is built on.
fn x25519(c: &mut Criterion) {
    let mut g = c.benchmark_group("x25519");
    let ours = x25519_dalek::StaticSecret::from([5u8; 32]);
    let theirs = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([6u8; 32]));
    g.bench_function("murmur", |i| {
        i.iter(|| ours.diffie_hellman(&theirs).to_bytes())
    });
    let olm_ours = vodozemac::Curve25519SecretKey::new();
    let olm_theirs = vodozemac::Curve25519PublicKey::from(&vodozemac::Curve25519SecretKey::new());
    g.bench_function("vodozemac", |i| {
        i.iter(|| olm_ours.diffie_hellman(&olm_theirs).to_bytes())
    });
    g.finish();
}

/// One step of a chain: HMAC-SHA256 for the message key and the next key.
fn kdf_chain(key: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let step = |b: u8| -> [u8; 32] {
        let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("any key length");
        m.update(&[b]);
        m.finalize().into_bytes().into()
    };
    (step(1), step(2))
}

/// A group of `n`: `n - 1` sessions from one member to the others.
fn fan_out(n: usize) -> Vec<Session> {
    let me = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
    (1..n)
        .map(|_| {
            let other = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
            let mut s =
                x3dh::initiate(&me, &other.bundle_with(NOW, 0), Limits::default()).expect("bundle");
            let _ = s.encrypt(b"warm up").expect("encrypt");
            s
        })
        .collect()
}

/// Per message sent to a group of 100 and of 1,000: one group message
/// (a sending chain) against one Double Ratchet message per member
/// (pairwise fan-out, as Status does); and the cost of rotating after a
/// removal (a new chain, its key sealed to every remaining member).
fn group(c: &mut Criterion) {
    use murmur_crypto::group::{GroupMessage, SenderChain};
    let mut g = c.benchmark_group("group");
    g.sample_size(20);
    for n in [100usize, 1000] {
        let mut sessions = fan_out(n);
        let mut chain = SenderChain::generate(b"owner");
        let group_bytes = chain.encrypt(&PAYLOAD).to_bytes().len();
        let fan_out_bytes: usize = sessions
            .iter_mut()
            .map(|s| s.encrypt(&PAYLOAD).expect("encrypt").to_bytes().len())
            .sum();
        let rotate_bytes: usize = sessions
            .iter_mut()
            .map(|s| {
                s.encrypt(&SenderChain::generate(b"owner").chain_key().to_bytes())
                    .expect("encrypt")
                    .to_bytes()
                    .len()
            })
            .sum();
        eprintln!(
            "group of {n}: bytes per message: group {group_bytes}, pairwise fan-out {fan_out_bytes} ({:.0}x); rotation after a removal: {rotate_bytes}",
            fan_out_bytes as f64 / group_bytes as f64
        );
        g.bench_function(format!("send/{n}"), |i| i.iter(|| chain.encrypt(&PAYLOAD)));
        if n == 100 {
            // What a send cannot do without: one Ed25519 signature (over the
            // chain, the position and a digest), and the symmetric work.
            use ed25519_dalek::Signer as _;
            let signing = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
            let signed = [9u8; 23 + 20 + 32];
            g.bench_function("floor/ed25519_sign", |i| i.iter(|| signing.sign(&signed)));
            let key = [5u8; 32];
            g.bench_function("floor/symmetric", |i| {
                i.iter(|| {
                    use sha2_011::Digest as _;
                    let (mk, _next) = kdf_chain(&key);
                    let ct = ChaCha20Poly1305::new((&mk).into())
                        .encrypt(
                            (&[0u8; 12]).into(),
                            Payload {
                                msg: &PAYLOAD,
                                aad: &[0; 20],
                            },
                        )
                        .expect("encrypts");
                    Sha256::digest(&ct)
                })
            });
        }
        g.bench_function(format!("fan_out/{n}"), |i| {
            i.iter(|| {
                sessions
                    .iter_mut()
                    .map(|s| s.encrypt(&PAYLOAD).expect("encrypt"))
                    .collect::<Vec<_>>()
            })
        });
        g.bench_function(format!("rotate/{n}"), |i| {
            i.iter(|| {
                let fresh = SenderChain::generate(b"owner");
                let key = fresh.chain_key().to_bytes();
                sessions
                    .iter_mut()
                    .skip(1)
                    .map(|s| s.encrypt(&key).expect("encrypt"))
                    .collect::<Vec<_>>()
            })
        });
        let _ = GroupMessage::from_bytes;
    }
    g.finish();
}

criterion_group!(benches, burst, ping_pong, session, x25519, group);
criterion_main!(benches);
