//! Several chat messages in one envelope, as an attacker would craft them:
//! a contact's device that seals what it likes as a batch cannot slip one
//! bad part past the checks, make the victim read a message twice, forge
//! receipts inside a batch, send a batch of one, or cost it more than a
//! bounded batch; the session stays sound for the next honest message.
//! (Inside a group, the membership stage's conformance case
//! `a_batch_is_held_to_what_its_messages_alone_would_be` holds a batch's
//! messages to the log's deletions and refuses a channel's.)

use murmur::node::chat::{Body, MessageId};
use murmur_proto::chat::Content;
use prost::Message as _;

use super::{account, eventually, now, partition_topic, Attacker, WAIT};

fn text(id: u8, text: &str) -> Vec<u8> {
    super::message(id, text).encode_to_vec()
}

fn batch(parts: Vec<Vec<u8>>) -> Content {
    Content {
        batch: parts,
        ..Content::default()
    }
}

#[actix_rt::test]
async fn a_crafted_batch_is_read_whole_or_not_at_all_and_never_twice() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let alice = super::node(dirs[0].path(), None).await;
    let mut mallory = Attacker::new(dirs[1].path(), &alice).await;
    alice.add_contact(&mallory.code()).await.unwrap();
    mallory.meet(&alice).await;
    let to = account(&alice).await;
    let mut inbox = alice.inbox().await.unwrap();
    let refused = || async { alice.stats().await.unwrap().chat_refused };

    // Each of these hands on nothing, the good parts beside the bad
    // included, and is counted.
    let receipt = Content {
        receipts: vec![vec![9; 16]],
        ..Content::default()
    }
    .encode_to_vec();
    let nested = batch(vec![text(1, "inner")]).encode_to_vec();
    let bad = [
        // One alone goes as itself: a batch of one would carry what a
        // message alone may not.
        batch(vec![text(1, "good")]),
        batch(vec![text(1, "good"), b"\xff\xff".to_vec()]),
        batch(vec![text(1, "good"), receipt]),
        batch(vec![text(1, "good"), nested]),
        batch(vec![text(1, "good"); murmur::node::config::MAX_BATCH + 1]),
        Content {
            id: vec![2; 16],
            text: Some("both".to_owned()),
            ..batch(vec![text(1, "good")])
        },
    ];
    for (i, content) in bad.iter().enumerate() {
        let before = refused().await;
        mallory.send(to, content).await;
        eventually(&format!("crafted batch {i} refused"), || async {
            refused().await > before
        })
        .await;
    }

    // The same message twice in a batch, and the batch's envelope
    // published again: read once.
    let (out, _) = mallory
        .device
        .seal(
            murmur::crypto::AccountId(to.0),
            &batch(vec![text(3, "once"), text(3, "once"), text(4, "after")]).encode_to_vec(),
            now(),
        )
        .expect("a known contact");
    for _ in 0..2 {
        for o in &out {
            let topic = partition_topic(super::AccountId(o.to.0));
            mallory.wire.send(&topic, o.envelope.clone()).await.unwrap();
        }
    }
    let mut read = Vec::new();
    for _ in 0..2 {
        let m = inbox.recv_timeout(WAIT).await.expect("the good batch");
        read.push((m.id, m.body.clone()));
    }
    assert_eq!(
        read,
        vec![
            (MessageId([3; 16]), Body::Text("once".to_owned())),
            (MessageId([4; 16]), Body::Text("after".to_owned())),
        ],
        "the good batch, once; none of the crafted ones"
    );

    // The session is sound: an honest message after all that is read,
    // and nothing came between (the copy went out before it).
    mallory
        .send(
            to,
            &Content::decode(text(5, "still here").as_slice()).unwrap(),
        )
        .await;
    let next = inbox
        .recv_timeout(WAIT)
        .await
        .expect("read after the attack");
    assert_eq!(next.text(), Some("still here"));
}
