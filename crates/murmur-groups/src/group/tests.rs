use super::*;
use crate::{Action, SigningKey};
use ed25519_dalek::Signer as _;

struct Member {
    key: SigningKey,
    group: Group,
}

impl Member {
    fn id(&self) -> MemberId {
        self.key.verifying_key().into()
    }

    fn act(&mut self, action: Action) -> (Event, Effects) {
        let unsigned = self.group.prepare(action);
        let sig = self.key.sign(&unsigned.signed_bytes()).to_bytes();
        let event = unsigned.sign(sig);
        let (_, effects) = self.group.insert(event.clone()).expect("valid");
        (event, effects)
    }
}

fn member(n: u8, group: GroupId) -> Member {
    let key = SigningKey::from_bytes(&[n; 32]);
    let me = (key.verifying_key().into(), [n; 16]);
    Member {
        key,
        group: Group::join(me, group, 100),
    }
}

/// Alice, who creates a group: her member, its `Create` event, and what
/// creating it made her do.
fn creator() -> (Member, Event, Effects) {
    let key = SigningKey::from_bytes(&[1; 32]);
    let unsigned = Unsigned::create(key.verifying_key().into(), "g");
    let create = unsigned
        .clone()
        .sign(key.sign(&unsigned.signed_bytes()).to_bytes());
    let (group, effects) =
        Group::create((key.verifying_key().into(), [1; 16]), create.clone(), 100).expect("valid");
    (Member { key, group }, create, effects)
}

/// Hands `from`'s chain to `to`.
fn hand(from: &Member, to: &mut Member) {
    let key = from.group.chain_key().expect("a member has a chain");
    to.group
        .receive_chain(from.group.me, &key.to_bytes())
        .expect("accepted");
}

#[test]
fn a_removed_member_reads_nothing_after_and_a_joiner_nothing_before() {
    let (mut alice, create, effects) = creator();
    assert!(effects.rotated && effects.chain_to.is_empty());
    let (mut bob, mut carol) = (member(2, alice.group.id()), member(3, alice.group.id()));
    let (add_bob, e) = alice.act(Action::Add(bob.id()));
    assert_eq!(e.chain_to, BTreeSet::from([bob.id()]));
    let (add_carol, _) = alice.act(Action::Add(carol.id()));
    for m in [&mut bob, &mut carol] {
        for ev in [&create, &add_bob, &add_carol] {
            let _ = m.group.insert(ev.clone());
        }
    }
    hand(&alice, &mut bob);
    hand(&alice, &mut carol);
    let before = alice.group.seal(b"before dave").expect("member");
    let mut dave = member(4, alice.group.id());
    let (add_dave, _) = alice.act(Action::Add(dave.id()));
    for ev in alice.group.log().events().cloned().collect::<Vec<_>>() {
        let _ = dave.group.insert(ev);
    }
    let _ = bob.group.insert(add_dave.clone());
    hand(&alice, &mut dave);
    assert!(matches!(
        dave.group.open(&before),
        Err(OpenError::Chain(GroupError::Replay(0)))
    ));
    assert_eq!(
        bob.group.open(&before).expect("member").plaintext,
        b"before dave"
    );

    // Bob's chain, and a message of his that will arrive late.
    hand(&bob, &mut carol);
    let late = bob
        .group
        .seal(b"sent before, arrives after")
        .expect("member");
    let (remove_bob, e) = alice.act(Action::Remove(bob.id()));
    assert!(e.rotated);
    assert_eq!(e.chain_to, BTreeSet::from([carol.id(), dave.id()]));
    // The new chain goes to those who stay before anything is sent on it.
    hand(&alice, &mut carol);
    let after = alice.group.seal(b"after bob").expect("member");
    let (_, e) = bob.group.insert(remove_bob.clone()).expect("valid");
    assert!(e.removed);
    assert_eq!(bob.group.open(&after), Err(OpenError::UnknownChain));
    assert_eq!(bob.group.seal(b"x"), Err(SealError::NotMember));
    // Once Carol has the removal, nothing of Bob's opens: his chains
    // went with him.
    for ev in alice.group.log().events().cloned().collect::<Vec<_>>() {
        let _ = carol.group.insert(ev);
    }
    assert!(!carol.group.state().members.contains_key(&bob.id()));
    assert_eq!(carol.group.open(&late), Err(OpenError::UnknownChain));
    assert_eq!(
        carol.group.open(&after).expect("member").plaintext,
        b"after bob"
    );
    // Dave hands Carol Alice's chain as his own (to have Alice's
    // messages read as his), or a chain of his own under the id of
    // Alice's: a chain id names its owner, and both are refused.
    let alices = alice.group.chain_key().expect("chain");
    for device in [dave.group.me, (dave.id(), alice.group.me.1)] {
        assert_eq!(
            carol.group.receive_chain(device, &alices.to_bytes()),
            Err(ChainError::NotOwn)
        );
    }
    assert_eq!(
        carol.group.open(&after).map(|o| o.sender),
        Err(OpenError::Chain(GroupError::Replay(0))),
        "Alice's message is hers, and read once"
    );
    // A chain from someone who is not a member is refused.
    let stranger = member(9, alice.group.id());
    assert_eq!(
        carol.group.receive_chain(
            stranger.group.me,
            &alice.group.chain_key().expect("chain").to_bytes()
        ),
        Err(ChainError::NotMember)
    );
    // Stored and read back, the group goes on.
    let mut carol2 = Group::from_parts(&carol.group.log_bytes(), Some(&carol.group.keys_bytes()))
        .expect("decodes");
    let log = carol.group.log_bytes();
    for cut in 0..log.len() {
        assert!(Group::from_parts(&log[..cut], None).is_err());
    }
    assert_eq!(carol2.state(), carol.group.state());
    let next = alice.group.seal(b"next").expect("member");
    assert_eq!(carol2.open(&next).expect("reads").plaintext, b"next");
    assert!(matches!(
        carol2.open(&next),
        Err(OpenError::Chain(GroupError::Replay(_)))
    ));
    // Carol's account revokes one of Carol's devices: Alice drops its
    // chain and starts a new one for the others.
    hand(&carol, &mut alice);
    let from_carol = carol.group.seal(b"from the phone").expect("member");
    let e = alice.group.revoke(carol.group.me);
    assert!(e.rotated);
    assert_eq!(e.chain_to, BTreeSet::from([carol.id(), dave.id()]));
    assert_eq!(alice.group.open(&from_carol), Err(OpenError::UnknownChain));
    // What Alice sends now is on a chain Carol's revoked device never got.
    let after_revocation = alice.group.seal(b"not for the phone").expect("member");
    assert_eq!(
        carol.group.open(&after_revocation),
        Err(OpenError::UnknownChain)
    );
}

