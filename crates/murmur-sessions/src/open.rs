//! Opening an envelope: the sender's session (or one set up from its
//! X3DH header), shadow sessions, and what the stage's own messages do.

use super::*;

impl Crypto {
    pub(crate) fn refuse(&self, reason: &'static str, error: Error) -> Error {
        self.metrics.refused.get_or_create(&Reason { reason }).inc();
        tracing::debug!(reason, %error, "envelope refused");
        error
    }
    pub(crate) fn open(&mut self, payload: &[u8]) -> Result<(Opened, Saves), Error> {
        let opened = envelope::open(&self.installation, payload).map_err(|e| match e {
            EnvelopeError::NotForUs => self.refuse("not_for_us", Error::NotForUs),
            other => self.refuse("malformed", Error::Undecryptable(other.to_string())),
        })?;
        let peer = (
            account_id(opened.sender_account),
            device_id(opened.sender_device),
        );
        if self.revoked.contains_key(&peer) {
            return Err(self.refuse(
                "revoked",
                Error::Revoked {
                    account: peer.0,
                    device: peer.1,
                },
            ));
        }
        let mut saves = Vec::new();
        // The shadow read this message or was replaced: save it too.
        let mut shadow_changed = false;
        let mut existing = match self.sessions.get_mut(&peer) {
            Some(session) => Some(session.decrypt(opened.ciphertext.message())),
            None => None,
        };
        if matches!(existing, Some(Err(_))) {
            // The session that lost a simultaneous start still reads what
            // the peer sent on it before it switched.
            if let Some(Ok(plaintext)) = self
                .shadows
                .get_mut(&peer)
                .map(|s| s.decrypt(opened.ciphertext.message()))
            {
                existing = Some(Ok(plaintext));
                shadow_changed = true;
                // The peer writes on the session we keep as a shadow: the two
                // sides ended on different sessions (the answer to a
                // simultaneous start overtook the other side's first
                // message). The smaller (account, device) follows the
                // larger, which never switches back on a shadow: one switch,
                // and both write on the same session again.
                if (self.account(), self.device()) < peer {
                    if let (Some(main), Some(shadow)) =
                        (self.sessions.remove(&peer), self.shadows.remove(&peer))
                    {
                        self.sessions.insert(peer, shadow);
                        self.shadows.insert(peer, main);
                        tracing::debug!(account = %peer.0, device = %peer.1, "session switched to the peer's");
                    }
                }
            }
        }
        let mut opened_first = None;
        let plaintext = match (existing, &opened.ciphertext) {
            (Some(Ok(plaintext)), _) => plaintext,
            // A first message again: the peer lost its session and starts
            // over, or this one was replayed (X3DH then refuses the used
            // one-time prekey).
            (Some(Err(_)) | None, Ciphertext::Prekey(initiation, message)) => {
                if (
                    account_id(initiation.certificate.account),
                    device_id(initiation.certificate.device),
                ) != peer
                {
                    return Err(self.refuse(
                        "forged_sender",
                        Error::Undecryptable(
                            "the envelope's sender is not the certificate's".to_owned(),
                        ),
                    ));
                }
                let (session, plaintext) =
                    x3dh::respond(&mut self.installation, initiation, message, self.limits)
                        .map_err(|e| match e {
                            X3dhError::Replay => self.refuse("replay", Error::Replay),
                            // A one-time prekey gone: another initiator used
                            // it first, or this device never issued it (a
                            // restored installation); not a replay, counted
                            // apart.
                            X3dhError::OneTimePrekeyUsed(_) => {
                                self.refuse("one_time_prekey_used", Error::Replay)
                            }
                            X3dhError::Decrypt(DecryptError::Replay { .. }) => {
                                self.refuse("replay", Error::Replay)
                            }
                            other => self
                                .refuse("undecryptable", Error::Undecryptable(other.to_string())),
                        })?;
                // Both sides started a session at once: both keep the one
                // the smaller (account, device) started, so that they end
                // up on the same one. Ours is kept if it is unanswered and
                // ours is the smaller side; theirs then only reads.
                let ours_wins = self
                    .sessions
                    .get(&peer)
                    .is_some_and(|s| s.pending().is_some())
                    && (self.account(), self.device()) < peer;
                if ours_wins {
                    self.shadows.insert(peer, session);
                    shadow_changed = true;
                } else if let Some(previous) = self.sessions.insert(peer, session) {
                    // Kept to read what the peer may still send on it (see
                    // above: the peer may have ended on it).
                    self.shadows.insert(peer, previous);
                    shadow_changed = true;
                }
                saves.push(self.sealed_installation());
                opened_first = Some(true);
                tracing::info!(account = %peer.0, device = %peer.1, "session established");
                plaintext
            }
            (Some(Err(e)), Ciphertext::Message(_)) => {
                return Err(match e {
                    DecryptError::Replay { .. } => self.refuse("replay", Error::Replay),
                    DecryptError::TooFarAhead { .. } => {
                        self.refuse("too_far_ahead", Error::TooFarAhead(e.to_string()))
                    }
                    other => self.refuse("undecryptable", Error::Undecryptable(other.to_string())),
                });
            }
            (None, Ciphertext::Message(_)) => {
                return Err(self.refuse(
                    "unknown_session",
                    Error::UnknownSession {
                        account: peer.0,
                        device: peer.1,
                    },
                ));
            }
        };
        saves.push(self.sealed_session(peer, &self.sessions[&peer]));
        if let Some(shadow) = self.shadows.get(&peer).filter(|_| shadow_changed) {
            saves.push(self.sealed_state(SHADOW, peer, shadow));
        }
        self.metrics.opened.inc();
        let payload = Payload::decode(plaintext.as_slice())
            .map_err(|e| self.refuse("malformed", Error::Undecryptable(e.to_string())))?;
        let mut opened = Opened::new(peer.0, peer.1, payload.app.map(Bytes::from));
        if matches!(opened_first, Some(true)) && peer.0 != self.account() {
            // A new session from another account: tell it about this
            // account's other devices, so that it writes to them too.
            let ours: Vec<Vec<u8>> = self
                .contacts
                .get(&self.account())
                .map(|d| d.values().map(Bundle::to_bytes).collect())
                .unwrap_or_default();
            if !ours.is_empty() {
                let (publish, more) = self.seal_to(
                    vec![peer],
                    &Payload {
                        devices: ours,
                        ..Payload::default()
                    },
                )?;
                saves.extend(more);
                opened = opened.with_publish(publish);
            }
        }
        if let Some(request) = payload.pair_request {
            let (publish, more) = self.on_pair_request(peer, &request)?;
            saves.extend(more);
            opened = opened.with_publish(publish);
        }
        if let Some(response) = payload.pair_response {
            let (publish, more) = self.on_pair_response(peer, &response)?;
            saves.extend(more);
            opened = opened.with_publish(publish).with_identity_changed(true);
        }
        for bytes in &payload.devices {
            saves.extend(self.learn_device(peer.0, bytes));
        }
        if let Some(bytes) = payload.revocation {
            saves.extend(self.on_revocation(peer.0, &bytes));
        }
        Ok((opened, saves))
    }
}
