//! A device's end of its conversations, without any runtime: contacts,
//! simultaneous starts, pairing, revocation, restoring from records, and
//! what an attacker on the network sends.

use std::collections::BTreeMap;

use murmur_crypto::device::{self, Device, Error, Outgoing, Records};
use murmur_crypto::{Limits, Vault};

use crate::NOW;

fn new_device(secret: &[u8]) -> (Device, Records) {
    Device::create(Vault::new(secret), Limits::default(), NOW)
}

fn introduce(a: &mut Device, b: &Device) {
    a.add_contact(&b.contact_code(NOW), NOW)
        .expect("a valid code");
}

/// Records as a database keeps them: written, replaced and deleted.
#[derive(Default)]
struct Store(BTreeMap<String, Vec<u8>>);

impl Store {
    /// Writes what `device` answered, as its stage does: committed first.
    fn keep(&mut self, device: &Device, mut records: Records) {
        device.commit(&mut records);
        for (name, value) in records {
            match value {
                Some(v) => self.0.insert(name, v),
                None => self.0.remove(&name),
            };
        }
    }

    fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.0.clone().into_iter().collect()
    }
}

/// Opens what `to` can, and answers the application bytes it read.
fn deliver(to: &mut Device, out: &[Outgoing]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| to.open(&o.envelope, NOW).ok())
        .filter_map(|r| r.0.app)
        .collect()
}

/// Two accounts that know each other's contact code.
fn contacts() -> (Device, Device) {
    let (mut alice, _) = new_device(b"alice");
    let (mut bob, _) = new_device(b"bob");
    introduce(&mut alice, &bob);
    introduce(&mut bob, &alice);
    (alice, bob)
}

fn seal(from: &mut Device, to: &Device, text: &str) -> Vec<Outgoing> {
    from.seal(to.account(), text.as_bytes(), NOW)
        .expect("a known contact")
        .0
}

/// Both sides write on one session again: each message reads on the other
/// side, both ways, several times.
fn assert_talk(a: &mut Device, b: &mut Device) {
    for round in 0..3 {
        let to_b = seal(a, b, &format!("a{round}"));
        assert_eq!(deliver(b, &to_b), vec![format!("a{round}").into_bytes()]);
        let to_a = seal(b, a, &format!("b{round}"));
        assert_eq!(deliver(a, &to_a), vec![format!("b{round}").into_bytes()]);
    }
}

#[test]
fn a_contact_reads_what_is_sealed_and_knows_the_sender() {
    let (mut alice, _) = new_device(b"alice");
    let (mut bob, _) = new_device(b"bob");
    introduce(&mut alice, &bob);
    let out = seal(&mut alice, &bob, "hi");
    let (received, records) = bob.open(&out[0].envelope, NOW).expect("opens");
    assert_eq!(received.sender, (alice.account(), alice.device()));
    assert_eq!(received.app.as_deref(), Some(&b"hi"[..]));
    assert!(!records.is_empty(), "the new session is to be saved");
    assert_talk(&mut alice, &mut bob);
}

#[test]
fn sessions_started_at_once_converge_in_every_order() {
    // Both seal first; then each of the four orders of delivering the two
    // first messages and the two answers.
    for order in 0..4 {
        let (mut a, _) = new_device(b"a");
        let (mut b, _) = new_device(b"b");
        introduce(&mut a, &b);
        introduce(&mut b, &a);
        let a1 = seal(&mut a, &b, "a1");
        let b1 = seal(&mut b, &a, "b1");
        if order & 1 == 0 {
            assert_eq!(deliver(&mut b, &a1), vec![b"a1".to_vec()]);
            assert_eq!(deliver(&mut a, &b1), vec![b"b1".to_vec()]);
        } else {
            assert_eq!(deliver(&mut a, &b1), vec![b"b1".to_vec()]);
            assert_eq!(deliver(&mut b, &a1), vec![b"a1".to_vec()]);
        }
        // Answers cross before either is read.
        let a2 = seal(&mut a, &b, "a2");
        let b2 = seal(&mut b, &a, "b2");
        if order & 2 == 0 {
            assert_eq!(deliver(&mut b, &a2), vec![b"a2".to_vec()], "order {order}");
            assert_eq!(deliver(&mut a, &b2), vec![b"b2".to_vec()], "order {order}");
        } else {
            assert_eq!(deliver(&mut a, &b2), vec![b"b2".to_vec()], "order {order}");
            assert_eq!(deliver(&mut b, &a2), vec![b"a2".to_vec()], "order {order}");
        }
        assert_talk(&mut a, &mut b);
    }
}

