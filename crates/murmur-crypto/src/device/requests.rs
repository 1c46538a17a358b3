//! Message requests, as Signal has them: an account the user has not
//! accepted can write once it has this device's bundle, and its messages
//! are read, but it learns nothing back (no device list, no receipt, no
//! group join) until the user accepts it; the user can decline it or block
//! it instead. How many strangers, and how many devices of one account,
//! the device holds at once is bounded.

use super::*;

/// Which accounts the device answers without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Accept {
    /// Those the user added, wrote to or accepted (a person's device).
    #[default]
    Contacts,
    /// Everyone (a bot, a service): every account is accepted.
    Everyone,
}

/// How the device treats accounts it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Which accounts are accepted without being asked.
    pub accept: Accept,
    /// The most accounts waiting for an answer (with a session and not
    /// accepted): a first message from one more is refused with
    /// [`Error::TooManyRequests`].
    pub max_requests: usize,
    /// The most devices kept of one other account: one more is refused
    /// with [`Error::TooManyDevices`].
    pub max_devices: usize,
    /// New message requests opened per minute at most (a token bucket,
    /// ten seconds' worth at once): past it, a first message from an account
    /// not yet waiting is refused with [`Error::TooManyRequests`] before
    /// any X3DH or write, so that a flood costs the node one X25519 per
    /// envelope and contacts' messages do not queue behind it. 0: no limit.
    pub requests_per_minute: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            accept: Accept::Contacts,
            max_requests: 1024,
            max_devices: 16,
            requests_per_minute: 600,
        }
    }
}

impl Policy {
    /// With `accept`.
    pub fn accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    /// With at most `n` accounts waiting for an answer.
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = n;
        self
    }

    /// With at most `n` devices kept per account.
    pub fn max_devices(mut self, n: usize) -> Self {
        self.max_devices = n;
        self
    }

    /// With at most `n` new message requests opened per minute (0: no
    /// limit).
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = n;
        self
    }
}

/// New requests' token bucket: `tokens` left as of `at` (seconds).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Bucket {
    tokens: f64,
    at: u64,
}

