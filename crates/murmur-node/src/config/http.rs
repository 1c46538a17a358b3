//! The node's HTTP side: `[metrics]`, `[rest]` and `[webhook]`. Both are served by
//! `murmur-rest` (`murmur node` starts them); the node itself opens no
//! HTTP port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The Prometheus endpoint, off by default: `GET /metrics` on a port of its
/// own (nwaku's metrics server; the REST API serves it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Where.
    pub address: SocketAddr,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], 8008)),
        }
    }
}

/// The REST API, off by default: nwaku's endpoints as a real nwaku node
/// answers them, with its defaults (`--rest`, `--rest-address`,
/// `--rest-port`, `--rest-admin`, `--rest-allow-origin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rest {
    /// Serve it.
    pub enabled: bool,
    /// The address it listens on.
    pub address: IpAddr,
    /// Its port (0: any free one).
    pub port: u16,
    /// Serve `/admin/v1/*` (peers, dialling): off unless asked, as in nwaku.
    pub admin: bool,
    /// Origins a browser page may call it from (`*` and `?` wildcards;
    /// `*` alone allows every origin). Empty: no CORS headers, and no
    /// request is refused for its origin.
    pub allow_origin: Vec<String>,
    /// A bearer token every request but `/health` must carry
    /// (`Authorization: Bearer TOKEN`). None: no token is asked for, as in
    /// nwaku; keep the address on loopback then.
    pub token: Option<Token>,
    /// Messages kept per subscribed topic for `GET /relay/v1/messages` and
    /// `/filter/v2/messages` between two reads (nwaku keeps 50).
    pub relay_cache_capacity: usize,
}

impl Default for Rest {
    fn default() -> Self {
        Self {
            enabled: false,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8645,
            admin: false,
            allow_origin: Vec::new(),
            token: None,
            relay_cache_capacity: 50,
        }
    }
}

/// Webhook bots, off by default: every decrypted chat message POSTed to
/// `url` (JSON, signed with HMAC-SHA256 of `secret`), at least once, from
/// a durable position that survives restarts; the reply taken from the
/// response. Served by `murmur-rest` (`murmur node --webhook URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhook {
    /// Where to POST each message (`http://`); none turns webhooks off.
    pub url: Option<String>,
    /// The HMAC key the bot checks signatures with: at least 16 printable
    /// characters; set it with `MURMUR_WEBHOOK__SECRET` rather than here.
    pub secret: Option<Token>,
    /// How long one POST may take.
    pub timeout_secs: u64,
    /// The longest wait between two tries of a message the bot did not
    /// take (the wait doubles from 1 s up to this).
    pub max_backoff_secs: u64,
    /// At the first start, skip what the inbox already holds (a new bot
    /// does not answer old messages); later starts resume where the bot
    /// stopped either way.
    pub skip_backlog: bool,
}

impl Default for Webhook {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            timeout_secs: 10,
            max_backoff_secs: 60,
            skip_backlog: true,
        }
    }
}

impl Webhook {
    /// The key and the problem of the first bad setting.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return Err((
                "webhook.url",
                format!("`{url}` is not an http:// URL (put a TLS proxy in front for https)"),
            ));
        }
        match &self.secret {
            Some(secret) if token_ok(secret) => {}
            _ => {
                return Err((
                    "webhook.secret",
                    "a webhook needs a secret of at least 16 printable characters, no spaces (MURMUR_WEBHOOK__SECRET)".to_owned(),
                ))
            }
        }
        if self.timeout_secs == 0 || self.max_backoff_secs == 0 {
            return Err((
                "webhook.timeout_secs",
                "timeouts and backoff are at least 1 second".to_owned(),
            ));
        }
        Ok(())
    }
}

fn token_ok(token: &Token) -> bool {
    token.0.len() >= 16 && token.0.chars().all(|c| c.is_ascii_graphic())
}

/// The most messages a REST cache may keep per topic.
const MAX_CACHE: usize = 100_000;

impl Rest {
    /// Where it listens.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// The key and the problem of the first bad setting.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.relay_cache_capacity == 0 || self.relay_cache_capacity > MAX_CACHE {
            return Err((
                "rest.relay_cache_capacity",
                format!(
                    "{} is not between 1 and {MAX_CACHE}",
                    self.relay_cache_capacity
                ),
            ));
        }
        if let Some(token) = &self.token {
            if !token_ok(token) {
                return Err((
                    "rest.token",
                    "a token is at least 16 printable characters, no spaces".to_owned(),
                ));
            }
        }
        if let Some(origin) = self.allow_origin.iter().find(|o| o.trim().is_empty()) {
            return Err((
                "rest.allow_origin",
                format!("`{origin}` is empty; `*` allows every origin"),
            ));
        }
        Ok(())
    }
}

/// A secret: shown as `<token>` in Debug output, so that no log holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// A token of these characters.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, to compare a request's against.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<token>")
    }
}
