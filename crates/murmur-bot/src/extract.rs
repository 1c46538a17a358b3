//! What handlers take as arguments.

use std::rc::Rc;

use murmur_core::chat::{Body, ChatMessage, Target};
use murmur_node::{chat::Sent, Node};
use serde::{de::DeserializeOwned, Serialize};

use crate::{turn, BoxError, Context, Error};

/// A value a handler can take as an argument.
pub trait FromContext: Sized {
    /// Extracts it; an error stops the handler before it runs.
    fn from_context(cx: &Context) -> Result<Self, BoxError>;
}

impl FromContext for ChatMessage {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(cx.message.clone())
    }
}

impl FromContext for Node {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(cx.node.clone())
    }
}

/// Shared state added with [`crate::Bot::state`].
#[derive(Debug)]
pub struct State<T>(pub Rc<T>);

impl<T> std::ops::Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: 'static> FromContext for State<T> {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        cx.state::<T>()
            .map(State)
            .ok_or_else(|| Error::Missing(std::any::type_name::<T>()).into())
    }
}

/// Answers where a message came from: its group, or its sender. Each
/// reply goes out under an id derived from the message and its place
/// among the replies, so that when a crash makes the bot handle the
/// message again, the other side's inbox keeps each reply once.
#[derive(Clone, Debug)]
pub struct Reply {
    node: Node,
    to: Target,
    turn: turn::Shared,
}

impl Reply {
    pub(crate) fn to(node: &Node, message: &ChatMessage, turn: &turn::Shared) -> Self {
        Self {
            node: node.clone(),
            to: message.reply_target(),
            turn: turn.clone(),
        }
    }

    /// Where the answer goes.
    pub fn target(&self) -> Target {
        self.to
    }

    /// Sends text.
    pub async fn text(&self, text: impl Into<String>) -> Result<(), BoxError> {
        self.send(Body::Text(text.into())).await.map(|_| ())
    }

    /// Sends a message; answers its delivery handle.
    pub async fn send(&self, body: Body) -> Result<Sent, BoxError> {
        let id = self.turn.borrow_mut().next_reply();
        let sent = match (self.to, id) {
            (Target::Group(g), Some(id)) => self.node.group(g).send_as(id, body).await?,
            (Target::Group(g), None) => self.node.group(g).send(body).await?,
            (Target::Account(a), Some(id)) => self.node.conversation(a).send_as(id, body).await?,
            (Target::Account(a), None) => self.node.conversation(a).send(body).await?,
            _ => return Err("a target this version does not know".into()),
        };
        Ok(sent)
    }
}

impl FromContext for Reply {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(Self::to(&cx.node, &cx.message, &cx.turn))
    }
}

/// The bot's own state, kept in the node's database as JSON: it survives
/// restarts. What a handler writes is saved when it returns `Ok`, in the
/// same transaction as the bot's position in the inbox (so a crash never
/// keeps a write for a message that will be handled again); an `Err`
/// discards it. Reads see the handler's own writes.
#[derive(Clone, Debug)]
pub struct Store {
    node: Node,
    turn: turn::Shared,
}

fn key_of(key: &str) -> String {
    format!("bot/{key}")
}

impl Store {
    /// The value under `key`, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BoxError> {
        let key = key_of(key);
        let written = self.turn.borrow().written(&key);
        let bytes = match written {
            Some(value) => value,
            None => self.node.load_app_state(&key).await?,
        };
        match bytes {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Keeps `value` under `key`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BoxError> {
        let bytes = serde_json::to_vec(value)?;
        self.turn.borrow_mut().write(key_of(key), Some(bytes));
        Ok(())
    }

    /// Forgets `key`.
    pub async fn remove(&self, key: &str) -> Result<(), BoxError> {
        self.turn.borrow_mut().write(key_of(key), None);
        Ok(())
    }
}

impl FromContext for Store {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(Self {
            node: cx.node.clone(),
            turn: cx.turn.clone(),
        })
    }
}
