//! DNS discovery (EIP-1459), as nwaku's `--dns-discovery-url` reads it: a
//! list of node records published as a tree of TXT records under a domain,
//! its root signed with the key the `enrtree://` URL names.
//!
//! - The root, at the domain: `enrtree-root:v1 e=<hash> l=<hash> seq=<n>
//!   sig=<signature>`, signed (secp256k1, over Keccak-256 of the text
//!   before ` sig=`) by the URL's key.
//! - Every other entry at `<hash>.<domain>`, its hash the base32 of the
//!   first 16 bytes of Keccak-256 of its text, checked: a branch
//!   (`enrtree-branch:<hash>,…`) or a record (`enr:<base64url>`).
//! - Links to other trees (`l=`) are not followed: a tree that wants its
//!   nodes found lists them.
//!
//! Resolving is behind [`Txt`], so that tests and integrators can answer
//! from their own tree; [`SystemDns`] asks the system's name servers.

use std::collections::{BTreeSet, VecDeque};

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use enr::k256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
use futures::future::BoxFuture;
use sha3::{Digest, Keccak256};

use crate::enr::Record;

/// Entries visited per tree at most (nim-dnsdisc's bound): a tree that
/// branches without end costs no more.
pub const MAX_ENTRIES: usize = 100;

/// Why a tree could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not an `enrtree://<key>@<domain>` URL.
    #[error("not an enrtree URL ({0})")]
    Url(String),
    /// The name could not be resolved.
    #[error("{name}: {reason}")]
    Lookup {
        /// The name asked for.
        name: String,
        /// Why.
        reason: String,
    },
    /// The root is missing or malformed.
    #[error("no valid tree root at {0}")]
    Root(String),
    /// The root's signature is not the URL key's.
    #[error("the tree root at {0} is not signed by the URL's key")]
    Signature(String),
}

/// A tree's location and the key that signs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    key: VerifyingKey,
    domain: String,
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "enrtree://…@{}", self.domain)
    }
}

impl std::str::FromStr for Url {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Url(why.to_owned());
        let rest = url
            .strip_prefix("enrtree://")
            .ok_or_else(|| bad("it must start with enrtree://"))?;
        let (key, domain) = rest
            .split_once('@')
            .ok_or_else(|| bad("it must be enrtree://<key>@<domain>"))?;
        let key = BASE32_NOPAD
            .decode(key.as_bytes())
            .map_err(|_| bad("the key is not base32"))?;
        let key = VerifyingKey::from_sec1_bytes(&key)
            .map_err(|_| bad("the key is not a compressed secp256k1 key"))?;
        if domain.is_empty() || domain.contains(['/', ' ']) {
            return Err(bad("the domain is not a name"));
        }
        Ok(Self {
            key,
            domain: domain.trim_end_matches('.').to_owned(),
        })
    }
}

impl Url {
    /// The domain of the tree's root.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

/// Answers TXT queries: each TXT record's strings joined into one.
pub trait Txt: Send + Sync {
    /// The TXT records at `name`.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>>;
}

/// The system's name servers (`/etc/resolv.conf`).
pub struct SystemDns(hickory_resolver::TokioResolver);

impl SystemDns {
    /// A resolver with the system's configuration.
    pub fn new() -> Result<Self, Error> {
        let lookup = |e: &dyn std::fmt::Display| Error::Lookup {
            name: "the system resolver".to_owned(),
            reason: e.to_string(),
        };
        let resolver = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| lookup(&e))?
            .build()
            .map_err(|e| lookup(&e))?;
        Ok(Self(resolver))
    }
}

impl Txt for SystemDns {
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        Box::pin(async move {
            let lookup = self.0.txt_lookup(name).await.map_err(|e| Error::Lookup {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect())
        })
    }
}

/// The hash an entry is published under.
pub fn entry_hash(text: &str) -> String {
    BASE32_NOPAD.encode(&Keccak256::digest(text.as_bytes())[..16])
}

