//! murmur's group membership, sans I/O: no runtime, socket, clock or
//! database inside.
//!
//! A group is a log of membership [`Event`]s (create, add, remove, leave,
//! promote, demote, rename), each signed by its author and pointing at the
//! events its author had seen (its parents). The group's id is the id of its
//! `Create` event, so the creator is bound to the group.
//!
//! **Order.** An event's clock is one more than the largest clock among its
//! parents, so a parent always sorts before its children. Events are applied
//! in the order `(clock, id)`: a total order that every member computes the
//! same way from the same set of events, whatever order they arrived in.
//!
//! **Validity.** An event counts only if its author held the right in the
//! event's own causal past (the events it cites, directly or not), no
//! removal, ban, demotion or role change of its author that counts is
//! concurrent with it, and it holds at its place in the order. The author
//! picks the parents, so the first two rules are what make back-dating
//! useless: a removed admin's event signed on a view from before its
//! removal is concurrent with the removal, and does not count (see
//! `authority.rs`). The creator is the owner, whom no one removes, demotes
//! or bans, and who alone makes and unmakes admins; admins add members,
//! remove and ban those below them, give the moderator and member roles,
//! rename, open and close channels, set the join mode and register invites;
//! moderators remove and ban members and pin and delete messages; a ban is
//! lifted only by the role that set it or a higher one; members leave. An
//! event that does not count is kept in the log (others may cite it as a
//! parent) but changes nothing, and is listed in [`State::rejected`]. So
//! members that hold the same set of events reach the same [`State`]: the
//! state is a pure function of the set. Events whose parents have not
//! arrived wait, outside the state, until they do.
//!
//! **Joining.** [`invite`] writes and reads invite codes, and
//! [`State::admission`] is the join policy an admin's device applies to a
//! request to join: a registered invite secret admits while the admin who
//! registered it is one, otherwise the join mode decides, and banned
//! accounts stay out.
//!
//! ```
//! use murmur_groups::{Action, Log, Role, SigningKey};
//!
//! let alice = SigningKey::from_bytes(&[1; 32]);
//! let bob = SigningKey::from_bytes(&[2; 32]);
//! let (mut log, create) = Log::create(&alice, "friends");
//! let add = log.author(&alice, Action::Add(bob.verifying_key().into()))?;
//!
//! // Bob receives the events, in any order.
//! let mut bobs = Log::new(log.group());
//! bobs.insert(add)?;
//! bobs.insert(create)?;
//! assert_eq!(bobs.state(), log.state());
//! assert_eq!(bobs.state().role(&bob.verifying_key().into()), Some(Role::Member));
//! # Ok::<(), murmur_groups::InsertError>(())
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    fmt,
};

mod authority;
mod codec;
mod group;
pub mod invite;
mod log;
mod state;

pub use codec::DecodeError;
pub use group::{
    AnswerError, ChainError, Device, Effects, Group, OpenError, Opened, SealError, REACH,
};
pub use invite::{Admission, Invite};
pub use log::Log;
pub use state::State;

pub use ed25519_dalek::SigningKey;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use sha2_011::{Digest as _, Sha256};

const CONTEXT: &[u8] = b"murmur/group-event/v1";
/// The longest group name, in bytes.
pub const MAX_NAME: usize = 256;
/// The most parents an event may cite.
pub const MAX_PARENTS: usize = 64;
/// The most events that may wait for their parents.
pub const MAX_PENDING: usize = 1024;
/// The most events of one author that may wait for their parents.
pub const MAX_PENDING_PER_AUTHOR: usize = 256;

/// A member: the Ed25519 key that signs its events.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub [u8; 32]);

impl From<VerifyingKey> for MemberId {
    fn from(k: VerifyingKey) -> Self {
        Self(k.to_bytes())
    }
}

/// An event's id: SHA-256 of its signed encoding and signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub [u8; 32]);

/// A group's id: the id of its `Create` event.
pub type GroupId = EventId;

