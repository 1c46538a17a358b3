//! Logs that reach every member: pulled from the next message by a member
//! that missed an event, and longer than one envelope for a joiner.

use super::*;

/// A chat text as the node encodes it: group messages that are chat
/// content carry their sender's log heads.
async fn post_text(by: &Device, group: GroupId, text: &str) -> crypto::Sealed {
    use prost::Message as _;
    let content = murmur_proto::chat::Content {
        id: rand_id().to_vec(),
        sent_at: 1,
        text: Some(text.to_owned()),
        ..Default::default()
    };
    by.groups
        .post
        .send(Post {
            group,
            plaintext: Bytes::from(content.encode_to_vec()),
        })
        .await
        .expect("stage alive")
        .expect("sealed")
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(0);
    [NEXT.fetch_add(1, Ordering::Relaxed); 16]
}

/// A member that missed a membership event learns it from the next
/// message of a member that has it: the message names its sender's log
/// heads, the reader asks that member for its log (once per head), and
/// applies it. A device that is not a member gets nothing by asking.
pub async fn a_member_who_missed_an_event_pulls_it_from_the_next_message<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob, carol) = (
        device(&start).await,
        device(&start).await,
        device(&start).await,
    );
    let group = pair_in_a_group(&alice, &bob).await;
    // Alice renames the group; the event never reaches Bob.
    change(&alice, group, Action::Rename("renamed".to_owned()))
        .await
        .expect("renamed");
    let sealed = post_text(&alice, group, "after the rename").await;
    let opened = open(&bob, &sealed).await.expect("Bob reads");
    assert_eq!(info(&bob, group).await.expect("known").name, "conformance");
    assert!(!opened.effects.pairwise.is_empty(), "Bob asks for the log");
    follow(&bob, opened.effects.clone(), &[&alice, &bob]).await;
    assert_eq!(info(&bob, group).await.expect("known").name, "renamed");
    // Asked once: the same heads again ask nothing.
    let again = post_text(&alice, group, "again").await;
    assert!(open(&bob, &again).await.expect("reads").effects.is_empty());

    // Carol, no member, asks Alice for the log: refused.
    let asked = raw_control(
        &alice,
        carol.account,
        murmur_proto::chat::GroupControl {
            group: group.0.to_vec(),
            want: true,
            ..Default::default()
        },
        false,
    )
    .await;
    assert_eq!(asked.err(), Some(Error::NotMember(group)));
}

/// A group whose log is longer than one envelope carries (150 KiB on the
/// relay) still reaches a joiner: in several control messages, each well
/// under it, which together make the whole log.
pub async fn a_joiner_gets_a_log_longer_than_one_envelope<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob) = (device(&start).await, device(&start).await);
    introduce(&alice, &bob).await;
    let (group, _) = create(&alice, "long").await;
    let long = "n".repeat(200);
    for i in 0..700 {
        change(&alice, group, Action::Rename(format!("{long}{i}")))
            .await
            .expect("renamed");
    }
    let added = change(&alice, group, Action::Add(bob.account))
        .await
        .expect("the owner adds");
    let to_bob: Vec<&Bytes> = added
        .pairwise
        .iter()
        .filter(|(to, _)| *to == bob.account)
        .map(|(_, m)| m)
        .collect();
    let total: usize = to_bob.iter().map(|m| m.len()).sum();
    assert!(
        total > 150 * 1024,
        "the log is longer than an envelope: {total}"
    );
    assert!(to_bob.len() > 1);
    for m in &to_bob {
        assert!(
            m.len() < 100 * 1024,
            "a control message of {} bytes",
            m.len()
        );
    }
    follow(&alice, added, &[&alice, &bob]).await;
    let summary = info(&bob, group).await.expect("Bob has the group");
    assert_eq!(summary.name, format!("{long}699"));
    assert!(summary.member);
}

/// `from`'s control message `control` (as the pipeline hands it over), sent
/// to `to`'s membership stage.
pub(super) async fn raw_control(
    to: &Device,
    from: AccountId,
    control: murmur_proto::chat::GroupControl,
    request: bool,
) -> Result<Effects, Error> {
    use prost::Message as _;
    let message = murmur_proto::chat::Content {
        id: rand_id().to_vec(),
        group: Some(control),
        ..Default::default()
    }
    .encode_to_vec();
    to.groups
        .control
        .send(Control {
            from,
            device: crypto::DeviceId([0; 16]),
            message: Bytes::from(message),
            request,
        })
        .await
        .expect("stage alive")
}
