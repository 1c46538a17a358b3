//! murmur's bot SDK.
//!
//! A bot is a [`murmur_node::Node`] and a list of handlers: plain async
//! functions whose arguments are extracted from the message they handle
//! (the [`ChatMessage`], a [`Reply`] to answer where it came from, the
//! [`Node`], shared [`State`], a typed [`Command`], the bot's [`Store`]).
//! Middleware runs before and after every handler and sees its errors.
//! The bot stops on Ctrl-C or SIGTERM. It reads the node's durable inbox:
//! your handler sees each message at least once; once it returns `Ok` it
//! never sees it again, even after a crash or a `kill -9`, and what it
//! kept in its [`Store`] is saved with that in one transaction. Its
//! replies go out under ids derived from the message, so a reply sent
//! again after a crash reaches the other side once. By default it does
//! not answer what was sent before its first start. A bot talks to strangers: by default it
//! accepts every message request before it handles it
//! ([`Bot::accept_requests`]).
//!
//! ```no_run
//! use murmur_bot::{Bot, Reply};
//! use murmur_core::chat::ChatMessage;
//! use murmur_node::{Builder, Config};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = Builder::new(Config::load(None)?).start().await?;
//!     println!("write to me: {}", node.contact_code().await?);
//!     Bot::new(node)
//!         .on_message(|m: ChatMessage, reply: Reply| async move {
//!             reply.text(format!("you said: {}", m.text().unwrap_or("something"))).await
//!         })
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```

mod command;
mod extract;
mod handler;
mod middleware;
mod turn;

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

pub use command::{BotCommand, Command};
pub use extract::{FromContext, Reply, State, Store};
use futures::FutureExt as _;
pub use handler::Handler;
pub use middleware::{Flow, Middleware};
use murmur_core::chat::ChatMessage;
pub use murmur_core::hook::BoxError;
use murmur_node::Node;

/// What a handler answers: `Ok`, or an error for the middleware's
/// `on_error` (logged and counted; the bot runs on).
pub type HandlerResult = Result<(), BoxError>;

/// Why a bot stopped, or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node refused: chat disabled, the node shutting down.
    #[error(transparent)]
    Node(#[from] murmur_node::Error),
    /// A handler's argument could not be extracted (a [`State`] that was
    /// never added): a programming error, reported once per message.
    #[error("cannot extract {0}: add it to the bot first")]
    Missing(&'static str),
}

/// The error of a bot whose process lost the database's lease to `holder`.
fn lease_lost(holder: String) -> Error {
    murmur_node::Error::from(murmur_core::storage::Error::Fenced(holder)).into()
}

/// The bot's counters.
#[derive(Debug, Default)]
pub struct Counters {
    handled: AtomicU64,
    failed: AtomicU64,
    backlog: AtomicU64,
    requests: AtomicU64,
    bad_commands: AtomicU64,
    stopped: AtomicU64,
    listening: std::sync::atomic::AtomicBool,
}

impl Counters {
    /// Whether the bot's inbox is attached: every message that arrives from
    /// now on reaches it (until it stops).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Messages a handler ran for, without error.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Handler errors.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Messages from before the bot started, left unanswered.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Message requests left unhandled (with [`Bot::accept_requests`] off).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Commands with bad arguments (answered with their usage).
    pub fn bad_commands(&self) -> u64 {
        self.bad_commands.load(Ordering::Relaxed)
    }

    /// Messages a middleware stopped before any handler.
    pub fn stopped(&self) -> u64 {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// Clears [`Counters::listening`] however `run_until` ends.
struct Listening<'a>(&'a Counters);

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.0.listening.store(false, Ordering::Release);
    }
}

/// What a handler's arguments are extracted from.
pub struct Context {
    /// The message being handled.
    pub message: ChatMessage,
    /// The bot's node.
    pub node: Node,
    states: Rc<HashMap<TypeId, Rc<dyn Any>>>,
    /// The command's arguments, for a command handler.
    args: Option<String>,
    /// This message's handling: the store's writes, the replies' ids.
    turn: turn::Shared,
}

impl Context {
    fn state<T: 'static>(&self) -> Option<Rc<T>> {
        self.states
            .get(&TypeId::of::<T>())
            .and_then(|s| s.clone().downcast::<T>().ok())
    }
}

/// Which messages a route takes.
enum Route {
    /// Every message no command took.
    Any,
    /// `/name ...` text messages.
    Command(&'static str),
}

/// A bot: a node and its handlers.
pub struct Bot {
    node: Node,
    routes: Vec<(Route, Box<dyn handler::Erased>)>,
    middleware: Vec<Rc<dyn Middleware>>,
    states: HashMap<TypeId, Rc<dyn Any>>,
    backlog: bool,
    accept_requests: bool,
    counters: Arc<Counters>,
    name: String,
    attempts: u32,
}

impl Bot {
    /// A bot on `node`, with no handler yet.
    pub fn new(node: Node) -> Self {
        Self {
            node,
            routes: Vec::new(),
            middleware: Vec::new(),
            states: HashMap::new(),
            backlog: false,
            accept_requests: true,
            counters: Arc::new(Counters::default()),
            name: "bot".to_owned(),
            attempts: 1,
        }
    }

    /// The name the bot reads the node's durable inbox as (`"bot"` by
    /// default): its position is kept under it. Two bots on one node need
    /// two names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many times a handler runs for one message when it answers
    /// `Err` (1 by default: no retry), half a second apart and doubling.
    /// After the last, the error goes to the middleware and the bot moves
    /// on.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Handles every message that no command takes.
    pub fn on_message<Args: 'static>(mut self, handler: impl Handler<Args>) -> Self {
        self.routes.push((Route::Any, handler::erase(handler)));
        self
    }

    /// Handles the text messages `/NAME ...` of command `C`; a handler
    /// extracts the parsed command with [`Command<C>`]. Bad arguments get
    /// the command's usage as a reply.
    pub fn command<C: BotCommand, Args: 'static>(mut self, handler: impl Handler<Args>) -> Self {
        self.routes
            .push((Route::Command(C::NAME), handler::erase(handler)));
        self
    }

    /// Adds a middleware, after those added before.
    pub fn middleware(mut self, m: impl Middleware) -> Self {
        self.middleware.push(Rc::new(m));
        self
    }

    /// Shares `value` with every handler, which extracts it as
    /// [`State<T>`].
    pub fn state<T: 'static>(mut self, value: T) -> Self {
        self.states.insert(TypeId::of::<T>(), Rc::new(value));
        self
    }

    /// Answers the messages sent before this bot's first start too (off by
    /// default). The first start is kept in the node's database: messages
    /// sent while a bot that ran before was down are always answered.
    pub fn answer_backlog(mut self, yes: bool) -> Self {
        self.backlog = yes;
        self
    }

    /// Accepts the sender of every message request before handling it (on
    /// by default): the sender then gets receipts, and may add the bot to
    /// groups. Off, the bot handles only accounts accepted otherwise (its
    /// node's contacts, or every account with `chat.accept = "everyone"`)
    /// and counts the others as [`Counters::requests`].
    pub fn accept_requests(mut self, yes: bool) -> Self {
        self.accept_requests = yes;
        self
    }

    /// The bot's counters, to read while it runs.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Handles messages until Ctrl-C or SIGTERM, then gives up the
    /// database's lease ([`Node::close`]) so that a replica standing by
    /// takes over at once: the process is ending.
    pub async fn run(self) -> Result<(), Error> {
        let node = self.node.clone();
        self.run_until(murmur_node::shutdown_signal()).await?;
        node.close().await?;
        Ok(())
    }

    /// Handles messages until `stop` completes (or the node stops, or it
    /// loses the database's lease to a replica: an error).
    ///
    /// The bot reads the node's durable inbox ([`Node::durable_inbox`]) as
    /// [`Bot::name`]: a handler sees each message at least once, and once
    /// it returned `Ok` (or its last attempt `Err`), never again, even
    /// after a crash; what it kept in its [`Store`] is saved in the same
    /// transaction as that.
    pub async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        // The first start is when `run` was called, not when what it waits
        // for answered: a message sent after the call is never backlog.
        let called = now_millis();
        let mut inbox = self.node.durable_inbox(&self.name).await?;
        let (me, _) = self.node.chat_identity().await?;
        let first = self.first_start(called).await?;
        let states = Rc::new(std::mem::take(&mut self.states));
        tracing::info!(account = %me, name = %self.name, from = inbox.position(), "bot running");
        self.counters.listening.store(true, Ordering::Release);
        let _listening = Listening(&self.counters);
        let mut stop = std::pin::pin!(stop);
        loop {
            let entry = tokio::select! {
                e = inbox.recv() => match e {
                    Some(e) => e,
                    None => {
                        return match self.node.lease_lost().now_or_never() {
                            Some(holder) => Err(lease_lost(holder)),
                            None => Ok(()),
                        }
                    }
                },
                () = &mut stop => {
                    tracing::info!("bot stopping");
                    return Ok(());
                }
                // Another replica runs this bot now; this one writes nothing.
                holder = self.node.lease_lost() => return Err(lease_lost(holder)),
            };
            let writes = self.handle(entry.message, me, first, &states).await;
            if let Err(e) = inbox.commit(entry.seq, writes).await {
                // The position stays: the message comes again at the next
                // start, and the store's writes with it.
                tracing::warn!(error = %e, seq = entry.seq, "position not saved");
            }
        }
    }

    /// When this bot first ran (milliseconds since the Unix epoch), kept in
    /// the node's database.
    async fn first_start(&self, now: u64) -> Result<u64, Error> {
        let key = format!("murmur-bot/{}/first-start", self.name);
        if let Some(bytes) = self.node.load_app_state(&key).await? {
            if let Ok(b) = <[u8; 8]>::try_from(bytes.as_slice()) {
                return Ok(u64::from_be_bytes(b));
            }
        }
        self.node
            .save_app_state(&key, Some(now.to_be_bytes().to_vec()))
            .await?;
        Ok(now)
    }

    /// Handles one message; answers what its handler kept, to save with
    /// the position.
    async fn handle(
        &self,
        message: ChatMessage,
        me: murmur_core::crypto::AccountId,
        first: u64,
        states: &Rc<HashMap<TypeId, Rc<dyn Any>>>,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        // Copies of what this account sent from another device.
        if message.sender == me {
            return Vec::new();
        }
        if !self.backlog && message.sent_at < first {
            self.counters.backlog.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        if message.request {
            if !self.accept_requests {
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                return Vec::new();
            }
            if let Err(e) = self.node.accept(message.sender).await {
                tracing::warn!(error = %e, "message request not accepted");
                return Vec::new();
            }
        }
        self.dispatch(message, states).await
    }

    async fn dispatch(
        &self,
        message: ChatMessage,
        states: &Rc<HashMap<TypeId, Rc<dyn Any>>>,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        let command = message.text().and_then(command::split);
        let route = self.routes.iter().find(|(r, _)| match (r, &command) {
            (Route::Command(name), Some((n, _))) => name == n,
            _ => false,
        });
        let route = route.or_else(|| self.routes.iter().find(|(r, _)| matches!(r, Route::Any)));
        let Some((route, handler)) = route else {
            return Vec::new();
        };
        for m in &self.middleware {
            if let Flow::Stop(reason) = m.before(&message) {
                tracing::debug!(%reason, id = %message.id, "a middleware stopped the message");
                self.counters.stopped.fetch_add(1, Ordering::Relaxed);
                return Vec::new();
            }
        }
        let mut attempt = 1;
        let (result, turn) = loop {
            // A new turn each time: a retry's replies reuse the ids of the
            // attempt before, and its writes start from what is saved.
            let turn = turn::Turn::new(&message);
            let cx = Context {
                args: match (route, &command) {
                    (Route::Command(_), Some((_, args))) => Some((*args).to_owned()),
                    _ => None,
                },
                message: message.clone(),
                node: self.node.clone(),
                states: states.clone(),
                turn: turn.clone(),
            };
            let result = handler.call(cx).await;
            match &result {
                Err(e) if attempt < self.attempts && !e.is::<command::BadArguments>() => {
                    tracing::debug!(error = %e, id = %message.id, attempt, "handler failed; again");
                    tokio::time::sleep(std::time::Duration::from_millis(
                        500 << (attempt - 1).min(6),
                    ))
                    .await;
                    attempt += 1;
                }
                _ => break (result, turn),
            }
        };
        let reply = Reply::to(&self.node, &message, &turn);
        let writes = match &result {
            Ok(()) => {
                self.counters.handled.fetch_add(1, Ordering::Relaxed);
                turn.borrow_mut().take_writes()
            }
            Err(e) if e.is::<command::BadArguments>() => {
                self.counters.bad_commands.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = reply.text(e.to_string()).await {
                    tracing::debug!(error = %e, "usage not sent");
                }
                Vec::new()
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, id = %message.id, "handler failed");
                for m in &self.middleware {
                    m.on_error(&message, e.as_ref(), &reply).await;
                }
                Vec::new()
            }
        };
        for m in &self.middleware {
            m.after(&message, &result);
        }
        writes
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
