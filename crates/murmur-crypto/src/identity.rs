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
const BUNDLE_VERSION: u8 = 2;
const INSTALLATION_VERSION: u8 = 2;
const CERTIFICATE_VERSION: u8 = 1;
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
    /// The device's certificate expired: its account stopped renewing it
    /// (a revoked or abandoned device), so it is not learned anew.
    #[error("the certificate of device {0} expired")]
    Expired(DeviceId),
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
            expires_at: issued_at.saturating_add(CERTIFICATE_TTL),
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
    /// What certifying a known device's keys again takes: its bundle.
    pub(crate) fn of(bundle: Bundle) -> Self {
        Self { bundle }
    }

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
    /// After when no one learns the device from it (seconds since the Unix
    /// epoch): [`CERTIFICATE_TTL`] after it was issued. The account renews
    /// the certificates of its devices while it keeps them; a revoked
    /// device's runs out, so even a contact that never got the revocation
    /// stops taking it in.
    pub expires_at: u64,
    /// The account's Ed25519 signature.
    pub signature: [u8; 64],
}

/// How long a device certificate lets others learn the device: 180 days.
/// The first device renews its own and its devices' certificates when half
/// of it is left.
pub const CERTIFICATE_TTL: u64 = 180 * 24 * 3600;

impl Certificate {
    const LEN: usize = 32 + 16 + 32 + 32 + 8 + 8 + 64;

    /// Whether it expired at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now > self.expires_at
    }

    /// Whether less than half its life is left at `now`: time to renew.
    pub fn due(&self, now: u64) -> bool {
        self.expires_at.saturating_sub(now) < CERTIFICATE_TTL / 2
    }

    /// The certificate alone, to hand a device its renewal.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(CERTIFICATE_VERSION);
        self.write(&mut w);
        w.finish().to_vec()
    }

    /// Reads what [`Certificate::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "certificate", CERTIFICATE_VERSION)?;
        let c = Self::read(&mut r)?;
        r.finish()?;
        Ok(c)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(CERTIFICATE_CONTEXT.len() + Self::LEN);
        v.extend_from_slice(CERTIFICATE_CONTEXT);
        v.extend_from_slice(&self.account.0);
        v.extend_from_slice(&self.device.0);
        v.extend_from_slice(&self.signing_key);
        v.extend_from_slice(&self.identity_key.0);
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.expires_at.to_be_bytes());
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

    /// Whether it certifies the same device keys as `other`.
    pub fn same_device_keys(&self, other: &Certificate) -> bool {
        self.same_keys(other).is_ok()
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
            .u64(self.expires_at)
            .bytes(&self.signature);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: AccountId(r.array("certificate account")?),
            device: DeviceId(r.array("certificate device")?),
            signing_key: r.array("certificate signing key")?,
            identity_key: r.key("certificate identity key")?,
            issued_at: r.u64("certificate time")?,
            expires_at: r.u64("certificate expiry")?,
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

mod installation;

pub use installation::{Installation, PrekeyPolicy, Unpaired, MAX_SESSIONS_PER_PREKEY};
