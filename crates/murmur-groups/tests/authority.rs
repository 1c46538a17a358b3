//! Authority that removal takes away for good: the tests an attacker would
//! write. A removed or demoted member signs events on a view of the log
//! from before it lost its rights (back-dated), grinds ids, chains such
//! events, and races its demotion; none of it counts, in any order of
//! arrival. And the rights as documented: only the owner makes and unmakes
//! admins, a moderator does not lift an admin's ban, an invite stops
//! admitting when its admin is one no more.

use murmur_groups::{
    invite::{self, Admission, Refused},
    Action, Event, JoinMode, Log, MemberId, Role, SigningKey,
};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n + 1; 32])
}

fn id(n: u8) -> MemberId {
    key(n).verifying_key().into()
}

const OWNER: u8 = 0;
const EVE: u8 = 1;

/// The owner's log: Eve added and promoted (to `role`), a member added,
/// then Eve removed. Answers it, and Eve's view from when she held `role`.
fn removed_after_holding(role: Role) -> (Log, Log) {
    let (mut log, _) = Log::create(&key(OWNER), "club");
    log.author(&key(OWNER), Action::Add(id(EVE))).unwrap();
    match role {
        Role::Admin => log.author(&key(OWNER), Action::Promote(id(EVE))),
        other => log.author(&key(OWNER), Action::SetRole(id(EVE), other)),
    }
    .unwrap();
    let eves_view = log.clone();
    log.author(&key(OWNER), Action::Add(id(2))).unwrap();
    log.author(&key(OWNER), Action::Remove(id(EVE))).unwrap();
    assert_eq!(log.state().role(&id(EVE)), None);
    (log, eves_view)
}

/// Eve signs `action` on her old view; answers the event.
fn back_dated(eves_view: &mut Log, action: Action) -> Event {
    eves_view.author(&key(EVE), action).unwrap()
}

#[test]
fn a_removed_admin_cannot_open_the_group_by_back_dating() {
    let (mut log, mut eves_view) = removed_after_holding(Role::Admin);
    let before = log.state().clone();
    let open = back_dated(&mut eves_view, Action::JoinMode(JoinMode::Open));
    log.insert(open.clone()).unwrap();
    assert_eq!(
        log.state().join_mode,
        JoinMode::Invite,
        "the group stays closed"
    );
    assert!(log.state().rejected.contains(&open.id()));
    assert_eq!(log.state().members, before.members);
}

#[test]
fn no_back_dated_admin_action_of_a_removed_admin_counts() {
    let secret = [7; 32];
    let actions = [
        Action::Invite(invite::hash(&secret)),
        Action::Add(id(9)),
        Action::SetRole(id(2), Role::Moderator),
        Action::Remove(id(2)),
        Action::Ban(id(2)),
        Action::Rename("Eve's now".into()),
        Action::Channel("eve".into()),
        Action::JoinMode(JoinMode::Approval),
        Action::Pin([1; 16]),
        Action::Delete([2; 16]),
    ];
    for action in actions {
        let (mut log, mut eves_view) = removed_after_holding(Role::Admin);
        let before = log.state().clone();
        let event = back_dated(&mut eves_view, action.clone());
        log.insert(event.clone()).unwrap();
        let after = log.state();
        assert!(after.rejected.contains(&event.id()), "{action:?} counted");
        let mut expected = before.clone();
        expected.rejected.insert(event.id());
        assert_eq!(*after, expected, "{action:?} changed the group");
        // The invite it tried to register admits no one.
        assert_eq!(
            after.admission(&id(OWNER), &id(9), Some(&secret)),
            Err(Refused::InviteOnly)
        );
    }
}

