//! The membership stage: private groups. A thin actor around the sans-I/O
//! [`murmur_groups::Group`]: it asks the crypto stage to sign events with
//! the account key and for the bundles of accounts to introduce, persists
//! each group (sealed with the vault key) through the storage stage, and
//! answers the pipeline what to publish.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use bytes::Bytes;
use murmur_core::{
    crypto::{self, AccountId, DeviceId, Sealed},
    groups::{
        Action, Change, Control, Create, Effects, Error, GroupId, Info, List, Open, Opened, Post,
        Role, Summary, Topics,
    },
    storage, ContentTopic,
};
use murmur_crypto::{envelope, Vault};
use murmur_groups::{Group, MemberId, OpenError};
use murmur_proto::chat::{AccountBundles, Content, GroupControl};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

const MAILBOX: usize = 1024;
/// Groups held that no event has arrived for yet (keys that came before
/// the invite); more are refused.
const MAX_SHELLS: usize = 32;
const STATE: &str = "groups/";
/// Bytes a group message adds to its plaintext (version, chain id,
/// iteration, signature, tag), so that what is on the wire fills a bucket.
const OVERHEAD: usize = 1 + 16 + 4 + 64 + 16;

/// The membership stage's counters.
#[derive(Clone, Default, Debug)]
pub struct Metrics {
    posted: Counter,
    opened: Counter,
    refused: Family<Reason, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

impl Metrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("posted", "Group messages sealed", self.posted.clone());
        registry.register("opened", "Group messages opened", self.opened.clone());
        registry.register(
            "refused",
            "Group messages, events and keys refused, by reason",
            self.refused.clone(),
        );
    }

    /// How many messages, events or keys were refused for `reason`
    /// (`unknown_chain`, `replay`, `malformed`, `not_member`,
    /// `invalid_event`, `unauthorized`).
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&Reason { reason }).get()
    }

    /// How many group messages were opened.
    pub fn opened(&self) -> u64 {
        self.opened.get()
    }

    fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }
}

/// How every group topic starts.
pub const TOPIC_PREFIX: &str = "/murmur/1/group-";

/// The content topic of a group's messages: from a hash of its id, so that
/// the topic names no one.
pub fn group_topic(group: GroupId) -> ContentTopic {
    let digest = Sha256::new()
        .chain_update(b"murmur/group-topic/v1")
        .chain_update(group.0)
        .finalize();
    format!("{TOPIC_PREFIX}{}/proto", hex::encode(&digest[..8]))
        .parse()
        .expect("a group topic is a valid content topic")
}

fn member(a: AccountId) -> MemberId {
    MemberId(a.0)
}

fn account(m: MemberId) -> AccountId {
    AccountId(m.0)
}

fn gid(g: murmur_groups::GroupId) -> GroupId {
    GroupId(g.0)
}

fn state_error(e: impl std::fmt::Display) -> Error {
    Error::State(e.to_string())
}

/// The membership stage.
pub struct Membership {
    groups: BTreeMap<GroupId, Group>,
    topics: BTreeMap<String, GroupId>,
    crypto: crypto::Handle,
    storage: storage::Handle,
    vault: Vault,
    max_skip: u32,
    metrics: Metrics,
}

impl Membership {
    /// Loads every group this device keeps and starts the stage under a
    /// supervisor.
    pub async fn start(
        storage: storage::Handle,
        crypto: crypto::Handle,
        node_secret: &[u8],
        max_skip: u32,
        metrics: Metrics,
    ) -> Result<Addr<Self>, Error> {
        let vault = Vault::new(node_secret);
        let entries = storage
            .list_state
            .send(storage::ListState(STATE.to_owned()))
            .await
            .map_err(state_error)?
            .map_err(state_error)?;
        let mut stage = Self {
            groups: BTreeMap::new(),
            topics: BTreeMap::new(),
            crypto,
            storage,
            vault,
            max_skip,
            metrics,
        };
        for (name, value) in entries {
            let bytes = stage.vault.open(&name, &value).map_err(state_error)?;
            let group = Group::from_bytes(&bytes).map_err(state_error)?;
            stage.insert_group(group);
        }
        Ok(Supervisor::start(move |_| stage))
    }

    fn insert_group(&mut self, group: Group) {
        let id = gid(group.id());
        self.topics.insert(group_topic(id).as_str().to_owned(), id);
        self.groups.insert(id, group);
    }

