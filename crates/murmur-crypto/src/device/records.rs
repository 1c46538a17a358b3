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

fn name(prefix: &str, (account, device): Peer) -> String {
    format!("{prefix}{account}/{device}")
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
}

impl Loaded {
    fn parse(records: Vec<(String, Vec<u8>)>, vault: &Vault) -> Result<Self, Error> {
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
            refusals: Vec::new(),
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

    /// Everything but the installation, from `loaded`.
    fn replace(&mut self, loaded: Loaded) {
        self.account = loaded.account;
        self.sessions = loaded.sessions;
        self.shadows = loaded.shadows;
        self.contacts = loaded.contacts;
        self.revoked = loaded.revoked;
    }

    fn seal_record(&self, key: String, bytes: &[u8]) -> (String, Option<Vec<u8>>) {
        let value = self.vault.seal(&key, bytes);
        (key, Some(value))
    }

    pub(super) fn installation_record(&self) -> (String, Option<Vec<u8>>) {
        self.seal_record(INSTALLATION.to_owned(), &self.installation.to_bytes())
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
