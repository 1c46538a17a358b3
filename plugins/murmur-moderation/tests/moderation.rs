//! Moderation verdicts and admin commands, message by message, on a clock
//! the test drives.

use std::time::{Duration, Instant};

use figment::{
    providers::{Format, Toml},
    Figment,
};
use murmur_core::{
    chat::{Body, ChatMessage, MessageId, Target},
    crypto::{AccountId, DeviceId},
    groups::{GroupId, Role},
};
use murmur_moderation::{Action, Moderator, Reason, Settings};

const GROUP: GroupId = GroupId([9; 32]);

fn settings(toml: &str) -> Settings {
    Figment::from(Toml::string(toml))
        .extract()
        .expect("valid settings")
}

fn from(sender: u8, role: Role, text: &str) -> ChatMessage {
    ChatMessage::new(
        MessageId(rand_id(sender, text)),
        AccountId([sender; 32]),
        DeviceId([sender; 16]),
        AccountId([0; 32]),
        Body::Text(text.to_owned()),
    )
    .in_group(GROUP, role)
}

/// A distinct id per (sender, text, call).
fn rand_id(sender: u8, text: &str) -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut id = [sender; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8] = text.len() as u8;
    id
}

fn hex(a: u8) -> String {
    format!("{a:02x}").repeat(32)
}

#[test]
fn filters_drop_what_they_name_and_let_the_rest_through() {
    let mut m = Moderator::new(settings(
        r#"words = ["Buy Now"]
           patterns = ['https?://\S+\.example']"#,
    ))
    .unwrap();
    let t = Instant::now();
    assert_eq!(m.check(&from(1, Role::Member, "hello"), t), Ok(()));
    assert_eq!(
        m.check(&from(1, Role::Member, "BUY NOW, cheap"), t),
        Err(Reason::Word("buy now".into()))
    );
    assert!(matches!(
        m.check(&from(1, Role::Member, "see http://spam.example"), t),
        Err(Reason::Pattern(_))
    ));
    assert_eq!(m.counts().get("word"), Some(&1));
}

#[test]
fn a_flood_mutes_its_sender_and_rates_and_repeats_are_bounded() {
    let mut m = Moderator::new(settings(
        "flood = { messages = 3, seconds = 2 }\nrate = { messages = 5, seconds = 60 }\nduplicates = { messages = 2, seconds = 60 }\nmute_seconds = 30",
    ))
    .unwrap();
    let t = Instant::now();
    for i in 0..3 {
        assert_eq!(
            m.check(&from(1, Role::Member, &format!("msg {i}")), t),
            Ok(())
        );
    }
    assert_eq!(
        m.check(&from(1, Role::Member, "msg 3"), t),
        Err(Reason::Flood)
    );
    assert_eq!(
        m.check(&from(1, Role::Member, "later"), t + Duration::from_secs(10)),
        Err(Reason::Muted)
    );
    assert!(m.is_muted(&AccountId([1; 32]), t + Duration::from_secs(29)));
    // Others are not affected; the mute ends.
    assert_eq!(m.check(&from(2, Role::Member, "hi"), t), Ok(()));
    assert_eq!(
        m.check(&from(1, Role::Member, "back"), t + Duration::from_secs(31)),
        Ok(())
    );
    // The same text twice is allowed, a third time is a repeat.
    let t2 = t + Duration::from_secs(40);
    assert_eq!(m.check(&from(3, Role::Member, "same"), t2), Ok(()));
    assert_eq!(
        m.check(&from(3, Role::Member, "same"), t2 + Duration::from_secs(3)),
        Ok(())
    );
    assert_eq!(
        m.check(&from(3, Role::Member, "same"), t2 + Duration::from_secs(6)),
        Err(Reason::Duplicate)
    );
    // A steady sender hits the rate.
    let mut last = Ok(());
    for i in 0..6 {
        last = m.check(
            &from(4, Role::Member, &format!("steady {i}")),
            t2 + Duration::from_secs(3 * i),
        );
    }
    assert_eq!(last, Err(Reason::RateLimited));
}

