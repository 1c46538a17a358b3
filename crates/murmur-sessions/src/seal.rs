//! Sealing for every device of an account and of this one.

use super::*;

impl Crypto {
    /// Every device to seal for: the recipient's, and our other ones.
    pub(crate) fn devices(&self, to: AccountId) -> Vec<(AccountId, DeviceId)> {
        let me = (self.account(), self.device());
        let mut out: Vec<_> = [to, self.account()]
            .iter()
            .flat_map(|account| {
                let known = self
                    .contacts
                    .get(account)
                    .into_iter()
                    .flat_map(|d| d.keys().map(|device| (*account, *device)));
                let sessions = self.sessions.keys().filter(|(a, _)| a == account).copied();
                known.chain(sessions).collect::<Vec<_>>()
            })
            .filter(|peer| *peer != me)
            .collect();
        out.sort();
        out.dedup();
        out
    }
    pub(crate) fn seal(
        &mut self,
        to: AccountId,
        plaintext: &[u8],
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let devices = self.devices(to);
        if !devices.iter().any(|(a, _)| *a == to) {
            return Err(Error::UnknownContact(to));
        }
        let payload = Payload {
            app: Some(plaintext.to_vec()),
            ..Payload::default()
        };
        self.seal_to(devices, &payload)
    }
    /// Every device this one knows, of every account, but itself.
    pub(crate) fn everyone(&self) -> Vec<(AccountId, DeviceId)> {
        let me = (self.account(), self.device());
        let mut out: Vec<_> = self
            .contacts
            .iter()
            .flat_map(|(a, d)| d.keys().map(|device| (*a, *device)))
            .chain(self.sessions.keys().copied())
            .filter(|peer| *peer != me)
            .collect();
        out.sort();
        out.dedup();
        out
    }
    pub(crate) fn seal_to(
        &mut self,
        devices: Vec<(AccountId, DeviceId)>,
        payload: &Payload,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let plaintext = zeroize::Zeroizing::new(payload.encode_to_vec());
        let plaintext = plaintext.as_slice();
        let sender = (self.installation.account(), self.installation.device());
        let mut sealed = Vec::with_capacity(devices.len());
        let mut saves = Vec::with_capacity(devices.len());
        for peer in devices {
            if self.revoked.contains_key(&peer) {
                continue;
            }
            let mut introduced = None;
            if !self.sessions.contains_key(&peer) {
                let Some(bundle) = self.contacts.get(&peer.0).and_then(|d| d.get(&peer.1)) else {
                    continue;
                };
                let session = if self.first_hand.remove(&peer) {
                    x3dh::initiate(&self.installation, bundle, self.limits)
                } else {
                    x3dh::initiate_shared(&self.installation, bundle, self.limits)
                }
                .map_err(|e| Error::BadContact(e.to_string()))?;
                self.sessions.insert(peer, session);
                if peer.0 != self.account() {
                    // The first message carries this device's bundle, so
                    // that the other side can introduce it to others (the
                    // members of a group it adds this account to).
                    let mut first = payload.clone();
                    first
                        .devices
                        .push(self.installation.bundle_with(now(), 0).to_bytes());
                    introduced = Some(zeroize::Zeroizing::new(first.encode_to_vec()));
                }
            }
            let session = self.sessions.get_mut(&peer).expect("inserted above");
            let ciphertext = session
                .seal(introduced.as_deref().map_or(plaintext, Vec::as_slice))
                .map_err(|e| Error::State(e.to_string()))?;
            let payload = envelope::seal(&session.peer_identity(), sender, &ciphertext);
            sealed.push(Sealed::new(self.topic_of(peer.0), Bytes::from(payload)));
            let session = &self.sessions[&peer];
            saves.push(self.sealed_session(peer, session));
            self.metrics.sealed.inc();
        }
        Ok((sealed, saves))
    }
}
