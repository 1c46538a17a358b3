//! Membership logs: the same events in any order give the same state;
//! forged, replayed and unauthorized events change nothing.

use murmur_groups::{
    Action, Event, InsertError, Inserted, JoinMode, Log, MemberId, Role, SigningKey,
};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n + 1; 32])
}

fn id(n: u8) -> MemberId {
    key(n).verifying_key().into()
}

/// Inserts `events` into a fresh log in the given order.
fn replay(group: murmur_groups::GroupId, events: &[Event]) -> Log {
    let mut log = Log::new(group);
    for e in events {
        let _ = log.insert(e.clone());
    }
    log
}

fn action(kind: u8, target: u8) -> Action {
    let t = id(target);
    match kind % 16 {
        0 => Action::Add(t),
        1 => Action::Remove(t),
        2 => Action::Leave,
        3 => Action::Promote(t),
        4 => Action::Demote(t),
        5 => Action::Rename(format!("name {target}")),
        6 => Action::SetRole(
            t,
            [Role::Admin, Role::Moderator, Role::Member, Role::Owner][target as usize % 4],
        ),
        7 => Action::Ban(t),
        8 => Action::Unban(t),
        9 => Action::Channel(format!("c{}", target % 2)),
        10 => Action::DropChannel(format!("c{}", target % 2)),
        11 => Action::Pin([target % 2; 16]),
        12 => Action::Delete([target % 2; 16]),
        13 => Action::JoinMode(
            [JoinMode::Open, JoinMode::Approval, JoinMode::Invite][target as usize % 3],
        ),
        14 => Action::Invite([target % 2; 32]),
        _ => Action::Add(t),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Five members act concurrently on their own copies (rightly or not)
    /// and sync now and then; any order of the union gives one state.
    #[test]
    fn any_order_of_the_same_events_gives_the_same_state(
        steps in proptest::collection::vec((0u8..5, 0u8..16, 0u8..5, 0u8..5, any::<bool>()), 1..40),
        orders in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let (creator_log, create) = Log::create(&key(0), "group");
        let group = creator_log.group();
        let mut replicas: Vec<Log> = (0..5)
            .map(|n| if n == 0 { creator_log.clone() } else { replay(group, std::slice::from_ref(&create)) })
            .collect();
        let mut all = vec![create];
        for (actor, kind, target, to, sync) in steps {
            // An account never added writes nothing, not even on its own copy.
            let Ok(event) = replicas[actor as usize].author(&key(actor), action(kind, target)) else {
                continue;
            };
            all.push(event);
            if sync {
                let known: Vec<Event> = replicas[actor as usize].events().cloned().collect();
                for e in known {
                    let _ = replicas[to as usize].insert(e);
                }
            }
        }
        let reference = replay(group, &all);
        prop_assert_eq!(reference.pending(), 0);
        let expected = reference.state().clone();
        for seed in orders {
            let mut shuffled = all.clone();
            let mut rng = seed | 1;
            for i in (1..shuffled.len()).rev() {
                rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
                shuffled.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            let log = replay(group, &shuffled);
            prop_assert_eq!(log.pending(), 0);
            prop_assert_eq!(log.state().clone(), expected.clone());
        }
    }
}

#[test]
fn the_creator_is_the_first_admin_and_admins_manage_members() {
    let (mut log, _) = Log::create(&key(0), "friends");
    log.author(&key(0), Action::Add(id(1))).unwrap();
    log.author(&key(0), Action::Promote(id(1))).unwrap();
    log.author(&key(1), Action::Add(id(2))).unwrap();
    log.author(&key(1), Action::Rename("best friends".into()))
        .unwrap();
    let state = log.state().clone();
    assert_eq!(state.name, "best friends");
    assert_eq!(state.role(&id(0)), Some(Role::Owner));
    assert_eq!(state.role(&id(1)), Some(Role::Admin));
    assert_eq!(state.role(&id(2)), Some(Role::Member));
    assert!(state.rejected.is_empty());
}

#[test]
fn unauthorized_events_are_kept_but_change_nothing() {
    let (mut log, _) = Log::create(&key(0), "g");
    log.author(&key(0), Action::Add(id(1))).unwrap();
    let before = log.state().clone();
    // A member acts as an admin; an admin tries to remove or demote the
    // creator. (An outsider writes nothing at all: see
    // `a_stranger_writes_nothing_into_the_log`.)
    let tries = [
        log.author(&key(1), Action::Add(id(2))).unwrap(),
        log.author(&key(1), Action::Rename("mine".into())).unwrap(),
    ];
    let state = log.state().clone();
    assert_eq!(state.members, before.members);
    assert_eq!(state.name, before.name);
    for e in &tries {
        assert!(state.rejected.contains(&e.id()), "{:?}", e.action);
    }
    log.author(&key(0), Action::Promote(id(1))).unwrap();
    let e = log.author(&key(1), Action::Remove(id(0))).unwrap();
    let e2 = log.author(&key(1), Action::Demote(id(0))).unwrap();
    let state = log.state().clone();
    assert!(state.rejected.contains(&e.id()) && state.rejected.contains(&e2.id()));
    assert_eq!(state.role(&id(0)), Some(Role::Owner));
}

#[test]
fn a_removed_admin_can_do_nothing_afterwards() {
    let (mut log, _) = Log::create(&key(0), "g");
    for n in [1, 2] {
        log.author(&key(0), Action::Add(id(n))).unwrap();
    }
    log.author(&key(0), Action::Promote(id(1))).unwrap();
    log.author(&key(0), Action::Remove(id(1))).unwrap();
    let late = log.author(&key(1), Action::Remove(id(2))).unwrap();
    let state = log.state().clone();
    assert!(state.rejected.contains(&late.id()));
    assert_eq!(state.role(&id(2)), Some(Role::Member));
    assert_eq!(state.role(&id(1)), None);
}

#[test]
fn forged_foreign_replayed_and_malformed_events_are_refused() {
    let (mut log, create) = Log::create(&key(0), "g");
    let add = log.author(&key(0), Action::Add(id(1))).unwrap();
    let mut forged = add.clone();
    forged.action = Action::Add(id(4));
    let mut other = Log::new(log.group());
    assert_eq!(other.insert(forged), Err(InsertError::BadSignature));
    assert_eq!(log.insert(add.clone()), Err(InsertError::Duplicate));
    let (mut elsewhere, _) = Log::create(&key(2), "other");
    let foreign = elsewhere.author(&key(2), Action::Add(id(3))).unwrap();
    assert_eq!(log.insert(foreign), Err(InsertError::WrongGroup));
    assert_eq!(log.insert(create.clone()), Err(InsertError::Duplicate));
    let too_long = log.author(&key(0), Action::Rename("x".repeat(300)));
    assert_eq!(too_long, Err(InsertError::NameTooLong));
    let before = log.state().clone();
    assert_eq!(before.name, "g");
}

#[test]
fn an_event_waits_for_its_parents() {
    let (mut log, create) = Log::create(&key(0), "g");
    let a = log.author(&key(0), Action::Add(id(1))).unwrap();
    let b = log.author(&key(0), Action::Promote(id(1))).unwrap();
    let mut late = Log::new(log.group());
    assert_eq!(late.insert(b), Ok(Inserted::Pending));
    assert_eq!(late.insert(a), Ok(Inserted::Pending));
    assert_eq!(late.state().clone().members.len(), 0);
    assert_eq!(late.insert(create), Ok(Inserted::Applied));
    assert_eq!(late.pending(), 0);
    assert_eq!(late.state().clone(), log.state().clone());
}

#[test]
fn community_roles_hold_their_rights_and_no_more() {
    let (mut log, _) = Log::create(&key(0), "community");
    for n in 1..=4 {
        log.author(&key(0), Action::Add(id(n))).unwrap();
    }
    log.author(&key(0), Action::SetRole(id(1), Role::Admin))
        .unwrap();
    log.author(&key(1), Action::SetRole(id(2), Role::Moderator))
        .unwrap();
    let denied = [
        // An admin makes no admins, and cannot touch the owner or admins.
        log.author(&key(1), Action::SetRole(id(3), Role::Admin))
            .unwrap(),
        log.author(&key(1), Action::Ban(id(0))).unwrap(),
        // A moderator bans no moderator or admin, opens no channel.
        log.author(&key(2), Action::Ban(id(1))).unwrap(),
        log.author(&key(2), Action::Channel("mods".into())).unwrap(),
        // A member moderates nothing.
        log.author(&key(3), Action::Delete([7; 16])).unwrap(),
        log.author(&key(3), Action::Remove(id(4))).unwrap(),
        // Nobody makes an owner.
        log.author(&key(0), Action::SetRole(id(3), Role::Owner))
            .unwrap(),
    ];
    let allowed = [
        log.author(&key(1), Action::Channel("general".into()))
            .unwrap(),
        log.author(&key(1), Action::JoinMode(JoinMode::Approval))
            .unwrap(),
        log.author(&key(1), Action::Invite([9; 32])).unwrap(),
        log.author(&key(2), Action::Pin([5; 16])).unwrap(),
        log.author(&key(2), Action::Delete([6; 16])).unwrap(),
        log.author(&key(2), Action::Ban(id(4))).unwrap(),
    ];
    let state = log.state().clone();
    for e in &denied {
        assert!(
            state.rejected.contains(&e.id()),
            "{:?} by {:?}",
            e.action,
            e.author
        );
    }
    for e in &allowed {
        assert!(
            !state.rejected.contains(&e.id()),
            "{:?} by {:?}",
            e.action,
            e.author
        );
    }
    assert_eq!(state.role(&id(0)), Some(Role::Owner));
    assert_eq!(state.role(&id(2)), Some(Role::Moderator));
    assert_eq!(state.role(&id(3)), Some(Role::Member));
    assert_eq!(state.role(&id(4)), None, "banned members are out");
    assert!(state.banned.contains(&id(4)));
    assert!(state.channels.contains("general") && !state.channels.contains("mods"));
    assert_eq!(state.join_mode, JoinMode::Approval);
    assert!(state.invites.contains_key(&[9; 32]));
    assert!(state.pinned.contains(&[5; 16]) && state.deleted.contains(&[6; 16]));

    // A banned account cannot be added back until it is unbanned.
    let back = log.author(&key(1), Action::Add(id(4))).unwrap();
    assert!(log.state().clone().rejected.contains(&back.id()));
    log.author(&key(2), Action::Unban(id(4))).unwrap();
    log.author(&key(1), Action::Add(id(4))).unwrap();
    assert_eq!(log.state().clone().role(&id(4)), Some(Role::Member));
}

#[test]
fn community_events_survive_their_wire_form() {
    let (mut log, _) = Log::create(&key(0), "c");
    let actions = [
        Action::SetRole(id(1), Role::Moderator),
        Action::Ban(id(2)),
        Action::Unban(id(2)),
        Action::Channel("general".into()),
        Action::DropChannel("general".into()),
        Action::Pin([1; 16]),
        Action::Unpin([1; 16]),
        Action::Delete([2; 16]),
        Action::JoinMode(JoinMode::Open),
        Action::Invite([3; 32]),
        Action::RevokeInvite([3; 32]),
    ];
    for a in actions {
        let e = log.author(&key(0), a).unwrap();
        assert_eq!(Event::from_bytes(&e.to_bytes()), Ok(e));
    }
}

#[test]
fn an_author_learns_before_signing_whether_its_event_would_hold() {
    let (mut log, _) = Log::create(&key(0), "g");
    log.author(&key(0), Action::Add(id(1))).unwrap();
    assert!(log.allows(&log.prepare(id(0), Action::Remove(id(1)))));
    assert!(!log.allows(&log.prepare(id(1), Action::Remove(id(0)))));
    assert!(!log.allows(&log.prepare(id(1), Action::Channel("x".into()))));
    let before = log.events().count();
    assert!(!log.allows(&log.prepare(id(1), Action::Ban(id(0)))));
    assert_eq!(log.events().count(), before, "asking changes nothing");
}

/// `action` by `who`, signed, on top of what `log` holds.
fn signed(log: &Log, who: u8, action: Action) -> Event {
    let unsigned = log.prepare(id(who), action);
    let signature = ed25519_dalek::Signer::sign(&key(who), &unsigned.signed_bytes());
    unsigned.sign(signature.to_bytes())
}

#[test]
fn events_waiting_for_parents_are_bounded_per_author_and_evicted() {
    let (mut log, _) = Log::create(&key(0), "g");
    log.author(&key(0), Action::Add(id(1))).unwrap();
    // A member's event that waits for a parent still on its way.
    let mut view = log.clone();
    let parent = view
        .author(&key(0), Action::Rename("first".into()))
        .unwrap();
    let waiting = view.author(&key(1), Action::Leave).unwrap();
    assert_eq!(log.insert(waiting), Ok(Inserted::Pending));
    // Strangers flood the log with events on a parent it does not have:
    // each author's are bounded, and so is the whole, the biggest author's
    // evicted first.
    let mut branch = log.clone();
    branch
        .author(&key(0), Action::Rename("elsewhere".into()))
        .unwrap();
    for stranger in 10..20u8 {
        for n in 0..300 {
            let e = signed(&branch, stranger, Action::Rename(format!("{stranger}/{n}")));
            assert_eq!(log.insert(e), Ok(Inserted::Pending));
        }
        if stranger == 10 {
            assert_eq!(log.pending(), 1 + murmur_groups::MAX_PENDING_PER_AUTHOR);
        }
        assert!(log.pending() <= murmur_groups::MAX_PENDING);
    }
    // The member's event survived the flood, and applies with its parent.
    assert_eq!(log.insert(parent), Ok(Inserted::Applied));
    assert_eq!(log.state().name, "first");
    assert_eq!(log.state().role(&id(1)), None, "the member left");
}

#[test]
fn a_stranger_writes_nothing_into_the_log() {
    let (mut log, _) = Log::create(&key(0), "g");
    let events_before = log.all_events().count();
    for action in [
        Action::Leave,
        Action::Rename("mine".into()),
        Action::Add(id(9)),
    ] {
        assert_eq!(
            log.insert(signed(&log, 7, action)),
            Err(InsertError::NotMember)
        );
    }
    assert_eq!(log.all_events().count(), events_before, "nothing kept");
    assert_eq!(log.state().name, "g");
}
