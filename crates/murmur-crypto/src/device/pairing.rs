//! Contacts, devices, pairing a new device and revoking one.

use super::{wire::PairRequest, wire::PairResponse, *};
use crate::{PairingRequest, PrekeyPolicy};

impl Device {
    /// A bundle of `account`'s devices, from that account: kept if it
    /// verifies and is not revoked.
    pub(super) fn learn_device(&mut self, account: AccountId, bytes: &[u8], now: u64) -> Records {
        let Ok(bundle) = Bundle::from_bytes(bytes) else {
            return Vec::new();
        };
        let peer = (bundle.account(), bundle.device());
        if peer.0 != account || bundle.verify().is_err() || self.revoked.contains_key(&peer) {
            self.refuse(
                "bad_bundle",
                Error::BadContact(format!("a bundle of {} from {account} refused", peer.0)),
            );
            return Vec::new();
        }
        if bundle.certificate.expired(now) {
            self.refuse(
                "expired",
                Error::Expired {
                    account: peer.0,
                    device: peer.1,
                },
            );
            return Vec::new();
        }
        if peer == self.me() {
            return Vec::new();
        }
        let known = self.contacts.get(&peer.0);
        if peer.0 != self.account()
            && !known.is_some_and(|d| d.contains_key(&peer.1))
            && known.map_or(0, BTreeMap::len) >= self.policy.max_devices
        {
            self.refuse("too_many_devices", Error::TooManyDevices(peer.0));
            return Vec::new();
        }
        tracing::debug!(account = %peer.0, device = %peer.1, "learned a device");
        self.keep_contact(bundle)
    }
    fn keep_contact(&mut self, bundle: Bundle) -> Records {
        let peer = (bundle.account(), bundle.device());
        let record = self.contact_record(peer, &bundle);
        self.contacts
            .entry(peer.0)
            .or_default()
            .insert(peer.1, bundle);
        vec![record]
    }
    /// A revocation, from whoever passes it on: signed by the account key
    /// of the device it revokes, it proves itself. The device's bundle and
    /// session go, and nothing from it is accepted again.
    /// Answers the device it newly revoked, with the records to keep.
    pub(super) fn on_revocation(&mut self, bytes: &[u8]) -> Option<(Peer, Records)> {
        let r = Revocation::from_bytes(bytes).ok()?;
        let peer = (r.account, r.device);
        if r.verify().is_err() {
            self.refuse(
                "bad_revocation",
                Error::BadContact(format!("a revocation for {} that does not verify", peer.0)),
            );
            return None;
        }
        if self.revoked.contains_key(&peer) {
            return None;
        }
        Some((peer, self.forget(peer, r)))
    }

