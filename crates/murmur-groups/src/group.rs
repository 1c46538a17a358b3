//! One device's view of a group: the membership log and the sending chains
//! of group encryption, kept consistent with each other.
//!
//! Every change of membership is folded here into what this device must do
//! ([`Effects`]): a device that becomes a member starts a sending chain and
//! hands it to every member; when someone joins, each member hands it its
//! chain at its current position (so the joiner reads nothing from before);
//! when someone leaves or is removed, every remaining member starts a new
//! chain and hands it only to those who stay, and the chains of whoever
//! left are dropped (so it reads nothing from after).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use murmur_crypto::group::{
    ChainId, ChainKey, GroupError, GroupMessage, ReceiverChain, SenderChain,
};
use zeroize::Zeroizing;

use crate::{
    codec::{put_var, DecodeError, Reader},
    Event, GroupId, InsertError, Inserted, Log, MemberId, State, Unsigned,
};

/// How many messages before the one a member asked a chain key for the key
/// handed over reaches back: what came late is read too, and the skip from
/// there to the message asked about stays well within what a receiver
/// skips (`chat.max_skip`, 1,000 by default).
pub const REACH: u32 = 512;

const STORED_VERSION: u8 = 1;
/// The stored chains: 1 had no floors, 2 has them, 3 this device's
/// retired chains too.
const KEYS_VERSION: u8 = 3;
/// This device's own chains before the current one, remembered at most:
/// their messages come back from store nodes and are its own.
const RETIRED: usize = 16;
/// Chains kept per member device: the newest and the one before, for
/// messages that were in flight when it rotated.
const CHAINS_PER_DEVICE: usize = 2;
/// Chain keys held from accounts that are not members yet: a joiner may
/// get the members' keys before the events that make them members to it.
const HELD_CHAINS: usize = 64;

/// A device of a member: the account's key and the device's id.
pub type Device = (MemberId, [u8; 16]);

/// What this device must do after a change of membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Effects {
    /// Members to hand this device's current chain key to, over the
    /// pairwise sessions.
    pub chain_to: BTreeSet<MemberId>,
    /// This device started a new sending chain.
    pub rotated: bool,
    /// This device's member left or was removed: it reads and sends no more.
    pub removed: bool,
    /// Members who joined.
    pub added: BTreeSet<MemberId>,
    /// Chain keys held from before their owners were members, refused now
    /// that they are (a key not bound to its sender's device, say).
    pub refused_chains: Vec<ChainError>,
}

/// Why a message could not be sealed for the group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// This device's member is not (or no longer) in the group.
    #[error("not a member of the group")]
    NotMember,
}

/// Why a member's request for this device's chain key is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The one asking is not a member (a stranger, or removed).
    #[error("a chain key request from a non-member")]
    NotMember,
    /// Not this device's current chain: another member's, or one this
    /// device left behind when it rotated (its keys are gone).
    #[error("not this device's current chain")]
    NotOurs,
}

/// Why a group message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a group message.
    #[error("malformed group message: {0}")]
    Malformed(String),
    /// A chain this device was not given: from before it joined, from
    /// after it was removed, or from a non-member.
    #[error("no key for this sending chain")]
    UnknownChain,
    /// The chain's owner is no longer a member.
    #[error("the sender is not a member")]
    NotMember,
    /// A message of this device's own sending chain, come back (a store
    /// node returns everything on the group's topic): it was handled when
    /// it was sent, and no one else holds the key to ask for.
    #[error("a message of this device's own chain")]
    Own,
    /// The chain refused it (signature, tampering, replay, bound).
    #[error(transparent)]
    Chain(#[from] GroupError),
}

/// Why a chain key handed over was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// From someone who is not a member.
    #[error("a chain key from a non-member")]
    NotMember,
    /// Not a chain key.
    #[error("malformed chain key: {0}")]
    Malformed(String),
    /// A chain id that does not name the device that handed it over: a
    /// member passing off another member's chain as its own, or squatting
    /// on its id.
    #[error("the chain key is not the sender's own")]
    NotOwn,
}

