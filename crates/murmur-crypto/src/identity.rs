//! Accounts, devices and the prekey bundles that let others reach them.
//!
//! An [`Account`] is an Ed25519 key: it says which devices are its own by
//! signing a [`Certificate`] for each. An [`Installation`] is one device: its
//! own Ed25519 signing key (so a device never needs the account key), an
//! X25519 identity key, a signed prekey that rotates, and one-time prekeys
//! consumed once each. Its [`Bundle`] is what a contact needs to open a
//! session with it while it is offline.

use std::{collections::BTreeMap, fmt};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::{
    codec::{DecodeError, Reader, Writer},
    keys::{random_bytes, short_hex, KeyPair, PublicKey},
};

const CERTIFICATE_CONTEXT: &[u8] = b"murmur/certificate/v1";
const BUNDLE_CONTEXT: &[u8] = b"murmur/bundle/v1";
const REVOCATION_CONTEXT: &[u8] = b"murmur/revocation/v1";
/// What an account signs for other crates: group membership events.
pub const GROUP_EVENT_CONTEXT: &[u8] = b"murmur/group-event/";
const BUNDLE_VERSION: u8 = 1;
const INSTALLATION_VERSION: u8 = 1;
const REVOCATION_VERSION: u8 = 1;
/// A bundle never carries more one-time prekeys than this, whatever its
/// encoding claims.
pub const MAX_ONE_TIME_PREKEYS: usize = 256;

/// Why a certificate, bundle or revocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bytes are not a bundle.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// The account's signature over the device certificate does not verify.
    #[error("the device certificate is not signed by account {0}")]
    Certificate(AccountId),
    /// The device's signature over the bundle does not verify.
    #[error("the bundle is not signed by device {0}")]
    Signature(DeviceId),
    /// The account's signature over a revocation does not verify.
    #[error("the revocation of device {0} is not signed by its account")]
    Revocation(DeviceId),
    /// A certificate was offered for another device's keys.
    #[error("the certificate is for device {found}, not {expected}")]
    WrongDevice {
        /// The device being paired.
        expected: DeviceId,
        /// The device the certificate names.
        found: DeviceId,
    },
    /// An account or signing key is not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    Key,
}

/// An account's public identity: its Ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// Checks the account's signature over `bytes`; `refused` is the error
    /// when it does not verify.
    fn verify(
        &self,
        bytes: &[u8],
        signature: &[u8; 64],
        refused: BundleError,
    ) -> Result<(), BundleError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| BundleError::Key)?
            .verify_strict(bytes, &Signature::from_bytes(signature))
            .map_err(|_| refused)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", short_hex(&self.0))
    }
}

/// One device of an account: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", short_hex(&self.0))
    }
}

/// An account's secret key. Wiped on drop, never printed.
pub struct Account {
    key: SigningKey,
}

impl Account {
    /// A new account.
    pub fn generate() -> Self {
        Self::from_secret(&Zeroizing::new(random_bytes()))
    }

    /// The account whose secret is `bytes`.
    pub fn from_secret(bytes: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(bytes),
        }
    }

    /// The secret, to keep it (encrypted) somewhere.
    pub fn to_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public identity.
    pub fn id(&self) -> AccountId {
        AccountId(self.key.verifying_key().to_bytes())
    }

    /// Vouches for a device: its signing and identity keys are the account's.
    pub fn certify(&self, request: &PairingRequest, issued_at: u64) -> Certificate {
        let asked = &request.bundle.certificate;
        let mut c = Certificate {
            account: self.id(),
            device: asked.device,
            signing_key: asked.signing_key,
            identity_key: asked.identity_key,
            issued_at,
            signature: [0; 64],
        };
        c.signature = self.key.sign(&c.signed_bytes()).to_bytes();
        c
    }

    /// Signs a group membership event in the account's name; `None` for
    /// bytes that do not start with [`GROUP_EVENT_CONTEXT`], so that the
    /// account key signs nothing that could pass for a certificate, bundle
    /// or revocation.
    pub fn sign_group_event(&self, bytes: &[u8]) -> Option<[u8; 64]> {
        bytes
            .starts_with(GROUP_EVENT_CONTEXT)
            .then(|| self.key.sign(bytes).to_bytes())
    }

    /// Says that `device` is no longer the account's: contacts stop
    /// encrypting to it.
    pub fn revoke(&self, device: DeviceId, revoked_at: u64) -> Revocation {
        let mut r = Revocation {
            account: self.id(),
            device,
            revoked_at,
            signature: [0; 64],
        };
        r.signature = self.key.sign(&r.signed_bytes()).to_bytes();
        r
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// What a new device asks its account to certify: its bundle, signed by the
/// device, with a certificate still to be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequest {
    bundle: Bundle,
}

