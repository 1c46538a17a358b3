//! murmur's end-to-end encryption, sans I/O: no runtime, socket, clock or
//! database inside. The caller passes the time and keeps the bytes.
//!
//! - an [`Account`] (Ed25519) certifies each of its devices;
//! - an [`Installation`] (one device) holds an X25519 identity key, a signed
//!   prekey that rotates and one-time prekeys, published as a [`Bundle`];
//! - [`x3dh::initiate`] (or [`x3dh::initiate_shared`], for a bundle others
//!   hold copies of) and [`x3dh::respond`] open a [`Session`] with a device
//!   that may be offline;
//! - a [`Session`] is the Double Ratchet: forward secrecy per message,
//!   post-compromise security per round trip, out-of-order delivery within
//!   [`Limits`], replays refused;
//! - a [`Device`] is one device's end of every conversation: contacts and
//!   their devices, a session with each, simultaneous starts converging on
//!   one session, pairing a new device and revoking one.
//!
//! Every secret is wiped on drop and absent from Debug output; state leaves
//! as versioned bytes ([`Session::to_bytes`], [`Installation::to_bytes`]) for
//! the caller to encrypt at rest.
//!
//! ```
//! use murmur_crypto::{x3dh, Account, Ciphertext, Installation, Limits, PrekeyPolicy};
//!
//! let now = 1_700_000_000;
//! let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
//! let mut bob = Installation::create(&Account::generate(), PrekeyPolicy::default(), now);
//!
//! // Alice has Bob's bundle (from the network or his contact code).
//! let mut to_bob = x3dh::initiate(&alice, &bob.bundle(now), Limits::default())?;
//! let first = to_bob.seal(b"hi Bob")?;
//!
//! // Bob, whenever he comes online.
//! let Ciphertext::Prekey(initiation, message) = Ciphertext::from_bytes(&first.to_bytes())? else {
//!     unreachable!("a first message carries the X3DH header");
//! };
//! let (mut to_alice, text) = x3dh::respond(&mut bob, &initiation, &message, Limits::default())?;
//! assert_eq!(text, b"hi Bob");
//! assert_eq!(to_alice.peer_account(), alice.account());
//!
//! let reply = to_alice.seal(b"hi Alice")?;
//! assert_eq!(to_bob.decrypt(reply.message())?, b"hi Alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codec;
pub mod device;
pub mod envelope;
pub mod group;
mod identity;
mod initiation;
pub mod kdf;
mod keys;
mod ratchet;
pub mod vault;
pub mod x3dh;

pub use codec::{DecodeError, Reader};
pub use device::Device;
pub use envelope::{EnvelopeError, Opened};
pub use identity::{
    Account, AccountId, Bundle, BundleError, Certificate, DeviceId, Installation, PairingRequest,
    PrekeyPolicy, Revocation, SignedPrekey, Unpaired, CERTIFICATE_TTL, GROUP_EVENT_CONTEXT,
    MAX_ONE_TIME_PREKEYS, MAX_SESSIONS_PER_PREKEY,
};
pub use keys::{KeyPair, PublicKey};
pub use ratchet::{DecryptError, EncryptError, Header, Limits, Message, Session};
pub use vault::{Undo, Vault, VaultError};
pub use x3dh::{Ciphertext, Initiation, X3dhError};