#[test]
fn admin_commands_are_honoured_only_from_admins() {
    let mut m = Moderator::new(Settings::default()).unwrap();
    let t = Instant::now();
    let ban = format!("/ban {}", hex(5));
    assert_eq!(
        m.check(&from(2, Role::Member, &ban), t),
        Err(Reason::NotAllowed("ban"))
    );
    assert!(!m.is_banned(&AccountId([5; 32])), "nothing applied");
    assert!(m.take_actions().is_empty());

    // A community's moderators may, as its admins and owner may.
    assert_eq!(m.check(&from(1, Role::Moderator, &ban), t), Ok(()));
    assert_eq!(
        m.check(&from(5, Role::Member, "let me in"), t),
        Err(Reason::Banned)
    );
    assert_eq!(
        m.take_actions(),
        [Action::Ban {
            group: GROUP,
            account: AccountId([5; 32])
        }]
    );

    // A deleted message's later copies are dropped; the members are told.
    let spam = from(6, Role::Member, "a message to delete");
    assert_eq!(m.check(&spam, t), Ok(()));
    assert_eq!(
        m.check(&from(1, Role::Admin, &format!("/delete {}", spam.id)), t),
        Ok(())
    );
    assert_eq!(m.check(&spam, t), Err(Reason::Deleted));
    assert_eq!(
        m.take_actions(),
        [Action::Delete {
            target: Target::Group(GROUP),
            message: spam.id
        }]
    );

    // A deletion notice counts only from an admin.
    let other = from(6, Role::Member, "another");
    let mut notice = from(2, Role::Member, "");
    notice.body = Body::deletion(other.id);
    assert_eq!(m.check(&notice, t), Err(Reason::NotAllowed("delete")));
    assert_eq!(m.check(&other, t), Ok(()));
    notice.role = Some(Role::Admin);
    assert_eq!(m.check(&notice, t), Ok(()));
    assert_eq!(m.check(&other, t), Err(Reason::Deleted));

    // Bad arguments: dropped, counted, and a polite answer queued.
    assert!(matches!(
        m.check(&from(1, Role::Admin, "/mute bob"), t),
        Err(Reason::BadCommand(_))
    ));
    assert!(matches!(
        &m.take_actions()[..],
        [Action::Reply { text, .. }] if text.starts_with("/mute: an account is 64 hex digits")
    ));
    assert_eq!(
        m.check(&from(1, Role::Admin, &format!("/mute {} 60", hex(7))), t),
        Ok(())
    );
    assert_eq!(m.check(&from(7, Role::Member, "hm"), t), Err(Reason::Muted));
}

#[test]
fn bad_settings_name_what_is_wrong() {
    for (toml, expected) in [
        ("patterns = ['(']", "patterns: \"(\""),
        ("banned = [\"bob\"]", "banned: \"bob\" is not an account"),
        (
            "rate = { messages = 0, seconds = 1 }",
            "rate: messages and seconds",
        ),
    ] {
        let err = Moderator::new(settings(toml)).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }
    let typo: Result<Settings, _> = Figment::from(Toml::string("wrods = []")).extract();
    assert!(typo.unwrap_err().to_string().contains("wrods"));
}

#[test]
fn the_shipped_configuration_builds_a_moderator() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/moderation.toml");
    let config = murmur_node::Config::from_figment(&murmur_node::Config::figment(Some(&path)))
        .expect("config/moderation.toml is a valid node configuration");
    let settings: Settings = config
        .plugin("moderation")
        .expect("valid moderation settings");
    let mut m = Moderator::new(settings).expect("builds");
    assert_eq!(
        m.check(&from(1, Role::Member, "FREE TOKENS here"), Instant::now()),
        Err(Reason::Word("free tokens".into()))
    );
}