/// Alice's group with Bob and Carol, every chain handed to every member.
fn three() -> (Member, Member, Member) {
    let (mut alice, _, _) = creator();
    let (mut bob, mut carol) = (member(2, alice.group.id()), member(3, alice.group.id()));
    let _ = alice.act(Action::Add(bob.id()));
    let _ = alice.act(Action::Add(carol.id()));
    for m in [&mut bob, &mut carol] {
        for ev in alice.group.log().events().cloned().collect::<Vec<_>>() {
            let _ = m.group.insert(ev);
        }
    }
    (alice, bob, carol)
}

#[test]
fn a_member_that_lost_a_chain_key_is_handed_it_from_where_it_joined_and_reads_what_comes_late() {
    let (mut alice, mut bob, _) = three();
    let sent: Vec<_> = (0..5u8)
        .map(|i| alice.group.seal(&[i]).expect("member"))
        .collect();
    // Alice's key never reached Bob, and message 2 is the first he sees
    // (the others are still on their way: a partition, a store node).
    assert_eq!(bob.group.open(&sent[2]), Err(OpenError::UnknownChain));
    let (chain, at) = bob.group.missing_chain(&sent[2]).expect("a group message");
    assert_eq!(at, 2);
    let key = alice
        .group
        .answer_chain(bob.id(), chain, at)
        .expect("Bob is a member; the chain is Alice's");
    bob.group
        .receive_chain(alice.group.me, &key.to_bytes())
        .expect("Alice's own chain");
    assert!(bob.group.missing_chain(&sent[2]).is_none());
    // What came before the one he asked about, coming after it, is read
    // too: a key from message 2 on would have made 0 and 1 replays.
    for i in [2usize, 4, 3, 1, 0] {
        assert_eq!(
            bob.group.open(&sent[i]).expect("reads").plaintext,
            [i as u8]
        );
    }
    // Each once.
    assert_eq!(
        bob.group.open(&sent[1]),
        Err(OpenError::Chain(GroupError::Replay(1)))
    );
}

#[test]
fn a_chain_key_handed_again_reaches_back_a_bounded_way() {
    let (mut alice, bob, _) = three();
    let chain = alice.group.chain_key().expect("chain").chain;
    for i in 0..600u32 {
        alice.group.seal(&i.to_be_bytes()).expect("member");
    }
    // Asked about message 599: handed from 599 - REACH, not from 0 (a
    // receiver would skip more than it keeps to reach 599).
    let key = alice
        .group
        .answer_chain(bob.id(), chain, 599)
        .expect("member");
    assert_eq!(key.iteration, 599 - crate::REACH);
}

#[test]
fn a_message_of_this_devices_own_chain_come_back_is_not_asked_for() {
    let (mut alice, _, _) = three();
    let sent = alice.group.seal(b"mine").expect("member");
    // A store node returns it: handled when sent, not a missing key to
    // ask every member about.
    assert_eq!(alice.group.open(&sent), Err(OpenError::Own));
    assert_eq!(alice.group.missing_chain(&sent), None);
}