/// Reads the tree at `url`: the node records it lists, the root's
/// signature and every entry's hash checked, [`MAX_ENTRIES`] visited at
/// most. Entries that fail a check, or cannot be fetched, are skipped.
pub async fn resolve(url: &Url, txt: &dyn Txt) -> Result<Vec<Record>, Error> {
    let root = txt
        .txt(&url.domain)
        .await?
        .into_iter()
        .find(|t| t.starts_with("enrtree-root:v1 "))
        .ok_or_else(|| Error::Root(url.domain.clone()))?;
    let records_root = verify_root(&root, url)?;
    let mut queue = VecDeque::from([records_root]);
    let mut visited = BTreeSet::new();
    let mut records = Vec::new();
    while let Some(hash) = queue.pop_front() {
        if visited.len() >= MAX_ENTRIES || !visited.insert(hash.clone()) {
            continue;
        }
        let name = format!("{hash}.{}", url.domain);
        let entries = match txt.txt(&name).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(%name, error = %e, "tree entry not read");
                continue;
            }
        };
        let Some(entry) = entries
            .into_iter()
            .find(|e| entry_hash(e).eq_ignore_ascii_case(&hash))
        else {
            tracing::debug!(%name, "no entry there hashes to its name");
            continue;
        };
        if let Some(children) = entry.strip_prefix("enrtree-branch:") {
            // No more queued than can be visited: a branch of thousands
            // of names costs no more memory than an honest one.
            let room = MAX_ENTRIES.saturating_sub(queue.len());
            queue.extend(
                children
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .take(room)
                    .map(str::to_owned),
            );
        } else if let Some(record) = entry.strip_prefix("enr:") {
            match BASE64URL_NOPAD
                .decode(record.as_bytes())
                .ok()
                .and_then(|rlp| crate::enr::decode(&rlp))
            {
                Some(record) => records.push(record),
                None => tracing::debug!(%name, "a malformed or badly signed record"),
            }
        }
    }
    Ok(records)
}

/// Checks the root's signature; answers the hash of the records' subtree.
fn verify_root(root: &str, url: &Url) -> Result<String, Error> {
    let malformed = || Error::Root(url.domain.clone());
    let (signed, sig) = root.split_once(" sig=").ok_or_else(malformed)?;
    let sig = BASE64URL_NOPAD
        .decode(sig.trim().as_bytes())
        .map_err(|_| malformed())?;
    if sig.len() != 65 {
        return Err(malformed());
    }
    let signature = Signature::from_slice(&sig[..64]).map_err(|_| malformed())?;
    url.key
        .verify_prehash(&Keccak256::digest(signed.as_bytes()), &signature)
        .map_err(|_| Error::Signature(url.domain.clone()))?;
    signed
        .split_whitespace()
        .find_map(|field| field.strip_prefix("e="))
        .map(str::to_owned)
        .ok_or_else(malformed)
}

/// TXT records held in memory, name to texts: a tree answered without a
/// DNS server (a test's, or one an integrator ships with its app).
#[derive(Debug, Clone, Default)]
pub struct Zone(pub std::collections::BTreeMap<String, Vec<String>>);

impl Txt for Zone {
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        Box::pin(async move {
            self.0
                .get(name.trim_end_matches('.'))
                .cloned()
                .ok_or_else(|| Error::Lookup {
                    name: name.to_owned(),
                    reason: "no such name".to_owned(),
                })
        })
    }
}

/// Hashes per branch entry: a TXT string holds 255 bytes, and 12 hashes of
/// 26 characters with the prefix fit in two.
const BRANCH: usize = 12;

