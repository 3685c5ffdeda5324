//! [`pipe`]: two connected ends that send each other serde values through
//! shared memory (Python's `multiprocessing.Pipe`), and pass open file
//! descriptors.
//!
//! # How a message travels
//!
//! Each direction is a [`FrameRing`] of [`BUFFER`] bytes in a shared
//! region of its own (a sealed memfd), which children made with `fork`
//! inherit and [`Share::token`] passes to any other process. A value is
//! encoded with postcard straight into the ring ([`crate::message`]); a
//! message longer than the ring streams through it while the other side
//! reads. A waiting side spins briefly, then sleeps on a futex that the
//! other side wakes only if it actually sleeps: a message sent to a reader
//! that is running, or that spins, costs no system call.
//!
//! # Disconnection
//!
//! Each end also holds one end of a Unix socket pair. The kernel counts
//! the processes holding a socket end, across `fork`, and once every one
//! of them has dropped it or exited (killed by `SIGKILL` included) the
//! other end reports a hang-up. A side that has to wait sleeps on the
//! futex in slices (1 ms, doubling up to 64 ms) and looks at its socket
//! between them; dropping an end also wakes the sleepers on both of its
//! rings, so an explicit drop is seen at once. Then:
//!
//! * `recv` returns what was sent before the peer left, then
//!   [`RecvError::Disconnected`] instead of waiting;
//! * a `send` that waits for room fails with [`SendError::Disconnected`]
//!   and gives the value back. A `send` that finds room does not look at
//!   the socket (that would be a system call per message): a message sent
//!   after the peer left is delivered to nobody.
//!
//! As in Python, a child made with `fork` inherits **both** ends of a pipe
//! made before it, captured or not, and an end is gone only when every
//! process has dropped its copy or exited. So:
//!
//! * the parent should drop the end it gave the child; moving it into the
//!   child's closure does that, and the parent then sees the child's end
//!   go when the child drops it or exits, however it exits;
//! * a child holds a copy of the parent's end, unused, until it exits, so
//!   it does **not** see the parent drop its end, nor die: stop a child
//!   with a message (or a closed [`Queue`](crate::Queue), or a signal),
//!   not by dropping the parent's end. Python's `fork` children have the
//!   same limit, unless they close the inherited end, which a Rust closure
//!   cannot name.
//!
//! # Ends in processes not forked from the creator
//!
//! [`Share::token`] of an end holds its socket and its rings (see
//! [`crate::share`]); attached in another process it is one more copy of
//! that same end, which counts for disconnection like a copy inherited
//! through `fork`: the peer sees the end gone once every copy, the
//! token's included, is dropped or its process has exited. So a parent
//! that hands an end to a `Spawn` child should drop its own copy (and the
//! token, which `spawn_fn` consumes).
//!
//! # File descriptors
//!
//! [`Connection::send_fd`] passes an open file descriptor to the process
//! holding the other end, over the socket (`SCM_RIGHTS`): the receiver gets
//! its own descriptor to the same open file. Descriptors travel in order
//! among themselves, apart from the messages: which of a message and a
//! descriptor sent after it arrives first is not defined.

use core::fmt;
use core::marker::PhantomData;
use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mproc_core::frames::{
    BeginReadError, BeginWriteError, FrameReader, FrameRing, MAX_FRAME, ReadError,
};
use mproc_core::{TimedOut, TypeFingerprint, Wait};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, os};
use crate::futex::{Deadline, Futex};
use crate::message::{self, CodecError, DecodeStop, EncodeStop};
use crate::object::{Mapping, shareable};
use crate::process::{origin, owner_id};
use crate::share::{Sealed, Share, Token, attach_region, check_stream_socket, region_fd};
use crate::shm::Region;
use crate::socket::{Stream, socketpair};
use crate::wait::sealed::{Look, Sealed as Waits};

/// Bytes of the shared buffer of each direction: 64 KiB, like a Linux
/// pipe. Longer messages stream through it.
pub const BUFFER: usize = 64 << 10;

/// The first slice of a sleep between two looks at the peer.
const FIRST_SLICE: Duration = Duration::from_millis(1);
/// The longest slice: how late a peer that died is noticed, at most.
const LAST_SLICE: Duration = Duration::from_millis(64);

