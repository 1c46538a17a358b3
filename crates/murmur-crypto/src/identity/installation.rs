//! One device: its identity key, rotating signed prekey, one-time
//! prekeys, and the sessions set up on each; and a device not paired yet.

use super::*;

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
            expires_at: 0,
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
            dropped: Vec::new(),
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
    /// otherwise set the same session up again. Not part of
    /// [`Installation::to_bytes`]: each key is kept as a record of its own
    /// (see `Device`), so that accepting a first message costs the same
    /// however many came before it.
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
    /// Signed prekeys rotated out since the caller last asked, with the
    /// ephemeral keys seen on them (their records can go).
    dropped: Vec<(u32, Vec<[u8; 32]>)>,
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

    /// Takes a renewed certificate from the account: for exactly these
    /// keys, signed by this installation's account, and running longer
    /// than the one held.
    pub fn renew(&mut self, certificate: Certificate) -> Result<bool, BundleError> {
        certificate.verify()?;
        self.certificate.same_keys(&certificate)?;
        if certificate.account != self.certificate.account {
            return Err(BundleError::Certificate(certificate.account));
        }
        if certificate.expires_at <= self.certificate.expires_at {
            return Ok(false);
        }
        self.certificate = certificate;
        Ok(true)
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
        let dropped: Vec<_> = self
            .prekeys
            .drain(..excess)
            .map(|p| (p.id, p.seen.into_iter().collect()))
            .collect();
        self.dropped.extend(dropped);
    }

    /// Signed prekeys rotated out since the last call, each with the
    /// initiators' ephemeral keys that were seen on it.
    pub(crate) fn take_dropped(&mut self) -> Vec<(u32, Vec<[u8; 32]>)> {
        std::mem::take(&mut self.dropped)
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

    /// Remembers a session set up on signed prekey `id`; false when the
    /// prekey is no longer held (the key need not be kept).
    pub(crate) fn record(&mut self, id: u32, ephemeral: &PublicKey) -> bool {
        match self.prekeys.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.seen.insert(ephemeral.0);
                true
            }
            None => false,
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
                // The keys seen are records of their own; the count stays
                // in the format, which older states filled.
                .u32(0);
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
            dropped: Vec::new(),
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
