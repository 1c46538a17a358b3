//! The state a device leaves to its caller to keep: named records, each
//! sealed with the node's vault under its name, and how they are read back.

use super::*;

/// State records to write (or, with `None`, delete) together, before the
/// answer they come with counts. Names start with `crypto/`; values are
/// sealed with the device's [`Vault`].
pub type Records = Vec<(String, Option<Vec<u8>>)>;

/// The prefix every record name starts with.
pub const PREFIX: &str = "crypto/";
const ACCOUNT: &str = "crypto/account";
const INSTALLATION: &str = "crypto/installation";
const SESSION: &str = "crypto/session/";
/// A session kept to read what a peer sent on it after a simultaneous start.
const SHADOW: &str = "crypto/shadow/";
const CONTACT: &str = "crypto/contact/";
const REVOKED: &str = "crypto/revoked/";
pub(super) const ACCEPTED: &str = "crypto/accepted/";
pub(super) const BLOCKED: &str = "crypto/blocked/";
/// An initiator's ephemeral key seen on a signed prekey: one record per
/// session set up, so that accepting a first message writes the same few
/// bytes however many came before it.
const SEEN: &str = "crypto/seen/";
/// The vault's tip record over all the others (rollback detection).
const TIP: &str = "crypto/ledger";

fn name(prefix: &str, (account, device): Peer) -> String {
    format!("{prefix}{account}/{device}")
}

/// The record of an account under `prefix` (accepted, blocked).
pub(super) fn named(prefix: &str, account: AccountId) -> String {
    format!("{prefix}{account}")
}