/// Why a `send` did not happen. The value is handed back (`()` for
/// `send_bytes`: the bytes stay with the caller).
///
/// # Examples
///
/// ```
/// use mproc_os::connection::{SendError, pipe};
///
/// let (a, b) = pipe::<String>()?;
/// drop(b);
/// // Longer than the pipe's buffer: the send waits for room, and finds
/// // the other end gone.
/// let big = "x".repeat(1 << 20);
/// let error = a.send(big.clone()).unwrap_err();
/// assert!(matches!(error, SendError::Disconnected(_)));
/// assert_eq!(error.into_inner(), big);
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<T> {
    /// Every process holding the other end has dropped it or exited.
    Disconnected(T),
    /// The pipe stayed full until the timeout (`send_timeout` only).
    Full(T),
    /// The value's encoding is longer than a message can be (4 GiB - 1).
    TooLarge(T),
    /// The value could not be encoded.
    Encode(T, CodecError),
    /// The pipe's shared state is impossible (a process wrote garbage into
    /// it).
    Corrupted(T),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Disconnected(value)
            | Self::Full(value)
            | Self::TooLarge(value)
            | Self::Encode(value, _)
            | Self::Corrupted(value) => value,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected(_) => f.write_str("Disconnected(..)"),
            Self::Full(_) => f.write_str("Full(..)"),
            Self::TooLarge(_) => f.write_str("TooLarge(..)"),
            Self::Encode(_, error) => f.debug_tuple("Encode").field(&"..").field(error).finish(),
            Self::Corrupted(_) => f.write_str("Corrupted(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disconnected(_) => f.write_str("the other end of the pipe is gone"),
            Self::Full(_) => f.write_str("the pipe is full"),
            Self::TooLarge(_) => write!(f, "the message is longer than {MAX_FRAME} bytes"),
            Self::Encode(_, error) => write!(f, "the value could not be encoded: {error}"),
            Self::Corrupted(_) => f.write_str("the pipe's shared state is corrupted"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Encode(_, error) => Some(error),
            _ => None,
        }
    }
}

/// Why a `recv` returned no value.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::connection::{RecvError, pipe};
///
/// let (a, b) = pipe::<u32>()?;
/// assert_eq!(b.try_recv(), Err(RecvError::Empty));
/// a.send(7).unwrap();
/// drop(a);
/// // What was sent comes first, then the disconnection.
/// assert_eq!(b.recv(), Ok(7));
/// assert_eq!(b.recv_timeout(Duration::from_secs(5)), Err(RecvError::Disconnected));
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// No message arrived: before the timeout (`recv_timeout`), or yet
    /// (`try_recv`). The peer is still there.
    Empty,
    /// Every process holding the other end has dropped it or exited, and
    /// every message it sent has been received.
    Disconnected,
    /// A message did not decode as the pipe's type; it was taken and
    /// dropped, and the messages after it are unaffected.
    Decode(CodecError),
    /// The pipe's shared state is impossible (a process wrote garbage into
    /// it).
    Corrupted,
    /// A message was longer than the receiver accepts
    /// ([`Connection::recv_bytes_max`]): it was skipped without being
    /// stored, and the messages after it are unaffected.
    TooLong {
        /// Its length in bytes.
        len: u64,
        /// The most the receiver accepted.
        max: u64,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no message arrived"),
            Self::Disconnected => {
                f.write_str("the other end of the pipe is gone and every message is received")
            }
            Self::Decode(error) => write!(f, "a message did not decode: {error}"),
            Self::Corrupted => f.write_str("the pipe's shared state is corrupted"),
            Self::TooLong { len, max } => {
                write!(
                    f,
                    "a message of {len} bytes is longer than the {max} accepted"
                )
            }
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(error) => Some(error),
            _ => None,
        }
    }
}

/// Why a file descriptor was not passed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::connection::{FdError, pipe};
///
/// let (a, b) = pipe::<()>()?;
/// assert!(matches!(b.recv_fd_timeout(Duration::ZERO), Err(FdError::Empty)));
/// drop(a);
/// assert!(matches!(b.recv_fd(), Err(FdError::Disconnected)));
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FdError {
    /// No descriptor arrived before the timeout.
    Empty,
    /// Every process holding the other end has dropped it or exited (and,
    /// for a receiver, every descriptor sent has been received).
    Disconnected,
    /// A system call failed (`EMFILE` when this process may open no more
    /// descriptors, `EPROTO` for a message that did not carry exactly one).
    Os(Error),
}

impl fmt::Display for FdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no file descriptor arrived"),
            Self::Disconnected => f.write_str("the other end of the pipe is gone"),
            Self::Os(error) => write!(f, "passing a file descriptor failed: {error}"),
        }
    }
}

impl std::error::Error for FdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os(error) => Some(error),
            _ => None,
        }
    }
}

/// Makes a duplex pipe: two connected [`Connection`]s, each sending to the
/// other (Python's `Pipe()`).
///
/// # Errors
/// [`Error::Os`] from `mmap` (the two buffers) or `socketpair`.
///
/// # Examples
///
/// ```
/// let (parent, child) = mproc_os::connection::pipe::<String>()?;
/// let echo = std::thread::spawn(move || {
///     let text = child.recv().unwrap();
///     child.send(text.to_uppercase()).unwrap();
/// });
/// parent.send("ping".to_owned()).unwrap();
/// assert_eq!(parent.recv().unwrap(), "PING");
/// echo.join().unwrap();
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub fn pipe<T: Serialize + DeserializeOwned + 'static>() -> Result<(Connection<T>, Connection<T>)> {
    let (a_to_b, b_to_a) = (Half::new::<T>()?, Half::new::<T>()?);
    let (socket_a, socket_b) = socketpair()?;
    let a = Connection {
        socket: socket_a,
        outgoing: a_to_b.clone_handle(),
        incoming: Inbox::new(b_to_a.clone_handle()),
        _values: PhantomData,
    };
    let b = Connection {
        socket: socket_b,
        outgoing: b_to_a,
        incoming: Inbox::new(a_to_b),
        _values: PhantomData,
    };
    Ok((a, b))
}

