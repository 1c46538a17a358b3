//! One request and one response per stream, each a length-prefixed frame: the
//! shape of every Waku request/response protocol, server and client side.

use std::{future::Future, time::Duration};

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use murmur_proto::lp;

/// js-waku pre-opens a stream per protocol right after identify and may use
/// it minutes later: a patient read keeps its first request working.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests served at once, per protocol.
const MAX_CONCURRENT: usize = 32;

/// The request id to echo: the request's own, or `N/A` (nwaku's word) when
/// it has none or could not be read.
pub(crate) fn echo_id(request_id: &str) -> String {
    if request_id.is_empty() {
        "N/A".to_owned()
    } else {
        request_id.to_owned()
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The peer does not speak the protocol.
    Unsupported,
    /// Anything else: the stream, the frame, the time.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported => f.write_str("the peer does not support the protocol"),
            Self::Other(reason) => f.write_str(reason),
        }
    }
}

/// Serves `incoming`: reads one request of at most `max_request` bytes, hands
/// it (or the read error) to `answer`, writes what it returns, and closes the
/// stream, which js-waku waits for. A stream that closes unused or times out
/// is dropped quietly.
pub(crate) async fn serve<F, Fut>(incoming: IncomingStreams, max_request: usize, answer: F)
where
    F: Fn(PeerId, Result<Vec<u8>, murmur_proto::Error>) -> Fut,
    Fut: Future<Output = Option<Vec<u8>>>,
{
    incoming
        .for_each_concurrent(MAX_CONCURRENT, |(peer, mut stream)| {
            let answer = &answer;
            async move {
                let Ok(request) =
                    tokio::time::timeout(READ_TIMEOUT, lp::read(&mut stream, max_request)).await
                else {
                    return;
                };
                if matches!(request, Err(murmur_proto::Error::UnexpectedEof)) {
                    return;
                }
                if let Some(response) = answer(peer, request).await {
                    if let Err(e) = lp::write(&mut stream, &response).await {
                        tracing::debug!(%peer, error = %e, "response not written");
                    }
                }
                let _ = stream.close().await;
            }
        })
        .await;
}

/// Sends one request to `peer` and reads one response of at most
/// `max_response` bytes, within `timeout`.
pub(crate) async fn request(
    control: &mut Control,
    peer: PeerId,
    protocol: StreamProtocol,
    request: &[u8],
    max_response: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let other = |e: &dyn std::fmt::Display| Failure::Other(e.to_string());
    let exchange = async {
        let mut stream = match control.open_stream(peer, protocol).await {
            Ok(s) => s,
            Err(OpenStreamError::UnsupportedProtocol(_)) => return Err(Failure::Unsupported),
            Err(e) => return Err(other(&e)),
        };
        lp::write(&mut stream, request)
            .await
            .map_err(|e| other(&e))?;
        let response = lp::read(&mut stream, max_response)
            .await
            .map_err(|e| other(&e))?;
        let _ = stream.close().await;
        Ok(response)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(Failure::Other("timed out".to_owned())))
}