#[test]
fn a_removed_moderator_cannot_ban_unban_or_delete_by_back_dating() {
    for action in [
        Action::Ban(id(2)),
        Action::Delete([3; 16]),
        Action::Pin([3; 16]),
    ] {
        let (mut log, mut eves_view) = removed_after_holding(Role::Moderator);
        let event = back_dated(&mut eves_view, action.clone());
        log.insert(event.clone()).unwrap();
        assert!(log.state().rejected.contains(&event.id()), "{action:?}");
        assert!(log.state().banned.is_empty() && log.state().deleted.is_empty());
    }
    // A ban the owner set after Eve's removal, lifted by Eve on her old view.
    let (mut log, mut eves_view) = removed_after_holding(Role::Moderator);
    log.author(&key(OWNER), Action::Ban(id(5))).unwrap();
    let unban = back_dated(&mut eves_view, Action::Unban(id(5)));
    log.insert(unban).unwrap();
    assert!(log.state().banned.contains(&id(5)));
}

#[test]
fn ground_ids_and_chains_of_back_dated_events_count_no_more() {
    let (mut log, mut eves_view) = removed_after_holding(Role::Admin);
    // Many tries for an id that sorts well, each a chain on the last.
    for i in 0..64u32 {
        let e = back_dated(&mut eves_view, Action::Rename(format!("try {i}")));
        log.insert(e).unwrap();
    }
    assert_eq!(log.state().name, "club");
    // Eve's chain is a branch of 64 events none of which counts.
    assert!(log.state().rejected.len() >= 64);
    // Eve re-added later as a member gains nothing from her branch either.
    log.author(&key(OWNER), Action::Add(id(EVE))).unwrap();
    assert_eq!(log.state().role(&id(EVE)), Some(Role::Member));
    assert_eq!(log.state().name, "club");
}

#[test]
fn a_demotion_wins_over_what_the_admin_did_concurrently() {
    // The owner demotes Ada while Ada, not having seen it, adds Bob: Ada's
    // add does not count, on either side, in either order of arrival.
    let (mut base, _) = Log::create(&key(OWNER), "club");
    base.author(&key(OWNER), Action::Add(id(1))).unwrap();
    base.author(&key(OWNER), Action::Promote(id(1))).unwrap();
    let mut owners = base.clone();
    let mut adas = base.clone();
    let demote = owners.author(&key(OWNER), Action::Demote(id(1))).unwrap();
    let add = adas.author(&key(1), Action::Add(id(2))).unwrap();
    owners.insert(add.clone()).unwrap();
    adas.insert(demote).unwrap();
    for log in [&owners, &adas] {
        assert_eq!(
            log.state().role(&id(2)),
            None,
            "the concurrent add does not count"
        );
        assert_eq!(log.state().role(&id(1)), Some(Role::Member));
        assert!(log.state().rejected.contains(&add.id()));
    }
    assert_eq!(owners.state(), adas.state());
}

#[test]
fn a_member_removed_and_promoted_again_acts_again() {
    let (mut log, _) = removed_after_holding(Role::Admin);
    log.author(&key(OWNER), Action::Add(id(EVE))).unwrap();
    log.author(&key(OWNER), Action::Promote(id(EVE))).unwrap();
    // On the current log: its events cite the removal and the promotion.
    log.author(&key(EVE), Action::Rename("back".into()))
        .unwrap();
    assert_eq!(log.state().name, "back");
}

#[test]
fn only_the_owner_makes_and_unmakes_admins() {
    let (mut log, _) = Log::create(&key(OWNER), "club");
    for m in 1..=3 {
        log.author(&key(OWNER), Action::Add(id(m))).unwrap();
    }
    log.author(&key(OWNER), Action::Promote(id(1))).unwrap();
    log.author(&key(OWNER), Action::Promote(id(2))).unwrap();
    // An admin neither promotes nor demotes, nor removes an admin.
    let tries = [
        Action::Promote(id(3)),
        Action::SetRole(id(3), Role::Admin),
        Action::Demote(id(2)),
        Action::Remove(id(2)),
        Action::Ban(id(2)),
    ];
    for action in tries {
        let unsigned = log.prepare(id(1), action.clone());
        assert!(!log.allows(&unsigned), "{action:?} allowed to an admin");
    }
    // It does give roles below admin.
    log.author(&key(1), Action::SetRole(id(3), Role::Moderator))
        .unwrap();
    assert_eq!(log.state().role(&id(3)), Some(Role::Moderator));
    log.author(&key(OWNER), Action::Demote(id(2))).unwrap();
    assert_eq!(log.state().role(&id(2)), Some(Role::Member));
}

