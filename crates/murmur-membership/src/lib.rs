//! The membership stage: private groups. A thin actor around the sans-I/O
//! [`murmur_groups::Group`]: it asks the crypto stage to sign events with
//! the account key and for the bundles of accounts to introduce, persists
//! each group (sealed with the vault key) through the storage stage, and
//! answers the pipeline what to publish.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use bytes::Bytes;
use murmur_core::{
    chat::MessageId,
    crypto::{self, AccountId, DeviceId, Sealed},
    groups::{
        Action, Change, Control, Create, CreateInvite, Effects, Error, GroupId, Info, Join,
        JoinMode, List, Notice, Open, Opened, Post, Requests, Role, Summary, Topics,
    },
    storage, supervise, ContentTopic,
};
use murmur_crypto::{envelope, Vault};
use murmur_groups::{Group, MemberId, OpenError};
use murmur_proto::chat::{AccountBundles, Content, GroupControl, JoinRequest};
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

pub use murmur_core::groups::{topic as group_topic, TOPIC_PREFIX};

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    /// Join requests waiting for an admin's approval, per group.
    requests: BTreeMap<GroupId, BTreeSet<AccountId>>,
    /// Restarted after a panic: the groups are read back from storage first.
    reload: bool,
    fuse: supervise::Fuse,
}

/// Join requests kept per group; more are refused until some are handled.
const MAX_REQUESTS: usize = 256;
/// How an invite code starts.
pub const INVITE_PREFIX: &str = "murmur-join:";

fn role_of(r: murmur_groups::Role) -> Role {
    match r {
        murmur_groups::Role::Owner => Role::Owner,
        murmur_groups::Role::Admin => Role::Admin,
        murmur_groups::Role::Moderator => Role::Moderator,
        murmur_groups::Role::Member => Role::Member,
    }
}

fn log_role(r: Role) -> Result<murmur_groups::Role, Error> {
    Ok(match r {
        Role::Owner => murmur_groups::Role::Owner,
        Role::Admin => murmur_groups::Role::Admin,
        Role::Moderator => murmur_groups::Role::Moderator,
        Role::Member => murmur_groups::Role::Member,
        other => {
            return Err(Error::Forbidden(format!(
                "{other:?} is not a role this version knows"
            )))
        }
    })
}

fn log_action(action: Action) -> Result<murmur_groups::Action, Error> {
    use murmur_groups::Action as A;
    Ok(match action {
        Action::Add(a) => A::Add(member(a)),
        Action::Remove(a) => A::Remove(member(a)),
        Action::Leave => A::Leave,
        Action::Promote(a) => A::Promote(member(a)),
        Action::Demote(a) => A::Demote(member(a)),
        Action::Rename(name) => A::Rename(name),
        Action::SetRole(a, r) => A::SetRole(member(a), log_role(r)?),
        Action::Ban(a) => A::Ban(member(a)),
        Action::Unban(a) => A::Unban(member(a)),
        Action::OpenChannel(name) => A::Channel(name),
        Action::CloseChannel(name) => A::DropChannel(name),
        Action::Pin(m) => A::Pin(m.0),
        Action::Unpin(m) => A::Unpin(m.0),
        Action::Delete(m) => A::Delete(m.0),
        Action::SetJoinMode(mode) => A::JoinMode(match mode {
            JoinMode::Open => murmur_groups::JoinMode::Open,
            JoinMode::Approval => murmur_groups::JoinMode::Approval,
            _ => murmur_groups::JoinMode::Invite,
        }),
        other => return Err(Error::Forbidden(format!("{other:?} is not supported"))),
    })
}

/// Why an action of this account's does not hold.
fn refusal(action: &murmur_groups::Action) -> &'static str {
    use murmur_groups::Action as A;
    match action {
        A::Leave => "not a member",
        A::Add(_) => "only admins add members, and not members or banned accounts",
        A::Remove(_) | A::Ban(_) => {
            "only moderators and above remove or ban, and only those below them (never the owner)"
        }
        A::SetRole(..) => {
            "admins give the moderator and member roles to those below them; only the owner makes admins"
        }
        A::Unban(_) | A::Pin(_) | A::Unpin(_) | A::Delete(_) => {
            "only moderators and above (or it is so already)"
        }
        _ => "only admins (or it is so already; the owner stays the owner)",
    }
}

