//! A node put back to a copy of its data folder (a restored backup) has
//! sessions older than its contacts': their next messages do not open. It
//! starts those sessions over, and its contacts send again what it had not
//! acknowledged. Real processes (killed with `kill -9`, their folder copied
//! while nothing runs on it), a real SQLite file, real sockets.

use std::path::Path;

use murmur::node::chat::Inbox;

use crate::{
    crash::{sender, Running},
    support::{addr, meshed_for, WAIT},
};

/// Copies every file under `from` into `to`, which is emptied first.
fn copy_folder(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The next answer in `inbox`, which must be `expected`.
async fn answer(inbox: &mut Inbox, expected: &str) {
    let message = inbox
        .recv_timeout(2 * WAIT)
        .await
        .unwrap_or_else(|| panic!("no answer {expected:?}"));
    assert_eq!(message.text(), Some(expected));
}

/// The bot (a child process answering "ack TEXT") is backed up after one
/// exchange, answers two more, and is put back to the backup. A message
/// sent while it was down was sealed on Alice's side of the session its
/// backup is behind: it does not open there. A side starts the session
/// over, Alice's node sends the message again (it was never
/// acknowledged), and the bot answers it. Fails without the reset: the
/// bot never reads it.
#[actix_rt::test]
async fn a_node_back_from_a_backup_starts_its_sessions_over_and_what_it_missed_comes_again() {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (data, backup) = (dirs[1].path().join("bot"), dirs[2].path().join("bot"));
    let alice = sender(dirs[0].path()).await;
    let peer = addr(&alice, false);
    let contact = alice.contact_code().await.unwrap();
    let mut inbox = alice.inbox().await.unwrap();
    let bot = Running::start("bot", &data, &peer, &contact).await;
    let account = alice.add_contact(&bot.ready().await).await.unwrap();
    meshed_for(&alice, account).await;
    let chat = alice.conversation(account);
    chat.send_text("one").await.unwrap();
    answer(&mut inbox, "ack one").await;

    bot.kill().await;
    copy_folder(&data, &backup);
    let bot = Running::start("bot", &data, &peer, &contact).await;
    meshed_for(&alice, account).await;
    for text in ["two", "three"] {
        chat.send_text(text).await.unwrap();
        answer(&mut inbox, &format!("ack {text}")).await;
    }

    bot.kill().await;
    copy_folder(&backup, &data);
    // Sealed now, on the session the backup is behind; published once the
    // bot is back.
    chat.send_text("while it was down").await.unwrap();
    let bot = Running::start("bot", &data, &peer, &contact).await;
    answer(&mut inbox, "ack while it was down").await;
    // The bot's node said what did not open. Which side reset first is a
    // race (the restored bot may write on its old session before it
    // reads, and Alice cannot read that either); whichever did, Alice's
    // node sent the message again.
    bot.told_unreadable("broken=true reset=false").await;
    let stats = alice.stats().await.unwrap();
    assert!(stats.resent >= 1, "{stats:?}");
    assert!(
        stats.sessions_reset >= 1
            || bot
                .unreadable_so_far()
                .iter()
                .any(|e| e.ends_with("reset=true")),
        "one side reset: {stats:?}, the bot said {:?}",
        bot.unreadable_so_far()
    );
    // And the conversation goes on, on the new session.
    chat.send_text("after").await.unwrap();
    answer(&mut inbox, "ack after").await;
    bot.check();
}
