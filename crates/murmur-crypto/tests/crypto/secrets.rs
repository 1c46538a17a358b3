//! Debug output shows public identifiers only: pinned here, with the random
//! hex of each run masked, and checked against every secret byte string.

use murmur_crypto::{Account, KeyPair, Limits};

use crate::{device, pair};

/// Masks runs of hex digits, so that a snapshot of random keys is stable.
fn masked(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in s.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 8 {
            out.push('#');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.push_str(&run);
    out
}

/// Every 8-byte window of `secret`, in hex: none may appear in `shown`.
fn assert_hidden(shown: &str, secret: &[u8]) {
    for w in secret.windows(8) {
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex), "secret bytes {hex} in {shown}");
    }
}

#[test]
fn debug_output_is_pinned_and_shows_no_secret() {
    let account = Account::generate();
    let shown = format!("{account:?}");
    assert_eq!(masked(&shown), "Account { id: AccountId(#…), .. }");
    assert_hidden(&shown, account.to_secret().as_ref());

    let pair_ = KeyPair::generate();
    assert_eq!(
        masked(&format!("{pair_:?}")),
        "KeyPair { public: PublicKey(#…), .. }"
    );

    let installation = device();
    let shown = format!("{installation:?}");
    assert_eq!(
        masked(&shown),
        "Installation { account: AccountId(#…), device: DeviceId(#…), \
         identity_key: PublicKey(#…), one_time_left: 50, .. }"
    );
    // The state bytes hold every secret; their 32-byte keys start after
    // the 16-byte device id.
    assert_hidden(&shown, &installation.to_bytes()[17..]);
    assert_hidden(
        &format!("{installation:#?}"),
        &installation.to_bytes()[17..],
    );

    let (alice, _) = pair(Limits::default());
    let shown = format!("{alice:?}");
    assert_eq!(
        masked(&shown),
        "Session { peer_account: AccountId(#…), peer_device: DeviceId(#…), \
         sent: 1, received: 0, skipped_keys: 0, .. }"
    );
    let state = alice.to_bytes();
    assert_hidden(&shown, &state[state.len() - 400..]);
}
