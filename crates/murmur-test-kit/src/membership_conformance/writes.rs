//! What the stage writes: no answer runs ahead of what storage holds, a
//! write that fails moves no chain on, and a restart while a write is on
//! its way loses nothing and opens nothing twice. A stage may write each
//! change alone or gather them; both pass.

use actix::dev::RecipientRequest;

use super::*;
use crate::{gate_saves, Valve};

/// A device whose writes pass a gate the case opens, closes, or makes
/// refuse; answers its storage too, without the gate.
async fn gated<F, Fut>(start: &F) -> (Device, Valve, storage::Handle)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let storage = storage::Handle::from(MemoryStorage::start());
    let (gated, valve) = gate_saves(&storage);
    (device_on(start, gated).await, valve, storage)
}

fn post_now(by: &Device, group: GroupId, text: &str) -> RecipientRequest<Post> {
    // In the stage's mailbox now, answered when awaited.
    by.groups.post.send(Post {
        group,
        plaintext: Bytes::from(text.to_owned()),
    })
}

fn open_now(by: &Device, sealed: &crypto::Sealed) -> RecipientRequest<groups::Open> {
    by.groups.open.send(groups::Open(delivery(sealed)))
}

/// Everything sent to `device`'s membership stage before this was handled.
async fn handled(device: &Device) {
    device
        .groups
        .topics
        .send(Topics)
        .await
        .expect("stage alive")
        .expect("its topics");
}

/// Writes of Alice's stage while twenty posts are made behind a write the
/// storage holds: how many reached storage while it held, and in all.
/// The default stage gathers the twenty into one write: `(1, 2)`.
pub async fn writes_of_posts_made_while_one_is_held<F, Fut>(start: F) -> (u64, u64)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (mut alice, valve, storage) = gated(&start).await;
    let bob = device(&start).await;
    let group = pair_in_a_group(&alice, &bob).await;
    let before = valve.arrived();
    valve.close();
    let first = post_now(&alice, group, "0");
    let mut valve = valve;
    valve.holding(1).await;
    let rest: Vec<_> = (1..=20)
        .map(|i| post_now(&alice, group, &i.to_string()))
        .collect();
    handled(&alice).await;
    let during = valve.arrived() - before;
    valve.open();
    let mut sealed = vec![first.await.expect("stage alive").expect("posted")];
    for post in rest {
        sealed.push(post.await.expect("stage alive").expect("posted"));
    }
    let writes = valve.arrived() - before;
    for (i, s) in sealed.iter().enumerate() {
        let opened = open(&bob, s).await.expect("bob reads each, in order");
        assert_eq!(opened.plaintext.as_ref(), i.to_string().as_bytes());
    }
    // Started again on what it wrote, Alice's device goes on from there:
    // a chain step it answered but did not keep would be used again, and
    // Bob would refuse it as a replay.
    alice = device_on(&start, storage).await;
    let next = post(&alice, group, "after").await.expect("posts again");
    let opened = open(&bob, &next).await.expect("bob reads it");
    assert_eq!(opened.plaintext.as_ref(), b"after");
    (during, writes)
}

/// Posts made while a write is held are answered once written, in order,
/// and a stage started again on the storage goes on from them.
pub async fn posts_are_answered_once_written_in_order<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    writes_of_posts_made_while_one_is_held(start).await;
}

/// Alice posts three messages; Bob opens the first `n` while his storage
/// holds the first's write. Answers Bob, the gate, Alice's messages, and
/// Bob's answers to come.
async fn open_behind_a_held_write<F, Fut>(
    start: &F,
    n: usize,
) -> (
    Device,
    Valve,
    Vec<crypto::Sealed>,
    Vec<RecipientRequest<groups::Open>>,
)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let alice = device(start).await;
    let (bob, mut valve, _) = gated(start).await;
    let group = pair_in_a_group(&alice, &bob).await;
    let mut sealed = Vec::new();
    for i in 0..3 {
        sealed.push(post(&alice, group, &i.to_string()).await.expect("posted"));
    }
    valve.close();
    let first = open_now(&bob, &sealed[0]);
    valve.holding(1).await;
    let mut answers = vec![first];
    answers.extend(sealed[1..n].iter().map(|s| open_now(&bob, s)));
    (bob, valve, sealed, answers)
}

/// A write that fails answers its message (and whatever was changed on top
/// of it before it failed) with an error, and moves no chain on: the same
/// messages open once storage takes writes again.
pub async fn a_failed_write_moves_no_chain_on<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (bob, valve, sealed, answers) = open_behind_a_held_write(&start, 3).await;
    handled(&bob).await;
    valve.refuse();
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.await.expect("stage alive");
        assert!(
            matches!(answer, Err(Error::State(_))),
            "message {i} answered although not written: {answer:?}"
        );
    }
    valve.open();
    for (i, s) in sealed.iter().enumerate() {
        let opened = open(&bob, s)
            .await
            .unwrap_or_else(|e| panic!("message {i} is lost: {e}"));
        assert_eq!(opened.plaintext.as_ref(), i.to_string().as_bytes());
    }
}

/// A restart while a write is held answers that write as it went, and
/// every message opens exactly once in the end: none lost with the
/// restart, none opened again because the stage read its state back
/// before the write landed.
pub async fn a_restart_while_a_write_is_held_loses_nothing_and_opens_nothing_twice<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (bob, valve, sealed, answers) = open_behind_a_held_write(&start, 2).await;
    // Not awaited: a stage whose mailbox waits for its write takes it
    // only after.
    let armed = bob.groups.inject_panic.send(InjectPanic);
    let met = open_now(&bob, &sealed[2]);
    valve.open();
    armed.await.expect("stage alive");
    let mut opened = [false; 3];
    for (i, answer) in answers.into_iter().chain([met]).enumerate() {
        match answer.await.expect("stage alive") {
            Ok(o) => {
                assert_eq!(o.plaintext.as_ref(), i.to_string().as_bytes());
                assert!(!opened[i], "message {i} opened twice");
                opened[i] = true;
            }
            Err(Error::Restarted(_) | Error::Replay) => {}
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    assert!(
        opened[0],
        "the write handed on before the restart is answered"
    );
    for (i, s) in sealed.iter().enumerate() {
        let again = open(&bob, s).await;
        if opened[i] {
            assert!(
                matches!(again, Err(Error::Replay)),
                "message {i} opened twice: {again:?}"
            );
        } else {
            let o = again.unwrap_or_else(|e| panic!("message {i} is lost: {e}"));
            assert_eq!(o.plaintext.as_ref(), i.to_string().as_bytes());
        }
    }
}