/// What changed between two states, for the application.
fn notices(
    id: GroupId,
    before: &murmur_groups::State,
    after: &murmur_groups::State,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let joined: Vec<AccountId> = after
        .members
        .keys()
        .filter(|m| !before.members.contains_key(m))
        .map(|m| account(*m))
        .collect();
    let left: Vec<AccountId> = before
        .members
        .keys()
        .filter(|m| !after.members.contains_key(m))
        .map(|m| account(*m))
        .collect();
    if !joined.is_empty() {
        out.push(Notice::Joined {
            group: id,
            accounts: joined,
        });
    }
    if !left.is_empty() {
        out.push(Notice::Left {
            group: id,
            accounts: left,
        });
    }
    for m in after.deleted.difference(&before.deleted) {
        out.push(Notice::Deleted {
            group: id,
            message: MessageId(*m),
        });
    }
    for m in after.pinned.difference(&before.pinned) {
        out.push(Notice::Pinned {
            group: id,
            message: MessageId(*m),
        });
    }
    for m in before.pinned.difference(&after.pinned) {
        if !after.deleted.contains(m) {
            out.push(Notice::Unpinned {
                group: id,
                message: MessageId(*m),
            });
        }
    }
    out
}

async fn list_state(storage: &storage::Handle) -> Result<Vec<(String, Vec<u8>)>, Error> {
    storage
        .list_state
        .send(storage::ListState(STATE.to_owned()))
        .await
        .map_err(state_error)?
        .map_err(state_error)
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
        let entries = list_state(&storage).await?;
        let mut stage = Self {
            groups: BTreeMap::new(),
            topics: BTreeMap::new(),
            crypto,
            storage,
            vault,
            max_skip,
            metrics,
            requests: BTreeMap::new(),
            reload: false,
            fuse: supervise::Fuse::default(),
        };
        stage.load(entries)?;
        Ok(Supervisor::start(move |_| stage))
    }

    /// Replaces the groups in memory with those of `entries`: at start, and
    /// after a restart, so that what a panic left half-changed is dropped.
    fn load(&mut self, entries: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        // groups/<id>/log and groups/<id>/keys, side by side.
        type Part = Option<zeroize::Zeroizing<Vec<u8>>>;
        let mut parts: BTreeMap<String, (Part, Part)> = BTreeMap::new();
        for (name, value) in entries {
            let bytes = self.vault.open(&name, &value).map_err(state_error)?;
            let slot = parts
                .entry(
                    name.rsplit_once('/')
                        .map_or(name.clone(), |(g, _)| g.to_owned()),
                )
                .or_default();
            if name.ends_with("/log") {
                slot.0 = Some(bytes);
            } else if name.ends_with("/keys") {
                slot.1 = Some(bytes);
            }
        }
        let mut groups = Vec::new();
        for (name, (log, keys)) in parts {
            let log = log.ok_or_else(|| Error::State(format!("{name}: keys without a log")))?;
            groups.push(
                Group::from_parts(&log, keys.as_ref().map(|k| k.as_slice()))
                    .map_err(state_error)?,
            );
        }
        self.groups.clear();
        self.topics.clear();
        for group in groups {
            self.insert_group(group);
        }
        Ok(())
    }

    /// Reads the groups back from storage after a restart.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        ctx.wait(
            async move { list_state(&storage).await }
                .into_actor(self)
                .map(|entries, act, _| match entries.and_then(|e| act.load(e)) {
                    Ok(()) => tracing::info!("membership stage reloaded its groups"),
                    Err(e) => {
                        tracing::error!(error = %e, "groups not reloaded; keeping those in memory")
                    }
                }),
        );
    }

    fn insert_group(&mut self, group: Group) {
        let id = gid(group.id());
        self.topics.insert(group_topic(id).as_str().to_owned(), id);
        self.groups.insert(id, group);
    }

    fn group(&mut self, id: GroupId) -> Result<&mut Group, Error> {
        self.groups.get_mut(&id).ok_or(Error::UnknownGroup(id))
    }

    /// The sealed state entries of a group: its keys, and its log too when
    /// `log` (membership changed).
    fn save(&self, id: GroupId, log: bool) -> Vec<(String, Option<Vec<u8>>)> {
        let Some(g) = self.groups.get(&id) else {
            return Vec::new();
        };
        let keys = format!("{STATE}{id}/keys");
        let mut entries = vec![(keys.clone(), Some(self.vault.seal(&keys, &g.keys_bytes())))];
        if log {
            let name = format!("{STATE}{id}/log");
            entries.push((name.clone(), Some(self.vault.seal(&name, &g.log_bytes()))));
        }
        entries
    }

    /// Persists `group` (its log too, if `log`), then answers `result`; the
    /// mailbox waits.
    fn persist<T: 'static>(
        &self,
        group: GroupId,
        log: bool,
        result: T,
    ) -> impl ActorFuture<Self, Output = Result<T, Error>> + use<T> {
        let save = self.storage.save_state.clone();
        let entries = self.save(group, log);
        async move {
            match save.send(storage::SaveState(entries)).await {
                Ok(Ok(())) => Ok(result),
                // Not saved: the storage stage restarted on it.
                Ok(Err(storage::Error::Restarted(p))) => Err(Error::Restarted(p)),
                Ok(Err(e)) => Err(state_error(e)),
                Err(e) => Err(state_error(e)),
            }
        }
        .into_actor(self)
    }

    fn summary(&self, id: GroupId, group: &Group, me: AccountId) -> Summary {
        let state = group.state();
        let join_mode = match state.join_mode {
            murmur_groups::JoinMode::Open => JoinMode::Open,
            murmur_groups::JoinMode::Approval => JoinMode::Approval,
            murmur_groups::JoinMode::Invite => JoinMode::Invite,
        };
        Summary::new(
            id,
            state.name.clone(),
            state
                .members
                .iter()
                .map(|(m, r)| (account(*m), role_of(*r)))
                .collect(),
            state.members.contains_key(&member(me)),
        )
        .with_rejected(state.rejected.len())
        .with_community(
            state.channels.iter().cloned().collect(),
            state.pinned.iter().map(|m| MessageId(*m)).collect(),
            state.banned.iter().map(|m| account(*m)).collect(),
            join_mode,
        )
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
            sent_at: now_millis(),
            group: Some(GroupControl {
                group: group.0.to_vec(),
                events,
                chain,
                bundles,
                join: None,
            }),
            ..Content::default()
        }
        .encode_to_vec(),
    )
}

