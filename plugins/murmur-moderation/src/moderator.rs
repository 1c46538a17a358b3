//! The moderator, sans I/O: every decision from the message, the time given
//! and what it has seen.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    fmt,
    time::{Duration, Instant},
};

use murmur_core::{
    chat::{ChatMessage, MessageId, Target},
    crypto::AccountId,
    groups::{GroupId, Role},
    hook::BoxError,
};
use regex::Regex;
use serde::Deserialize;

use crate::command::AdminCommand;

/// Senders whose recent messages are remembered; the oldest are forgotten
/// beyond it.
const MAX_SENDERS: usize = 10_000;
/// Deleted message ids remembered.
const MAX_DELETED: usize = 10_000;

/// At most `messages` within `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// How many.
    pub messages: u32,
    /// Within how long.
    pub seconds: u64,
}

impl Window {
    fn duration(self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

/// `[plugins.moderation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Most messages a member sends in a window, per conversation; more are
    /// dropped.
    pub rate: Option<Window>,
    /// A burst in one conversation that counts as a flood: its sender is
    /// muted (everywhere) for `mute_seconds` and what it sends meanwhile is
    /// dropped.
    pub flood: Option<Window>,
    /// The same text from the same member more than `messages` times within
    /// `seconds`: the repeats are dropped.
    pub duplicates: Option<Window>,
    /// Words (case-insensitive) that drop a message.
    pub words: Vec<String>,
    /// Regular expressions that drop a message they match.
    pub patterns: Vec<String>,
    /// Accounts (64 hex digits) banned from the start.
    pub banned: Vec<String>,
    /// Accounts (64 hex digits) whose admin commands are honoured anywhere,
    /// beside the admins of each group.
    pub admins: Vec<String>,
    /// How long a mute lasts when it does not say.
    pub mute_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate: None,
            flood: None,
            duplicates: None,
            words: Vec::new(),
            patterns: Vec::new(),
            banned: Vec::new(),
            admins: Vec::new(),
            mute_seconds: 600,
        }
    }
}

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The sender is banned.
    Banned,
    /// The sender is muted.
    Muted,
    /// More than the rate allows.
    RateLimited,
    /// A flood: the sender is muted now.
    Flood,
    /// A repeat of the same text.
    Duplicate,
    /// A filtered word.
    Word(String),
    /// A filtered pattern.
    Pattern(String),
    /// An admin command from someone whose role does not allow it.
    NotAllowed(&'static str),
    /// An admin command with bad arguments (the sender gets the usage).
    BadCommand(String),
    /// A copy of a message a moderator deleted.
    Deleted,
}

impl Reason {
    /// A short label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Banned => "banned",
            Self::Muted => "muted",
            Self::RateLimited => "rate_limited",
            Self::Flood => "flood",
            Self::Duplicate => "duplicate",
            Self::Word(_) => "word",
            Self::Pattern(_) => "pattern",
            Self::NotAllowed(_) => "not_allowed",
            Self::BadCommand(_) => "bad_command",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "filtered word {w:?}"),
            Self::Pattern(p) => write!(f, "filtered pattern {p:?}"),
            Self::NotAllowed(c) => write!(f, "/{c} is for admins"),
            Self::BadCommand(e) => f.write_str(e),
            other => f.write_str(other.label()),
        }
    }
}

/// What the moderator needs someone with the group's rights (or a voice in
/// the chat) to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Remove `account` from `group`.
    Kick {
        /// The group.
        group: GroupId,
        /// Who.
        account: AccountId,
    },
    /// Ban `account` from `group`: removed, and kept out.
    Ban {
        /// The group.
        group: GroupId,
        /// Who.
        account: AccountId,
    },
    /// Delete `message` for every member: in a group, through its log
    /// (every member's node then refuses it); in a 1:1 chat, with a
    /// deletion notice.
    Delete {
        /// Where.
        target: Target,
        /// Which.
        message: MessageId,
    },
    /// Answer a command politely.
    Reply {
        /// Where.
        target: Target,
        /// What.
        text: String,
    },
}

#[derive(Debug, Default)]
struct Recent {
    times: VecDeque<Instant>,
    texts: VecDeque<(Instant, String)>,
}

