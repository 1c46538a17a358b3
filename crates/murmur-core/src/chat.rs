//! Chat messages as applications, hooks and bots see them: decrypted, the
//! sender verified by the session or group chain it came through.

use bytes::Bytes;

use crate::{
    crypto::{AccountId, DeviceId},
    groups::{GroupId, Role},
};

pub use crate::id::MessageId;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// Text.
    Text(String),
    /// A typed payload: the application's own type name and bytes.
    Typed {
        /// The type, for example `"com.example.location"`.
        kind: String,
        /// The bytes.
        data: Bytes,
    },
}

/// The kind of a typed payload that deletes an earlier message: its data is
/// the message's id. Honoured from those whose role allows it.
pub const DELETE_KIND: &str = "murmur.delete";

impl Body {
    /// A notice that deletes message `id`.
    pub fn deletion(id: MessageId) -> Self {
        Self::Typed {
            kind: DELETE_KIND.to_owned(),
            data: Bytes::copy_from_slice(&id.0),
        }
    }
}

/// A message that arrived, decrypted, its sender verified by the session or
/// group chain it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatMessage {
    /// The sender's id for it.
    pub id: MessageId,
    /// The sending account.
    pub sender: AccountId,
    /// The sending device.
    pub device: DeviceId,
    /// The account it was sent to: this one, or, for a copy of what another
    /// device of this account sent, the other side of that conversation.
    pub to: AccountId,
    /// When the sender says it sent it (milliseconds since the Unix epoch).
    pub sent_at: u64,
    /// What it says.
    pub body: Body,
    /// The private group it was sent in; `None` for a 1:1 message.
    pub group: Option<GroupId>,
    /// The group's channel it was sent in, if any.
    pub channel: Option<String>,
    /// The sender's role in that group when the message was opened.
    pub role: Option<Role>,
    /// A message request: the sender's account is not accepted. It got no
    /// receipt; accept it (`Node::accept`) to answer, or decline or block
    /// it.
    pub request: bool,
}

impl ChatMessage {
    /// A 1:1 message (for tests of hooks and bots; the node builds the
    /// messages it delivers itself).
    pub fn new(
        id: MessageId,
        sender: AccountId,
        device: DeviceId,
        to: AccountId,
        body: Body,
    ) -> Self {
        Self {
            id,
            sender,
            device,
            to,
            sent_at: 0,
            body,
            group: None,
            channel: None,
            role: None,
            request: false,
        }
    }

    /// The same message, sent in `group` by a sender with `role`.
    pub fn in_group(mut self, group: GroupId, role: Role) -> Self {
        self.group = Some(group);
        self.role = Some(role);
        self
    }

    /// The same message, sent at `millis` since the Unix epoch.
    pub fn at(mut self, millis: u64) -> Self {
        self.sent_at = millis;
        self
    }

    /// The text, if it is a text message.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(t) => Some(t),
            Body::Typed { .. } => None,
        }
    }

    /// The message this one deletes, if it is a deletion notice.
    pub fn deletes(&self) -> Option<MessageId> {
        match &self.body {
            Body::Typed { kind, data } if kind == DELETE_KIND => {
                data.as_ref().try_into().ok().map(MessageId)
            }
            _ => None,
        }
    }

    /// Where an answer goes: the group, or the sender.
    pub fn reply_target(&self) -> Target {
        match self.group {
            Some(group) => Target::Group(group),
            None => Target::Account(self.sender),
        }
    }
}

/// Where a chat message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Every device of an account (and this account's other devices).
    Account(AccountId),
    /// Every member of a group.
    Group(GroupId),
}

/// A chat message on its way out, before it is sealed: what outbound chat
/// hooks see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outgoing {
    /// Where it goes.
    pub to: Target,
    /// What it says.
    pub body: Body,
}

impl Outgoing {
    /// `body` for `to`.
    pub fn new(to: Target, body: Body) -> Self {
        Self { to, body }
    }
}
