//! [`Queue`]: a bounded queue of any serde values, of any size, that
//! processes share (Python's `multiprocessing.Queue`), and the errors of
//! every queue in mproc.

use core::fmt;
use core::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::frames::{BeginReadError, BeginWriteError, FrameRing, MAX_FRAME};
use mproc_core::{PopError, PushError, TypeFingerprint};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::futex::{Deadline, Futex};
pub use crate::message::CodecError;
use crate::message::{self, DecodeStop, EncodeStop};
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::shm::Region;

/// Why a `put` did not happen. The value is handed back.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError<T> {
    /// The queue stayed full (until the timeout, for `put_timeout`).
    Full(T),
    /// The queue is closed: nothing more can be put.
    Closed(T),
    /// The value's encoding is longer than a message can be (4 GiB - 1).
    TooLarge(T),
    /// The value could not be encoded.
    Encode(T, CodecError),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value)
            | Self::Closed(value)
            | Self::TooLarge(value)
            | Self::Encode(value, _) => value,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
            Self::TooLarge(_) => f.write_str("TooLarge(..)"),
            Self::Encode(_, error) => f.debug_tuple("Encode").field(&"..").field(error).finish(),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the queue is full"),
            Self::Closed(_) => f.write_str("the queue is closed"),
            Self::TooLarge(_) => write!(f, "the message is longer than {MAX_FRAME} bytes"),
            Self::Encode(_, error) => write!(f, "the value could not be encoded: {error}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(_, error) => Some(error),
            _ => None,
        }
    }
}

impl<T> From<PushError<T>> for PutError<T> {
    fn from(error: PushError<T>) -> Self {
        Self::Full(error.into_inner())
    }
}

/// Why a `get` returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// The queue stayed empty (until the timeout, for `get_timeout`).
    Empty,
    /// The queue is closed and every message has been taken.
    Closed,
    /// A message did not decode as the queue's type; it was taken and
    /// dropped, and the messages after it are unaffected.
    Decode(CodecError),
    /// The queue's shared state is impossible (a process wrote garbage
    /// into it).
    Corrupted,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the queue is empty"),
            Self::Closed => f.write_str("the queue is closed and drained"),
            Self::Decode(error) => write!(f, "a message did not decode: {error}"),
            Self::Corrupted => f.write_str("the queue's shared state is corrupted"),
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(error) => Some(error),
            _ => None,
        }
    }
}

impl From<PopError> for GetError {
    fn from(_: PopError) -> Self {
        Self::Empty
    }
}

/// A bounded queue of any serde values that processes share.
///
/// Messages are any `T: Serialize + DeserializeOwned`, encoded with
/// postcard, of any size up to 4 GiB - 1 bytes encoded: a message longer
/// than the queue's buffer streams through it while a reader drains it.
/// The queue is bounded twice: by `maxsize` messages (Python's `maxsize`)
/// and by the bytes of its buffer ([`Self::DEFAULT_BUFFER`] unless
/// [`Self::with_buffer`] says otherwise). `put` waits, times out or fails
/// with [`PutError::Full`] when either is reached, and gives the value
/// back.
///
/// # Copies
///
/// A writer encodes straight into the shared buffer. A reader decodes
/// straight from it when the message lies there in one piece, and
/// otherwise gathers it first. `Vec<u8>` and `String` messages are copied
/// once on each side whatever their size: from the value into the buffer,
/// and from the buffer into the new value. For byte payloads inside your
/// own types use `serde_bytes`, which postcard also copies as one block.
/// For plain-old-data values with no encoding at all, see
/// [`PodQueue`](crate::pod_queue::PodQueue).
///
/// # Closing
///
/// After [`close`](Self::close), `put` fails with [`PutError::Closed`],
/// and `get` returns what is left, then [`GetError::Closed`] instead of
/// waiting: no sentinel values needed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::queue::{GetError, Queue};
///
/// let queue = Queue::<String>::new(8)?;
/// queue.put("hello".to_owned())?;
/// assert_eq!(queue.len(), 1);
/// // Longer than the buffer: it streams through while another thread gets.
/// let getter = std::thread::spawn({
///     let queue = queue.clone();
///     move || (queue.get(), queue.get())
/// });
/// queue.put("x".repeat(1 << 20))?;
/// let (first, second) = getter.join().unwrap();
/// assert_eq!(first?, "hello");
/// assert_eq!(second?.len(), 1 << 20);
/// queue.close();
/// assert_eq!(queue.get_timeout(Duration::from_secs(5)), Err(GetError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    ring: FrameRing,
    region: Mapping,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring,
            region: self.region.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("maxsize", &self.ring.max_messages())
            .field("buffer", &self.ring.capacity())
            .field("len", &self.ring.len())
            .field("closed", &self.ring.is_closed())
            .finish()
    }
}