#[test]
fn a_message_of_a_chain_this_device_retired_is_its_own_after_a_restart_too() {
    let (mut alice, _, carol) = three();
    let old = alice.group.seal(b"before the rotation").expect("member");
    // Carol is removed: Alice starts a new chain; her old message comes
    // back from a store node later.
    let _ = alice.act(Action::Remove(carol.id()));
    let new = alice.group.seal(b"after").expect("member");
    for message in [&old, &new] {
        assert_eq!(alice.group.open(message), Err(OpenError::Own));
        assert_eq!(alice.group.missing_chain(message), None);
    }
    let mut stored = Group::from_parts(&alice.group.log_bytes(), Some(&alice.group.keys_bytes()))
        .expect("decodes");
    assert_eq!(
        stored.open(&old),
        Err(OpenError::Own),
        "kept with the chains"
    );
    // Chains stored before this was kept (version 2) still read: they
    // know no retired chain.
    let mut v2 = alice.group.keys_bytes().to_vec();
    v2[0] = 2;
    let retired = u32::from_be_bytes(v2[v2.len() - 4 - 16..v2.len() - 16].try_into().unwrap());
    assert_eq!(retired, 1);
    v2.truncate(v2.len() - 4 - 16);
    let mut older = Group::from_parts(&alice.group.log_bytes(), Some(&v2)).expect("decodes");
    assert_eq!(older.open(&new), Err(OpenError::Own));
    assert!(older.missing_chain(&old).is_some(), "as before version 3");
}

#[test]
fn a_device_remembers_its_retired_chains_boundedly() {
    let (mut alice, bob, _) = three();
    let first = alice.group.seal(b"first chain").expect("member");
    // A device of Bob's is revoked again and again: each time Alice
    // starts a new chain.
    for n in 0..=RETIRED {
        let effects = alice.group.revoke((bob.id(), [100 + n as u8; 16]));
        assert!(effects.rotated);
    }
    assert_eq!(alice.group.retired.len(), RETIRED);
    assert_eq!(
        alice.group.open(&first),
        Err(OpenError::UnknownChain),
        "the oldest is forgotten"
    );
}

#[test]
fn a_chain_key_is_handed_again_to_no_stranger_no_removed_member_and_no_earlier_than_a_join() {
    let (mut alice, bob, mut carol) = three();
    let chain = alice.group.chain_key().expect("chain").chain;
    let before_dave = alice.group.seal(b"before dave").expect("member");
    // A stranger, and Alice's own account (another device of hers gets
    // her keys through pairing, not from the group), are answered nothing.
    let stranger = member(9, alice.group.id());
    assert_eq!(
        alice.group.answer_chain(stranger.id(), chain, 0).err(),
        Some(AnswerError::NotMember)
    );
    assert_eq!(
        alice.group.answer_chain(alice.id(), chain, 0).err(),
        Some(AnswerError::NotMember)
    );
    // Another member's chain, or a made-up one, is not Alice's to hand.
    assert_eq!(
        alice
            .group
            .answer_chain(bob.id(), ChainId([7; 16]), 0)
            .err(),
        Some(AnswerError::NotOurs)
    );
    // Dave joins at Alice's position 1: he is handed position 1, never 0.
    let mut dave = member(4, alice.group.id());
    let (add_dave, _) = alice.act(Action::Add(dave.id()));
    for ev in alice.group.log().events().cloned().collect::<Vec<_>>() {
        let _ = dave.group.insert(ev);
    }
    let key = alice
        .group
        .answer_chain(dave.id(), chain, 0)
        .expect("member");
    assert_eq!(key.iteration, 1);
    dave.group
        .receive_chain(alice.group.me, &key.to_bytes())
        .expect("accepted");
    assert_eq!(
        dave.group.open(&before_dave),
        Err(OpenError::Chain(GroupError::Replay(0)))
    );
    // The floor is kept with the chains.
    let stored = Group::from_parts(&alice.group.log_bytes(), Some(&alice.group.keys_bytes()))
        .expect("decodes");
    assert_eq!(
        stored
            .answer_chain(dave.id(), chain, 0)
            .map(|k| k.iteration),
        Ok(1)
    );
    let _ = carol.group.insert(add_dave);
    // Carol is removed: her requests go unanswered, and the chain she
    // asks for is gone (Alice rotated).
    let _ = alice.act(Action::Remove(carol.id()));
    assert_eq!(
        alice.group.answer_chain(carol.id(), chain, 0).err(),
        Some(AnswerError::NotMember)
    );
    assert_eq!(
        alice.group.answer_chain(bob.id(), chain, 0).err(),
        Some(AnswerError::NotOurs),
        "a rotated chain's keys are gone"
    );
}
