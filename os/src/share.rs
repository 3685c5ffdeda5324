//! Sharing objects with processes that were not forked from their creator:
//! [`Token`]s that travel with the file descriptors behind an object
//! (Python pickling a `Lock` or a `Queue` for a `spawn` child).
//!
//! # What a token is
//!
//! Every object made by `new()` (or `pipe()`) lives in a sealed `memfd`
//! region ([`Region::memfd`](crate::shm::Region::memfd)): a file with no
//! name that the kernel frees with its last descriptor and mapping. A
//! child made with `fork` simply inherits the mapping. Any other process
//! needs the descriptor: [`Share::token`] duplicates the object's
//! descriptors (one per region, plus the socket of a pipe end) into a
//! [`Token`], and [`Token::attach`] in the other process maps them and
//! attaches the object, after the same header check as every `attach`
//! (magic, layout version, object kind, element type fingerprint). So a
//! token attached as the wrong type is a typed error
//! ([`Error::Token`] or
//! [`Error::Layout`]), never undefined behaviour.
//!
//! | type | descriptors in its token |
//! |---|---|
//! | [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`], [`Value`], [`Array`], [`Queue`], [`PodQueue`], [`SimpleQueue`] | its region |
//! | [`JoinableQueue`] | the queue's region, the task counter's region |
//! | [`Connection`] | its socket, the outgoing ring, the incoming ring |
//! | [`Sender`] / [`Receiver`] | its socket, its ring |
//!
//! [`spsc`](crate::spsc) channels have no tokens: each end is meant to be
//! the only one of its side, which a token would duplicate. They stay in
//! anonymous memory, shared through `fork`.
//!
//! A token attached elsewhere is one more handle to the *same* object: a
//! lock taken there excludes this process, a [`Connection`] token is one
//! more copy of the same end of the pipe (its peer sees it gone once every
//! copy is dropped or its process exited).
//!
//! # How the descriptors travel
//!
//! A descriptor is not a number another process can use: it travels over a
//! Unix socket as `SCM_RIGHTS` ancillary data, beside the bytes. A token is
//! `Serialize` and `Deserialize`, but only inside a scope that carries the
//! descriptors alongside:
//!
//! * while [`collect_fds`] runs (or [`encode`], its postcard form), a
//!   token being serialized hands a duplicate of each of its descriptors to
//!   the scope and writes only their indices; the caller sends the bytes
//!   and the collected descriptors together;
//! * while [`provide_fds`] runs (or [`decode`]) with the descriptors that
//!   came with the bytes, a token being deserialized takes its descriptors
//!   back by index. Descriptors nobody took are closed when the scope ends.
//!
//! mproc does this for the arguments of `Builder::spawn_fn` with the
//! `Spawn` and `ForkServer` start methods (with `Fork` the arguments are
//! not serialized at all: the child inherits the token itself). Serialized
//! anywhere else (into a [`Queue`], say), a token fails with a clear error
//! ([`ShareError::NoFdChannel`]) instead of writing a number that would mean
//! nothing, or something else, in the receiver.
//!
//! # Costs
//!
//! A memfd region costs one descriptor per object for as long as a handle
//! to it lives (the mapping alone would keep the memory, but the descriptor
//! is what can be passed on), and `memfd_create`, `ftruncate` and `fcntl`
//! on top of the `mmap` when it is made: a few microseconds per object
//! (creating and dropping a `Lock` went from about 16 µs in anonymous
//! memory to about 18 µs in a memfd on a 2-core x86_64 VM; both are
//! dominated by mapping and faulting the page in). Descriptors are
//! close-on-exec, so
//! programs run with `exec` do not inherit them; children made with `fork`
//! do, until they exit. A process that keeps thousands of objects alive
//! needs a matching `RLIMIT_NOFILE` (often 1024 by default, `ulimit -n`).
//! The uncontended fast path of every object is unchanged: no system call.
//! A program that wants no descriptor per object can still create objects
//! in [`Region::anonymous`] with `create_in`; those have no token
//! ([`TokenError::NoFd`]) and are shared through `fork` only.
//!
//! A token in the arguments of a child costs one more descriptor per
//! region in this process while the child starts (the duplicates sent),
//! and one message carries at most [`MAX_FDS`] descriptors.
//!
//! # Examples
//!
//! ```
//! use mproc_os::share::{Share, Token, decode, encode};
//! use mproc_os::{Lock, Queue};
//!
//! let lock = Lock::new()?;
//! let queue = Queue::<String>::new(8)?;
//! // What a parent sends: bytes, and the descriptors beside them.
//! let sent = encode(&(lock.token()?, queue.token()?))?;
//! assert_eq!(sent.fds.len(), 2);
//! // What the other process does with them.
//! let (lock_token, queue_token): (Token<Lock>, Token<Queue<String>>) =
//!     decode(&sent.bytes, sent.fds)?;
//! let (lock2, queue2) = (lock_token.attach()?, queue_token.attach()?);
//! let guard = lock2.lock();
//! assert!(lock.try_lock().is_none());
//! drop(guard);
//! queue2.put("hello".to_owned())?;
//! assert_eq!(queue.get()?, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::cell::RefCell;
use core::fmt;
use core::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result, os};
use crate::shm::Region;
use crate::socket::MAX_FDS;
#[cfg(doc)]
use crate::{
    Array, Barrier, BoundedSemaphore, Condition, Connection, Event, JoinableQueue, Lock, PodQueue,
    Queue, RLock, Receiver, Semaphore, Sender, SimpleQueue, Value,
};

