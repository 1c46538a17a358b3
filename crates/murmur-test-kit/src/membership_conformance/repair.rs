//! A chain key that never arrived is asked for again, and only a member
//! gets it, and only so often.

use super::*;

/// Whether `message` hands over a chain key and nothing else.
fn only_a_chain_key(message: &Bytes) -> bool {
    use prost::Message as _;
    murmur_proto::chat::Content::decode(message.as_ref())
        .ok()
        .and_then(|c| c.group)
        .is_some_and(|g| g.chain.is_some() && g.events.is_empty())
}

/// Carol's chain key never reaches Bob. Bob cannot read her message, asks
/// the members for the key, Carol answers, and Bob reads it, what she
/// sends after, and what she sent before it that reaches him only later (a
/// key from the message he asked about on would have lost that). Asking again at once sends nothing; a stranger asking is
/// refused; a flood of made-up messages on the group's topic makes Bob ask
/// a few times, not once per message.
pub async fn a_member_whose_chain_key_was_lost_asks_for_it_and_reads_on<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = (crypto::Handle, groups::Handle)>,
{
    let (alice, bob, carol, dave) = (
        device(&start).await,
        device(&start).await,
        device(&start).await,
        device(&start).await,
    );
    let group = pair_in_a_group(&alice, &bob).await;
    introduce(&alice, &carol).await;
    let added = change(&alice, group, Action::Add(carol.account))
        .await
        .expect("the owner adds");
    let lost = |author: AccountId, to: AccountId, m: &Bytes| {
        author == carol.account && to == bob.account && only_a_chain_key(m)
    };
    follow_dropping(&alice, added, &[&alice, &bob, &carol], &lost).await;

    let late = post(&carol, group, "before hello")
        .await
        .expect("Carol is a member");
    let sealed = post(&carol, group, "hello")
        .await
        .expect("Carol is a member");
    assert_eq!(open(&bob, &sealed).await.err(), Some(Error::UnknownChain));
    let asked = request_key(&bob, &sealed).await.expect("Bob is a member");
    let to: std::collections::BTreeSet<AccountId> =
        asked.pairwise.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        to,
        [alice.account, carol.account].into_iter().collect(),
        "every other member is asked: Bob cannot tell whose chain it is"
    );
    assert!(
        request_key(&bob, &sealed)
            .await
            .expect("member")
            .pairwise
            .is_empty(),
        "asked a moment ago: not again"
    );
    follow(&bob, asked, &[&alice, &bob, &carol]).await;
    let opened = open(&bob, &sealed).await.expect("Bob reads it now");
    assert_eq!(opened.sender, carol.account);
    assert_eq!(opened.plaintext.as_ref(), b"hello");
    let next = post(&carol, group, "and on").await.expect("member");
    assert_eq!(
        open(&bob, &next).await.expect("reads").plaintext.as_ref(),
        b"and on"
    );
    assert_eq!(
        open(&bob, &late)
            .await
            .expect("reads, late")
            .plaintext
            .as_ref(),
        b"before hello"
    );
    // Asking now that the key is here sends nothing.
    assert!(request_key(&bob, &sealed)
        .await
        .expect("member")
        .pairwise
        .is_empty());

    // Dave, no member, asks Carol for her key: refused.
    let request = murmur_proto::chat::GroupControl {
        group: group.0.to_vec(),
        chain_request: Some(murmur_proto::chat::ChainRequest {
            chain: vec![0; 16],
            iteration: 0,
            heads: Vec::new(),
        }),
        ..Default::default()
    };
    let refused = raw_control(&carol, dave.account, request, false).await;
    assert_eq!(refused.err(), Some(Error::NotMember(group)));

    // Fifty made-up messages on the topic (Carol's, with the chain id
    // changed): Bob asks the members a few times, not fifty.
    let mut asks = 0;
    for i in 0..50u8 {
        let mut payload = sealed.payload.to_vec();
        for byte in payload.iter_mut().skip(1).take(16) {
            *byte ^= i.wrapping_add(1);
        }
        let fake = crypto::Sealed::new(sealed.content_topic.clone(), Bytes::from(payload));
        if !request_key(&bob, &fake)
            .await
            .expect("member")
            .pairwise
            .is_empty()
        {
            asks += 1;
        }
    }
    assert!(
        (1..=10).contains(&asks),
        "{asks} asks for 50 made-up messages"
    );
}

async fn request_key(by: &Device, sealed: &crypto::Sealed) -> Result<Effects, Error> {
    by.groups
        .request_key
        .send(groups::RequestKey(delivery(sealed)))
        .await
        .expect("stage alive")
}
