//! Debug output of the contract's messages that carry plaintext or keys:
//! their bytes show as a length, never as content, so that no log holds a
//! message or a chain key.

use std::fmt;

use crate::{crypto, groups};

/// Bytes that must not reach a log: Debug shows their length only.
struct Redacted<'a>(&'a [u8]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl fmt::Debug for crypto::Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seal")
            .field("to", &self.to)
            .field("plaintext", &Redacted(&self.plaintext))
            .finish()
    }
}

impl fmt::Debug for crypto::Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("sender", &self.sender)
            .field("device", &self.device)
            .field("plaintext", &self.plaintext.as_deref().map(Redacted))
            .field("publish", &self.publish.len())
            .field("identity_changed", &self.identity_changed)
            .field("revoked", &self.revoked)
            .finish()
    }
}

impl fmt::Debug for groups::Post {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Post")
            .field("group", &self.group)
            .field("plaintext", &Redacted(&self.plaintext))
            .finish()
    }
}

impl fmt::Debug for groups::Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("group", &self.group)
            .field("sender", &self.sender)
            .field("device", &self.device)
            .field("role", &self.role)
            .field("plaintext", &Redacted(&self.plaintext))
            .field("effects", &self.effects)
            .finish()
    }
}

/// A control message carries chain keys: its bytes never reach a log.
impl fmt::Debug for groups::Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("from", &self.from)
            .field("device", &self.device)
            .field("message", &Redacted(&self.message))
            .field("request", &self.request)
            .finish()
    }
}

/// Pairwise messages carry chain keys: Debug shows whom they go to only.
impl fmt::Debug for groups::Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to: Vec<&crypto::AccountId> = self.pairwise.iter().map(|(a, _)| a).collect();
        f.debug_struct("Effects")
            .field("learn", &self.learn.len())
            .field("subscribe", &self.subscribe)
            .field("pairwise_to", &to)
            .field("admit", &self.admit)
            .field("notices", &self.notices)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::{
        crypto::{AccountId, DeviceId},
        groups::{Control, Effects, GroupId, Opened, Post, Role},
    };

    #[test]
    fn no_plaintext_or_chain_key_in_debug_output() {
        let secret = Bytes::from_static(b"the chain key 0123456789abcdef");
        let account = AccountId([3; 32]);
        let device = DeviceId([4; 16]);
        let group = GroupId([5; 32]);
        let mut effects = Effects::default();
        effects.pairwise.push((account, secret.clone()));
        let printed = [
            format!(
                "{:?}",
                Post {
                    group,
                    plaintext: secret.clone()
                }
            ),
            format!(
                "{:?}",
                Opened::new(group, account, device, Role::Member, secret.clone())
            ),
            format!(
                "{:?}",
                Control {
                    from: account,
                    device,
                    message: secret.clone(),
                    request: false,
                }
            ),
            format!("{effects:?}"),
            format!("{:?}", crate::crypto::Seal::new(account, secret.clone())),
            format!(
                "{:?}",
                crate::crypto::Opened::new(account, device, Some(secret.clone()))
            ),
        ];
        for p in printed {
            assert!(!p.contains("chain key"), "{p}");
            assert!(!p.contains("116, 104, 101"), "{p}");
            assert!(p.contains("30 bytes") || p.contains("pairwise_to"), "{p}");
        }
    }
}