impl PairingRequest {
    /// The new device.
    pub fn device(&self) -> DeviceId {
        self.bundle.certificate.device
    }

    /// The device's bundle, once the account's certificate is in it; checked.
    pub fn complete(&self, certificate: Certificate) -> Result<Bundle, BundleError> {
        self.bundle.certificate.same_keys(&certificate)?;
        let bundle = Bundle {
            certificate,
            ..self.bundle.clone()
        };
        bundle.verify()?;
        Ok(bundle)
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bundle.to_bytes()
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            bundle: Bundle::from_bytes(bytes)?,
        })
    }
}

/// An account's signature saying a device's keys are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The account vouching.
    pub account: AccountId,
    /// The device.
    pub device: DeviceId,
    /// The device's Ed25519 key, which signs its bundles.
    pub signing_key: [u8; 32],
    /// The device's X25519 identity key, used in X3DH.
    pub identity_key: PublicKey,
    /// When it was issued (seconds since the Unix epoch).
    pub issued_at: u64,
    /// The account's Ed25519 signature.
    pub signature: [u8; 64],
}

impl Certificate {
    const LEN: usize = 32 + 16 + 32 + 32 + 8 + 64;

    fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(CERTIFICATE_CONTEXT.len() + Self::LEN);
        v.extend_from_slice(CERTIFICATE_CONTEXT);
        v.extend_from_slice(&self.account.0);
        v.extend_from_slice(&self.device.0);
        v.extend_from_slice(&self.signing_key);
        v.extend_from_slice(&self.identity_key.0);
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v
    }

    /// Checks the account's signature.
    pub fn verify(&self) -> Result<(), BundleError> {
        self.account.verify(
            &self.signed_bytes(),
            &self.signature,
            BundleError::Certificate(self.account),
        )
    }

    /// Whether `other` certifies the same device keys as this one.
    fn same_keys(&self, other: &Certificate) -> Result<(), BundleError> {
        if other.device == self.device
            && other.signing_key == self.signing_key
            && other.identity_key == self.identity_key
        {
            Ok(())
        } else {
            Err(BundleError::WrongDevice {
                expected: self.device,
                found: other.device,
            })
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(&self.account.0)
            .bytes(&self.device.0)
            .bytes(&self.signing_key)
            .bytes(&self.identity_key.0)
            .u64(self.issued_at)
            .bytes(&self.signature);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: AccountId(r.array("certificate account")?),
            device: DeviceId(r.array("certificate device")?),
            signing_key: r.array("certificate signing key")?,
            identity_key: r.key("certificate identity key")?,
            issued_at: r.u64("certificate time")?,
            signature: r.array("certificate signature")?,
        })
    }
}

/// An account's signed statement that one of its devices is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The account.
    pub account: AccountId,
    /// The revoked device.
    pub device: DeviceId,
    /// When (seconds since the Unix epoch).
    pub revoked_at: u64,
    /// The account's Ed25519 signature.
    pub signature: [u8; 64],
}

impl Revocation {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(REVOCATION_CONTEXT.len() + 56);
        v.extend_from_slice(REVOCATION_CONTEXT);
        v.extend_from_slice(&self.account.0);
        v.extend_from_slice(&self.device.0);
        v.extend_from_slice(&self.revoked_at.to_be_bytes());
        v
    }

    /// Checks the account's signature.
    pub fn verify(&self) -> Result<(), BundleError> {
        self.account.verify(
            &self.signed_bytes(),
            &self.signature,
            BundleError::Revocation(self.device),
        )
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(REVOCATION_VERSION);
        w.bytes(&self.account.0)
            .bytes(&self.device.0)
            .u64(self.revoked_at)
            .bytes(&self.signature);
        w.finish().to_vec()
    }

    /// Reads the wire form; call [`Revocation::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "revocation", REVOCATION_VERSION)?;
        let revocation = Self {
            account: AccountId(r.array("revoking account")?),
            device: DeviceId(r.array("revoked device")?),
            revoked_at: r.u64("revocation time")?,
            signature: r.array("revocation signature")?,
        };
        r.finish()?;
        Ok(revocation)
    }
}

/// A signed prekey as a bundle publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPrekey {
    /// Its id, unique within the device.
    pub id: u32,
    /// The key.
    pub key: PublicKey,
    /// When it was made (seconds since the Unix epoch).
    pub created_at: u64,
}