#[test]
fn a_replay_is_refused_and_counted() {
    let (mut alice, _) = new_device(b"alice");
    let (mut bob, _) = new_device(b"bob");
    introduce(&mut alice, &bob);
    let first = seal(&mut alice, &bob, "one");
    deliver(&mut bob, &first);
    let second = seal(&mut alice, &bob, "two");
    deliver(&mut bob, &second);
    bob.take_refusals();
    for out in [&first, &second] {
        let err = bob.open(&out[0].envelope, NOW).unwrap_err();
        assert!(
            matches!(err, Error::Replay | Error::OneTimePrekeyUsed),
            "{err}"
        );
    }
    assert_eq!(bob.take_refusals().len(), 2);
    assert_talk(&mut alice, &mut bob);
}

#[test]
fn what_is_not_for_it_or_malformed_is_refused_without_a_session() {
    let (mut alice, _) = new_device(b"alice");
    let (bob, _) = new_device(b"bob");
    let (mut eve, _) = new_device(b"eve");
    introduce(&mut alice, &bob);
    let out = seal(&mut alice, &bob, "for bob");
    assert_eq!(
        eve.open(&out[0].envelope, NOW).unwrap_err(),
        Error::NotForUs
    );
    for garbage in [&b""[..], &[0xff; 3][..], &[0u8; 200][..]] {
        assert!(eve.open(garbage, NOW).is_err());
    }
    let mut flipped = out[0].envelope.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(eve.open(&flipped, NOW).is_err());
    assert_eq!(eve.take_refusals().len(), 5);
    assert!(eve.devices_of(alice.account()).is_empty());
}

#[test]
fn a_device_list_from_another_account_is_refused() {
    // Mallory sends Bob a "device list" naming Carol's device: Bob must not
    // start writing to Carol's device as if it were Mallory's.
    let (mut mallory, _) = new_device(b"mallory");
    let (mut bob, _) = new_device(b"bob");
    let (carol, _) = new_device(b"carol");
    introduce(&mut mallory, &bob);
    let hi = seal(&mut mallory, &bob, "hi");
    deliver(&mut bob, &hi);
    let carol_bundle = carol.bundle(NOW).to_bytes();
    let (kept, _) = bob.learn_bundles(mallory.account(), &[carol_bundle], NOW);
    assert_eq!(kept, 0);
    assert_eq!(bob.take_refusals(), vec!["bad_bundle"]);
    assert!(bob.devices_of(carol.account()).is_empty());
    assert_eq!(bob.devices_of(mallory.account()), vec![mallory.device()]);
}

/// Pairs a new device to `first`'s account; answers it.
fn paired(first: &mut Device) -> Device {
    let (mut second, _) = new_device(b"second");
    let code = first.pairing_code(NOW).expect("the first device pairs");
    let (request, _) = second.pair(&code, NOW).expect("a valid code");
    let (received, _) = first.open(&request[0].envelope, NOW).expect("the request");
    // The answer, and the account's device list if it has other devices.
    let throwaway = second.account();
    let changed = received
        .reply
        .iter()
        .filter(|o| o.to == throwaway)
        .map(|o| second.open(&o.envelope, NOW).expect("the answer"))
        .filter(|(r, _)| r.identity_changed)
        .count();
    assert_eq!(changed, 1);
    assert_eq!(second.account(), first.account());
    assert!(!second.holds_account_key());
    second
}

#[test]
fn a_paired_device_reads_what_contacts_send_to_the_account() {
    let (mut alice, mut bob) = contacts();
    let mut phone = paired(&mut alice);
    // Bob learns Alice's new device from her first device.
    let to_bob = seal(&mut alice, &bob, "meet my phone");
    for o in &to_bob {
        if let Ok((r, _)) = bob.open(&o.envelope, NOW) {
            assert_eq!(r.app.as_deref(), Some(&b"meet my phone"[..]));
        }
    }
    let (_, _) = bob.learn_bundles(alice.account(), &alice.bundles(alice.account(), NOW), NOW);
    assert_eq!(bob.devices_of(alice.account()).len(), 2);
    let out = seal(&mut bob, &alice, "to both");
    assert_eq!(out.len(), 2);
    assert_eq!(deliver(&mut phone, &out), vec![b"to both".to_vec()]);
    assert_eq!(deliver(&mut alice, &out), vec![b"to both".to_vec()]);
}

