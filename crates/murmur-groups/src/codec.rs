//! Byte layouts: a version byte, then fixed-order fields with big-endian
//! integers. Decoding never panics and never allocates more than the input
//! can hold.

use crate::{Action, Event, EventId, JoinMode, MemberId, Role, MAX_NAME, MAX_PARENTS};

pub(crate) const EVENT_VERSION: u8 = 1;

/// Why bytes could not be read as an event or a stored group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated: {0} needs more bytes than are left")]
    Truncated(&'static str),
    /// A layout version this build does not read.
    #[error("unsupported {what} version {found}")]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        found: u8,
    },
    /// A field holds a value that cannot be valid.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        what: &'static str,
        version: u8,
    ) -> Result<Self, DecodeError> {
        let (&found, rest) = bytes.split_first().ok_or(DecodeError::Truncated(what))?;
        if found != version {
            return Err(DecodeError::Version { what, found });
        }
        Ok(Self(rest))
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn var(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// A count of items of at least `item_len` bytes each, checked against
    /// what is left before anything is allocated.
    pub(crate) fn count(
        &mut self,
        item_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_len) > self.0.len() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

pub(crate) fn put_var(v: &mut Vec<u8>, bytes: &[u8]) {
    v.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    v.extend_from_slice(bytes);
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader::new(bytes, "group event", EVENT_VERSION)?;
    let event = read_event(&mut r)?;
    r.finish()?;
    Ok(event)
}

fn read_event(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let group = EventId(r.array("group")?);
    let author = MemberId(r.array("author")?);
    let clock = r.u64("clock")?;
    let n = r.count(32, "parents")?;
    if n > MAX_PARENTS {
        return Err(DecodeError::Invalid("parent count"));
    }
    let parents = (0..n)
        .map(|_| r.array("parent").map(EventId))
        .collect::<Result<_, _>>()?;
    let tag = r.u8("action")?;
    let arg = r.var("action argument")?;
    let member = || {
        <[u8; 32]>::try_from(arg)
            .map(MemberId)
            .map_err(|_| DecodeError::Invalid("member"))
    };
    let id16 = || <[u8; 16]>::try_from(arg).map_err(|_| DecodeError::Invalid("message id"));
    let id32 = || <[u8; 32]>::try_from(arg).map_err(|_| DecodeError::Invalid("invite"));
    let name = || {
        if arg.len() > MAX_NAME {
            return Err(DecodeError::Invalid("name length"));
        }
        String::from_utf8(arg.to_vec()).map_err(|_| DecodeError::Invalid("name"))
    };
    let action = match tag {
        0 => Action::Create { name: name()? },
        1 => Action::Add(member()?),
        2 => Action::Remove(member()?),
        3 if arg.is_empty() => Action::Leave,
        4 => Action::Promote(member()?),
        5 => Action::Demote(member()?),
        6 => Action::Rename(name()?),
        7 => {
            let (m, r) = arg
                .split_at_checked(32)
                .ok_or(DecodeError::Invalid("role"))?;
            let role = match r {
                [t] => Role::from_tag(*t).ok_or(DecodeError::Invalid("role"))?,
                _ => return Err(DecodeError::Invalid("role")),
            };
            Action::SetRole(
                MemberId(m.try_into().map_err(|_| DecodeError::Invalid("member"))?),
                role,
            )
        }
        8 => Action::Ban(member()?),
        9 => Action::Unban(member()?),
        10 => Action::Channel(name()?),
        11 => Action::DropChannel(name()?),
        12 => Action::Pin(id16()?),
        13 => Action::Unpin(id16()?),
        14 => Action::Delete(id16()?),
        15 => match arg {
            [t] => {
                Action::JoinMode(JoinMode::from_tag(*t).ok_or(DecodeError::Invalid("join mode"))?)
            }
            _ => return Err(DecodeError::Invalid("join mode")),
        },
        16 => Action::Invite(id32()?),
        17 => Action::RevokeInvite(id32()?),
        _ => return Err(DecodeError::Invalid("action")),
    };
    Ok(Event {
        group,
        author,
        clock,
        parents,
        action,
        signature: r.array("signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Log, SigningKey};

    #[test]
    fn events_survive_their_wire_form_and_truncation_fails() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let (mut log, create) = Log::create(&alice, "name");
        let add = log
            .author(&alice, Action::Add(MemberId([9; 32])))
            .expect("well formed");
        for e in [create, add] {
            let bytes = e.to_bytes();
            assert_eq!(decode_event(&bytes), Ok(e));
            for cut in 0..bytes.len() {
                assert!(decode_event(&bytes[..cut]).is_err());
            }
        }
    }
}