#[test]
fn a_moderator_does_not_lift_a_ban_an_admin_set() {
    let (mut log, _) = Log::create(&key(OWNER), "club");
    for m in 1..=4 {
        log.author(&key(OWNER), Action::Add(id(m))).unwrap();
    }
    log.author(&key(OWNER), Action::Promote(id(1))).unwrap();
    log.author(&key(1), Action::SetRole(id(2), Role::Moderator))
        .unwrap();
    log.author(&key(1), Action::Ban(id(3))).unwrap();
    log.author(&key(2), Action::Ban(id(4))).unwrap();
    let lift_admins = log.prepare(id(2), Action::Unban(id(3)));
    assert!(
        !log.allows(&lift_admins),
        "a moderator lifts an admin's ban"
    );
    // Its own ban, and the admin's by an admin, are lifted.
    log.author(&key(2), Action::Unban(id(4))).unwrap();
    log.author(&key(1), Action::Unban(id(3))).unwrap();
    assert!(log.state().banned.is_empty());
}

#[test]
fn an_invite_stops_admitting_when_its_admin_is_one_no_more() {
    let secret = [42; 32];
    let (mut log, _) = Log::create(&key(OWNER), "club");
    log.author(&key(OWNER), Action::Add(id(1))).unwrap();
    log.author(&key(OWNER), Action::Promote(id(1))).unwrap();
    log.author(&key(1), Action::Invite(invite::hash(&secret)))
        .unwrap();
    let admit = |log: &Log| log.state().admission(&id(OWNER), &id(7), Some(&secret));
    assert_eq!(admit(&log), Ok(Admission::Admit));
    log.author(&key(OWNER), Action::Demote(id(1))).unwrap();
    assert_eq!(
        admit(&log),
        Err(Refused::InviteOnly),
        "demoted: the invite is dead"
    );
    log.author(&key(OWNER), Action::Promote(id(1))).unwrap();
    log.author(&key(OWNER), Action::Remove(id(1))).unwrap();
    assert_eq!(
        admit(&log),
        Err(Refused::InviteOnly),
        "removed: the invite is dead"
    );
}

