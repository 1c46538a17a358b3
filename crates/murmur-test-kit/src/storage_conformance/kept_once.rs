//! A message is kept once: the archive by hash (and never an ephemeral
//! one), and the outbox by hash, until the network took it.

use std::future::Future;

use murmur_core::{
    storage::{self, Enqueue, MarkSent, Pending, SaveAll, SaveRaw},
    store::Query,
    MessageHash,
};

use super::{delivery, hashes, query, save};

/// A hash is stored once; ephemeral messages are never stored.
pub async fn saves_once_and_skips_ephemeral<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let d = delivery(1, "/c/1/a/proto", 5, 1);
    assert!(save(&store, &d).await);
    assert!(!save(&store, &d).await, "a duplicate is not new");
    let mut ephemeral = delivery(1, "/c/1/a/proto", 6, 2);
    ephemeral.message.ephemeral = Some(true);
    assert!(!save(&store, &ephemeral).await);
    let page = query(&store, Query::content(None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(hashes(&page), vec![d.hash]);
}

/// Messages archived in one request are kept as one by one: each answered
/// in order, a copy of one archived before or earlier in the request not
/// new, an ephemeral one never stored; requests of one message and of many
/// asked for together each answered for their own; an empty request
/// answers nothing.
pub async fn saves_many_in_one_request<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let before = delivery(1, "/c/1/a/proto", 1, 1);
    assert!(save(&store, &before).await);
    let a = delivery(1, "/c/1/a/proto", 2, 2);
    let b = delivery(2, "/c/2/b/proto", 3, 3);
    let mut ephemeral = delivery(1, "/c/1/a/proto", 4, 4);
    ephemeral.message.ephemeral = Some(true);
    let all = vec![a.clone(), before.clone(), b.clone(), a.clone(), ephemeral];
    let new = store
        .save_all
        .send(SaveAll(all))
        .await
        .expect("store alive")
        .expect("save succeeds");
    assert_eq!(new, [true, false, true, false, false]);
    let page = query(&store, Query::content(None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3, "each archived once");
    assert_eq!(hashes(&page), vec![before.hash, a.hash, b.hash]);
    let b_kept = page.messages.iter().find(|m| m.hash == b.hash);
    assert_eq!(
        b_kept.and_then(|m| m.message.as_ref()),
        Some(&b.message),
        "byte for byte"
    );
    // Requests of both kinds asked for together (so in one write of a
    // group committing stage): each answered for its own messages.
    let (c, d) = (
        delivery(1, "/c/1/a/proto", 5, 5),
        delivery(1, "/c/1/a/proto", 6, 6),
    );
    let one = store.save_raw.send(SaveRaw(c.clone()));
    let many = store
        .save_all
        .send(SaveAll(vec![d.clone(), c.clone(), a.clone()]));
    let again = store.save_raw.send(SaveRaw(d.clone()));
    assert!(one.await.expect("store alive").expect("save succeeds"));
    let many = many.await.expect("store alive").expect("save succeeds");
    assert_eq!(many, [true, false, false]);
    assert!(!again.await.expect("store alive").expect("save succeeds"));
    let none = store
        .save_all
        .send(SaveAll(Vec::new()))
        .await
        .expect("store alive")
        .expect("nothing to save succeeds");
    assert!(none.is_empty());
}

/// Copies of a message asked for together (so in one write of a group
/// committing stage, even one multi-row insert) are archived once, and
/// only the first is answered as new; the outbox takes them once too.
pub async fn takes_copies_arriving_together_once<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let a = delivery(1, "/c/1/a/proto", 1, 1);
    let b = delivery(1, "/c/1/a/proto", 2, 2);
    // Each request is in the stage's mailbox once sent, before any answer.
    let asked: Vec<_> = [&a, &a, &b, &a, &b]
        .into_iter()
        .map(|d| store.save_raw.send(SaveRaw(d.clone())))
        .collect();
    let mut new = Vec::new();
    for answer in asked {
        new.push(answer.await.expect("store alive").expect("save succeeds"));
    }
    assert_eq!(new, [true, false, true, false, false]);
    let page = query(&store, Query::hashes(vec![a.hash, b.hash]))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2, "each archived once");

    let queued: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|d| {
            store
                .enqueue
                .send(Enqueue::new(d.pubsub_topic.clone(), d.message.clone()))
        })
        .collect();
    for answer in queued {
        answer
            .await
            .expect("store alive")
            .expect("enqueue succeeds");
    }
    let mut pending: Vec<MessageHash> = store
        .pending
        .send(Pending)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|d| d.hash)
        .collect();
    pending.sort();
    let mut both = vec![a.hash, b.hash];
    both.sort();
    assert_eq!(pending, both, "each in the outbox once");
}

/// The outbox keeps what is not yet sent, oldest first, once per message.
pub async fn keeps_an_outbox<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let a = delivery(1, "/c/1/a/proto", 1, 1);
    let b = delivery(1, "/c/1/a/proto", 2, 2);
    for d in [&a, &b, &a] {
        let hash = store
            .enqueue
            .send(Enqueue::new(d.pubsub_topic.clone(), d.message.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hash, d.hash);
    }
    let pending = store.pending.send(Pending).await.unwrap().unwrap();
    assert_eq!(pending, vec![a.clone(), b.clone()]);
    store
        .mark_sent
        .send(MarkSent(a.hash))
        .await
        .unwrap()
        .unwrap();
    let pending = store.pending.send(Pending).await.unwrap().unwrap();
    assert_eq!(pending, vec![b]);
}