#[test]
fn a_pairing_code_works_once_and_not_from_a_second_device() {
    let (mut alice, _) = new_device(b"alice");
    let code = alice.pairing_code(NOW).unwrap();
    let (mut one, _) = new_device(b"one");
    let (mut two, _) = new_device(b"two");
    let (first, _) = one.pair(&code, NOW).unwrap();
    let (again, _) = two.pair(&code, NOW).unwrap();
    assert!(alice.open(&first[0].envelope, NOW).is_ok());
    assert!(matches!(
        alice.open(&again[0].envelope, NOW),
        Err(Error::Pairing(_))
    ));
    // An expired code.
    let code = alice.pairing_code(NOW).unwrap();
    let (mut late, _) = new_device(b"late");
    let (request, _) = late.pair(&code, NOW).unwrap();
    let later = NOW + device::PAIRING_TTL + 1;
    assert!(matches!(
        alice.open(&request[0].envelope, later),
        Err(Error::Pairing(_))
    ));
    // A paired device holds no account key.
    let mut phone = paired(&mut alice);
    assert_eq!(phone.pairing_code(NOW).unwrap_err(), Error::NotPrimary);
}

#[test]
fn a_revoked_device_is_refused_by_everyone_told() {
    let (mut alice, mut bob) = contacts();
    let mut phone = paired(&mut alice);
    bob.learn_bundles(alice.account(), &alice.bundles(alice.account(), NOW), NOW);
    // The phone talks to Bob, then is revoked.
    let before = seal(&mut phone, &bob, "before");
    assert_eq!(deliver(&mut bob, &before), vec![b"before".to_vec()]);
    let (told, _) = alice.revoke(phone.device(), NOW).unwrap();
    let to_bob: Vec<_> = told.into_iter().filter(|o| o.to == bob.account()).collect();
    deliver(&mut bob, &to_bob);
    assert!(!bob.devices_of(alice.account()).contains(&phone.device()));
    let after = seal(&mut phone, &bob, "after");
    bob.take_refusals();
    for o in &after {
        assert!(matches!(
            bob.open(&o.envelope, NOW),
            Err(Error::Revoked { .. } | Error::NotForUs)
        ));
    }
    // Nothing Bob sends to the account reaches the phone any more.
    let out = seal(&mut bob, &alice, "not for the phone");
    assert_eq!(out.len(), 1);
    assert!(deliver(&mut phone, &out).is_empty());
    assert!(matches!(
        alice.revoke(alice.device(), NOW),
        Err(Error::Pairing(_))
    ));
    // Carol "revokes" Alice's device id: her account's key revokes only
    // devices of her account, so Bob still writes to Alice.
    let (mut carol, _) = new_device(b"carol");
    introduce(&mut carol, &bob);
    introduce(&mut bob, &carol);
    let hi = seal(&mut carol, &bob, "hi");
    deliver(&mut bob, &hi);
    let (told, _) = carol.revoke(alice.device(), NOW).unwrap();
    deliver(&mut bob, &told);
    assert!(bob.devices_of(alice.account()).contains(&alice.device()));
    let still = seal(&mut bob, &alice, "still");
    assert_eq!(deliver(&mut alice, &still), vec![b"still".to_vec()]);
}

