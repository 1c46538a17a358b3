//! The membership stage's conformance suite. `$start` is an
//! `async fn(murmur_core::storage::Handle) -> (crypto::Handle, groups::Handle)`
//! that starts one device: a crypto stage and the membership stage under
//! test, both on that storage.
//!
//! The suite plays the pipeline's part between devices: it learns the
//! bundles an answer names, seals each pairwise control message with the
//! sender's crypto stage, opens it with the recipient's and hands it to the
//! recipient's membership stage, and follows the effects of that in turn.

use std::future::Future;

use bytes::Bytes;
use murmur_core::{
    crypto::{self, AccountId, AddContact, ContactCode, Identity, LearnBundles, Seal},
    groups::{
        self, Action, Change, Control, Create, CreateInvite, Effects, Error, GroupId, Info,
        JoinMode, List, Post, Requests, Role, Topics,
    },
    storage,
    supervise::InjectPanic,
    Delivery, PubsubTopic, WakuMessage,
};

use crate::MemoryStorage;

mod batches;
mod joining;
mod journal;
mod logs;
mod repair;
pub use batches::a_batch_is_held_to_what_its_messages_alone_would_be;
pub use joining::{
    admits_by_invite_and_keeps_requests_for_approval,
    an_account_not_accepted_adds_this_one_to_no_group,
};
pub use journal::keeps_what_it_opened_until_it_is_handled;
use logs::raw_control;
pub use logs::{
    a_joiner_gets_a_log_longer_than_one_envelope,
    a_member_who_missed_an_event_pulls_it_from_the_next_message,
};
pub use repair::a_member_whose_chain_key_was_lost_asks_for_it_and_reads_on;
mod writes;
pub use writes::{
    a_failed_write_moves_no_chain_on,
    a_restart_while_a_write_is_held_loses_nothing_and_opens_nothing_twice,
    posts_are_answered_once_written_in_order, writes_of_posts_made_while_one_is_held,
};

/// Runs the membership stage's suite against `$start`.
#[macro_export]
macro_rules! membership_conformance_tests {
    ($start:path) => {
        mod membership_conformance {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        $crate::run($crate::membership_conformance::$name($start));
                    }
                };
            }

            case!(creates_a_group_it_lists_and_subscribes);
            case!(an_added_member_reads_and_writes);
            case!(refuses_what_a_role_does_not_allow);
            case!(a_removed_member_reads_nothing_after);
            case!(a_revoked_device_reads_and_writes_nothing_after);
            case!(refuses_tampered_replayed_and_stray_messages);
            case!(a_message_too_far_ahead_advances_nothing_and_opens_after_the_rest);
            case!(admits_by_invite_and_keeps_requests_for_approval);
            case!(survives_a_panic_in_a_handler_with_its_groups);
            case!(an_account_not_accepted_adds_this_one_to_no_group);
            case!(a_member_who_missed_an_event_pulls_it_from_the_next_message);
            case!(a_joiner_gets_a_log_longer_than_one_envelope);
            case!(keeps_what_it_opened_until_it_is_handled);
            case!(a_member_whose_chain_key_was_lost_asks_for_it_and_reads_on);
            case!(posts_are_answered_once_written_in_order);
            case!(a_failed_write_moves_no_chain_on);
            case!(a_restart_while_a_write_is_held_loses_nothing_and_opens_nothing_twice);
            case!(a_batch_is_held_to_what_its_messages_alone_would_be);
        }
    };
}

/// One device: its stages and who it is.
pub struct Device {
    crypto: crypto::Handle,
    groups: groups::Handle,
    account: AccountId,
}

async fn device<F, Fut>(start: &F) -> Device
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    device_on(start, storage::Handle::from(MemoryStorage::start())).await
}

/// A device on `storage`: the same one again if it ran on it before.
async fn device_on<F, Fut>(start: &F, storage: storage::Handle) -> Device
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (crypto, groups) = start(storage).await;
    let (account, _) = crypto
        .identity
        .send(Identity)
        .await
        .expect("stage alive")
        .expect("an identity");
    Device {
        crypto,
        groups,
        account,
    }
}

/// `a` adds `b`'s contact code.
async fn add_code(a: &Device, b: &Device) {
    let code = b
        .crypto
        .contact_code
        .send(ContactCode)
        .await
        .expect("stage alive")
        .expect("a contact code");
    a.crypto
        .add_contact
        .send(AddContact(code))
        .await
        .expect("stage alive")
        .expect("a valid code");
}

