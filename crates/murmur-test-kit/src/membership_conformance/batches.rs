//! Several chat messages in one group plaintext (`Content::batch`): each
//! is held to what it would be alone.

use murmur_core::chat::MessageId;
use murmur_proto::chat::Content;
use prost::Message as _;

use super::*;

fn part(id: u8, channel: Option<&str>) -> Vec<u8> {
    Content {
        id: vec![id; 16],
        text: Some(format!("m{id}")),
        channel: channel.map(str::to_owned),
        ..Content::default()
    }
    .encode_to_vec()
}

async fn post_batch(by: &Device, group: GroupId, parts: Vec<Vec<u8>>) -> crypto::Sealed {
    let plaintext = Content {
        batch: parts,
        ..Content::default()
    }
    .encode_to_vec();
    by.groups
        .post
        .send(Post {
            group,
            plaintext: Bytes::from(plaintext),
        })
        .await
        .expect("stage alive")
        .expect("sealed")
}

/// The ids of the messages a plaintext holds, one or a batch.
fn ids(plaintext: &[u8]) -> Vec<u8> {
    let c = Content::decode(plaintext).expect("chat content");
    if c.batch.is_empty() {
        return vec![c.id[0]];
    }
    c.batch
        .iter()
        .map(|p| Content::decode(p.as_slice()).expect("a message").id[0])
        .collect()
}

/// A message the log deleted stays deleted inside a batch (a batch sent
/// before the deletion and read after it, from a store node): it is left
/// out and the others read, and a batch of nothing else is refused as
/// deleted. A batch with a message that names a channel is refused, since
/// the channel is checked on the plaintext and a channel's messages go
/// alone.
pub async fn a_batch_is_held_to_what_its_messages_alone_would_be<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let alice = device(&start).await;
    let bob = device(&start).await;
    let group = pair_in_a_group(&alice, &bob).await;
    let deleted = change(&alice, group, Action::Delete(MessageId([2; 16])))
        .await
        .expect("the owner deletes");
    follow(&alice, deleted, &[&alice, &bob]).await;

    let sealed = post_batch(
        &alice,
        group,
        vec![part(1, None), part(2, None), part(3, None)],
    )
    .await;
    let opened = open(&bob, &sealed).await.expect("opened");
    assert_eq!(ids(&opened.plaintext), [1, 3], "the deleted one left out");

    let sealed = post_batch(&alice, group, vec![part(2, None), part(4, None)]).await;
    let opened = open(&bob, &sealed).await.expect("opened");
    assert_eq!(
        ids(&opened.plaintext),
        [4],
        "one left: as it would be alone"
    );

    let sealed = post_batch(&alice, group, vec![part(2, None), part(2, None)]).await;
    assert_eq!(open(&bob, &sealed).await.err(), Some(Error::Deleted));

    let sealed = post_batch(&alice, group, vec![part(5, None), part(6, Some("general"))]).await;
    assert!(
        matches!(open(&bob, &sealed).await, Err(Error::Malformed(_))),
        "a channel's message in a batch"
    );

    // The chain moved on past each refusal: the next message reads.
    let sealed = post(&alice, group, "after").await.expect("sealed");
    assert!(open(&bob, &sealed).await.is_ok());
}
