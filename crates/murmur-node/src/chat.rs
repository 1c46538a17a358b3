//! End-to-end encrypted 1:1 chat: conversations, received messages with
//! their verified sender, and the delivery state of what was sent.

use std::{fmt, time::Duration};

use bytes::Bytes;
pub use murmur_core::crypto::{AccountId, DeviceId};
pub use murmur_core::groups::{GroupId, JoinMode, Notice, Role, Summary};
use tokio::sync::{mpsc, watch};

use crate::{Error, Node};

mod content;
pub(crate) use content::*;

pub use crate::durable::{Durable, Entry};

pub use murmur_core::chat::{Body, ChatMessage, MessageId, Outgoing, Target};

pub(crate) fn random_id() -> MessageId {
    MessageId(rand::random())
}

fn id_from_slice(bytes: &[u8]) -> Option<MessageId> {
    bytes.try_into().ok().map(MessageId)
}

/// Where a sent message is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Sealed and in the outbox (durable), not yet taken by the network:
    /// retried every few seconds, across restarts, until it is.
    Queued,
    /// Published: one envelope per device (the recipient's and this
    /// account's other devices).
    Published {
        /// Envelopes published.
        envelopes: usize,
    },
    /// Acknowledged by this many of the recipient's devices.
    Acknowledged {
        /// Devices that sent a receipt.
        devices: usize,
    },
    /// Not sent.
    Failed(String),
}

/// A message on its way: its id and its delivery state, to await or watch.
#[derive(Debug)]
pub struct Sent {
    /// The id the recipient will see.
    pub id: MessageId,
    state: watch::Receiver<DeliveryState>,
}

impl Sent {
    pub(crate) fn new(id: MessageId, state: watch::Receiver<DeliveryState>) -> Self {
        Self { id, state }
    }

    /// The current state.
    pub fn state(&self) -> DeliveryState {
        self.state.borrow().clone()
    }

    /// A receiver of every state change.
    pub fn watch(&self) -> watch::Receiver<DeliveryState> {
        self.state.clone()
    }

    /// Waits until a recipient device acknowledged the message, at most
    /// `timeout`; answers the state it ended in.
    pub async fn acknowledged(&mut self, timeout: Duration) -> DeliveryState {
        let _ = tokio::time::timeout(
            timeout,
            self.state.wait_for(|s| {
                matches!(
                    s,
                    DeliveryState::Acknowledged { .. } | DeliveryState::Failed(_)
                )
            }),
        )
        .await;
        self.state()
    }
}

/// A 1:1 conversation with an account.
#[derive(Clone)]
pub struct Conversation {
    node: Node,
    peer: AccountId,
}

impl Conversation {
    pub(crate) fn new(node: Node, peer: AccountId) -> Self {
        Self { node, peer }
    }

    /// The other account.
    pub fn peer(&self) -> AccountId {
        self.peer
    }

    /// Sends text.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<Sent, Error> {
        self.send(Body::Text(text.into())).await
    }

    /// Sends a typed payload.
    pub async fn send_typed(
        &self,
        kind: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Result<Sent, Error> {
        self.send(Body::Typed {
            kind: kind.into(),
            data: data.into(),
        })
        .await
    }

    /// Sends a message.
    pub async fn send(&self, body: Body) -> Result<Sent, Error> {
        self.node.send_chat(self.peer, None, body).await
    }

    /// Sends a message under an id of the caller's: sent again under the
    /// same id (a retry after a crash), it reaches the other side's inbox
    /// once, as long as that inbox still keeps the first
    /// (`chat.inbox_keep`). Derive the id from what the send answers, so
    /// that a retry computes the same one.
    pub async fn send_as(&self, id: MessageId, body: Body) -> Result<Sent, Error> {
        self.node.send_chat(self.peer, Some(id), body).await
    }
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("peer", &self.peer)
            .finish()
    }
}

/// A private group, as one of its members (or former members) holds it.
///
/// Membership changes are signed with the account key, so they are made
/// from the device that holds it (the account's first); any device of a
/// member reads and sends.
#[derive(Clone)]
pub struct Group {
    node: Node,
    id: GroupId,
}

impl Group {
    pub(crate) fn new(node: Node, id: GroupId) -> Self {
        Self { node, id }
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Its name, members and roles, as this device's log says.
    pub async fn info(&self) -> Result<Summary, Error> {
        self.node.group_info(self.id).await
    }

    /// Adds an account (admins): it gets the group's log and every
    /// member's key from now on, nothing sent before.
    pub async fn add(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Add(account)).await
    }