/// Content padded so that the group message on the wire fills a size
/// bucket, as pairwise envelopes do.
fn pad(mut content: Content) -> Vec<u8> {
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
        if std::mem::take(&mut self.reload) {
            self.reload(ctx);
        }
    }
}

impl Supervised for Membership {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("membership stage restarting");
        self.reload = true;
    }
}

impl supervise::Restartable for Membership {
    const NAME: &'static str = "membership";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Membership);

impl Handler<Create> for Membership {
    type Result = supervise::Reply<Self, Result<(GroupId, Effects), Error>>;

    fn handle(&mut self, msg: Create, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| {
            if msg.name.len() > murmur_groups::MAX_NAME {
                return Box::pin(fut::ready(Err(Error::Forbidden(format!(
                    "a group name is at most {} bytes",
                    murmur_groups::MAX_NAME
                )))));
            }
            let crypto = this.crypto.clone();
            let max_skip = this.max_skip;
            let sign = async move {
                let me = crypto
                    .identity
                    .send(crypto::Identity)
                    .await
                    .map_err(state_error)??;
                let unsigned = murmur_groups::Unsigned::create(member(me.0), &msg.name);
                let signature = crypto
                    .sign_event
                    .send(crypto::SignEvent(Bytes::from(unsigned.signed_bytes())))
                    .await
                    .map_err(state_error)??;
                Ok::<_, Error>((me, unsigned.sign(signature)))
            };
            Box::pin(sign.into_actor(this).then(move |signed, act, _| {
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
                        act.persist(id, true, (id, effects)).boxed_local()
                    }
                    Err(e) => fut::ready(Err(e)).boxed_local(),
                }
            }))
        })
    }
}