mod sealed {
    /// Only mproc's own types can be shared with tokens.
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// The types that can be turned into a [`Token`] and attached again in
/// another process: every process-shared type of mproc-os (see the
/// [module docs](self) for what each token carries).
///
/// # Examples
///
/// ```
/// use mproc_os::Event;
/// use mproc_os::share::Share;
///
/// let event = Event::new()?;
/// // In this process for the example; normally in a child that received
/// // the token among its arguments.
/// let same = Event::from_token(event.token()?)?;
/// same.set();
/// assert!(event.is_set());
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub trait Share: Sized + Sealed {
    /// The name of the type, as its tokens record it (`"Lock"`,
    /// `"Queue"`, ...; the element type is checked by the header).
    const KIND: &'static str;

    /// A token for this object: duplicates (close-on-exec) of the
    /// descriptors behind it. The token keeps the object's memory alive
    /// until it is dropped or attached.
    ///
    /// # Errors
    /// [`Error::Token`] with [`TokenError::NoFd`] for an object created in
    /// a region without a descriptor ([`Region::anonymous`]), which only
    /// `fork` shares; [`Error::Os`] from `fcntl(F_DUPFD_CLOEXEC)`
    /// (`EMFILE`).
    fn token(&self) -> Result<Token<Self>>;

    /// Attaches to the object a token stands for (usually a token received
    /// from another process): maps its regions and checks their headers.
    ///
    /// # Errors
    /// [`Error::Token`] if the token was made for another type, carries
    /// the wrong number of descriptors, or descriptors of the wrong sort
    /// (a memfd not sealed against shrinking, a socket that is not a Unix
    /// stream socket); [`Error::Layout`] if a region does not hold the
    /// object expected (another kind, another element type, ...);
    /// [`Error::Os`] from `fstat`, `mmap`, `fcntl` or `getsockopt`.
    fn from_token(token: Token<Self>) -> Result<Self>;
}

/// An object of type `T` as it travels to another process: the descriptors
/// behind it (owned, close-on-exec) and the name of its type.
///
/// Made by [`Share::token`], turned back into a `T` by
/// [`attach`](Token::attach). It serializes only where its descriptors
/// travel along (see the [module docs](self)): in the arguments of a
/// `Spawn` or `ForkServer` child, or inside [`encode`] / [`collect_fds`].
///
/// # Examples
///
/// ```
/// use mproc_os::Semaphore;
/// use mproc_os::share::Share;
///
/// let semaphore = Semaphore::new(2)?;
/// let token = semaphore.token()?;
/// assert_eq!(token.kind(), "Semaphore");
/// assert_eq!(token.fd_count(), 1);
/// let same = token.attach()?;
/// same.acquire();
/// assert_eq!(semaphore.value(), 1);
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct Token<T> {
    /// [`Share::KIND`] of the type the token was made from.
    kind: String,
    fds: Vec<OwnedFd>,
    _object: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("fds", &self.fds)
            .finish()
    }
}