/// How a device names itself in its chain ids.
fn owner_bytes((member, device): Device) -> [u8; 48] {
    let mut owner = [0; 48];
    owner[..32].copy_from_slice(&member.0);
    owner[32..].copy_from_slice(&device);
    owner
}

/// A group message opened: who sent it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sending member.
    pub sender: MemberId,
    /// The sending device.
    pub device: [u8; 16],
    /// What it says.
    pub plaintext: Vec<u8>,
}

struct Receiver {
    owner: Device,
    chain: ReceiverChain,
}

/// One device's view of a group.
pub struct Group {
    log: Log,
    me: Device,
    sending: Option<SenderChain>,
    /// Members who joined after the sending chain started, and the position
    /// it was at: a key asked for again is never earlier than that.
    floors: BTreeMap<MemberId, u32>,
    receivers: BTreeMap<ChainId, Receiver>,
    /// The ids of this device's sending chains before the current one,
    /// newest last (only ids: their keys are gone).
    retired: VecDeque<ChainId>,
    /// Keys from accounts not (yet) members, oldest first; not persisted.
    held: Vec<(Device, Zeroizing<Vec<u8>>)>,
    max_skip: u32,
}

impl Group {
    /// A group this device's member created: `create` is its signed
    /// `Create` event.
    pub fn create(
        me: Device,
        create: Event,
        max_skip: u32,
    ) -> Result<(Self, Effects), InsertError> {
        let mut group = Self::join(me, create.id(), max_skip);
        let (_, effects) = group.insert(create)?;
        Ok((group, effects))
    }

    /// A group this device was invited into, before its events arrive.
    pub fn join(me: Device, group: GroupId, max_skip: u32) -> Self {
        Self {
            log: Log::new(group),
            me,
            sending: None,
            floors: BTreeMap::new(),
            receivers: BTreeMap::new(),
            retired: VecDeque::new(),
            held: Vec::new(),
            max_skip,
        }
    }

    /// The group.
    pub fn id(&self) -> GroupId {
        self.log.group()
    }

    /// This device, as the group names it.
    pub fn me(&self) -> Device {
        self.me
    }

    /// The membership log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The group as the log says.
    pub fn state(&self) -> &State {
        self.log.state()
    }

    /// Whether this device's member is in the group.
    pub fn is_member(&self) -> bool {
        self.state().members.contains_key(&self.me.0)
    }

    /// Whether `unsigned` would hold (see [`Log::allows`]).
    pub fn allows(&self, unsigned: &Unsigned) -> bool {
        self.log.allows(unsigned)
    }

    /// `action` by this device's member, to sign and then [`Group::insert`].
    pub fn prepare(&self, action: crate::Action) -> Unsigned {
        self.log.prepare(self.me.0, action)
    }

    /// Takes an event (anyone's, in any order) and answers what this device
    /// must do about the change it made.
    pub fn insert(&mut self, event: Event) -> Result<(Inserted, Effects), InsertError> {
        let before = self.state().members.clone();
        let inserted = self.log.insert(event)?;
        let after = self.state().members.clone();
        let effects = self.membership_changed(&before, &after);
        let mut effects = effects;
        if !effects.added.is_empty() {
            for (owner, key) in std::mem::take(&mut self.held) {
                match self.receive_chain(owner, &key) {
                    // Still not a member: held again.
                    Ok(()) | Err(ChainError::NotMember) => {}
                    Err(e) => effects.refused_chains.push(e),
                }
            }
        }
        Ok((inserted, effects))
    }