/// Makes a one-way pipe: a [`Receiver`] and the [`Sender`] that sends to
/// it, in that order (Python's `Pipe(duplex=False)`, which returns the
/// reader first).
///
/// # Errors
/// [`Error::Os`] from `mmap` (the buffer) or `socketpair`.
///
/// # Examples
///
/// ```
/// let (rx, tx) = mproc_os::connection::pipe_simplex::<u64>()?;
/// let sender = std::thread::spawn(move || (1..=3).for_each(|n| tx.send(n).unwrap()));
/// let got: Vec<u64> = std::iter::from_fn(|| rx.recv().ok()).collect();
/// assert_eq!(got, [1, 2, 3]);
/// sender.join().unwrap();
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub fn pipe_simplex<T: Serialize + DeserializeOwned + 'static>() -> Result<(Receiver<T>, Sender<T>)>
{
    let half = Half::new::<T>()?;
    let (socket_r, socket_s) = socketpair()?;
    let sender = Sender {
        socket: socket_s,
        outgoing: half.clone_handle(),
        _values: PhantomData,
    };
    let receiver = Receiver {
        socket: socket_r,
        incoming: Inbox::new(half),
        _values: PhantomData,
    };
    Ok((receiver, sender))
}

/// One end of a duplex [`pipe`]: sends `T`s to the other end and receives
/// the `T`s it sends (Python's `Connection`).
///
/// Messages are any `T: Serialize + DeserializeOwned`, encoded with
/// postcard, of any size up to 4 GiB - 1 bytes encoded, or raw bytes
/// ([`send_bytes`](Self::send_bytes)). See the [module docs](self) for how
/// they travel and when the other end counts as gone.
///
/// Several threads, or several processes holding copies of the same end,
/// may send at once (each message is whole) and receive at once (each
/// message is received once).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::connection::{RecvError, pipe};
///
/// let (a, b) = pipe::<(u32, String)>()?;
/// a.send((1, "one".to_owned())).unwrap();
/// assert!(b.poll(Duration::ZERO));
/// assert_eq!(b.recv().unwrap(), (1, "one".to_owned()));
/// b.send_bytes(b"raw").unwrap();
/// assert_eq!(a.recv_bytes().unwrap(), b"raw");
/// assert_eq!(a.recv_timeout(Duration::from_millis(1)), Err(RecvError::Empty));
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct Connection<T> {
    /// Dropped first: the peer's socket hangs up before its sleepers are
    /// woken (by the halves' drops).
    socket: Stream,
    outgoing: Half,
    incoming: Inbox,
    _values: PhantomData<fn(T) -> T>,
}

/// The sending end of a [`pipe_simplex`].
///
/// # Examples
///
/// ```
/// let (rx, tx) = mproc_os::connection::pipe_simplex::<Vec<u8>>()?;
/// tx.send(vec![1, 2, 3]).unwrap();
/// tx.send_bytes(&[4, 5]).unwrap();
/// assert_eq!(rx.recv().unwrap(), [1, 2, 3]);
/// assert_eq!(rx.recv_bytes().unwrap(), [4, 5]);
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct Sender<T> {
    /// Dropped first, as in [`Connection`].
    socket: Stream,
    outgoing: Half,
    _values: PhantomData<fn(T) -> T>,
}

