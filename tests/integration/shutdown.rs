//! A program that sends chat messages and returns from `main` with work
//! still in flight (receipts, archiving, session writes) ends cleanly: no
//! panic from a database pool or a task whose runtime is gone.
//!
//! The program runs in a child process (this test binary again, selecting
//! the child test with an environment variable), so that its whole life,
//! runtime teardown included, is observed from outside.

use std::process::Command;

use crate::support::{chat_node, WAIT};

const CHILD: &str = "MURMUR_SHUTDOWN_CHILD";
const MESSAGES: usize = 2000;

#[test]
fn a_program_that_returns_with_work_in_flight_ends_without_a_panic() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shutdown::child_sends_and_returns",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child did not run: {stdout}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic on the way out:\n{stderr}"
    );
}

/// The child: two nodes, `MESSAGES` chat messages each awaited as sent, then
/// everything dropped with the receipts and writes still going.
#[test]
fn child_sends_and_returns() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let system = actix::System::new();
    system.block_on(async {
        let alice = chat_node(dirs[0].path(), None).await;
        let bob = chat_node(dirs[1].path(), Some(&alice)).await;
        let bob_id = alice
            .add_contact(&bob.contact_code().await.unwrap())
            .await
            .unwrap();
        let topic = crate::support::partition_topic_of(bob_id);
        alice
            .wait_for_peers(&alice.pubsub_topic(&topic), 1, WAIT)
            .await
            .unwrap();
        let to_bob = alice.conversation(bob_id);
        for i in 0..MESSAGES {
            to_bob.send_text(format!("message {i}")).await.unwrap();
        }
    });
    drop(system);
}