    fn membership_changed(
        &mut self,
        before: &BTreeMap<MemberId, crate::Role>,
        after: &BTreeMap<MemberId, crate::Role>,
    ) -> Effects {
        let me = self.me.0;
        let gone: BTreeSet<MemberId> = before
            .keys()
            .filter(|m| !after.contains_key(m))
            .copied()
            .collect();
        let added: BTreeSet<MemberId> = after
            .keys()
            .filter(|m| !before.contains_key(m))
            .copied()
            .collect();
        let others = || after.keys().filter(|m| **m != me).copied().collect();
        let mut effects = Effects {
            added: added.clone(),
            ..Effects::default()
        };
        self.receivers.retain(|_, r| after.contains_key(&r.owner.0));
        self.floors.retain(|m, _| after.contains_key(m));
        match (before.contains_key(&me), after.contains_key(&me)) {
            (_, false) => {
                effects.removed = before.contains_key(&me) || self.sending.is_some();
                self.rotate(None);
                self.receivers.clear();
            }
            (false, true) => {
                self.rotate(Some(SenderChain::generate(&owner_bytes(self.me))));
                effects.rotated = true;
                effects.chain_to = others();
            }
            (true, true) if !gone.is_empty() || self.sending.is_none() => {
                self.rotate(Some(SenderChain::generate(&owner_bytes(self.me))));
                effects.rotated = true;
                effects.chain_to = others();
            }
            (true, true) => {
                let at = self.sending.as_ref().map_or(0, SenderChain::iteration);
                for m in added.iter().filter(|m| **m != me) {
                    self.floors.insert(*m, at);
                }
                effects.chain_to = added.into_iter().filter(|m| *m != me).collect();
            }
        }
        if effects.rotated || effects.removed {
            self.floors.clear();
        }
        effects
    }

    /// `device` was revoked by its account: its chains are dropped (nothing
    /// it sends is read from now on) and, if it could read this device's
    /// chain, this device starts a new one for every other member, handed
    /// over pairwise, where the revoked device is no longer reached.
    pub fn revoke(&mut self, device: Device) -> Effects {
        self.receivers.retain(|_, r| r.owner != device);
        self.held.retain(|(owner, _)| *owner != device);
        let mut effects = Effects::default();
        let reads_us = self.state().members.contains_key(&device.0) && device != self.me;
        if self.is_member() && reads_us && self.sending.is_some() {
            self.rotate(Some(SenderChain::generate(&owner_bytes(self.me))));
            self.floors.clear();
            effects.rotated = true;
            effects.chain_to = self
                .state()
                .members
                .keys()
                .filter(|m| **m != self.me.0)
                .copied()
                .collect();
        }
        effects
    }

    /// This device's current chain key, to hand to the members
    /// [`Effects::chain_to`] names.
    pub fn chain_key(&self) -> Option<ChainKey> {
        self.sending.as_ref().map(SenderChain::chain_key)
    }

    /// `from` could not read message `iteration` of `chain` (its copy of
    /// the key was lost, or is still on its way): if the chain is this
    /// device's current one and `from` a member, the key to hand it, from
    /// [`REACH`] messages before that one, never from before the position
    /// `from` joined the chain at (so it reads nothing sent before it was
    /// let in).
    ///
    /// Not from the message it asked about: that is only the first one it
    /// saw, and the ones before it may still come (a store node sends them
    /// later, or they cross a healed partition after it); a key from there
    /// on would make every one of them a replay, lost for good.
    pub fn answer_chain(
        &self,
        from: MemberId,
        chain: ChainId,
        iteration: u32,
    ) -> Result<ChainKey, AnswerError> {
        if from == self.me.0 || !self.state().members.contains_key(&from) {
            return Err(AnswerError::NotMember);
        }
        let sending = self
            .sending
            .as_ref()
            .filter(|s| s.id() == chain)
            .ok_or(AnswerError::NotOurs)?;
        let floor = self.floors.get(&from).copied().unwrap_or(0);
        Ok(sending.chain_key_at(iteration.saturating_sub(REACH).max(floor)))
    }

    /// The chain and position of a group message this device has no key
    /// for, if the bytes are one (and not of its own chain): what to ask
    /// its owner for.
    pub fn missing_chain(&self, bytes: &[u8]) -> Option<(ChainId, u32)> {
        GroupMessage::from_bytes(bytes)
            .ok()
            .filter(|m| !self.receivers.contains_key(&m.chain) && !self.is_own(m.chain))
            .map(|m| (m.chain, m.iteration))
    }