    /// Removes an account (admins): every member starts a new sending
    /// chain that the removed account never gets.
    pub async fn remove(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Remove(account))
            .await
    }

    /// Leaves the group.
    pub async fn leave(&self) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Leave).await
    }

    /// Makes a member an admin (the owner only).
    pub async fn promote(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Promote(account))
            .await
    }

    /// Makes an admin a member (the owner only; the owner stays the owner).
    pub async fn demote(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Demote(account))
            .await
    }

    /// Renames the group (admins).
    pub async fn rename(&self, name: impl Into<String>) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Rename(name.into()))
            .await
    }

    async fn change(&self, action: murmur_core::groups::Action) -> Result<(), Error> {
        self.node.change_group(self.id, action).await
    }

    /// Gives a member a role below owner: the owner any, admins moderator
    /// or member to those below them.
    pub async fn set_role(&self, account: AccountId, role: Role) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::SetRole(account, role))
            .await
    }

    /// Removes an account and keeps it out until unbanned (moderators and
    /// above, on those below them): every member starts a new chain.
    pub async fn ban(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Ban(account)).await
    }

    /// Lifts a ban (moderators and above).
    pub async fn unban(&self, account: AccountId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Unban(account))
            .await
    }

    /// Opens a channel (admins).
    pub async fn open_channel(&self, name: impl Into<String>) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::OpenChannel(name.into()))
            .await
    }

    /// Closes a channel (admins).
    pub async fn close_channel(&self, name: impl Into<String>) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::CloseChannel(name.into()))
            .await
    }

    /// Pins a message (moderators and above).
    pub async fn pin(&self, message: MessageId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Pin(message)).await
    }

    /// Unpins a message.
    pub async fn unpin(&self, message: MessageId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Unpin(message))
            .await
    }

    /// Deletes a message for every member (moderators and above): members'
    /// nodes get [`Notice::Deleted`] and drop any copy that comes later.
    pub async fn delete(&self, message: MessageId) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::Delete(message))
            .await
    }

    /// Sets how accounts join (admins).
    pub async fn set_join_mode(&self, mode: JoinMode) -> Result<(), Error> {
        self.change(murmur_core::groups::Action::SetJoinMode(mode))
            .await
    }

    /// An invite code that admits its holder whatever the join mode
    /// (admins): its secret's hash goes into the group's log, so any admin's
    /// device honours it.
    pub async fn invite_code(&self) -> Result<String, Error> {
        self.node.group_invite(self.id, true).await
    }

    /// A link to ask this admin's device to join: admitted in an open
    /// group, kept for approval in one that asks for it.
    pub async fn link(&self) -> Result<String, Error> {
        self.node.group_invite(self.id, false).await
    }

    /// Join requests waiting for an admin's approval on this device.
    pub async fn requests(&self) -> Result<Vec<AccountId>, Error> {
        self.node.group_requests(self.id).await
    }

    /// Approves a join request: adds the account (admins).
    pub async fn approve(&self, account: AccountId) -> Result<(), Error> {
        self.add(account).await
    }

    /// A channel of this community.
    pub fn channel(&self, name: impl Into<String>) -> Channel {
        Channel {
            group: self.clone(),
            name: name.into(),
        }
    }

    /// Sends text to every member: one message on the wire.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<Sent, Error> {
        self.send(Body::Text(text.into())).await
    }

    /// Sends a message to every member.
    pub async fn send(&self, body: Body) -> Result<Sent, Error> {
        self.node.send_group(self.id, None, None, body).await
    }

    /// Sends a message to every member under an id of the caller's: each
    /// member's inbox keeps it once however often it is sent (see
    /// [`Conversation::send_as`]).
    pub async fn send_as(&self, id: MessageId, body: Body) -> Result<Sent, Error> {
        self.node.send_group(self.id, None, Some(id), body).await
    }
}

/// A channel of a community: its messages go to every member, marked with
/// the channel, and are refused if the channel is not open.
#[derive(Clone, Debug)]
pub struct Channel {
    group: Group,
    name: String,
}

impl Channel {
    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends text in the channel.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<Sent, Error> {
        self.send(Body::Text(text.into())).await
    }

    /// Sends a message in the channel.
    pub async fn send(&self, body: Body) -> Result<Sent, Error> {
        self.group
            .node
            .send_group(self.group.id, Some(&self.name), None, body)
            .await
    }
}

/// A message this device could not open, and the repair it attempted
/// ([`Node::unreadable`]). Nothing is left unread that could be repaired:
/// what was repaired opens (or comes again) without the application doing
/// anything; this says what happened, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreadable {
    /// A 1:1 message of `device` of `account` that no session here opens.
    Session {
        /// The sending account, as its envelope names it.
        account: AccountId,
        /// The sending device.
        device: DeviceId,
        /// There is a session, and it does not open the message (this
        /// device went back to a backup, or the message is an old copy);
        /// else there is none.
        broken: bool,
        /// A new session was asked for now: at once when there is none;
        /// for a broken one, once nothing of that device opened for 8 s
        /// after it (then a second event says so). The device sends again
        /// what it never got a receipt for.
        reset: bool,
    },
    /// A group message whose chain key this device lacks, on the group's
    /// topic (`groups::topic(id)`): kept until the key comes.
    ChainKey {
        /// The group's content topic.
        topic: murmur_core::ContentTopic,
        /// The members were asked for the key now (else it was asked for a
        /// moment ago, or the group's limit of requests was reached).
        asked: bool,
    },
}

/// A queue of events of one kind for one subscriber: group notices
/// ([`Notices`]), messages that did not open ([`Unreadables`]).
#[derive(Debug)]
pub struct Events<T> {
    pub(crate) rx: mpsc::Receiver<T>,
}

impl<T> Events<T> {
    /// The next event; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// The next event, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<T> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A queue of group notices for one subscriber ([`Node::notices`]).
pub type Notices = Events<Notice>;

/// A queue of [`Unreadable`] events for one subscriber
/// ([`Node::unreadable`]).
pub type Unreadables = Events<Unreadable>;

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("id", &self.id).finish()
    }
}

/// A queue of chat messages for one subscriber.
#[derive(Debug)]
pub struct Inbox {
    pub(crate) rx: mpsc::Receiver<ChatMessage>,
}

impl Inbox {
    /// The next message; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<ChatMessage> {
        self.rx.recv().await
    }

    /// The next message, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<ChatMessage> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
