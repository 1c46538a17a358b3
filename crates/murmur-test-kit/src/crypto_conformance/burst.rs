//! Cases about envelopes that reach the stage together, as a burst from
//! the network or a store node does: a stage may open them apart from its
//! sessions, but each must open as if it came alone, in its turn.

use super::*;

/// A new device reads the first device's pairing answer and, in the same
/// burst, a contact's first message to the identity that answer gives it:
/// what is opened after the answer is opened with the new identity, even
/// if the stage opened the whole burst before it read the answer.
pub async fn a_message_right_behind_the_pairing_answer_opens_with_the_new_identity<F, Fut>(start: F)
where
    F: Fn(storage::Handle) -> Fut,
    Fut: Future<Output = crypto::Handle>,
{
    let (phone, laptop, contact) = (
        start(storage()).await,
        start(storage()).await,
        start(storage()).await,
    );
    let account = introduce(&contact, &phone).await;
    let hello = seal(&contact, account, "hello").await.expect("sealed");
    answer_accepted(&phone, &contact, &hello).await;

    let answers = pairing_answers(&phone, &laptop).await;
    // The contact learns the laptop from the phone's announcement and
    // writes to the account: to the phone, and to the laptop's new identity.
    open_mine(&contact, &answers).await;
    let behind = seal(&contact, account, "right behind")
        .await
        .expect("sealed");

    let burst: Vec<_> = answers.iter().chain(&behind).collect();
    let opens: Vec<_> = burst
        .iter()
        .map(|s| laptop.open.send(Open(delivery(s))))
        .collect();
    let mut opened = Vec::new();
    for open in opens {
        match open.await.expect("stage alive") {
            Ok(o) => opened.push(o),
            Err(Error::NotForUs) => {}
            Err(e) => panic!("an envelope for the laptop was refused: {e}"),
        }
    }
    assert!(opened.iter().any(|o| o.identity_changed), "paired");
    assert!(
        opened
            .iter()
            .any(|o| o.plaintext.as_deref() == Some(&b"right behind"[..])),
        "the contact's message opened with the laptop's new identity"
    );
}
