//! Invite codes, and whom a group admits: the join policy an admin's device
//! applies to a request to join.
//!
//! A code carries the group, the issuing admin's account and device
//! bundles (so that the joiner can write to the admin), and, if it admits
//! by itself, a secret whose hash the admin registered in the log with
//! [`Action::Invite`](crate::Action::Invite).

use base64::Engine as _;
use sha2_011::{Digest as _, Sha256};

use crate::{GroupId, JoinMode, MemberId, State};

/// How an invite code starts.
pub const PREFIX: &str = "murmur-join:";
const VERSION: u8 = 1;

/// An invite code, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The group.
    pub group: GroupId,
    /// The admin the joiner asks.
    pub admin: MemberId,
    /// The secret that admits by itself, if the code carries one.
    pub secret: Option<[u8; 32]>,
    /// The admin's device bundles.
    pub bundles: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("group", &self.group)
            .field("admin", &self.admin)
            .field("admits", &self.secret.is_some())
            .field("bundles", &self.bundles.len())
            .finish()
    }
}

/// Why an invite code does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invite code: {0}")]
pub struct DecodeError(&'static str);

/// Why an admin's device refuses a request to join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The device asked is not an admin's (any more).
    #[error("join requests go to admins")]
    NotAdmin,
    /// The account asking is banned from the group.
    #[error("{0:?} is banned")]
    Banned(MemberId),
    /// The group admits by invite code only, and the request carries no
    /// secret in force.
    #[error("this group admits by invite code only")]
    InviteOnly,
}

/// What an admin's device does with a request to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The account is a member already: nothing to do.
    Member,
    /// Add it now: its secret is in force, or the group is open.
    Admit,
    /// Keep the request for an admin to approve.
    Ask,
}

/// The hash of an invite secret, as the log registers it.
pub fn hash(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"murmur/invite/v1")
        .chain_update(secret)
        .finalize()
        .into()
}

impl Invite {
    /// The code, to hand out.
    pub fn encode(&self) -> String {
        let mut v = Vec::with_capacity(130 + self.bundles.iter().map(Vec::len).sum::<usize>());
        v.push(VERSION);
        v.extend_from_slice(&self.group.0);
        v.extend_from_slice(&self.admin.0);
        match &self.secret {
            Some(s) => {
                v.push(1);
                v.extend_from_slice(s);
            }
            None => v.push(0),
        }
        for b in &self.bundles {
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(b);
        }
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
        )
    }

    /// Reads a code a user pasted.
    pub fn decode(code: &str) -> Result<Self, DecodeError> {
        let body = code
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(DecodeError("it starts with \"murmur-join:\""))?;
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| DecodeError("not base64url"))?;
        let (head, mut rest) = v.split_at_checked(66).ok_or(DecodeError("too short"))?;
        if head[0] != VERSION {
            return Err(DecodeError("unknown version"));
        }
        let mut group = [0; 32];
        group.copy_from_slice(&head[1..33]);
        let mut admin = [0; 32];
        admin.copy_from_slice(&head[33..65]);
        let secret = match head[65] {
            0 => None,
            1 => {
                let (s, r) = rest.split_at_checked(32).ok_or(DecodeError("secret"))?;
                rest = r;
                let mut secret = [0; 32];
                secret.copy_from_slice(s);
                Some(secret)
            }
            _ => return Err(DecodeError("secret flag")),
        };
        let mut bundles = Vec::new();
        while !rest.is_empty() {
            let (len, r) = rest
                .split_at_checked(4)
                .ok_or(DecodeError("bundle length"))?;
            let mut be = [0; 4];
            be.copy_from_slice(len);
            let len = usize::try_from(u32::from_be_bytes(be)).map_err(|_| DecodeError("bundle"))?;
            let (b, r) = r.split_at_checked(len).ok_or(DecodeError("bundle"))?;
            bundles.push(b.to_vec());
            rest = r;
        }
        Ok(Self {
            group: crate::EventId(group),
            admin: MemberId(admin),
            secret,
            bundles,
        })
    }
}

impl State {
    /// What `admin`'s device does with `joiner`'s request to join, carrying
    /// `secret` if its code had one: a secret in force admits whatever the
    /// join mode; otherwise an open group admits, a group that asks keeps
    /// the request for approval, and an invite-only group refuses. Banned
    /// accounts are refused, whatever they carry.
    pub fn admission(
        &self,
        admin: &MemberId,
        joiner: &MemberId,
        secret: Option<&[u8]>,
    ) -> Result<Admission, Refused> {
        if !self.role(admin).is_some_and(crate::Role::is_admin) {
            return Err(Refused::NotAdmin);
        }
        if self.members.contains_key(joiner) {
            return Ok(Admission::Member);
        }
        if self.banned.contains(joiner) {
            return Err(Refused::Banned(*joiner));
        }
        // An invite admits while the admin who registered it still is one.
        let invited = secret
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .and_then(|s| self.invites.get(&hash(&s)))
            .is_some_and(|issuer| self.role(issuer).is_some_and(crate::Role::is_admin));
        match self.join_mode {
            _ if invited => Ok(Admission::Admit),
            JoinMode::Open => Ok(Admission::Admit),
            JoinMode::Approval => Ok(Admission::Ask),
            JoinMode::Invite => Err(Refused::InviteOnly),
        }
    }
}