macro_rules! short_hex {
    ($t:ty, $name:literal) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let b = &self.0;
                write!(
                    f,
                    concat!($name, "({:02x}{:02x}{:02x}{:02x}…)"),
                    b[0], b[1], b[2], b[3]
                )
            }
        }
    };
}
short_hex!(MemberId, "MemberId");
short_hex!(EventId, "EventId");

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Creates the group, its author its first admin.
    Create {
        /// The group's name.
        name: String,
    },
    /// Adds a member.
    Add(MemberId),
    /// Removes a member.
    Remove(MemberId),
    /// The author leaves.
    Leave,
    /// Makes a member an admin.
    Promote(MemberId),
    /// Makes an admin a member.
    Demote(MemberId),
    /// Renames the group.
    Rename(String),
    /// Gives a member a role (not `Owner`): the owner any, an admin
    /// `Moderator` or `Member` to those below admin.
    SetRole(MemberId, Role),
    /// Removes a member (or keeps a non-member out) until unbanned.
    Ban(MemberId),
    /// Lifts a ban.
    Unban(MemberId),
    /// Opens a channel (admins).
    Channel(String),
    /// Closes a channel (admins).
    DropChannel(String),
    /// Pins a message (moderators and above).
    Pin([u8; 16]),
    /// Unpins a message.
    Unpin([u8; 16]),
    /// Deletes a message for every member (moderators and above).
    Delete([u8; 16]),
    /// How accounts join (admins).
    JoinMode(JoinMode),
    /// Registers an invite: the SHA-256 of its secret (admins).
    Invite([u8; 32]),
    /// Withdraws an invite.
    RevokeInvite([u8; 32]),
}

/// How accounts join a group or community. Any admin's device carries it
/// out, so joining works while the owner is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum JoinMode {
    /// Admins add members; an invite code admits its holder.
    #[default]
    Invite,
    /// Whoever asks an admin's device is added.
    Open,
    /// Requests wait until an admin approves them; invite codes still admit.
    Approval,
}

impl JoinMode {
    fn tag(self) -> u8 {
        match self {
            Self::Invite => 0,
            Self::Open => 1,
            Self::Approval => 2,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Self> {
        Some(match t {
            0 => Self::Invite,
            1 => Self::Open,
            2 => Self::Approval,
            _ => return None,
        })
    }
}

/// One signed membership event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The group; zero for a `Create`, whose own id is the group's.
    pub group: GroupId,
    /// Who signed it.
    pub author: MemberId,
    /// One more than the largest clock among its parents.
    pub clock: u64,
    /// The events its author had seen last (the heads of its log).
    pub parents: Vec<EventId>,
    /// What it does.
    pub action: Action,
    /// The author's Ed25519 signature.
    pub signature: [u8; 64],
}

impl Event {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(CONTEXT.len() + 128 + 32 * self.parents.len());
        v.extend_from_slice(CONTEXT);
        v.extend_from_slice(&self.group.0);
        v.extend_from_slice(&self.author.0);
        v.extend_from_slice(&self.clock.to_be_bytes());
        v.extend_from_slice(&(self.parents.len() as u32).to_be_bytes());
        for p in &self.parents {
            v.extend_from_slice(&p.0);
        }
        let (tag, arg) = self.action.encode();
        v.push(tag);
        v.extend_from_slice(&(arg.len() as u32).to_be_bytes());
        v.extend_from_slice(&arg);
        v
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        let mut h = Sha256::new();
        h.update(self.signed_bytes());
        h.update(self.signature);
        EventId(h.finalize().into())
    }

    /// Reads an event from its wire form; the signature is checked when
    /// the event is inserted into a log.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_event(bytes)
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed_bytes();
        v.drain(..CONTEXT.len());
        v.insert(0, codec::EVENT_VERSION);
        v.extend_from_slice(&self.signature);
        v
    }

    fn verify(&self) -> bool {
        VerifyingKey::from_bytes(&self.author.0).is_ok_and(|k| {
            k.verify_strict(
                &self.signed_bytes(),
                &Signature::from_bytes(&self.signature),
            )
            .is_ok()
        })
    }
}

