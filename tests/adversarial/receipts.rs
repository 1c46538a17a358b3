//! Receipts as an attacker would send them: a contact who learnt the id
//! of a message sent to someone else acknowledges it, and the recipient's
//! one device acknowledges the same message again and again. Neither may
//! make the sender believe more devices have it than do.

use murmur::node::chat::DeliveryState;
use murmur_proto::chat::Content;

use super::{account, message as text, AccountId, Attacker, WAIT};

fn receipt(id: &[u8]) -> Content {
    Content {
        receipts: vec![id.to_vec()],
        ..Content::default()
    }
}

#[actix_rt::test]
async fn a_receipt_counts_once_per_device_and_only_from_the_recipient() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let alice = super::node(dirs[0].path(), None).await;
    let mut mallory = Attacker::new(dirs[1].path(), &alice).await;
    let mut eve = Attacker::new(dirs[2].path(), &alice).await;
    for attacker in [&mut mallory, &mut eve] {
        alice.add_contact(&attacker.code()).await.unwrap();
        attacker.meet(&alice).await;
    }
    let to = account(&alice).await;
    let mut inbox = alice.inbox().await.unwrap();
    let refused = || async { alice.stats().await.unwrap().receipts_refused };

    let mut sent = alice
        .conversation(AccountId(mallory.device.account().0))
        .send_text("for mallory alone")
        .await
        .unwrap();
    let read = mallory.receive().await;
    assert_eq!(read.text.as_deref(), Some("for mallory alone"));

    // Eve acknowledges a message that did not go to her. Her next message
    // is read after her receipt was handled (one sender's envelopes are
    // opened in the order they came).
    eve.send(to, &receipt(&read.id)).await;
    eve.send(to, &text(1, "eve again")).await;
    let next = inbox.recv_timeout(WAIT).await.expect("eve's message");
    assert_eq!(next.text(), Some("eve again"));
    assert!(
        !matches!(sent.state(), DeliveryState::Acknowledged { .. }),
        "a receipt from another account acknowledged the message: {:?}",
        sent.state()
    );
    assert_eq!(refused().await, 1);

    // Mallory's one device acknowledges it: one device.
    mallory.send(to, &receipt(&read.id)).await;
    assert_eq!(
        sent.acknowledged(WAIT).await,
        DeliveryState::Acknowledged { devices: 1 }
    );
    // And again, twice: still one device.
    mallory.send(to, &receipt(&read.id)).await;
    mallory.send(to, &receipt(&read.id)).await;
    mallory.send(to, &text(2, "mallory again")).await;
    let next = inbox.recv_timeout(WAIT).await.expect("mallory's message");
    assert_eq!(next.text(), Some("mallory again"));
    assert_eq!(sent.state(), DeliveryState::Acknowledged { devices: 1 });
    assert_eq!(refused().await, 3);
}
