//! murmur's chat content on the wire (`murmur_proto::chat::Content`):
//! what a pairwise or group plaintext carries, written and read.

use bytes::Bytes;
use murmur_proto::chat::Content;
use prost::Message as _;

use super::{
    id_from_slice, now_millis, random_id, AccountId, Body, ChatMessage, DeviceId, MessageId,
};

/// A message sent before, as the next one names it: the first eight bytes
/// of its id (enough within one conversation, and a quarter of the room
/// the whole id would take in a padded envelope), and when it was sent
/// (ms; on the wire on the oldest only, which is where a read starts).
pub(crate) type Earlier = (Prefix, u64);

/// The first eight bytes of a message id.
pub(crate) type Prefix = [u8; 8];

/// The first eight bytes of `id`.
pub(crate) fn prefix(id: MessageId) -> Prefix {
    let mut p = [0; 8];
    p.copy_from_slice(&id.0[..8]);
    p
}

pub(crate) fn encode(id: MessageId, to: AccountId, body: &Body, earlier: &[Earlier]) -> Bytes {
    Bytes::from(content(id, Some(to), body, earlier).encode_to_vec())
}

/// A group message's plaintext (the membership stage pads it).
pub(crate) fn encode_group(
    id: MessageId,
    channel: Option<&str>,
    body: &Body,
    earlier: &[Earlier],
) -> Bytes {
    let mut c = content(id, None, body, earlier);
    c.channel = channel.map(str::to_owned);
    Bytes::from(c.encode_to_vec())
}

fn content(id: MessageId, to: Option<AccountId>, body: &Body, earlier: &[Earlier]) -> Content {
    let mut content = Content {
        id: id.0.to_vec(),
        to: to.map(|to| to.0.to_vec()),
        sent_at: now_millis(),
        earlier: earlier
            .iter()
            .enumerate()
            .map(|(i, (id, sent_at))| murmur_proto::chat::Earlier {
                id: id.to_vec(),
                sent_at: if i == 0 { *sent_at } else { 0 },
            })
            .collect(),
        ..Content::default()
    };
    match body {
        Body::Text(t) => content.text = Some(t.clone()),
        Body::Typed { kind, data } => {
            content.kind = Some(kind.clone());
            content.data = Some(data.to_vec());
        }
        // Bodies a later version adds travel as the typed payload they
        // are built on; this version has none.
        _ => {}
    }
    content
}

pub(crate) fn encode_receipt(ids: &[MessageId]) -> Bytes {
    Bytes::from(
        Content {
            id: random_id().0.to_vec(),
            sent_at: now_millis(),
            receipts: ids.iter().map(|id| id.0.to_vec()).collect(),
            ..Content::default()
        }
        .encode_to_vec(),
    )
}

/// Several chat messages to one account in one plaintext: each part an
/// encoded message (what [`encode`] made), in the order they were sent.
pub(crate) fn encode_batch<'a>(parts: impl IntoIterator<Item = &'a Bytes>) -> Bytes {
    Bytes::from(
        Content {
            batch: parts.into_iter().map(|p| p.to_vec()).collect(),
            ..Content::default()
        }
        .encode_to_vec(),
    )
}

/// A message and the earlier ones its sender's device names.
pub(crate) type Read = (ChatMessage, Vec<Earlier>);

/// What a decrypted plaintext is.
pub(crate) enum Decoded {
    /// One message, or several its sender's device sealed together, in
    /// the order they were sent.
    Messages(Vec<Read>),
    Receipts(Vec<MessageId>),
    /// A private group's events or keys, for the membership stage.
    Group,
}

pub(crate) fn decode(
    sender: AccountId,
    device: DeviceId,
    me: AccountId,
    plaintext: &[u8],
) -> Result<Decoded, String> {
    let c = Content::decode(plaintext).map_err(|e| e.to_string())?;
    if c.group.is_some() {
        return Ok(Decoded::Group);
    }
    if !c.receipts.is_empty() {
        return Ok(Decoded::Receipts(
            c.receipts.iter().filter_map(|r| id_from_slice(r)).collect(),
        ));
    }
    if c.batch.is_empty() {
        return Ok(Decoded::Messages(vec![message(sender, device, me, c)?]));
    }
    // A sender seals a message alone as itself: a batch of one was made
    // to carry what a message alone may not (a group's channel, which the
    // membership stage checks on the plaintext).
    if c.batch.len() < 2 || c.batch.len() > crate::config::MAX_BATCH {
        return Err(format!("{} messages in one batch", c.batch.len()));
    }
    if !c.id.is_empty() || c.text.is_some() || c.kind.is_some() || c.data.is_some() {
        return Err("a batch that is also a message".to_owned());
    }
    // All or nothing: a batch with one malformed part was not made by a
    // murmur sender, and none of it is handed on.
    c.batch
        .iter()
        .map(|part| {
            let part = Content::decode(part.as_slice()).map_err(|e| e.to_string())?;
            if !part.batch.is_empty() || !part.receipts.is_empty() || part.group.is_some() {
                return Err("a batch holds chat messages only".to_owned());
            }
            message(sender, device, me, part)
        })
        .collect::<Result<_, _>>()
        .map(Decoded::Messages)
}

