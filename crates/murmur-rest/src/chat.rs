//! murmur's own chat API, beyond nwaku's: the account and its contact code,
//! contacts and message requests, 1:1 conversations, groups and
//! communities, sends with their delivery state, and the inbox read with a
//! cursor (`inbox.rs`). Everything under `/murmur/v1`.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{delete, get, post},
    Router,
};
use murmur_node::chat::{AccountId, DeliveryState, GroupId, JoinMode, MessageId, Sent};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::{
    reply::{json, ok, text, Body},
    Api,
};

pub(crate) mod inbox;
pub(crate) mod json;

/// Sends whose state can be asked for: the newest this many.
const TRACKED: usize = 10_000;

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/murmur/v1/account", get(account))
        .route("/murmur/v1/contacts", get(contacts).post(add_contact))
        .route("/murmur/v1/requests", get(requests))
        .route("/murmur/v1/requests/{account}/{verb}", post(answer_request))
        .route("/murmur/v1/chats/{account}/messages", post(send_direct))
        .route("/murmur/v1/messages/{id}", get(message_state))
        .route("/murmur/v1/groups", get(groups).post(create_group))
        .route("/murmur/v1/communities", post(create_community))
        .route("/murmur/v1/join", post(join))
        .route("/murmur/v1/groups/{id}", get(group))
        .route("/murmur/v1/groups/{id}/members", post(add_member))
        .route(
            "/murmur/v1/groups/{id}/members/{account}",
            delete(remove_member),
        )
        .route("/murmur/v1/groups/{id}/invite", get(invite))
        .route("/murmur/v1/groups/{id}/channels", post(open_channel))
        .route("/murmur/v1/groups/{id}/messages", post(send_group))
        .route("/murmur/v1/inbox", get(inbox::poll))
        .route("/murmur/v1/inbox/ack", post(inbox::ack))
        .route("/murmur/v1/inbox/stream", get(inbox::stream))
}

/// The delivery state of recent sends, by id.
#[derive(Default)]
pub(crate) struct Tracked {
    inner: Mutex<Recent>,
}

/// Each send's state, and the order they came in (the oldest go first).
#[derive(Default)]
struct Recent {
    states: HashMap<MessageId, watch::Receiver<DeliveryState>>,
    order: VecDeque<MessageId>,
}

impl Tracked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, sent: &Sent) {
        let mut recent = self.lock();
        if recent.states.insert(sent.id, sent.watch()).is_none() {
            recent.order.push_back(sent.id);
        }
        while recent.order.len() > TRACKED {
            if let Some(old) = recent.order.pop_front() {
                recent.states.remove(&old);
            }
        }
    }

    fn state(&self, id: &MessageId) -> Option<DeliveryState> {
        self.lock().states.get(id).map(|rx| rx.borrow().clone())
    }
}

/// The answer a node error deserves: refused for what was asked (4xx),
/// or the node could not do it (5xx).
pub(crate) fn failure(e: &murmur_node::Error) -> Response {
    use murmur_node::Error as E;
    let status = match e {
        E::ChatDisabled => StatusCode::NOT_FOUND,
        E::Crypto(murmur_core::crypto::Error::UnknownContact(_)) => StatusCode::NOT_FOUND,
        E::Crypto(_) | E::Group(_) | E::Topic(_) | E::Dropped { .. } => StatusCode::BAD_REQUEST,
        E::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(status, e.to_string())
}

fn account_id(raw: &str) -> Result<AccountId, Response> {
    raw.parse().map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            format!("`{raw}` is not an account (32 bytes of hex)"),
        )
    })
}

fn group_id(raw: &str) -> Result<GroupId, Response> {
    raw.parse().map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            format!("`{raw}` is not a group id"),
        )
    })
}

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(refusal) => return refusal,
        }
    };
}

macro_rules! node {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v,
            Err(e) => return failure(&e),
        }
    };
}

async fn account(State(api): State<Api>) -> Response {
    let (account, device) = node!(api.node.chat_identity());
    let code = node!(api.node.contact_code());
    json(
        StatusCode::OK,
        &json!({"account": account.to_string(), "device": device.to_string(), "contactCode": code}),
    )
}

async fn contacts(State(api): State<Api>) -> Response {
    let contacts = node!(api.node.contacts());
    let listed: Vec<_> = contacts
        .iter()
        .map(|a| json!({"account": a.to_string()}))
        .collect();
    json(StatusCode::OK, &listed)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

async fn add_contact(State(api): State<Api>, Body(code): Body<Code>) -> Response {
    let account = node!(api.node.add_contact(code.code.trim()));
    json(StatusCode::OK, &json!({"account": account.to_string()}))
}

async fn requests(State(api): State<Api>) -> Response {
    let waiting = node!(api.node.requests());
    let listed: Vec<_> = waiting
        .iter()
        .map(|a| json!({"account": a.to_string()}))
        .collect();
    json(StatusCode::OK, &listed)
}

async fn answer_request(
    State(api): State<Api>,
    Path((account, verb)): Path<(String, String)>,
) -> Response {
    let account = attempt!(account_id(&account));
    match verb.as_str() {
        "accept" => node!(api.node.accept(account)),
        "decline" => node!(api.node.decline(account)),
        "block" => node!(api.node.block(account)),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("`{verb}`: a request is answered with accept, decline or block"),
            )
        }
    }
    ok()
}

