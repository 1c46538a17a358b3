//! A minimal Prometheus endpoint: `GET /metrics` on its own port, off by default.

use std::{net::SocketAddr, sync::Arc};

use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::Error;

/// Scrapes served at once.
const MAX_SCRAPES: usize = 8;

/// Binds `address` and serves `registry` until the runtime stops.
pub(crate) async fn serve(
    registry: Arc<Registry>,
    address: SocketAddr,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Error::Metrics {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr().unwrap_or(address);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // The request itself does not matter: every path is /metrics.
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let mut body = String::new();
                if encode(&mut body, &registry).is_err() {
                    return;
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}
