//! What the stage keeps in storage: reading it at start and after a
//! restart, and saving each change before the answer.

use super::*;

/// What the stage keeps on disk, read back.
pub(crate) struct Loaded {
    pub(crate) account: Option<Account>,
    pub(crate) installation: Option<Installation>,
    pub(crate) sessions: HashMap<(AccountId, DeviceId), Session>,
    pub(crate) shadows: HashMap<(AccountId, DeviceId), Session>,
    pub(crate) contacts: BTreeMap<AccountId, BTreeMap<DeviceId, Bundle>>,
    pub(crate) revoked: BTreeMap<(AccountId, DeviceId), Revocation>,
}

pub(crate) async fn list_state(storage: &storage::Handle) -> Result<Vec<(String, Vec<u8>)>, Error> {
    storage
        .list_state
        .send(storage::ListState("crypto/".to_owned()))
        .await
        .map_err(state_error)?
        .map_err(state_error)
}

impl Loaded {
    pub(crate) fn parse(entries: Vec<(String, Vec<u8>)>, vault: &Vault) -> Result<Self, Error> {
        let mut loaded = Self {
            account: None,
            installation: None,
            sessions: HashMap::new(),
            shadows: HashMap::new(),
            contacts: BTreeMap::new(),
            revoked: BTreeMap::new(),
        };
        for (name, value) in entries {
            let bytes = vault.open(&name, &value).map_err(state_error)?;
            if name == ACCOUNT {
                let secret: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::State("account key is not 32 bytes".to_owned()))?;
                loaded.account = Some(Account::from_secret(&secret));
            } else if name == INSTALLATION {
                loaded.installation = Some(Installation::from_bytes(&bytes).map_err(state_error)?);
            } else if name.starts_with(SESSION) || name.starts_with(SHADOW) {
                let s = Session::from_bytes(&bytes).map_err(state_error)?;
                let peer = (account_id(s.peer_account()), device_id(s.peer_device()));
                if name.starts_with(SESSION) {
                    loaded.sessions.insert(peer, s);
                } else {
                    loaded.shadows.insert(peer, s);
                }
            } else if name.starts_with(REVOKED) {
                let r = Revocation::from_bytes(&bytes).map_err(state_error)?;
                loaded
                    .revoked
                    .insert((account_id(r.account), device_id(r.device)), r);
            } else if name.starts_with(CONTACT) {
                let b = Bundle::from_bytes(&bytes).map_err(state_error)?;
                loaded
                    .contacts
                    .entry(account_id(b.account()))
                    .or_default()
                    .insert(device_id(b.device()), b);
            }
        }
        Ok(loaded)
    }
}

impl Crypto {
    /// Loads the stage's state (creating an account and a device on first
    /// start) and starts it under a supervisor.
    pub async fn start(
        storage: storage::Handle,
        node_secret: &[u8],
        settings: &Settings,
        metrics: Metrics,
    ) -> Result<Addr<Self>, Error> {
        let vault = Vault::new(node_secret);
        let entries = list_state(&storage).await?;
        let Loaded {
            mut account,
            installation,
            sessions,
            shadows,
            contacts,
            revoked,
        } = Loaded::parse(entries, &vault)?;
        let mut fresh = Vec::new();
        let installation = match installation {
            Some(i) => i,
            None => {
                let new_account = Account::generate();
                let i = Installation::create(&new_account, PrekeyPolicy::default(), now());
                fresh.push((
                    ACCOUNT.to_owned(),
                    Some(vault.seal(ACCOUNT, new_account.to_secret().as_ref())),
                ));
                fresh.push((
                    INSTALLATION.to_owned(),
                    Some(vault.seal(INSTALLATION, &i.to_bytes())),
                ));
                account = Some(new_account);
                tracing::info!(account = %account_id(i.account()), device = %device_id(i.device()), "created a chat account");
                i
            }
        };
        if !fresh.is_empty() {
            storage
                .save_state
                .send(storage::SaveState(fresh))
                .await
                .map_err(state_error)?
                .map_err(state_error)?;
        }
        let stage = Self {
            account,
            installation,
            sessions,
            shadows,
            first_hand: HashSet::new(),
            contacts,
            vault,
            storage,
            partitions: settings.partitions.max(1),
            limits: Limits {
                max_skip: settings.max_skip,
                max_stored: settings.max_skipped_keys,
            },
            metrics,
            pairing: Vec::new(),
            pending_pair: None,
            revoked,
            reload: false,
            fuse: supervise::Fuse::default(),
        };
        Ok(Supervisor::start(move |_| stage))
    }
    pub(crate) fn sealed_session(
        &self,
        peer: (AccountId, DeviceId),
        s: &Session,
    ) -> (String, Option<Vec<u8>>) {
        self.sealed_state(SESSION, peer, s)
    }
    pub(crate) fn sealed_state(
        &self,
        prefix: &str,
        peer: (AccountId, DeviceId),
        s: &Session,
    ) -> (String, Option<Vec<u8>>) {
        let name = key(prefix, peer.0, peer.1);
        let value = self.vault.seal(&name, &s.to_bytes());
        (name, Some(value))
    }
    pub(crate) fn sealed_installation(&self) -> (String, Option<Vec<u8>>) {
        (
            INSTALLATION.to_owned(),
            Some(self.vault.seal(INSTALLATION, &self.installation.to_bytes())),
        )
    }
    /// Persists `saves`, then answers `result`: durable before the answer,
    /// and the mailbox waits, so saves land in order.
    pub(crate) fn persist<T: 'static>(
        &self,
        saves: Saves,
        result: T,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        if saves.is_empty() {
            return supervise::Reply::Now(Ok(result));
        }
        let save = self.storage.save_state.clone();
        let saved = async move {
            match save.send(storage::SaveState(saves)).await {
                Ok(Ok(())) => Ok(result),
                // Not saved: the storage stage restarted on it.
                Ok(Err(storage::Error::Restarted(p))) => Err(Error::Restarted(p)),
                Ok(Err(e)) => Err(state_error(e)),
                Err(e) => Err(state_error(e)),
            }
        };
        supervise::Reply::Wait(Box::pin(
            supervise::Guarded::new(Box::pin(saved.into_actor(self)))
                .map(|outcome, _, _| outcome.unwrap_or_else(|p| Err(p.into()))),
        ))
    }
    /// Answers a guarded change: persisted first, or its error.
    pub(crate) fn respond<T: 'static>(
        &self,
        outcome: Result<Result<(T, Saves), Error>, supervise::Panicked>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        match outcome {
            Ok(Ok((result, saves))) => self.persist(saves, result),
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }
    /// Reads the persisted state back after a restart: what a panic left
    /// half-changed in memory is replaced by what was last saved.
    pub(crate) fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        ctx.wait(
            async move { list_state(&storage).await }
                .into_actor(self)
                .map(|entries, act, _| {
                    match entries.and_then(|e| Loaded::parse(e, &act.vault)) {
                        Ok(loaded) => act.restore(loaded),
                        Err(e) => tracing::error!(error = %e, "crypto state not reloaded; keeping the state in memory"),
                    }
                }),
        );
    }
    pub(crate) fn restore(&mut self, loaded: Loaded) {
        let Some(installation) = loaded.installation else {
            return;
        };
        self.installation = installation;
        self.account = loaded.account;
        self.sessions = loaded.sessions;
        self.shadows = loaded.shadows;
        self.contacts = loaded.contacts;
        self.revoked = loaded.revoked;
        tracing::info!("crypto stage reloaded its state");
    }
}
