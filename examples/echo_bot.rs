//! A hello bot: it echoes what it is sent, understands `/echo TEXT` and
//! `/count` (a counter kept in the node's database, across restarts), and
//! answers a command with bad arguments with its usage.
//!
//! ```text
//! cargo run --example echo_bot -- [--config FILE]
//! ```
//! It prints its contact code; add it from another murmur node and write.

use murmur::{
    bot::{Bot, BotCommand, Command, HandlerResult, Reply, Store},
    core::chat::ChatMessage,
    node::{Builder, Config, Node},
};

/// `/echo TEXT`
pub struct Echo(String);

impl BotCommand for Echo {
    const NAME: &'static str = "echo";
    const USAGE: &'static str = "/echo TEXT";

    fn parse(args: &str) -> Result<Self, String> {
        if args.is_empty() {
            return Err("nothing to echo".into());
        }
        Ok(Self(args.to_owned()))
    }
}

/// `/count`
pub struct Count;

impl BotCommand for Count {
    const NAME: &'static str = "count";
    const USAGE: &'static str = "/count";

    fn parse(args: &str) -> Result<Self, String> {
        args.is_empty()
            .then_some(Self)
            .ok_or_else(|| "takes no arguments".into())
    }
}

async fn echo(Command(Echo(text)): Command<Echo>, reply: Reply) -> HandlerResult {
    reply.text(text).await
}

async fn count(_: Command<Count>, store: Store, reply: Reply) -> HandlerResult {
    let n = store.get::<u64>("count").await?.unwrap_or(0) + 1;
    store.put("count", &n).await?;
    reply.text(n.to_string()).await
}

/// The bot, on any node.
pub fn bot(node: Node) -> Bot {
    Bot::new(node)
        .command::<Echo, _>(echo)
        .command::<Count, _>(count)
        .on_message(|m: ChatMessage, reply: Reply| async move {
            reply
                .text(format!("you said: {}", m.text().unwrap_or("something")))
                .await
        })
}

#[actix::main]
#[allow(dead_code, clippy::print_stdout)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let file = std::env::args().skip_while(|a| a != "--config").nth(1);
    let node = Builder::new(Config::load(file.as_deref().map(std::path::Path::new))?)
        .start()
        .await?;
    println!("echo bot; add me: {}", node.contact_code().await?);
    bot(node).run().await?;
    Ok(())
}