    /// Whether `chain` is one of this device's sending chains: the
    /// current one, or one it retired.
    fn is_own(&self, chain: ChainId) -> bool {
        self.sending.as_ref().is_some_and(|s| s.id() == chain) || self.retired.contains(&chain)
    }

    /// Replaces this device's sending chain with `next`, remembering the
    /// old one's id.
    fn rotate(&mut self, next: Option<SenderChain>) {
        if let Some(old) = std::mem::replace(&mut self.sending, next) {
            if self.retired.len() == RETIRED {
                self.retired.pop_front();
            }
            self.retired.push_back(old.id());
        }
    }

    /// A chain key that `owner` handed over in a pairwise session (or that
    /// another device of this member did). A key from an account that is
    /// not a member is refused, and held (boundedly) in case the events
    /// that make it one are still on their way.
    pub fn receive_chain(&mut self, owner: Device, key: &[u8]) -> Result<(), ChainError> {
        let parsed = ChainKey::from_bytes(key).map_err(|e| ChainError::Malformed(e.to_string()))?;
        if !self.state().members.contains_key(&owner.0) {
            if self.held.len() >= HELD_CHAINS {
                self.held.remove(0);
            }
            self.held.push((owner, Zeroizing::new(key.to_vec())));
            return Err(ChainError::NotMember);
        }
        let key = parsed;
        if key.chain != ChainId::bound(&owner_bytes(owner), &key.verifying_key) {
            return Err(ChainError::NotOwn);
        }
        if self.receivers.contains_key(&key.chain) {
            // Handed over twice (a copy, a retry): the chain read so far stays.
            return Ok(());
        }
        let chain = ReceiverChain::new(&key, self.max_skip)
            .map_err(|e| ChainError::Malformed(e.to_string()))?;
        self.receivers.insert(key.chain, Receiver { owner, chain });
        let mut own: Vec<ChainId> = self
            .receivers
            .iter()
            .filter(|(_, r)| r.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        // Chains of one device arrive in the order it made them.
        own.retain(|id| *id != key.chain);
        while own.len() >= CHAINS_PER_DEVICE {
            self.receivers.remove(&own.remove(0));
        }
        Ok(())
    }

    /// Encrypts and signs `plaintext` for every member: one message on the
    /// wire whatever the group's size.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        if !self.is_member() {
            return Err(SealError::NotMember);
        }
        let me = owner_bytes(self.me);
        let sending = self
            .sending
            .get_or_insert_with(|| SenderChain::generate(&me));
        Ok(sending.encrypt(plaintext).to_bytes())
    }

    /// Reads a group message from the wire.
    pub fn open(&mut self, bytes: &[u8]) -> Result<Opened, OpenError> {
        let message =
            GroupMessage::from_bytes(bytes).map_err(|e| OpenError::Malformed(e.to_string()))?;
        if self.is_own(message.chain) {
            return Err(OpenError::Own);
        }
        let receiver = self
            .receivers
            .get_mut(&message.chain)
            .ok_or(OpenError::UnknownChain)?;
        if !self.log.state().members.contains_key(&receiver.owner.0) {
            return Err(OpenError::NotMember);
        }
        let plaintext = receiver.chain.decrypt(&message)?;
        Ok(Opened {
            sender: receiver.owner.0,
            device: receiver.owner.1,
            plaintext,
        })
    }

    /// The chain a wire message claims, if the bytes are one: whether this
    /// device can read it at all.
    pub fn knows_chain(&self, bytes: &[u8]) -> bool {
        GroupMessage::from_bytes(bytes).is_ok_and(|m| self.receivers.contains_key(&m.chain))
    }

    /// The stored form of the log: changes only with membership, so it is
    /// written only then. Not secret (every member holds it), though what it
    /// says about the group is private: seal it too.
    pub fn log_bytes(&self) -> Vec<u8> {
        let mut v = vec![STORED_VERSION];
        v.extend_from_slice(&self.log.group().0);
        v.extend_from_slice(&self.me.0 .0);
        v.extend_from_slice(&self.me.1);
        v.extend_from_slice(&self.max_skip.to_be_bytes());
        let events: Vec<&Event> = self.log.all_events().collect();
        v.extend_from_slice(&(events.len() as u32).to_be_bytes());
        for e in events {
            put_var(&mut v, &e.to_bytes());
        }
        v
    }

    /// The stored form of the chains, secret: it changes with every message
    /// sent or read. Seal it before it leaves memory.
    pub fn keys_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(vec![KEYS_VERSION]);
        match &self.sending {
            Some(s) => put_var(&mut v, &s.to_bytes()),
            None => put_var(&mut v, &[]),
        }
        v.extend_from_slice(&(self.receivers.len() as u32).to_be_bytes());
        for r in self.receivers.values() {
            v.extend_from_slice(&r.owner.0 .0);
            v.extend_from_slice(&r.owner.1);
            put_var(&mut v, &r.chain.to_bytes());
        }
        v.extend_from_slice(&(self.floors.len() as u32).to_be_bytes());
        for (m, at) in &self.floors {
            v.extend_from_slice(&m.0);
            v.extend_from_slice(&at.to_be_bytes());
        }
        v.extend_from_slice(&(self.retired.len() as u32).to_be_bytes());
        for id in &self.retired {
            v.extend_from_slice(&id.0);
        }
        v
    }

    /// Reads the stored forms (a group without keys yet has none).
    pub fn from_parts(log_bytes: &[u8], keys_bytes: Option<&[u8]>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(log_bytes, "stored group", STORED_VERSION)?;
        let group = crate::EventId(r.array("group")?);
        let me = (MemberId(r.array("member")?), r.array("device")?);
        let max_skip = r.u32("max skip")?;
        let mut log = Log::new(group);
        for _ in 0..r.count(4, "events")? {
            let event = Event::from_bytes(r.var("event")?)?;
            // Each was checked when it first arrived; the order they are
            // stored in does not matter to the log.
            let _ = log.insert(event);
        }
        r.finish()?;
        let mut sending = None;
        let mut receivers = BTreeMap::new();
        let mut floors = BTreeMap::new();
        let mut retired = VecDeque::new();
        if let Some(keys) = keys_bytes {
            // Version 1 kept no floors: a member asking again gets no key
            // older than the oldest the sending chain holds, which is its
            // position when it was stored (see `SenderChain::from_bytes`).
            // Before 3, no retired chains: their messages come back as
            // unknown chains, as they did then.
            let version = match keys.first() {
                Some(&v @ (1 | 2)) => v,
                _ => KEYS_VERSION,
            };
            let mut r = Reader::new(keys, "stored group keys", version)?;
            sending = match r.var("sending chain")? {
                [] => None,
                b => Some(
                    SenderChain::from_bytes(b)
                        .map_err(|_| DecodeError::Invalid("sending chain"))?,
                ),
            };
            for _ in 0..r.count(52, "receiving chains")? {
                let owner = (MemberId(r.array("chain owner")?), r.array("chain device")?);
                let chain = ReceiverChain::from_bytes(r.var("receiving chain")?)
                    .map_err(|_| DecodeError::Invalid("receiving chain"))?;
                receivers.insert(chain.id(), Receiver { owner, chain });
            }
            if version > 1 {
                for _ in 0..r.count(36, "floors")? {
                    floors.insert(MemberId(r.array("floor member")?), r.u32("floor")?);
                }
            }
            if version > 2 {
                for _ in 0..r.count(16, "retired chains")? {
                    retired.push_back(ChainId(r.array("retired chain")?));
                }
            }
            r.finish()?;
        }
        Ok(Self {
            log,
            me,
            sending,
            floors,
            receivers,
            retired,
            held: Vec::new(),
            max_skip,
        })
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id())
            .field("me", &self.me.0)
            .field("chains", &self.receivers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
