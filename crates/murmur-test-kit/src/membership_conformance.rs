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

mod journal;
pub use journal::keeps_what_it_opened_until_it_is_handled;

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
            case!(admits_by_invite_and_keeps_requests_for_approval);
            case!(survives_a_panic_in_a_handler_with_its_groups);
            case!(an_account_not_accepted_adds_this_one_to_no_group);
            case!(a_member_who_missed_an_event_pulls_it_from_the_next_message);
            case!(a_joiner_gets_a_log_longer_than_one_envelope);
            case!(keeps_what_it_opened_until_it_is_handled);
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

/// A tampered message, a replay and a message for no known group are each
/// refused with a typed error; the group goes on.
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

/// A chat text as the node encodes it: group messages that are chat
/// content carry their sender's log heads.
async fn post_text(by: &Device, group: GroupId, text: &str) -> crypto::Sealed {
    use prost::Message as _;
    let content = murmur_proto::chat::Content {
        id: rand_id().to_vec(),
        sent_at: 1,
        text: Some(text.to_owned()),
        ..Default::default()
    };
    by.groups
        .post
        .send(Post {
            group,
            plaintext: Bytes::from(content.encode_to_vec()),
        })
        .await
        .expect("stage alive")
        .expect("sealed")
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(0);
    [NEXT.fetch_add(1, Ordering::Relaxed); 16]
}

/// A member that missed a membership event learns it from the next
/// message of a member that has it: the message names its sender's log
/// heads, the reader asks that member for its log (once per head), and
/// applies it. A device that is not a member gets nothing by asking.
pub async fn a_member_who_missed_an_event_pulls_it_from_the_next_message<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob, carol) = (
        device(&start).await,
        device(&start).await,
        device(&start).await,
    );
    let group = pair_in_a_group(&alice, &bob).await;
    // Alice renames the group; the event never reaches Bob.
    change(&alice, group, Action::Rename("renamed".to_owned()))
        .await
        .expect("renamed");
    let sealed = post_text(&alice, group, "after the rename").await;
    let opened = open(&bob, &sealed).await.expect("Bob reads");
    assert_eq!(info(&bob, group).await.expect("known").name, "conformance");
    assert!(!opened.effects.pairwise.is_empty(), "Bob asks for the log");
    follow(&bob, opened.effects.clone(), &[&alice, &bob]).await;
    assert_eq!(info(&bob, group).await.expect("known").name, "renamed");
    // Asked once: the same heads again ask nothing.
    let again = post_text(&alice, group, "again").await;
    assert!(open(&bob, &again).await.expect("reads").effects.is_empty());

    // Carol, no member, asks Alice for the log: refused.
    let asked = raw_control(
        &alice,
        carol.account,
        murmur_proto::chat::GroupControl {
            group: group.0.to_vec(),
            want: true,
            ..Default::default()
        },
        false,
    )
    .await;
    assert_eq!(asked.err(), Some(Error::NotMember(group)));
}

/// A group whose log is longer than one envelope carries (150 KiB on the
/// relay) still reaches a joiner: in several control messages, each well
/// under it, which together make the whole log.
pub async fn a_joiner_gets_a_log_longer_than_one_envelope<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    introduce(&alice, &bob).await;
    let (group, _) = create(&alice, "long").await;
    let long = "n".repeat(200);
    for i in 0..700 {
        change(&alice, group, Action::Rename(format!("{long}{i}")))
            .await
            .expect("renamed");
    }
    let added = change(&alice, group, Action::Add(bob.account))
        .await
        .expect("the owner adds");
    let to_bob: Vec<&Bytes> = added
        .pairwise
        .iter()
        .filter(|(to, _)| *to == bob.account)
        .map(|(_, m)| m)
        .collect();
    let total: usize = to_bob.iter().map(|m| m.len()).sum();
    assert!(
        total > 150 * 1024,
        "the log is longer than an envelope: {total}"
    );
    assert!(to_bob.len() > 1);
    for m in &to_bob {
        assert!(
            m.len() < 100 * 1024,
            "a control message of {} bytes",
            m.len()
        );
    }
    follow(&alice, added, &[&alice, &bob]).await;
    let summary = info(&bob, group).await.expect("Bob has the group");
    assert_eq!(summary.name, format!("{long}699"));
    assert!(summary.member);
}

/// `from`'s control message `control` (as the pipeline hands it over), sent
/// to `to`'s membership stage.
async fn raw_control(
    to: &Device,
    from: AccountId,
    control: murmur_proto::chat::GroupControl,
    request: bool,
) -> Result<Effects, Error> {
    use prost::Message as _;
    let message = murmur_proto::chat::Content {
        id: rand_id().to_vec(),
        group: Some(control),
        ..Default::default()
    }
    .encode_to_vec();
    to.groups
        .control
        .send(Control {
            from,
            device: crypto::DeviceId([0; 16]),
            message: Bytes::from(message),
            request,
        })
        .await
        .expect("stage alive")
}