    fn group(&mut self, id: GroupId) -> Result<&mut Group, Error> {
        self.groups.get_mut(&id).ok_or(Error::UnknownGroup(id))
    }

    fn save(&self, id: GroupId) -> (String, Option<Vec<u8>>) {
        let name = format!("{STATE}{id}");
        let value = self
            .groups
            .get(&id)
            .map(|g| self.vault.seal(&name, &g.to_bytes()));
        (name, value)
    }

    /// Persists `group`, then answers `result`; the mailbox waits.
    fn persist<T: 'static>(
        &self,
        group: GroupId,
        result: T,
    ) -> impl ActorFuture<Self, Output = Result<T, Error>> + use<T> {
        let save = self.storage.save_state.clone();
        let entry = self.save(group);
        async move {
            save.send(storage::SaveState(vec![entry]))
                .await
                .map_err(state_error)?
                .map_err(state_error)?;
            Ok(result)
        }
        .into_actor(self)
    }

    fn summary(&self, id: GroupId, group: &Group, me: AccountId) -> Summary {
        let state = group.state();
        Summary::new(
            id,
            state.name.clone(),
            state
                .members
                .iter()
                .map(|(m, r)| {
                    let role = match r {
                        murmur_groups::Role::Admin => Role::Admin,
                        murmur_groups::Role::Member => Role::Member,
                    };
                    (account(*m), role)
                })
                .collect(),
            state.members.contains_key(&member(me)),
        )
        .with_rejected(state.rejected.len())
    }
}

/// One pairwise control message, encoded as chat content.
fn control_message(
    group: GroupId,
    events: Vec<Vec<u8>>,
    chain: Option<Vec<u8>>,
    bundles: Vec<AccountBundles>,
) -> Bytes {
    Bytes::from(
        Content {
            id: rand::random::<[u8; 16]>().to_vec(),
            sent_at: crate::chat::now_millis(),
            group: Some(GroupControl {
                group: group.0.to_vec(),
                events,
                chain,
                bundles,
            }),
            ..Content::default()
        }
        .encode_to_vec(),
    )
}

/// Content padded so that the group message on the wire fills a size
/// bucket, as pairwise envelopes do.
pub(crate) fn pad(mut content: Content) -> Vec<u8> {
    let len = content.encoded_len();
    let target = envelope::bucket(len + OVERHEAD + 3).saturating_sub(OVERHEAD);
    // The padding field costs a tag and a length varint of its own.
    let fill = target.saturating_sub(len + 1 + prost::length_delimiter_len(target));
    content.padding = Some(vec![0; fill]);
    content.encode_to_vec()
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Supervised for Membership {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("membership stage restarting");
    }
}

impl Handler<Create> for Membership {
    type Result = AtomicResponse<Self, Result<(GroupId, Effects), Error>>;

    fn handle(&mut self, msg: Create, _: &mut Context<Self>) -> Self::Result {
        if msg.name.len() > murmur_groups::MAX_NAME {
            return AtomicResponse::new(Box::pin(fut::ready(Err(Error::Forbidden(format!(
                "a group name is at most {} bytes",
                murmur_groups::MAX_NAME
            ))))));
        }
        let crypto = self.crypto.clone();
        let max_skip = self.max_skip;
        let sign = async move {
            let me = crypto
                .identity
                .send(crypto::Identity)
                .await
                .map_err(state_error)?;
            let unsigned = murmur_groups::Unsigned::create(member(me.0), &msg.name);
            let signature = crypto
                .sign_event
                .send(crypto::SignEvent(Bytes::from(unsigned.signed_bytes())))
                .await
                .map_err(state_error)??;
            Ok::<_, Error>((me, unsigned.sign(signature)))
        };
        AtomicResponse::new(Box::pin(sign.into_actor(self).then(
            move |signed, act, _| {
                let created = signed.and_then(|(me, create)| {
                    Group::create((member(me.0), me.1 .0), create, max_skip)
                        .map_err(|e| Error::InvalidEvent(e.to_string()))
                });
                let result = created.map(|(group, _)| {
                    let id = gid(group.id());
                    act.insert_group(group);
                    id
                });
                match result {
                    Ok(id) => {
                        let mut effects = Effects::default();
                        effects.subscribe.push(group_topic(id));
                        act.persist(id, (id, effects)).boxed_local()
                    }
                    Err(e) => fut::ready(Err(e)).boxed_local(),
                }
            },
        )))
    }
}

