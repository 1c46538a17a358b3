//! Encryption at rest for the state the crypto and membership stages keep
//! in the database: keys and sessions leave the process only sealed with a
//! key derived from the node's secret, which the database never sees.
//!
//! `value = version(8) || nonce(12) || ChaCha20-Poly1305(k, nonce,
//! plaintext, ad = name || version)` with `k = HKDF(salt = VAULT_SALT,
//! ikm = node secret, info = VAULT_INFO)`. The entry's name is associated
//! data, so one entry cannot be passed off as another.
//!
//! Rollback: each value carries a version from a counter that only grows,
//! and each batch a stage writes ends with a tip record ([`Vault::commit`])
//! holding the counter and a keyed digest of every live entry's name and
//! version (an XOR of HKDF-Expand outputs under a key of the vault's, which
//! a database writer cannot compute). [`Vault::verify`] refuses state in
//! which any entry was replaced by an older copy of itself, deleted, or
//! added back, or whose tip is missing: a ratchet never steps from a state
//! it already left, which would reuse its keys and nonces. A copy of the
//! whole state, tip included, put back at once is not told apart from the
//! state it copies (docs/security.md says so).

use std::{collections::HashMap, fmt, sync::Mutex};

use chacha20poly1305::{
    aead::{Aead as _, Payload},
    ChaCha20Poly1305, KeyInit as _,
};
use hkdf::Hkdf;
use sha2_011::Sha256;
use zeroize::Zeroizing;

use crate::keys::random_bytes;

const VAULT_SALT: &[u8] = b"murmur/vault/salt/v1";
const VAULT_INFO: &[u8] = b"murmur/vault/v2";
const DIGEST_INFO: &[u8] = b"murmur/vault/digest/v1";

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Too short to hold a nonce and a tag.
    #[error("stored value {0:?} is truncated")]
    Truncated(String),
    /// Sealed with another key, altered, or stored under another name.
    #[error("stored value {0:?} does not open with this node's key")]
    Sealed(String),
    /// An entry was put back to an older copy of itself, deleted or added
    /// back behind the stage's back, or the tip record is missing.
    #[error("stored state was rolled back or altered ({0}); refusing to use it")]
    RolledBack(String),
}

/// What the vault knew before a batch was committed, of the entries the
/// batch touched (not a copy of the whole ledger, which grows with every
/// session and contact): hand it back with [`Vault::undo`] when the batch
/// was not written.
pub struct Undo {
    digest: [u8; 32],
    before: Vec<(String, Option<u64>)>,
}

/// What the vault knows of the entries written: each one's version, and
/// the digest over them.
#[derive(Default, Clone)]
struct Ledger {
    next: u64,
    live: HashMap<String, u64>,
    digest: [u8; 32],
}

/// The at-rest key. Wiped on drop, never printed.
pub struct Vault {
    cipher: ChaCha20Poly1305,
    digest_key: Hkdf<Sha256>,
    ledger: Mutex<Ledger>,
}

