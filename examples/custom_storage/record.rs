//! The journal's records: one change each, framed by its length.

use murmur::core::{storage::Cursor, Delivery, MessageHash, PubsubTopic, WakuMessage};
use prost::Message as _;

/// What the journal records, one change per record.
pub(crate) enum Record {
    Archived(Delivery),
    Queued(Delivery),
    /// Queued in the turn of the entry it replaces (`Enqueue::in_place_of`).
    InPlace(MessageHash, Delivery),
    Sent(MessageHash),
    Cursor(String, Cursor),
    State(String, Option<Vec<u8>>),
    Pruned(Vec<MessageHash>),
    /// Records written together, kept all or none.
    Batch(Vec<Record>),
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let text = |v: &mut Vec<u8>, s: &str| {
            v.extend_from_slice(&(s.len() as u32).to_be_bytes());
            v.extend_from_slice(s.as_bytes());
        };
        match self {
            Self::Archived(d) | Self::Queued(d) | Self::InPlace(_, d) => {
                v.push(match self {
                    Self::Archived(_) => 1,
                    Self::Queued(_) => 2,
                    _ => 8,
                });
                text(&mut v, d.pubsub_topic.as_str());
                if let Self::InPlace(old, _) = self {
                    v.extend_from_slice(&old.0);
                }
                v.extend_from_slice(&d.message.encode_to_vec());
            }
            Self::Sent(h) => {
                v.push(3);
                v.extend_from_slice(&h.0);
            }
            Self::Cursor(name, c) => {
                v.push(4);
                text(&mut v, name);
                v.extend_from_slice(&c.timestamp.to_be_bytes());
                v.extend_from_slice(&c.hash.0);
            }
            Self::State(name, value) => {
                v.push(5);
                text(&mut v, name);
                if let Some(value) = value {
                    v.push(1);
                    v.extend_from_slice(value);
                } else {
                    v.push(0);
                }
            }
            Self::Pruned(hashes) => {
                v.push(6);
                for h in hashes {
                    v.extend_from_slice(&h.0);
                }
            }
            Self::Batch(records) => {
                v.push(7);
                records.iter().for_each(|r| r.frame(&mut v));
            }
        }
        v
    }

    /// Appends the record behind its length, as the journal holds it.
    pub(crate) fn frame(&self, out: &mut Vec<u8>) {
        let bytes = self.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let (&tag, mut rest) = b.split_first()?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let mut text = || -> Option<String> {
            let n = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
            String::from_utf8(take(n)?.to_vec()).ok()
        };
        let hash = |b: &[u8]| Some(MessageHash(b.try_into().ok()?));
        Some(match tag {
            1 | 2 | 8 => {
                let topic: PubsubTopic = text()?.parse().ok()?;
                let old = if tag == 8 { hash(take(32)?) } else { None };
                let d = Delivery::new(topic, WakuMessage::decode(rest).ok()?);
                match (tag, old) {
                    (1, _) => Self::Archived(d),
                    (8, Some(old)) => Self::InPlace(old, d),
                    (8, None) => return None,
                    _ => Self::Queued(d),
                }
            }
            3 => Self::Sent(hash(rest)?),
            4 => {
                let name = text()?;
                let timestamp = i64::from_be_bytes(take(8)?.try_into().ok()?);
                Self::Cursor(
                    name,
                    Cursor {
                        timestamp,
                        hash: hash(take(32)?)?,
                    },
                )
            }
            5 => {
                let name = text()?;
                let present = take(1)?[0] == 1;
                Self::State(name, present.then(|| rest.to_vec()))
            }
            6 => Self::Pruned(rest.chunks_exact(32).filter_map(hash).collect()),
            7 => {
                let mut records = Vec::new();
                while let Some(len) = take(4) {
                    let n = u32::from_be_bytes(len.try_into().ok()?) as usize;
                    records.push(Self::decode(take(n)?)?);
                }
                Self::Batch(records)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_in_place_of_another_reads_back_as_written() {
        let message = WakuMessage::new("/c/1/a/proto", b"again".to_vec()).with_timestamp(7);
        let d = Delivery::new("/waku/2/rs/1/0".parse().unwrap(), message);
        let old = MessageHash([9; 32]);
        let bytes = Record::InPlace(old, d.clone()).encode();
        assert!(matches!(
            Record::decode(&bytes),
            Some(Record::InPlace(o, back)) if o == old && back == d
        ));
        // Cut short, it is no record at all.
        assert!(Record::decode(&bytes[..bytes.len() / 2]).is_none());
    }
}
