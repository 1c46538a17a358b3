//! Opened plaintexts kept until the pipeline has handled them.
//!
//! A session step cannot be taken twice: once the ratchet moved past a
//! message and that was saved, the envelope never opens again. So the
//! plaintext is saved in the same transaction as the step, under
//! `journal/crypto/<hash>`, and deleted when the pipeline says it is done
//! ([`Handled`]). A node killed in between finds it at start
//! ([`Unhandled`]).
//!
//! The records live outside the device's prefix, so the vault's rollback
//! ledger does not cover them: a database writer who puts an old one back
//! gets a message delivered again, which the inbox drops by its id.

use murmur_core::{
    crypto::{Handled, Unhandled},
    MessageHash,
};

use super::*;

/// Where the kept plaintexts are.
pub(crate) const PREFIX: &str = "journal/crypto/";

/// `at(8) || sender(32) || device(16) || request(1) || plaintext`.
const HEAD: usize = 8 + 32 + 16 + 1;

fn name(hash: &MessageHash) -> String {
    format!("{PREFIX}{hash}")
}

/// The record that keeps `opened` (which carries a plaintext) until it is
/// handled, sealed with `vault`.
pub(crate) fn record(
    vault: &Vault,
    hash: &MessageHash,
    opened: &Opened,
) -> Option<(String, Option<Vec<u8>>)> {
    let plaintext = opened.plaintext.as_ref()?;
    let mut bytes = Vec::with_capacity(HEAD + plaintext.len());
    bytes.extend_from_slice(&murmur_core::now_nanos().to_be_bytes());
    bytes.extend_from_slice(&opened.sender.0);
    bytes.extend_from_slice(&opened.device.0);
    bytes.push(u8::from(opened.request));
    bytes.extend_from_slice(plaintext);
    let name = name(hash);
    let sealed = vault.seal(&name, &bytes);
    Some((name, Some(sealed)))
}

/// Reads a record back: when it was opened, its hash and what opened.
fn read(vault: &Vault, name: &str, stored: &[u8]) -> Result<(i64, MessageHash, Opened), String> {
    let hex = name
        .strip_prefix(PREFIX)
        .and_then(|h| h.strip_prefix("0x"))
        .ok_or("not a journal record")?;
    let hash = hex::decode(hex)
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .map(MessageHash)
        .ok_or("a bad hash in its name")?;
    let bytes = vault.open(name, stored).map_err(|e| e.to_string())?;
    if bytes.len() < HEAD {
        return Err("truncated".to_owned());
    }
    let at = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let sender = AccountId(bytes[8..40].try_into().expect("32 bytes"));
    let device = DeviceId(bytes[40..56].try_into().expect("16 bytes"));
    let opened = Opened::new(sender, device, Some(Bytes::copy_from_slice(&bytes[HEAD..])))
        .with_request(bytes[56] != 0);
    Ok((at, hash, opened))
}

impl Handler<Unhandled> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<(MessageHash, Opened)>, Error>>;

    fn handle(&mut self, _: Unhandled, ctx: &mut Context<Self>) -> Self::Result {
        let list = supervise::guard(self, ctx, |act, _| {
            act.storage
                .list_state
                .send(storage::ListState(PREFIX.to_owned()))
        });
        let list = match list {
            Ok(list) => list,
            Err(p) => return supervise::Reply::Now(Err(p.into())),
        };
        supervise::Reply::Wait(Box::pin(list.into_actor(self).map(|listed, act, _| {
            let listed = listed.map_err(state_error)?.map_err(state_error)?;
            let mut kept: Vec<_> = listed
                .iter()
                .filter_map(|(name, value)| match read(&act.journal, name, value) {
                    Ok(entry) => Some(entry),
                    Err(reason) => {
                        // Nothing else reads it: say so, and leave it
                        // for whoever looks at the database.
                        tracing::warn!(record = %name, %reason, "a kept plaintext does not open");
                        None
                    }
                })
                .collect();
            kept.sort_by_key(|(at, ..)| *at);
            Ok(kept
                .into_iter()
                .map(|(_, hash, opened)| (hash, opened))
                .collect())
        })))
    }
}

impl Handler<Handled> for Crypto {
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
