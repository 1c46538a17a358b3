//! Communities over real libp2p nodes on loopback: roles and their rights,
//! channels, pins and deletions every member's node enforces, bans, and
//! joining by invite code and by approval while the owner is offline.

use std::time::Duration;

use murmur::{
    core::groups,
    node::{
        chat::{ChatMessage, Group, Inbox, JoinMode, Notice, Notices, Role},
        groups::group_topic,
        Error, Node,
    },
};

use crate::support::{account, befriend, chat_node, next_in_group, WAIT};

async fn node(dir: &std::path::Path, relay: Option<&Node>) -> Node {
    chat_node(dir, relay).await
}

async fn next_in(inbox: &mut Inbox, group: &Group, what: &str) -> ChatMessage {
    next_in_group(inbox, Some(group.id()), what).await
}

/// The next notice that `wanted` accepts.
async fn notice(notices: &mut Notices, what: &str, wanted: impl Fn(&Notice) -> bool) -> Notice {
    loop {
        let n = notices
            .recv_timeout(WAIT)
            .await
            .unwrap_or_else(|| panic!("no notice within {WAIT:?}: {what}"));
        if wanted(&n) {
            return n;
        }
    }
}

/// Waits until `node`'s copy of `group` satisfies `ok`.
async fn until(node: &Node, group: &Group, what: &str, ok: impl Fn(&groups::Summary) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node.group(group.id()).info().await.is_ok_and(|i| ok(&i)) {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn forbidden(result: Result<(), Error>) -> String {
    match result {
        Err(Error::Group(groups::Error::Forbidden(why))) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[actix_rt::test]
async fn community_roles_channels_pins_deletions_and_bans_hold_on_every_node() {
    let dirs = [(); 6].map(|_| tempfile::tempdir().unwrap());
    let relay = node(dirs[0].path(), None).await;
    let mut nodes = Vec::new();
    for dir in &dirs[1..] {
        nodes.push(node(dir.path(), Some(&relay)).await);
    }
    let [owner, admin, moderator, bob, carol] = &nodes[..] else {
        unreachable!()
    };
    let mut ids = Vec::new();
    for n in &nodes[1..] {
        ids.push(befriend(owner, n).await);
    }
    let (a, m, b, c) = (ids[0], ids[1], ids[2], ids[3]);
    let club = owner
        .create_community("club", &["general", "random"], JoinMode::Invite)
        .await
        .unwrap();
    for id in &ids {
        club.add(*id).await.unwrap();
    }
    club.set_role(a, Role::Admin).await.unwrap();
    until(admin, &club, "the admin knows it is one", |i| {
        i.role(&a) == Some(Role::Admin)
    })
    .await;
    admin
        .group(club.id())
        .set_role(m, Role::Moderator)
        .await
        .unwrap();
    for n in &nodes {
        until(n, &club, "every member sees the roles", |i| {
            i.members.len() == 5 && i.role(&m) == Some(Role::Moderator) && i.channels.len() == 2
        })
        .await;
        n.wait_for_peers(&n.pubsub_topic(&group_topic(club.id())), 1, WAIT)
            .await
            .unwrap();
    }
    let mut carol_inbox = carol.inbox().await.unwrap();
    let mut carol_notices = carol.notices().await.unwrap();

    // Channels: messages carry theirs; a channel that is not open refuses.
    let hello = bob
        .group(club.id())
        .channel("general")
        .send_text("hello #general")
        .await
        .unwrap();
    let got = next_in(&mut carol_inbox, &club, "Carol reads #general").await;
    assert_eq!(
        (got.id, got.channel.as_deref()),
        (hello.id, Some("general"))
    );
    let err = bob
        .group(club.id())
        .channel("secret")
        .send_text("psst")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no channel #secret"), "{err}");

    // Roles: a member moderates nothing; an admin makes no admins.
    let why = forbidden(bob.group(club.id()).ban(c).await);
    assert!(why.contains("moderators"), "{why}");
    forbidden(admin.group(club.id()).set_role(m, Role::Admin).await);
    forbidden(moderator.group(club.id()).open_channel("mods").await);

    // A moderator pins and deletes: every member's node knows.
    let moderators = moderator.group(club.id());
    moderators.pin(hello.id).await.unwrap();
    let n = notice(&mut carol_notices, "pinned", |n| {
        matches!(n, Notice::Pinned { .. })
    })
    .await;
    assert_eq!(
        n,
        Notice::Pinned {
            group: club.id(),
            message: hello.id
        }
    );
    let oops = bob
        .group(club.id())
        .send_text("my password is hunter2")
        .await
        .unwrap();
    assert_eq!(
        next_in(&mut carol_inbox, &club, "before the deletion")
            .await
            .id,
        oops.id
    );
    moderators.delete(oops.id).await.unwrap();
    let n = notice(&mut carol_notices, "deleted", |n| {
        matches!(n, Notice::Deleted { .. })
    })
    .await;
    assert_eq!(
        n,
        Notice::Deleted {
            group: club.id(),
            message: oops.id
        }
    );

    // A ban removes Bob and keeps him out until a moderator lifts it.
    moderators.ban(b).await.unwrap();
    until(carol, &club, "Bob banned", |i| {
        i.role(&b).is_none() && i.banned.contains(&b)
    })
    .await;
    until(bob, &club, "Bob's own node knows", |i| !i.member).await;
    until(admin, &club, "the admin's node knows", |i| {
        i.banned.contains(&b)
    })
    .await;
    let err = bob
        .group(club.id())
        .send_text("still here?")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Group(groups::Error::NotMember(_))),
        "{err}"
    );
    forbidden(admin.group(club.id()).add(b).await);
    moderators.unban(b).await.unwrap();
    until(admin, &club, "unbanned", |i| !i.banned.contains(&b)).await;
    admin.group(club.id()).add(b).await.unwrap();
    until(carol, &club, "Bob back", |i| {
        i.role(&b) == Some(Role::Member)
    })
    .await;
    let info = carol.group(club.id()).info().await.unwrap();
    assert_eq!(info.pinned, vec![hello.id]);
    assert_eq!(info.role(&account(owner).await), Some(Role::Owner));
}

#[actix_rt::test]
async fn newcomers_join_by_invite_and_by_approval_while_the_owner_is_offline() {
    let dirs = [(); 5].map(|_| tempfile::tempdir().unwrap());
    let relay = node(dirs[0].path(), None).await;
    let owner = node(dirs[1].path(), Some(&relay)).await;
    let admin = node(dirs[2].path(), Some(&relay)).await;
    let invited = node(dirs[3].path(), Some(&relay)).await;
    let asking = node(dirs[4].path(), Some(&relay)).await;
    let a = befriend(&owner, &admin).await;
    let club = owner
        .create_community("club", &["general"], JoinMode::Approval)
        .await
        .unwrap();
    club.add(a).await.unwrap();
    club.set_role(a, Role::Admin).await.unwrap();
    until(&admin, &club, "an admin", |i| {
        i.role(&a) == Some(Role::Admin)
    })
    .await;

    // The owner's only device goes offline; the community goes on.
    owner.go_offline().await.unwrap();
    let admins = admin.group(club.id());
    let code = admins.invite_code().await.unwrap();
    let mut admin_inbox = admin.inbox().await.unwrap();
    let mut admin_notices = admin.notices().await.unwrap();
    assert_eq!(invited.join(&code).await.unwrap(), club.id());
    let i = account(&invited).await;
    until(&invited, &club, "the invited account is in", |s| {
        s.role(&i) == Some(Role::Member)
    })
    .await;
    invited
        .wait_for_peers(&invited.pubsub_topic(&group_topic(club.id())), 1, WAIT)
        .await
        .unwrap();
    let hi = invited
        .group(club.id())
        .channel("general")
        .send_text("hi, I was invited")
        .await
        .unwrap();
    assert_eq!(
        next_in(&mut admin_inbox, &club, "the admin reads the newcomer")
            .await
            .id,
        hi.id
    );

    // A link asks; the admin approves.
    let link = admins.link().await.unwrap();
    asking.join(&link).await.unwrap();
    let s = account(&asking).await;
    let n = notice(&mut admin_notices, "a request", |n| {
        matches!(n, Notice::Requested { .. })
    })
    .await;
    assert_eq!(
        n,
        Notice::Requested {
            group: club.id(),
            account: s
        }
    );
    assert_eq!(admins.requests().await.unwrap(), vec![s]);
    assert!(
        asking.group(club.id()).info().await.is_err(),
        "not in before approval"
    );
    admins.approve(s).await.unwrap();
    until(&asking, &club, "approved", |x| {
        x.role(&s) == Some(Role::Member)
    })
    .await;
    assert!(admins.requests().await.unwrap().is_empty());
    asking
        .wait_for_peers(&asking.pubsub_topic(&group_topic(club.id())), 1, WAIT)
        .await
        .unwrap();
    let mut asking_inbox = asking.inbox().await.unwrap();
    // What a member sends before it has applied a join is not for the
    // joiner (its chain reaches the joiner at its position then): wait for
    // the sender's own view.
    until(
        &invited,
        &club,
        "the invited member sees the approval",
        |x| x.role(&s) == Some(Role::Member),
    )
    .await;
    invited.group(club.id()).send_text("welcome").await.unwrap();
    let got = next_in(&mut asking_inbox, &club, "newcomers read each other").await;
    assert_eq!(got.text(), Some("welcome"));

    // A bad code is a typed error.
    let err = asking.join("murmur-join:AAAA").await.unwrap_err();
    assert!(err.to_string().contains("invite code"), "{err}");
}