/// The receiving end of a [`pipe_simplex`].
///
/// # Examples
///
/// ```
/// use mproc_os::connection::{RecvError, pipe_simplex};
///
/// let (rx, tx) = pipe_simplex::<char>()?;
/// tx.send('a').unwrap();
/// drop(tx);
/// assert_eq!(rx.recv(), Ok('a'));
/// assert_eq!(rx.recv(), Err(RecvError::Disconnected));
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct Receiver<T> {
    /// Dropped first, as in [`Connection`].
    socket: Stream,
    incoming: Inbox,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket.as_fd())
            .field("outgoing", &self.outgoing.ring)
            .field("incoming", &self.incoming.half.ring)
            .finish()
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("socket", &self.socket.as_fd())
            .field("outgoing", &self.outgoing.ring)
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("socket", &self.socket.as_fd())
            .field("incoming", &self.incoming.half.ring)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Connection<T> {
    /// Sends `value` to the other end, waiting for room as long as it
    /// takes (Python's `send`).
    ///
    /// # Errors
    /// [`SendError::Disconnected`] if it had to wait and the other end is
    /// gone; [`SendError::TooLarge`], [`SendError::Encode`],
    /// [`SendError::Corrupted`]. Each hands the value back.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        send(&self.outgoing.ring, &self.socket, value, Until::Never)
    }

    /// Sends `value`, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// As [`Self::send`], and [`SendError::Full`] on timeout.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        send(
            &self.outgoing.ring,
            &self.socket,
            value,
            Until::after(timeout),
        )
    }

    /// Sends `bytes` as one message, as they are (Python's `send_bytes`):
    /// the other end receives them with [`recv_bytes`](Self::recv_bytes).
    ///
    /// # Errors
    /// As [`Self::send`] (but for the encoding).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        send_bytes(&self.outgoing.ring, &self.socket, bytes)
    }

    /// Receives the next message, waiting as long as it takes (Python's
    /// `recv`).
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the other end is gone and every
    /// message it sent has been received; [`RecvError::Decode`] for a
    /// message that is not a `T` (dropped); [`RecvError::Corrupted`].
    pub fn recv(&self) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::Never)
    }

    /// Receives the next message, waiting at most `timeout` for it to
    /// start (a message longer than the buffer, once started, is received
    /// to its end).
    ///
    /// # Errors
    /// As [`Self::recv`], and [`RecvError::Empty`] on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::after(timeout))
    }

    /// Receives the next message if one is there now.
    ///
    /// # Errors
    /// As [`Self::recv`], and [`RecvError::Empty`] when there is none.
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::now())
    }

    /// Receives the next message as its bytes (Python's `recv_bytes`): what
    /// [`send_bytes`](Self::send_bytes) sent, or the encoding of what
    /// [`send`](Self::send) sent.
    ///
    /// # Errors
    /// As [`Self::recv`] (but for the decoding).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.incoming.recv_bytes(&self.socket, Until::Never)
    }

    /// As [`Self::recv_bytes`], waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Self::recv_bytes`], and [`RecvError::Empty`] on timeout.
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.incoming
            .recv_bytes(&self.socket, Until::after(timeout))
    }

    /// As [`Self::recv_bytes`], for a message of at most `max` bytes: the
    /// length is checked before anything is allocated, and a longer
    /// message is skipped (for a server that must not let a peer make it
    /// allocate at will).
    ///
    /// # Errors
    /// As [`Self::recv_bytes`], and [`RecvError::TooLong`] for a message
    /// longer than `max` (taken and dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::connection::{RecvError, pipe};
    ///
    /// let (a, b) = pipe::<Vec<u8>>()?;
    /// a.send_bytes(&[0; 100]).unwrap();
    /// a.send_bytes(&[1; 10]).unwrap();
    /// assert_eq!(b.recv_bytes_max(16), Err(RecvError::TooLong { len: 100, max: 16 }));
    /// assert_eq!(b.recv_bytes_max(16), Ok(vec![1; 10]));
    /// # Ok::<(), mproc_os::Error>(())
    /// ```
    pub fn recv_bytes_max(&self, max: usize) -> Result<Vec<u8>, RecvError> {
        let max = max as u64;
        let mut too_long = None;
        let received = self.incoming.receive(&self.socket, Until::Never, |reader| {
            let len = reader.len();
            // A cut frame is skipped and the next one read: only the last
            // one counts.
            too_long = None;
            if len > max {
                too_long = Some(len);
                // Nothing read: `receive` skips the rest of the frame when
                // it finishes it.
                return Ok(Vec::new());
            }
            message::read_to_vec(reader, len, Some(Until::Never))
        });
        match (received, too_long) {
            (Ok(_), Some(len)) => Err(RecvError::TooLong { len, max }),
            (received, _) => received,
        }
    }

    /// Whether a `recv` would not block: a message is there, or the other
    /// end is gone. Waits at most `timeout` for that (`Duration::ZERO`:
    /// looks once, as Python's `poll()`; `Duration::MAX`: as long as it
    /// takes).
    pub fn poll(&self, timeout: Duration) -> bool {
        self.incoming.poll(&self.socket, Until::after(timeout))
    }

    /// Passes the open file descriptor `fd` to the other end, which
    /// receives its own descriptor to the same open file with
    /// [`recv_fd`](Self::recv_fd). `fd` stays open here.
    ///
    /// `sendmsg` with `SCM_RIGHTS` on the pipe's socket.
    ///
    /// # Errors
    /// [`FdError::Disconnected`] if the other end is gone;
    /// [`FdError::Os`] from `sendmsg`.
    pub fn send_fd(&self, fd: BorrowedFd<'_>) -> Result<(), FdError> {
        send_fd(&self.socket, fd)
    }

    /// Receives a file descriptor the other end passed with
    /// [`send_fd`](Self::send_fd), waiting as long as it takes. It is
    /// close-on-exec.
    ///
    /// # Errors
    /// [`FdError::Disconnected`] once the other end is gone and every
    /// descriptor it sent has been received; [`FdError::Os`] from `poll` or
    /// `recvmsg`.
    pub fn recv_fd(&self) -> Result<OwnedFd, FdError> {
        recv_fd(&self.socket, None)
    }

    /// As [`Self::recv_fd`], waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Self::recv_fd`], and [`FdError::Empty`] on timeout.
    pub fn recv_fd_timeout(&self, timeout: Duration) -> Result<OwnedFd, FdError> {
        recv_fd(&self.socket, Deadline::after(timeout))
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Sender<T> {
    /// See [`Connection::send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        send(&self.outgoing.ring, &self.socket, value, Until::Never)
    }

    /// See [`Connection::send_timeout`].
    ///
    /// # Errors
    /// As [`Connection::send_timeout`].
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        send(
            &self.outgoing.ring,
            &self.socket,
            value,
            Until::after(timeout),
        )
    }

    /// See [`Connection::send_bytes`].
    ///
    /// # Errors
    /// As [`Connection::send_bytes`].
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        send_bytes(&self.outgoing.ring, &self.socket, bytes)
    }

    /// See [`Connection::send_fd`].
    ///
    /// # Errors
    /// As [`Connection::send_fd`].
    pub fn send_fd(&self, fd: BorrowedFd<'_>) -> Result<(), FdError> {
        send_fd(&self.socket, fd)
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Receiver<T> {
    /// See [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv(&self) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::Never)
    }

    /// See [`Connection::recv_timeout`].
    ///
    /// # Errors
    /// As [`Connection::recv_timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::after(timeout))
    }

    /// See [`Connection::try_recv`].
    ///
    /// # Errors
    /// As [`Connection::try_recv`].
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.incoming.recv(&self.socket, Until::now())
    }

    /// See [`Connection::recv_bytes`].
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`].
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.incoming.recv_bytes(&self.socket, Until::Never)
    }

    /// See [`Connection::recv_bytes_timeout`].
    ///
    /// # Errors
    /// As [`Connection::recv_bytes_timeout`].
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        self.incoming
            .recv_bytes(&self.socket, Until::after(timeout))
    }

    /// See [`Connection::poll`].
    pub fn poll(&self, timeout: Duration) -> bool {
        self.incoming.poll(&self.socket, Until::after(timeout))
    }

    /// See [`Connection::recv_fd`].
    ///
    /// # Errors
    /// As [`Connection::recv_fd`].
    pub fn recv_fd(&self) -> Result<OwnedFd, FdError> {
        recv_fd(&self.socket, None)
    }

    /// See [`Connection::recv_fd_timeout`].
    ///
    /// # Errors
    /// As [`Connection::recv_fd_timeout`].
    pub fn recv_fd_timeout(&self, timeout: Duration) -> Result<OwnedFd, FdError> {
        recv_fd(&self.socket, Deadline::after(timeout))
    }
}

/// One direction of a pipe: a ring in its own region.
struct Half {
    ring: FrameRing,
    /// Keeps the ring mapped; shared by the two ends made in this process.
    region: Mapping,
}

impl Half {
    /// A new empty ring of [`BUFFER`] bytes for messages of `T`.
    fn new<T: 'static>() -> Result<Self> {
        let region = shareable("pipe", FrameRing::layout(BUFFER as u64))?;
        // SAFETY: the region was just mapped read/write for `len` bytes,
        // nobody else uses it yet, and `Half` keeps it mapped as long as the
        // ring handle (or a copy, through `clone_handle`) lives.
        let ring = unsafe {
            FrameRing::create(
                region.as_ptr(),
                region.len(),
                BUFFER as u64,
                u32::MAX,
                TypeFingerprint::of::<T>(),
                origin(),
            )?
        };
        Ok(Self {
            ring,
            region: Mapping::new(region),
        })
    }

    /// Attaches to a ring of messages of `T` that another process made in
    /// `region`, after checking its header.
    fn attach<T: 'static>(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes, and
        // `Half` keeps it mapped as long as the ring handle (or a copy,
        // through `clone_handle`) lives.
        let ring = unsafe {
            FrameRing::attach(region.as_ptr(), region.len(), TypeFingerprint::of::<T>())?
        };
        Ok(Self {
            ring,
            region: Mapping::new(region),
        })
    }

    /// A duplicate of the descriptor of the ring's region, for a token of
    /// `kind`.
    fn token_fd(&self, kind: &'static str) -> Result<OwnedFd> {
        region_fd(&self.region, kind)
    }

    /// A second handle to the same ring (for the other end).
    fn clone_handle(&self) -> Self {
        Self {
            ring: self.ring,
            region: self.region.clone(),
        }
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        // The socket of the end being dropped is closed already: a woken
        // peer that looks at its socket sees the hang-up if this was the
        // last copy of the end. The region is still mapped (fields drop
        // after this).
        self.ring.wake_all(&Futex);
    }
}

/// The receiving direction of an end.
struct Inbox {
    half: Half,
    /// Set once a receive gave up in the middle of a message whose writer
    /// is gone: the rest of the ring can never be read.
    broken: AtomicBool,
}

impl Inbox {
    fn new(half: Half) -> Self {
        Self {
            half,
            broken: AtomicBool::new(false),
        }
    }

    fn recv<T: DeserializeOwned + 'static>(
        &self,
        socket: &Stream,
        until: Until,
    ) -> Result<T, RecvError> {
        // In the middle of a message, wait for its writer as long as it
        // lives: it finishes the message or cuts it.
        self.receive(socket, until, |reader| {
            message::decode::<T, _>(reader, Some(Until::Never))
        })
    }

    fn recv_bytes(&self, socket: &Stream, until: Until) -> Result<Vec<u8>, RecvError> {
        self.receive(socket, until, |reader| {
            let len = reader.len();
            message::read_to_vec(reader, len, Some(Until::Never))
        })
    }

    /// Waits until `until` for a message to start and reads it with `read`,
    /// skipping cut frames.
    fn receive<R>(
        &self,
        socket: &Stream,
        until: Until,
        mut read: impl FnMut(&mut FrameReader<'_, Watch<'_>>) -> Result<R, DecodeStop>,
    ) -> Result<R, RecvError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(RecvError::Disconnected);
        }
        let ring = &self.half.ring;
        let watch = Watch::new(socket);
        loop {
            let mut reader = match ring.begin_read(&watch, owner_id(), Some(until)) {
                Ok(reader) => reader,
                Err(BeginReadError::Empty) => {
                    if !watch.peer_gone() {
                        return Err(RecvError::Empty);
                    }
                    // The peer is gone, so what it published is all there
                    // is: one last look (quick, since every wait of a
                    // watch whose peer is gone times out at once).
                    match ring.begin_read(&watch, owner_id(), Some(until)) {
                        Ok(reader) => reader,
                        Err(BeginReadError::Corrupted) => return Err(RecvError::Corrupted),
                        Err(_) => return Err(RecvError::Disconnected),
                    }
                }
                // Nothing closes a pipe's ring; a peer that did is gone.
                Err(BeginReadError::Closed) => return Err(RecvError::Disconnected),
                Err(_) => return Err(RecvError::Corrupted),
            };
            match read(&mut reader) {
                // The whole frame is read: `finish` does not wait. It fails
                // only for a cut frame, which holds no message.
                Ok(value) => {
                    if reader.finish().is_ok() {
                        return Ok(value);
                    }
                }
                // A cut frame holds no message: take the next one.
                Err(DecodeStop::Cut) => {
                    let _ = reader.finish();
                }
                // With `Until::Never` only a peer that is gone stops a read
                // in the middle of a frame.
                Err(DecodeStop::TimedOut) => return Err(self.abandon(reader)),
                Err(DecodeStop::Codec(error)) => match skip_rest(&mut reader) {
                    Ok(()) => {
                        if reader.finish().is_ok() {
                            return Err(RecvError::Decode(error));
                        }
                    }
                    Err(ReadError::Cut) => {
                        let _ = reader.finish();
                    }
                    Err(_) => return Err(self.abandon(reader)),
                },
            }
        }
    }

    /// Gives up on a frame whose writer is gone in the middle of it: ending
    /// it would wait for bytes that never come, so the reader is forgotten
    /// (keeping the reader lock) and this end receives nothing more.
    fn abandon(&self, reader: FrameReader<'_, Watch<'_>>) -> RecvError {
        std::mem::forget(reader);
        self.broken.store(true, Ordering::Relaxed);
        RecvError::Disconnected
    }

    /// A look for [`crate::wait()`]: ready when a message is there or the
    /// peer is gone (as `poll` says), registered for the next message
    /// otherwise. A peer that exits wakes nobody, so `wait` looks again
    /// after slices.
    fn look(&self, socket: &Stream) -> Look<'_> {
        if self.broken.load(Ordering::Relaxed) {
            return Look::Ready;
        }
        match Look::from(self.half.ring.watch_read()) {
            Look::Sleep { word, expected, .. } => {
                if Watch::new(socket).peer_gone() {
                    Look::Ready
                } else {
                    Look::Sleep {
                        word,
                        expected,
                        recheck: true,
                    }
                }
            }
            look => look,
        }
    }

    fn poll(&self, socket: &Stream, until: Until) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return true;
        }
        let watch = Watch::new(socket);
        match self.half.ring.begin_read(&watch, owner_id(), Some(until)) {
            Ok(reader) => {
                reader.unread();
                true
            }
            Err(BeginReadError::Empty) => watch.peer_gone(),
            // `recv` would fail at once.
            Err(_) => true,
        }
    }
}

impl<T> Waits for Connection<T> {
    fn look(&self) -> Look<'_> {
        self.incoming.look(&self.socket)
    }
}

impl<T> Waits for Receiver<T> {
    fn look(&self) -> Look<'_> {
        self.incoming.look(&self.socket)
    }
}

/// Reads past what is left of the frame, waiting for its writer as long as
/// it lives.
fn skip_rest(reader: &mut FrameReader<'_, Watch<'_>>) -> Result<(), ReadError> {
    while reader.remaining() > 0 {
        let n = reader.available().len();
        if n == 0 {
            reader.wait_until(Some(Until::Never))?;
        } else {
            reader.consume(n);
        }
    }
    Ok(())
}

/// Encodes `value` into `ring`, waiting for room until `until`.
fn send<T: Serialize + 'static>(
    ring: &FrameRing,
    socket: &Stream,
    value: T,
    until: Until,
) -> Result<(), SendError<T>> {
    let len = match message::encoded_len(&value) {
        Ok(len) => len,
        Err(error) => return Err(SendError::Encode(value, error)),
    };
    let watch = Watch::new(socket);
    let full_or_gone = |value| {
        if watch.peer_gone() {
            SendError::Disconnected(value)
        } else {
            SendError::Full(value)
        }
    };
    let mut writer = match ring.begin_write(&watch, owner_id(), len, Some(until)) {
        Ok(writer) => writer,
        Err(BeginWriteError::Full) => return Err(full_or_gone(value)),
        Err(BeginWriteError::TooLarge) => return Err(SendError::TooLarge(value)),
        // Nothing closes a pipe's ring; a peer that did is gone.
        Err(BeginWriteError::Closed) => return Err(SendError::Disconnected(value)),
        Err(_) => return Err(SendError::Corrupted(value)),
    };
    match message::encode(&value, &mut writer, Some(until)) {
        // Every byte is written, so the frame ends whole.
        Ok(()) => writer.finish().map_err(|_| full_or_gone(value)),
        // Dropping the writer cuts the frame: nobody receives it.
        Err(EncodeStop::TimedOut) => {
            drop(writer);
            Err(full_or_gone(value))
        }
        Err(EncodeStop::Codec(error)) => Err(SendError::Encode(value, error)),
    }
}

/// Writes `bytes` into `ring` as one frame, waiting for room as long as the
/// peer lives.
fn send_bytes(ring: &FrameRing, socket: &Stream, bytes: &[u8]) -> Result<(), SendError<()>> {
    let watch = Watch::new(socket);
    let until = Some(Until::Never);
    let mut writer = match ring.begin_write(&watch, owner_id(), bytes.len() as u64, until) {
        Ok(writer) => writer,
        Err(BeginWriteError::TooLarge) => return Err(SendError::TooLarge(())),
        // Without a deadline only a peer that is gone stops a wait.
        Err(BeginWriteError::Full | BeginWriteError::Closed) => {
            return Err(SendError::Disconnected(()));
        }
        Err(_) => return Err(SendError::Corrupted(())),
    };
    // As above; dropping the writer on an error cuts the frame.
    writer
        .write(bytes, until)
        .map_err(|_| SendError::Disconnected(()))?;
    writer.finish().map_err(|_| SendError::Disconnected(()))
}

fn send_fd(socket: &Stream, fd: BorrowedFd<'_>) -> Result<(), FdError> {
    socket
        .send_message(&[], &[fd])
        .map_err(|error| match error.errno() {
            Some(Errno::PIPE | Errno::CONNRESET) => FdError::Disconnected,
            _ => FdError::Os(error),
        })
}

fn recv_fd(socket: &Stream, deadline: Option<Deadline>) -> Result<OwnedFd, FdError> {
    match socket.recv_message(0, deadline) {
        Ok(None) => Err(FdError::Disconnected),
        Ok(Some(message)) => {
            let mut fds = message.fds.into_iter();
            match (fds.next(), fds.next()) {
                (Some(fd), None) => Ok(fd),
                _ => Err(FdError::Os(os("recvmsg")(Errno::PROTO))),
            }
        }
        Err(error) => Err(match error.errno() {
            Some(Errno::TIMEDOUT) => FdError::Empty,
            Some(Errno::CONNRESET) => FdError::Disconnected,
            _ => FdError::Os(error),
        }),
    }
}

/// Until when a side waits: never stopping by itself, or until a deadline.
/// Either way it stops when the peer is gone (see [`Watch`]).
#[derive(Clone, Copy, Debug)]
enum Until {
    Never,
    At(Deadline),
}

impl Until {
    /// `timeout` from now (`Never` when that cannot be represented, as for
    /// `Duration::MAX`).
    fn after(timeout: Duration) -> Self {
        Deadline::after(timeout).map_or(Self::Never, Self::At)
    }

    /// A deadline that has passed already: look once.
    fn now() -> Self {
        Self::At(Deadline::now())
    }
}

/// The futex, with an eye on the peer: a [`Wait`] that sleeps in slices
/// and, between them, looks at the socket for a hang-up. Once the peer is
/// gone every wait fails at once, so the ring's blocking calls give up.
struct Watch<'a> {
    socket: BorrowedFd<'a>,
    hung_up: Cell<bool>,
}

impl<'a> Watch<'a> {
    fn new(socket: &'a Stream) -> Self {
        Self {
            socket: socket.as_fd(),
            hung_up: Cell::new(false),
        }
    }

    /// Whether every holder of the other end has dropped it or exited.
    ///
    /// `poll(POLLRDHUP)` with a zero timeout: the other end gone reads as
    /// `POLLHUP` (or `POLLRDHUP`, or `POLLERR` when it left data unread),
    /// whereas a descriptor waiting to be received only makes it readable.
    fn peer_gone(&self) -> bool {
        if self.hung_up.get() {
            return true;
        }
        let mut fds = [PollFd::from_borrowed_fd(self.socket, PollFlags::RDHUP)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let gone = match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR),
            // Interrupted: look again after the next slice.
            Err(Errno::INTR) => false,
            // A socket that cannot be polled is no way to reach the peer.
            Err(_) => true,
        };
        self.hung_up.set(gone);
        gone
    }
}

impl Wait for Watch<'_> {
    type Deadline = Until;

    /// Sleeps on the futex in slices until `deadline`, looking at the peer
    /// before the first and after each; `Err(TimedOut)` once the deadline
    /// passed or the peer is gone.
    fn wait(
        &self,
        word: &mproc_core::sync::AtomicU32,
        expected: u32,
        deadline: Option<Until>,
    ) -> Result<(), TimedOut> {
        if self.peer_gone() {
            return Err(TimedOut);
        }
        let until = deadline.unwrap_or(Until::Never);
        let mut slice = FIRST_SLICE;
        loop {
            let end = match (until, Deadline::after(slice)) {
                (Until::At(at), Some(slice_end)) => Some(at.min(slice_end)),
                (Until::At(at), None) => Some(at),
                (Until::Never, slice_end) => slice_end,
            };
            if Futex.wait(word, expected, end).is_ok() {
                return Ok(());
            }
            if matches!(until, Until::At(at) if at.has_passed()) || self.peer_gone() {
                return Err(TimedOut);
            }
            slice = (slice * 2).min(LAST_SLICE);
        }
    }

    #[inline]
    fn wake(&self, word: &mproc_core::sync::AtomicU32, count: u32) {
        Futex.wake(word, count);
    }

    #[inline]
    fn expired(&self, deadline: Until) -> bool {
        self.hung_up.get() || matches!(deadline, Until::At(at) if at.has_passed())
    }

    #[inline]
    fn spin_rounds(&self) -> u32 {
        Futex.spin_rounds()
    }

    #[inline]
    fn relax(&self, round: u32) {
        Futex.relax(round);
    }

    /// As [`Futex`]: at most [`LIVENESS_CHECK_MS`](mproc_core::wait::LIVENESS_CHECK_MS)
    /// from now, so a side that waits for a lock or a frame whose owner
    /// may have died looks at that owner (an end may be shared by several
    /// processes, so the socket alone does not tell).
    fn check_deadline(&self, deadline: Option<Until>) -> (Option<Until>, bool) {
        let at = match deadline {
            Some(Until::At(at)) => Some(at),
            _ => None,
        };
        match Futex.check_deadline(at) {
            (Some(check), true) => (Some(Until::At(check)), true),
            _ => (deadline, false),
        }
    }

    #[inline]
    fn owner_gone(&self, id: u32, start: Option<u32>) -> bool {
        Futex.owner_gone(id, start)
    }
}

/// A duplicate of an end's socket, for its token.
fn socket_fd(socket: &Stream) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(socket, 3).map_err(os("fcntl"))
}

/// The socket of an end attached from a token, after checking it is one.
fn attach_socket(fd: OwnedFd) -> Result<Stream> {
    check_stream_socket(&fd)?;
    Ok(Stream::from_fd(fd))
}

impl<T> Sealed for Connection<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Share for Connection<T> {
    const KIND: &'static str = "Connection";

    /// A token holding the end's socket, its outgoing ring and its
    /// incoming ring.
    fn token(&self) -> Result<Token<Self>> {
        Ok(Token::new(vec![
            socket_fd(&self.socket)?,
            self.outgoing.token_fd(Self::KIND)?,
            self.incoming.half.token_fd(Self::KIND)?,
        ]))
    }

    fn from_token(token: Token<Self>) -> Result<Self> {
        let [socket, outgoing, incoming] = token.into_fds::<3>()?;
        Ok(Self {
            socket: attach_socket(socket)?,
            outgoing: Half::attach::<T>(attach_region(outgoing)?)?,
            incoming: Inbox::new(Half::attach::<T>(attach_region(incoming)?)?),
            _values: PhantomData,
        })
    }
}

impl<T> Sealed for Sender<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Share for Sender<T> {
    const KIND: &'static str = "Sender";

    /// A token holding the end's socket and its ring.
    fn token(&self) -> Result<Token<Self>> {
        Ok(Token::new(vec![
            socket_fd(&self.socket)?,
            self.outgoing.token_fd(Self::KIND)?,
        ]))
    }

    fn from_token(token: Token<Self>) -> Result<Self> {
        let [socket, outgoing] = token.into_fds::<2>()?;
        Ok(Self {
            socket: attach_socket(socket)?,
            outgoing: Half::attach::<T>(attach_region(outgoing)?)?,
            _values: PhantomData,
        })
    }
}

impl<T> Sealed for Receiver<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Share for Receiver<T> {
    const KIND: &'static str = "Receiver";

    /// A token holding the end's socket and its ring.
    fn token(&self) -> Result<Token<Self>> {
        Ok(Token::new(vec![
            socket_fd(&self.socket)?,
            self.incoming.half.token_fd(Self::KIND)?,
        ]))
    }

    fn from_token(token: Token<Self>) -> Result<Self> {
        let [socket, incoming] = token.into_fds::<2>()?;
        Ok(Self {
            socket: attach_socket(socket)?,
            incoming: Inbox::new(Half::attach::<T>(attach_region(incoming)?)?),
            _values: PhantomData,
        })
    }
}
