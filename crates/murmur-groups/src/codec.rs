//! Byte layouts: a version byte, then fixed-order fields with big-endian
//! integers. Decoding never panics and never allocates more than the input
//! can hold.

use crate::{Action, Event, EventId, JoinMode, MemberId, Role, MAX_NAME, MAX_PARENTS};

pub(crate) const EVENT_VERSION: u8 = 1;

pub use murmur_crypto::DecodeError;
pub(crate) use murmur_crypto::Reader;

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