/// What the author of a change must gather before applying it.
struct Prepared {
    me: (AccountId, DeviceId),
    event: murmur_groups::Event,
    /// Bundles of every account involved: the members and the joiner.
    bundles: BTreeMap<AccountId, Vec<Bytes>>,
}

impl Handler<Change> for Membership {
    type Result = AtomicResponse<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Change, _: &mut Context<Self>) -> Self::Result {
        let id = msg.group;
        let prepared = self.group(id).map(|group| {
            let action = match msg.action {
                Action::Add(a) => murmur_groups::Action::Add(member(a)),
                Action::Remove(a) => murmur_groups::Action::Remove(member(a)),
                Action::Leave => murmur_groups::Action::Leave,
                Action::Promote(a) => murmur_groups::Action::Promote(member(a)),
                Action::Demote(a) => murmur_groups::Action::Demote(member(a)),
                Action::Rename(name) => murmur_groups::Action::Rename(name),
                other => return Err(Error::Forbidden(format!("{other:?} is not supported"))),
            };
            let mut involved: BTreeSet<AccountId> =
                group.state().members.keys().map(|m| account(*m)).collect();
            if let murmur_groups::Action::Add(m) = &action {
                involved.insert(account(*m));
            }
            Ok((group.prepare(action), involved))
        });
        let crypto = self.crypto.clone();
        let gather = async move {
            let (unsigned, involved) = prepared??;
            let me = crypto
                .identity
                .send(crypto::Identity)
                .await
                .map_err(state_error)?;
            if unsigned.author() != member(me.0) {
                return Err(Error::State(
                    "the account changed since the group was joined".to_owned(),
                ));
            }
            let signature = crypto
                .sign_event
                .send(crypto::SignEvent(Bytes::from(unsigned.signed_bytes())))
                .await
                .map_err(state_error)??;
            let mut bundles = BTreeMap::new();
            for a in involved {
                let b = crypto
                    .bundles
                    .send(crypto::Bundles(a))
                    .await
                    .map_err(state_error)?;
                bundles.insert(a, b);
            }
            Ok::<_, Error>(Prepared {
                me,
                event: unsigned.sign(signature),
                bundles,
            })
        };
        AtomicResponse::new(Box::pin(gather.into_actor(self).then(
            move |prepared, act, _| match prepared.and_then(|p| act.apply_own(id, &p)) {
                Ok(effects) => act.persist(id, effects).boxed_local(),
                Err(e) => fut::ready(Err(e)).boxed_local(),
            },
        )))
    }
}

impl Membership {
    /// Applies this account's own signed event and answers who must hear of
    /// it: every member after it, and whoever it removed; a joiner gets
    /// the whole log and every member's bundles, the others the joiner's.
    fn apply_own(&mut self, id: GroupId, p: &Prepared) -> Result<Effects, Error> {
        let group = self.group(id)?;
        let before: BTreeSet<AccountId> =
            group.state().members.keys().map(|m| account(*m)).collect();
        let state_before = group.state();
        let (_, effects) = group
            .insert(p.event.clone())
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let state = group.state();
        if state.rejected.len() > state_before.rejected.len() {
            // Signed and logged, but it changes nothing: say why, and tell
            // no one (a rejected event of ours is harmless in others' logs).
            let why = match &p.event.action {
                murmur_groups::Action::Leave => "not a member".to_owned(),
                murmur_groups::Action::Add(_) => {
                    "only admins add members, and only non-members".to_owned()
                }
                murmur_groups::Action::Remove(_) => {
                    "only admins remove members, and not the creator or themselves".to_owned()
                }
                _ => "only admins change the group (and the creator stays an admin)".to_owned(),
            };
            self.metrics.refuse("unauthorized");
            return Err(Error::Forbidden(why));
        }
        let after: BTreeSet<AccountId> = state.members.keys().map(|m| account(*m)).collect();
        let chain = group.chain_key().map(|k| k.to_bytes().to_vec());
        let log: Vec<Vec<u8>> = group.log().events().map(|e| e.to_bytes()).collect();
        let me = p.me.0;
        let bundles_of = |accounts: &mut dyn Iterator<Item = &AccountId>| -> Vec<AccountBundles> {
            accounts
                .filter_map(|a| {
                    p.bundles.get(a).map(|b| AccountBundles {
                        account: a.0.to_vec(),
                        bundles: b.iter().map(|x| x.to_vec()).collect(),
                    })
                })
                .collect()
        };
        let joiners: BTreeSet<AccountId> = effects.added.iter().map(|m| account(*m)).collect();
        let mut out = Effects::default();
        for to in before.union(&after).filter(|a| **a != me) {
            let gets_chain = effects.chain_to.contains(&member(*to));
            let chain = gets_chain.then(|| chain.clone()).flatten();
            let message = if joiners.contains(to) {
                let others: Vec<&AccountId> = after.iter().filter(|a| *a != to).collect();
                control_message(id, log.clone(), chain, bundles_of(&mut others.into_iter()))
            } else {
                control_message(
                    id,
                    vec![p.event.to_bytes()],
                    chain,
                    bundles_of(&mut joiners.iter()),
                )
            };
            out.pairwise.push((*to, message));
        }
        if !joiners.is_empty() {
            out.learn = joiners
                .iter()
                .filter_map(|a| p.bundles.get(a).map(|b| (*a, b.clone())))
                .collect();
        }
        Ok(out)
    }

