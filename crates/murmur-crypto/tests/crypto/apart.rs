//! Sealing and opening with the key agreement apart from the device
//! (`Device::seal_pending`, `Device::opener`), on other threads: what a
//! stage does to make the agreements of a burst of envelopes on every core.

use murmur_crypto::device::{Device, Error};
use murmur_crypto::{Limits, Vault};

use crate::NOW;

fn contacts() -> (Device, Device) {
    let (mut alice, _) = Device::create(Vault::new(b"alice"), Limits::default(), NOW);
    let (mut bob, _) = Device::create(Vault::new(b"bob"), Limits::default(), NOW);
    alice
        .add_contact(&bob.contact_code(NOW), NOW)
        .expect("a code");
    bob.add_contact(&alice.contact_code(NOW), NOW)
        .expect("a code");
    (alice, bob)
}

#[test]
fn envelopes_sealed_and_opened_on_other_threads_read_as_those_made_at_once() {
    let (mut alice, mut bob) = contacts();
    let mut pending = Vec::new();
    for i in 0..20 {
        let (out, records) = alice
            .seal_pending(bob.account(), format!("m{i}").as_bytes(), NOW)
            .expect("a contact");
        assert!(!records.is_empty(), "the session step is to be saved");
        pending.extend(out);
    }
    let sealed: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = pending
            .into_iter()
            .map(|p| s.spawn(move || p.seal()))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("sealed"))
            .collect()
    });
    let opener = bob.opener();
    let unsealed: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = sealed
            .iter()
            .map(|o| {
                let opener = opener.clone();
                s.spawn(move || opener.open(&o.envelope))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("opened"))
            .collect()
    });
    for (i, u) in unsealed.into_iter().enumerate() {
        let (received, _) = bob.open_unsealed(u, NOW).expect("reads");
        assert_eq!(received.sender, (alice.account(), alice.device()));
        assert_eq!(received.app, Some(format!("m{i}").into_bytes()));
    }
    // The sessions go on both ways as usual.
    let (back, _) = bob.seal(alice.account(), b"back", NOW).expect("a contact");
    let (received, _) = alice.open(&back[0].envelope, NOW).expect("reads");
    assert_eq!(received.app.as_deref(), Some(&b"back"[..]));
}

#[test]
fn an_opener_opens_only_its_own_devices_envelopes_and_keeps_its_key_out_of_debug() {
    let (mut alice, bob) = contacts();
    let (mut eve, _) = Device::create(Vault::new(b"eve"), Limits::default(), NOW);
    let (out, _) = alice
        .seal(bob.account(), b"for bob", NOW)
        .expect("a contact");
    let eves = eve.opener();
    let opened = eves.open(&out[0].envelope);
    assert!(opened.is_err());
    // Handed to the device, what did not open is refused and counted.
    assert_eq!(eve.open_unsealed(opened, NOW).unwrap_err(), Error::NotForUs);
    let mut flipped = out[0].envelope.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let bobs = bob.opener();
    assert!(bobs.open(&flipped).is_err(), "an altered envelope");
    assert!(bobs.open(&out[0].envelope).is_ok());
    assert_eq!(eve.take_refusals(), vec!["not_for_us"]);
    let shown = format!("{bobs:?}");
    assert!(shown.starts_with("Opener"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}
