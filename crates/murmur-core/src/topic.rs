use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A content topic or pubsub topic that does not have the form Waku expects.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Not `/{application}/{version}/{name}/{encoding}`, optionally with a
    /// numeric generation first.
    #[error(
        "invalid content topic `{input}`: {reason}; expected /{{application}}/{{version}}/{{name}}/{{encoding}}, e.g. /murmur/1/chat/proto"
    )]
    Content {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not `/waku/2/rs/<cluster>/<shard>`.
    #[error(
        "invalid pubsub topic `{input}`: {reason}; expected /waku/2/rs/<cluster 0-65535>/<shard 0-1023>, e.g. /waku/2/rs/1/0"
    )]
    Pubsub {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// `/{application}/{version}/{name}/{encoding}`, with an optional generation
/// prefix (`/0/...`), as 23/WAKU2-TOPICS defines it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentTopic {
    raw: String,
    // Byte ranges of the application and version parts, which autosharding hashes.
    application: (usize, usize),
    version: (usize, usize),
}

impl ContentTopic {
    /// The topic as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The application part.
    pub fn application(&self) -> &str {
        &self.raw[self.application.0..self.application.1]
    }

    /// The version part.
    pub fn version(&self) -> &str {
        &self.raw[self.version.0..self.version.1]
    }
}

impl FromStr for ContentTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| TopicError::Content {
            input: s.to_owned(),
            reason,
        };
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| err("must start with `/`"))?;
        if s.chars().any(char::is_control) {
            return Err(err("has a control character"));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("has an empty part"));
        }
        let first = match parts.len() {
            4 => 0,
            5 => {
                if parts[0].parse::<u32>().is_err() {
                    return Err(err("the generation must be a number"));
                }
                if parts[0] != "0" {
                    return Err(err("only generation 0 is supported"));
                }
                1
            }
            _ => return Err(err("must have 4 parts (or 5 with a generation)")),
        };
        let offset = |i: usize| 1 + parts[..i].iter().map(|p| p.len() + 1).sum::<usize>();
        let app = offset(first);
        let ver = offset(first + 1);
        Ok(Self {
            raw: s.to_owned(),
            application: (app, app + parts[first].len()),
            version: (ver, ver + parts[first + 1].len()),
        })
    }
}

impl TryFrom<String> for ContentTopic {
    type Error = TopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ContentTopic> for String {
    fn from(t: ContentTopic) -> Self {
        t.raw
    }
}

impl fmt::Display for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentTopic({})", self.raw)
    }
}

/// One shard of one cluster (relay static sharding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// The cluster id, 0 to 65535; 1 is The Waku Network.
    pub cluster: u16,
    /// The shard index, 0 to 1023.
    pub index: u16,
}

impl Shard {
    /// The highest shard index a pubsub topic may name.
    pub const MAX_INDEX: u16 = 1023;

    /// The pubsub topic `/waku/2/rs/<cluster>/<index>`.
    pub fn pubsub_topic(self) -> PubsubTopic {
        PubsubTopic {
            raw: format!("/waku/2/rs/{}/{}", self.cluster, self.index).into(),
            shard: self,
        }
    }
}

/// A relay pubsub topic in the static-shard form `/waku/2/rs/<cluster>/<shard>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PubsubTopic {
    // Shared: topics are cloned into every delivery and publish.
    raw: Arc<str>,
    shard: Shard,
}

impl PubsubTopic {
    /// The topic as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The cluster and shard it names.
    pub fn shard(&self) -> Shard {
        self.shard
    }
}

impl FromStr for PubsubTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| TopicError::Pubsub {
            input: s.to_owned(),
            reason,
        };
        let rest = s
            .strip_prefix("/waku/2/rs/")
            .ok_or_else(|| err("must start with /waku/2/rs/"))?;
        let (cluster, index) = rest
            .split_once('/')
            .ok_or_else(|| err("missing the shard"))?;
        let decimal = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !decimal(cluster) || !decimal(index) {
            return Err(err("cluster and shard must be decimal numbers"));
        }
        let cluster = cluster
            .parse::<u16>()
            .map_err(|_| err("the cluster must be at most 65535"))?;
        let index = index
            .parse::<u16>()
            .ok()
            .filter(|i| *i <= Shard::MAX_INDEX)
            .ok_or_else(|| err("the shard must be at most 1023"))?;
        Ok(Shard { cluster, index }.pubsub_topic())
    }
}

impl TryFrom<String> for PubsubTopic {
    type Error = TopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PubsubTopic> for String {
    fn from(t: PubsubTopic) -> Self {
        t.raw.to_string()
    }
}

impl fmt::Display for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubsubTopic({})", self.raw)
    }
}

