//! `murmur chat`: chat as a person, on a node of one's own. Interactive by
//! default (lines in, messages out as they come); with `--code`, `--add`,
//! `--send` or `--read`, one command for scripts and tests, then exit.
//!
//! The account lives in the data folder (created at the first start), so
//! contacts, sessions, groups and the history shown by `/history` are there
//! after a restart. What has been shown is remembered (a durable reader
//! of the inbox named `chat`): a message is shown once, and one that came
//! while the client was away is shown at its next start.

use std::{io::Write as _, time::Duration};

use murmur_node::{
    chat::{AccountId, DeliveryState, Durable, Entry},
    Builder, Node,
};

use crate::{error::CliError, load_config, NodeArgs};

mod book;
mod interactive;

use book::Book;

/// The inbox reader whose position says what was shown.
const READER: &str = "chat";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// Print this account's contact code, then exit.
    #[arg(long)]
    code: bool,
    /// Add a contact by its code (and name it, with --name), then exit.
    #[arg(long, value_name = "CODE")]
    add: Option<String>,
    /// The name --add gives the contact.
    #[arg(long, value_name = "NAME", requires = "add")]
    name: Option<String>,
    /// Send TEXT to CONTACT (a name, an account or the start of one), then
    /// exit once the network took it.
    #[arg(long, num_args = 2, value_names = ["CONTACT", "TEXT"])]
    send: Option<Vec<String>>,
    /// Print the messages not shown yet, then exit.
    #[arg(long)]
    read: bool,
    /// How long --read waits for a first message, and --send for the
    /// network, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    wait: u64,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let mut node_args = args.node.clone();
    // A person's client needs no fixed port: any free one, unless asked.
    if node_args.listen.is_empty() {
        node_args.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().expect("a valid multiaddr")];
    }
    let config = load_config(&node_args)?;
    if !config.chat.enabled {
        return Err(CliError::Usage(
            "chat is off in this configuration (chat.enabled = false)".to_owned(),
        ));
    }
    let node = Builder::new(config).start().await?;
    let book = Book::load(&node).await?;
    let wait = Duration::from_secs(args.wait);
    let outcome = if args.code {
        say(&node.contact_code().await?)
    } else if let Some(code) = args.add {
        let account = node.add_contact(code.trim()).await?;
        if let Some(name) = args.name {
            book.name(&node, account, &name).await?;
        }
        say(&account.to_string())
    } else if let Some(send) = args.send {
        let [contact, text] = <[String; 2]>::try_from(send)
            .map_err(|_| CliError::Usage("--send takes a contact and a text".to_owned()))?;
        send_once(&node, &book, &contact, text, wait).await
    } else if args.read {
        read_once(&node, &book, wait).await
    } else {
        interactive::run(&node, book).await
    };
    let _ = node.close().await;
    outcome
}

/// Prints a line; a closed stdout is not an error of the chat's.
pub(crate) fn say(line: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    Ok(())
}

async fn send_once(
    node: &Node,
    book: &Book,
    contact: &str,
    text: String,
    wait: Duration,
) -> Result<(), CliError> {
    let account = book.find(node, contact).await?;
    let mut sent = node.conversation(account).send_text(text.clone()).await?;
    book.record(node, &book::Line::sent(account, &text)).await?;
    let mut state = sent.watch();
    let deadline = tokio::time::Instant::now() + wait;
    while matches!(*state.borrow(), DeliveryState::Queued) {
        if tokio::time::timeout_at(deadline, state.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let state = sent.acknowledged(Duration::ZERO).await;
    say(&format!("{} {}", sent.id, mark(&state)))
}

async fn read_once(node: &Node, book: &Book, wait: Duration) -> Result<(), CliError> {
    let mut inbox = node.durable_inbox(READER).await?;
    catch_up(node).await;
    let mut until = tokio::time::Instant::now() + wait;
    while let Ok(Some(entry)) = tokio::time::timeout_at(until, inbox.recv()).await {
        show(node, book, &mut inbox, &entry).await?;
        // Once one came, the rest come close behind it.
        until = tokio::time::Instant::now() + Duration::from_secs(1);
    }
    Ok(())
}

/// Fetches what came while the client was away from the store nodes,
/// showing how it goes on a terminal.
pub(crate) async fn catch_up(node: &Node) {
    let progress = crate::progress::Progress::new("catching up from the store nodes");
    if let Ok(fetched) = node.sync_now().await {
        progress.set(format!("fetched {fetched} messages"));
    }
}

/// Prints a message, keeps it in the history, and marks it shown.
pub(crate) async fn show(
    node: &Node,
    book: &Book,
    inbox: &mut Durable,
    entry: &Entry,
) -> Result<(), CliError> {
    let message = &entry.message;
    let from = book.label(message.sender);
    let place = match (message.group, &message.channel) {
        (Some(group), Some(channel)) => {
            format!(" in {}#{channel}", book.group_label(node, group).await)
        }
        (Some(group), None) => format!(" in {}", book.group_label(node, group).await),
        (None, _) => String::new(),
    };
    let text = message.text().map_or_else(
        || "(a payload this client does not show)".to_owned(),
        str::to_owned,
    );
    let request = if message.request {
        " (message request: /accept to answer)"
    } else {
        ""
    };
    say(&format!("{from}{place}: {text}{request}"))?;
    book.record(node, &book::Line::received(message, &text))
        .await?;
    inbox.done(entry.seq).await?;
    Ok(())
}

/// A delivery state as a mark.
pub(crate) fn mark(state: &DeliveryState) -> String {
    match state {
        DeliveryState::Queued => "queued (no peer yet; it goes when one comes)".to_owned(),
        DeliveryState::Published { .. } => "sent ✓".to_owned(),
        DeliveryState::Acknowledged { devices } => format!("delivered ✓✓ ({devices} device(s))"),
        DeliveryState::Failed(why) => format!("failed: {why}"),
        _ => "?".to_owned(),
    }
}

/// The short form of an account.
pub(crate) fn short(account: AccountId) -> String {
    account.to_string()[..8].to_owned()
}