/// What the author of a change must gather before applying it.
struct Prepared {
    me: (AccountId, DeviceId),
    event: murmur_groups::Event,
    /// Bundles of every account involved: the members and the joiner.
    bundles: BTreeMap<AccountId, Vec<Bytes>>,
}

impl Membership {
    /// Signs `action` with the account key (through the crypto stage),
    /// applies it, persists the group, and answers who must hear of it.
    fn author(
        &mut self,
        id: GroupId,
        action: murmur_groups::Action,
    ) -> std::pin::Pin<Box<dyn ActorFuture<Self, Output = Result<Effects, Error>>>> {
        let metrics = self.metrics.clone();
        let prepared = self.group(id).and_then(|group| {
            let mut involved: BTreeSet<AccountId> =
                group.state().members.keys().map(|m| account(*m)).collect();
            if let murmur_groups::Action::Add(m) = &action {
                involved.insert(account(*m));
            }
            let why = refusal(&action);
            let unsigned = group.prepare(action);
            // Refused before it is signed: a refused event in our own log
            // would be cited by our next events, which others could then
            // never place.
            if !group.allows(&unsigned) {
                metrics.refuse("unauthorized");
                return Err(Error::Forbidden(why.to_owned()));
            }
            Ok((unsigned, involved))
        });
        let crypto = self.crypto.clone();
        let gather = async move {
            let (unsigned, involved) = prepared?;
            let me = crypto
                .identity
                .send(crypto::Identity)
                .await
                .map_err(state_error)??;
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
                    .map_err(state_error)??;
                bundles.insert(a, b);
            }
            Ok::<_, Error>(Prepared {
                me,
                event: unsigned.sign(signature),
                bundles,
            })
        };
        Box::pin(gather.into_actor(self).then(move |prepared, act, _| {
            match prepared.and_then(|p| act.apply_own(id, &p)) {
                Ok(effects) => act.persist(id, true, effects).boxed_local(),
                Err(e) => fut::ready(Err(e)).boxed_local(),
            }
        }))
    }
}

impl Handler<Change> for Membership {
    type Result = supervise::Reply<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Change, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| match log_action(msg.action) {
            Ok(action) => {
                if let murmur_groups::Action::Add(m) = &action {
                    if let Some(r) = this.requests.get_mut(&msg.group) {
                        r.remove(&account(*m));
                    }
                }
                this.author(msg.group, action)
            }
            Err(e) => Box::pin(fut::ready(Err(e))),
        })
    }
}

/// An invite code: the group, the admin's account and bundles to write to,
/// and the secret, if it admits by itself.
struct Invite {
    group: GroupId,
    admin: AccountId,
    secret: Option<[u8; 32]>,
    bundles: Vec<Bytes>,
}

impl Invite {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let mut v = Vec::with_capacity(130 + self.bundles.iter().map(Bytes::len).sum::<usize>());
        v.push(1); // version
        v.extend_from_slice(&self.group.0);
        v.extend_from_slice(&self.admin.0);
        match &self.secret {
            Some(s) => {
                v.push(1);
                v.extend_from_slice(s);
            }
            None => v.push(0),
        }
        for b in &self.bundles {
            v.extend_from_slice(&(b.len() as u32).to_be_bytes());
            v.extend_from_slice(b);
        }
        format!(
            "{INVITE_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
        )
    }

    fn decode(code: &str) -> Result<Self, Error> {
        use base64::Engine as _;
        let bad = |why: &str| Error::Malformed(format!("invite code: {why}"));
        let body = code
            .trim()
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(|| bad(&format!("it starts with {INVITE_PREFIX:?}")))?;
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("not base64url"))?;
        let (head, mut rest) = v.split_at_checked(66).ok_or_else(|| bad("too short"))?;
        if head[0] != 1 {
            return Err(bad("unknown version"));
        }
        let group = GroupId(head[1..33].try_into().map_err(|_| bad("group"))?);
        let admin = AccountId(head[33..65].try_into().map_err(|_| bad("admin"))?);
        let secret = match head[65] {
            0 => None,
            1 => {
                let (s, r) = rest.split_at_checked(32).ok_or_else(|| bad("secret"))?;
                rest = r;
                Some(s.try_into().map_err(|_| bad("secret"))?)
            }
            _ => return Err(bad("secret flag")),
        };
        let mut bundles = Vec::new();
        while !rest.is_empty() {
            let (len, r) = rest
                .split_at_checked(4)
                .ok_or_else(|| bad("bundle length"))?;
            let len =
                u32::from_be_bytes(len.try_into().map_err(|_| bad("bundle length"))?) as usize;
            let (b, r) = r.split_at_checked(len).ok_or_else(|| bad("bundle"))?;
            bundles.push(Bytes::copy_from_slice(b));
            rest = r;
        }
        Ok(Self {
            group,
            admin,
            secret,
            bundles,
        })
    }
}