/// One chat message's content read.
fn message(sender: AccountId, device: DeviceId, me: AccountId, c: Content) -> Result<Read, String> {
    let id = id_from_slice(&c.id).ok_or("message id is not 16 bytes")?;
    let body = match (c.text, c.kind, c.data) {
        (Some(t), None, None) => Body::Text(t),
        (None, Some(kind), data) => Body::Typed {
            kind,
            data: Bytes::from(data.unwrap_or_default()),
        },
        _ => return Err("neither text nor a typed payload".to_owned()),
    };
    let to = match c.to {
        Some(to) => AccountId(
            to.as_slice()
                .try_into()
                .map_err(|_| "recipient is not 32 bytes")?,
        ),
        None => me,
    };
    let mut message = ChatMessage::new(id, sender, device, to, body).at(c.sent_at);
    message.channel = c.channel;
    // Only the oldest says when: the others were sent after it.
    let since = c
        .earlier
        .iter()
        .map(|e| e.sent_at)
        .find(|&t| t > 0)
        .unwrap_or(c.sent_at);
    let earlier = c
        .earlier
        .iter()
        .take(crate::pipeline::EARLIER)
        .filter_map(|e| Some((Prefix::try_from(e.id.as_slice()).ok()?, since)))
        .collect();
    Ok((message, earlier))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: AccountId = AccountId([1; 32]);
    const BOB: AccountId = AccountId([2; 32]);
    const DEVICE: DeviceId = DeviceId([3; 16]);

    fn read(plaintext: &[u8]) -> Result<Vec<Read>, String> {
        match decode(ALICE, DEVICE, BOB, plaintext)? {
            Decoded::Messages(m) => Ok(m),
            _ => Err("not messages".to_owned()),
        }
    }

    fn text(i: u8) -> (MessageId, Bytes) {
        let id = MessageId([i; 16]);
        (id, encode(id, BOB, &Body::Text(format!("m{i}")), &[]))
    }

    #[test]
    fn a_batch_reads_as_its_messages_in_order() {
        let parts: Vec<_> = (0..5).map(text).collect();
        let batch = encode_batch(parts.iter().map(|(_, p)| p));
        let read = read(&batch).unwrap();
        let ids: Vec<_> = read.iter().map(|(m, _)| m.id).collect();
        assert_eq!(ids, parts.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        assert_eq!(read[3].0.body, Body::Text("m3".to_owned()));
        assert!(read.iter().all(|(m, _)| m.sender == ALICE && m.to == BOB));
        // One message is not wrapped, and reads the same.
        assert_eq!(read_one(&parts[0].1), parts[0].0);
    }

    fn read_one(plaintext: &[u8]) -> MessageId {
        let mut read = read(plaintext).unwrap();
        assert_eq!(read.len(), 1);
        read.remove(0).0.id
    }

    #[test]
    fn a_batch_with_one_bad_part_hands_on_none_of_it() {
        let (_, good) = text(1);
        let receipt = encode_receipt(&[MessageId([9; 16])]);
        let nested = encode_batch([&good, &good]);
        let short_id = Bytes::from(
            Content {
                id: vec![1; 3],
                text: Some("x".to_owned()),
                ..Content::default()
            }
            .encode_to_vec(),
        );
        for bad in [
            Bytes::from_static(b"\xff\xff\xff"),
            receipt,
            nested,
            short_id,
        ] {
            let batch = encode_batch([&good, &bad, &good]);
            assert!(read(&batch).is_err(), "a batch holding {bad:?} was read");
        }
    }

    #[test]
    fn a_batch_of_one_past_the_limit_or_that_is_also_a_message_is_refused() {
        let (_, good) = text(1);
        let limit = crate::config::MAX_BATCH;
        assert_eq!(
            read(&encode_batch(vec![&good; limit])).unwrap().len(),
            limit
        );
        assert!(read(&encode_batch(vec![&good; limit + 1])).is_err());
        assert!(read(&encode_batch([&good])).is_err(), "a batch of one");
        let both = Content {
            id: vec![7; 16],
            text: Some("hidden".to_owned()),
            batch: vec![good.to_vec()],
            ..Content::default()
        };
        assert!(read(&both.encode_to_vec()).is_err());
    }
}
