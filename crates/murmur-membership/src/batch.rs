//! A group message that holds several chat messages (`Content::batch`,
//! the sender's messages that waited while the one before them was being
//! sealed): each is held to what it would be alone, since the checks on
//! the plaintext see the batch, not its messages.

use std::collections::BTreeSet;

use murmur_core::groups::Error;
use murmur_proto::chat::Content;
use prost::Message as _;

/// If `content` is a batch: refuses it if a message in it names a channel
/// (a channel's messages are sent alone, so that the channel is checked),
/// and leaves out those the log deleted. Answers the plaintext to hand on
/// if it changed: the batch without them, or the one message left as it
/// would have come alone. A batch of deleted messages only is refused as
/// deleted.
pub(crate) fn unbatch(
    content: &mut Content,
    deleted: &BTreeSet<[u8; 16]>,
) -> Result<Option<Vec<u8>>, Error> {
    if content.batch.is_empty() {
        return Ok(None);
    }
    let mut kept = Vec::with_capacity(content.batch.len());
    for bytes in &content.batch {
        let part = Content::decode(bytes.as_slice())
            .map_err(|e| Error::Malformed(format!("a message in a batch: {e}")))?;
        if part.channel.is_some() {
            return Err(Error::Malformed(
                "a channel's message in a batch".to_owned(),
            ));
        }
        if <[u8; 16]>::try_from(part.id.as_slice()).is_ok_and(|m| deleted.contains(&m)) {
            continue;
        }
        kept.push(bytes.clone());
    }
    Ok(match kept.len() {
        0 => return Err(Error::Deleted),
        n if n == content.batch.len() => None,
        1 => kept.pop(),
        _ => {
            content.batch = kept;
            Some(content.encode_to_vec())
        }
    })
}