    /// Applies what another device sent about a group.
    fn apply_control(
        &mut self,
        msg: &Control,
        me: (AccountId, DeviceId),
    ) -> Result<(GroupId, Effects), Error> {
        let c =
            Content::decode(msg.message.as_ref()).map_err(|e| Error::Malformed(e.to_string()))?;
        let control = c
            .group
            .ok_or_else(|| Error::Malformed("no group control".to_owned()))?;
        let id = GroupId(
            control
                .group
                .as_slice()
                .try_into()
                .map_err(|_| Error::Malformed("a group id is 32 bytes".to_owned()))?,
        );
        let max_skip = self.max_skip;
        let mut learn = Vec::new();
        for b in &control.bundles {
            if let Ok(a) = <[u8; 32]>::try_from(b.account.as_slice()) {
                learn.push((
                    AccountId(a),
                    b.bundles.iter().cloned().map(Bytes::from).collect(),
                ));
            }
        }
        let metrics = self.metrics.clone();
        let new = !self.groups.contains_key(&id);
        if new && self.shells() >= MAX_SHELLS {
            metrics.refuse("not_member");
            return Err(Error::NotMember(id));
        }
        let group = self.groups.entry(id).or_insert_with(|| {
            Group::join(
                (member(me.0), me.1 .0),
                murmur_groups::EventId(id.0),
                max_skip,
            )
        });
        let was_member = group.is_member();
        let mut chain_to = BTreeSet::new();
        for bytes in &control.events {
            let event = match murmur_groups::Event::from_bytes(bytes) {
                Ok(e) => e,
                Err(_) => {
                    metrics.refuse("malformed");
                    continue;
                }
            };
            match group.insert(event) {
                Ok((_, effects)) => {
                    if effects.removed {
                        tracing::info!(group = %id, "this account left or was removed from a group");
                    }
                    if effects.rotated {
                        chain_to.clone_from(&effects.chain_to);
                    } else {
                        chain_to.extend(effects.chain_to);
                    }
                }
                // A copy, or a member re-sending the log: nothing new.
                Err(murmur_groups::InsertError::Duplicate) => {}
                Err(e) => {
                    metrics.refuse("invalid_event");
                    tracing::debug!(group = %id, error = %e, "membership event refused");
                }
            }
        }
        if let Some(key) = &control.chain {
            match group.receive_chain((member(msg.from), msg.device.0), key) {
                Ok(()) => {}
                Err(murmur_groups::ChainError::NotMember) => metrics.refuse("not_member"),
                Err(_) => metrics.refuse("malformed"),
            }
        }
        let is_member = group.is_member();
        let chain = group.chain_key().map(|k| k.to_bytes().to_vec());
        self.insert_topic(id);
        let mut effects = Effects::default();
        effects.learn = learn;
        // A key can come before the invite: the group was known (empty,
        // holding the key) before this device became a member.
        if is_member && !was_member {
            effects.subscribe.push(group_topic(id));
        }
        for m in chain_to {
            if account(m) != me.0 {
                effects.pairwise.push((
                    account(m),
                    control_message(id, Vec::new(), chain.clone(), Vec::new()),
                ));
            }
        }
        Ok((id, effects))
    }

    /// Groups known only from keys that came before their events.
    fn shells(&self) -> usize {
        self.groups
            .values()
            .filter(|g| g.log().events().next().is_none())
            .count()
    }

    fn insert_topic(&mut self, id: GroupId) {
        self.topics.insert(group_topic(id).as_str().to_owned(), id);
    }
}

