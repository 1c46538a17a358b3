//! The interactive client: a line at a time from the terminal, messages
//! printed as they come, delivery marks as they change.

use murmur_node::{
    chat::{AccountId, DeliveryState, GroupId, JoinMode, Sent},
    Node,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::mpsc,
};

use super::{book::Line, mark, say, short, show, Book, READER};
use crate::error::CliError;

const HELP: &str = "\
commands (anything else is sent to the open conversation):
  /me                         this account, device and contact code
  /add CODE [NAME]            add a contact by its code
  /name CONTACT NAME          name a contact
  /contacts                   contacts
  /requests                   accounts that wrote and wait for an answer
  /accept|/decline|/block CONTACT
  /open CONTACT               open a 1:1 conversation
  /history [N]                the last N lines of the open conversation
  /groups                     groups and communities
  /group NAME                 create a private group (and open it)
  /community NAME CHANNEL...  create a community with channels (and open it)
  /in GROUP [CHANNEL]         open a group, or one of its channels
  /member CONTACT             add a contact to the open group
  /channel NAME               open a channel in the open community
  /invite                     an invite code for the open group
  /join CODE                  join a group or community by invite code
  /devices                    this account's other devices
  /pair [CODE]                a code to pair another device, or pair with one
  /quit";

/// Where text goes.
#[derive(Debug, Clone)]
enum Open {
    Person(AccountId),
    Group(GroupId, Option<String>),
}

pub(crate) async fn run(node: &Node, book: Book) -> Result<(), CliError> {
    let (account, device) = node.chat_identity().await?;
    say(&format!(
        "murmur chat: account {account}, device {}",
        &device.to_string()[..8]
    ))?;
    say("/help lists the commands; /me shows your contact code")?;
    let mut inbox = node.durable_inbox(READER).await?;
    super::catch_up(node).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let (marks, mut changed) = mpsc::channel::<String>(64);
    let mut open: Option<Open> = None;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                match command(node, &book, &mut open, &marks, line.trim()).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    // A bad command is told, not the end of the session.
                    Err(e) => say(&format!("! {e}"))?,
                }
            }
            entry = inbox.recv() => {
                let Some(entry) = entry else { break };
                show(node, &book, &mut inbox, &entry).await?;
            }
            Some(note) = changed.recv() => say(&note)?,
        }
    }
    Ok(())
}