fn sent(api: &Api, sent: &Sent) -> Response {
    api.chat.keep(sent);
    json(
        StatusCode::ACCEPTED,
        &json::Sent {
            id: sent.id.to_string(),
            state: json::state(&sent.state()),
        },
    )
}

async fn send_direct(
    State(api): State<Api>,
    Path(account): Path<String>,
    Body(send): Body<json::Send>,
) -> Response {
    let account = attempt!(account_id(&account));
    if send.channel.is_some() {
        return text(StatusCode::BAD_REQUEST, "a 1:1 message has no channel");
    }
    let (body, id) = attempt!(send
        .parts()
        .map_err(|why| text(StatusCode::BAD_REQUEST, why)));
    let conversation = api.node.conversation(account);
    let result = match id {
        Some(id) => conversation.send_as(id, body).await,
        None => conversation.send(body).await,
    };
    match result {
        Ok(s) => sent(&api, &s),
        Err(e) => failure(&e),
    }
}

async fn message_state(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<MessageId>() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not a message id (16 bytes of hex)"),
        );
    };
    match api.chat.state(&id) {
        Some(state) => json(
            StatusCode::OK,
            &json::Sent {
                id: id.to_string(),
                state: json::state(&state),
            },
        ),
        None => text(
            StatusCode::NOT_FOUND,
            "no send of this id since the server started (the newest 10,000 are kept)",
        ),
    }
}

async fn groups(State(api): State<Api>) -> Response {
    let groups = node!(api.node.groups());
    let listed: Vec<_> = groups.iter().map(json::group).collect();
    json(StatusCode::OK, &listed)
}

async fn group(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let id = attempt!(group_id(&id));
    let info = node!(api.node.group(id).info());
    json(StatusCode::OK, &json::group(&info))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
}

async fn create_group(State(api): State<Api>, Body(new): Body<NewGroup>) -> Response {
    if new.name.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "a group needs a name");
    }
    let group = node!(api.node.create_group(&new.name));
    json(StatusCode::CREATED, &json!({"id": group.id().to_string()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewCommunity {
    name: String,
    #[serde(default)]
    channels: Vec<String>,
    join_mode: Option<String>,
}

async fn create_community(State(api): State<Api>, Body(new): Body<NewCommunity>) -> Response {
    if new.name.trim().is_empty() {
        return text(StatusCode::BAD_REQUEST, "a community needs a name");
    }
    let mode = match new.join_mode.as_deref().unwrap_or("invite") {
        "invite" => JoinMode::Invite,
        "open" => JoinMode::Open,
        "approval" => JoinMode::Approval,
        other => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("joinMode `{other}`: invite, open or approval"),
            )
        }
    };
    let channels: Vec<&str> = new.channels.iter().map(String::as_str).collect();
    let group = node!(api.node.create_community(&new.name, &channels, mode));
    json(StatusCode::CREATED, &json!({"id": group.id().to_string()}))
}

async fn join(State(api): State<Api>, Body(code): Body<Code>) -> Response {
    let group = node!(api.node.join(code.code.trim()));
    json(StatusCode::OK, &json!({"group": group.to_string()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    account: String,
}

async fn add_member(
    State(api): State<Api>,
    Path(id): Path<String>,
    Body(member): Body<Member>,
) -> Response {
    let id = attempt!(group_id(&id));
    let account = attempt!(account_id(&member.account));
    node!(api.node.group(id).add(account));
    ok()
}

async fn remove_member(
    State(api): State<Api>,
    Path((id, account)): Path<(String, String)>,
) -> Response {
    let id = attempt!(group_id(&id));
    let account = attempt!(account_id(&account));
    node!(api.node.group(id).remove(account));
    ok()
}

async fn invite(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let id = attempt!(group_id(&id));
    let code = node!(api.node.group(id).invite_code());
    json(StatusCode::OK, &json!({"code": code}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewChannel {
    name: String,
}

async fn open_channel(
    State(api): State<Api>,
    Path(id): Path<String>,
    Body(channel): Body<NewChannel>,
) -> Response {
    let id = attempt!(group_id(&id));
    node!(api.node.group(id).open_channel(channel.name));
    ok()
}

async fn send_group(
    State(api): State<Api>,
    Path(id): Path<String>,
    Body(send): Body<json::Send>,
) -> Response {
    let id = attempt!(group_id(&id));
    let channel = send.channel.clone();
    let (body, message_id) = attempt!(send
        .parts()
        .map_err(|why| text(StatusCode::BAD_REQUEST, why)));
    let group = api.node.group(id);
    let result = match (channel, message_id) {
        (Some(channel), None) => group.channel(channel).send(body).await,
        (Some(_), Some(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "an id of the client's own is not taken in a channel yet: leave it out",
            )
        }
        (None, Some(message_id)) => group.send_as(message_id, body).await,
        (None, None) => group.send(body).await,
    };
    match result {
        Ok(s) => sent(&api, &s),
        Err(e) => failure(&e),
    }
}
