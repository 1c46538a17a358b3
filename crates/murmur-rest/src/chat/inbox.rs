//! The chat inbox over HTTP, at least once: a named consumer is a durable
//! subscriber of the node's inbox (`Node::durable_inbox`), so what it was
//! handed and did not acknowledge comes again, on its next read and after
//! a restart of the node; what it acknowledged never does.
//!
//! Read it by long-poll (`GET /murmur/v1/inbox?consumer=NAME&after=SEQ&wait=30`:
//! `after` acknowledges everything up to `SEQ`, the cursor of the previous
//! answer) or as server-sent events (`GET /murmur/v1/inbox/stream`, each
//! event's id its sequence; a reconnect with `Last-Event-ID` acknowledges
//! up to it). `POST /murmur/v1/inbox/ack` acknowledges without reading.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use murmur_node::{
    chat::{Durable, Entry},
    Node,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::{
    chat::failure,
    reply::{json, ok, text, Body},
    Api,
};

/// Consumers one server keeps at most.
const MAX_CONSUMERS: usize = 64;
/// The longest a long-poll waits.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Messages in one answer, at most.
const MAX_LIMIT: usize = 1000;
/// Messages handed out and not acknowledged, at most: a consumer that
/// never acknowledges gets the same ones again, not more.
const MAX_PENDING: usize = 1000;

/// The durable subscriber behind a consumer's name, and what it was
/// handed that it has not acknowledged.
pub(crate) struct Consumer {
    durable: Durable,
    pending: VecDeque<Entry>,
}

impl Consumer {
    /// Acknowledges everything up to `seq`.
    pub(crate) async fn ack(&mut self, seq: u64) -> Result<(), murmur_node::Error> {
        if seq > self.durable.position() {
            self.durable.done(seq).await?;
        }
        self.pending.retain(|e| e.seq > seq);
        Ok(())
    }

    /// Up to `limit` messages: those handed out and not acknowledged
    /// first, then new ones, waiting up to `wait` if there are none.
    pub(crate) async fn read(&mut self, limit: usize, wait: Duration) -> Vec<Entry> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.pending.len() < limit.min(MAX_PENDING) {
            // Waits only while there is nothing to answer with; then takes
            // what is there at once.
            let until = if self.pending.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + Duration::from_millis(5)
            };
            match tokio::time::timeout_at(until, self.durable.recv()).await {
                Ok(Some(entry)) => self.pending.push_back(entry),
                Ok(None) | Err(_) => break,
            }
        }
        self.pending.iter().take(limit).cloned().collect()
    }

    /// The position saved.
    pub(crate) fn position(&self) -> u64 {
        self.durable.position()
    }
}

/// A server's consumers by name.
#[derive(Default)]
pub(crate) struct Consumers {
    map: Mutex<HashMap<String, Arc<Mutex<Consumer>>>>,
}

impl Consumers {
    /// The consumer `name`, attached on first use.
    pub(crate) async fn get(
        &self,
        node: &Node,
        name: &str,
    ) -> Result<Arc<Mutex<Consumer>>, Response> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(text(
                StatusCode::BAD_REQUEST,
                format!("consumer `{name}`: 1 to 64 letters, digits, '-', '_' or '.'"),
            ));
        }
        let mut map = self.map.lock().await;
        if let Some(consumer) = map.get(name) {
            return Ok(consumer.clone());
        }
        if map.len() >= MAX_CONSUMERS {
            return Err(text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("at most {MAX_CONSUMERS} consumers per node"),
            ));
        }
        let durable = node
            .durable_inbox(&format!("rest/{name}"))
            .await
            .map_err(|e| failure(&e))?;
        let consumer = Arc::new(Mutex::new(Consumer {
            durable,
            pending: VecDeque::new(),
        }));
        map.insert(name.to_owned(), consumer.clone());
        Ok(consumer)
    }
}

fn default_consumer() -> String {
    "default".to_owned()
}

/// The query, and the consumer it names; or the refusal.
async fn named<T>(
    api: &Api,
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
    name: impl Fn(&T) -> &String,
) -> Result<(T, Arc<Mutex<Consumer>>), Response> {
    let Query(query) = query.map_err(|e| text(StatusCode::BAD_REQUEST, e.body_text()))?;
    let consumer = api.consumers.get(&api.node, name(&query)).await?;
    Ok((query, consumer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Poll {
    #[serde(default = "default_consumer")]
    consumer: String,
    after: Option<u64>,
    wait: Option<u64>,
    limit: Option<usize>,
}

/// `GET /murmur/v1/inbox`.
pub(crate) async fn poll(
    State(api): State<Api>,
    query: Result<Query<Poll>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (query, consumer) = match named(&api, query, |q| &q.consumer).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let mut consumer = consumer.lock().await;
    if let Some(after) = query.after {
        if let Err(e) = consumer.ack(after).await {
            return failure(&e);
        }
    }
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let entries = consumer.read(limit, wait).await;
    let cursor = entries.last().map_or(consumer.position(), |e| e.seq);
    let messages: Vec<_> = entries
        .iter()
        .map(|e| super::json::message(e.seq, &e.message))
        .collect();
    json(
        StatusCode::OK,
        &json!({"messages": messages, "cursor": cursor}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ack {
    #[serde(default = "default_consumer")]
    consumer: String,
    seq: u64,
}

/// `POST /murmur/v1/inbox/ack`.
pub(crate) async fn ack(State(api): State<Api>, Body(ack): Body<Ack>) -> Response {
    let consumer = match api.consumers.get(&api.node, &ack.consumer).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let mut consumer = consumer.lock().await;
    match consumer.ack(ack.seq).await {
        Ok(()) => ok(),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stream {
    #[serde(default = "default_consumer")]
    consumer: String,
}

/// `GET /murmur/v1/inbox/stream`: server-sent events.
pub(crate) async fn stream(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<Stream>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (_, consumer) = match named(&api, query, |q| &q.consumer).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    {
        let mut c = consumer.lock().await;
        if let Some(seq) = last {
            if let Err(e) = c.ack(seq).await {
                return failure(&e);
            }
        }
    }
    // What was handed out and not acknowledged comes first; the lock is
    // held for one read at a time, so acknowledgements get in between.
    let events = futures::stream::unfold((consumer, 0u64), |(consumer, sent)| async move {
        loop {
            let entry = {
                let mut c = consumer.lock().await;
                let next = c.pending.iter().find(|e| e.seq > sent).cloned();
                match next {
                    Some(entry) => Some(entry),
                    None => match tokio::time::timeout(Duration::from_secs(15), c.durable.recv())
                        .await
                    {
                        Ok(Some(entry)) => {
                            if c.pending.len() < MAX_PENDING {
                                c.pending.push_back(entry.clone());
                            }
                            Some(entry)
                        }
                        Ok(None) => return None,
                        Err(_) => None,
                    },
                }
            };
            if let Some(entry) = entry {
                let event = Event::default()
                    .id(entry.seq.to_string())
                    .event("message")
                    .data(super::json::message(entry.seq, &entry.message).to_string());
                return Some((Ok::<_, Infallible>(event), (consumer, entry.seq)));
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
