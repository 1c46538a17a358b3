//! 66/WAKU2-METADATA over libp2p-stream: we ask every new peer for its cluster
//! and shards, and answer whoever asks us.

use std::time::Duration;

use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::Control;

use crate::inbound::Incoming;
use murmur_proto::{metadata::Metadata, protocol};
use prost::Message as _;
use tokio::sync::mpsc;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

pub(crate) use crate::rpc::Failure;

/// Asks `peer` for its metadata, telling ours.
pub(crate) async fn request(
    mut control: Control,
    peer: PeerId,
    ours: Metadata,
    reports: mpsc::Sender<Report>,
) {
    let result = crate::rpc::request(
        &mut control,
        peer,
        PROTOCOL,
        &ours.encode_to_vec(),
        murmur_proto::metadata::MAX_LEN,
        REQUEST_TIMEOUT,
    )
    .await
    .and_then(|frame| Metadata::decode_frame(&frame).map_err(|e| Failure::Other(e.to_string())));
    let _ = reports.send(Report::Answer { peer, result }).await;
}

/// Answers every inbound metadata request with `ours`.
pub(crate) async fn serve(incoming: Incoming, ours: Metadata, reports: mpsc::Sender<Report>) {
    let server = Server {
        response: ours.encode_to_vec(),
        reports,
    };
    crate::rpc::serve(incoming, murmur_proto::metadata::MAX_LEN, server).await;
}

struct Server {
    response: Vec<u8>,
    reports: mpsc::Sender<Report>,
}

impl crate::rpc::Answer for Server {
    async fn answer(
        &self,
        peer: PeerId,
        request: Result<Vec<u8>, murmur_proto::Error>,
    ) -> Option<Vec<u8>> {
        let theirs = match request.map(|frame| Metadata::decode_frame(&frame)) {
            Ok(Ok(theirs)) => theirs,
            Ok(Err(e)) | Err(e) => {
                tracing::debug!(%peer, error = %e, "bad metadata request");
                return None;
            }
        };
        let _ = self.reports.send(Report::Asked { peer, theirs }).await;
        Some(self.response.clone())
    }

    /// Metadata has no status: the answer costs nothing, so it is given.
    fn busy(&self, _: &[u8]) -> Option<Vec<u8>> {
        Some(self.response.clone())
    }
}