#[test]
fn a_restored_device_goes_on_where_it_was() {
    let (mut alice, records) = new_device(b"alice");
    let mut store = Store::default();
    store.keep(&alice, records);
    let (mut bob, _) = new_device(b"bob");
    introduce(&mut bob, &alice);
    let (id, records) = alice.add_contact(&bob.contact_code(NOW), NOW).unwrap();
    store.keep(&alice, records);
    assert_eq!(id, bob.account());
    let out = seal(&mut bob, &alice, "one");
    let (_, records) = alice.open(&out[0].envelope, NOW).unwrap();
    store.keep(&alice, records);
    let session = store
        .0
        .iter()
        .find(|(n, _)| n.starts_with("crypto/session/"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .expect("a session record");
    let (out, records) = alice.seal(bob.account(), b"two", NOW).unwrap();
    store.keep(&alice, records);
    assert_eq!(deliver(&mut bob, &out), vec![b"two".to_vec()]);
    // The session put back to its state before "two": refused, or Alice
    // would seal the next message with the key and nonce "two" used.
    let mut rolled = store.entries();
    rolled.retain(|(n, _)| *n != session.0);
    rolled.push(session);
    match Device::restore(Vault::new(b"alice"), Limits::default(), rolled) {
        Err(Error::State(why)) => assert!(why.contains("rolled back"), "{why}"),
        other => panic!("a rolled-back session: {:?}", other.map(|d| d.is_some())),
    }
    let store = store.0;
    let account = alice.account();
    drop(alice);
    let entries: Vec<_> = store.into_iter().collect();
    assert!(entries.iter().all(|(n, _)| n.starts_with(device::PREFIX)));
    let wrong = Device::restore(Vault::new(b"not alice"), Limits::default(), entries.clone());
    assert!(
        matches!(wrong, Err(Error::State(_))),
        "another node's key opens nothing"
    );
    let mut alice = Device::restore(Vault::new(b"alice"), Limits::default(), entries)
        .unwrap()
        .expect("a device was saved");
    assert_eq!(alice.account(), account);
    assert!(alice.holds_account_key());
    assert_talk(&mut alice, &mut bob);
    // Nothing saved: nothing restored.
    assert!(
        Device::restore(Vault::new(b"x"), Limits::default(), Vec::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_paired_device_learns_every_revocation_its_account_knows() {
    let (mut alice, mut bob) = contacts();
    let mut bobs_phone = paired(&mut bob);
    let phone_bundle = bobs_phone.bundle(NOW).to_bytes();
    alice.learn_bundles(bob.account(), std::slice::from_ref(&phone_bundle), NOW);
    assert!(alice
        .devices_of(bob.account())
        .contains(&bobs_phone.device()));
    let (told, _) = bob.revoke(bobs_phone.device(), NOW).unwrap();
    deliver(&mut alice, &told);
    assert!(!alice
        .devices_of(bob.account())
        .contains(&bobs_phone.device()));
    // Alice's new tablet gets her contacts' revocations with its pairing:
    // Bob's old phone is neither learned again nor heard.
    let mut tablet = paired(&mut alice);
    let (kept, _) = tablet.learn_bundles(bob.account(), &[phone_bundle], NOW);
    assert_eq!(kept, 0);
    introduce(&mut bobs_phone, &tablet);
    let from_phone = seal(&mut bobs_phone, &tablet, "still here");
    let to_alice: Vec<_> = from_phone
        .iter()
        .filter(|o| o.to == tablet.account())
        .collect();
    assert!(!to_alice.is_empty());
    for o in to_alice {
        let opened = tablet.open(&o.envelope, NOW);
        assert!(
            matches!(opened, Err(Error::Revoked { .. } | Error::NotForUs)),
            "{opened:?}"
        );
    }
    assert!(tablet.take_refusals().contains(&"revoked"));
}

#[test]
fn a_contact_who_missed_a_revocation_learns_it_with_the_device_list() {
    let (mut bob, _) = new_device(b"bob");
    let mut phone = paired(&mut bob);
    let phone_bundle = phone.bundle(NOW).to_bytes();
    bob.revoke(phone.device(), NOW).unwrap();
    // Carol meets Bob after the revocation, and has the phone's bundle
    // from somewhere (a stale copy on the bundle topic).
    let (mut carol, _) = new_device(b"carol");
    introduce(&mut carol, &bob);
    let hello = seal(&mut carol, &bob, "hello");
    let (received, _) = bob.open(&hello[0].envelope, NOW).unwrap();
    assert!(received.request && received.reply.is_empty());
    // Bob's answer once he accepts Carol: his device list, with the
    // revocation.
    let (answer, _) = bob.accept(carol.account(), NOW).unwrap();
    deliver(&mut carol, &answer);
    let (kept, _) = carol.learn_bundles(bob.account(), &[phone_bundle], NOW);
    assert_eq!(kept, 0, "the revoked phone is not learned");
    introduce(&mut phone, &carol);
    let from_phone = seal(&mut phone, &carol, "it's me, Bob");
    let to_carol: Vec<_> = from_phone
        .iter()
        .filter(|o| o.to == carol.account())
        .collect();
    assert_eq!(to_carol.len(), 1);
    assert!(matches!(
        carol.open(&to_carol[0].envelope, NOW),
        Err(Error::Revoked { .. })
    ));
}

#[test]
fn a_stranger_is_read_but_answered_only_once_accepted() {
    let (mut bob, _) = new_device(b"bob");
    let mut phone = paired(&mut bob);
    let (mut carol, _) = new_device(b"carol");
    introduce(&mut carol, &bob);
    let hello = seal(&mut carol, &bob, "hello");
    let to_bob = hello.iter().find(|o| bob.open(&o.envelope, NOW).is_ok());
    assert!(to_bob.is_some(), "Bob reads a stranger");
    // Nothing went back: Carol does not learn Bob's phone, nor that Bob
    // is there.
    assert_eq!(bob.requests(), vec![carol.account()]);
    assert!(!carol.devices_of(bob.account()).contains(&phone.device()));
    let (answer, records) = bob.accept(carol.account(), NOW).unwrap();
    assert!(!records.is_empty(), "the acceptance is kept");
    deliver(&mut carol, &answer);
    assert!(carol.devices_of(bob.account()).contains(&phone.device()));
    assert!(bob.requests().is_empty());
    // Bob's phone is told, and answers Carol as Bob's first device does.
    assert!(!phone.is_accepted(carol.account()));
    deliver(&mut phone, &answer);
    assert!(phone.is_accepted(carol.account()));
    // Another stranger, and one Bob writes to first: writing accepts.
    let (mut dave, _) = new_device(b"dave");
    introduce(&mut bob, &dave);
    let out = seal(&mut bob, &dave, "hi Dave");
    deliver(&mut dave, &out);
    let back = seal(&mut dave, &bob, "hi Bob");
    let (received, _) = bob.open(&back[0].envelope, NOW).unwrap();
    assert!(!received.request);
}

/// Another device's acceptance names, on this one, only the accounts that
/// were requests here: only theirs has anything held, or unacknowledged.
#[test]
fn another_devices_acceptance_names_only_this_devices_requests() {
    let (mut bob, _) = new_device(b"bob");
    let mut phone = paired(&mut bob);
    let (mut carol, _) = new_device(b"carol");
    let (mut dave, _) = new_device(b"dave");
    // Carol writes to Bob's first device only; Dave has both devices' codes.
    introduce(&mut carol, &bob);
    introduce(&mut dave, &bob);
    introduce(&mut dave, &phone);
    let hello = seal(&mut carol, &bob, "hello");
    assert_eq!(deliver(&mut bob, &hello).len(), 1);
    let to_both = seal(&mut dave, &bob, "hi");
    assert_eq!(deliver(&mut bob, &to_both).len(), 1);
    assert_eq!(deliver(&mut phone, &to_both).len(), 1);
    assert_eq!(phone.requests(), vec![dave.account()]);
    for (stranger, named) in [
        (carol.account(), vec![]),
        (dave.account(), vec![dave.account()]),
    ] {
        let (answer, _) = bob.accept(stranger, NOW).unwrap();
        let accepted: Vec<_> = answer
            .iter()
            .filter_map(|o| phone.open(&o.envelope, NOW).ok())
            .flat_map(|(received, _)| received.accepted)
            .collect();
        assert_eq!(accepted, named);
        assert!(phone.is_accepted(stranger));
    }
}

#[test]
fn strangers_and_devices_per_account_are_bounded() {
    let (mut bob, _) = new_device(b"bob");
    bob.set_policy(device::Policy::default().max_requests(2).max_devices(1));
    for i in 0..3u8 {
        let (mut stranger, _) = new_device(&[i; 8]);
        introduce(&mut stranger, &bob);
        let hello = seal(&mut stranger, &bob, "let me in");
        let opened = bob.open(&hello[0].envelope, NOW);
        if i < 2 {
            assert!(opened.unwrap().0.request);
        } else {
            assert_eq!(opened.err(), Some(Error::TooManyRequests));
        }
    }
    assert_eq!(bob.requests().len(), 2);
    assert!(bob.take_refusals().contains(&"too_many_requests"));
    // Two new requests a minute: one at once (ten seconds' worth, at
    // least one), then one more as the bucket refills.
    let (mut carol, _) = new_device(b"carol");
    carol.set_policy(device::Policy::default().requests_per_minute(2));
    let code = carol.contact_code(NOW);
    let mut opened = Vec::new();
    for (at, i) in [(NOW, 0u8), (NOW, 1), (NOW, 2), (NOW + 30, 3), (NOW + 30, 4)] {
        let (mut stranger, _) = new_device(&[i, 9, 9, 9]);
        let (to, _) = stranger.add_contact(&code, NOW).unwrap();
        let (out, _) = stranger.seal(to, b"hi", NOW).unwrap();
        opened.push(carol.open(&out[0].envelope, at).is_ok());
    }
    assert_eq!(opened, [true, false, false, true, false]);
    // A contact's second device is one too many at max_devices = 1.
    let (mut alice, _) = new_device(b"alice");
    let second = paired(&mut alice);
    introduce(&mut bob, &alice);
    let (kept, _) = bob.learn_bundles(alice.account(), &[second.bundle(NOW).to_bytes()], NOW);
    assert_eq!(kept, 0);
    assert!(bob.take_refusals().contains(&"too_many_devices"));
}

#[test]
fn a_first_message_writes_the_same_few_records_however_many_came_before() {
    let (mut bob, records) = new_device(b"bob");
    // Every one opened: no rate limit on new requests.
    bob.set_policy(device::Policy::default().requests_per_minute(0));
    let mut store = Store::default();
    store.keep(&bob, records);
    let mut first_sizes = Vec::new();
    let mut replayable = None;
    for i in 0..200u16 {
        let (mut stranger, _) = new_device(&i.to_be_bytes());
        introduce(&mut stranger, &bob);
        let hello = seal(&mut stranger, &bob, "hi");
        let (_, records) = bob.open(&hello[0].envelope, NOW).unwrap();
        first_sizes.push(
            records
                .iter()
                .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>(),
        );
        store.keep(&bob, records);
        replayable = Some(hello[0].envelope.clone());
    }
    // Constant work: the 200th first message writes what the 1st did (the
    // replay set is not rewritten with each one).
    let (min, max) = (
        *first_sizes.iter().min().unwrap(),
        *first_sizes.iter().max().unwrap(),
    );
    assert!(max - min < 64, "{min}..{max} bytes per first message");
    // The replay set survives a restart.
    let mut bob = Device::restore(Vault::new(b"bob"), Limits::default(), store.entries())
        .unwrap()
        .expect("restored");
    bob.set_policy(device::Policy::default().requests_per_minute(0));
    assert_eq!(
        bob.open(&replayable.unwrap(), NOW).err(),
        Some(Error::Replay)
    );
}

#[test]
fn a_blocked_account_is_refused_across_a_restart_until_accepted() {
    let (mut bob, records) = new_device(b"bob");
    let mut store = Store::default();
    store.keep(&bob, records);
    let (mut carol, _) = new_device(b"carol");
    introduce(&mut carol, &bob);
    let (_, records) = bob.block(carol.account(), NOW).unwrap();
    store.keep(&bob, records);
    assert_eq!(bob.block(bob.account(), NOW).err(), Some(Error::OwnAccount));
    let hello = seal(&mut carol, &bob, "hello");
    let mut bob = Device::restore(Vault::new(b"bob"), Limits::default(), store.entries())
        .unwrap()
        .expect("restored");
    assert_eq!(
        bob.open(&hello[0].envelope, NOW).err(),
        Some(Error::Blocked(carol.account()))
    );
    bob.accept(carol.account(), NOW).unwrap();
    assert!(!bob.open(&hello[0].envelope, NOW).unwrap().0.request);
}

#[test]
fn a_revocation_published_beside_the_bundles_keeps_the_revoked_device_out() {
    let (mut bob, _) = new_device(b"bob");
    let phone = paired(&mut bob);
    let phone_bundle = phone.bundle(NOW).to_bytes();
    bob.revoke(phone.device(), NOW).unwrap();
    let revocations = bob.revocations_of(bob.account());
    assert_eq!(revocations.len(), 1);
    // Carol fetches everything on Bob's bundle topic: the phone's bundle
    // (published before it was revoked, or by the thief) and the
    // revocation, in any order.
    let (mut carol, _) = new_device(b"carol");
    let mut topic = vec![phone_bundle, bob.bundle(NOW).to_bytes()];
    topic.extend(revocations);
    let (kept, _) = carol.learn_bundles(bob.account(), &topic, NOW);
    assert_eq!(kept, 1, "Bob's first device only");
    assert!(!carol.devices_of(bob.account()).contains(&phone.device()));
    // A revocation of another account's device, put on Bob's topic, is not
    // taken for Bob's.
    let (mut dave, _) = new_device(b"dave");
    let daves_phone = paired(&mut dave);
    dave.revoke(daves_phone.device(), NOW).unwrap();
    let (mut erin, _) = new_device(b"erin");
    erin.learn_bundles(bob.account(), &dave.revocations_of(dave.account()), NOW);
    let (kept, _) = erin.learn_bundles(dave.account(), &[daves_phone.bundle(NOW).to_bytes()], NOW);
    assert_eq!(
        kept, 1,
        "a revocation on the wrong account's topic is ignored"
    );
}

#[test]
fn what_a_session_carried_that_does_not_parse_still_saves_the_sessions_step() {
    use murmur_crypto::{envelope, x3dh, Account, Installation, PrekeyPolicy};
    let (mut bob, records) = new_device(b"bob");
    let mut store = Store::default();
    store.keep(&bob, records);
    // A peer that seals bytes no device would: not a payload.
    let alice = Installation::create(&Account::generate(), PrekeyPolicy::default(), NOW);
    let mut session = x3dh::initiate_shared(&alice, &bob.bundle(NOW), Limits::default()).unwrap();
    let sealed = session.seal(&[0xff, 0xff, 0xff]).unwrap();
    let garbage = envelope::seal(
        &bob.bundle(NOW).certificate.identity_key,
        (alice.account(), alice.device()),
        &sealed,
    );
    let (received, records) = bob.open(&garbage, NOW).expect("opened, though refused");
    assert!(received.app.is_none());
    assert!(bob.take_refusals().contains(&"malformed"));
    store.keep(&bob, records);
    // The step was saved: after a restart the same envelope is a replay,
    // not a session to set up again.
    let mut bob = Device::restore(Vault::new(b"bob"), Limits::default(), store.entries())
        .unwrap()
        .expect("restored");
    assert_eq!(bob.open(&garbage, NOW).err(), Some(Error::Replay));
}

const TTL: u64 = murmur_crypto::CERTIFICATE_TTL;

#[test]
fn a_device_whose_certificate_ran_out_is_not_learned_anew() {
    // Bob's phone is stolen and revoked; Carol never hears of it. Its
    // certificate is no longer renewed, and once it runs out Carol takes
    // the phone in from nowhere: not from a stale bundle, not from an old
    // contact code, not from a first message.
    let (mut bob, _) = new_device(b"bob");
    let mut phone = paired(&mut bob);
    let stale = phone.bundle(NOW).to_bytes();
    let stale_code = phone.contact_code(NOW);
    bob.revoke(phone.device(), NOW).unwrap();
    let later = NOW + TTL + 1;
    let (mut carol, _) = new_device(b"carol");
    let (kept, _) = carol.learn_bundles(bob.account(), std::slice::from_ref(&stale), later);
    assert_eq!(kept, 0);
    assert!(carol.take_refusals().contains(&"expired"));
    assert!(carol.add_contact(&stale_code, later).is_err());
    // Before it ran out, the same bundle was taken: the expiry, not the
    // bundle, keeps it out.
    let (mut dave, _) = new_device(b"dave");
    assert_eq!(dave.learn_bundles(bob.account(), &[stale], NOW).0, 1);
    // The thief's phone writes to Carol first: no session. (Carol's own
    // device renewed its certificate meanwhile, at its hourly upkeep.)
    carol.maintain(later);
    phone
        .add_contact(&carol.contact_code(later), later)
        .unwrap();
    let (out, _) = phone.seal(carol.account(), b"it's Bob", later).unwrap();
    let to_carol = out.iter().find(|o| o.to == carol.account()).unwrap();
    assert!(matches!(
        carol.open(&to_carol.envelope, later),
        Err(Error::Expired { .. })
    ));
}

#[test]
fn the_first_device_renews_its_own_and_its_devices_certificates() {
    let (mut bob, _) = new_device(b"bob");
    let mut phone = paired(&mut bob);
    let (carol, _) = new_device(b"carol");
    introduce(&mut bob, &carol);
    let first = bob.bundle(NOW).certificate.expires_at;
    let phones = phone.bundle(NOW).certificate.expires_at;
    // Half the life gone: the first device renews its own at its hourly
    // upkeep, and hands the phone a renewal with the next copy it sends.
    let t = NOW + TTL / 2 + 3600;
    bob.maintain(t);
    assert!(bob.bundle(t).certificate.expires_at > first);
    let out = seal_at(&mut bob, &carol, "hello", t);
    let account = bob.account();
    for o in out.iter().filter(|o| o.to == account) {
        phone
            .open(&o.envelope, t)
            .expect("the phone reads its copy");
    }
    assert!(phone.bundle(t).certificate.expires_at > phones);
    // The phone announces its renewed bundle with its next copy to the
    // first device, which hands it on from then on (and stops renewing).
    let back = phone.seal(bob.account(), b"a note to self", t).unwrap().0;
    let account = bob.account();
    for o in back.iter().filter(|o| o.to == account) {
        bob.open(&o.envelope, t).expect("Bob reads the copy");
    }
    let handed_on = bob.bundles(bob.account(), t);
    // Past the first certificates' end, whoever meets Bob now learns both
    // devices from what he hands on.
    let late = NOW + TTL + 1;
    let (mut erin, _) = new_device(b"erin");
    let (kept, _) = erin.learn_bundles(bob.account(), &handed_on, late);
    assert_eq!(kept, 2, "the first device and the phone");
}

fn seal_at(from: &mut Device, to: &Device, text: &str, now: u64) -> Vec<Outgoing> {
    from.seal(to.account(), text.as_bytes(), now)
        .expect("a known contact")
        .0
}

/// Anyone can seal an envelope that names a contact as its sender: garbage
/// "from" Alice makes Bob reset, once a minute at most, and the
/// conversation goes on whichever session Alice writes on.
#[test]
fn a_forged_envelope_costs_one_reset_a_minute_not_the_conversation() {
    use murmur_crypto::{envelope, Ciphertext, Header, Message, PublicKey};
    let (mut alice, mut bob) = contacts();
    assert_talk(&mut alice, &mut bob);
    let (to, from) = (
        bob.bundle(NOW).certificate.identity_key,
        (alice.account(), alice.device()),
    );
    let forged = move || {
        let garbage = Ciphertext::Message(Message {
            header: Header {
                ratchet_key: PublicKey([7; 32]),
                previous: 0,
                index: 0,
            },
            ciphertext: vec![0; 48],
        });
        envelope::seal(&to, from, &garbage)
    };
    let envelope = forged();
    let refused = bob.open(&envelope, NOW).err();
    assert!(
        matches!(refused, Some(Error::BrokenSession { account, .. }) if account == alice.account()),
        "{refused:?}"
    );
    let (reset, _) = bob
        .reset((alice.account(), alice.device()), NOW)
        .expect("a contact");
    assert_eq!(reset.len(), 1);
    // Alice writes on the old session before the reset arrives: it opens.
    let old = seal(&mut alice, &bob, "old");
    assert_eq!(deliver(&mut bob, &old), vec![b"old".to_vec()]);
    // A second forgery within the minute: no second reset.
    assert!(bob.open(&forged(), NOW + 1).is_err());
    let (again, _) = bob
        .reset((alice.account(), alice.device()), NOW + 1)
        .expect("a contact");
    assert!(again.is_empty());
    let (received, _) = alice.open(&reset[0].envelope, NOW).expect("opens");
    assert!(received.reset && received.app.is_none());
    assert_talk(&mut alice, &mut bob);
    // A minute on, a reset goes again; a device Bob never met gets none.
    let (later, _) = bob
        .reset((alice.account(), alice.device()), NOW + device::RESET_EVERY)
        .expect("a contact");
    assert_eq!(later.len(), 1);
    let (stranger, _) = new_device(b"stranger");
    assert!(matches!(
        bob.reset((stranger.account(), stranger.device()), NOW),
        Err(Error::UnknownContact(_))
    ));
    let (received, _) = alice.open(&later[0].envelope, NOW).expect("opens");
    assert!(received.reset);
    assert_talk(&mut alice, &mut bob);
}
