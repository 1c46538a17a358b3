//! The membership stage: private groups. A thin actor around the sans-I/O
//! [`murmur_groups::Group`] (the log, its state and join policy, group
//! keys) and [`murmur_groups::Invite`]: it asks the crypto stage to sign events with
//! the account key and for the bundles of accounts to introduce, persists
//! each group (sealed with the vault key) through the storage stage, and
//! answers the pipeline what to publish.

use std::collections::{BTreeMap, BTreeSet};

use actix::prelude::*;
use bytes::Bytes;
use murmur_core::{
    chat::MessageId,
    commit::Commits,
    crypto::{self, AccountId, DeviceId, Sealed},
    groups::{
        Action, Change, Control, Create, CreateInvite, Effects, Error, GroupId, Info, Join,
        JoinMode, List, Notice, Open, Opened, Post, RequestKey, Requests, Revoked, Role, Summary,
        Topics,
    },
    storage,
    supervise::{self, Later},
    ContentTopic, Delivery,
};
use murmur_crypto::group::ChainId;
use murmur_crypto::{envelope, Vault};
use murmur_groups::{invite, Admission, Group, Invite, MemberId, OpenError};
use murmur_proto::chat::{AccountBundles, ChainRequest, Content, GroupControl, JoinRequest};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message as _;

mod actor;
mod apply;
mod batch;
use apply::Shipment;
mod journal;
mod metrics;
mod repair;
mod state;
use state::list_state;

pub use metrics::Metrics;

const MAILBOX: usize = 1024;
/// Groups held that no event has arrived for yet (keys that came before
/// the invite); more are refused.
const MAX_SHELLS: usize = 32;
const STATE: &str = "groups/";

/// The vault's tip record over the groups' entries (rollback detection).
fn tip() -> String {
    format!("{STATE}ledger")
}
/// Bytes a group message adds to its plaintext (version, chain id,
/// iteration, signature, tag), so that what is on the wire fills a bucket.
const OVERHEAD: usize = 1 + 16 + 4 + 64 + 16;

pub use murmur_core::groups::{topic as group_topic, TOPIC_PREFIX};

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An answer known now, as one on its way.
fn now<T: 'static>(answer: Result<T, Error>) -> Later<Result<T, Error>> {
    Box::pin(std::future::ready(answer))
}

/// `answer`, its time from `started` to when it is given observed in
/// `seconds` if it succeeded (a write that failed is not the step's time).
fn timed<T: 'static>(
    seconds: prometheus_client::metrics::histogram::Histogram,
    started: std::time::Instant,
    answer: Later<Result<T, Error>>,
) -> Later<Result<T, Error>> {
    Box::pin(async move {
        let answer = answer.await;
        if answer.is_ok() {
            seconds.observe(started.elapsed().as_secs_f64());
        }
        answer
    })
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
    /// Heads a message named that this device asked its sender's log for:
    /// asked once each, not on every message until the log comes.
    asked: BTreeSet<(GroupId, murmur_groups::EventId)>,
    /// Chain keys asked for again, and answered: limited.
    repair: repair::Repair,
    /// Logs to send, once their members' bundles are gathered.
    shipments: Vec<Shipment>,
    /// Restarted after a panic: the groups are read back from storage first.
    reload: bool,
    /// What requests changed, written a group at a time.
    saving: Commits<Error>,
    /// Groups changed since the last group was taken to be written, and
    /// whether their logs changed too.
    dirty: BTreeMap<GroupId, bool>,
    fuse: supervise::Fuse,
}

