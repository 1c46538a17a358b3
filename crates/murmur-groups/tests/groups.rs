//! Membership logs: the same events in any order give the same state;
//! forged, replayed and unauthorized events change nothing.

use murmur_groups::{Action, Event, InsertError, Inserted, Log, MemberId, Role, SigningKey};
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
    match kind % 7 {
        0 => Action::Add(t),
        1 => Action::Remove(t),
        2 => Action::Leave,
        3 => Action::Promote(t),
        4 => Action::Demote(t),
        5 => Action::Rename(format!("name {target}")),
        _ => Action::Add(t),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Five members act concurrently on their own copies (rightly or not)
    /// and sync now and then; any order of the union gives one state.
    #[test]
    fn any_order_of_the_same_events_gives_the_same_state(
        steps in proptest::collection::vec((0u8..5, 0u8..7, 0u8..5, 0u8..5, any::<bool>()), 1..40),
        orders in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let (creator_log, create) = Log::create(&key(0), "group");
        let group = creator_log.group();
        let mut replicas: Vec<Log> = (0..5)
            .map(|n| if n == 0 { creator_log.clone() } else { replay(group, std::slice::from_ref(&create)) })
            .collect();
        let mut all = vec![create];
        for (actor, kind, target, to, sync) in steps {
            let event = replicas[actor as usize]
                .author(&key(actor), action(kind, target))
                .expect("a member's own event is well formed");
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
        let expected = reference.state();
        for seed in orders {
            let mut shuffled = all.clone();
            let mut rng = seed | 1;
            for i in (1..shuffled.len()).rev() {
                rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
                shuffled.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            let log = replay(group, &shuffled);
            prop_assert_eq!(log.pending(), 0);
            prop_assert_eq!(log.state(), expected.clone());
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
    let state = log.state();
    assert_eq!(state.name, "best friends");
    assert_eq!(state.role(&id(0)), Some(Role::Admin));
    assert_eq!(state.role(&id(1)), Some(Role::Admin));
    assert_eq!(state.role(&id(2)), Some(Role::Member));
    assert!(state.rejected.is_empty());
}

#[test]
fn unauthorized_events_are_kept_but_change_nothing() {
    let (mut log, _) = Log::create(&key(0), "g");
    log.author(&key(0), Action::Add(id(1))).unwrap();
    let before = log.state();
    // A member acts as an admin; an outsider acts at all; an admin tries
    // to remove or demote the creator.
    let tries = [
        log.author(&key(1), Action::Add(id(2))).unwrap(),
        log.author(&key(1), Action::Rename("mine".into())).unwrap(),
        log.author(&key(3), Action::Add(id(3))).unwrap(),
        log.author(&key(3), Action::Leave).unwrap(),
    ];
    let state = log.state();
    assert_eq!(state.members, before.members);
    assert_eq!(state.name, before.name);
    for e in &tries {
        assert!(state.rejected.contains(&e.id()), "{:?}", e.action);
    }
    log.author(&key(0), Action::Promote(id(1))).unwrap();
    let e = log.author(&key(1), Action::Remove(id(0))).unwrap();
    let e2 = log.author(&key(1), Action::Demote(id(0))).unwrap();
    let state = log.state();
    assert!(state.rejected.contains(&e.id()) && state.rejected.contains(&e2.id()));
    assert_eq!(state.role(&id(0)), Some(Role::Admin));
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
    let state = log.state();
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
    let before = log.state();
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
    assert_eq!(late.state().members.len(), 0);
    assert_eq!(late.insert(create), Ok(Inserted::Applied));
    assert_eq!(late.pending(), 0);
    assert_eq!(late.state(), log.state());
}
