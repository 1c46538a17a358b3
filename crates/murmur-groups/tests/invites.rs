//! Invite codes and the join policy: what a code carries survives its
//! text form, a mangled code is a typed error, and an admin's device admits
//! exactly whom the log says.

use murmur_groups::invite::{self, Admission, Invite, Refused};
use murmur_groups::{Action, JoinMode, Log, MemberId, SigningKey};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n + 1; 32])
}

fn id(n: u8) -> MemberId {
    key(n).verifying_key().into()
}

#[test]
fn a_code_survives_its_text_form() {
    let (log, _) = Log::create(&key(0), "friends");
    for secret in [None, Some([7; 32])] {
        let code = Invite {
            group: log.group(),
            admin: id(0),
            secret,
            bundles: vec![vec![1, 2, 3], Vec::new(), vec![9; 300]],
        };
        let text = code.encode();
        assert!(text.starts_with(invite::PREFIX));
        assert_eq!(Invite::decode(&format!("  {text}\n")).unwrap(), code);
    }
}

#[test]
fn a_mangled_code_is_a_typed_error() {
    let (log, _) = Log::create(&key(0), "friends");
    let good = Invite {
        group: log.group(),
        admin: id(0),
        secret: Some([7; 32]),
        bundles: vec![vec![1; 40]],
    }
    .encode();
    let cut = &good[..good.len() - 5];
    for bad in [
        "",
        "murmur-join:",
        "murmur-join:!!!",
        "murmur:AAAA",
        "murmur-join:AAAA",
        cut,
    ] {
        assert!(Invite::decode(bad).is_err(), "{bad:?}");
    }
    // A length prefix that points past the end.
    let mut code = Invite::decode(&good).unwrap();
    code.bundles.clear();
    let text = code.encode();
    let long = format!("{text}AAAAAQ");
    assert!(Invite::decode(&long).is_err());
}

#[test]
fn an_admin_admits_whom_the_log_says() {
    let (mut log, _) = Log::create(&key(0), "friends");
    let secret = [42; 32];
    log.author(&key(0), Action::Add(id(1))).unwrap();
    log.author(&key(0), Action::Invite(invite::hash(&secret)))
        .unwrap();
    log.author(&key(0), Action::Ban(id(3))).unwrap();
    let state = log.state();
    let admin = id(0);
    // Invite-only: the secret admits, nothing else does.
    assert_eq!(
        state.admission(&admin, &id(2), Some(&secret)),
        Ok(Admission::Admit)
    );
    assert_eq!(
        state.admission(&admin, &id(2), Some(&[41; 32])),
        Err(Refused::InviteOnly)
    );
    assert_eq!(
        state.admission(&admin, &id(2), Some(&[1, 2])),
        Err(Refused::InviteOnly)
    );
    assert_eq!(
        state.admission(&admin, &id(2), None),
        Err(Refused::InviteOnly)
    );
    // A member asks again: nothing to do. A banned account: refused, even
    // with the secret.
    assert_eq!(state.admission(&admin, &id(1), None), Ok(Admission::Member));
    assert_eq!(
        state.admission(&admin, &id(3), Some(&secret)),
        Err(Refused::Banned(id(3)))
    );
    // A request that reaches a member who is not an admin.
    assert_eq!(
        state.admission(&id(1), &id(2), Some(&secret)),
        Err(Refused::NotAdmin)
    );
    log.author(&key(0), Action::JoinMode(JoinMode::Approval))
        .unwrap();
    assert_eq!(
        log.state().admission(&admin, &id(2), None),
        Ok(Admission::Ask)
    );
    log.author(&key(0), Action::JoinMode(JoinMode::Open))
        .unwrap();
    assert_eq!(
        log.state().admission(&admin, &id(2), None),
        Ok(Admission::Admit)
    );
    // A revoked invite admits no more.
    log.author(&key(0), Action::JoinMode(JoinMode::Invite))
        .unwrap();
    log.author(&key(0), Action::RevokeInvite(invite::hash(&secret)))
        .unwrap();
    assert_eq!(
        log.state().admission(&admin, &id(2), Some(&secret)),
        Err(Refused::InviteOnly)
    );
}