/// What a contact needs to open a session with a device that may be
/// offline: its certificate, current signed prekey and one-time prekeys, all
/// signed by the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The account's certificate for the device.
    pub certificate: Certificate,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// One-time prekeys, each to be used once.
    pub one_time: Vec<(u32, PublicKey)>,
    /// When the device signed this bundle; a newer one replaces an older one.
    pub timestamp: u64,
    /// The device's Ed25519 signature.
    pub signature: [u8; 64],
}

impl Bundle {
    /// What the device signs: its own keys and prekeys, not the account's
    /// certificate, so that a new device can sign its bundle before its
    /// account certifies it.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(BUNDLE_VERSION);
        let c = &self.certificate;
        w.bytes(BUNDLE_CONTEXT)
            .bytes(&c.device.0)
            .bytes(&c.signing_key)
            .bytes(&c.identity_key.0);
        self.write_prekeys(&mut w);
        w.finish().to_vec()
    }

    fn write_unsigned(&self, w: &mut Writer) {
        self.certificate.write(w);
        self.write_prekeys(w);
    }

    fn write_prekeys(&self, w: &mut Writer) {
        w.u32(self.signed_prekey.id)
            .bytes(&self.signed_prekey.key.0)
            .u64(self.signed_prekey.created_at)
            .u32(u32::try_from(self.one_time.len()).unwrap_or(u32::MAX));
        for (id, key) in &self.one_time {
            w.u32(*id).bytes(&key.0);
        }
        w.u64(self.timestamp);
    }

    /// The account of the device.
    pub fn account(&self) -> AccountId {
        self.certificate.account
    }

    /// The device.
    pub fn device(&self) -> DeviceId {
        self.certificate.device
    }

    /// Checks both signatures: the account's over the device, the device's
    /// over the prekeys.
    pub fn verify(&self) -> Result<(), BundleError> {
        self.certificate.verify()?;
        VerifyingKey::from_bytes(&self.certificate.signing_key)
            .map_err(|_| BundleError::Key)?
            .verify_strict(
                &self.signed_bytes(),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| BundleError::Signature(self.certificate.device))
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(BUNDLE_VERSION);
        self.write_unsigned(&mut w);
        w.bytes(&self.signature);
        w.finish().to_vec()
    }

    /// Reads the wire form. The signatures are not checked here: call
    /// [`Bundle::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "bundle", BUNDLE_VERSION)?;
        let certificate = Certificate::read(&mut r)?;
        let signed_prekey = SignedPrekey {
            id: r.u32("signed prekey id")?,
            key: r.key("signed prekey")?,
            created_at: r.u64("signed prekey time")?,
        };
        let n = r.count(36, "one-time prekeys")?;
        if n > MAX_ONE_TIME_PREKEYS {
            return Err(DecodeError::Invalid("one-time prekey count"));
        }
        let mut one_time = Vec::with_capacity(n);
        for _ in 0..n {
            one_time.push((r.u32("one-time prekey id")?, r.key("one-time prekey")?));
        }
        let timestamp = r.u64("bundle time")?;
        let signature = r.array("bundle signature")?;
        r.finish()?;
        Ok(Self {
            certificate,
            signed_prekey,
            one_time,
            timestamp,
            signature,
        })
    }
}

/// How a device keeps its prekeys fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrekeyPolicy {
    /// A signed prekey older than this (seconds) is replaced.
    pub rotate_after: u64,
    /// How many replaced signed prekeys are kept, for first messages that
    /// were sent to them and arrive late.
    pub keep_previous: usize,
    /// How many one-time prekeys the device keeps published.
    pub one_time: usize,
}

impl Default for PrekeyPolicy {
    fn default() -> Self {
        Self {
            rotate_after: 7 * 24 * 3600,
            keep_previous: 2,
            one_time: 50,
        }
    }
}

/// A new device, before its account has certified it: its keys and
/// prekeys exist, its certificate does not yet.
pub struct Unpaired {
    inner: Installation,
}

impl Unpaired {
    /// Fresh keys and prekeys for a new device.
    pub fn generate(policy: PrekeyPolicy, now: u64) -> Self {
        let device = DeviceId(random_bytes());
        let signing = SigningKey::from_bytes(&Zeroizing::new(random_bytes()));
        let identity = KeyPair::generate();
        let certificate = Certificate {
            account: AccountId([0; 32]),
            device,
            signing_key: signing.verifying_key().to_bytes(),
            identity_key: identity.public(),
            issued_at: 0,
            signature: [0; 64],
        };
        let mut inner = Installation {
            device,
            signing,
            identity,
            certificate,
            prekeys: Vec::new(),
            one_time: BTreeMap::new(),
            next_id: 1,
            policy,
        };
        inner.rotate(now);
        inner.maintain(now);
        Self { inner }
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.inner.device
    }

