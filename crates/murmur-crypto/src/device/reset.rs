//! Starting over with a device whose session no longer opens its messages.
//!
//! A session breaks when one side loses its state or goes back to an older
//! copy (a device restored from a backup): the other side's next message
//! is under keys this side never derived. Nothing repairs that session, so
//! this device starts a new one, whose first message asks the peer to send
//! again what it sent since this device's last receipt (the application's
//! part: [`Received::reset`]).
//!
//! The envelope names its sender, but only the session proves it: anyone
//! can seal garbage "from" a contact. So a reset keeps the old session as
//! the shadow (the peer's next message on it still opens, and the two
//! sides converge on one session as after a simultaneous start), and a
//! device resets with one peer at most once per [`RESET_EVERY`]: forged
//! envelopes cost a new session a minute, never the conversation.

use super::*;

/// Seconds between two resets with one device.
pub const RESET_EVERY: u64 = 60;

impl Device {
    /// Starts a new session with `peer`, whose message the current one did
    /// not open ([`Error::UnknownSession`], [`Error::BrokenSession`]), and
    /// answers its first message, which asks the peer to send again what
    /// this device did not acknowledge. Answers nothing when this device
    /// reset with `peer` less than [`RESET_EVERY`] seconds ago, or when
    /// `peer`'s account is not accepted (a stranger learns nothing, not even
    /// that this device is online).
    pub fn reset(&mut self, peer: Peer, now: u64) -> Result<(Vec<Outgoing>, Records), Error> {
        if self.revoked.contains_key(&peer) {
            return Err(Error::Revoked {
                account: peer.0,
                device: peer.1,
            });
        }
        if self.blocked.contains(&peer.0) {
            return Err(Error::Blocked(peer.0));
        }
        if !self
            .contacts
            .get(&peer.0)
            .is_some_and(|d| d.contains_key(&peer.1))
        {
            return Err(Error::UnknownContact(peer.0));
        }
        let recent = self
            .resets
            .get(&peer)
            .is_some_and(|at| now < at.saturating_add(RESET_EVERY));
        if recent || !self.is_accepted(peer.0) || peer == self.me() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.resets.insert(peer, now);
        let mut records = Vec::new();
        if let Some(old) = self.sessions.remove(&peer) {
            self.shadows.insert(peer, old);
            records.push(self.shadow_record(peer));
        }
        let payload = Payload {
            reset: true,
            ..Payload::default()
        };
        let (out, more) = self.seal_to(vec![peer], &payload, now)?;
        records.extend(more);
        tracing::debug!(account = %peer.0, device = %peer.1, "session reset");
        Ok((out, records))
    }
}