/// Which shard of a cluster a content topic travels on.
///
/// Autosharding first (23/WAKU2-TOPICS): the shard every Waku node computes
/// for the topic, so that murmur meets js-waku, go-waku and nwaku on it. A
/// node that serves only some shards ([`Sharding::serving`]) never places a
/// topic outside them: a topic whose autoshard it does not serve goes on one
/// of its own shards instead, picked by the same hash. Networks with static
/// shards, such as Status's cluster 16, work this way: nodes relay only the
/// shards the network runs, and a topic sent to any other shard would cross
/// none of its relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharding {
    /// The cluster.
    pub cluster: u16,
    /// How many shards the cluster autoshards over (8 on The Waku Network).
    pub num_shards: u16,
    // Shared: the sharding is cloned into every stage that places topics.
    placement: Option<Arc<Placement>>,
}

#[derive(Debug, PartialEq, Eq)]
struct Placement {
    /// Sorted, without repeats.
    served: Vec<u16>,
    /// In the order configured: the hash picks among them by position.
    fallback: Vec<u16>,
}

impl Sharding {
    /// Autosharding over `num_shards` shards of `cluster`.
    ///
    /// # Panics
    ///
    /// If `num_shards` is 0: a programming error, not an input one; configuration
    /// is validated before it gets here.
    pub fn auto(cluster: u16, num_shards: u16) -> Self {
        assert!(num_shards > 0, "a cluster has at least one shard");
        Self {
            cluster,
            num_shards,
            placement: None,
        }
    }

    /// The same autosharding on a node that serves only `served`: a topic
    /// whose autoshard is not among them goes on one of `fallback` (the
    /// served shards if empty), which must all be served.
    pub fn serving(self, served: &[u16], fallback: &[u16]) -> Result<Self, ShardingError> {
        if let Some(&index) = served
            .iter()
            .chain(fallback)
            .find(|i| **i > Shard::MAX_INDEX)
        {
            return Err(ShardingError::OutOfRange { index });
        }
        let mut sorted = served.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Err(ShardingError::NoShards);
        }
        if let Some(&index) = fallback.iter().find(|i| sorted.binary_search(i).is_err()) {
            return Err(ShardingError::FallbackNotServed { index });
        }
        let fallback = if fallback.is_empty() {
            sorted.clone()
        } else {
            fallback.to_vec()
        };
        let every = sorted.len() == usize::from(self.num_shards)
            && sorted.iter().copied().eq(0..self.num_shards);
        Ok(Self {
            // Serving the whole autosharding range places nothing elsewhere.
            placement: (!every).then(|| {
                Arc::new(Placement {
                    served: sorted,
                    fallback,
                })
            }),
            ..self
        })
    }

    /// The shard of `topic`: `sha256(application || version)`, last 8 bytes as
    /// a big-endian integer, modulo the number of shards; if this node does
    /// not serve that shard, the same integer modulo the number of fallback
    /// shards picks one of those.
    pub fn shard(&self, topic: &ContentTopic) -> Shard {
        let digest = Sha256::new()
            .chain_update(topic.application())
            .chain_update(topic.version())
            .finalize();
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&digest[24..32]);
        let hash = u64::from_be_bytes(tail);
        // The modulus is a u16, so the index fits.
        let auto = (hash % u64::from(self.num_shards)) as u16;
        let index = match &self.placement {
            Some(p) if p.served.binary_search(&auto).is_err() => {
                // Not empty: `serving` checked it.
                p.fallback[(hash % p.fallback.len() as u64) as usize]
            }
            _ => auto,
        };
        Shard {
            cluster: self.cluster,
            index,
        }
    }

    /// The pubsub topic of `topic`'s shard.
    pub fn pubsub_topic(&self, topic: &ContentTopic) -> PubsubTopic {
        self.shard(topic).pubsub_topic()
    }

    /// Every shard of the cluster's autosharding.
    pub fn shards(&self) -> impl Iterator<Item = Shard> + '_ {
        (0..self.num_shards).map(|index| Shard {
            cluster: self.cluster,
            index,
        })
    }
}