impl Action {
    /// Its wire tag and argument.
    fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            Self::Create { name } => (0, name.as_bytes().to_vec()),
            Self::Add(m) => (1, m.0.to_vec()),
            Self::Remove(m) => (2, m.0.to_vec()),
            Self::Leave => (3, Vec::new()),
            Self::Promote(m) => (4, m.0.to_vec()),
            Self::Demote(m) => (5, m.0.to_vec()),
            Self::Rename(name) => (6, name.as_bytes().to_vec()),
            Self::SetRole(m, r) => {
                let mut a = m.0.to_vec();
                a.push(r.tag());
                (7, a)
            }
            Self::Ban(m) => (8, m.0.to_vec()),
            Self::Unban(m) => (9, m.0.to_vec()),
            Self::Channel(name) => (10, name.as_bytes().to_vec()),
            Self::DropChannel(name) => (11, name.as_bytes().to_vec()),
            Self::Pin(id) => (12, id.to_vec()),
            Self::Unpin(id) => (13, id.to_vec()),
            Self::Delete(id) => (14, id.to_vec()),
            Self::JoinMode(mode) => (15, vec![mode.tag()]),
            Self::Invite(h) => (16, h.to_vec()),
            Self::RevokeInvite(h) => (17, h.to_vec()),
        }
    }
}

/// An event to be signed by its author's key, wherever that key is (the
/// crypto stage holds an account's key, not this crate).
#[derive(Debug, Clone)]
pub struct Unsigned(Event);

impl Unsigned {
    /// The bytes the author signs (with Ed25519, as they are).
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.0.signed_bytes()
    }

    /// The author.
    pub fn author(&self) -> MemberId {
        self.0.author
    }

    /// The event, with the author's signature over [`Unsigned::signed_bytes`].
    pub fn sign(mut self, signature: [u8; 64]) -> Event {
        self.0.signature = signature;
        self.0
    }

    /// Any event, its fields as given: what a log would refuse is for the
    /// log to say (tools, and tests that play an attacker, make these).
    pub fn new(
        group: GroupId,
        author: MemberId,
        clock: u64,
        parents: Vec<EventId>,
        action: Action,
    ) -> Self {
        Self(Event {
            group,
            author,
            clock,
            parents,
            action,
            signature: [0; 64],
        })
    }

    /// The `Create` event of a new group.
    pub fn create(author: MemberId, name: &str) -> Self {
        Self(Event {
            group: EventId([0; 32]),
            author,
            clock: 1,
            parents: Vec::new(),
            action: Action::Create {
                name: name.to_owned(),
            },
            signature: [0; 64],
        })
    }
}

/// Why an event was not taken into the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The signature does not verify for the author.
    #[error("the event's signature does not verify")]
    BadSignature,
    /// The event belongs to another group.
    #[error("the event belongs to another group")]
    WrongGroup,
    /// The log has this event already.
    #[error("the event is already in the log")]
    Duplicate,
    /// The clock is not one more than the largest of the parents' clocks,
    /// or the parents are too many or repeated.
    #[error("the event's clock or parents are inconsistent")]
    BadParents,
    /// A name longer than [`MAX_NAME`].
    #[error("the name is longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// The author was never a member of the group: its event is not kept.
    #[error("the event's author was never a member of the group")]
    NotMember,
}

/// Whether an event joined the log now or waits for its parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// In the log (with any waiting events it completed).
    Applied,
    /// Waiting for parents that have not arrived.
    Pending,
}

/// A member's role, from the most rights to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The creator: an admin that no one can remove, demote or ban.
    Owner,
    /// Manages members, roles below admin, channels, join mode, invites.
    Admin,
    /// Kicks and bans members, deletes and pins messages.
    Moderator,
    /// Reads and writes.
    Member,
}

impl Role {
    fn tag(self) -> u8 {
        match self {
            Self::Owner => 0,
            Self::Admin => 1,
            Self::Moderator => 2,
            Self::Member => 3,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Self> {
        Some(match t {
            0 => Self::Owner,
            1 => Self::Admin,
            2 => Self::Moderator,
            3 => Self::Member,
            _ => return None,
        })
    }

    /// Whether this role manages members (owner, admin).
    pub fn is_admin(self) -> bool {
        self <= Self::Admin
    }

    /// Whether this role moderates (owner, admin, moderator).
    pub fn moderates(self) -> bool {
        self <= Self::Moderator
    }
}
