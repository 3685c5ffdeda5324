//! The manager's wire protocol: requests, replies, and their frames.
//!
//! Every message is a frame: a 4-byte little-endian length, then that many
//! bytes of postcard. The length is checked against [`MAX_FRAME`] before
//! anything is allocated. A client sends a [`Request`], the server answers
//! with a [`Reply`], one at a time per connection. Values travel as their
//! postcard encoding: the server stores bytes and never needs the types,
//! and a proxy names the type it expects by a fingerprint that the server
//! compares with the one recorded when the object was made.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// The longest frame a manager accepts or sends: 64 MiB.
pub const MAX_FRAME: usize = 64 << 20;

/// What kind of object a proxy refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A dictionary ([`DictProxy`](super::DictProxy)).
    Dict,
    /// A list ([`ListProxy`](super::ListProxy)).
    List,
    /// A single value ([`ValueProxy`](super::ValueProxy)).
    Value,
    /// A fixed-length array ([`ArrayProxy`](super::ArrayProxy)).
    Array,
    /// Named fields ([`NamespaceProxy`](super::NamespaceProxy)).
    Namespace,
    /// A lock ([`LockProxy`](super::LockProxy)).
    Lock,
    /// A reentrant lock ([`RLockProxy`](super::RLockProxy)).
    RLock,
    /// A semaphore ([`SemaphoreProxy`](super::SemaphoreProxy)).
    Semaphore,
    /// An event ([`EventProxy`](super::EventProxy)).
    Event,
    /// A condition variable ([`ConditionProxy`](super::ConditionProxy)).
    Condition,
    /// A barrier ([`BarrierProxy`](super::BarrierProxy)).
    Barrier,
    /// A bounded queue ([`QueueProxy`](super::QueueProxy)).
    Queue,
}

impl Kind {
    /// The kind's name, as errors print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dict => "dict",
            Self::List => "list",
            Self::Value => "value",
            Self::Array => "array",
            Self::Namespace => "namespace",
            Self::Lock => "lock",
            Self::RLock => "rlock",
            Self::Semaphore => "semaphore",
            Self::Event => "event",
            Self::Condition => "condition",
            Self::Barrier => "barrier",
            Self::Queue => "queue",
        }
    }
}

/// The number types a server can add ([`Op::Add`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum NumKind {
    I8,
    I16,
    I32,
    I64,
    I128,
    Isize,
    U8,
    U16,
    U32,
    U64,
    U128,
    Usize,
    F32,
    F64,
}

/// The bytes of an encoded value.
pub type Bytes = Vec<u8>;

/// A client's request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Makes an object; answered with [`Answer::Id`].
    Create {
        /// Its kind.
        kind: Kind,
        /// The fingerprint of its proxy type.
        fingerprint: u64,
        /// Its initial contents.
        init: Init,
    },
    /// Runs `op` on object `id`, which must be of `kind` and `fingerprint`.
    Call {
        /// The object.
        id: u64,
        /// The kind the proxy expects.
        kind: Kind,
        /// The fingerprint the proxy expects.
        fingerprint: u64,
        /// What to do.
        op: Op,
    },
    /// Gives object `id` a name; answered with [`Answer::Unit`].
    Register {
        /// The name.
        name: String,
        /// The object.
        id: u64,
    },
    /// The object of a name, if it is of `kind` and `fingerprint`;
    /// answered with [`Answer::Id`].
    Lookup {
        /// The name.
        name: String,
        /// The kind expected.
        kind: Kind,
        /// The fingerprint expected.
        fingerprint: u64,
    },
    /// Asks for a shared-memory connection (Unix socket clients only): the
    /// reply carries its descriptors, and the requests after it go through
    /// it.
    Local,
    /// The TCP address the server listens on, if any; answered with
    /// [`Answer::Text`].
    Info,
    /// Stops the server once the reply is sent.
    Shutdown,
}

/// The initial contents of a new object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// Empty (dict, list, namespace, lock, rlock, event, condition).
    Empty,
    /// One value (value).
    Value(Bytes),
    /// Elements (array).
    Items(Vec<Bytes>),
    /// A count: a semaphore's value, a barrier's parties, a queue's
    /// capacity.
    Count(u64),
}