impl Vault {
    /// The vault of the node whose secret is `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        let hkdf = Hkdf::<Sha256>::new(Some(VAULT_SALT), secret);
        hkdf.expand(VAULT_INFO, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut digest = Zeroizing::new([0u8; 32]);
        hkdf.expand(DIGEST_INFO, digest.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            cipher: ChaCha20Poly1305::new(key.as_ref().into()),
            digest_key: Hkdf::<Sha256>::from_prk(digest.as_ref())
                .expect("32 bytes is a valid pseudorandom key"),
            ledger: Mutex::new(Ledger::default()),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ad(name: &str, version: u64) -> Vec<u8> {
        let mut ad = name.as_bytes().to_vec();
        ad.extend_from_slice(&version.to_be_bytes());
        ad
    }

    /// Seals `plaintext` to be stored under `name`, with the next version.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let version = {
            let mut ledger = self.ledger();
            ledger.next += 1;
            ledger.next
        };
        let nonce: [u8; 12] = random_bytes();
        let mut out = version.to_be_bytes().to_vec();
        out.extend_from_slice(&nonce);
        out.extend(
            self.cipher
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: plaintext,
                        aad: &Self::ad(name, version),
                    },
                )
                .expect("ChaCha20-Poly1305 encrypts any length this process can hold"),
        );
        out
    }

    /// Opens what was stored under `name`.
    pub fn open(&self, name: &str, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let version = version(stored).ok_or_else(|| VaultError::Truncated(name.to_owned()))?;
        if stored.len() < 8 + 12 + 16 {
            return Err(VaultError::Truncated(name.to_owned()));
        }
        let (nonce, sealed) = stored[8..].split_at(12);
        self.cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: &Self::ad(name, version),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Sealed(name.to_owned()))
    }

    /// The digest's part for one entry.
    fn part(&self, name: &str, version: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.digest_key
            .expand_multi_info(&[name.as_bytes(), &[0], &version.to_be_bytes()], &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    fn toggle(&self, digest: &mut [u8; 32], name: &str, version: u64) {
        for (d, p) in digest.iter_mut().zip(self.part(name, version)) {
            *d ^= p;
        }
    }

    /// Takes a batch about to be written (entries sealed with this vault,
    /// and deletions) into the ledger, and appends the tip record `tip`
    /// that [`Vault::verify`] checks the state against. Call it once per
    /// batch, just before writing it in one transaction.
    pub fn commit(&self, tip: &str, batch: &mut Vec<(String, Option<Vec<u8>>)>) -> Undo {
        batch.retain(|(name, _)| name != tip);
        let mut ledger = self.ledger();
        let mut undo = Undo {
            digest: ledger.digest,
            before: Vec::new(),
        };
        if batch.is_empty() {
            return undo;
        }
        let mut touched = std::collections::HashSet::new();
        let mut digest = ledger.digest;
        for (name, value) in batch.iter() {
            if touched.insert(name.as_str()) {
                undo.before
                    .push((name.clone(), ledger.live.get(name).copied()));
            }
            if let Some(old) = ledger.live.remove(name) {
                self.toggle(&mut digest, name, old);
            }
            if let Some(v) = value.as_deref().and_then(version) {
                self.toggle(&mut digest, name, v);
                ledger.live.insert(name.clone(), v);
            }
        }
        ledger.digest = digest;
        let mut body = ledger.next.to_be_bytes().to_vec();
        body.extend_from_slice(&digest);
        drop(ledger);
        let sealed = self.seal(tip, &body);
        batch.push((tip.to_owned(), Some(sealed)));
        undo
    }

    /// The batch [`Vault::commit`] took was not written: the ledger goes
    /// back to what storage holds (the counter keeps growing, so versions
    /// are never used twice).
    pub fn undo(&self, undo: Undo) {
        let mut ledger = self.ledger();
        for (name, version) in undo.before {
            match version {
                Some(version) => ledger.live.insert(name, version),
                None => ledger.live.remove(&name),
            };
        }
        ledger.digest = undo.digest;
    }

    /// Checks `entries` (all of a stage's, its tip `tip` among them) as
    /// read back from storage, and takes them as the ledger: refused if
    /// any entry is older than the tip says, missing, or added back, or if
    /// there are entries and no tip.
    pub fn verify(&self, tip: &str, entries: &[(String, Vec<u8>)]) -> Result<(), VaultError> {
        let mut live = HashMap::new();
        let mut digest = [0u8; 32];
        let mut highest = 0;
        let mut tip_value = None;
        for (name, value) in entries {
            if name == tip {
                tip_value = Some(value);
                continue;
            }
            let v = version(value).ok_or_else(|| VaultError::Truncated(name.clone()))?;
            self.toggle(&mut digest, name, v);
            highest = highest.max(v);
            live.insert(name.clone(), v);
        }
        let next = match tip_value {
            Some(value) => {
                let body = self.open(tip, value)?;
                let (next, kept) = body.split_at(8.min(body.len()));
                let next = u64::from_be_bytes(next.try_into().map_err(|_| {
                    VaultError::RolledBack("the tip record is malformed".to_owned())
                })?);
                if kept != digest.as_slice() {
                    return Err(VaultError::RolledBack(
                        "an entry is not the one last written".to_owned(),
                    ));
                }
                if highest > next {
                    return Err(VaultError::RolledBack(
                        "an entry is newer than its tip".to_owned(),
                    ));
                }
                next.max(version(value).unwrap_or(0))
            }
            None if live.is_empty() => 0,
            None => {
                return Err(VaultError::RolledBack(
                    "the tip record is missing".to_owned(),
                ))
            }
        };
        let mut ledger = self.ledger();
        ledger.next = ledger.next.max(next);
        ledger.live = live;
        ledger.digest = digest;
        Ok(())
    }
}

/// The version a stored value carries (not yet authenticated: opening it
/// does that).
fn version(stored: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(stored.get(..8)?.try_into().ok()?))
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_and_name() {
        let vault = Vault::new(b"node secret");
        let stored = vault.seal("crypto/session/a", b"state");
        assert_eq!(
            vault
                .open("crypto/session/a", &stored)
                .expect("opens")
                .as_slice(),
            b"state"
        );
        assert!(!stored.windows(5).any(|w| w == b"state"));
        assert!(vault.open("crypto/session/b", &stored).is_err());
        assert!(Vault::new(b"other")
            .open("crypto/session/a", &stored)
            .is_err());
        assert!(vault.open("crypto/session/a", &stored[..20]).is_err());
    }

    type Batch = Vec<(String, Option<Vec<u8>>)>;

    /// Writes `batch` into `db` as a transaction would.
    fn write(db: &mut std::collections::BTreeMap<String, Vec<u8>>, batch: Batch) {
        for (name, value) in batch {
            match value {
                Some(v) => db.insert(name, v),
                None => db.remove(&name),
            };
        }
    }

    fn entries(db: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
        db.clone().into_iter().collect()
    }

    #[test]
    fn an_entry_put_back_deleted_or_added_back_is_refused() {
        const TIP: &str = "s/tip";
        let vault = Vault::new(b"node secret");
        let mut db = std::collections::BTreeMap::new();
        let mut batch = vec![
            ("s/a".to_owned(), Some(vault.seal("s/a", b"a1"))),
            ("s/b".to_owned(), Some(vault.seal("s/b", b"b1"))),
        ];
        let _ = vault.commit(TIP, &mut batch);
        write(&mut db, batch);
        let a1 = db["s/a"].clone();
        let b1 = db["s/b"].clone();
        let tip1 = db[TIP].clone();
        let mut batch = vec![
            ("s/a".to_owned(), Some(vault.seal("s/a", b"a2"))),
            ("s/b".to_owned(), None),
        ];
        vault.commit(TIP, &mut batch);
        write(&mut db, batch);

        // What was written verifies, in a new process too.
        let fresh = Vault::new(b"node secret");
        fresh.verify(TIP, &entries(&db)).expect("as written");
        // One entry put back to an older copy of itself.
        let mut rolled = db.clone();
        rolled.insert("s/a".to_owned(), a1);
        assert!(matches!(
            fresh.verify(TIP, &entries(&rolled)),
            Err(VaultError::RolledBack(_))
        ));
        // A deleted entry added back.
        let mut back = db.clone();
        back.insert("s/b".to_owned(), b1);
        assert!(matches!(
            fresh.verify(TIP, &entries(&back)),
            Err(VaultError::RolledBack(_))
        ));
        // An entry deleted behind the stage's back.
        let mut gone = db.clone();
        gone.remove("s/a");
        assert!(matches!(
            fresh.verify(TIP, &entries(&gone)),
            Err(VaultError::RolledBack(_))
        ));
        // The tip deleted, or put back alone.
        let mut tipless = db.clone();
        tipless.remove(TIP);
        assert!(matches!(
            fresh.verify(TIP, &entries(&tipless)),
            Err(VaultError::RolledBack(_))
        ));
        let mut old_tip = db.clone();
        old_tip.insert(TIP.to_owned(), tip1);
        assert!(matches!(
            fresh.verify(TIP, &entries(&old_tip)),
            Err(VaultError::RolledBack(_))
        ));
        // Nothing stored: nothing to check.
        fresh.verify(TIP, &[]).expect("empty");
        // After verifying, the next batch goes on from what was read.
        fresh.verify(TIP, &entries(&db)).expect("as written");
        let mut batch = vec![("s/c".to_owned(), Some(fresh.seal("s/c", b"c1")))];
        fresh.commit(TIP, &mut batch);
        write(&mut db, batch);
        Vault::new(b"node secret")
            .verify(TIP, &entries(&db))
            .expect("a batch after a restart verifies");

        // A batch committed but never written (the save failed), undone:
        // the next batch's tip says what storage holds. It overwrote an
        // entry, added one twice and deleted one: each goes back.
        let mut lost = vec![
            ("s/c".to_owned(), Some(fresh.seal("s/c", b"c2"))),
            ("s/e".to_owned(), Some(fresh.seal("s/e", b"e1"))),
            ("s/a".to_owned(), None),
            ("s/e".to_owned(), Some(fresh.seal("s/e", b"e2"))),
        ];
        let undo = fresh.commit(TIP, &mut lost);
        fresh.undo(undo);
        let mut batch = vec![("s/d".to_owned(), Some(fresh.seal("s/d", b"d1")))];
        let _ = fresh.commit(TIP, &mut batch);
        write(&mut db, batch);
        Vault::new(b"node secret")
            .verify(TIP, &entries(&db))
            .expect("a failed save, undone, leaves no false rollback");
        // And the entries it touched are known as storage holds them: a
        // later batch that touches them again verifies too.
        let mut again = vec![
            ("s/c".to_owned(), Some(fresh.seal("s/c", b"c3"))),
            ("s/a".to_owned(), None),
            ("s/e".to_owned(), Some(fresh.seal("s/e", b"e3"))),
        ];
        let _ = fresh.commit(TIP, &mut again);
        write(&mut db, again);
        Vault::new(b"node secret")
            .verify(TIP, &entries(&db))
            .expect("what the undone batch touched, touched again");
    }
}