impl Bucket {
    /// Takes a token at `now`, refilled at `per_minute` up to ten seconds'
    /// worth (a burst that size, no more, at once); false when none is
    /// left.
    fn take(&mut self, per_minute: u32, now: u64) -> bool {
        let rate = f64::from(per_minute) / 60.0;
        let cap = (rate * 10.0).max(1.0);
        if self.at == 0 {
            self.tokens = cap;
        } else {
            let elapsed = now.saturating_sub(self.at) as f64;
            self.tokens = (self.tokens + elapsed * rate).min(cap);
        }
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

impl Device {
    /// How the device treats accounts it does not know.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Sets how the device treats accounts it does not know.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Whether `account` gets answers: receipts, this account's device
    /// list, group joins.
    pub fn is_accepted(&self, account: AccountId) -> bool {
        self.policy.accept == Accept::Everyone
            || account == self.account()
            || self.accepted.contains(&account)
    }

    /// Accounts that wrote to this device and wait to be accepted,
    /// declined or blocked.
    pub fn requests(&self) -> Vec<AccountId> {
        if self.policy.accept == Accept::Everyone {
            return Vec::new();
        }
        self.strangers.iter().copied().collect()
    }

    /// Accounts the user added, wrote to or accepted, this one's own not
    /// among them.
    pub fn contacts(&self) -> Vec<AccountId> {
        let own = self.account();
        self.accepted
            .iter()
            .copied()
            .filter(|a| *a != own)
            .collect()
    }

    /// Accepts `account`: from now on it gets receipts and may add this
    /// account to groups, and its devices learn this account's other
    /// devices (and their revocations) now. Unblocks it if it was blocked.
    pub fn accept(
        &mut self,
        account: AccountId,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let mut records = Vec::new();
        if self.blocked.remove(&account) {
            records.push((records::named(records::BLOCKED, account), None));
        }
        records.extend(self.mark_accepted(account));
        let peers: Vec<Peer> = self
            .sessions
            .keys()
            .filter(|p| p.0 == account)
            .copied()
            .collect();
        let (mut out, more) = self.introduce(peers, now)?;
        records.extend(more);
        let (told, more) = self.tell_own(account, false, now)?;
        out.extend(told);
        records.extend(more);
        Ok((out, records))
    }

    /// Tells this account's other devices that `account` was accepted (or
    /// blocked), so that they answer it as this one does.
    pub(super) fn tell_own(
        &mut self,
        account: AccountId,
        blocked: bool,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let own: Vec<Peer> = self
            .everyone()
            .into_iter()
            .filter(|p| p.0 == self.account())
            .collect();
        if own.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let list = vec![account.0.to_vec()];
        let payload = if blocked {
            Payload {
                blocked: list,
                ..Payload::default()
            }
        } else {
            Payload {
                accepted: list,
                ..Payload::default()
            }
        };
        self.seal_to(own, &payload, now)
    }

    /// What another device of this account accepted or blocked; answers
    /// the accounts newly accepted that were message requests here (only
    /// theirs has anything held, or unacknowledged in the inbox).
    pub(super) fn on_own_lists(&mut self, payload: &Payload) -> (Vec<AccountId>, Records) {
        let account = |bytes: &Vec<u8>| <[u8; 32]>::try_from(bytes.as_slice()).ok().map(AccountId);
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        for a in payload.accepted.iter().filter_map(account) {
            if self.blocked.remove(&a) {
                records.push((records::named(records::BLOCKED, a), None));
            }
            let request = self.strangers.contains(&a);
            if let Some(record) = self.mark_accepted(a) {
                records.push(record);
                if request {
                    accepted.push(a);
                }
            }
        }
        for a in payload.blocked.iter().filter_map(account) {
            if !self.blocked.contains(&a) {
                records.extend(self.block_here(a).unwrap_or_default());
            }
        }
        (accepted, records)
    }

    /// Declines `account`: its sessions and devices are forgotten (it may
    /// write again, as a new request).
    pub fn decline(&mut self, account: AccountId) -> Result<Records, Error> {
        if account == self.account() {
            return Err(Error::OwnAccount);
        }
        let mut records = Vec::new();
        if self.accepted.remove(&account) {
            records.push((records::named(records::ACCEPTED, account), None));
        }
        self.strangers.remove(&account);
        let mut peers: BTreeSet<Peer> = self
            .sessions
            .keys()
            .chain(self.shadows.keys())
            .filter(|p| p.0 == account)
            .copied()
            .collect();
        peers.extend(
            self.contacts
                .remove(&account)
                .into_iter()
                .flat_map(|d| d.into_keys().map(move |device| (account, device))),
        );
        for peer in peers {
            self.sessions.remove(&peer);
            self.shadows.remove(&peer);
            self.first_hand.remove(&peer);
            records.extend(records::forgotten(peer));
        }
        Ok(records)
    }

    /// Blocks `account`: declined, and nothing it sends is opened again
    /// until it is accepted. This account's other devices are told.
    pub fn block(
        &mut self,
        account: AccountId,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let mut records = self.block_here(account)?;
        let (out, more) = self.tell_own(account, true, now)?;
        records.extend(more);
        Ok((out, records))
    }

    pub(super) fn block_here(&mut self, account: AccountId) -> Result<Records, Error> {
        let mut records = self.decline(account)?;
        self.blocked.insert(account);
        records.push(self.seal_record(records::named(records::BLOCKED, account), &[]));
        Ok(records)
    }

    /// Whether `account` is blocked.
    pub fn is_blocked(&self, account: AccountId) -> bool {
        self.blocked.contains(&account)
    }

    /// The user wrote to `account`, added it, or accepted it: the record
    /// that keeps it accepted, if it was not already (this account's other
    /// devices are told by [`Device::accept`] and [`Device::seal`]).
    pub(super) fn mark_accepted(
        &mut self,
        account: AccountId,
    ) -> Option<(String, Option<Vec<u8>>)> {
        self.strangers.remove(&account);
        if account == self.account() || !self.accepted.insert(account) {
            return None;
        }
        Some(self.seal_record(records::named(records::ACCEPTED, account), &[]))
    }

    /// Before a session is set up from a first message of `peer`: refused
    /// when its account is blocked, when it would be one request too many
    /// (waiting, or opened this minute), or one device of its account too
    /// many.
    pub(super) fn admit(&mut self, peer: Peer, now: u64) -> Result<(), Error> {
        if self.blocked.contains(&peer.0) {
            return Err(self.refuse("blocked", Error::Blocked(peer.0)));
        }
        if peer.0 == self.account() || self.sessions.contains_key(&peer) {
            return Ok(());
        }
        let known = self.contacts.get(&peer.0);
        if !known.is_some_and(|d| d.contains_key(&peer.1))
            && known.map_or(0, BTreeMap::len) >= self.policy.max_devices
        {
            return Err(self.refuse("too_many_devices", Error::TooManyDevices(peer.0)));
        }
        if !self.is_accepted(peer.0) && !self.strangers.contains(&peer.0) {
            let per_minute = self.policy.requests_per_minute;
            if self.strangers.len() >= self.policy.max_requests
                || (per_minute > 0 && !self.new_requests.take(per_minute, now))
            {
                return Err(self.refuse("too_many_requests", Error::TooManyRequests));
            }
        }
        Ok(())
    }

    /// This account's device list and its revocations, sealed for `peers`
    /// (devices of another account): so that they write to every device of
    /// this account, and never to a revoked one.
    pub(super) fn introduce(
        &mut self,
        peers: Vec<Peer>,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let ours: Vec<Vec<u8>> = self
            .contacts
            .get(&self.account())
            .map(|d| d.values().map(Bundle::to_bytes).collect())
            .unwrap_or_default();
        // With the revocations of this account's devices: a contact that
        // never saw one learns it before it could learn a revoked device
        // elsewhere.
        let revocations = self.revocations_of(self.account());
        if peers.is_empty() || (ours.is_empty() && revocations.is_empty()) {
            return Ok((Vec::new(), Vec::new()));
        }
        self.seal_to(
            peers,
            &Payload {
                devices: ours,
                revocations,
                ..Payload::default()
            },
            now,
        )
    }
}
