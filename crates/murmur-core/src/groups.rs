//! The group-membership stage: private groups, their signed membership
//! logs and their group encryption. Its core is the sans-I/O
//! `murmur-groups`.
//!
//! Asked to: [`Create`], [`Change`], [`Post`] (authorizes the sender and
//! seals once for every member), [`Open`] (authorizes the sender and
//! opens), [`RequestKey`] (asks again for a chain key this device lacks),
//! [`Control`] (applies what a member sent in a pairwise session: events,
//! chain keys, join requests, key requests), [`CreateInvite`], [`Join`],
//! [`Requests`], [`Info`], [`List`], [`Topics`], [`Unhandled`],
//! [`Handled`].
//!
//! A community is a group with channels, roles below admin (moderators),
//! bans, pins, deletions and a join mode: the same log, the same stage.
//!
//! The stage never publishes: what it answers says what the pipeline must
//! do ([`Effects`]): bundles to learn, content topics to subscribe, and
//! pairwise messages to seal through the crypto stage, so that group
//! metadata only ever travels inside the pairwise sessions' encryption.

use std::fmt;

use actix::Message;

mod handle;
use bytes::Bytes;
pub use handle::Handle;
use thiserror::Error;

use crate::{
    crypto::{AccountId, DeviceId, Sealed},
    id::MessageId,
    ContentTopic, Delivery, MessageHash,
};

/// A group: the id of its signed `Create` event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; 32]);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "GroupId({:02x}{:02x}{:02x}{:02x}…)",
            b[0], b[1], b[2], b[3]
        )
    }
}

impl std::str::FromStr for GroupId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let mut id = [0u8; 32];
        if s.len() != 64 || !s.is_ascii() {
            return Err(Error::Malformed("a group id is 64 hex digits".to_owned()));
        }
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| Error::Malformed("a group id is 64 hex digits".to_owned()))?;
        }
        Ok(Self(id))
    }
}

/// A member's role in a group or community, from the most rights to the
/// least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// The creator: an admin no one removes, demotes or bans; makes admins.
    Owner,
    /// Adds members, removes and bans those below admin, gives the
    /// moderator and member roles, renames, manages channels, the join mode
    /// and invites.
    Admin,
    /// Removes and bans members, deletes and pins messages.
    Moderator,
    /// Reads and writes.
    Member,
}

impl Role {
    /// Owner or admin.
    pub fn is_admin(self) -> bool {
        self <= Self::Admin
    }

    /// Owner, admin or moderator.
    pub fn moderates(self) -> bool {
        self <= Self::Moderator
    }
}

/// How accounts join. Any admin's device carries it out, so joining works
/// while the owner is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum JoinMode {
    /// Admins add members; an invite code admits its holder.
    #[default]
    Invite,
    /// Whoever asks an admin's device (with a link) is added.
    Open,
    /// Requests wait for an admin's approval; invite codes still admit.
    Approval,
}

/// Why a membership request failed. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// This device is in no group with that id.
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    /// The author lacks the role the action needs (or the action cannot
    /// hold: removing the creator, adding a member twice).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// This device's account is not a member (any more).
    #[error("not a member of group {0}")]
    NotMember(GroupId),
    /// A membership event whose signature, group or parents do not check
    /// out.
    #[error("invalid membership event: {0}")]
    InvalidEvent(String),
    /// A group message this device has no key for: sent before it joined,
    /// after it was removed, or by a non-member.
    #[error(
        "no key for this group message (sent before joining, after removal, or by a non-member)"
    )]
    UnknownChain,
    /// A group message or pairwise control message that does not parse, or
    /// does not authenticate.
    #[error("malformed or altered: {0}")]
    Malformed(String),
    /// A group message that was read before.
    #[error("replayed group message")]
    Replay,
    /// A group message of this device's own sending chain, come back from
    /// a store node: it was handled when it was sent.
    #[error("a group message this device sent")]
    Own,
    /// A group message further ahead of its chain than this device skips
    /// (`chat.max_skip`): nothing was opened or advanced. The pipeline holds
    /// it and offers it again once the messages before it (a store round
    /// brings them) have opened.
    #[error("group message too far ahead of its chain: {0}")]
    TooFarAhead(String),
    /// A group message a moderator deleted.
    #[error("the message was deleted by a moderator")]
    Deleted,
    /// Signing or sealing through the crypto stage failed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::Error),
    /// The stage failed on this request (a defect: it panicked) and was
    /// restarted from its persisted state; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// The stage could not read or write its state.
    #[error("group state: {0}")]
    State(String),
    /// An account the user has not accepted (a message request) tried to
    /// bring this account into a group.
    #[error("account {0} is not accepted; it cannot add this account to a group")]
    NotAccepted(AccountId),
}