/// Decides about each message.
pub struct Moderator {
    settings: Settings,
    words: Vec<String>,
    patterns: Vec<Regex>,
    admins: BTreeSet<AccountId>,
    banned: BTreeSet<AccountId>,
    muted: HashMap<AccountId, Instant>,
    deleted: BTreeSet<MessageId>,
    deleted_order: VecDeque<MessageId>,
    /// Per member and conversation: a flood in one group says nothing
    /// about another.
    recent: HashMap<(AccountId, Target), Recent>,
    actions: Vec<Action>,
    counts: BTreeMap<&'static str, u64>,
}

impl fmt::Debug for Moderator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Moderator")
            .field("banned", &self.banned.len())
            .field("muted", &self.muted.len())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

fn account(s: &str, what: &str) -> Result<AccountId, BoxError> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut id)
        .map_err(|_| format!("{what}: {s:?} is not an account (64 hex digits)"))?;
    Ok(AccountId(id))
}

impl Moderator {
    /// A moderator; a pattern that does not compile or an account that is
    /// not 64 hex digits is an error naming it.
    pub fn new(settings: Settings) -> Result<Self, BoxError> {
        let patterns = settings
            .patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("patterns: {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        let banned = settings
            .banned
            .iter()
            .map(|a| account(a, "banned"))
            .collect::<Result<_, _>>()?;
        let admins = settings
            .admins
            .iter()
            .map(|a| account(a, "admins"))
            .collect::<Result<_, _>>()?;
        for (name, w) in [
            ("rate", settings.rate),
            ("flood", settings.flood),
            ("duplicates", settings.duplicates),
        ] {
            if w.is_some_and(|w| w.messages == 0 || w.seconds == 0) {
                return Err(format!("{name}: messages and seconds are at least 1").into());
            }
        }
        Ok(Self {
            words: settings.words.iter().map(|w| w.to_lowercase()).collect(),
            patterns,
            admins,
            banned,
            settings,
            muted: HashMap::new(),
            deleted: BTreeSet::new(),
            deleted_order: VecDeque::new(),
            recent: HashMap::new(),
            actions: Vec::new(),
            counts: BTreeMap::new(),
        })
    }

    /// Whether `message` may reach the inboxes at `now`; an admin command
    /// it carries is applied.
    pub fn check(&mut self, message: &ChatMessage, now: Instant) -> Result<(), Reason> {
        let verdict = self.decide(message, now);
        if let Err(reason) = &verdict {
            *self.counts.entry(reason.label()).or_default() += 1;
        }
        verdict
    }

    fn decide(&mut self, m: &ChatMessage, now: Instant) -> Result<(), Reason> {
        if self.banned.contains(&m.sender) {
            return Err(Reason::Banned);
        }
        if self.deleted.contains(&m.id) {
            return Err(Reason::Deleted);
        }
        let admin = m.role.is_some_and(Role::moderates) || self.admins.contains(&m.sender);
        if let Some(id) = m.deletes() {
            if !admin {
                return Err(Reason::NotAllowed("delete"));
            }
            self.delete(id);
            return Ok(());
        }
        if let Some(parsed) = m.text().and_then(AdminCommand::parse) {
            let command = match &parsed {
                Ok(c) => command_name(c),
                Err(e) => e.command,
            };
            if !admin {
                return Err(Reason::NotAllowed(command));
            }
            return match parsed {
                Ok(c) => {
                    self.apply(c, m, now);
                    Ok(())
                }
                Err(e) => {
                    self.actions.push(Action::Reply {
                        target: m.reply_target(),
                        text: e.to_string(),
                    });
                    Err(Reason::BadCommand(e.to_string()))
                }
            };
        }
        if admin {
            // Moderators are not filtered: they clean up, they do not spam.
            return Ok(());
        }
        if let Some(until) = self.muted.get(&m.sender) {
            if now < *until {
                return Err(Reason::Muted);
            }
            self.muted.remove(&m.sender);
        }
        if let Some(text) = m.text() {
            let lower = text.to_lowercase();
            if let Some(w) = self.words.iter().find(|w| lower.contains(w.as_str())) {
                return Err(Reason::Word(w.clone()));
            }
            if let Some(p) = self.patterns.iter().find(|p| p.is_match(text)) {
                return Err(Reason::Pattern(p.as_str().to_owned()));
            }
        }
        self.remember(m, now);
        let recent = self
            .recent
            .get(&(m.sender, m.reply_target()))
            .expect("remembered above");
        let within = |w: Window| {
            recent
                .times
                .iter()
                .filter(|t| now.duration_since(**t) <= w.duration())
                .count()
        };
        if let Some(flood) = self.settings.flood {
            if within(flood) > flood.messages as usize {
                let until = now + Duration::from_secs(self.settings.mute_seconds);
                self.muted.insert(m.sender, until);
                return Err(Reason::Flood);
            }
        }
        if let Some(rate) = self.settings.rate {
            if within(rate) > rate.messages as usize {
                return Err(Reason::RateLimited);
            }
        }
        if let (Some(d), Some(text)) = (self.settings.duplicates, m.text()) {
            let same = recent
                .texts
                .iter()
                .filter(|(t, s)| s == text && now.duration_since(*t) <= d.duration())
                .count();
            if same > d.messages as usize {
                return Err(Reason::Duplicate);
            }
        }
        Ok(())
    }

    fn remember(&mut self, m: &ChatMessage, now: Instant) {
        let key = (m.sender, m.reply_target());
        if self.recent.len() >= MAX_SENDERS && !self.recent.contains_key(&key) {
            // Forget whoever was quiet longest.
            let quiet = self
                .recent
                .iter()
                .min_by_key(|(_, r)| r.times.back().copied())
                .map(|(a, _)| *a);
            if let Some(a) = quiet {
                self.recent.remove(&a);
            }
        }
        let keep = [
            self.settings.rate,
            self.settings.flood,
            self.settings.duplicates,
        ]
        .into_iter()
        .flatten()
        .map(|w| w.messages as usize + 1)
        .max()
        .unwrap_or(1);
        let recent = self.recent.entry(key).or_default();
        recent.times.push_back(now);
        if recent.times.len() > keep {
            recent.times.pop_front();
        }
        if let Some(text) = m.text() {
            recent.texts.push_back((now, text.to_owned()));
            if recent.texts.len() > keep {
                recent.texts.pop_front();
            }
        }
    }

    fn apply(&mut self, command: AdminCommand, m: &ChatMessage, now: Instant) {
        let kick = |account| m.group.map(|group| Action::Kick { group, account });
        match command {
            AdminCommand::Ban(a) => {
                self.banned.insert(a);
                if let Some(group) = m.group {
                    self.actions.push(Action::Ban { group, account: a });
                }
            }
            AdminCommand::Unban(a) => {
                self.banned.remove(&a);
            }
            AdminCommand::Kick(a) => match kick(a) {
                Some(k) => self.actions.push(k),
                None => self.actions.push(Action::Reply {
                    target: m.reply_target(),
                    text: "/kick works in a group".to_owned(),
                }),
            },
            AdminCommand::Mute(a, seconds) => {
                let secs = seconds.unwrap_or(self.settings.mute_seconds);
                self.muted.insert(a, now + Duration::from_secs(secs));
            }
            AdminCommand::Delete(id) => {
                self.delete(id);
                self.actions.push(Action::Delete {
                    target: m.reply_target(),
                    message: id,
                });
            }
        }
    }

    /// Drops every later copy of `id`.
    pub fn delete(&mut self, id: MessageId) {
        if self.deleted.insert(id) {
            self.deleted_order.push_back(id);
            if self.deleted_order.len() > MAX_DELETED {
                if let Some(old) = self.deleted_order.pop_front() {
                    self.deleted.remove(&old);
                }
            }
        }
    }

    /// Bans `account` (for a bot's own use).
    pub fn ban(&mut self, account: AccountId) {
        self.banned.insert(account);
    }

    /// Whether `account` is banned.
    pub fn is_banned(&self, account: &AccountId) -> bool {
        self.banned.contains(account)
    }

    /// Whether `account` is muted at `now`.
    pub fn is_muted(&self, account: &AccountId, now: Instant) -> bool {
        self.muted.get(account).is_some_and(|until| now < *until)
    }

    /// Actions waiting to be carried out, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// How many messages were dropped for each reason ([`Reason::label`]).
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }
}

fn command_name(c: &AdminCommand) -> &'static str {
    match c {
        AdminCommand::Ban(_) => "ban",
        AdminCommand::Unban(_) => "unban",
        AdminCommand::Kick(_) => "kick",
        AdminCommand::Mute(..) => "mute",
        AdminCommand::Delete(_) => "delete",
    }
}
