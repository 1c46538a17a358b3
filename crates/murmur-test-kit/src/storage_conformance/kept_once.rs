//! A message is kept once: the archive by hash (and never an ephemeral
//! one), and the outbox by hash, until the network took it.

use std::{future::Future, time::Duration};

use murmur_core::{
    storage::{self, Enqueue, MarkSent, Pending, SaveRaw},
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