/// What the pipeline must do after a request, in this order.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Effects {
    /// Bundles to hand the crypto stage ([`crate::crypto::LearnBundles`]):
    /// of accounts this device may have never met.
    pub learn: Vec<(AccountId, Vec<Bytes>)>,
    /// Content topics to subscribe to.
    pub subscribe: Vec<ContentTopic>,
    /// Plaintexts to seal for an account ([`crate::crypto::Seal`]) and publish.
    pub pairwise: Vec<(AccountId, Bytes)>,
    /// Accounts to add, as this device's member ([`Change`] with
    /// [`Action::Add`]): join requests an admin's device accepted.
    pub admit: Vec<(GroupId, AccountId)>,
    /// What happened, for the application.
    pub notices: Vec<Notice>,
}

impl Effects {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.learn.is_empty()
            && self.subscribe.is_empty()
            && self.pairwise.is_empty()
            && self.admit.is_empty()
            && self.notices.is_empty()
    }
}

/// Something that changed in a group, for the application to show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Accounts joined.
    Joined {
        /// Where.
        group: GroupId,
        /// Who.
        accounts: Vec<AccountId>,
    },
    /// Accounts left or were removed or banned.
    Left {
        /// Where.
        group: GroupId,
        /// Who.
        accounts: Vec<AccountId>,
    },
    /// A moderator deleted a message: hide it.
    Deleted {
        /// Where.
        group: GroupId,
        /// Which.
        message: MessageId,
    },
    /// A message was pinned.
    Pinned {
        /// Where.
        group: GroupId,
        /// Which.
        message: MessageId,
    },
    /// A message was unpinned.
    Unpinned {
        /// Where.
        group: GroupId,
        /// Which.
        message: MessageId,
    },
    /// An account asks to join a group whose join mode is approval; an
    /// admin approves with [`Action::Add`].
    Requested {
        /// Where.
        group: GroupId,
        /// Who.
        account: AccountId,
    },
    /// A member signed two membership events neither of which cites the
    /// other: it showed members different histories. Both are kept and
    /// every member decides the same from them; the member is not to be
    /// trusted as an admin.
    Equivocated {
        /// Where.
        group: GroupId,
        /// Who.
        account: AccountId,
    },
}

/// A change of membership, as its author asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Adds an account (admins).
    Add(AccountId),
    /// Removes an account (admins; not the creator).
    Remove(AccountId),
    /// This account leaves.
    Leave,
    /// Makes a member an admin (the owner only).
    Promote(AccountId),
    /// Makes an admin a member (the owner only; not the owner).
    Demote(AccountId),
    /// Renames the group (admins).
    Rename(String),
    /// Gives a member a role below owner (the owner any; admins moderator
    /// or member to those below them).
    SetRole(AccountId, Role),
    /// Removes an account and keeps it out (moderators and above, on those
    /// below them).
    Ban(AccountId),
    /// Lifts a ban (moderators and above; only the role that set it or a
    /// higher one).
    Unban(AccountId),
    /// Opens a channel (admins).
    OpenChannel(String),
    /// Closes a channel (admins).
    CloseChannel(String),
    /// Pins a message (moderators and above).
    Pin(MessageId),
    /// Unpins a message.
    Unpin(MessageId),
    /// Deletes a message for every member (moderators and above).
    Delete(MessageId),
    /// Sets how accounts join (admins).
    SetJoinMode(JoinMode),
}