/// Join requests kept per group; more are refused until some are handled.
const MAX_REQUESTS: usize = 256;
/// Log heads a group message carries at most (and is read for).
const MAX_HEADS: usize = 16;
/// Heads asked about, remembered at most.
const MAX_ASKED: usize = 4096;
/// How an invite code starts.
pub use murmur_groups::invite::PREFIX as INVITE_PREFIX;

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
        A::Promote(_) | A::Demote(_) => "only the owner makes and unmakes admins",
        A::Unban(_) => {
            "only moderators and above, and a ban only by the role that set it or a higher one"
        }
        A::Pin(_) | A::Unpin(_) | A::Delete(_) => {
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
            asked: BTreeSet::new(),
            repair: repair::Repair::default(),
            shipments: Vec::new(),
            reload: false,
            saving: Commits::default(),
            dirty: BTreeMap::new(),
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
        self.vault.verify(&tip(), &entries).map_err(state_error)?;
        for (name, value) in entries {
            if name == tip() {
                continue;
            }
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

    /// This device's account and device, as the crypto stage knows them.
    fn me(
        &self,
    ) -> impl std::future::Future<Output = Result<(AccountId, DeviceId), Error>> + 'static {
        let identity = self.crypto.identity.clone();
        async move {
            identity
                .send(crypto::Identity)
                .await
                .map_err(state_error)?
                .map_err(Error::from)
        }
    }

    /// Whether to ask for the log of group `id`, whose message named
    /// `missing` heads this device lacks: once per head.
    fn ask_for(&mut self, id: GroupId, missing: Vec<murmur_groups::EventId>) -> bool {
        if self.asked.len() >= MAX_ASKED {
            self.asked.clear();
        }
        let mut new = false;
        for head in missing {
            new |= self.asked.insert((id, head));
        }
        new
    }

    fn insert_group(&mut self, group: Group) {
        let id = gid(group.id());
        self.topics.insert(group_topic(id).as_str().to_owned(), id);
        self.groups.insert(id, group);
    }

    fn group(&mut self, id: GroupId) -> Result<&mut Group, Error> {
        self.groups.get_mut(&id).ok_or(Error::UnknownGroup(id))
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
        .with_equivocators(
            group
                .log()
                .equivocators()
                .iter()
                .map(|m| account(*m))
                .collect(),
        )
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
    control(GroupControl {
        group: group.0.to_vec(),
        events,
        chain,
        bundles,
        ..GroupControl::default()
    })
}

fn control(group: GroupControl) -> Bytes {
    Bytes::from(
        Content {
            id: rand::random::<[u8; 16]>().to_vec(),
            sent_at: now_millis(),
            group: Some(group),
            ..Content::default()
        }
        .encode_to_vec(),
    )
}

/// Asks a member for its log: this device saw heads it lacks.
fn want_message(group: GroupId) -> Bytes {
    control(GroupControl {
        group: group.0.to_vec(),
        want: true,
        ..GroupControl::default()
    })
}

/// Asks the members for the key of `chain`, from message `iteration` on,
/// naming this device's log `heads`.
fn chain_request_message(
    group: GroupId,
    chain: ChainId,
    iteration: u32,
    heads: Vec<Vec<u8>>,
) -> Bytes {
    control(GroupControl {
        group: group.0.to_vec(),
        chain_request: Some(ChainRequest {
            chain: chain.0.to_vec(),
            iteration,
            heads,
        }),
        ..GroupControl::default()
    })
}

/// What of a group's log goes to a joiner or a member that asks, encoded.
fn shipped(log: &murmur_groups::Log) -> Vec<Vec<u8>> {
    log.shipped().into_iter().map(|e| e.to_bytes()).collect()
}

/// Event bytes in one control message at most: an envelope (150 KiB on
/// the relay, with padding and sealing around it) always carries it.
const CHUNK: usize = 64 * 1024;

/// A whole log (events in the group's order) as control messages of at
/// most [`CHUNK`] bytes of events each, the first carrying `chain` and
/// `bundles`: a joiner gets the group however long its history.
fn log_messages(
    group: GroupId,
    events: &[Vec<u8>],
    chain: Option<Vec<u8>>,
    bundles: Vec<AccountBundles>,
) -> Vec<Bytes> {
    let mut chunks: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let mut size = 0;
    for e in events {
        if size + e.len() > CHUNK && !chunks.last().is_some_and(Vec::is_empty) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += e.len();
        chunks
            .last_mut()
            .expect("one chunk at least")
            .push(e.clone());
    }
    let mut first = Some((chain, bundles));
    chunks
        .into_iter()
        .map(|events| {
            let (chain, bundles) = first.take().unwrap_or_default();
            control_message(group, events, chain, bundles)
        })
        .collect()
}

fn pad(mut content: Content) -> Vec<u8> {
    let len = content.encoded_len();
    let target = envelope::bucket(len + OVERHEAD + 3).saturating_sub(OVERHEAD);
    // The padding field costs a tag and a length varint of its own.
    let fill = target.saturating_sub(len + 1 + prost::length_delimiter_len(target));
    content.padding = Some(vec![0; fill]);
    content.encode_to_vec()
}