/// A tree listing `records` under `domain`, sequence `seq`, signed with
/// `key` (secp256k1): its `enrtree://` URL and the TXT records to publish
/// (to a DNS zone, or a [`Zone`]).
pub fn publish(
    key: &libp2p::identity::Keypair,
    domain: &str,
    records: &[Record],
    seq: u64,
) -> Result<(String, Zone), Error> {
    use enr::k256::ecdsa::{signature::hazmat::PrehashSigner, SigningKey};
    let not_secp = || Error::Url("a tree is signed with a secp256k1 key".to_owned());
    let secret = key
        .clone()
        .try_into_secp256k1()
        .map_err(|_| not_secp())?
        .secret()
        .to_bytes();
    let signer = SigningKey::from_slice(&secret).map_err(|_| not_secp())?;
    let mut zone = Zone::default();
    let mut add = |text: String| {
        let hash = entry_hash(&text);
        zone.0.insert(format!("{hash}.{domain}"), vec![text]);
        hash
    };
    let mut level: Vec<String> = records
        .iter()
        .map(|r| {
            add(format!(
                "enr:{}",
                BASE64URL_NOPAD.encode(&crate::enr::encode(r))
            ))
        })
        .collect();
    loop {
        let branches: Vec<String> = level
            .chunks(BRANCH)
            .map(|hashes| add(format!("enrtree-branch:{}", hashes.join(","))))
            .collect();
        if branches.len() <= 1 {
            level = branches;
            break;
        }
        level = branches;
    }
    let records_root = level
        .pop()
        .unwrap_or_else(|| add("enrtree-branch:".to_owned()));
    let links_root = add("enrtree-branch:".to_owned());
    let signed = format!("enrtree-root:v1 e={records_root} l={links_root} seq={seq}");
    let signature: Signature = signer
        .sign_prehash(&Keccak256::digest(signed.as_bytes()))
        .expect("a 32-byte digest");
    // r || s || v; readers check r and s.
    let mut sig = signature.to_bytes().to_vec();
    sig.push(0);
    zone.0.insert(
        domain.to_owned(),
        vec![format!("{signed} sig={}", BASE64URL_NOPAD.encode(&sig))],
    );
    let key = BASE32_NOPAD.encode(&signer.verifying_key().to_sec1_bytes());
    Ok((format!("enrtree://{key}@{domain}"), zone))
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn record(port: u16) -> Record {
        let key = Keypair::generate_secp256k1();
        crate::enr::build(
            &key,
            &[format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
            crate::enr::capability::RELAY | crate::enr::capability::STORE,
            1,
            &[4],
            None,
        )
        .unwrap()
    }

    fn signer() -> Keypair {
        Keypair::generate_secp256k1()
    }

    fn ids(records: &[Record]) -> BTreeSet<Option<libp2p::PeerId>> {
        records.iter().map(crate::enr::peer_id).collect()
    }

    #[tokio::test]
    async fn reads_every_record_of_a_signed_tree_of_several_levels() {
        let signer = signer();
        let records: Vec<Record> = (0..30).map(|i| record(1000 + i)).collect();
        let (url, zone) = publish(&signer, "nodes.example.org", &records, 7).unwrap();
        let found = resolve(&url.parse().unwrap(), &zone).await.unwrap();
        assert_eq!(ids(&found), ids(&records));
        assert!(
            zone.0.len() > 30 + 3,
            "30 records need more than one branch"
        );
    }

    #[tokio::test]
    async fn a_root_signed_by_another_key_and_an_entry_that_is_not_its_hash_are_refused() {
        let (signer, other) = (signer(), signer());
        let a = record(1000);
        let (url, _) = publish(&signer, "nodes.example.org", std::slice::from_ref(&a), 1).unwrap();
        let (_, of_other) =
            publish(&other, "nodes.example.org", std::slice::from_ref(&a), 1).unwrap();
        assert_eq!(
            resolve(&url.parse().unwrap(), &of_other).await,
            Err(Error::Signature("nodes.example.org".to_owned()))
        );

        // A record swapped for another under the same name is skipped.
        let (url, mut zone) =
            publish(&signer, "nodes.example.org", std::slice::from_ref(&a), 1).unwrap();
        let leaf = format!("enr:{}", BASE64URL_NOPAD.encode(&crate::enr::encode(&a)));
        let name = format!("{}.nodes.example.org", entry_hash(&leaf));
        let swapped = format!(
            "enr:{}",
            BASE64URL_NOPAD.encode(&crate::enr::encode(&record(3000)))
        );
        zone.0.insert(name, vec![swapped]);
        assert!(resolve(&url.parse().unwrap(), &zone)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_huge_tree_costs_a_bounded_walk() {
        let signer = signer();
        let records: Vec<Record> = (0..300).map(|i| record(1000 + i)).collect();
        let (url, zone) = publish(&signer, "huge.example.org", &records, 1).unwrap();
        let found = resolve(&url.parse().unwrap(), &zone).await.unwrap();
        assert!(
            !found.is_empty() && found.len() < MAX_ENTRIES,
            "{}",
            found.len()
        );
    }

    #[tokio::test]
    async fn a_missing_root_is_an_error() {
        let (url, _) = publish(&signer(), "nodes.example.org", &[], 1).unwrap();
        assert!(matches!(
            resolve(&url.parse().unwrap(), &Zone::default()).await,
            Err(Error::Lookup { .. })
        ));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for bad in [
            "http://x",
            "enrtree://nokey",
            "enrtree://!!!@x.org",
            "enrtree://AAAA@x.org",
        ] {
            assert!(matches!(bad.parse::<Url>(), Err(Error::Url(_))), "{bad}");
        }
        let known = "enrtree://AIRVQ5DDA4FFWLRBCHJWUWOO6X6S4ZTZ5B667LQ6AJU6PEYDLRD5O@sandbox.waku.nodes.status.im";
        assert_eq!(
            known.parse::<Url>().unwrap().domain(),
            "sandbox.waku.nodes.status.im"
        );
    }
}
