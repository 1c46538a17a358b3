//! What handlers take as arguments.

use std::rc::Rc;

use murmur_core::chat::{Body, ChatMessage, Target};
use murmur_node::{chat::Sent, Node};
use serde::{de::DeserializeOwned, Serialize};

use crate::{BoxError, Context, Error};

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

/// Answers where a message came from: its group, or its sender.
#[derive(Clone, Debug)]
pub struct Reply {
    node: Node,
    to: Target,
}

impl Reply {
    pub(crate) fn to(node: &Node, message: &ChatMessage) -> Self {
        Self {
            node: node.clone(),
            to: message.reply_target(),
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
        let sent = match self.to {
            Target::Group(g) => self.node.group(g).send(body).await?,
            Target::Account(a) => self.node.conversation(a).send(body).await?,
            _ => return Err("a target this version does not know".into()),
        };
        Ok(sent)
    }
}

impl FromContext for Reply {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(Self::to(&cx.node, &cx.message))
    }
}

/// The bot's own state, kept in the node's database as JSON: it survives
/// restarts.
#[derive(Clone, Debug)]
pub struct Store {
    node: Node,
}

impl Store {
    /// The value under `key`, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BoxError> {
        match self.node.load_app_state(&format!("bot/{key}")).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Keeps `value` under `key`.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BoxError> {
        let bytes = serde_json::to_vec(value)?;
        Ok(self
            .node
            .save_app_state(&format!("bot/{key}"), Some(bytes))
            .await?)
    }

    /// Forgets `key`.
    pub async fn remove(&self, key: &str) -> Result<(), BoxError> {
        Ok(self
            .node
            .save_app_state(&format!("bot/{key}"), None)
            .await?)
    }
}

impl FromContext for Store {
    fn from_context(cx: &Context) -> Result<Self, BoxError> {
        Ok(Self {
            node: cx.node.clone(),
        })
    }
}