    /// The revocations of `account`'s devices this device knows, to pass
    /// on with its device list or publish beside its bundle.
    pub fn revocations_of(&self, account: AccountId) -> Vec<Vec<u8>> {
        self.revoked
            .iter()
            .filter(|((a, _), _)| *a == account)
            .map(|(_, r)| r.to_bytes())
            .collect()
    }
    fn forget(&mut self, peer: Peer, r: Revocation) -> Records {
        if peer.0 == self.account() {
            tracing::warn!(device = %peer.1, "a device of this account was revoked");
        } else {
            tracing::debug!(account = %peer.0, device = %peer.1, "device revoked");
        }
        if peer == self.me() {
            tracing::error!(
                "this device was revoked by its account; it can no longer send or receive for it"
            );
        }
        if let Some(devices) = self.contacts.get_mut(&peer.0) {
            devices.remove(&peer.1);
        }
        self.sessions.remove(&peer);
        self.shadows.remove(&peer);
        self.first_hand.remove(&peer);
        let mut records = records::forgotten(peer);
        records.push(self.revoked_record(peer, &r));
        self.revoked.insert(peer, r);
        records
    }
    /// On the first device: a new device asks to join with a pairing secret.
    pub(super) fn on_pair_request(
        &mut self,
        from: Peer,
        request: &PairRequest,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        if self.account.is_none() {
            return Err(self.refuse("pairing", Error::NotPrimary));
        }
        self.pairing.retain(|(_, expiry)| *expiry > now);
        let position = self.pairing.iter().position(|(secret, _)| {
            subtle::ConstantTimeEq::ct_eq(secret.as_slice(), request.secret.as_slice()).into()
        });
        let Some(position) = position else {
            return Err(self.refuse(
                "pairing",
                Error::Pairing("unknown, expired or used pairing secret".to_owned()),
            ));
        };
        self.pairing.remove(position);
        let asked = PairingRequest::from_bytes(&request.request)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let Some(account) = self.account.as_ref() else {
            return Err(self.refuse("pairing", Error::NotPrimary));
        };
        let certificate = account.certify(&asked, now);
        let bundle = asked
            .complete(certificate.clone())
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let new_device = (self.account(), bundle.device());
        tracing::info!(device = %new_device.1, "paired a new device");
        self.first_hand.insert(new_device);
        let mut saves = self.keep_contact(bundle.clone());
        let mut bundles: Vec<Vec<u8>> = self
            .contacts
            .values()
            .flat_map(|d| d.values().map(Bundle::to_bytes))
            .collect();
        bundles.push(self.bundle(now).to_bytes());
        let response = Payload {
            pair_response: Some(PairResponse {
                certificate: bundle.to_bytes(),
                bundles,
                revocations: self.revoked.values().map(Revocation::to_bytes).collect(),
                accepted: self.accepted.iter().map(|a| a.0.to_vec()).collect(),
                blocked: self.blocked.iter().map(|a| a.0.to_vec()).collect(),
            }),
            ..Payload::default()
        };
        let (mut publish, more) = self.seal_to(vec![from], &response, now)?;
        saves.extend(more);
        // Everyone else learns the new device: contacts, and our other
        // devices.
        let others: Vec<_> = self
            .everyone()
            .into_iter()
            .filter(|p| *p != from && *p != new_device)
            .collect();
        let announce = Payload {
            devices: vec![bundle.to_bytes()],
            ..Payload::default()
        };
        let (more_publish, more) = self.seal_to(others, &announce, now)?;
        publish.extend(more_publish);
        saves.extend(more);
        Ok((publish, saves))
    }
    /// On the new device: the first device's answer, with our certificate.
    pub(super) fn on_pair_response(
        &mut self,
        from: Peer,
        response: &PairResponse,
        now: u64,
    ) -> Result<Records, Error> {
        let Some(pending) = self.pending_pair.take_if(|p| p.primary == from) else {
            return Err(self.refuse(
                "pairing",
                Error::Pairing("an answer to a pairing this device did not ask for".to_owned()),
            ));
        };
        let bundle = Bundle::from_bytes(&response.certificate)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let installation = pending
            .keys
            .pair(bundle.certificate)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        // The throwaway identity's sessions and account go; the contacts
        // stay, and the first device's list is added.
        let mut saves = self.sessions_dropped();
        self.sessions.clear();
        self.shadows.clear();
        self.account = None;
        self.installation = installation;
        saves.push(records::account_dropped());
        saves.push(self.installation_record());
        // Every revocation the first device knows, of any account: a
        // device it stopped trusting is not learned again here.
        for r in &response.revocations {
            if let Some((_, records)) = self.on_revocation(r) {
                saves.extend(records);
            }
        }
        for bytes in &response.bundles {
            if let Ok(b) = Bundle::from_bytes(bytes) {
                if b.verify().is_ok()
                    && !b.certificate.expired(now)
                    && b.device() != self.installation.device()
                {
                    saves.extend(self.keep_contact(b));
                }
            }
        }
        // The account's message requests, answered as the first device
        // answered them.
        for bytes in &response.accepted {
            if let Ok(a) = <[u8; 32]>::try_from(bytes.as_slice()) {
                saves.extend(self.mark_accepted(AccountId(a)));
            }
        }
        for bytes in &response.blocked {
            if let Ok(a) = <[u8; 32]>::try_from(bytes.as_slice()) {
                saves.extend(self.block_here(AccountId(a)).unwrap_or_default());
            }
        }
        tracing::info!(account = %self.account(), device = %self.device(), "paired: this device now belongs to the account");
        Ok(saves)
    }

    /// Adds a contact from its contact code; answers its account.
    pub fn add_contact(&mut self, code: &str, now: u64) -> Result<(AccountId, Records), Error> {
        let bundle = parse_code(code).map_err(|e| self.refuse("bad_bundle", e))?;
        bundle
            .verify()
            .map_err(|e| self.refuse("bad_bundle", Error::BadContact(e.to_string())))?;
        if bundle.certificate.expired(now) {
            return Err(self.refuse(
                "expired",
                Error::BadContact(
                    "the code's certificate expired; ask for a fresh code".to_owned(),
                ),
            ));
        }
        let account = bundle.account();
        if self.revoked.contains_key(&(account, bundle.device())) {
            return Err(self.refuse(
                "bad_bundle",
                Error::BadContact("that device was revoked by its account".to_owned()),
            ));
        }
        let mut records = self.keep_contact(bundle);
        records.extend(self.mark_accepted(account));
        Ok((account, records))
    }

