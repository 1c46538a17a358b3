//! What the chat client keeps beside the node's own state, in the node's
//! database (application state): the names given to contacts, and the last
//! lines of each conversation for `/history`.

use std::{collections::BTreeMap, sync::Mutex};

use murmur_node::{
    chat::{AccountId, ChatMessage, GroupId},
    Node,
};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

const NAMES: &str = "chat/names";
/// Lines kept per conversation.
const KEPT: usize = 200;

/// One line of a conversation's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Line {
    /// Sent by this account.
    pub(crate) mine: bool,
    /// The other side of a 1:1 conversation, or the sender in a group.
    pub(crate) who: String,
    /// The group, for a group's line.
    pub(crate) group: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) text: String,
}

impl Line {
    pub(crate) fn sent(to: AccountId, text: &str) -> Self {
        Self {
            mine: true,
            who: to.to_string(),
            group: None,
            channel: None,
            text: text.to_owned(),
        }
    }

    pub(crate) fn sent_in(group: GroupId, channel: Option<String>, text: &str) -> Self {
        Self {
            mine: true,
            who: String::new(),
            group: Some(group.to_string()),
            channel,
            text: text.to_owned(),
        }
    }

    pub(crate) fn received(message: &ChatMessage, text: &str) -> Self {
        Self {
            mine: false,
            who: message.sender.to_string(),
            group: message.group.map(|g| g.to_string()),
            channel: message.channel.clone(),
            text: text.to_owned(),
        }
    }

    /// The conversation it belongs to.
    fn conversation(&self) -> String {
        match &self.group {
            Some(group) => format!("chat/history/group/{group}"),
            None => format!("chat/history/{}", self.who),
        }
    }
}

/// Contacts' names and the histories.
pub(crate) struct Book {
    names: Mutex<BTreeMap<AccountId, String>>,
}

impl Book {
    pub(crate) async fn load(node: &Node) -> Result<Self, CliError> {
        let names: BTreeMap<String, String> = match node.load_app_state(NAMES).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let names = names
            .into_iter()
            .filter_map(|(account, name)| Some((account.parse().ok()?, name)))
            .collect();
        Ok(Self {
            names: Mutex::new(names),
        })
    }

    fn names(&self) -> std::sync::MutexGuard<'_, BTreeMap<AccountId, String>> {
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Names `account` `name` (a name already given to another moves).
    pub(crate) async fn name(
        &self,
        node: &Node,
        account: AccountId,
        name: &str,
    ) -> Result<(), CliError> {
        let saved: BTreeMap<String, String> = {
            let mut names = self.names();
            names.retain(|_, n| n != name);
            names.insert(account, name.to_owned());
            names
                .iter()
                .map(|(a, n)| (a.to_string(), n.clone()))
                .collect()
        };
        let bytes = serde_json::to_vec(&saved).map_err(|e| CliError::Failed(e.to_string()))?;
        node.save_app_state(NAMES, Some(bytes)).await?;
        Ok(())
    }

    /// How `account` is shown: its name, or the start of its id.
    pub(crate) fn label(&self, account: AccountId) -> String {
        self.names()
            .get(&account)
            .cloned()
            .unwrap_or_else(|| super::short(account))
    }

    /// A group's name.
    pub(crate) async fn group_label(&self, node: &Node, group: GroupId) -> String {
        match node.group(group).info().await {
            Ok(info) => info.name,
            Err(_) => group.to_string()[..8].to_owned(),
        }
    }

    /// The contact `what` names: a name given here, a whole account id, or
    /// the start of one contact's id.
    pub(crate) async fn find(&self, node: &Node, what: &str) -> Result<AccountId, CliError> {
        if let Some((account, _)) = self.names().iter().find(|(_, n)| *n == what) {
            return Ok(*account);
        }
        if let Ok(account) = what.parse::<AccountId>() {
            return Ok(account);
        }
        let what = what.to_ascii_lowercase();
        let mut matches = node
            .contacts()
            .await?
            .into_iter()
            .chain(node.requests().await?)
            .filter(|a| !what.is_empty() && a.to_string().starts_with(&what));
        match (matches.next(), matches.next()) {
            (Some(account), None) => Ok(account),
            (Some(_), Some(_)) => Err(CliError::Usage(format!(
                "`{what}` is the start of more than one contact: give more of it"
            ))),
            (None, _) => Err(CliError::Usage(format!(
                "no contact is named or starts with `{what}`: /contacts lists them"
            ))),
        }
    }

    /// Keeps `line` in its conversation's history.
    pub(crate) async fn record(&self, node: &Node, line: &Line) -> Result<(), CliError> {
        let key = line.conversation();
        let mut lines = self.lines(node, &key).await?;
        lines.push(line.clone());
        let excess = lines.len().saturating_sub(KEPT);
        lines.drain(..excess);
        let bytes = serde_json::to_vec(&lines).map_err(|e| CliError::Failed(e.to_string()))?;
        node.save_app_state(&key, Some(bytes)).await?;
        Ok(())
    }

    async fn lines(&self, node: &Node, key: &str) -> Result<Vec<Line>, CliError> {
        Ok(match node.load_app_state(key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Vec::new(),
        })
    }

    /// The last lines with `account`.
    pub(crate) async fn history(
        &self,
        node: &Node,
        account: AccountId,
    ) -> Result<Vec<Line>, CliError> {
        self.lines(node, &format!("chat/history/{account}")).await
    }

    /// The last lines in `group`.
    pub(crate) async fn group_history(
        &self,
        node: &Node,
        group: GroupId,
    ) -> Result<Vec<Line>, CliError> {
        self.lines(node, &format!("chat/history/group/{group}"))
            .await
    }
}