/// An operation on an object. Blocking ones carry a timeout in
/// milliseconds (`None`: as long as it takes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Op {
    // Dict.
    DictGet(Bytes),
    DictInsert(Bytes, Bytes),
    DictRemove(Bytes),
    DictContains(Bytes),
    DictKeys,
    DictValues,
    DictItems,
    DictUpdate(Vec<(Bytes, Bytes)>),
    DictGetOrInsert(Bytes, Bytes),
    // Dict, list, array, queue.
    Len,
    // Dict, list, namespace.
    Clear,
    // List and array.
    Snapshot,
    Get(u64),
    Set(u64, Bytes),
    // List.
    Push(Bytes),
    Pop,
    Extend(Vec<Bytes>),
    Insert(u64, Bytes),
    RemoveAt(u64),
    // Value.
    Load,
    Store(Bytes),
    Swap(Bytes),
    CompareAndSwap {
        current: Bytes,
        new: Bytes,
    },
    Add {
        kind: NumKind,
        delta: Bytes,
    },
    // Namespace.
    FieldGet(String),
    FieldSet(String, u64, Bytes),
    FieldRemove(String),
    FieldNames,
    // Lock, rlock, semaphore, condition.
    Acquire {
        timeout_ms: Option<u64>,
    },
    Release,
    // Semaphore.
    SemaphoreValue,
    // Event.
    EventSet,
    EventClear,
    IsSet,
    // Event, condition, barrier.
    Wait {
        timeout_ms: Option<u64>,
    },
    // Condition.
    Notify(u64),
    // Barrier.
    Abort,
    Reset,
    Parties,
    NWaiting,
    Broken,
    // Queue.
    Put {
        item: Bytes,
        timeout_ms: Option<u64>,
    },
    Take {
        timeout_ms: Option<u64>,
    },
}

/// What a request returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Answer {
    Unit,
    Bool(bool),
    Id(u64),
    Count(u64),
    Bytes(Bytes),
    Maybe(Option<Bytes>),
    Many(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    Field(Option<(u64, Bytes)>),
    Names(Vec<String>),
    Text(Option<String>),
}

/// Why the server refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Fault {
    Malformed(String),
    TooLarge { len: u64, max: u64 },
    UnknownObject(u64),
    WrongKind { object: Kind, proxy: Kind },
    WrongType { kind: Kind },
    UnknownName(String),
    NameTaken(String),
    Unsupported { kind: Kind, op: String },
    IndexOutOfRange { index: u64, len: u64 },
    Invalid(String),
    Timeout,
    Empty,
    Full,
    NotOwner,
    BrokenBarrier,
    Overflow,
    FieldType(String),
    NotLocal,
}

/// The server's answer to a request.
pub type Reply = Result<Answer, Fault>;

/// Why a frame could not be read from a stream.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The stream ended between two frames.
    Closed,
    /// The length announced is over the limit; nothing was read past it.
    TooLarge(u64),
    /// The stream failed or ended inside a frame.
    Io(io::Error),
}

/// Reads one frame of at most `max` bytes; the length is checked before
/// the buffer is allocated.
pub(crate) fn read_frame(stream: &mut impl Read, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
    let len = u32::from_le_bytes(header);
    if len as usize > max {
        return Err(FrameError::TooLarge(len.into()));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).map_err(FrameError::Io)?;
    Ok(bytes)
}

/// Writes `bytes` as one frame (one `write` call for small frames).
pub(crate) fn write_frame(stream: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(bytes);
    stream.write_all(&frame)?;
    stream.flush()
}

/// Encodes a reply, replacing one longer than [`MAX_FRAME`] by
/// [`Fault::TooLarge`].
pub(crate) fn encode_reply(reply: &Reply) -> Vec<u8> {
    match postcard::to_allocvec(reply) {
        Ok(bytes) if bytes.len() <= MAX_FRAME => bytes,
        Ok(bytes) => encode_fault(Fault::TooLarge {
            len: bytes.len() as u64,
            max: MAX_FRAME as u64,
        }),
        Err(error) => encode_fault(Fault::Malformed(error.to_string())),
    }
}

/// Encodes a reply that is a fault.
pub(crate) fn encode_fault(fault: Fault) -> Vec<u8> {
    // A fault is a few bytes and a short string: it always encodes.
    postcard::to_allocvec(&Reply::Err(fault)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_long_ones() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        write_frame(&mut wire, &[7; 40]).unwrap();
        let mut reader = &wire[..];
        assert_eq!(read_frame(&mut reader, 64).unwrap(), b"hello");
        assert!(matches!(
            read_frame(&mut reader, 16),
            Err(FrameError::TooLarge(40))
        ));
        let mut truncated = &wire[..7];
        assert!(read_frame(&mut truncated, 64).is_err());
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty, 64),
            Err(FrameError::Closed)
        ));
    }
}