/// A deadline that has already passed, for the `try_*` verbs.
pub(crate) fn now() -> Option<Deadline> {
    Some(Deadline::now())
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// The buffer of a queue made by [`Self::new`]: 256 KiB.
    pub const DEFAULT_BUFFER: usize = 256 << 10;

    /// A queue of at most `maxsize` messages (at least 1, at most
    /// `u32::MAX`) with a buffer of [`Self::DEFAULT_BUFFER`] bytes, in a
    /// new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::with_buffer(maxsize, Self::DEFAULT_BUFFER)
    }

    /// A queue of at most `maxsize` messages with a buffer of at least
    /// `buffer` bytes (rounded up to a power of two, at least 16).
    pub fn with_buffer(maxsize: usize, buffer: usize) -> Result<Self> {
        let region = shareable("Queue", FrameRing::layout(buffer_size(buffer)))?;
        Self::create_in(region, maxsize)
    }

    /// The bytes a region needs to hold a queue whose buffer has at least
    /// `buffer` bytes.
    pub fn region_size(buffer: usize) -> Result<usize> {
        Ok(FrameRing::layout(buffer_size(buffer))?.size())
    }

    /// Creates a queue of at most `maxsize` messages at the start of
    /// `region`, with the largest buffer that fits in it (a power of two).
    pub fn create_in(region: Region, maxsize: usize) -> Result<Self> {
        let maxsize = u32::try_from(maxsize).unwrap_or(u32::MAX);
        let buffer = largest_buffer(region.len());
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns (it
        // was just made, or the caller hands it over).
        let ring = unsafe {
            FrameRing::create(
                region.as_ptr(),
                region.len(),
                buffer,
                maxsize,
                TypeFingerprint::of::<T>(),
                origin(),
            )?
        };
        Ok(Self {
            ring,
            region: Arc::new(region),
            _values: PhantomData,
        })
    }

    /// Attaches to a queue of `T` that another process created in `region`,
    /// after checking its header (magic, layout version, kind, message
    /// type) and its state.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let ring = unsafe {
            FrameRing::attach(region.as_ptr(), region.len(), TypeFingerprint::of::<T>())?
        };
        Ok(Self {
            ring,
            region: Arc::new(region),
            _values: PhantomData,
        })
    }

    /// The region the queue lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The most messages the queue holds (Python's `maxsize`).
    pub fn maxsize(&self) -> usize {
        self.ring.max_messages() as usize
    }

    /// Bytes of the shared buffer.
    pub fn buffer_size(&self) -> usize {
        self.ring.capacity()
    }

    /// Messages in the queue (a snapshot: Python's `qsize`).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the queue holds no message (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether the queue holds `maxsize` messages (a snapshot).
    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    /// Closes the queue for every process: later puts fail with
    /// [`PutError::Closed`], and gets drain what is left, then fail with
    /// [`GetError::Closed`]. A message being put while the queue closes is
    /// delivered. Closing twice is harmless.
    pub fn close(&self) {
        self.ring.close(&Futex);
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Puts `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`PutError::Closed`], [`PutError::TooLarge`] or [`PutError::Encode`],
    /// each with the value.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, None)
    }

    /// Puts `value`, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// As [`Self::put`], and [`PutError::Full`] on timeout.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(value, deadline(timeout))
    }

    /// Puts `value` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    /// As [`Self::put`], and [`PutError::Full`] when there is no room.
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, now())
    }

    pub(crate) fn put_until(
        &self,
        value: T,
        deadline: Option<Deadline>,
    ) -> Result<(), PutError<T>> {
        let len = match message::encoded_len(&value) {
            Ok(len) => len,
            Err(error) => return Err(PutError::Encode(value, error)),
        };
        let mut writer = match self.ring.begin_write(&Futex, owner_id(), len, deadline) {
            Ok(writer) => writer,
            Err(BeginWriteError::Closed) => return Err(PutError::Closed(value)),
            Err(BeginWriteError::TooLarge) => return Err(PutError::TooLarge(value)),
            Err(_) => return Err(PutError::Full(value)),
        };
        match message::encode(&value, &mut writer, deadline) {
            // Every byte is written, so the frame ends whole.
            Ok(()) => writer.finish().map_err(|_| PutError::Full(value)),
            // Dropping the writer cuts the frame: nobody receives it.
            Err(EncodeStop::TimedOut) => Err(PutError::Full(value)),
            Err(EncodeStop::Codec(error)) => Err(PutError::Encode(value, error)),
        }
    }

    /// Gets the oldest message, waiting as long as it takes.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained;
    /// [`GetError::Decode`] for a message that is not a `T` (dropped).
    pub fn get(&self) -> Result<T, GetError> {
        self.get_until(None)
    }

    /// Gets the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Self::get`], and [`GetError::Empty`] on timeout.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_until(deadline(timeout))
    }

    /// Gets the oldest message if there is one now (Python's
    /// `get_nowait`).
    ///
    /// # Errors
    /// As [`Self::get`], and [`GetError::Empty`] when there is none.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_until(now())
    }

    pub(crate) fn get_until(&self, deadline: Option<Deadline>) -> Result<T, GetError> {
        loop {
            let mut reader = match self.ring.begin_read(&Futex, owner_id(), deadline) {
                Ok(reader) => reader,
                Err(BeginReadError::Empty) => return Err(GetError::Empty),
                Err(BeginReadError::Closed) => return Err(GetError::Closed),
                Err(_) => return Err(GetError::Corrupted),
            };
            // No deadline in the middle of a frame: its writer finishes it
            // or cuts it.
            let decoded = message::decode::<T, _>(&mut reader, None);
            // Ends the frame, skipping whatever a failed decode left.
            let ended = reader.finish();
            match decoded {
                Ok(value) if ended.is_ok() => return Ok(value),
                // A cut frame holds no message: take the next one (and a
                // decode without a deadline never times out).
                Ok(_) | Err(DecodeStop::Cut | DecodeStop::TimedOut) => continue,
                Err(DecodeStop::Codec(error)) => {
                    if ended.is_err() {
                        continue;
                    }
                    return Err(GetError::Decode(error));
                }
            }
        }
    }
}

impl<T> crate::wait::sealed::Sealed for Queue<T> {
    fn look(&self) -> crate::wait::sealed::Look<'_> {
        self.ring.watch_read().into()
    }
}

/// The ring size for a buffer of at least `bytes`.
fn buffer_size(bytes: usize) -> u64 {
    (bytes as u64)
        .max(mproc_core::frames::MIN_CAPACITY)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// The largest power-of-two ring whose object fits in `len` bytes (the
/// layout refuses the region if even the smallest does not).
fn largest_buffer(len: usize) -> u64 {
    let mut buffer = mproc_core::frames::MIN_CAPACITY;
    while buffer < mproc_core::frames::MAX_CAPACITY
        && FrameRing::layout(buffer * 2).is_ok_and(|layout| layout.size() <= len)
    {
        buffer *= 2;
    }
    buffer
}

crate::share::share_one_region!("Queue", Queue<T>, [T: Serialize + DeserializeOwned + 'static]);