/// `a` and `b` exchange contact codes: each accepts the other.
async fn introduce(a: &Device, b: &Device) {
    add_code(a, b).await;
    add_code(b, a).await;
}

fn delivery(sealed: &crypto::Sealed) -> Delivery {
    let topic: PubsubTopic = "/waku/2/rs/1/0".parse().expect("valid topic");
    Delivery::new(
        topic,
        WakuMessage::new(sealed.content_topic.as_str(), sealed.payload.clone())
            .with_timestamp(murmur_core::now_nanos()),
    )
}

/// Carries out `effects` of `from` among `devices`, as the pipeline does,
/// and the effects they cause, until none is left.
async fn follow(from: &Device, effects: Effects, devices: &[&Device]) {
    follow_dropping(from, effects, devices, &|_, _, _| false).await;
}

/// [`follow`], losing the pairwise messages `lost` names (by author,
/// recipient and plaintext).
async fn follow_dropping(
    from: &Device,
    effects: Effects,
    devices: &[&Device],
    lost: &dyn Fn(AccountId, AccountId, &Bytes) -> bool,
) {
    let mut work = vec![(from.account, effects)];
    while let Some((author, effects)) = work.pop() {
        let Some(me) = devices.iter().find(|d| d.account == author) else {
            continue;
        };
        for (account, bundles) in effects.learn {
            me.crypto
                .learn_bundles
                .send(LearnBundles { account, bundles })
                .await
                .expect("stage alive")
                .expect("bundles learned");
        }
        for (group, account) in effects.admit {
            let admitted = me
                .groups
                .change
                .send(Change {
                    group,
                    action: Action::Add(account),
                })
                .await
                .expect("stage alive")
                .expect("the admin adds whom it admits");
            work.push((me.account, admitted));
        }
        for (to, message) in effects.pairwise {
            if lost(me.account, to, &message) {
                continue;
            }
            let Some(recipient) = devices.iter().find(|d| d.account == to) else {
                continue;
            };
            let sealed = me
                .crypto
                .seal
                .send(Seal::new(to, message))
                .await
                .expect("stage alive")
                .expect("sealed for a known account");
            for envelope in &sealed {
                let Ok(opened) = recipient
                    .crypto
                    .open
                    .send(crypto::Open(delivery(envelope)))
                    .await
                    .expect("stage alive")
                else {
                    continue;
                };
                let Some(plaintext) = opened.plaintext else {
                    continue;
                };
                let applied = recipient
                    .groups
                    .control
                    .send(Control {
                        from: opened.sender,
                        device: opened.device,
                        message: plaintext,
                        request: opened.request,
                    })
                    .await
                    .expect("stage alive")
                    .expect("a member's control is applied");
                work.push((recipient.account, applied));
            }
        }
    }
}

/// `by` creates a group named `name`; answers it and what to do.
async fn create(by: &Device, name: &str) -> (GroupId, Effects) {
    by.groups
        .create
        .send(Create {
            name: name.to_owned(),
        })
        .await
        .expect("stage alive")
        .expect("created")
}

async fn change(by: &Device, group: GroupId, action: Action) -> Result<Effects, Error> {
    by.groups
        .change
        .send(Change { group, action })
        .await
        .expect("stage alive")
}

async fn info(of: &Device, group: GroupId) -> Result<groups::Summary, Error> {
    of.groups.info.send(Info(group)).await.expect("stage alive")
}

async fn post(by: &Device, group: GroupId, text: &str) -> Result<crypto::Sealed, Error> {
    by.groups
        .post
        .send(Post {
            group,
            plaintext: Bytes::from(text.to_owned()),
        })
        .await
        .expect("stage alive")
}

async fn open(by: &Device, sealed: &crypto::Sealed) -> Result<groups::Opened, Error> {
    by.groups
        .open
        .send(groups::Open(delivery(sealed)))
        .await
        .expect("stage alive")
}

/// Alice creates a group and adds Bob; answers the group.
async fn pair_in_a_group(alice: &Device, bob: &Device) -> GroupId {
    introduce(alice, bob).await;
    let (group, effects) = create(alice, "conformance").await;
    follow(alice, effects, &[alice, bob]).await;
    let added = change(alice, group, Action::Add(bob.account))
        .await
        .expect("the owner adds");
    follow(alice, added, &[alice, bob]).await;
    group
}

