//! 66/WAKU2-METADATA over libp2p-stream: we ask every new peer for its cluster
//! and shards, and answer whoever asks us.

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use murmur_proto::{lp, metadata::Metadata, protocol};
use prost::Message as _;
use tokio::sync::mpsc;

/// js-waku pre-opens streams and may leave them idle for minutes; a patient
/// read timeout keeps its later request working.
const INBOUND_READ_TIMEOUT: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT_INBOUND: usize = 64;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new(protocol::METADATA);

/// What the metadata tasks report to the swarm task.
#[derive(Debug)]
pub(crate) enum Report {
    /// Our request to `peer` completed.
    Answer {
        peer: PeerId,
        result: Result<Metadata, Failure>,
    },
    /// `peer` asked us, telling its own metadata.
    Asked { peer: PeerId, theirs: Metadata },
}

#[derive(Debug)]
pub(crate) enum Failure {
    /// The peer does not speak metadata (js-waku relay-only peers, old nodes).
    Unsupported,
    Other(String),
}

/// Asks `peer` for its metadata, telling ours.
pub(crate) async fn request(
    mut control: Control,
    peer: PeerId,
    ours: Metadata,
    reports: mpsc::Sender<Report>,
) {
    let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut stream = match control.open_stream(peer, PROTOCOL).await {
            Ok(s) => s,
            Err(OpenStreamError::UnsupportedProtocol(_)) => return Err(Failure::Unsupported),
            Err(e) => return Err(Failure::Other(e.to_string())),
        };
        let io = |e: murmur_proto::Error| Failure::Other(e.to_string());
        lp::write(&mut stream, &ours.encode_to_vec())
            .await
            .map_err(io)?;
        let frame = lp::read(&mut stream, murmur_proto::metadata::MAX_LEN)
            .await
            .map_err(io)?;
        let _ = stream.close().await;
        Metadata::decode_frame(&frame).map_err(io)
    })
    .await
    .unwrap_or_else(|_| Err(Failure::Other("timed out".to_owned())));
    let _ = reports.send(Report::Answer { peer, result }).await;
}

/// Answers every inbound metadata request with `ours`, a bounded number at a time.
pub(crate) async fn serve(
    incoming: IncomingStreams,
    ours: Metadata,
    reports: mpsc::Sender<Report>,
) {
    incoming
        .for_each_concurrent(MAX_CONCURRENT_INBOUND, |(peer, mut stream)| {
            let ours = ours.clone();
            let reports = reports.clone();
            async move {
                let read = tokio::time::timeout(
                    INBOUND_READ_TIMEOUT,
                    lp::read(&mut stream, murmur_proto::metadata::MAX_LEN),
                )
                .await;
                let theirs = match read {
                    Ok(Ok(frame)) => match Metadata::decode_frame(&frame) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "malformed metadata request");
                            return;
                        }
                    },
                    // A pre-opened stream closed unused: nothing to answer.
                    Ok(Err(murmur_proto::Error::UnexpectedEof)) => return,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "metadata request failed");
                        return;
                    }
                    Err(_) => return,
                };
                if let Err(e) = lp::write(&mut stream, &ours.encode_to_vec()).await {
                    tracing::debug!(%peer, error = %e, "metadata response failed");
                    return;
                }
                let _ = stream.close().await;
                let _ = reports.send(Report::Asked { peer, theirs }).await;
            }
        })
        .await;
}
