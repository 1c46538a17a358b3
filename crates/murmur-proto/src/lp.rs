//! Length-prefixed framing: an unsigned varint length, then that many bytes.
//! Every Waku request/response protocol sends one such frame each way.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

/// Reads one frame of at most `max` bytes.
///
/// The limit is checked against the announced length before any allocation,
/// so a hostile prefix cannot make the node reserve memory.
pub async fn read<R: AsyncRead + Unpin>(io: &mut R, max: usize) -> Result<Vec<u8>, Error> {
    let len = read_varint(io).await?;
    let len = usize::try_from(len).map_err(|_| Error::BadLength)?;
    if len > max {
        return Err(Error::TooLarge { len, max });
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await.map_err(eof)?;
    Ok(buf)
}

/// Writes one frame and flushes it.
pub async fn write<W: AsyncWrite + Unpin>(io: &mut W, frame: &[u8]) -> Result<(), Error> {
    let mut prefix = [0u8; 10];
    let n = encode_varint(frame.len() as u64, &mut prefix);
    io.write_all(&prefix[..n]).await?;
    io.write_all(frame).await?;
    io.flush().await?;
    Ok(())
}

fn eof(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::UnexpectedEof
    } else {
        Error::Io(e)
    }
}

async fn read_varint<R: AsyncRead + Unpin>(io: &mut R) -> Result<u64, Error> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await.map_err(eof)?;
        let b = byte[0];
        if i == 9 && b > 1 {
            return Err(Error::BadLength);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::BadLength)
}

fn encode_varint(mut value: u64, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[i] = b;
            return i + 1;
        }
        out[i] = b | 0x80;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor};

    use super::*;

    #[test]
    fn round_trip() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let frame = vec![7u8; len];
            let mut out = Vec::new();
            block_on(write(&mut out, &frame)).unwrap();
            let got = block_on(read(&mut Cursor::new(out), 100_000)).unwrap();
            assert_eq!(got, frame);
        }
    }

    #[test]
    fn over_limit_is_refused_before_reading() {
        let mut out = Vec::new();
        block_on(write(&mut out, &[1u8; 2000])).unwrap();
        let err = block_on(read(&mut Cursor::new(out), 1024)).unwrap_err();
        assert!(matches!(
            err,
            Error::TooLarge {
                len: 2000,
                max: 1024
            }
        ));
    }

    #[test]
    fn truncated_and_malformed_prefixes() {
        let err = block_on(read(&mut Cursor::new(vec![5u8, 1, 2]), 100)).unwrap_err();
        assert!(matches!(err, Error::UnexpectedEof));
        let err = block_on(read(&mut Cursor::new(vec![0xffu8; 11]), 100)).unwrap_err();
        assert!(matches!(err, Error::BadLength));
        let err = block_on(read(&mut Cursor::new(Vec::new()), 100)).unwrap_err();
        assert!(matches!(err, Error::UnexpectedEof));
    }
}
