//! A message is kept once: the archive by hash (and never an ephemeral
//! one), and the outbox by hash, until the network took it.

use std::future::Future;

use murmur_core::{
    storage::{self, Enqueue, MarkSent, Pending, SaveAll, SaveRaw},
    store::Query,
    Delivery, MessageHash,
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
    // An ephemeral copy shares the hash of the message; it is never new,
    // and does not keep the message from being new.
    let e = delivery(1, "/c/1/a/proto", 7, 7);
    let mut e_ephemeral = e.clone();
    e_ephemeral.message.ephemeral = Some(true);
    let new = store
        .save_all
        .send(SaveAll(vec![e_ephemeral, e.clone()]))
        .await
        .expect("store alive")
        .expect("save succeeds");
    assert_eq!(new, [false, true]);

    // Requests of every kind asked for together (so in one write of a
    // group committing stage): each answered for its own messages.
    let (c, d) = (
        delivery(1, "/c/1/a/proto", 5, 5),
        delivery(1, "/c/1/a/proto", 6, 6),
    );
    let one = store.save_raw.send(SaveRaw(c.clone()));
    let queued = store
        .enqueue
        .send(Enqueue::new(d.pubsub_topic.clone(), d.message.clone()));
    let many = store
        .save_all
        .send(SaveAll(vec![d.clone(), c.clone(), a.clone()]));
    let state = store.save_state.send(storage::SaveState(vec![(
        "kept/many".to_owned(),
        Some(b"v".to_vec()),
    )]));
    let again = store.save_raw.send(SaveRaw(d.clone()));
    assert!(one.await.expect("store alive").expect("save succeeds"));
    assert_eq!(
        queued
            .await
            .expect("store alive")
            .expect("enqueue succeeds"),
        d.hash
    );
    let many = many.await.expect("store alive").expect("save succeeds");
    assert_eq!(many, [true, false, false]);
    state.await.expect("store alive").expect("state saved");
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
    assert_eq!(pending, vec![b.clone()]);

    // Asked for together (so in one write of a group committing stage),
    // they come back in the order asked, not in their hashes' order.
    let together: Vec<_> = (10..18)
        .map(|i| delivery(1, "/c/1/a/proto", 100 - i64::from(i), i))
        .collect();
    let asked: Vec<_> = together
        .iter()
        .map(|d| {
            store
                .enqueue
                .send(Enqueue::new(d.pubsub_topic.clone(), d.message.clone()))
        })
        .collect();
    for answer in asked {
        answer.await.unwrap().unwrap();
    }
    let pending = store.pending.send(Pending).await.unwrap().unwrap();
    let mut expected = vec![b];
    expected.extend(together);
    assert_eq!(pending, expected);
}

