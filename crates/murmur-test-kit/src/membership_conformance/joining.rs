//! Joining: by invite or by an admin's approval, and never by a stranger's
//! say-so.

use super::*;

/// An invite that admits brings its holder in through the admin; in the
/// approval mode a request without one waits for the admin.
pub async fn admits_by_invite_and_keeps_requests_for_approval<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob, carol) = (
        device(&start).await,
        device(&start).await,
        device(&start).await,
    );
    let all = [&alice, &bob, &carol];
    let group = pair_in_a_group(&alice, &bob).await;

    let (code, effects) = alice
        .groups
        .create_invite
        .send(CreateInvite { group, admit: true })
        .await
        .expect("stage alive")
        .expect("an admin makes invites");
    follow(&alice, effects, &all).await;
    let (joined, effects) = carol
        .groups
        .join
        .send(groups::Join(code))
        .await
        .expect("stage alive")
        .expect("a valid code");
    assert_eq!(joined, group);
    follow(&carol, effects, &all).await;
    let members = info(&alice, group).await.expect("known").members;
    assert!(
        members.contains(&(carol.account, Role::Member)),
        "{members:?}"
    );
    let sealed = post(&alice, group, "welcome").await.expect("sealed");
    assert!(open(&carol, &sealed).await.is_ok(), "the newcomer reads");

    // Approval: a link without a secret waits for the admin.
    let dave = device(&start).await;
    let all = [&alice, &bob, &carol, &dave];
    let mode = change(&alice, group, Action::SetJoinMode(JoinMode::Approval))
        .await
        .expect("the owner sets the mode");
    follow(&alice, mode, &all).await;
    let (link, effects) = alice
        .groups
        .create_invite
        .send(CreateInvite {
            group,
            admit: false,
        })
        .await
        .expect("stage alive")
        .expect("a link");
    follow(&alice, effects, &all).await;
    let (_, effects) = dave
        .groups
        .join
        .send(groups::Join(link))
        .await
        .expect("stage alive")
        .expect("a valid link");
    follow(&dave, effects, &all).await;
    let waiting = alice
        .groups
        .requests
        .send(Requests(group))
        .await
        .expect("stage alive")
        .expect("the requests");
    assert_eq!(waiting, vec![dave.account]);
    assert!(!info(&alice, group)
        .await
        .expect("known")
        .members
        .iter()
        .any(|(a, _)| *a == dave.account));
}

/// A control message that would bring this account into a group, from an
/// account it has not accepted (a message request), is refused and joins
/// nothing; the same message once the account is accepted is applied.
pub async fn an_account_not_accepted_adds_this_one_to_no_group<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    // Alice has Bob's code; Bob never heard of Alice.
    add_code(&alice, &bob).await;
    let (group, _) = create(&alice, "uninvited").await;
    let added = change(&alice, group, Action::Add(bob.account))
        .await
        .expect("the owner adds");
    let mut invites = Vec::new();
    for (to, message) in added.pairwise {
        if to != bob.account {
            continue;
        }
        let sealed = alice
            .crypto
            .seal
            .send(Seal::new(to, message))
            .await
            .expect("stage alive")
            .expect("sealed");
        for envelope in &sealed {
            if let Ok(opened) = bob
                .crypto
                .open
                .send(crypto::Open(delivery(envelope)))
                .await
                .expect("stage alive")
            {
                assert!(opened.request, "Alice is a stranger to Bob");
                invites.push(opened);
            }
        }
    }
    assert!(!invites.is_empty(), "Bob got the invite");
    // A chain key alone from an account not accepted, for a group Bob
    // does not know: refused too (Bob's node holds it until the account
    // is accepted or introduced), so that strangers fill nothing here.
    let held = raw_control(
        &bob,
        alice.account,
        murmur_proto::chat::GroupControl {
            group: group.0.to_vec(),
            chain: Some(vec![1; 16]),
            ..Default::default()
        },
        true,
    )
    .await;
    assert_eq!(held.err(), Some(Error::NotAccepted(alice.account)));
    for opened in &invites {
        let control = |request| Control {
            from: opened.sender,
            device: opened.device,
            message: opened.plaintext.clone().expect("a control message"),
            request,
        };
        let refused = bob
            .groups
            .control
            .send(control(true))
            .await
            .expect("stage alive");
        assert_eq!(refused.err(), Some(Error::NotAccepted(alice.account)));
        assert!(
            !info(&bob, group).await.is_ok_and(|i| i.member),
            "a stranger's group joined"
        );
        bob.groups
            .control
            .send(control(false))
            .await
            .expect("stage alive")
            .expect("applied once accepted");
    }
    let members = info(&bob, group).await.expect("joined").members;
    assert!(members.contains(&(bob.account, Role::Member)));
}