    /// What the account must certify: the device's bundle (one-time prekeys
    /// included), signed by the device.
    pub fn request(&self, now: u64) -> PairingRequest {
        PairingRequest {
            bundle: self.inner.bundle(now),
        }
    }

    /// Becomes an installation once `certificate` vouches for exactly these
    /// keys.
    pub fn pair(mut self, certificate: Certificate) -> Result<Installation, BundleError> {
        certificate.verify()?;
        self.inner.certificate.same_keys(&certificate)?;
        self.inner.certificate = certificate;
        Ok(self.inner)
    }
}

impl fmt::Debug for Unpaired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unpaired")
            .field("device", &self.inner.device)
            .finish_non_exhaustive()
    }
}

/// A signed prekey with its secret.
#[derive(Clone)]
struct Prekey {
    id: u32,
    pair: KeyPair,
    created_at: u64,
    /// The initiators' ephemeral keys of every session set up on this
    /// prekey: without a one-time prekey, a replayed first message would
    /// otherwise set the same session up again.
    seen: std::collections::BTreeSet<[u8; 32]>,
}

/// Sessions set up on one signed prekey before it is rotated early.
pub const MAX_SESSIONS_PER_PREKEY: usize = 65_536;

/// One device of an account, with every secret it holds.
pub struct Installation {
    device: DeviceId,
    signing: SigningKey,
    identity: KeyPair,
    certificate: Certificate,
    /// Signed prekeys, the current one last.
    prekeys: Vec<Prekey>,
    one_time: BTreeMap<u32, KeyPair>,
    /// The next prekey id, shared by signed and one-time prekeys.
    next_id: u32,
    policy: PrekeyPolicy,
}