/// An entry put in place of another ([`Enqueue::in_place_of`]: a message
/// stamped again while it waited) takes that one's turn, and the other
/// goes; in place of one no longer waiting, it goes in behind the rest.
/// Through an outage the retry stamps the oldest entry again at every
/// tick: behind the rest, it would rotate the queue.
pub async fn puts_an_entry_in_the_turn_of_the_one_it_replaces<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let put = |d: &Delivery, old: Option<MessageHash>| {
        let enqueue = Enqueue::new(d.pubsub_topic.clone(), d.message.clone());
        let enqueue = match old {
            Some(old) => enqueue.in_place_of(old),
            None => enqueue,
        };
        let asked = store.enqueue.send(enqueue);
        async move { asked.await.unwrap().unwrap() }
    };
    let pending = || async { store.pending.send(Pending).await.unwrap().unwrap() };
    let [a, b, c] = [1, 2, 3].map(|i| delivery(1, "/c/1/a/proto", i64::from(i), i));
    for d in [&a, &b, &c] {
        put(d, None).await;
    }
    // The same message stamped again: a new hash.
    let again = |d: &Delivery, stamp| {
        let message = d.message.clone().with_timestamp(stamp);
        Delivery::new(d.pubsub_topic.clone(), message)
    };
    let (a2, b2) = (again(&a, 100), again(&b, 101));
    assert_eq!(put(&a2, Some(a.hash)).await, a2.hash);
    assert_eq!(pending().await, vec![a2.clone(), b.clone(), c.clone()]);
    put(&b2, Some(b.hash)).await;
    assert_eq!(pending().await, vec![a2.clone(), b2.clone(), c.clone()]);

    // In place of one the network took meanwhile: behind the rest.
    store
        .mark_sent
        .send(MarkSent(a2.hash))
        .await
        .unwrap()
        .unwrap();
    let a3 = again(&a, 102);
    put(&a3, Some(a2.hash)).await;
    assert_eq!(pending().await, vec![b2.clone(), c.clone(), a3.clone()]);

    // Two asked for together (one write, in a stage that commits groups).
    let (b3, c2) = (again(&b, 103), again(&c, 104));
    let (first, second) = (put(&b3, Some(b2.hash)), put(&c2, Some(c.hash)));
    first.await;
    second.await;
    assert_eq!(pending().await, vec![b3, c2, a3]);
}

/// What the database cannot hold (a NUL character in a content topic or a
/// state name, which PostgreSQL's text refuses) is kept or refused on its
/// own: the writes asked for with it land.
pub async fn refuses_alone_what_it_cannot_hold<F, Fut>(start: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = storage::Handle>,
{
    let store = start().await;
    let bad = delivery(1, "/c/1/bad\0/proto", 1, 1);
    let (good, queued, more) = (
        delivery(1, "/c/1/a/proto", 2, 2),
        delivery(1, "/c/1/a/proto", 3, 3),
        delivery(1, "/c/1/a/proto", 4, 4),
    );
    let refused_or_kept = |answer: Result<_, storage::Error>, what: &str| match answer {
        Ok(_) | Err(storage::Error::Unstorable(_)) => {}
        Err(e) => panic!("{what}: {e}"),
    };
    let bad_one = store.save_raw.send(SaveRaw(bad.clone()));
    let good_one = store.save_raw.send(SaveRaw(good.clone()));
    let bad_queued = store
        .enqueue
        .send(Enqueue::new(bad.pubsub_topic.clone(), bad.message.clone()));
    let good_queued = store.enqueue.send(Enqueue::new(
        queued.pubsub_topic.clone(),
        queued.message.clone(),
    ));
    let bad_many = store
        .save_all
        .send(SaveAll(vec![more.clone(), bad.clone()]));
    let good_many = store.save_all.send(SaveAll(vec![more.clone()]));
    let bad_state = store.save_state.send(storage::SaveState(vec![(
        "kept/bad\0name".to_owned(),
        Some(b"v".to_vec()),
    )]));
    let good_state = store.save_state.send(storage::SaveState(vec![(
        "kept/good".to_owned(),
        Some(b"v".to_vec()),
    )]));
    refused_or_kept(bad_one.await.expect("store alive").map(drop), "SaveRaw");
    assert!(good_one
        .await
        .expect("store alive")
        .expect("the good save lands"));
    refused_or_kept(bad_queued.await.expect("store alive").map(drop), "Enqueue");
    good_queued
        .await
        .expect("store alive")
        .expect("the good entry lands");
    refused_or_kept(bad_many.await.expect("store alive").map(drop), "SaveAll");
    good_many
        .await
        .expect("store alive")
        .expect("the good request lands");
    refused_or_kept(bad_state.await.expect("store alive"), "SaveState");
    good_state
        .await
        .expect("store alive")
        .expect("the good state lands");
    let page = query(&store, Query::hashes(vec![good.hash, more.hash]))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 2);
    let pending = store.pending.send(Pending).await.unwrap().unwrap();
    assert!(pending.iter().any(|d| d.hash == queued.hash));
}
