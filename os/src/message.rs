//! How a value becomes the payload of a frame, and back.
//!
//! The payload is the value's [postcard] encoding. A writer encodes
//! straight into the ring: in place when the frame fits in the free space
//! after the tail, otherwise through a postcard flavor that copies each
//! piece in as it is produced, waiting for a reader to make room. A reader
//! decodes straight from the ring when the whole frame lies there in one
//! piece, and otherwise gathers it into one buffer first.
//!
//! `Vec<u8>` and `String` skip serde's byte-at-a-time path: their encoding
//! (a varint length, then the bytes) is written with one copy from the
//! value into the ring, and read with one copy from the ring into the new
//! value, whatever their size.
//!
//! [postcard]: https://docs.rs/postcard

use core::any::Any;
use core::fmt;

use mproc_core::Wait;
use mproc_core::frames::{FrameReader, FrameWriter, ReadError, WriteError};
use postcard::ser_flavors::Flavor;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that could not be encoded, or bytes that do not decode as the
/// queue's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(CodecErrorKind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum CodecErrorKind {
    /// postcard refused the value or the bytes.
    Postcard(postcard::Error),
    /// The frame holds bytes after a whole value.
    TrailingBytes(u64),
    /// A byte string's length does not match its frame.
    LengthMismatch,
    /// The value's `Serialize` produced a different length the second time.
    Unstable,
    /// A [`Token`](crate::share::Token) in the value refused: its file
    /// descriptors cannot travel this way.
    Token(String),
}

impl CodecError {
    /// The postcard error behind this one, if postcard raised it.
    pub fn postcard(&self) -> Option<&postcard::Error> {
        match &self.0 {
            CodecErrorKind::Postcard(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            CodecErrorKind::Postcard(error) => write!(f, "postcard: {error}"),
            CodecErrorKind::TrailingBytes(n) => {
                write!(f, "{n} bytes left in the message after the value")
            }
            CodecErrorKind::LengthMismatch => {
                f.write_str("the byte string's length does not match its message")
            }
            CodecErrorKind::Unstable => f.write_str(
                "the value's Serialize produced a different length when encoded a second time",
            ),
            CodecErrorKind::Token(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            CodecErrorKind::Postcard(error) => Some(error),
            _ => None,
        }
    }
}

impl From<postcard::Error> for CodecError {
    fn from(error: postcard::Error) -> Self {
        // postcard keeps no message for a value's own refusal; a token's
        // says why it refused (see `crate::share`).
        if matches!(
            error,
            postcard::Error::SerdeSerCustom | postcard::Error::SerdeDeCustom
        ) && let Some(refusal) = crate::share::take_refusal()
        {
            return Self(CodecErrorKind::Token(refusal.to_string()));
        }
        Self(CodecErrorKind::Postcard(error))
    }
}

/// Why encoding into a frame stopped.
#[derive(Debug)]
pub(crate) enum EncodeStop {
    /// The ring stayed full until the deadline.
    TimedOut,
    /// The value did not encode (the frame must be cut).
    Codec(CodecError),
}

/// Why decoding a frame failed.
#[derive(Debug)]
pub(crate) enum DecodeStop {
    /// The writer cut the frame: there is no message in it.
    Cut,
    /// The deadline passed while the writer had not written the whole frame
    /// (never without a deadline); the frame is still being read.
    TimedOut,
    /// The bytes do not decode.
    Codec(CodecError),
}

/// Bytes of the LEB128 varint of `n`.
fn varint_len(n: u64) -> u64 {
    u64::from((64 - (n | 1).leading_zeros()).div_ceil(7))
}

/// `n` as a LEB128 varint (postcard's encoding of lengths).
fn varint(mut n: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut len = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[len] = byte;
            return &buf[..=len];
        }
        buf[len] = byte | 0x80;
        len += 1;
    }
}