impl<T: Share> Token<T> {
    /// A token of `T` over `fds`.
    pub(crate) fn new(fds: Vec<OwnedFd>) -> Self {
        Self {
            kind: T::KIND.to_owned(),
            fds,
            _object: PhantomData,
        }
    }

    /// Attaches to the object (see [`Share::from_token`]).
    ///
    /// # Errors
    /// As [`Share::from_token`].
    pub fn attach(self) -> Result<T> {
        T::from_token(self)
    }

    /// The descriptors, after checking that the token was made for `T` and
    /// holds `N` of them.
    pub(crate) fn into_fds<const N: usize>(self) -> Result<[OwnedFd; N]> {
        if self.kind != T::KIND {
            return Err(Error::Token(TokenError::WrongKind {
                expected: T::KIND,
                found: self.kind,
            }));
        }
        let found = self.fds.len();
        self.fds.try_into().map_err(|_| {
            Error::Token(TokenError::WrongFdCount {
                kind: T::KIND,
                expected: N,
                found,
            })
        })
    }
}

impl<T> Token<T> {
    /// The name of the type the token was made from ([`Share::KIND`]).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The number of descriptors the token holds.
    pub fn fd_count(&self) -> usize {
        self.fds.len()
    }

    /// A second token for the same object (duplicating its descriptors).
    ///
    /// # Errors
    /// [`Error::Os`] from `fcntl(F_DUPFD_CLOEXEC)` (`EMFILE`).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            kind: self.kind.clone(),
            fds: self
                .fds
                .iter()
                .map(|fd| dup(fd.as_fd()))
                .collect::<Result<_>>()?,
            _object: PhantomData,
        })
    }
}

