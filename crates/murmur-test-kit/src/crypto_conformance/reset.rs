//! A session that broke (one side went back to an older copy of its
//! state) is started over, and a forged envelope cannot make it so more
//! than once a minute.

use super::*;

async fn reset_with(
    stage: &crypto::Handle,
    account: AccountId,
    device: crypto::DeviceId,
) -> Result<Vec<Sealed>, Error> {
    stage
        .reset
        .send(crypto::Reset { account, device })
        .await
        .expect("stage alive")
}

/// Every record `storage` holds: a backup.
async fn backup(storage: &storage::Handle) -> Vec<(String, Vec<u8>)> {
    storage
        .list_state
        .send(storage::ListState(String::new()))
        .await
        .expect("storage alive")
        .expect("listed")
}

/// A new storage holding `records`: the backup restored.
async fn restored(records: Vec<(String, Vec<u8>)>) -> storage::Handle {
    let storage = storage();
    storage
        .save_state
        .send(storage::SaveState(
            records.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        ))
        .await
        .expect("storage alive")
        .expect("saved");
    storage
}

/// Bob goes back to a backup from before he and Alice wrote again: Alice's
/// next message does not open on his old session (`BrokenSession`). Bob's
/// [`crypto::Reset`] answers a new session's first envelope; Alice opens
/// it, learns that Bob reset ([`crypto::Opened::reset`]), and what she
/// sends now opens at Bob's, and his at hers. Asked again at once, Bob
/// resets nothing.
pub async fn a_broken_session_is_started_over_once_a_minute_at_most<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let bob_storage = storage();
    let alice = start(storage()).await;
    let bob = start(bob_storage.clone()).await;
    let bob_id = introduce(&alice, &bob).await;
    let (alice_id, alice_device) = identity(&alice).await;
    introduce(&bob, &alice).await;
    let hello = seal(&alice, bob_id, "hello").await.expect("sealed");
    open(&bob, &hello[0]).await.expect("Bob reads");
    let saved = backup(&bob_storage).await;
    // After the backup, both write: the ratchet turns on both sides.
    for round in 0..2 {
        let b = seal(&bob, alice_id, &format!("b{round}"))
            .await
            .expect("sealed");
        open(&alice, &b[0]).await.expect("Alice reads");
        let a = seal(&alice, bob_id, &format!("a{round}"))
            .await
            .expect("sealed");
        open(&bob, &a[0]).await.expect("Bob reads");
    }
    drop(bob);
    let bob = start(restored(saved).await).await;
    assert_eq!(identity(&bob).await.0, bob_id, "the same device, restored");

    let lost = seal(&alice, bob_id, "after the restore")
        .await
        .expect("sealed");
    let refused = open(&bob, &lost[0]).await.err();
    assert!(
        matches!(
            refused,
            Some(Error::BrokenSession { account, device })
                if account == alice_id && device == alice_device
        ),
        "{refused:?}"
    );
    let reset = reset_with(&bob, alice_id, alice_device)
        .await
        .expect("Alice is a contact");
    assert_eq!(reset.len(), 1, "one envelope, to Alice's device");
    let again = reset_with(&bob, alice_id, alice_device)
        .await
        .expect("Alice is a contact");
    assert!(again.is_empty(), "reset a moment ago: not again");

    let started_over = open(&alice, &reset[0]).await.expect("Alice opens it");
    assert!(started_over.reset, "Alice learns that Bob started over");
    assert!(started_over.plaintext.is_none());
    let resent = seal(&alice, bob_id, "after the restore")
        .await
        .expect("sealed");
    assert_eq!(
        text(open(&bob, &resent[0]).await.expect("Bob reads it now")).as_deref(),
        Some("after the restore")
    );
    let back = seal(&bob, alice_id, "and back").await.expect("sealed");
    assert_eq!(
        text(open(&alice, &back[0]).await.expect("Alice reads")).as_deref(),
        Some("and back")
    );
    let more = seal(&alice, bob_id, "on the new session")
        .await
        .expect("sealed");
    assert_eq!(
        text(open(&bob, &more[0]).await.expect("Bob reads")).as_deref(),
        Some("on the new session")
    );
}

/// Bob resets with Alice while her session is fine (an envelope forged
/// "from" her, which Bob cannot tell from a broken session, makes him):
/// what she still sends on the old session opens, the two converge on one
/// session once his first message arrives, and a second reset within the
/// minute sends nothing. Nobody resets with a device it does not know.
pub async fn a_reset_keeps_the_old_session_readable_and_comes_once_a_minute<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (alice, bob, mallory) = (
        start(storage()).await,
        start(storage()).await,
        start(storage()).await,
    );
    let bob_id = introduce(&alice, &bob).await;
    let (alice_id, alice_device) = identity(&alice).await;
    introduce(&bob, &alice).await;
    let hello = seal(&alice, bob_id, "hello").await.expect("sealed");
    open(&bob, &hello[0]).await.expect("Bob reads");
    let reply = seal(&bob, alice_id, "hi").await.expect("sealed");
    open(&alice, &reply[0]).await.expect("Alice reads");

    // As the pipeline does on a message no session opens (the forgery
    // itself: `crates/murmur-crypto/tests/crypto/device.rs`).
    let forged_reset = reset_with(&bob, alice_id, alice_device)
        .await
        .expect("Alice is a contact");
    assert_eq!(forged_reset.len(), 1);
    // Alice, who never got that first message, writes on the old session:
    // Bob still reads it.
    let old = seal(&alice, bob_id, "on the old one")
        .await
        .expect("sealed");
    assert_eq!(
        text(
            open(&bob, &old[0])
                .await
                .expect("the old session still opens")
        )
        .as_deref(),
        Some("on the old one")
    );
    let second = reset_with(&bob, alice_id, alice_device)
        .await
        .expect("Alice is a contact");
    assert!(second.is_empty(), "within the minute: no second reset");
    // The reset arrives late; both converge on one session.
    let started_over = open(&alice, &forged_reset[0]).await.expect("opens");
    assert!(started_over.reset);
    for round in 0..3 {
        let a = seal(&alice, bob_id, &format!("a{round}"))
            .await
            .expect("sealed");
        assert_eq!(
            text(open(&bob, &a[0]).await.expect("Bob reads")).as_deref(),
            Some(format!("a{round}").as_str())
        );
        let b = seal(&bob, alice_id, &format!("b{round}"))
            .await
            .expect("sealed");
        assert_eq!(
            text(open(&alice, &b[0]).await.expect("Alice reads")).as_deref(),
            Some(format!("b{round}").as_str())
        );
    }
    // A device Bob does not know: nothing to reset with.
    let (stranger, stranger_device) = identity(&mallory).await;
    let unknown = reset_with(&bob, stranger, stranger_device).await;
    assert_eq!(unknown.err(), Some(Error::UnknownContact(stranger)));
}