/// The bytes of a `Vec<u8>` or `String`, which take the one-copy path.
fn as_bytes<T: 'static>(value: &T) -> Option<&[u8]> {
    let any: &dyn Any = value;
    if let Some(bytes) = any.downcast_ref::<Vec<u8>>() {
        return Some(bytes);
    }
    any.downcast_ref::<String>().map(String::as_bytes)
}

/// The length of `value`'s encoding.
pub(crate) fn encoded_len<T: Serialize + 'static>(value: &T) -> Result<u64, CodecError> {
    if let Some(bytes) = as_bytes(value) {
        let len = bytes.len() as u64;
        return Ok(varint_len(len) + len);
    }
    Ok(postcard::experimental::serialized_size(value)? as u64)
}

/// Encodes `value` into the frame `writer` began for `encoded_len(value)`
/// bytes. On `Err` the caller drops the writer, which cuts the frame.
pub(crate) fn encode<T: Serialize + 'static, W: Wait>(
    value: &T,
    writer: &mut FrameWriter<'_, W>,
    deadline: Option<W::Deadline>,
) -> Result<(), EncodeStop> {
    let stop = |error: WriteError| match error {
        WriteError::TimedOut => EncodeStop::TimedOut,
        // The value grew between measuring and encoding it.
        _ => EncodeStop::Codec(CodecError(CodecErrorKind::Unstable)),
    };
    if let Some(bytes) = as_bytes(value) {
        let mut len = [0; 10];
        writer
            .write(varint(bytes.len() as u64, &mut len), deadline)
            .map_err(stop)?;
        return writer.write(bytes, deadline).map_err(stop);
    }
    let len = writer.remaining() as usize;
    let buffer = writer.buffer();
    if buffer.len() >= len {
        // The whole frame fits after the tail: encode in place.
        let written = postcard::to_slice(value, &mut buffer[..len])
            .map_err(|error| match error {
                postcard::Error::SerializeBufferFull => CodecErrorKind::Unstable,
                error => CodecErrorKind::Postcard(error),
            })
            .map_err(|kind| EncodeStop::Codec(CodecError(kind)))?
            .len();
        writer.advance(written);
    } else {
        let mut flavor = Streaming {
            writer,
            deadline,
            stopped: None,
        };
        let result = postcard::serialize_with_flavor::<T, _, ()>(value, &mut flavor);
        if let Some(stop) = flavor.stopped.take() {
            return Err(stop);
        }
        result.map_err(|error| EncodeStop::Codec(error.into()))?;
    }
    if writer.remaining() != 0 {
        return Err(EncodeStop::Codec(CodecError(CodecErrorKind::Unstable)));
    }
    Ok(())
}

/// A postcard flavor that copies what the serializer produces into the
/// frame, waiting for room as the ring fills.
struct Streaming<'w, 'a, W: Wait> {
    writer: &'w mut FrameWriter<'a, W>,
    deadline: Option<W::Deadline>,
    /// Why the last write failed, when it was not postcard's doing.
    stopped: Option<EncodeStop>,
}

impl<W: Wait> Flavor for &mut Streaming<'_, '_, W> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.writer.write(data, self.deadline).map_err(|error| {
            self.stopped = Some(match error {
                WriteError::TimedOut => EncodeStop::TimedOut,
                _ => EncodeStop::Codec(CodecError(CodecErrorKind::Unstable)),
            });
            postcard::Error::SerializeBufferFull
        })
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl From<ReadError> for DecodeStop {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::TimedOut => Self::TimedOut,
            _ => Self::Cut,
        }
    }
}

