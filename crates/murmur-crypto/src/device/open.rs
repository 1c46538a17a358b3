//! Opening an envelope: the sender's session (or one set up from its X3DH
//! header), shadow sessions and their convergence, and what the device's
//! own messages do.

use super::*;
use crate::{Ciphertext, DecryptError, EnvelopeError, X3dhError};

/// The plaintext, the session set up from a first message (if one was),
/// and whether the shadow session changed.
type Decrypted = (zeroize::Zeroizing<Vec<u8>>, Option<First>, bool);

/// A session set up from a first message.
struct First {
    /// The signed prekey it used.
    prekey: u32,
    /// The initiator's ephemeral key, seen on that prekey from now on.
    ephemeral: [u8; 32],
    /// It used a one-time prekey, now deleted.
    one_time: bool,
    /// The prekey is still held, so the ephemeral key was kept.
    recorded: bool,
}

impl Device {
    /// Opens an envelope published for this device.
    pub fn open(&mut self, envelope: &[u8], now: u64) -> Result<(Received, Records), Error> {
        let unsealed = envelope::open(&self.installation, envelope);
        self.open_unsealed(unsealed, now)
    }

    /// What opens this device's envelopes, on any thread: the key
    /// agreement of [`Device::open`], apart from the sessions.
    pub fn opener(&self) -> envelope::Opener {
        envelope::Opener::new(&self.installation)
    }

    /// [`Device::open`] for an envelope an [`envelope::Opener`] of this
    /// device opened (or could not).
    pub fn open_unsealed(
        &mut self,
        unsealed: Result<envelope::Opened, EnvelopeError>,
        now: u64,
    ) -> Result<(Received, Records), Error> {
        let opened = unsealed.map_err(|e| match e {
            EnvelopeError::NotForUs => self.refuse("not_for_us", Error::NotForUs),
            other => self.refuse("malformed", Error::Malformed(other.to_string())),
        })?;
        let peer = (opened.sender_account, opened.sender_device);
        if self.revoked.contains_key(&peer) {
            return Err(self.refuse(
                "revoked",
                Error::Revoked {
                    account: peer.0,
                    device: peer.1,
                },
            ));
        }
        if self.blocked.contains(&peer.0) {
            return Err(self.refuse("blocked", Error::Blocked(peer.0)));
        }
        if matches!(opened.ciphertext, Ciphertext::Prekey(..)) {
            self.admit(peer, now)?;
        }
        let (plaintext, first, shadow_changed) = self.decrypt(peer, &opened.ciphertext, now)?;
        let request = !self.is_accepted(peer.0);
        let mut records = Vec::new();
        if let Some(first) = &first {
            // The one-time prekey used is gone from the installation; a
            // shared bundle's first message changes nothing in it but the
            // replay keys, each kept as a record of its own.
            if first.one_time {
                records.push(self.installation_record());
            }
            if first.recorded {
                records.push(self.seen_record(first.prekey, &first.ephemeral));
            }
            if request {
                self.strangers.insert(peer.0);
            }
        }
        records.push(self.session_record(peer));
        if shadow_changed && self.shadows.contains_key(&peer) {
            records.push(self.shadow_record(peer));
        }
        let payload = match Payload::decode(plaintext.as_slice()) {
            Ok(payload) => payload,
            Err(e) => {
                // The session moved on (and a first message's replay key
                // is taken): that is kept, though what came is refused.
                self.refuse("malformed", Error::Malformed(e.to_string()));
                let nothing = Received {
                    sender: peer,
                    app: None,
                    reply: Vec::new(),
                    identity_changed: false,
                    revoked: Vec::new(),
                    request,
                    accepted: Vec::new(),
                    reset: false,
                };
                return Ok((nothing, records));
            }
        };
        // A renewed certificate for this device, from its account.
        if let Some(bytes) = payload
            .renewal
            .as_deref()
            .filter(|_| peer.0 == self.account())
        {
            match crate::Certificate::from_bytes(bytes)
                .map_err(crate::BundleError::Malformed)
                .and_then(|c| self.installation.renew(c))
            {
                Ok(true) => {
                    self.announce = true;
                    records.push(self.installation_record());
                }
                Ok(false) => {}
                Err(e) => {
                    self.refuse("bad_renewal", Error::BadContact(e.to_string()));
                }
            }
        }
        // What another device of this account accepted or blocked.
        let accepted = if peer.0 == self.account() {
            let (accepted, more) = self.on_own_lists(&payload);
            records.extend(more);
            accepted
        } else {
            Vec::new()
        };
        let mut received = Received {
            sender: peer,
            app: payload.app,
            reply: Vec::new(),
            identity_changed: false,
            revoked: Vec::new(),
            request,
            accepted,
            // Only a first message starts over: a reset flag on any other
            // would make this device send its history again at will.
            reset: payload.reset && first.is_some(),
        };
        // A new session from another account: tell it about this
        // account's other devices, so that it writes to them too; a
        // stranger hears nothing until the user accepts it.
        if first.is_some() && peer.0 != self.account() && !request {
            let (reply, more) = self.introduce(vec![peer], now)?;
            records.extend(more);
            received.reply.extend(reply);
            // And this account's other devices learn that the account is
            // accepted here (added by code on this device, say), so that
            // they answer it too.
            let (told, more) = self.tell_own(peer.0, false, now)?;
            records.extend(more);
            received.reply.extend(told);
        }
        if let Some(request) = payload.pair_request {
            // A new device of this account, under its throwaway identity:
            // not a message request.
            self.strangers.remove(&peer.0);
            let (reply, more) = self.on_pair_request(peer, &request, now)?;
            records.extend(more);
            received.reply.extend(reply);
        }
        if let Some(response) = payload.pair_response {
            records.extend(self.on_pair_response(peer, &response, now)?);
            received.identity_changed = true;
        }
        // Revocations first: a device list never brings back a device
        // revoked in the same message.
        for bytes in payload.revocation.iter().chain(&payload.revocations) {
            if let Some((peer, more)) = self.on_revocation(bytes) {
                received.revoked.push(peer);
                records.extend(more);
            }
        }
        for bytes in &payload.devices {
            records.extend(self.learn_device(peer.0, bytes, now));
        }

        Ok((received, records))
    }

