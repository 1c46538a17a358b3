//! Contacts, devices, pairing a new device and revoking one.

use super::*;

impl Crypto {
    /// A bundle of `account`'s devices, from that account: kept if it
    /// verifies and is not revoked.
    pub(crate) fn learn_device(&mut self, account: AccountId, bytes: &[u8]) -> Saves {
        let Ok(bundle) = Bundle::from_bytes(bytes) else {
            return Vec::new();
        };
        let peer = (account_id(bundle.account()), device_id(bundle.device()));
        if peer.0 != account || bundle.verify().is_err() || self.revoked.contains_key(&peer) {
            self.refuse(
                "bad_bundle",
                Error::BadContact(format!("a bundle of {} from {account} refused", peer.0)),
            );
            return Vec::new();
        }
        if peer == (self.account(), self.device()) {
            return Vec::new();
        }
        tracing::info!(account = %peer.0, device = %peer.1, "learned a device");
        self.keep_contact(bundle)
    }
    pub(crate) fn keep_contact(&mut self, bundle: Bundle) -> Saves {
        let peer = (account_id(bundle.account()), device_id(bundle.device()));
        let name = key(CONTACT, peer.0, peer.1);
        let value = self.vault.seal(&name, &bundle.to_bytes());
        self.contacts
            .entry(peer.0)
            .or_default()
            .insert(peer.1, bundle);
        vec![(name, Some(value))]
    }
    /// A revocation from `account`: the device's bundle and session go, and
    /// nothing from it is accepted again.
    pub(crate) fn on_revocation(&mut self, account: AccountId, bytes: &[u8]) -> Saves {
        let Ok(r) = Revocation::from_bytes(bytes) else {
            return Vec::new();
        };
        let peer = (account_id(r.account), device_id(r.device));
        if peer.0 != account || r.verify().is_err() {
            tracing::debug!(account = %peer.0, "revocation refused");
            return Vec::new();
        }
        self.forget(peer, r)
    }
    pub(crate) fn forget(&mut self, peer: (AccountId, DeviceId), r: Revocation) -> Saves {
        tracing::warn!(account = %peer.0, device = %peer.1, "device revoked");
        if peer == (self.account(), self.device()) {
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
        let name = key(REVOKED, peer.0, peer.1);
        let value = self.vault.seal(&name, &r.to_bytes());
        self.revoked.insert(peer, r);
        vec![
            (key(SESSION, peer.0, peer.1), None),
            (key(SHADOW, peer.0, peer.1), None),
            (key(CONTACT, peer.0, peer.1), None),
            (name, Some(value)),
        ]
    }
    /// On the first device: a new device asks to join with a pairing secret.
    pub(crate) fn on_pair_request(
        &mut self,
        from: (AccountId, DeviceId),
        request: &PairRequest,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let Some(account) = self.account.as_ref() else {
            return Err(self.refuse("pairing", Error::NotPrimary));
        };
        let now_instant = std::time::Instant::now();
        self.pairing.retain(|(_, expiry)| *expiry > now_instant);
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
        let certificate = account.certify(&asked, now());
        let bundle = asked
            .complete(certificate.clone())
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let new_device = (self.account(), device_id(bundle.device()));
        tracing::info!(device = %new_device.1, "paired a new device");
        self.first_hand.insert(new_device);
        let mut saves = self.keep_contact(bundle.clone());
        let mut bundles: Vec<Vec<u8>> = self
            .contacts
            .values()
            .flat_map(|d| d.values().map(Bundle::to_bytes))
            .collect();
        bundles.push(self.installation.bundle_with(now(), 0).to_bytes());
        let response = Payload {
            pair_response: Some(PairResponse {
                certificate: bundle.to_bytes(),
                bundles,
                revocations: self.revoked.values().map(Revocation::to_bytes).collect(),
            }),
            ..Payload::default()
        };
        let (mut publish, more) = self.seal_to(vec![from], &response)?;
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
        let (more_publish, more) = self.seal_to(others, &announce)?;
        publish.extend(more_publish);
        saves.extend(more);
        Ok((publish, saves))
    }
    /// On the new device: the first device's answer, with our certificate.
    pub(crate) fn on_pair_response(
        &mut self,
        from: (AccountId, DeviceId),
        response: &PairResponse,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
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
        let mut saves: Saves = self
            .sessions
            .keys()
            .map(|(a, d)| (key(SESSION, *a, *d), None))
            .chain(
                self.shadows
                    .keys()
                    .map(|(a, d)| (key(SHADOW, *a, *d), None)),
            )
            .collect();
        self.sessions.clear();
        self.shadows.clear();
        self.account = None;
        self.installation = installation;
        saves.push((ACCOUNT.to_owned(), None));
        saves.push(self.sealed_installation());
        for r in &response.revocations {
            saves.extend(self.on_revocation(from.0, r));
        }
        for bytes in &response.bundles {
            if let Ok(b) = Bundle::from_bytes(bytes) {
                if b.verify().is_ok() && b.device() != self.installation.device() {
                    saves.extend(self.keep_contact(b));
                }
            }
        }
        tracing::info!(account = %self.account(), device = %self.device(), "paired: this device now belongs to the account");
        Ok((Vec::new(), saves))
    }
    pub(crate) fn add_contact(&mut self, code: &str) -> Result<(AccountId, Saves), Error> {
        let bundle = parse_code(code).map_err(|e| self.refuse("bad_bundle", e))?;
        bundle
            .verify()
            .map_err(|e| self.refuse("bad_bundle", Error::BadContact(e.to_string())))?;
        let account = account_id(bundle.account());
        if self
            .revoked
            .contains_key(&(account, device_id(bundle.device())))
        {
            return Err(Error::BadContact(
                "that device was revoked by its account".to_owned(),
            ));
        }
        Ok((account, self.keep_contact(bundle)))
    }
    /// Keeps the bundles that are newer than those known; answers how many
    /// devices were learned, with what to save.
    pub(crate) fn learn_bundles(&mut self, msg: &LearnBundles) -> (usize, Saves) {
        let mut saves = Vec::new();
        let mut kept = 0;
        for bytes in &msg.bundles {
            let Ok(bundle) = Bundle::from_bytes(bytes) else {
                continue;
            };
            let device = device_id(bundle.device());
            let newer = self
                .contacts
                .get(&msg.account)
                .and_then(|d| d.get(&device))
                .is_none_or(|known| known.timestamp < bundle.timestamp);
            if newer {
                let more = self.learn_device(msg.account, bytes);
                kept += usize::from(!more.is_empty());
                saves.extend(more);
            }
        }
        (kept, saves)
    }
    pub(crate) fn pairing_code(&mut self) -> Result<String, Error> {
        if self.account.is_none() {
            return Err(Error::NotPrimary);
        }
        let secret: [u8; 32] = rand::random();
        let now_instant = std::time::Instant::now();
        self.pairing.retain(|(_, expiry)| *expiry > now_instant);
        self.pairing.push((secret, now_instant + PAIRING_TTL));
        let mut body = secret.to_vec();
        body.extend(self.installation.bundle_with(now(), 0).to_bytes());
        Ok(format!(
            "{PAIR_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
        ))
    }
    /// On a new device: asks the account's first device to certify it.
    pub(crate) fn pair(&mut self, code: &str) -> Result<(Vec<Sealed>, Saves), Error> {
        let body = code
            .trim()
            .strip_prefix(PAIR_PREFIX)
            .ok_or_else(|| Error::Pairing(format!("a pairing code starts with {PAIR_PREFIX:?}")))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| Error::Pairing(format!("not base64url: {e}")))?;
        if bytes.len() < 32 {
            return Err(Error::Pairing("too short".to_owned()));
        }
        let (secret, bundle) = bytes.split_at(32);
        let primary = Bundle::from_bytes(bundle).map_err(|e| Error::Pairing(e.to_string()))?;
        primary
            .verify()
            .map_err(|e| Error::Pairing(e.to_string()))?;
        let from = (account_id(primary.account()), device_id(primary.device()));
        if from.0 == self.account() {
            return Err(Error::Pairing(
                "this device already belongs to that account".to_owned(),
            ));
        }
        let keys = Unpaired::generate(PrekeyPolicy::default(), now());
        let request = Payload {
            pair_request: Some(PairRequest {
                secret: secret.to_vec(),
                request: keys.request(now()).to_bytes(),
            }),
            ..Payload::default()
        };
        let mut saves = self.keep_contact(primary);
        let (sealed, more) = self.seal_to(vec![from], &request)?;
        saves.extend(more);
        self.pending_pair = Some(PendingPair {
            keys,
            primary: from,
        });
        Ok((sealed, saves))
    }
    /// On the first device: revokes one of the account's devices, and tells
    /// everyone.
    pub(crate) fn revoke(&mut self, device: DeviceId) -> Result<(Vec<Sealed>, Saves), Error> {
        let account = self.account.as_ref().ok_or(Error::NotPrimary)?;
        if device == self.device() {
            return Err(Error::Pairing("a device cannot revoke itself".to_owned()));
        }
        let revocation = account.revoke(murmur_crypto::DeviceId(device.0), now());
        let bytes = revocation.to_bytes();
        let everyone = self.everyone();
        let mut saves = self.forget((self.account(), device), revocation);
        let (sealed, more) = self.seal_to(
            everyone,
            &Payload {
                revocation: Some(bytes),
                ..Payload::default()
            },
        )?;
        saves.extend(more);
        Ok((sealed, saves))
    }
}