/// Why a [`Token`] cannot be made, or attached as the type asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token was made for another type.
    WrongKind {
        /// The type it is attached as.
        expected: &'static str,
        /// The type it was made for.
        found: String,
    },
    /// The token does not hold as many descriptors as its type needs.
    WrongFdCount {
        /// The type it is attached as.
        kind: &'static str,
        /// How many that type needs.
        expected: usize,
        /// How many it holds.
        found: usize,
    },
    /// The object lives in a region without a descriptor (anonymous
    /// memory), which only children made with `fork` can share.
    NoFd {
        /// The type of the object.
        kind: &'static str,
    },
    /// A descriptor is a memfd that is not sealed against shrinking: its
    /// holders could truncate it under our mapping.
    Unsealed,
    /// A descriptor that should be one end of a pipe's Unix stream socket
    /// is not.
    NotAStreamSocket,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongKind { expected, found } => {
                write!(f, "a token of a {found} cannot be attached as a {expected}")
            }
            Self::WrongFdCount {
                kind,
                expected,
                found,
            } => write!(
                f,
                "a token of a {kind} holds {expected} file descriptors, this one {found}"
            ),
            Self::NoFd { kind } => write!(
                f,
                "this {kind} lives in anonymous memory, which only children made with fork \
                 share: create it with new() (a memfd) to make tokens of it"
            ),
            Self::Unsealed => {
                f.write_str("a token's memfd is not sealed against shrinking (not made by mproc?)")
            }
            Self::NotAStreamSocket => {
                f.write_str("a token's socket is not a Unix stream socket (not made by mproc?)")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// Why a value holding tokens did not serialize or deserialize with its
/// descriptors.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShareError {
    /// A token was serialized where its descriptors cannot travel: outside
    /// [`collect_fds`] / [`encode`] (and so outside the arguments of a
    /// `Spawn` or `ForkServer` child).
    NoFdChannel,
    /// A token was deserialized outside [`provide_fds`] / [`decode`]: no
    /// descriptors came with the bytes.
    NoFdsReceived,
    /// A token refers to descriptor `index`, but only `received` came.
    MissingFd {
        /// The index in the bytes.
        index: u32,
        /// The number of descriptors that came.
        received: usize,
    },
    /// Two tokens refer to the same descriptor.
    FdReused {
        /// The index in the bytes.
        index: u32,
    },
    /// The value holds more descriptors than one message can carry.
    TooManyFds {
        /// The most one message carries ([`MAX_FDS`]).
        max: usize,
    },
    /// A descriptor could not be duplicated (`EMFILE`, ...).
    Os(Error),
    /// The value does not encode, or the bytes do not decode, for a reason
    /// of postcard's.
    Codec(postcard::Error),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFdChannel => f.write_str(
                "a Token cannot be written as bytes alone (its file descriptors must travel \
                 beside them): pass it in the arguments of a Spawn or ForkServer child \
                 (Builder::spawn_fn), or serialize it inside mproc_os::share::encode or \
                 collect_fds and send the descriptors along",
            ),
            Self::NoFdsReceived => f.write_str(
                "a Token was read without the file descriptors that came with its bytes: \
                 deserialize it inside mproc_os::share::decode or provide_fds",
            ),
            Self::MissingFd { index, received } => write!(
                f,
                "a Token refers to file descriptor {index}, but {received} came with the bytes"
            ),
            Self::FdReused { index } => {
                write!(f, "two Tokens refer to the same file descriptor {index}")
            }
            Self::TooManyFds { max } => write!(
                f,
                "the value holds more than {max} file descriptors, more than one message carries"
            ),
            Self::Os(error) => write!(f, "a Token's file descriptor: {error}"),
            Self::Codec(error) => write!(f, "postcard: {error}"),
        }
    }
}

impl std::error::Error for ShareError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os(error) => Some(error),
            Self::Codec(error) => Some(error),
            _ => None,
        }
    }
}

/// A value's bytes and the descriptors that travel beside them, as
/// [`encode`] makes them.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The value, postcard-encoded; its tokens hold indices into `fds`.
    pub bytes: Vec<u8>,
    /// The descriptors of its tokens (duplicates, close-on-exec), in the
    /// order of their indices.
    pub fds: Vec<OwnedFd>,
}

thread_local! {
    /// The descriptors the tokens serialized in the innermost
    /// [`collect_fds`] of this thread handed over.
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// The descriptors the innermost [`provide_fds`] of this thread
    /// provides; taken ones are `None`.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// Why the last token of this thread refused to serialize or
    /// deserialize: serde formats that keep no message (postcard) report
    /// it through [`take_refusal`].
    static REFUSAL: RefCell<Option<ShareError>> = const { RefCell::new(None) };
}

/// Records `error` for [`take_refusal`] and returns its message.
fn refuse(error: ShareError) -> String {
    let message = error.to_string();
    REFUSAL.with_borrow_mut(|refusal| *refusal = Some(error));
    message
}

/// Why the last token serialized or deserialized on this thread refused,
/// if one did since the last call: for formats whose errors keep no
/// message (postcard's `SerdeSerCustom`).
pub(crate) fn take_refusal() -> Option<ShareError> {
    REFUSAL.with_borrow_mut(Option::take)
}

/// Restores a thread-local table when a scope ends, unwinding included.
struct Restore<'a, V: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<V>>>,
    /// The enclosing scope's table (`None` outside any scope).
    previous: Option<V>,
    /// Where the scope's own table goes.
    out: &'a mut Option<V>,
}

impl<V: 'static> Drop for Restore<'_, V> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        *self.out = self
            .key
            .with_borrow_mut(|table| core::mem::replace(table, previous));
    }
}