fn invite_hash(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"murmur/invite/v1")
        .chain_update(secret)
        .finalize()
        .into()
}

impl Handler<CreateInvite> for Membership {
    type Result = supervise::Reply<Self, Result<(String, Effects), Error>>;

    fn handle(&mut self, msg: CreateInvite, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| {
            let id = msg.group;
            let crypto = this.crypto.clone();
            let checked = this.group(id).map(|g| g.state().clone());
            let code = async move {
                let state = checked?;
                let me = crypto
                    .identity
                    .send(crypto::Identity)
                    .await
                    .map_err(state_error)??;
                if !state
                    .role(&member(me.0))
                    .is_some_and(murmur_groups::Role::is_admin)
                {
                    return Err(Error::Forbidden("only admins make invite codes".to_owned()));
                }
                let bundles = crypto
                    .bundles
                    .send(crypto::Bundles(me.0))
                    .await
                    .map_err(state_error)??;
                Ok::<_, Error>(Invite {
                    group: id,
                    admin: me.0,
                    secret: msg.admit.then(rand::random::<[u8; 32]>),
                    bundles,
                })
            };
            Box::pin(
                code.into_actor(this)
                    .then(move |invite, act, _| match invite {
                        Ok(invite) => {
                            let code = invite.encode();
                            match invite.secret {
                                Some(secret) => act
                                    .author(id, murmur_groups::Action::Invite(invite_hash(&secret)))
                                    .map(move |effects, _, _| effects.map(|e| (code, e)))
                                    .boxed_local(),
                                None => fut::ready(Ok((code, Effects::default()))).boxed_local(),
                            }
                        }
                        Err(e) => fut::ready(Err(e)).boxed_local(),
                    }),
            )
        })
    }
}

impl Handler<Join> for Membership {
    type Result = Result<(GroupId, Effects), Error>;

    fn handle(&mut self, Join(code): Join, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |_, _| {
            let invite = Invite::decode(&code)?;
            let mut effects = Effects::default();
            effects.learn.push((invite.admin, invite.bundles));
            let request = Content {
                id: rand::random::<[u8; 16]>().to_vec(),
                sent_at: now_millis(),
                group: Some(GroupControl {
                    group: invite.group.0.to_vec(),
                    join: Some(JoinRequest {
                        secret: invite.secret.map(|s| s.to_vec()),
                    }),
                    ..GroupControl::default()
                }),
                ..Content::default()
            };
            effects
                .pairwise
                .push((invite.admin, Bytes::from(request.encode_to_vec())));
            Ok((invite.group, effects))
        })?
    }
}

impl Handler<Requests> for Membership {
    type Result = Result<Vec<AccountId>, Error>;