/// A shard placement that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShardingError {
    /// A node that serves no shard has nowhere to place a topic.
    #[error("a node must serve at least one shard")]
    NoShards,
    /// Shards are numbered 0 to 1023.
    #[error("shard {index} is over 1023")]
    OutOfRange {
        /// The shard given.
        index: u16,
    },
    /// Topics placed on a shard the node does not relay would reach no one.
    #[error("shard {index} is a fallback for topics but is not among the shards served")]
    FallbackNotServed {
        /// The shard given.
        index: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(s: &str) -> ContentTopic {
        s.parse().unwrap()
    }

    #[test]
    fn autosharding_vectors_of_the_spec_and_js_waku() {
        let twn = Sharding::auto(1, 8);
        for (topic, shard) in [
            ("/toychat/2/huilong/proto", 3),
            ("/myapp/1/latest/proto", 0),
            ("/waku/2/content/test.js", 1),
            ("/statusim/1/community/cbor", 4),
            ("/app/22/sometopic/someencoding", 2),
            ("/app/27/sometopic/someencoding", 5),
            ("/app/20/sometopic/someencoding", 7),
            ("/app/29/sometopic/someencoding", 6),
            ("/0/toychat/2/huilong/proto", 3),
        ] {
            assert_eq!(twn.shard(&ct(topic)).index, shard, "{topic}");
        }
        assert_eq!(
            twn.pubsub_topic(&ct("/test/1/hash/proto")).as_str(),
            "/waku/2/rs/1/4"
        );
    }

    #[test]
    fn a_node_serving_some_shards_places_every_topic_on_them() {
        let topics: Vec<ContentTopic> = (0..200)
            .map(|i| ct(&format!("/app{i}/1/chat/proto")))
            .collect();
        let twn = Sharding::auto(1, 8);
        // Serving every shard changes nothing.
        let all = twn.clone().serving(&[7, 6, 5, 4, 3, 2, 1, 0], &[]).unwrap();
        assert_eq!(all, twn);
        // A topic whose autoshard is served stays there: js-waku meets it.
        let some = twn.clone().serving(&[4, 0], &[]).unwrap();
        for t in &topics {
            let auto = twn.shard(t).index;
            let placed = some.shard(t).index;
            assert!(placed == 0 || placed == 4, "{t}");
            if auto == 0 || auto == 4 {
                assert_eq!(placed, auto, "{t}");
            }
        }
        // Status: cluster 16 relays 32 and 64; topics go on 64 only.
        let status = Sharding::auto(16, 8).serving(&[32, 64], &[64]).unwrap();
        for t in &topics {
            assert_eq!(status.pubsub_topic(t).as_str(), "/waku/2/rs/16/64", "{t}");
        }
        // Two fallback shards both get topics, the same ones on every node.
        let two = Sharding::auto(16, 8).serving(&[32, 64], &[]).unwrap();
        let on_32 = topics.iter().filter(|t| two.shard(t).index == 32).count();
        assert!((50..150).contains(&on_32), "{on_32} of 200 on shard 32");
    }

    #[test]
    fn impossible_placements_are_refused() {
        let twn = || Sharding::auto(1, 8);
        assert_eq!(twn().serving(&[], &[]), Err(ShardingError::NoShards));
        assert_eq!(
            twn().serving(&[1024], &[]),
            Err(ShardingError::OutOfRange { index: 1024 })
        );
        assert_eq!(
            twn().serving(&[32], &[64]),
            Err(ShardingError::FallbackNotServed { index: 64 })
        );
    }

    #[test]
    fn content_topic_parts() {
        let t = ct("/0/murmur/1/chat/proto");
        assert_eq!(t.application(), "murmur");
        assert_eq!(t.version(), "1");
        let t = ct("/murmur/12/chat/proto");
        assert_eq!((t.application(), t.version()), ("murmur", "12"));
    }

    #[test]
    fn malformed_content_topics() {
        for bad in [
            "",
            "murmur/1/chat/proto",
            "/murmur/1/chat",
            "/murmur//chat/proto",
            "/x/murmur/1/chat/proto",
            "/1/murmur/1/chat/proto",
            "/a/b/c/d/e/f",
            "/murmur/1/chat/proto/",
            "/murmur/1/ch\0at/proto",
            "/murmur/1/chat/proto\n",
        ] {
            let err = bad.parse::<ContentTopic>().unwrap_err();
            assert!(
                err.to_string().contains("expected /{application}"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn pubsub_topics() {
        let t: PubsubTopic = "/waku/2/rs/16/1023".parse().unwrap();
        assert_eq!(
            t.shard(),
            Shard {
                cluster: 16,
                index: 1023
            }
        );
        for bad in [
            "/waku/2/default-waku/proto",
            "/waku/2/rs/1",
            "/waku/2/rs/1/",
            "/waku/2/rs/65536/0",
            "/waku/2/rs/1/1024",
            "/waku/2/rs/-1/0",
            "/waku/2/rs/1/0/x",
            "/waku/2/rs/+1/0",
        ] {
            let err = bad.parse::<PubsubTopic>().unwrap_err();
            assert!(
                err.to_string().contains("expected /waku/2/rs/"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn serde_validates() {
        let ok: PubsubTopic = serde_json::from_str("\"/waku/2/rs/0/0\"").unwrap();
        assert_eq!(ok.shard().index, 0);
        assert!(serde_json::from_str::<ContentTopic>("\"nope\"").is_err());
    }
}
