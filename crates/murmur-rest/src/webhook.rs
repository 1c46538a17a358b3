//! Webhook bots: every decrypted chat message POSTed to a URL, signed,
//! at least once and in order, from a durable position; the reply taken
//! from the response.
//!
//! The POST carries the message as the inbox shows it
//! (`/murmur/v1/inbox`'s JSON) and three headers: `x-murmur-delivery` (its
//! sequence: the same on every try), `x-murmur-timestamp` (Unix seconds)
//! and `x-murmur-signature` (`sha256=` and the hex HMAC-SHA256, keyed with
//! the secret, of `TIMESTAMP.BODY`). A 2xx answer takes the message: its
//! body, if it is JSON with `reply` (a text) or `replies` (texts), is sent
//! back to the conversation, group or channel the message came from, under
//! ids derived from the message, so that a reply sent again after a crash
//! is kept once. Anything else, or no answer, is tried again after 1 s,
//! then 2, 4, up to `max_backoff_secs`, for as long as it takes: the
//! messages after it wait. The position moves past a message only once its
//! bot took it and its replies are in the outbox.

use std::time::Duration;

use hmac::{Hmac, Mac};
use murmur_node::{
    chat::{Body, ChatMessage, MessageId},
    Node,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The durable subscriber the webhook reads the inbox with.
pub const CONSUMER: &str = "webhook";

/// A running webhook: it delivers until dropped.
#[derive(Debug)]
pub struct Webhook {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts delivering `node`'s chat messages as `[webhook]` says; `None`
/// when no URL is configured.
pub async fn start(node: &Node) -> Result<Option<Webhook>, crate::Error> {
    let config = node.config().webhook.clone();
    let (Some(url), Some(secret)) = (config.url.clone(), config.secret.clone()) else {
        return Ok(None);
    };
    let mut inbox = node.durable_inbox(CONSUMER).await?;
    if config.skip_backlog && inbox.position() == 0 {
        inbox.skip_to_end().await?;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs))
        .build()
        .map_err(|e| crate::Error::Client(e.to_string()))?;
    let me = node.chat_identity().await?.0;
    tracing::info!(url = %url, "delivering chat messages to the webhook");
    let sender = Sender {
        node: node.clone(),
        client,
        url,
        key: secret.expose().as_bytes().to_vec(),
        max_backoff: Duration::from_secs(config.max_backoff_secs),
    };
    let task = tokio::spawn(async move {
        while let Some(entry) = inbox.recv().await {
            // Its own messages (copies from this account's other devices)
            // are not the bot's to answer.
            if entry.message.sender != me {
                sender.deliver(entry.seq, &entry.message).await;
            }
            if let Err(e) = inbox.done(entry.seq).await {
                tracing::warn!(error = %e, seq = entry.seq, "webhook position not saved");
            }
        }
    });
    Ok(Some(Webhook { task }))
}

struct Sender {
    node: Node,
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
    max_backoff: Duration,
}

/// What a bot may answer.
#[derive(Deserialize, Default)]
struct Answer {
    reply: Option<String>,
    #[serde(default)]
    replies: Vec<String>,
}

impl Sender {
    /// Tries until the bot takes the message, then sends its replies.
    async fn deliver(&self, seq: u64, message: &ChatMessage) {
        let body = crate::chat::json::message(seq, message).to_string();
        let mut backoff = Duration::from_secs(1);
        let answer = loop {
            match self.post(seq, &body).await {
                Ok(answer) => break answer,
                Err(why) => {
                    tracing::warn!(seq, %why, retry_in = ?backoff, "webhook did not take a message");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        };
        let texts = answer.reply.into_iter().chain(answer.replies);
        for (n, text) in texts.enumerate().filter(|(_, t)| !t.is_empty()) {
            let id = reply_id(message, n);
            if let Err(e) = self.reply(message, id, Body::Text(text)).await {
                tracing::warn!(seq, error = %e, "webhook reply not sent");
            }
        }
    }

    async fn post(&self, seq: u64, body: &str) -> Result<Answer, String> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-murmur-delivery", seq.to_string())
            .header("x-murmur-timestamp", &timestamp)
            .header(
                "x-murmur-signature",
                format!("sha256={}", sign(&self.key, &timestamp, body)),
            )
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let text = response.text().await.unwrap_or_default();
        // An answer that is not a reply (empty, plain text) takes the
        // message all the same.
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    async fn reply(
        &self,
        to: &ChatMessage,
        id: MessageId,
        body: Body,
    ) -> Result<(), murmur_node::Error> {
        match (to.group, &to.channel) {
            (Some(group), Some(channel)) => {
                self.node
                    .group(group)
                    .channel(channel.clone())
                    .send(body)
                    .await?;
            }
            (Some(group), None) => {
                self.node.group(group).send_as(id, body).await?;
            }
            (None, _) => {
                self.node.conversation(to.sender).send_as(id, body).await?;
            }
        }
        Ok(())
    }
}

/// The signature a webhook request carries (`x-murmur-signature` is
/// `sha256=` and this): the hex HMAC-SHA256, keyed with the secret, of the
/// `x-murmur-timestamp` header, a dot and the body. A bot written in Rust
/// checks a request with it (in constant time).
pub fn sign(key: &[u8], timestamp: &str, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The id of the `n`th reply to `message`: the same on every try.
fn reply_id(message: &ChatMessage, n: usize) -> MessageId {
    let digest = Sha256::new()
        .chain_update(b"murmur/webhook-reply/v1")
        .chain_update(message.sender.0)
        .chain_update(message.id.0)
        .chain_update((n as u64).to_be_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    MessageId(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The HMAC itself: RFC 4231's test case 2 (no dot in its data, so
        // checked through the MAC directly).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // What a bot checks: Python's hmac.new(b"Jefe", b'1700000000.{"text":"hi"}', sha256).
        assert_eq!(
            sign(b"Jefe", "1700000000", r#"{"text":"hi"}"#),
            "78c16fb1347cc108e4fe45972cb2c71d070d22cb5c714af583367a3b7d491ce5"
        );
    }
}
