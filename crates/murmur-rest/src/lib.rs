//! murmur's HTTP side: nwaku's REST API, answered as a real nwaku node
//! answers it (paths, field names, base64 payloads, `0x` hashes, status
//! codes and plain-text error bodies), and `/metrics`.
//!
//! `murmur node --rest` serves it on 127.0.0.1:8645, nwaku's default; an
//! application that runs a [`Node`] of its own serves it with [`serve`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = murmur_node::Config::new("murmur-data");
//! config.rest.enabled = true;
//! config.rest.port = 0; // any free port
//! let node = murmur_node::Builder::new(config).start().await?;
//! let server = murmur_rest::serve(&node).await?;
//! println!("curl http://{}/debug/v1/info", server.addr());
//! # Ok(()) }
//! ```
//!
//! The endpoints, what each answers and where murmur differs from nwaku:
//! `docs/rest-api.md`; the OpenAPI document is served at `/openapi.json`.
//! A request that is wrong gets a 4xx with the reason in its body, never a
//! 500: a 5xx says the node could not do what was asked (a store node did
//! not answer, the node is shutting down).

// Request parsing hands back the refusal itself, a `Response` (128
// bytes): the error path of an HTTP request, where moving it costs nothing
// that matters, and boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{any, get},
    Router,
};
use murmur_node::Node;
use thiserror::Error;

mod admin;
mod cache;
mod chat;
mod filter;
mod guard;
mod info;
mod lightpush;
mod message;
mod relay;
mod reply;
mod store;
pub mod webhook;

/// The largest request body read (nwaku's limit: 16,384 KiB); a message
/// itself is held to the network's 150 KiB.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a server did not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be bound (in use, not this machine's).
    #[error("cannot serve HTTP on {address}: {reason}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The node refused what the server needs of it (it is shutting down).
    #[error(transparent)]
    Node(#[from] murmur_node::Error),
    /// The HTTP client the webhook posts with could not be built.
    #[error("cannot build the webhook's HTTP client: {0}")]
    Client(String),
}

/// A running server: it serves until dropped (or until the runtime stops).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What every handler holds.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) node: Node,
    pub(crate) caches: Arc<cache::Caches>,
    /// The delivery state of recent chat sends.
    pub(crate) chat: Arc<chat::Tracked>,
    /// The chat inbox's consumers.
    pub(crate) consumers: Arc<chat::inbox::Consumers>,
}

/// Serves the REST API of `node` where its configuration says (`[rest]`:
/// address, port, admin endpoints, token, CORS origins).
pub async fn serve(node: &Node) -> Result<Server, Error> {
    let config = node.config().rest.clone();
    let caches = Arc::new(cache::Caches::new(config.relay_cache_capacity));
    let api = Api {
        node: node.clone(),
        caches: caches.clone(),
        chat: Arc::default(),
        consumers: Arc::default(),
    };
    let router = routes(node)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard::Guard::new(&config)),
            guard::check,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api);
    let mut subscription = node.subscribe_all().await?;
    let feed = tokio::spawn(async move {
        while let Some(delivery) = subscription.recv().await {
            caches.offer(&delivery);
        }
    });
    let mut server = listen(config.socket_addr(), router).await?;
    server.tasks.push(feed);
    tracing::info!(address = %server.addr, "serving the REST API");
    Ok(server)
}

/// Serves `/metrics` alone on `address` (nwaku's metrics server,
/// `[metrics]`).
pub async fn serve_metrics(node: &Node, address: SocketAddr) -> Result<Server, Error> {
    let router = Router::new()
        .route("/metrics", get(info::metrics))
        .fallback(|| async { reply::text(StatusCode::NOT_FOUND, "Try /metrics") })
        .with_state(Api {
            node: node.clone(),
            caches: Arc::new(cache::Caches::new(1)),
            chat: Arc::default(),
            consumers: Arc::default(),
        });
    let server = listen(address, router).await?;
    tracing::info!(address = %server.addr, "serving metrics at /metrics");
    Ok(server)
}

async fn listen(address: SocketAddr, router: Router) -> Result<Server, Error> {
    let bind = |e: std::io::Error| Error::Bind {
        address,
        reason: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(address).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(Server {
        addr,
        tasks: vec![task],
    })
}

/// Every route, with the namespaces this node does not run answering as
/// nwaku's do when they are not installed.
fn routes(node: &Node) -> Router<Api> {
    let config = node.config();
    let light = config.network.light;
    let unavailable = |message: &'static str| {
        any(move || async move { reply::text(StatusCode::NOT_FOUND, message) })
    };
    let bad_path = || async {
        reply::text(
            StatusCode::BAD_REQUEST,
            "Bad request initiated. Invalid path or method used.",
        )
    };
    let mut router = Router::new()
        .route("/health", get(info::health))
        .route("/debug/v1/info", get(info::info))
        .route("/info", get(info::info))
        .route("/debug/v1/version", get(info::version))
        .route("/version", get(info::version))
        .route("/metrics", get(info::metrics))
        .route("/openapi.json", get(info::openapi))
        .route("/store/v3/messages", get(store::messages));
    router = if light {
        router.route(
            "/relay/{*rest}",
            unavailable(
                "/relay endpoints are not available. Please check your configuration: --relay",
            ),
        )
    } else {
        router.merge(relay::routes())
    };
    router = if light {
        router.merge(filter::routes())
    } else {
        router.route(
            "/filter/{*rest}",
            unavailable("/filter endpoints are not available."),
        )
    };
    router = if light || config.network.lightpush {
        router.merge(lightpush::routes())
    } else {
        router.route(
            "/lightpush/{*rest}",
            unavailable("/lightpush endpoints are not available."),
        )
    };
    router = if config.chat.enabled {
        router.merge(chat::routes())
    } else {
        router.route(
            "/murmur/{*rest}",
            unavailable("chat is disabled on this node (chat.enabled = false)"),
        )
    };
    router = if config.rest.admin {
        router.merge(admin::routes())
    } else {
        router.route(
            "/admin/{*rest}",
            unavailable(
                "/admin endpoints are not available. Please check your configuration: --rest-admin=true",
            ),
        )
    };
    router
        .fallback(bad_path)
        .method_not_allowed_fallback(bad_path)
}