    /// Decrypts in the session with `peer`, its shadow, or a new session
    /// from the X3DH header; answers the plaintext, the session set up (if
    /// one was), and whether the shadow changed.
    fn decrypt(
        &mut self,
        peer: Peer,
        ciphertext: &Ciphertext,
        now: u64,
    ) -> Result<Decrypted, Error> {
        let mut shadow_changed = false;
        let mut existing = self
            .sessions
            .get_mut(&peer)
            .map(|session| session.decrypt(ciphertext.message()));
        if matches!(existing, Some(Err(_))) {
            // The session that lost a simultaneous start still reads what
            // the peer sent on it before it switched.
            if let Some(Ok(plaintext)) = self
                .shadows
                .get_mut(&peer)
                .map(|s| s.decrypt(ciphertext.message()))
            {
                existing = Some(Ok(plaintext));
                shadow_changed = true;
                self.converge(peer);
            }
        }
        let plaintext = match (existing, ciphertext) {
            (Some(Ok(plaintext)), _) => plaintext,
            // A first message of the session this device has, further
            // ahead of it than a step may skip (the initiator heard nothing
            // back yet, and this device was away): not a new start, and not
            // a replay; it opens once those before it have.
            (Some(Err(e @ DecryptError::TooFarAhead { .. })), Ciphertext::Prekey(..)) => {
                return Err(self.refuse("too_far_ahead", Error::TooFarAhead(e.to_string())));
            }
            // A first message again: the peer lost its session and starts
            // over, or this one was replayed (X3DH then refuses the used
            // one-time prekey).
            (Some(Err(_)) | None, Ciphertext::Prekey(initiation, message)) => {
                if (
                    initiation.certificate.account,
                    initiation.certificate.device,
                ) != peer
                {
                    return Err(self.refuse("forged_sender", Error::ForgedSender));
                }
                // A device whose account stopped renewing its certificate
                // (revoked, where this device never heard it) sets up no
                // session.
                if initiation.certificate.expired(now) {
                    return Err(self.refuse(
                        "expired",
                        Error::Expired {
                            account: peer.0,
                            device: peer.1,
                        },
                    ));
                }
                let (session, plaintext) =
                    x3dh::respond(&mut self.installation, initiation, message, self.limits)
                        .map_err(|e| match e {
                            X3dhError::Replay | X3dhError::Decrypt(DecryptError::Replay { .. }) => {
                                self.refuse("replay", Error::Replay)
                            }
                            // Another initiator used it first, or this
                            // device never issued it (a restored
                            // installation); not a replay, counted apart.
                            X3dhError::OneTimePrekeyUsed(_) => {
                                self.refuse("one_time_prekey_used", Error::OneTimePrekeyUsed)
                            }
                            // A message of the initiator's first chain, more
                            // than a step may skip past those before it (a
                            // receiver back from an outage): it opens once
                            // they have, so it says so.
                            X3dhError::Decrypt(e @ DecryptError::TooFarAhead { .. }) => {
                                self.refuse("too_far_ahead", Error::TooFarAhead(e.to_string()))
                            }
                            other => self
                                .refuse("undecryptable", Error::Undecryptable(other.to_string())),
                        })?;
                self.start_from(peer, session);
                // Who talks to whom stays out of the INFO log.
                tracing::debug!(account = %peer.0, device = %peer.1, "session established");
                let first = First {
                    prekey: initiation.signed_prekey,
                    ephemeral: initiation.ephemeral.0,
                    one_time: initiation.one_time.is_some(),
                    recorded: self
                        .installation
                        .seen(initiation.signed_prekey, &initiation.ephemeral),
                };
                return Ok((zeroize::Zeroizing::new(plaintext), Some(first), true));
            }
            (Some(Err(e)), Ciphertext::Message(_)) => {
                return Err(match e {
                    DecryptError::Replay { .. } => self.refuse("replay", Error::Replay),
                    DecryptError::TooFarAhead { .. } => {
                        self.refuse("too_far_ahead", Error::TooFarAhead(e.to_string()))
                    }
                    // The envelope proved the sender; its session and this
                    // one no longer agree.
                    _ => self.refuse(
                        "undecryptable",
                        Error::BrokenSession {
                            account: peer.0,
                            device: peer.1,
                        },
                    ),
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
        Ok((zeroize::Zeroizing::new(plaintext), None, shadow_changed))
    }

    /// The peer writes on the session kept as a shadow: the two sides
    /// ended on different sessions (the answer to a simultaneous start
    /// overtook the other side's first message). The smaller (account,
    /// device) follows the larger, which never switches back on a shadow:
    /// one switch, and both write on the same session again.
    fn converge(&mut self, peer: Peer) {
        if self.me() >= peer {
            return;
        }
        if let (Some(main), Some(shadow)) =
            (self.sessions.remove(&peer), self.shadows.remove(&peer))
        {
            self.sessions.insert(peer, shadow);
            self.shadows.insert(peer, main);
            tracing::debug!(account = %peer.0, device = %peer.1, "session switched to the peer's");
        }
    }

    /// A session the peer started: both sides of a simultaneous start keep
    /// the one the smaller (account, device) started, so that they end up
    /// on the same one. Ours is kept if it is unanswered and ours is the
    /// smaller side; theirs then only reads.
    fn start_from(&mut self, peer: Peer, session: Session) {
        let ours_wins = self
            .sessions
            .get(&peer)
            .is_some_and(|s| s.pending().is_some())
            && self.me() < peer;
        if ours_wins {
            self.shadows.insert(peer, session);
        } else if let Some(previous) = self.sessions.insert(peer, session) {
            // Kept to read what the peer may still send on it (see
            // `converge`: the peer may have ended on it).
            self.shadows.insert(peer, previous);
        }
    }
}