/// Creates a group with this account as its creator and first admin.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(GroupId, Effects), Error>")]
pub struct Create {
    /// Its name (at most 256 bytes).
    pub name: String,
}

/// Authors a membership change, signed with the account key.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Effects, Error>")]
pub struct Change {
    /// Where.
    pub group: GroupId,
    /// What.
    pub action: Action,
}

/// Seals `plaintext` once for every member: answers the envelope to
/// publish.
#[derive(Clone, Message)]
#[rtype(result = "Result<Sealed, Error>")]
pub struct Post {
    /// Where.
    pub group: GroupId,
    /// What the members will read. Never logged.
    pub plaintext: Bytes,
}

/// Opens a message that arrived on a group topic.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Opened, Error>")]
pub struct Open(pub Delivery);

/// A group message [`Open`] answered [`Error::UnknownChain`] for: the
/// chain key to ask the group's members for again (its owner answers, in a
/// pairwise session, with the key from that message on). Nothing to do when
/// the key has come since, this device is not a member, or the chain was
/// asked for a moment ago: asks are limited per chain and per group, so
/// that messages made up on a group topic cannot make the members flood
/// each other.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Effects, Error>")]
pub struct RequestKey(pub Delivery);

/// A group message opened, its sender a member whose chain it is.
#[derive(Clone)]
#[non_exhaustive]
pub struct Opened {
    /// Which group.
    pub group: GroupId,
    /// The sending account.
    pub sender: AccountId,
    /// The sending device.
    pub device: DeviceId,
    /// The sender's role when the message was opened.
    pub role: Role,
    /// What it says.
    pub plaintext: Bytes,
    /// What opening it asks of the pipeline: the message named log heads
    /// this device lacks, so it asks the sender for its log.
    pub effects: Effects,
}

impl Opened {
    /// `sender`'s message in `group`, sent with `role`.
    pub fn new(
        group: GroupId,
        sender: AccountId,
        device: DeviceId,
        role: Role,
        plaintext: Bytes,
    ) -> Self {
        Self {
            group,
            sender,
            device,
            role,
            plaintext,
            effects: Effects::default(),
        }
    }

    /// With what opening the message asks of the pipeline.
    pub fn with_effects(mut self, effects: Effects) -> Self {
        self.effects = effects;
        self
    }
}

/// What a device sent this one in a pairwise session about a group
/// (membership events, its chain key), the sender verified by the session.
#[derive(Clone, Message)]
#[rtype(result = "Result<Effects, Error>")]
pub struct Control {
    /// The sending account.
    pub from: AccountId,
    /// The sending device.
    pub device: DeviceId,
    /// The control message.
    pub message: Bytes,
    /// The sending account is not accepted (a message request): its
    /// events cannot bring this account into a group it is not in.
    pub request: bool,
}

/// What a group is, as this device's log says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The group.
    pub id: GroupId,
    /// Its name.
    pub name: String,
    /// Its members and their roles.
    pub members: Vec<(AccountId, Role)>,
    /// Whether this account is one of them.
    pub member: bool,
    /// Membership events that did not hold (unauthorized), kept in the log
    /// but applied to nothing.
    pub rejected: usize,
    /// Open channels.
    pub channels: Vec<String>,
    /// Pinned messages.
    pub pinned: Vec<MessageId>,
    /// Banned accounts.
    pub banned: Vec<AccountId>,
    /// How accounts join.
    pub join_mode: JoinMode,
    /// Members caught signing two membership events neither of which
    /// cites the other (see [`Notice::Equivocated`]).
    pub equivocators: Vec<AccountId>,
}

