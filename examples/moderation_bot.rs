//! A community bot: it owns a community (channel `#general`) that anyone
//! joins by writing `/join` to it, runs the moderation plugin
//! (`[plugins.moderation]` in the configuration) on what is said there, and
//! carries out what the community's moderators ask: `/kick` removes a
//! member, `/ban` removes and keeps out, `/delete` deletes a message through
//! the community's log, so that every member's node refuses it.
//!
//! ```text
//! cargo run --example moderation_bot -- --config config/moderation.toml
//! ```

use std::time::Duration;

use murmur::{
    bot::{Bot, BotCommand, Command, HandlerResult, Reply, State},
    core::{
        chat::{Body, ChatMessage, Target},
        hook::BoxError,
    },
    node::{
        chat::{Group, JoinMode},
        Builder, Config, Node,
    },
};
use murmur_moderation::{Action, Moderation, Moderator, Settings, Shared};

/// The group's name.
pub const NAME: &str = "community";

/// The node's builder, with the moderation plugin on state the bot shares.
pub fn builder(config: Config) -> Result<(Builder, Shared), BoxError> {
    let settings: Settings = config.plugin(Moderation::NAME_IN_CONFIG)?;
    let shared = Shared::new(Moderator::new(settings)?);
    let builder = Builder::new(config).with_hook(Moderation::with_shared(shared.clone()));
    Ok((builder, shared))
}

/// The bot's community: the one it created before, or a new one.
pub async fn community(node: &Node) -> Result<Group, BoxError> {
    let existing = node
        .groups()
        .await?
        .into_iter()
        .find(|g| g.name == NAME && g.member);
    Ok(match existing {
        Some(g) => node.group(g.id),
        None => {
            node.create_community(NAME, &["general"], JoinMode::Invite)
                .await?
        }
    })
}

/// `/join`, written to the bot.
pub struct Join;

impl BotCommand for Join {
    const NAME: &'static str = "join";
    const USAGE: &'static str = "/join (write it to the bot)";

    fn parse(args: &str) -> Result<Self, String> {
        args.is_empty()
            .then_some(Self)
            .ok_or_else(|| "takes no arguments".into())
    }
}

async fn join(
    _: Command<Join>,
    m: ChatMessage,
    group: State<Group>,
    reply: Reply,
) -> HandlerResult {
    if m.group.is_some() {
        return reply.text("write /join to me directly").await;
    }
    let info = group.info().await?;
    if info.members.iter().any(|(a, _)| *a == m.sender) {
        return reply.text("you are in already").await;
    }
    group.add(m.sender).await?;
    reply.text(format!("welcome to {}", info.name)).await
}

/// Carries out the moderator's queued actions, every 100 ms.
fn spawn_enforcer(node: Node, shared: Shared) {
    actix::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for action in shared.take_actions() {
                let done = match &action {
                    Action::Kick { group, account } => node.group(*group).remove(*account).await,
                    Action::Ban { group, account } => node.group(*group).ban(*account).await,
                    Action::Delete {
                        target: Target::Group(group),
                        message,
                    } => node.group(*group).delete(*message).await,
                    Action::Delete { target, message } => {
                        send(&node, *target, Body::deletion(*message)).await
                    }
                    Action::Reply { target, text } => {
                        send(&node, *target, Body::Text(text.clone())).await
                    }
                    _ => Ok(()),
                };
                if let Err(e) = done {
                    tracing::warn!(?action, error = %e, "moderation action failed");
                }
            }
        }
    });
}

async fn send(node: &Node, target: Target, body: Body) -> Result<(), murmur::node::Error> {
    match target {
        Target::Group(g) => node.group(g).send(body).await.map(|_| ()),
        Target::Account(a) => node.conversation(a).send(body).await.map(|_| ()),
        _ => Ok(()),
    }
}

/// The bot, on a node built with [`builder`].
pub fn bot(node: Node, group: Group, shared: Shared) -> Bot {
    spawn_enforcer(node.clone(), shared);
    Bot::new(node).state(group).command::<Join, _>(join)
}

#[actix::main]
#[allow(dead_code, clippy::print_stdout)]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt::init();
    let file = std::env::args().skip_while(|a| a != "--config").nth(1);
    let (builder, shared) = builder(Config::load(file.as_deref().map(std::path::Path::new))?)?;
    let node = builder.start().await?;
    let group = community(&node).await?;
    println!(
        "moderation bot for group {}; write /join to: {}",
        group.id(),
        node.contact_code().await?
    );
    bot(node, group, shared).run().await?;
    Ok(())
}