/// Decodes the frame `reader` began as a `T`, reading it to its end,
/// waiting for its writer until `deadline` at most (`None`: as long as it
/// takes).
pub(crate) fn decode<T: DeserializeOwned + 'static, W: Wait>(
    reader: &mut FrameReader<'_, W>,
    deadline: Option<W::Deadline>,
) -> Result<T, DecodeStop> {
    let len = reader.len();
    let mut slot: Option<T> = None;
    let any: &mut dyn Any = &mut slot;
    if let Some(vec) = any.downcast_mut::<Option<Vec<u8>>>() {
        *vec = Some(read_byte_string(reader, deadline)?);
        return Ok(slot.expect("just filled"));
    }
    if let Some(string) = any.downcast_mut::<Option<String>>() {
        let bytes = read_byte_string(reader, deadline)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| DecodeStop::Codec(postcard::Error::DeserializeBadUtf8.into()))?;
        *string = Some(text);
        return Ok(slot.expect("just filled"));
    }
    let whole = reader.available();
    if whole.len() as u64 == len {
        // The whole frame lies in the ring in one piece: decode in place.
        let (value, rest) =
            postcard::take_from_bytes::<T>(whole).map_err(|e| DecodeStop::Codec(e.into()))?;
        if !rest.is_empty() {
            let trailing = rest.len() as u64;
            return Err(DecodeStop::Codec(CodecError(
                CodecErrorKind::TrailingBytes(trailing),
            )));
        }
        reader.consume(len as usize);
        return Ok(value);
    }
    let bytes = read_to_vec(reader, len, deadline)?;
    let (value, rest) =
        postcard::take_from_bytes::<T>(&bytes).map_err(|e| DecodeStop::Codec(e.into()))?;
    if !rest.is_empty() {
        return Err(DecodeStop::Codec(CodecError(
            CodecErrorKind::TrailingBytes(rest.len() as u64),
        )));
    }
    Ok(value)
}

/// Reads a varint length and that many bytes, which must end the frame.
fn read_byte_string<W: Wait>(
    reader: &mut FrameReader<'_, W>,
    deadline: Option<W::Deadline>,
) -> Result<Vec<u8>, DecodeStop> {
    let mismatch = || DecodeStop::Codec(CodecError(CodecErrorKind::LengthMismatch));
    let mut n: u64 = 0;
    let mut shift = 0;
    loop {
        if reader.remaining() == 0 || shift > 63 {
            return Err(DecodeStop::Codec(
                postcard::Error::DeserializeBadVarint.into(),
            ));
        }
        let Some(&byte) = reader.available().first() else {
            reader.wait_until(deadline)?;
            continue;
        };
        reader.consume(1);
        n |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if n != reader.remaining() {
        return Err(mismatch());
    }
    read_to_vec(reader, n, deadline)
}

/// Bytes allocated at once for a message: a longer one grows its buffer as
/// its bytes arrive, so a length that a corrupted ring announces costs no
/// more memory than the bytes actually there.
const ALLOC_STEP: u64 = 64 << 20;

/// Reads the next `n` payload bytes (at most what is left of the frame)
/// into a new vector, waiting for the writer until `deadline` at most.
///
/// Each byte is copied once, from the ring straight into the vector's
/// spare capacity: the vector is never zero-filled first.
pub(crate) fn read_to_vec<W: Wait>(
    reader: &mut FrameReader<'_, W>,
    n: u64,
    deadline: Option<W::Deadline>,
) -> Result<Vec<u8>, DecodeStop> {
    assert!(n <= reader.remaining(), "read past the end of the frame");
    let mut bytes = Vec::with_capacity(n.min(ALLOC_STEP) as usize);
    while (bytes.len() as u64) < n {
        let left = n - bytes.len() as u64;
        let chunk = reader.available();
        if chunk.is_empty() {
            // Not at the frame's end (`left <= remaining`): data comes, or
            // the writer cuts the frame.
            reader.wait_until(deadline)?;
            continue;
        }
        let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if bytes.capacity() - bytes.len() < take {
            bytes.reserve_exact(left.min(ALLOC_STEP) as usize);
        }
        bytes.extend_from_slice(&chunk[..take]);
        reader.consume(take);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::{varint, varint_len};

    #[test]
    fn varints_match_postcard() {
        for n in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = [0; 10];
            let ours = varint(n, &mut buf);
            assert_eq!(ours.len() as u64, varint_len(n), "{n}");
            // postcard encodes a byte string's length the same way.
            let theirs = postcard::to_stdvec(&n).unwrap();
            assert_eq!(ours, theirs, "{n}");
        }
    }
}
