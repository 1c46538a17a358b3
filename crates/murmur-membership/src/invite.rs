//! Invite codes: what they carry and how they are written.

use super::*;

/// An invite code: the group, the admin's account and bundles to write to,
/// and the secret, if it admits by itself.
pub(crate) struct Invite {
    pub(crate) group: GroupId,
    pub(crate) admin: AccountId,
    pub(crate) secret: Option<[u8; 32]>,
    pub(crate) bundles: Vec<Bytes>,
}

impl Invite {
    pub(crate) fn encode(&self) -> String {
        use base64::Engine as _;
        let mut v = Vec::with_capacity(130 + self.bundles.iter().map(Bytes::len).sum::<usize>());
        v.push(1); // version
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
            v.extend_from_slice(&(b.len() as u32).to_be_bytes());
            v.extend_from_slice(b);
        }
        format!(
            "{INVITE_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
        )
    }

    pub(crate) fn decode(code: &str) -> Result<Self, Error> {
        use base64::Engine as _;
        let bad = |why: &str| Error::Malformed(format!("invite code: {why}"));
        let body = code
            .trim()
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(|| bad(&format!("it starts with {INVITE_PREFIX:?}")))?;
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("not base64url"))?;
        let (head, mut rest) = v.split_at_checked(66).ok_or_else(|| bad("too short"))?;
        if head[0] != 1 {
            return Err(bad("unknown version"));
        }
        let group = GroupId(head[1..33].try_into().map_err(|_| bad("group"))?);
        let admin = AccountId(head[33..65].try_into().map_err(|_| bad("admin"))?);
        let secret = match head[65] {
            0 => None,
            1 => {
                let (s, r) = rest.split_at_checked(32).ok_or_else(|| bad("secret"))?;
                rest = r;
                Some(s.try_into().map_err(|_| bad("secret"))?)
            }
            _ => return Err(bad("secret flag")),
        };
        let mut bundles = Vec::new();
        while !rest.is_empty() {
            let (len, r) = rest
                .split_at_checked(4)
                .ok_or_else(|| bad("bundle length"))?;
            let len =
                u32::from_be_bytes(len.try_into().map_err(|_| bad("bundle length"))?) as usize;
            let (b, r) = r.split_at_checked(len).ok_or_else(|| bad("bundle"))?;
            bundles.push(Bytes::copy_from_slice(b));
            rest = r;
        }
        Ok(Self {
            group,
            admin,
            secret,
            bundles,
        })
    }
}

pub(crate) fn invite_hash(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"murmur/invite/v1")
        .chain_update(secret)
        .finalize()
        .into()
}