/// Runs `f`, handing it a table of this thread; returns what `f` returned
/// and the table as `f` left it. The previous table (of an enclosing
/// scope) is put back afterwards.
fn scoped<V: 'static, R>(
    key: &'static std::thread::LocalKey<RefCell<Option<V>>>,
    table: V,
    f: impl FnOnce() -> R,
) -> (R, Option<V>) {
    let mut out = None;
    let result = {
        let previous = key.with_borrow_mut(|slot| slot.replace(table));
        let _restore = Restore {
            key,
            previous,
            out: &mut out,
        };
        f()
    };
    (result, out)
}

/// Runs `f`, which serializes values holding tokens, and returns what it
/// returned with the descriptors those tokens handed over (duplicates,
/// close-on-exec), in the order of the indices written.
///
/// Send the descriptors beside the bytes (say, with
/// [`Stream::send_message`](crate::socket::Stream::send_message)); the
/// receiver deserializes inside [`provide_fds`]. Scopes nest: a token
/// hands its descriptors to the innermost one.
///
/// # Examples
///
/// ```
/// use mproc_os::Lock;
/// use mproc_os::share::{Share, collect_fds};
///
/// let lock = Lock::new()?;
/// let token = lock.token()?;
/// let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&token));
/// assert!(bytes.is_ok());
/// assert_eq!(fds.len(), 1);
/// // Outside the scope a token refuses to serialize.
/// assert!(postcard::to_allocvec(&token).is_err());
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let (result, fds) = scoped(&OUTGOING, Vec::new(), f);
    (result, fds.unwrap_or_default())
}

/// Runs `f`, which deserializes values holding tokens, with `fds` (the
/// descriptors that came with the bytes) for them to take by index.
/// Descriptors that no token took are closed when `f` returns.
///
/// # Examples
///
/// ```
/// use mproc_os::Value;
/// use mproc_os::share::{Share, Token, collect_fds, provide_fds};
///
/// let value = Value::new(1u32)?;
/// let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&value.token().unwrap()));
/// let token = provide_fds(fds, || postcard::from_bytes::<Token<Value<u32>>>(&bytes.unwrap()));
/// token.unwrap().attach()?.set(2);
/// assert_eq!(value.get(), 2);
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub fn provide_fds<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    scoped(&INCOMING, fds.into_iter().map(Some).collect(), f).0
}

/// Encodes `value` with postcard, collecting the descriptors of the tokens
/// it holds ([`collect_fds`]).
///
/// # Errors
/// [`ShareError::TooManyFds`] for more than [`MAX_FDS`] descriptors,
/// [`ShareError::Os`] if one could not be duplicated, or
/// [`ShareError::Codec`] if the value does not encode.
///
/// # Examples
///
/// See the [module docs](self).
pub fn encode<V: Serialize + ?Sized>(value: &V) -> Result<Encoded, ShareError> {
    take_refusal();
    let (bytes, fds) = collect_fds(|| postcard::to_allocvec(value));
    match bytes {
        Ok(bytes) => Ok(Encoded { bytes, fds }),
        Err(error) => Err(take_refusal().unwrap_or(ShareError::Codec(error))),
    }
}

/// Decodes a `V` from `bytes` with postcard, its tokens taking their
/// descriptors from `fds` ([`provide_fds`]); descriptors left over are
/// closed.
///
/// # Errors
/// [`ShareError::MissingFd`] or [`ShareError::FdReused`] for a token whose
/// index is not among `fds` or was taken already, or
/// [`ShareError::Codec`] if the bytes do not decode.
///
/// # Examples
///
/// ```
/// use mproc_os::Lock;
/// use mproc_os::share::{Share, ShareError, Token, decode, encode};
///
/// let sent = encode(&Lock::new()?.token()?)?;
/// // Without the descriptor the token cannot be read.
/// let error = decode::<Token<Lock>>(&sent.bytes, Vec::new()).unwrap_err();
/// assert!(matches!(error, ShareError::MissingFd { index: 0, received: 0 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode<V: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<V, ShareError> {
    take_refusal();
    provide_fds(fds, || postcard::from_bytes(bytes))
        .map_err(|error| take_refusal().unwrap_or(ShareError::Codec(error)))
}

