//! One request and one response per stream, each a length-prefixed frame: the
//! shape of every Waku request/response protocol, server and client side.

use std::{future::Future, time::Duration};

use futures::{stream::FuturesUnordered, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, OpenStreamError};
use tokio::sync::Semaphore;

use crate::inbound::Incoming;
use murmur_proto::lp;

/// js-waku pre-opens a stream per protocol right after identify and may use
/// it minutes later: a patient read keeps its first request working.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests worked on at once, per protocol; the others wait their turn.
const MAX_CONCURRENT: usize = 32;
/// Streams held at once per protocol (idle, read, waiting or answered):
/// past this a stream is read and refused with the protocol's own "too
/// many requests".
const MAX_OPEN: usize = 1024;
/// Streams being refused at once; past this a stream is reset.
const MAX_REFUSING: usize = 256;
/// How long a refused stream's request may take to arrive.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// How a server answers a request and refuses one when it is full.
pub(crate) trait Answer: Sync {
    /// Answers one request (or its read error); `None` closes the stream
    /// without an answer.
    fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> impl Future<Output = Option<Vec<u8>>> + Send;

    /// The protocol's own "too many requests" answer to `request`.
    fn busy(&self, request: &[u8]) -> Option<Vec<u8>>;
}

/// Serves `incoming`: every stream is taken at once, its request of at most
/// `max_request` bytes read and answered (at most [`MAX_CONCURRENT`] at a
/// time, the others waiting in arrival order), and the stream closed, which
/// js-waku waits for. Past [`MAX_OPEN`] streams a request gets the
/// protocol's "too many requests"; only past that too is a stream reset.
/// A stream that closes unused or times out is dropped quietly.
pub(crate) async fn serve(mut incoming: Incoming, max_request: usize, server: impl Answer) {
    let permits = Semaphore::new(MAX_CONCURRENT);
    let mut open = FuturesUnordered::new();
    let mut refusing = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = incoming.recv() => {
                let Some((peer, stream)) = next else { break };
                if open.len() < MAX_OPEN {
                    open.push(answer_one(peer, stream, max_request, &server, &permits));
                } else if refusing.len() < MAX_REFUSING {
                    refusing.push(refuse(peer, stream, max_request, &server));
                } else {
                    tracing::warn!(%peer, "too many requests at once, stream reset");
                }
            }
            Some(()) = open.next(), if !open.is_empty() => {}
            Some(()) = refusing.next(), if !refusing.is_empty() => {}
        }
    }
}

async fn answer_one(
    peer: PeerId,
    mut stream: Stream,
    max_request: usize,
    server: &impl Answer,
    permits: &Semaphore,
) {
    let Ok(request) = tokio::time::timeout(READ_TIMEOUT, lp::read(&mut stream, max_request)).await
    else {
        return;
    };
    if matches!(request, Err(murmur_proto::Error::UnexpectedEof)) {
        return;
    }
    // Never closed, so acquiring only waits.
    let Ok(_permit) = permits.acquire().await else {
        return;
    };
    let response = server.answer(peer, request).await;
    respond(peer, stream, response).await;
}

async fn refuse(peer: PeerId, mut stream: Stream, max_request: usize, server: &impl Answer) {
    let Ok(Ok(request)) =
        tokio::time::timeout(REFUSE_TIMEOUT, lp::read(&mut stream, max_request)).await
    else {
        return;
    };
    tracing::debug!(%peer, "request refused: too many at once");
    respond(peer, stream, server.busy(&request)).await;
}

async fn respond(peer: PeerId, mut stream: Stream, response: Option<Vec<u8>>) {
    if let Some(response) = response {
        if let Err(e) = lp::write(&mut stream, &response).await {
            tracing::debug!(%peer, error = %e, "response not written");
        }
    }
    let _ = stream.close().await;
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
