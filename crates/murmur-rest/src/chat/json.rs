//! murmur's chat objects in JSON: ids as hex, bytes as base64, times in
//! milliseconds, camelCase fields.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use murmur_node::chat::{Body, ChatMessage, DeliveryState, MessageId, Role, Summary};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A role's name.
pub(crate) fn role(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Moderator => "moderator",
        _ => "member",
    }
}

/// A message that arrived, with its place in the inbox.
pub(crate) fn message(seq: u64, m: &ChatMessage) -> Value {
    let mut value = json!({
        "seq": seq,
        "id": m.id.to_string(),
        "sender": m.sender.to_string(),
        "device": m.device.to_string(),
        "to": m.to.to_string(),
        "sentAt": m.sent_at,
        "request": m.request,
    });
    match &m.body {
        Body::Text(text) => value["text"] = Value::from(text.as_str()),
        Body::Typed { kind, data } => {
            value["kind"] = Value::from(kind.as_str());
            value["data"] = Value::from(STANDARD.encode(data));
        }
        _ => {}
    }
    if let Some(group) = m.group {
        value["group"] = Value::from(group.to_string());
    }
    if let Some(channel) = &m.channel {
        value["channel"] = Value::from(channel.as_str());
    }
    if let Some(r) = m.role {
        value["role"] = Value::from(role(r));
    }
    value
}

/// Where a sent message is.
pub(crate) fn state(state: &DeliveryState) -> Value {
    match state {
        DeliveryState::Queued => json!({"state": "queued"}),
        DeliveryState::Published { envelopes } => {
            json!({"state": "published", "envelopes": envelopes})
        }
        DeliveryState::Acknowledged { devices } => {
            json!({"state": "acknowledged", "devices": devices})
        }
        DeliveryState::Failed(reason) => json!({"state": "failed", "reason": reason}),
        _ => json!({"state": "unknown"}),
    }
}

/// A group as its summary tells it.
pub(crate) fn group(g: &Summary) -> Value {
    json!({
        "id": g.id.to_string(),
        "name": g.name,
        "member": g.member,
        "members": g.members.iter().map(|(a, r)| json!({"account": a.to_string(), "role": role(*r)})).collect::<Vec<_>>(),
        "channels": g.channels,
        "banned": g.banned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "joinMode": format!("{:?}", g.join_mode).to_lowercase(),
    })
}

/// What a client sends: a text, or a typed payload; with an id of its
/// own, a send retried after a lost answer is kept once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Send {
    text: Option<String>,
    kind: Option<String>,
    data: Option<String>,
    id: Option<String>,
    /// A community's channel (group sends only).
    pub(crate) channel: Option<String>,
}

impl Send {
    /// The body and the id asked for, or why there is none.
    pub(crate) fn parts(self) -> Result<(Body, Option<MessageId>), String> {
        let id = self
            .id
            .map(|id| {
                id.parse::<MessageId>()
                    .map_err(|_| format!("id `{id}` is not 16 bytes of hex"))
            })
            .transpose()?;
        let body = match (self.text, self.kind, self.data) {
            (Some(text), None, None) if !text.is_empty() => Body::Text(text),
            (None, Some(kind), Some(data)) if !kind.is_empty() => Body::Typed {
                kind,
                data: STANDARD
                    .decode(&data)
                    .map_err(|e| format!("data is not base64: {e}"))?
                    .into(),
            },
            _ => {
                return Err(
                    "give a non-empty \"text\", or \"kind\" and \"data\" (base64)".to_owned(),
                )
            }
        };
        Ok((body, id))
    }
}

/// A sent message's answer.
#[derive(Serialize)]
pub(crate) struct Sent {
    pub(crate) id: String,
    #[serde(flatten)]
    pub(crate) state: Value,
}
