//! Who may read: a revoked device nothing after its revocation, a stranger
//! nothing until accepted, a blocked account nothing at all.

use super::*;

/// After the first device revokes the second, the second reads nothing
/// its contacts send afterwards, and a device cannot revoke itself.
pub async fn a_revoked_device_reads_nothing_after<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (phone, laptop, friend) = (
        start(storage()).await,
        start(storage()).await,
        start(storage()).await,
    );
    pair(&phone, &laptop).await;
    let (account, laptop_device) = identity(&laptop).await;
    let (_, phone_device) = identity(&phone).await;
    introduce(&friend, &phone).await;
    let hello = seal(&friend, account, "hello").await.expect("sealed");
    answer_accepted(&phone, &friend, &hello).await;
    let before = seal(&friend, account, "to both").await.expect("sealed");
    assert_eq!(
        open_mine(&laptop, &before).await.len(),
        1,
        "the laptop reads"
    );

    let own = phone
        .revoke
        .send(Revoke(phone_device))
        .await
        .expect("stage alive");
    assert!(matches!(own, Err(Error::Pairing(_))), "{own:?}");
    let told = phone
        .revoke
        .send(Revoke(laptop_device))
        .await
        .expect("stage alive")
        .expect("the first device revokes");
    for envelope in &told {
        let _ = open(&friend, envelope).await;
    }
    let devices = friend
        .devices
        .send(crypto::Devices(account))
        .await
        .expect("stage alive")
        .expect("devices");
    assert!(
        !devices.contains(&laptop_device),
        "the friend forgot the laptop"
    );
    let after = seal(&friend, account, "after").await.expect("sealed");
    assert!(
        open_mine(&laptop, &after).await.is_empty(),
        "the revoked laptop reads nothing sent after"
    );
    assert_eq!(
        open_mine(&phone, &after).await.len(),
        1,
        "the phone still reads"
    );
}

/// A stranger's first message opens as a request and gets no answer; the
/// stranger is listed until accepted, declined or blocked, and is no
/// contact until accepted; a blocked
/// account is refused unopened until it is accepted again; writing to an
/// account accepts it.
pub async fn a_stranger_hears_nothing_until_accepted_and_a_blocked_one_is_refused<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (bob, carol, dave) = (
        start(storage()).await,
        start(storage()).await,
        start(storage()).await,
    );
    let bob_id = identity(&bob).await.0;
    let (carol_id, dave_id) = (identity(&carol).await.0, identity(&dave).await.0);
    let requests = || async {
        bob.requests
            .send(Requests)
            .await
            .expect("stage alive")
            .expect("requests")
    };
    introduce(&carol, &bob).await;
    introduce(&dave, &bob).await;
    let hello = seal(&carol, bob_id, "hi").await.expect("sealed");
    let opened = open_mine(&bob, &hello).await;
    assert!(opened.iter().all(|o| o.request && o.publish.is_empty()));
    let from_dave = seal(&dave, bob_id, "hello").await.expect("sealed");
    open_mine(&bob, &from_dave).await;
    let mut waiting = requests().await;
    waiting.sort();
    let mut expected = vec![carol_id, dave_id];
    expected.sort();
    assert_eq!(waiting, expected);

    let contacts = || async {
        bob.contacts
            .send(Contacts)
            .await
            .expect("stage alive")
            .expect("contacts")
    };
    assert!(contacts().await.is_empty(), "a request is not a contact");

    // Bob answers Dave: writing accepts.
    let answer = seal(&bob, dave_id, "hello Dave").await.expect("sealed");
    open_mine(&dave, &answer).await;
    assert_eq!(requests().await, vec![carol_id]);
    assert_eq!(contacts().await, vec![dave_id]);
    let again = seal(&dave, bob_id, "good").await.expect("sealed");
    assert!(open_mine(&bob, &again).await.iter().all(|o| !o.request));

    // Blocked: refused unopened, and no longer a request.
    bob.decline
        .send(Decline {
            account: carol_id,
            block: true,
        })
        .await
        .expect("stage alive")
        .expect("blocked");
    assert!(requests().await.is_empty());
    assert_eq!(contacts().await, vec![dave_id], "a blocked account is none");
    let more = seal(&carol, bob_id, "let me in").await.expect("sealed");
    for envelope in &more {
        match open(&bob, envelope).await {
            Err(Error::Blocked(a)) => assert_eq!(a, carol_id),
            Err(Error::NotForUs) => {}
            other => panic!(
                "a blocked account's envelope: {:?}",
                other.map(|o| o.sender)
            ),
        }
    }
    // Its own account cannot be blocked.
    let own = bob
        .decline
        .send(Decline {
            account: bob_id,
            block: true,
        })
        .await
        .expect("stage alive");
    assert_eq!(own.err(), Some(Error::OwnAccount));
}