impl Summary {
    /// A group named `name` with `members`.
    pub fn new(id: GroupId, name: String, members: Vec<(AccountId, Role)>, member: bool) -> Self {
        Self {
            id,
            name,
            members,
            member,
            rejected: 0,
            channels: Vec::new(),
            pinned: Vec::new(),
            banned: Vec::new(),
            join_mode: JoinMode::Invite,
            equivocators: Vec::new(),
        }
    }

    /// With the members caught equivocating.
    pub fn with_equivocators(mut self, equivocators: Vec<AccountId>) -> Self {
        self.equivocators = equivocators;
        self
    }

    /// With the community's channels, pins, bans and join mode.
    pub fn with_community(
        mut self,
        channels: Vec<String>,
        pinned: Vec<MessageId>,
        banned: Vec<AccountId>,
        join_mode: JoinMode,
    ) -> Self {
        self.channels = channels;
        self.pinned = pinned;
        self.banned = banned;
        self.join_mode = join_mode;
        self
    }

    /// The role of `account`, if it is a member.
    pub fn role(&self, account: &AccountId) -> Option<Role> {
        self.members
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, r)| *r)
    }

    /// With `n` rejected events.
    pub fn with_rejected(mut self, n: usize) -> Self {
        self.rejected = n;
        self
    }
}

/// Makes a code that lets its holder join `group` (admins): with a secret
/// registered in the group's log (`admit`: admitted in every join mode), or
/// without (a link: admitted if the group is open, a request if it asks for
/// approval). Answers the code and what to publish.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(String, Effects), Error>")]
pub struct CreateInvite {
    /// Where.
    pub group: GroupId,
    /// Whether the code carries a secret that admits by itself.
    pub admit: bool,
}

/// Asks to join with a code from [`CreateInvite`]: answers the request to
/// seal for the admin who made it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(GroupId, Effects), Error>")]
pub struct Join(pub String);

/// A device was revoked by its account (this one's, or a contact's): its
/// group chains are dropped, and this device starts new ones in every group
/// the revoked device could read; answers the pairwise messages that hand
/// them to the members (sealed, they no longer reach the revoked device).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Effects, Error>")]
pub struct Revoked {
    /// The account.
    pub account: AccountId,
    /// Its revoked device.
    pub device: DeviceId,
}

/// Asks for the join requests waiting for an admin's approval.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<AccountId>, Error>")]
pub struct Requests(pub GroupId);

/// Asks what a group is.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Summary, Error>")]
pub struct Info(pub GroupId);

/// Asks for every group this device knows.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Summary>, Error>")]
pub struct List;

/// Asks for the content topics of the groups this account is in.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<ContentTopic>, Error>")]
pub struct Topics;

/// How every group's content topic starts: group messages of groups this
/// node does not know yet are recognised by it.
pub const TOPIC_PREFIX: &str = "/murmur/1/group-";

/// The content topic of a group's messages: from a hash of its id, so that
/// the topic names no one.
pub fn topic(group: GroupId) -> ContentTopic {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"murmur/group-topic/v1")
        .chain_update(group.0)
        .finalize();
    format!("{TOPIC_PREFIX}{}/proto", hex::encode(&digest[..8]))
        .parse()
        .expect("a group topic is a valid content topic")
}

/// Asks for the group messages opened whose plaintext was not yet marked
/// [`Handled`], oldest first, each with its hash. The stage keeps every
/// [`Opened`] (without its effects) in the same transaction as the chain
/// step that opened it: the step cannot be taken twice, so a node that
/// stops between the step and the application would lose the message
/// without it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<(MessageHash, Opened)>, Error>")]
pub struct Unhandled;

/// Marks opened group messages handled by their hashes: what was kept of
/// them goes. Unknown hashes are ignored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Handled(pub Vec<MessageHash>);