/// Carries out one line; `false` to stop.
async fn command(
    node: &Node,
    book: &Book,
    open: &mut Option<Open>,
    marks: &mpsc::Sender<String>,
    line: &str,
) -> Result<bool, CliError> {
    if line.is_empty() {
        return Ok(true);
    }
    let Some(command) = line.strip_prefix('/') else {
        send(node, book, open.as_ref(), marks, line).await?;
        return Ok(true);
    };
    let mut words = command.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let rest: Vec<&str> = words.collect();
    let arg = |i: usize, what: &str| {
        rest.get(i)
            .copied()
            .ok_or_else(|| CliError::Usage(format!("/{verb} needs {what}")))
    };
    match verb {
        "help" => say(HELP)?,
        "quit" | "exit" => return Ok(false),
        "me" => {
            let (account, device) = node.chat_identity().await?;
            say(&format!("account {account}\ndevice  {device}"))?;
            say(&format!(
                "contact code (share it):\n{}",
                node.contact_code().await?
            ))?;
        }
        "add" => {
            let account = node.add_contact(arg(0, "a contact code")?).await?;
            if let Some(name) = rest.get(1) {
                book.name(node, account, name).await?;
            }
            say(&format!("added {}", book.label(account)))?;
        }
        "name" => {
            let account = book.find(node, arg(0, "a contact")?).await?;
            book.name(node, account, arg(1, "a name")?).await?;
            say(&format!("{account} is {}", book.label(account)))?;
        }
        "contacts" => {
            for account in node.contacts().await? {
                say(&format!("{}  {account}", book.label(account)))?;
            }
        }
        "requests" => {
            for account in node.requests().await? {
                say(&format!(
                    "{}  {account}  (/accept, /decline or /block)",
                    short(account)
                ))?;
            }
        }
        "accept" | "decline" | "block" => {
            let account = book.find(node, arg(0, "a contact")?).await?;
            match verb {
                "accept" => node.accept(account).await?,
                "decline" => node.decline(account).await?,
                _ => node.block(account).await?,
            }
            say(&format!("{verb}ed {}", book.label(account)))?;
        }
        "open" | "chat" => {
            let account = book.find(node, arg(0, "a contact")?).await?;
            *open = Some(Open::Person(account));
            say(&format!("talking to {}", book.label(account)))?;
        }
        "history" => {
            let n = rest.first().and_then(|n| n.parse().ok()).unwrap_or(20);
            let lines = match open {
                Some(Open::Person(account)) => book.history(node, *account).await?,
                Some(Open::Group(group, _)) => book.group_history(node, *group).await?,
                None => return Err(CliError::Usage("open a conversation first".to_owned())),
            };
            for line in lines.iter().rev().take(n).rev() {
                let who = if line.mine {
                    "me".to_owned()
                } else {
                    line.who
                        .parse()
                        .map(|a| book.label(a))
                        .unwrap_or_else(|_| line.who.clone())
                };
                let channel = line
                    .channel
                    .as_deref()
                    .map(|c| format!(" #{c}"))
                    .unwrap_or_default();
                say(&format!("{who}{channel}: {}", line.text))?;
            }
        }
        "groups" => {
            for group in node.groups().await? {
                let channels = if group.channels.is_empty() {
                    String::new()
                } else {
                    format!(" #{}", group.channels.join(" #"))
                };
                say(&format!(
                    "{}  {}  {} members{channels}",
                    &group.id.to_string()[..8],
                    group.name,
                    group.members.len()
                ))?;
            }
        }
        "group" => {
            let group = node.create_group(arg(0, "a name")?).await?;
            *open = Some(Open::Group(group.id(), None));
            say(&format!(
                "created and opened group {}",
                &group.id().to_string()[..8]
            ))?;
        }
        "community" => {
            let name = arg(0, "a name")?;
            let channels: Vec<&str> = rest[1..].to_vec();
            let group = node
                .create_community(name, &channels, JoinMode::Invite)
                .await?;
            *open = Some(Open::Group(group.id(), None));
            say(&format!(
                "created and opened community {}",
                &group.id().to_string()[..8]
            ))?;
        }
        "in" => {
            let group = find_group(node, arg(0, "a group")?).await?;
            let channel = rest.get(1).map(|c| c.trim_start_matches('#').to_owned());
            say(&format!(
                "in {}{}",
                book.group_label(node, group).await,
                channel
                    .as_deref()
                    .map(|c| format!("#{c}"))
                    .unwrap_or_default()
            ))?;
            *open = Some(Open::Group(group, channel));
        }
        "member" => {
            let Some(Open::Group(group, _)) = open else {
                return Err(CliError::Usage("open a group first (/in GROUP)".to_owned()));
            };
            let account = book.find(node, arg(0, "a contact")?).await?;
            node.group(*group).add(account).await?;
            say(&format!("added {}", book.label(account)))?;
        }
        "channel" => {
            let Some(Open::Group(group, _)) = open else {
                return Err(CliError::Usage(
                    "open a community first (/in GROUP)".to_owned(),
                ));
            };
            let name = arg(0, "a name")?.trim_start_matches('#').to_owned();
            node.group(*group).open_channel(name.clone()).await?;
            say(&format!("opened #{name}"))?;
        }
        "invite" => {
            let Some(Open::Group(group, _)) = open else {
                return Err(CliError::Usage("open a group first (/in GROUP)".to_owned()));
            };
            say(&node.group(*group).invite_code().await?)?;
        }
        "join" => {
            let group = node.join(arg(0, "an invite code")?).await?;
            *open = Some(Open::Group(group, None));
            say(&format!("joined {}", &group.to_string()[..8]))?;
        }
        "devices" => {
            let (account, _) = node.chat_identity().await?;
            for device in node.devices(account).await? {
                say(&format!("{device}"))?;
            }
        }
        "pair" => match rest.first() {
            Some(code) => {
                node.pair(code).await?;
                say("paired: this device now shares the other's account")?;
            }
            None => say(&node.pairing_code().await?)?,
        },
        other => {
            return Err(CliError::Usage(format!(
                "/{other} is not a command; /help lists them"
            )))
        }
    }
    Ok(true)
}

/// The group `what` names: its name, or the start of its id.
async fn find_group(node: &Node, what: &str) -> Result<GroupId, CliError> {
    let groups = node.groups().await?;
    let mut matches = groups
        .iter()
        .filter(|g| g.name == what || g.id.to_string().starts_with(what));
    match (matches.next(), matches.next()) {
        (Some(group), None) => Ok(group.id),
        (Some(_), Some(_)) => Err(CliError::Usage(format!(
            "`{what}` names more than one group: give the start of its id"
        ))),
        (None, _) => Err(CliError::Usage(format!(
            "no group is named or starts with `{what}`: /groups lists them"
        ))),
    }
}

async fn send(
    node: &Node,
    book: &Book,
    open: Option<&Open>,
    marks: &mpsc::Sender<String>,
    text: &str,
) -> Result<(), CliError> {
    let sent = match open {
        Some(Open::Person(account)) => {
            let sent = node.conversation(*account).send_text(text).await?;
            book.record(node, &Line::sent(*account, text)).await?;
            sent
        }
        Some(Open::Group(group, channel)) => {
            let handle = node.group(*group);
            let sent = match channel {
                Some(channel) => handle.channel(channel.clone()).send_text(text).await?,
                None => handle.send_text(text).await?,
            };
            book.record(node, &Line::sent_in(*group, channel.clone(), text))
                .await?;
            sent
        }
        None => {
            return Err(CliError::Usage(
                "no conversation is open: /open CONTACT or /in GROUP".to_owned(),
            ))
        }
    };
    follow(&sent, text, marks.clone());
    Ok(())
}

/// Tells each change of a sent message's state, until it is delivered or
/// failed.
fn follow(sent: &Sent, text: &str, marks: mpsc::Sender<String>) {
    let mut state = sent.watch();
    let preview: String = text.chars().take(30).collect();
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let now = state.borrow_and_update().clone();
            let told = mark(&now);
            if told != last {
                let _ = marks.send(format!("  {told}: {preview}")).await;
                last = told;
            }
            if matches!(
                now,
                DeliveryState::Acknowledged { .. } | DeliveryState::Failed(_)
            ) {
                return;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    });
}