/// The replay record of `ephemeral` on signed prekey `prekey`.
pub(super) fn seen(prekey: u32, ephemeral: &[u8; 32]) -> String {
    let mut name = format!("{SEEN}{prekey}/");
    for b in ephemeral {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Thirty-two bytes from 64 hex digits.
fn hex32(s: &str) -> Result<[u8; 32], Error> {
    let bad = || Error::State(format!("not 32 bytes of hex: {s:?}"));
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn state(e: impl fmt::Display) -> Error {
    Error::State(e.to_string())
}

/// What is deleted when a device is forgotten.
pub(super) fn forgotten(peer: Peer) -> Records {
    vec![
        (name(SESSION, peer), None),
        (name(SHADOW, peer), None),
        (name(CONTACT, peer), None),
    ]
}

/// The account key goes (a paired device does not hold it).
pub(super) fn account_dropped() -> (String, Option<Vec<u8>>) {
    (ACCOUNT.to_owned(), None)
}

/// What the records hold, read back.
#[derive(Default)]
struct Loaded {
    account: Option<Account>,
    installation: Option<Installation>,
    sessions: HashMap<Peer, Session>,
    shadows: HashMap<Peer, Session>,
    contacts: BTreeMap<AccountId, BTreeMap<DeviceId, Bundle>>,
    revoked: BTreeMap<Peer, Revocation>,
    accepted: BTreeSet<AccountId>,
    blocked: BTreeSet<AccountId>,
    seen: Vec<(u32, [u8; 32])>,
}

impl Loaded {
    fn parse(records: Vec<(String, Vec<u8>)>, vault: &Vault) -> Result<Self, Error> {
        vault.verify(TIP, &records).map_err(state)?;
        let mut loaded = Self::default();
        for (key, value) in records {
            let bytes = vault.open(&key, &value).map_err(state)?;
            if key == ACCOUNT {
                let secret: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::State("account key is not 32 bytes".to_owned()))?;
                loaded.account = Some(Account::from_secret(&secret));
            } else if key == INSTALLATION {
                loaded.installation = Some(Installation::from_bytes(&bytes).map_err(state)?);
            } else if key.starts_with(SESSION) || key.starts_with(SHADOW) {
                let s = Session::from_bytes(&bytes).map_err(state)?;
                let peer = (s.peer_account(), s.peer_device());
                if key.starts_with(SESSION) {
                    loaded.sessions.insert(peer, s);
                } else {
                    loaded.shadows.insert(peer, s);
                }
            } else if key.starts_with(REVOKED) {
                let r = Revocation::from_bytes(&bytes).map_err(state)?;
                loaded.revoked.insert((r.account, r.device), r);
            } else if let Some(account) = key.strip_prefix(ACCEPTED) {
                loaded.accepted.insert(AccountId(hex32(account)?));
            } else if let Some(account) = key.strip_prefix(BLOCKED) {
                loaded.blocked.insert(AccountId(hex32(account)?));
            } else if let Some(rest) = key.strip_prefix(SEEN) {
                let (prekey, ephemeral) = rest
                    .split_once('/')
                    .ok_or_else(|| Error::State(format!("bad record name {key:?}")))?;
                let prekey = prekey
                    .parse()
                    .map_err(|_| Error::State(format!("bad record name {key:?}")))?;
                loaded.seen.push((prekey, hex32(ephemeral)?));
            } else if key.starts_with(CONTACT) {
                let b = Bundle::from_bytes(&bytes).map_err(state)?;
                loaded
                    .contacts
                    .entry(b.account())
                    .or_default()
                    .insert(b.device(), b);
            }
        }
        Ok(loaded)
    }
}

impl Device {
    /// A new account and its first device, with the records that keep
    /// them.
    pub fn create(vault: Vault, limits: Limits, now: u64) -> (Self, Records) {
        let account = Account::generate();
        let installation = Installation::create(&account, crate::PrekeyPolicy::default(), now);
        let mut device = Self::new(vault, limits, installation);
        let records = vec![
            device.seal_record(ACCOUNT.to_owned(), account.to_secret().as_ref()),
            device.installation_record(),
        ];
        device.account = Some(account);
        tracing::info!(account = %device.account(), device = %device.device(), "created a chat account");
        (device, records)
    }

    fn new(vault: Vault, limits: Limits, installation: Installation) -> Self {
        Self {
            account: None,
            installation,
            sessions: HashMap::new(),
            shadows: HashMap::new(),
            first_hand: HashSet::new(),
            contacts: BTreeMap::new(),
            vault,
            limits,
            pairing: Vec::new(),
            pending_pair: None,
            revoked: BTreeMap::new(),
            accepted: BTreeSet::new(),
            strangers: BTreeSet::new(),
            blocked: BTreeSet::new(),
            policy: Policy::default(),
            new_requests: Default::default(),
            announce: false,
            refusals: Vec::new(),
            resets: HashMap::new(),
        }
    }

    /// The device the records (every one under [`PREFIX`]) hold, or `None`
    /// if they hold none yet.
    pub fn restore(
        vault: Vault,
        limits: Limits,
        records: Vec<(String, Vec<u8>)>,
    ) -> Result<Option<Self>, Error> {
        let mut loaded = Loaded::parse(records, &vault)?;
        let Some(installation) = loaded.installation.take() else {
            return Ok(None);
        };
        let mut device = Self::new(vault, limits, installation);
        device.replace(loaded);
        Ok(Some(device))
    }

    /// Replaces the state with what the records hold: after a failure
    /// left the state in memory half-changed, the last saved state wins.
    /// Pairing secrets handed out and a pairing asked for survive.
    pub fn reload(&mut self, records: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        let mut loaded = Loaded::parse(records, &self.vault)?;
        if let Some(installation) = loaded.installation.take() {
            self.installation = installation;
            self.replace(loaded);
        }
        Ok(())
    }

    /// Everything but the installation (bar the replay keys seen on its
    /// prekeys), from `loaded`.
    fn replace(&mut self, loaded: Loaded) {
        for (prekey, ephemeral) in &loaded.seen {
            self.installation
                .record(*prekey, &crate::PublicKey(*ephemeral));
        }
        self.account = loaded.account;
        self.sessions = loaded.sessions;
        self.shadows = loaded.shadows;
        self.contacts = loaded.contacts;
        self.revoked = loaded.revoked;
        self.accepted = loaded.accepted;
        self.blocked = loaded.blocked;
        let me = self.account();
        self.strangers = self
            .sessions
            .keys()
            .map(|p| p.0)
            .filter(|a| *a != me && !self.accepted.contains(a))
            .collect();
    }

    /// Takes `records`, about to be written in one transaction, into the
    /// vault's ledger and appends its tip record: call it once on every
    /// batch a method of this device answers, just before writing it, so
    /// that a rolled-back entry is refused when the state is read back.
    pub fn commit(&self, records: &mut Records) -> crate::vault::Undo {
        self.vault.commit(TIP, records)
    }

    /// The batch [`Device::commit`] took was not written: the vault's
    /// ledger goes back to what storage holds.
    pub fn undo(&self, undo: crate::vault::Undo) {
        self.vault.undo(undo);
    }

    pub(super) fn seal_record(&self, key: String, bytes: &[u8]) -> (String, Option<Vec<u8>>) {
        let value = self.vault.seal(&key, bytes);
        (key, Some(value))
    }

    pub(super) fn installation_record(&self) -> (String, Option<Vec<u8>>) {
        self.seal_record(INSTALLATION.to_owned(), &self.installation.to_bytes())
    }

    /// The record that a session was set up on `prekey` from `ephemeral`.
    pub(super) fn seen_record(
        &self,
        prekey: u32,
        ephemeral: &[u8; 32],
    ) -> (String, Option<Vec<u8>>) {
        self.seal_record(seen(prekey, ephemeral), &[])
    }

    pub(super) fn session_record(&self, peer: Peer) -> (String, Option<Vec<u8>>) {
        match self.sessions.get(&peer) {
            Some(s) => self.seal_record(name(SESSION, peer), &s.to_bytes()),
            None => (name(SESSION, peer), None),
        }
    }

    pub(super) fn shadow_record(&self, peer: Peer) -> (String, Option<Vec<u8>>) {
        match self.shadows.get(&peer) {
            Some(s) => self.seal_record(name(SHADOW, peer), &s.to_bytes()),
            None => (name(SHADOW, peer), None),
        }
    }

    pub(super) fn contact_record(&self, peer: Peer, bundle: &Bundle) -> (String, Option<Vec<u8>>) {
        self.seal_record(name(CONTACT, peer), &bundle.to_bytes())
    }

    pub(super) fn revoked_record(&self, peer: Peer, r: &Revocation) -> (String, Option<Vec<u8>>) {
        self.seal_record(name(REVOKED, peer), &r.to_bytes())
    }

    /// Every session and shadow, deleted.
    pub(super) fn sessions_dropped(&self) -> Records {
        self.sessions
            .keys()
            .map(|p| (name(SESSION, *p), None))
            .chain(self.shadows.keys().map(|p| (name(SHADOW, *p), None)))
            .collect()
    }
}