    fn handle(&mut self, Requests(id): Requests, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.requests
                .get(&id)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default()
        })
        .map_err(Error::from)
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
        let state_before = group.state().clone();
        let (_, effects) = group
            .insert(p.event.clone())
            .map_err(|e| Error::InvalidEvent(e.to_string()))?;
        let state = group.state();
        if state.rejected.len() > state_before.rejected.len() {
            // Signed and logged, but it changes nothing: say why, and tell
            // no one (a rejected event of ours is harmless in others' logs).
            let why = refusal(&p.event.action);
            self.metrics.refuse("unauthorized");
            return Err(Error::Forbidden(why.to_owned()));
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
        out.notices = notices(id, &state_before, state);
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
        if let Some(join) = &control.join {
            return self
                .on_join_request(id, msg.from, me.0, join)
                .map(|e| (id, e));
        }
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
        let state_before = group.state().clone();
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
        if let Some(group) = self.groups.get(&id) {
            effects.notices = notices(id, &state_before, group.state());
        }
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

    /// A request to join, on an admin's device: admitted with a valid
    /// invite secret or in an open group, kept for approval in a group that
    /// asks for it, refused otherwise. Nothing is applied here: an admitted
    /// account is added by the pipeline through [`Change`].
    fn on_join_request(
        &mut self,
        id: GroupId,
        from: AccountId,
        me: AccountId,
        join: &JoinRequest,
    ) -> Result<Effects, Error> {
        let state = self.group(id)?.state();
        if !state
            .role(&member(me))
            .is_some_and(murmur_groups::Role::is_admin)
        {
            return Err(Error::Forbidden("join requests go to admins".to_owned()));
        }
        let mut effects = Effects::default();
        if state.members.contains_key(&member(from)) {
            return Ok(effects);
        }
        if state.banned.contains(&member(from)) {
            self.metrics.refuse("unauthorized");
            return Err(Error::Forbidden(format!("{from} is banned")));
        }
        let invited = join
            .secret
            .as_deref()
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .is_some_and(|s| state.invites.contains(&invite_hash(&s)));
        match state.join_mode {
            _ if invited => effects.admit.push((id, from)),
            murmur_groups::JoinMode::Open => effects.admit.push((id, from)),
            murmur_groups::JoinMode::Approval => {
                let waiting = self.requests.entry(id).or_default();
                if waiting.len() >= MAX_REQUESTS {
                    self.metrics.refuse("unauthorized");
                    return Err(Error::Forbidden("too many join requests wait".to_owned()));
                }
                if waiting.insert(from) {
                    effects.notices.push(Notice::Requested {
                        group: id,
                        account: from,
                    });
                }
            }
            murmur_groups::JoinMode::Invite => {
                self.metrics.refuse("unauthorized");
                return Err(Error::Forbidden(
                    "this group admits by invite code only".to_owned(),
                ));
            }
        }
        Ok(effects)
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
    type Result = supervise::Reply<Self, Result<Effects, Error>>;

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| {
            let identity = this.crypto.identity.clone();
            Box::pin(
                async move {
                    Ok::<_, Error>(
                        identity
                            .send(crypto::Identity)
                            .await
                            .map_err(state_error)??,
                    )
                }
                .into_actor(this)
                .then(move |me, act, _| {
                    match me.and_then(|me| act.apply_control(&msg, me)) {
                        Ok((id, effects)) => act.persist(id, true, effects).boxed_local(),
                        Err(e) => fut::ready(Err(e)).boxed_local(),
                    }
                }),
            )
        })
    }
}

impl Handler<Post> for Membership {
    type Result = supervise::Reply<Self, Result<Sealed, Error>>;

    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| {
            // Padded here, to this stage's size buckets. Only what is exactly
            // a chat content (it reads back to the same bytes) is padded:
            // other bytes go as they are.
            let content = Content::decode(msg.plaintext.as_ref())
                .ok()
                .filter(|c| c.encode_to_vec() == msg.plaintext.as_ref());
            let channel = content.as_ref().and_then(|c| c.channel.clone());
            let plaintext = content.map_or_else(|| msg.plaintext.to_vec(), pad);
            let sealed = this.group(msg.group).and_then(|group| {
                if let Some(channel) = &channel {
                    if !group.state().channels.contains(channel) {
                        return Err(Error::Forbidden(format!("no channel #{channel}")));
                    }
                }
                group
                    .seal(&plaintext)
                    .map_err(|_| Error::NotMember(msg.group))
            });
            match sealed {
                Ok(payload) => {
                    this.metrics.posted.inc();
                    let sealed = Sealed::new(group_topic(msg.group), Bytes::from(payload));
                    Box::pin(this.persist(msg.group, false, sealed))
                }
                Err(e) => Box::pin(fut::ready(Err(e))),
            }
        })
    }
}