    /// Keeps those of `account`'s bundles (from the network, or a group's
    /// introduction) that verify and are newer than the ones known; answers
    /// how many devices were learned. An account introduced so (a member of
    /// a group this account is in, one looked up to write to) is accepted.
    pub fn learn_bundles<B: AsRef<[u8]>>(
        &mut self,
        account: AccountId,
        bundles: &[B],
        now: u64,
    ) -> (usize, Records) {
        let mut saves = Vec::new();
        let mut kept = 0;
        // Revocations published beside the bundles first: a revoked
        // device's bundle, however fresh, is not learned.
        for bytes in bundles {
            if let Ok(r) = Revocation::from_bytes(bytes.as_ref()) {
                if r.account == account {
                    if let Some((_, more)) = self.on_revocation(bytes.as_ref()) {
                        saves.extend(more);
                    }
                }
            }
        }
        for bytes in bundles {
            let bytes = bytes.as_ref();
            let Ok(bundle) = Bundle::from_bytes(bytes) else {
                continue;
            };
            let device = bundle.device();
            let newer = self
                .contacts
                .get(&account)
                .and_then(|d| d.get(&device))
                .is_none_or(|known| known.timestamp < bundle.timestamp);
            if newer {
                let more = self.learn_device(account, bytes, now);
                kept += usize::from(!more.is_empty());
                saves.extend(more);
            }
        }
        if kept > 0 {
            saves.extend(self.mark_accepted(account));
        }
        (kept, saves)
    }
    /// On the device holding the account key: a code that pairs one new
    /// device within [`PAIRING_TTL`] seconds.
    pub fn pairing_code(&mut self, now: u64) -> Result<String, Error> {
        if self.account.is_none() {
            return Err(Error::NotPrimary);
        }
        let secret: [u8; 32] = rand::random();
        self.pairing.retain(|(_, expiry)| *expiry > now);
        self.pairing.push((secret, now.saturating_add(PAIRING_TTL)));
        let mut body = secret.to_vec();
        body.extend(self.bundle(now).to_bytes());
        Ok(format!(
            "{PAIR_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
        ))
    }
    /// On a new device: asks the account's first device to certify it.
    /// The answer, when it comes, makes this device one of that account's.
    pub fn pair(&mut self, code: &str, now: u64) -> Result<(Vec<Outgoing>, Records), Error> {
        let bytes = code_body(code, PAIR_PREFIX).map_err(Error::Pairing)?;
        if bytes.len() < 32 {
            return Err(Error::Pairing("too short".to_owned()));
        }
        let (secret, bundle) = bytes.split_at(32);
        let primary = Bundle::from_bytes(bundle).map_err(|e| Error::Pairing(e.to_string()))?;
        primary
            .verify()
            .map_err(|e| Error::Pairing(e.to_string()))?;
        let from = (primary.account(), primary.device());
        if from.0 == self.account() {
            return Err(Error::Pairing(
                "this device already belongs to that account".to_owned(),
            ));
        }
        let keys = Unpaired::generate(PrekeyPolicy::default(), now);
        let request = Payload {
            pair_request: Some(PairRequest {
                secret: secret.to_vec(),
                request: keys.request(now).to_bytes(),
            }),
            ..Payload::default()
        };
        let mut saves = self.keep_contact(primary);
        let (sealed, more) = self.seal_to(vec![from], &request, now)?;
        saves.extend(more);
        self.pending_pair = Some(PendingPair {
            keys,
            primary: from,
        });
        Ok((sealed, saves))
    }
    /// On the first device: revokes one of the account's devices, and tells
    /// everyone.
    pub fn revoke(
        &mut self,
        device: DeviceId,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let account = self.account.as_ref().ok_or(Error::NotPrimary)?;
        if device == self.device() {
            return Err(Error::Pairing("a device cannot revoke itself".to_owned()));
        }
        let revocation = account.revoke(device, now);
        let bytes = revocation.to_bytes();
        let everyone = self.everyone();
        let mut saves = self.forget((self.account(), device), revocation);
        let (sealed, more) = self.seal_to(
            everyone,
            &Payload {
                revocation: Some(bytes),
                ..Payload::default()
            },
            now,
        )?;
        saves.extend(more);
        Ok((sealed, saves))
    }
}