impl Handler<Control> for Membership {
    type Result = AtomicResponse<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Control, _: &mut Context<Self>) -> Self::Result {
        let identity = self.crypto.identity.clone();
        AtomicResponse::new(Box::pin(
            async move { identity.send(crypto::Identity).await.map_err(state_error) }
                .into_actor(self)
                .then(
                    move |me, act, _| match me.and_then(|me| act.apply_control(&msg, me)) {
                        Ok((id, effects)) => act.persist(id, effects).boxed_local(),
                        Err(e) => fut::ready(Err(e)).boxed_local(),
                    },
                ),
        ))
    }
}

impl Handler<Post> for Membership {
    type Result = AtomicResponse<Self, Result<Sealed, Error>>;

    fn handle(&mut self, msg: Post, _: &mut Context<Self>) -> Self::Result {
        let sealed = self.group(msg.group).and_then(|group| {
            group
                .seal(&msg.plaintext)
                .map_err(|_| Error::NotMember(msg.group))
        });
        match sealed {
            Ok(payload) => {
                self.metrics.posted.inc();
                let sealed = Sealed::new(group_topic(msg.group), Bytes::from(payload));
                AtomicResponse::new(Box::pin(self.persist(msg.group, sealed)))
            }
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl Handler<Open> for Membership {
    type Result = AtomicResponse<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, _: &mut Context<Self>) -> Self::Result {
        let opened = self
            .topics
            .get(&delivery.message.content_topic)
            .copied()
            // A group this device is not in (yet): the pipeline keeps it a
            // while, in case the invite is on its way.
            .ok_or(Error::UnknownChain)
            .and_then(|id| {
                let group = self.group(id)?;
                let opened = group.open(&delivery.message.payload).map_err(|e| match e {
                    OpenError::UnknownChain => Error::UnknownChain,
                    OpenError::NotMember => Error::NotMember(id),
                    OpenError::Chain(murmur_crypto::group::GroupError::Replay(_)) => Error::Replay,
                    other => Error::Malformed(other.to_string()),
                })?;
                let role = match group.state().role(&opened.sender) {
                    Some(murmur_groups::Role::Admin) => Role::Admin,
                    _ => Role::Member,
                };
                Ok(Opened::new(
                    id,
                    account(opened.sender),
                    DeviceId(opened.device),
                    role,
                    Bytes::from(opened.plaintext),
                ))
            });
        match opened {
            Ok(opened) => {
                self.metrics.opened.inc();
                AtomicResponse::new(Box::pin(self.persist(opened.group, opened)))
            }
            Err(e) => {
                self.metrics.refuse(match e {
                    Error::UnknownChain => "unknown_chain",
                    Error::Replay => "replay",
                    Error::NotMember(_) => "not_member",
                    _ => "malformed",
                });
                AtomicResponse::new(Box::pin(fut::ready(Err(e))))
            }
        }
    }
}

impl Handler<Info> for Membership {
    type Result = ResponseActFuture<Self, Result<Summary, Error>>;

    fn handle(&mut self, Info(id): Info, _: &mut Context<Self>) -> Self::Result {
        let identity = self.crypto.identity.clone();
        Box::pin(
            async move { identity.send(crypto::Identity).await.map_err(state_error) }
                .into_actor(self)
                .map(move |me, act, _| {
                    let me = me?;
                    let group = act.groups.get(&id).ok_or(Error::UnknownGroup(id))?;
                    Ok(act.summary(id, group, me.0))
                }),
        )
    }
}

impl Handler<List> for Membership {
    type Result = ResponseActFuture<Self, Vec<Summary>>;

    fn handle(&mut self, _: List, _: &mut Context<Self>) -> Self::Result {
        let identity = self.crypto.identity.clone();
        Box::pin(
            async move { identity.send(crypto::Identity).await.ok() }
                .into_actor(self)
                .map(move |me, act, _| {
                    let Some(me) = me else { return Vec::new() };
                    act.groups
                        .iter()
                        .filter(|(_, g)| g.log().events().next().is_some())
                        .map(|(id, g)| act.summary(*id, g, me.0))
                        .collect()
                }),
        )
    }
}

impl Handler<Topics> for Membership {
    type Result = MessageResult<Topics>;

    fn handle(&mut self, _: Topics, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.groups
                .iter()
                .filter(|(_, g)| g.is_member())
                .map(|(id, _)| group_topic(*id))
                .collect(),
        )
    }
}