/// A new group has its creator as owner, is listed, and its topic is to be
/// subscribed.
pub async fn creates_a_group_it_lists_and_subscribes<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let alice = device(&start).await;
    let (group, effects) = create(&alice, "a group").await;
    assert_eq!(effects.subscribe, vec![groups::topic(group)]);
    let summary = info(&alice, group).await.expect("known");
    assert_eq!(summary.name, "a group");
    assert_eq!(summary.members, vec![(alice.account, Role::Owner)]);
    let listed = alice
        .groups
        .list
        .send(List)
        .await
        .expect("stage alive")
        .expect("a list");
    assert!(listed.iter().any(|s| s.id == group));
    let topics = alice
        .groups
        .topics
        .send(Topics)
        .await
        .expect("stage alive")
        .expect("topics");
    assert_eq!(topics, vec![groups::topic(group)]);
}

/// A member added by the owner learns the group through the pairwise
/// controls, and reads and writes it, each message with its verified sender.
pub async fn an_added_member_reads_and_writes<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    let members = info(&bob, group).await.expect("bob knows it").members;
    assert!(members.contains(&(alice.account, Role::Owner)));
    assert!(members.contains(&(bob.account, Role::Member)));

    let sealed = post(&alice, group, "hello group").await.expect("sealed");
    assert_eq!(sealed.content_topic, groups::topic(group));
    let opened = open(&bob, &sealed).await.expect("bob reads");
    assert_eq!(opened.plaintext.as_ref(), b"hello group");
    assert_eq!((opened.sender, opened.role), (alice.account, Role::Owner));

    let sealed = post(&bob, group, "hi").await.expect("bob writes");
    let opened = open(&alice, &sealed).await.expect("alice reads");
    assert_eq!(
        (opened.sender, opened.plaintext.as_ref()),
        (bob.account, &b"hi"[..])
    );
}

/// A member's change its role does not allow is refused and changes
/// nothing.
pub async fn refuses_what_a_role_does_not_allow<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    for action in [
        Action::Remove(alice.account),
        Action::Rename("mine now".to_owned()),
        Action::SetJoinMode(JoinMode::Open),
    ] {
        let refused = change(&bob, group, action.clone()).await;
        assert!(
            matches!(refused, Err(Error::Forbidden(_))),
            "{action:?}: {refused:?}"
        );
    }
    let summary = info(&alice, group).await.expect("known");
    assert_eq!(summary.name, "conformance");
    assert_eq!(summary.members.len(), 2);
    assert_eq!(summary.join_mode, JoinMode::Invite);
}

/// After its removal a member opens nothing sent afterwards, and what it
/// sends is refused.
pub async fn a_removed_member_reads_nothing_after<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    let before = post(&bob, group, "before").await.expect("a member writes");
    assert!(open(&alice, &before).await.is_ok(), "a member's post opens");
    let removed = change(&alice, group, Action::Remove(bob.account))
        .await
        .expect("the owner removes");
    follow(&alice, removed, &[&alice, &bob]).await;
    assert_eq!(info(&alice, group).await.expect("known").members.len(), 1);

    let after = post(&alice, group, "after").await.expect("sealed");
    assert!(
        open(&bob, &after).await.is_err(),
        "the removed member reads it"
    );
    let late = post(&bob, group, "late").await;
    if let Ok(late) = late {
        assert!(
            open(&alice, &late).await.is_err(),
            "a removed member's post opens"
        );
    }
}

/// `Revoked`: the revoked device's chain is dropped (what it sends opens no
/// more), and the stage starts a new chain for the members that remain,
/// which the revoked device never gets.
pub async fn a_revoked_device_reads_and_writes_nothing_after<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    let (_, bobs_device) = bob
        .crypto
        .identity
        .send(Identity)
        .await
        .expect("stage alive")
        .expect("an identity");
    let before = post(&bob, group, "before").await.expect("a member writes");
    assert!(open(&alice, &before).await.is_ok());
    let late = post(&bob, group, "from the stolen phone")
        .await
        .expect("sealed");
    let renewed = alice
        .groups
        .revoked
        .send(groups::Revoked {
            account: bob.account,
            device: bobs_device,
        })
        .await
        .expect("stage alive")
        .expect("revoked");
    assert_eq!(
        renewed
            .pairwise
            .iter()
            .map(|(to, _)| *to)
            .collect::<Vec<_>>(),
        vec![bob.account],
        "a new chain for the account's other devices"
    );
    assert!(
        open(&alice, &late).await.is_err(),
        "the revoked device's chain is dropped"
    );
    // What Alice sends now is on the new chain; the revoked device, which
    // never gets it, reads nothing.
    let after = post(&alice, group, "after").await.expect("sealed");
    assert!(
        open(&bob, &after).await.is_err(),
        "the revoked device reads it"
    );
}