/// A random honest history by the owner and two admins, Eve among them
/// until the owner removes her at a random point; Eve keeps signing on her
/// view from before, at random points of her old view.
fn history(steps: &[(u8, u8)], removal_at: usize) -> (Vec<Event>, Vec<Event>) {
    let (mut log, create) = Log::create(&key(OWNER), "club");
    let mut honest = vec![create];
    for m in 1..=3 {
        honest.push(log.author(&key(OWNER), Action::Add(id(m))).unwrap());
    }
    honest.push(log.author(&key(OWNER), Action::Promote(id(EVE))).unwrap());
    honest.push(log.author(&key(OWNER), Action::Promote(id(2))).unwrap());
    let mut eves_view = log.clone();
    let mut eves = Vec::new();
    for (i, (who, what)) in steps.iter().enumerate() {
        if i == removal_at {
            honest.push(log.author(&key(OWNER), Action::Remove(id(EVE))).unwrap());
        }
        let action = match what % 4 {
            0 => Action::Rename(format!("n{i}")),
            1 => Action::Pin([i as u8; 16]),
            2 => Action::Channel(format!("c{i}")),
            _ => Action::JoinMode(JoinMode::Open),
        };
        if who % 3 == 0 && i >= removal_at {
            // Eve, back-dated; her view moves on only with her own events.
            eves.push(eves_view.author(&key(EVE), action).unwrap());
        } else {
            let author = if who % 2 == 0 { OWNER } else { 2 };
            if let Ok(e) = log.author(&key(author), action) {
                honest.push(e);
            }
        }
    }
    if removal_at >= steps.len() {
        honest.push(log.author(&key(OWNER), Action::Remove(id(EVE))).unwrap());
    }
    (honest, eves)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn nothing_a_removed_admin_signs_after_its_removal_counts_in_any_order(
        steps in proptest::collection::vec((0u8..6, 0u8..4), 1..14),
        removal_at in 0usize..14,
        seed in any::<u64>(),
    ) {
        let (honest, eves) = history(&steps, removal_at);
        let group = honest[0].id();
        // The honest history alone, in order.
        let mut reference = Log::new(group);
        for e in &honest {
            reference.insert(e.clone()).unwrap();
        }
        // Everything, Eve's included, in a shuffled order.
        let mut all: Vec<Event> = honest.iter().chain(&eves).cloned().collect();
        let mut s = seed;
        for i in (1..all.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            all.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut log = Log::new(group);
        for e in all {
            let _ = log.insert(e);
        }
        prop_assert_eq!(log.pending(), 0);
        for e in &eves {
            prop_assert!(log.state().rejected.contains(&e.id()), "Eve's {:?} counted", e.action);
        }
        let mut expected = reference.state().clone();
        expected.rejected.extend(eves.iter().map(Event::id));
        prop_assert_eq!(log.state(), &expected);
    }
}

#[test]
fn an_admin_showing_members_different_histories_is_caught_by_whoever_sees_both() {
    // The owner adds Bob and Carol, then signs two events on the same view:
    // one shown to Bob, one to Carol.
    let (mut log, _) = Log::create(&key(OWNER), "club");
    log.author(&key(OWNER), Action::Add(id(2))).unwrap();
    log.author(&key(OWNER), Action::Add(id(3))).unwrap();
    let (mut bobs, mut carols) = (log.clone(), log.clone());
    let to_bob = bobs
        .author(&key(OWNER), Action::Rename("for Bob".into()))
        .unwrap();
    let to_carol = carols.author(&key(OWNER), Action::Remove(id(2))).unwrap();
    assert!(bobs.equivocators().is_empty() && carols.equivocators().is_empty());
    // Each alone looks honest; a member who gets both (a pull after a
    // message naming the other's head) sees the fork, in either order.
    bobs.insert(to_carol.clone()).unwrap();
    carols.insert(to_bob.clone()).unwrap();
    for view in [&bobs, &carols] {
        assert_eq!(
            view.equivocators().iter().collect::<Vec<_>>(),
            vec![&id(OWNER)]
        );
    }
    assert_eq!(bobs.state(), carols.state(), "both still decide the same");
    // Concurrent events of two different authors are no fork; an author
    // building on its own events is none either.
    let (mut log, _) = Log::create(&key(OWNER), "club");
    log.author(&key(OWNER), Action::Add(id(EVE))).unwrap();
    log.author(&key(OWNER), Action::Promote(id(EVE))).unwrap();
    let mut eves = log.clone();
    let by_eve = eves
        .author(&key(EVE), Action::Rename("Eve's".into()))
        .unwrap();
    log.author(&key(OWNER), Action::Add(id(2))).unwrap();
    log.author(&key(OWNER), Action::Add(id(3))).unwrap();
    log.insert(by_eve).unwrap();
    assert!(log.equivocators().is_empty(), "{:?}", log.equivocators());
}

#[test]
fn a_rejected_event_no_one_built_on_is_not_shipped_to_joiners() {
    let (mut log, mut eves_view) = removed_after_holding(Role::Admin);
    let open = back_dated(&mut eves_view, Action::JoinMode(JoinMode::Open));
    log.insert(open.clone()).unwrap();
    assert!(log.state().rejected.contains(&open.id()));
    let shipped: Vec<_> = log.shipped().into_iter().map(Event::id).collect();
    assert!(
        !shipped.contains(&open.id()),
        "a rejected leaf went to a joiner"
    );
    // Once an honest event cites it, it goes: the joiner could not place
    // the honest one without it.
    let next = log
        .author(&key(OWNER), Action::Rename("later".into()))
        .unwrap();
    let shipped: Vec<_> = log.shipped().into_iter().map(Event::id).collect();
    assert!(shipped.contains(&open.id()) && shipped.contains(&next.id()));
    // A joiner given exactly these reaches the same state.
    let mut joiner = Log::new(log.group());
    for e in log.shipped() {
        joiner.insert(e.clone()).unwrap();
    }
    assert_eq!(joiner.state(), log.state());
}