impl Handler<Open> for Membership {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        supervise::atomic(self, ctx, |this, _| {
            let opened = this
                .topics
                .get(&delivery.message.content_topic)
                .copied()
                // A group this device is not in (yet): the pipeline keeps it a
                // while, in case the invite is on its way.
                .ok_or(Error::UnknownChain)
                .and_then(|id| {
                    let group = this.group(id)?;
                    let opened = group.open(&delivery.message.payload).map_err(|e| match e {
                        OpenError::UnknownChain => Error::UnknownChain,
                        OpenError::NotMember => Error::NotMember(id),
                        OpenError::Chain(murmur_crypto::group::GroupError::Replay(_)) => Error::Replay,
                        other => Error::Malformed(other.to_string()),
                    })?;
                    let state = group.state();
                    let role = state.role(&opened.sender).map_or(Role::Member, role_of);
                    // What the log deleted stays deleted, whenever a copy comes;
                    // a channel that was never opened has no messages.
                    if let Ok(c) = Content::decode(opened.plaintext.as_slice()) {
                        if <[u8; 16]>::try_from(c.id.as_slice()).is_ok_and(|m| state.deleted.contains(&m)) {
                            return Err(Error::Deleted);
                        }
                        if c.channel.is_some_and(|ch| !state.channels.contains(&ch)) {
                            return Err(Error::Malformed("a channel that is not open".to_owned()));
                        }
                    }
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
                    this.metrics.opened.inc();
                    Box::pin(this.persist(opened.group, false, opened))
                }
                Err(e) => {
                    this.metrics.refuse(match e {
                        Error::UnknownChain => "unknown_chain",
                        Error::Replay => "replay",
                        Error::Deleted => "deleted",
                        Error::NotMember(_) => "not_member",
                        _ => "malformed",
                    });
                    Box::pin(fut::ready(Err(e)))
                }
            }
        })
    }
}

impl Handler<Info> for Membership {
    type Result = supervise::Reply<Self, Result<Summary, Error>>;

    fn handle(&mut self, Info(id): Info, ctx: &mut Context<Self>) -> Self::Result {
        supervise::act_future(self, ctx, |this, _| {
            let identity = this.crypto.identity.clone();
            Box::pin(
                async move {
                    Ok::<_, Error>(
                        identity
                            .send(crypto::Identity)
                            .await
                            .map_err(state_error)??,
                    )
                }
                .into_actor(this)
                .map(move |me, act, _| {
                    let me = me?;
                    let group = act.groups.get(&id).ok_or(Error::UnknownGroup(id))?;
                    Ok(act.summary(id, group, me.0))
                }),
            )
        })
    }
}

impl Handler<List> for Membership {
    type Result = supervise::Reply<Self, Result<Vec<Summary>, Error>>;

    fn handle(&mut self, _: List, ctx: &mut Context<Self>) -> Self::Result {
        supervise::act_future(self, ctx, |this, _| {
            let identity = this.crypto.identity.clone();
            Box::pin(
                async move {
                    Ok::<_, Error>(
                        identity
                            .send(crypto::Identity)
                            .await
                            .map_err(state_error)??,
                    )
                }
                .into_actor(this)
                .map(move |me, act, _| {
                    let me = me?;
                    Ok(act
                        .groups
                        .iter()
                        .filter(|(_, g)| g.log().events().next().is_some())
                        .map(|(id, g)| act.summary(*id, g, me.0))
                        .collect())
                }),
            )
        })
    }
}

impl Handler<Topics> for Membership {
    type Result = Result<Vec<ContentTopic>, Error>;

    fn handle(&mut self, _: Topics, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |this, _| {
            this.groups
                .iter()
                .filter(|(_, g)| g.is_member())
                .map(|(id, _)| group_topic(*id))
                .collect()
        })
        .map_err(Error::from)
    }
}
