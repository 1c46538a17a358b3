use thiserror::Error;

/// Why bytes could not be read as a Waku protocol message.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid protobuf encoding of the expected message.
    #[error("malformed protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A length prefix announced more bytes than the protocol allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit for this protocol.
        max: usize,
    },
    /// The length prefix is not a valid unsigned varint.
    #[error("malformed length prefix")]
    BadLength,
    /// The stream ended before a whole frame arrived.
    #[error("stream closed before a complete frame was read")]
    UnexpectedEof,
    /// Reading or writing the stream failed.
    #[error("stream i/o: {0}")]
    Io(#[from] std::io::Error),
}
