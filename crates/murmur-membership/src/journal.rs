//! Opened group messages kept until the pipeline has handled them.
//!
//! A chain step cannot be taken twice: once a member's chain moved past a
//! message and that was saved, the message never opens again (a replay).
//! So the plaintext is saved in the same transaction as the step, under
//! `journal/groups/<hash>`, and deleted when the pipeline says it is done
//! ([`Handled`]); a node killed in between finds it at start
//! ([`Unhandled`]). Outside the groups' prefix, so the vault's rollback
//! ledger does not cover it (an old record put back is a message delivered
//! again, which the inbox drops by its id).

use murmur_core::{
    groups::{Handled, Opened, Unhandled},
    MessageHash,
};

use super::*;

/// Where the kept plaintexts are.
const PREFIX: &str = "journal/groups/";

/// `at(8) || group(32) || sender(32) || device(16) || role(1) || plaintext`.
const HEAD: usize = 8 + 32 + 32 + 16 + 1;

fn name(hash: &MessageHash) -> String {
    format!("{PREFIX}{hash}")
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::Owner => 0,
        Role::Admin => 1,
        Role::Moderator => 2,
        _ => 3,
    }
}

fn role_from(byte: u8) -> Role {
    match byte {
        0 => Role::Owner,
        1 => Role::Admin,
        2 => Role::Moderator,
        _ => Role::Member,
    }
}

/// The record that keeps `opened` until it is handled, sealed with `vault`.
pub(crate) fn record(
    vault: &Vault,
    hash: &MessageHash,
    opened: &Opened,
) -> (String, Option<Vec<u8>>) {
    let mut bytes = Vec::with_capacity(HEAD + opened.plaintext.len());
    bytes.extend_from_slice(&murmur_core::now_nanos().to_be_bytes());
    bytes.extend_from_slice(&opened.group.0);
    bytes.extend_from_slice(&opened.sender.0);
    bytes.extend_from_slice(&opened.device.0);
    bytes.push(role_byte(opened.role));
    bytes.extend_from_slice(&opened.plaintext);
    let name = name(hash);
    let sealed = vault.seal(&name, &bytes);
    (name, Some(sealed))
}

/// Reads a record back: when it was opened, its hash and what opened.
fn read(vault: &Vault, name: &str, stored: &[u8]) -> Result<(i64, MessageHash, Opened), String> {
    let hash = name
        .strip_prefix(PREFIX)
        .and_then(|h| h.strip_prefix("0x"))
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .map(MessageHash)
        .ok_or("a bad hash in its name")?;
    let bytes = vault.open(name, stored).map_err(|e| e.to_string())?;
    if bytes.len() < HEAD {
        return Err("truncated".to_owned());
    }
    let at = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let opened = Opened::new(
        GroupId(bytes[8..40].try_into().expect("32 bytes")),
        AccountId(bytes[40..72].try_into().expect("32 bytes")),
        DeviceId(bytes[72..88].try_into().expect("16 bytes")),
        role_from(bytes[88]),
        Bytes::copy_from_slice(&bytes[HEAD..]),
    );
    Ok((at, hash, opened))
}

impl Handler<Unhandled> for Membership {
    type Result = supervise::Reply<Self, Result<Vec<(MessageHash, Opened)>, Error>>;

    fn handle(&mut self, _: Unhandled, ctx: &mut Context<Self>) -> Self::Result {
        supervise::act_future(self, ctx, |this, _| {
            let list = this
                .storage
                .list_state
                .send(storage::ListState(PREFIX.to_owned()));
            Box::pin(list.into_actor(this).map(|listed, act, _| {
                let listed = listed.map_err(state_error)?.map_err(state_error)?;
                let mut kept: Vec<_> = listed
                    .iter()
                    .filter_map(|(name, value)| match read(&act.vault, name, value) {
                        Ok(entry) => Some(entry),
                        Err(reason) => {
                            tracing::warn!(record = %name, %reason, "a kept group message does not open");
                            None
                        }
                    })
                    .collect();
                kept.sort_by_key(|(at, ..)| *at);
                Ok(kept.into_iter().map(|(_, hash, opened)| (hash, opened)).collect())
            }))
        })
    }
}

impl Handler<Handled> for Membership {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, Handled(hashes): Handled, ctx: &mut Context<Self>) -> Self::Result {
        let save = supervise::guard(self, ctx, |act, _| {
            let gone = hashes.iter().map(|h| (name(h), None)).collect();
            act.storage.save_state.send(storage::SaveState(gone))
        });
        Box::pin(async move {
            match save {
                Ok(save) => save.await.map_err(state_error)?.map_err(state_error),
                Err(p) => Err(p.into()),
            }
        })
    }
}