/// What a token writes: the name of its type and the indices of its
/// descriptors among those travelling with the bytes.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Token")]
struct Wire<K> {
    kind: K,
    fds: Vec<u32>,
}

impl<T> Serialize for Token<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let indices = OUTGOING
            .with_borrow_mut(|table| {
                let table = table.as_mut().ok_or(ShareError::NoFdChannel)?;
                if table.len() + self.fds.len() > MAX_FDS {
                    return Err(ShareError::TooManyFds { max: MAX_FDS });
                }
                let mut indices = Vec::with_capacity(self.fds.len());
                for fd in &self.fds {
                    let index = u32::try_from(table.len())
                        .map_err(|_| ShareError::TooManyFds { max: MAX_FDS })?;
                    table.push(dup(fd.as_fd()).map_err(ShareError::Os)?);
                    indices.push(index);
                }
                Ok(indices)
            })
            .map_err(|error| S::Error::custom(refuse(error)))?;
        Wire {
            kind: self.kind.as_str(),
            fds: indices,
        }
        .serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Token<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<String>::deserialize(deserializer)?;
        let fds = INCOMING
            .with_borrow_mut(|table| {
                let table = table.as_mut().ok_or(ShareError::NoFdsReceived)?;
                let received = table.len();
                wire.fds
                    .iter()
                    .map(|&index| {
                        table
                            .get_mut(index as usize)
                            .ok_or(ShareError::MissingFd { index, received })?
                            .take()
                            .ok_or(ShareError::FdReused { index })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|error| D::Error::custom(refuse(error)))?;
        // The kind is checked by `attach`, which says so with a typed
        // error.
        Ok(Token {
            kind: wire.kind,
            fds,
            _object: PhantomData,
        })
    }
}

/// A close-on-exec duplicate of `fd` (above the standard streams).
///
/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`.
fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(os("fcntl"))
}

/// A duplicate of the descriptor behind `region`, for a token of `kind`.
pub(crate) fn region_fd(region: &Region, kind: &'static str) -> Result<OwnedFd> {
    dup(region.fd().ok_or(Error::Token(TokenError::NoFd { kind }))?)
}

/// Maps the region a token's descriptor stands for.
///
/// A memfd must be sealed against shrinking, as mproc's are; a descriptor
/// of another file (a named segment's) is mapped as
/// [`Region::open_named`] maps one.
///
/// `fcntl(fd, F_GET_SEALS)`, then as [`Region::from_fd`].
pub(crate) fn attach_region(fd: OwnedFd) -> Result<Region> {
    match rustix::fs::fcntl_get_seals(&fd) {
        Ok(seals) if seals.contains(SealFlags::SHRINK) => {}
        Ok(_) => return Err(Error::Token(TokenError::Unsealed)),
        // Not a file that supports sealing.
        Err(Errno::INVAL) => {}
        Err(errno) => return Err(os("fcntl")(errno)),
    }
    Region::from_fd(fd)
}

/// Checks that a token's descriptor is a Unix stream socket.
///
/// `getsockopt(fd, SOL_SOCKET, SO_DOMAIN)` and `SO_TYPE`.
pub(crate) fn check_stream_socket(fd: &OwnedFd) -> Result<()> {
    let not_a_stream = || Error::Token(TokenError::NotAStreamSocket);
    match rustix::net::sockopt::socket_domain(fd) {
        Ok(AddressFamily::UNIX) => {}
        Ok(_) | Err(Errno::NOTSOCK) => return Err(not_a_stream()),
        Err(errno) => return Err(os("getsockopt")(errno)),
    }
    match rustix::net::sockopt::socket_type(fd) {
        Ok(SocketType::STREAM) => Ok(()),
        Ok(_) | Err(Errno::NOTSOCK) => Err(not_a_stream()),
        Err(errno) => Err(os("getsockopt")(errno)),
    }
}

/// Implements [`Share`] for types held in one region, attached with
/// `attach(Region)`.
macro_rules! share_one_region {
    ($kind:literal, $ty:ty $(, [$($generics:tt)*])?) => {
        impl$(<$($generics)*>)? $crate::share::Sealed for $ty {}

        impl$(<$($generics)*>)? $crate::share::Share for $ty {
            const KIND: &'static str = $kind;

            fn token(&self) -> $crate::Result<$crate::share::Token<Self>> {
                Ok($crate::share::Token::new(vec![$crate::share::region_fd(
                    self.region(),
                    $kind,
                )?]))
            }

            fn from_token(token: $crate::share::Token<Self>) -> $crate::Result<Self> {
                let [fd] = token.into_fds::<1>()?;
                Self::attach($crate::share::attach_region(fd)?)
            }
        }
    };
}
pub(crate) use share_one_region;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Lock, Queue, Semaphore};

    #[test]
    fn nested_scopes_collect_and_provide_their_own() {
        let (a, b) = (Lock::new().unwrap(), Event::new().unwrap());
        let (outer, outer_fds) = collect_fds(|| {
            let inner = encode(&b.token().unwrap()).unwrap();
            assert_eq!(inner.fds.len(), 1);
            postcard::to_allocvec(&(a.token().unwrap(), a.token().unwrap())).unwrap()
        });
        assert_eq!(outer_fds.len(), 2);
        let (x, y): (Token<Lock>, Token<Lock>) = decode(&outer, outer_fds).unwrap();
        let (x, y) = (x.attach().unwrap(), y.attach().unwrap());
        let guard = x.lock();
        assert!(y.try_lock().is_none() && a.try_lock().is_none());
        drop(guard);
    }

    #[test]
    fn refusals_are_clear() {
        let lock = Lock::new().unwrap();
        let token = lock.token().unwrap();
        // Outside a scope: postcard keeps no message, the refusal does.
        assert!(postcard::to_allocvec(&token).is_err());
        assert!(matches!(take_refusal(), Some(ShareError::NoFdChannel)));
        // Too many descriptors for one message.
        let many: Vec<_> = (0..=MAX_FDS).map(|_| token.try_clone().unwrap()).collect();
        assert!(matches!(encode(&many), Err(ShareError::TooManyFds { .. })));
        // An index used twice.
        let sent = encode(&token).unwrap();
        let twice = [sent.bytes.clone(), sent.bytes.clone()].concat();
        let error = decode::<(Token<Lock>, Token<Lock>)>(&twice, sent.fds).unwrap_err();
        assert!(matches!(error, ShareError::FdReused { index: 0 }));
        // Read without a scope.
        let sent = encode(&token).unwrap();
        assert!(postcard::from_bytes::<Token<Lock>>(&sent.bytes).is_err());
        assert!(matches!(take_refusal(), Some(ShareError::NoFdsReceived)));
    }

    #[test]
    fn wrong_types_are_typed_errors() {
        let sent = encode(&Lock::new().unwrap().token().unwrap()).unwrap();
        let token: Token<Semaphore> = decode(&sent.bytes, sent.fds).unwrap();
        assert!(matches!(
            token.attach(),
            Err(Error::Token(TokenError::WrongKind {
                expected: "Semaphore",
                ..
            }))
        ));
        let sent = encode(&Queue::<u32>::new(1).unwrap().token().unwrap()).unwrap();
        let token: Token<Queue<u64>> = decode(&sent.bytes, sent.fds).unwrap();
        assert!(matches!(
            token.attach(),
            Err(Error::Layout(mproc_core::LayoutError::TypeMismatch { .. }))
        ));
    }

    #[test]
    fn anonymous_objects_have_no_token() {
        let lock = Lock::create_in(Region::anonymous(Lock::region_size()).unwrap()).unwrap();
        assert!(matches!(
            lock.token(),
            Err(Error::Token(TokenError::NoFd { kind: "Lock" }))
        ));
    }
}