impl Installation {
    /// An account's first device, certified on the spot.
    pub fn create(account: &Account, policy: PrekeyPolicy, now: u64) -> Self {
        let keys = Unpaired::generate(policy, now);
        let certificate = account.certify(&keys.request(now), now);
        keys.pair(certificate)
            .expect("a certificate made for these keys matches them")
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The account that certified this device.
    pub fn account(&self) -> AccountId {
        self.certificate.account
    }

    /// The account's certificate for this device.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The X25519 identity key.
    pub fn identity_key(&self) -> PublicKey {
        self.identity.public()
    }

    pub(crate) fn identity(&self) -> &KeyPair {
        &self.identity
    }

    /// The current bundle with every one-time prekey, signed now.
    pub fn bundle(&self, now: u64) -> Bundle {
        self.bundle_with(now, MAX_ONE_TIME_PREKEYS)
    }

    /// The current bundle with at most `one_time` one-time prekeys, signed
    /// now. A bundle that many people will use (a contact code) carries none:
    /// the first of them would use each up.
    pub fn bundle_with(&self, now: u64, one_time: usize) -> Bundle {
        let current = self.prekeys.last().expect("an installation has a prekey");
        let mut b = Bundle {
            certificate: self.certificate.clone(),
            signed_prekey: SignedPrekey {
                id: current.id,
                key: current.pair.public(),
                created_at: current.created_at,
            },
            one_time: self
                .one_time
                .iter()
                .take(one_time.min(MAX_ONE_TIME_PREKEYS))
                .map(|(id, pair)| (*id, pair.public()))
                .collect(),
            timestamp: now,
            signature: [0; 64],
        };
        b.signature = self.signing.sign(&b.signed_bytes()).to_bytes();
        b
    }

    /// Rotates the signed prekey when it is due and tops the one-time prekeys
    /// up; true when the bundle changed and should be published again.
    pub fn maintain(&mut self, now: u64) -> bool {
        let mut changed = false;
        let due = self
            .prekeys
            .last()
            .is_none_or(|p| now.saturating_sub(p.created_at) >= self.policy.rotate_after);
        let full = self
            .prekeys
            .last()
            .is_some_and(|p| p.seen.len() >= MAX_SESSIONS_PER_PREKEY);
        if due || full {
            self.rotate(now);
            changed = true;
        }
        while self.one_time.len() < self.policy.one_time {
            let id = self.take_id();
            self.one_time.insert(id, KeyPair::generate());
            changed = true;
        }
        changed
    }

    fn rotate(&mut self, now: u64) {
        let id = self.take_id();
        self.prekeys.push(Prekey {
            id,
            pair: KeyPair::generate(),
            created_at: now,
            seen: Default::default(),
        });
        let excess = self
            .prekeys
            .len()
            .saturating_sub(self.policy.keep_previous + 1);
        self.prekeys.drain(..excess);
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    pub(crate) fn signed_prekey(&self, id: u32) -> Option<&KeyPair> {
        self.prekeys.iter().find(|p| p.id == id).map(|p| &p.pair)
    }

    /// Whether a session was already set up on signed prekey `id` with
    /// this ephemeral key.
    pub(crate) fn seen(&self, id: u32, ephemeral: &PublicKey) -> bool {
        self.prekeys
            .iter()
            .any(|p| p.id == id && p.seen.contains(&ephemeral.0))
    }

    /// Remembers a session set up on signed prekey `id`.
    pub(crate) fn record(&mut self, id: u32, ephemeral: &PublicKey) {
        if let Some(p) = self.prekeys.iter_mut().find(|p| p.id == id) {
            p.seen.insert(ephemeral.0);
        }
    }

    pub(crate) fn one_time_prekey(&self, id: u32) -> Option<&KeyPair> {
        self.one_time.get(&id)
    }

    /// Deletes a one-time prekey once a session was built on it.
    pub(crate) fn consume_one_time(&mut self, id: u32) {
        self.one_time.remove(&id);
    }

    /// How many one-time prekeys are left.
    pub fn one_time_left(&self) -> usize {
        self.one_time.len()
    }

    /// The installation's secrets and state, to keep (encrypted) somewhere.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(INSTALLATION_VERSION);
        w.bytes(&self.device.0)
            .bytes(self.signing.as_bytes())
            .bytes(&self.identity.secret_bytes());
        self.certificate.write(&mut w);
        w.u32(self.prekeys.len() as u32);
        for p in &self.prekeys {
            w.u32(p.id)
                .bytes(&p.pair.secret_bytes())
                .u64(p.created_at)
                .u32(p.seen.len() as u32);
            for e in &p.seen {
                w.bytes(e);
            }
        }
        w.u32(self.one_time.len() as u32);
        for (id, pair) in &self.one_time {
            w.u32(*id).bytes(&pair.secret_bytes());
        }
        w.u32(self.next_id)
            .u64(self.policy.rotate_after)
            .u32(self.policy.keep_previous as u32)
            .u32(self.policy.one_time as u32);
        w.finish()
    }

    /// Reads what [`Installation::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "installation", INSTALLATION_VERSION)?;
        let device = DeviceId(r.array("device")?);
        let signing = SigningKey::from_bytes(&Zeroizing::new(r.array("signing key")?));
        let identity = KeyPair::from_secret(r.array("identity key")?);
        let certificate = Certificate::read(&mut r)?;
        let n = r.count(48, "signed prekeys")?;
        let mut prekeys = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.u32("prekey id")?;
            let pair = KeyPair::from_secret(r.array("prekey")?);
            let created_at = r.u64("prekey time")?;
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..r.count(32, "sessions on the prekey")? {
                seen.insert(r.array("initiator ephemeral key")?);
            }
            prekeys.push(Prekey {
                id,
                pair,
                created_at,
                seen,
            });
        }
        if prekeys.is_empty() {
            return Err(DecodeError::Invalid("signed prekeys: none"));
        }
        let n = r.count(36, "one-time prekeys")?;
        let mut one_time = BTreeMap::new();
        for _ in 0..n {
            let id = r.u32("one-time prekey id")?;
            one_time.insert(id, KeyPair::from_secret(r.array("one-time prekey")?));
        }
        let next_id = r.u32("next prekey id")?;
        let policy = PrekeyPolicy {
            rotate_after: r.u64("rotation period")?,
            keep_previous: r.u32("kept prekeys")? as usize,
            one_time: r.u32("one-time prekey target")? as usize,
        };
        r.finish()?;
        Ok(Self {
            device,
            signing,
            identity,
            certificate,
            prekeys,
            one_time,
            next_id,
            policy,
        })
    }
}

impl fmt::Debug for Installation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installation")
            .field("account", &self.certificate.account)
            .field("device", &self.device)
            .field("identity_key", &self.identity.public())
            .field("one_time_left", &self.one_time.len())
            .finish_non_exhaustive()
    }
}