/// A tampered message, a replay, a message for no known group and the
/// sender's own message come back are each refused with a typed error; the
/// group goes on.
pub async fn refuses_tampered_replayed_and_stray_messages<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    let sealed = post(&alice, group, "original").await.expect("sealed");
    let mut bytes = sealed.payload.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = crypto::Sealed::new(sealed.content_topic.clone(), Bytes::from(bytes));
    assert!(open(&bob, &tampered).await.is_err(), "a flipped bit opens");
    assert!(open(&bob, &sealed).await.is_ok());
    assert_eq!(open(&bob, &sealed).await.err(), Some(Error::Replay));
    // Alice's own message, come back from a store node: handled when sent,
    // and no missing key to ask every member for.
    assert_eq!(open(&alice, &sealed).await.err(), Some(Error::Own));
    let asked = alice
        .groups
        .request_key
        .send(groups::RequestKey(delivery(&sealed)))
        .await
        .expect("stage alive")
        .expect("member");
    assert!(asked.pairwise.is_empty(), "asked for its own key");
    let stray = crypto::Sealed::new(
        groups::topic(GroupId([7; 32])),
        Bytes::from_static(b"no group"),
    );
    assert_eq!(open(&bob, &stray).await.err(), Some(Error::UnknownChain));
    let garbage = bob
        .groups
        .control
        .send(Control {
            from: alice.account,
            device: crypto::DeviceId([0; 16]),
            message: Bytes::from_static(b"\xff\xff"),
            request: false,
        })
        .await
        .expect("stage alive");
    assert!(garbage.is_err(), "garbage control applied: {garbage:?}");
    let next = post(&alice, group, "still here").await.expect("sealed");
    assert!(open(&bob, &next).await.is_ok());
}

/// A message further ahead of its chain than the stage skips (run with
/// `max_skip` 1,000, the node's default) is refused as [`Error::TooFarAhead`]
/// (the pipeline holds it), advancing nothing: the first message still
/// opens, and once it did, the held one is within reach and opens too.
pub async fn a_message_too_far_ahead_advances_nothing_and_opens_after_the_rest<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    const MAX_SKIP: usize = 1_000;
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    let mut sealed = Vec::with_capacity(MAX_SKIP + 2);
    for i in 0..MAX_SKIP + 2 {
        sealed.push(
            post(&alice, group, &format!("away {i}"))
                .await
                .expect("sealed"),
        );
    }
    let last = sealed.last().expect("posted");
    assert!(
        matches!(open(&bob, last).await, Err(Error::TooFarAhead(_))),
        "{} messages ahead opens",
        MAX_SKIP + 1
    );
    let first = open(&bob, &sealed[0]).await.expect("the first still opens");
    assert_eq!(first.plaintext.as_ref(), b"away 0");
    let held = open(&bob, last).await.expect("within reach now");
    assert_eq!(
        held.plaintext.as_ref(),
        format!("away {}", MAX_SKIP + 1).as_bytes()
    );
    let skipped = open(&bob, &sealed[1]).await.expect("a skipped one opens");
    assert_eq!(skipped.plaintext.as_ref(), b"away 1");
}

/// A panic in a handler is answered with [`Error::Restarted`]; the stage
/// restarts with its groups (read back from what it saved) and goes on.
pub async fn survives_a_panic_in_a_handler_with_its_groups<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    let group = pair_in_a_group(&alice, &bob).await;
    alice
        .groups
        .inject_panic
        .send(InjectPanic)
        .await
        .expect("stage alive");
    let met = post(&alice, group, "met the panic").await;
    assert!(
        matches!(met, Err(Error::Restarted(_))),
        "the post that met the panic: {met:?}"
    );
    let sealed = post(&alice, group, "after the restart")
        .await
        .expect("posts again");
    let opened = open(&bob, &sealed).await.expect("bob reads it");
    assert_eq!(opened.plaintext.as_ref(), b"after the restart");
    assert_eq!(info(&alice, group).await.expect("known").members.len(), 2);
}
