//! [`Manager`]: a server process that keeps shared objects and hands out
//! typed proxies to them (Python's `multiprocessing.Manager` and
//! `BaseManager(address, authkey)`), for this host's processes and, over
//! TCP, for other programs on other hosts.
//!
//! # The server
//!
//! [`Manager::start`] starts the server as a daemon child (through the
//! fork server, so it dies with its owner, `SIGKILL` included: no orphan).
//! [`Manager::serve`] does the same and also listens on a TCP address;
//! [`Manager::connect`] reaches such a server from any program. The server
//! keeps every object as encoded bytes (postcard): it never needs the
//! element types. Each proxy carries a fingerprint of its type (a hash of
//! its full name, element types included), which the server compares with
//! the one recorded when the object was made: a proxy of another type gets
//! [`ManagerError::WrongType`], never garbage.
//!
//! # Proxies
//!
//! | Python | mproc |
//! |---|---|
//! | `manager.dict()` | [`Manager::dict`] → [`DictProxy`]: `get`, `insert`, `remove`, `contains_key`, `len`, `keys`, `values`, `items`, `update`, `clear`, `get_or_insert` |
//! | `manager.list()` | [`Manager::list`] → [`ListProxy`]: `push`, `pop`, `get`, `set`, `len`, `extend`, `insert`, `remove`, `clear`, `to_vec` / `iter` (a snapshot) |
//! | `manager.Value(t, v)` | [`Manager::value`] → [`ValueProxy`]: `get`, `set`, `replace`, `compare_and_swap`, `add` |
//! | `manager.Array(t, seq)` | [`Manager::array`] → [`ArrayProxy`]: `get`, `set`, `len`, `to_vec` |
//! | `manager.Namespace()` | [`Manager::namespace`] → [`NamespaceProxy`]: fields of any serde type |
//! | `Lock()`, `RLock()`, `Semaphore(n)`, `Event()`, `Condition()`, `Barrier(n)` | [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`], [`EventProxy`], [`ConditionProxy`], [`BarrierProxy`] |
//! | `manager.Queue(maxsize)` | [`Manager::queue`] → [`QueueProxy`] (bounded) |
//! | `BaseManager.register(typeid)` and its methods | [`Manager::register`] a proxy under a name, [`Manager::lookup`] it from another program |
//!
//! A closure cannot run in the server, so read-modify-write on a value is
//! what a server can do alone: compare-and-swap, `add` for numbers,
//! `replace`; or any sequence of verbs under a manager [`LockProxy`].
//!
//! Proxies are `Clone` and serde types: move them into a
//! [`Process`] closure, or pass them as arguments of
//! [`Builder::spawn_fn`](crate::Builder::spawn_fn) with any start method,
//! or send them to another program. A proxy connects on first use in each
//! thread of each process (a child made with `fork` drops the connections
//! it inherited and makes its own), as Python's proxies do.
//!
//! # Transports, and why
//!
//! Every connection, local or remote, starts with the authkey challenge
//! in both directions that Python's `multiprocessing.connection` uses
//! (HMAC-SHA256, compared in constant time): a peer that does not know the
//! key gets [`ManagerError::Authentication`] and its connection is closed;
//! the server and its other clients carry on.
//!
//! * Local clients connect to an abstract Unix socket, pass the
//!   handshake, and are then handed a shared-memory
//!   [`Connection`](mproc_os::Connection) (its descriptors travel over the
//!   socket). Their requests go through it, with no system call when
//!   both sides are running (each spins, then sleeps on a futex). A round
//!   trip over the socket itself costs about 11 µs on the 2-core VM this
//!   was measured on, which caps a client near 90 k requests per second;
//!   through shared memory a child made about 470 k dict requests and
//!   700 k list pushes per second there, 30 to 45 times Python's
//!   `Manager` (`cargo bench --bench manager`). The socket stays open: it
//!   is how the server notices that a client has gone.
//! * Remote clients speak the same frames over TCP.
//!
//! # Robustness
//!
//! * Frames are length-prefixed and at most [`MAX_FRAME`] bytes, checked
//!   before anything is allocated. A frame that does not decode, an
//!   unknown object, a request of the wrong kind or type get an error
//!   reply; an oversized or truncated frame closes that connection. The
//!   server never panics on what a client sends (a fuzz target drives its
//!   decoder and dispatcher with random bytes).
//! * Each connection is served by a thread of its own; a request that
//!   waits (a lock, a queue) waits there, and gives up when its client is
//!   gone. When a connection ends, however it ends (`SIGKILL` included),
//!   the locks it held are released.
//! * A server that dies makes every request fail with
//!   [`ManagerError::ServerGone`], never hang.
//! * A child made with `fork` holds copies of its parent's connections
//!   until it first uses the manager (it then drops them) or exits: until
//!   then, the server does not see the parent go if it dies (as with
//!   [`pipe`](fn@mproc_os::pipe) ends inherited through `fork`).
//!
//! Objects live as long as the server (a proxy dropped does not free its
//! object, unlike Python's reference counting).
//!
//! # Examples
//!
//! ```
//! use mproc_pool::{Manager, Process};
//!
//! let manager = Manager::start()?;
//! let (counts, lock) = (manager.dict::<String, u64>()?, manager.lock()?);
//! let mut children: Vec<_> = (0..4)
//!     .map(|_| {
//!         let (counts, lock) = (counts.clone(), lock.clone());
//!         Process::spawn(move || {
//!             for _ in 0..10 {
//!                 let _guard = lock.lock().unwrap();
//!                 let n = counts.get(&"hits".into()).unwrap().unwrap_or(0);
//!                 counts.insert("hits".into(), n + 1).unwrap();
//!             }
//!         })
//!     })
//!     .collect::<Result<_, _>>()?;
//! for child in &mut children {
//!     child.join()?;
//! }
//! assert_eq!(counts.get(&"hits".into())?, Some(40));
//! manager.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod client;
mod protocol;
mod proxy;
mod server;

use core::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::process::{Process, ProcessError, StartMethod};
use client::Address;
pub use protocol::MAX_FRAME;
use protocol::{Answer, Fault, Init, Request};
use proxy::Handle;
pub use proxy::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListProxy, LockProxy,
    NamespaceProxy, Number, Proxy, ProxyGuard, QueueProxy, RLockProxy, SemaphoreProxy, ValueProxy,
};
use server::ServerArgs;

/// How long [`Manager::start`] waits for its server to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Manager::shutdown`] waits for its server to exit before it
/// kills it.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a manager, or one of its proxies, failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server process could not be started, or stopped before it
    /// listened (say, its TCP address was taken).
    Start(String),
    /// The other side did not prove it knows the authkey (or refused
    /// ours); the connection is closed.
    Authentication,
    /// The server is gone: it was shut down, crashed or was killed.
    ServerGone,
    /// Starting or joining the server process failed.
    Process(ProcessError),
    /// A system call failed.
    Os(mproc_os::Error),
    /// Reading or writing a socket failed.
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A value did not encode, or a reply did not decode as the proxy's
    /// type.
    Codec(postcard::Error),
    /// The peer sent something this side cannot read.
    Protocol(String),
    /// A request or reply longer than [`MAX_FRAME`].
    TooLarge {
        /// Its length, as announced.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// No object with this id (a proxy of another server?).
    UnknownObject(u64),
    /// The object is of another kind than the proxy (a list looked up as a
    /// dict).
    WrongKind {
        /// What the object is.
        object: &'static str,
        /// What the proxy expected.
        proxy: &'static str,
    },
    /// The object's element types differ from the proxy's.
    WrongType {
        /// The kind of object.
        kind: &'static str,
    },
    /// No object is registered under this name.
    UnknownName(String),
    /// An object is already registered under this name.
    NameTaken(String),
    /// This kind of object does not do that.
    Unsupported {
        /// The kind of object.
        kind: &'static str,
        /// The operation.
        op: String,
    },
    /// An index past the end.
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The length.
        len: u64,
    },
    /// A bad argument (a barrier of no party, a queue of no room).
    Invalid(String),
    /// A wait timed out.
    Timeout,
    /// A queue was empty (`try_get`).
    Empty,
    /// A queue was full (`try_put`).
    Full,
    /// A release (or wait, or notify) by a connection that does not hold
    /// the lock.
    NotOwner,
    /// The barrier is broken.
    BrokenBarrier,
    /// An integer addition overflowed (the value is unchanged), or a
    /// semaphore would.
    Overflow,
    /// A namespace field holds a value of another type.
    FieldType(String),
    /// The request is only for local clients.
    NotLocal,
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start(why) => write!(f, "the manager's server did not start: {why}"),
            Self::Authentication => f.write_str("authentication failed: wrong authkey"),
            Self::ServerGone => f.write_str("the manager's server is gone"),
            Self::Process(error) => write!(f, "the manager's server process: {error}"),
            Self::Os(error) => write!(f, "{error}"),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::Codec(error) => write!(f, "a value did not encode or decode: {error}"),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::TooLarge { len, max } => {
                write!(f, "a frame of {len} bytes is over the limit of {max}")
            }
            Self::UnknownObject(id) => write!(f, "the manager has no object {id}"),
            Self::WrongKind { object, proxy } => {
                write!(f, "the object is a {object}, not a {proxy}")
            }
            Self::WrongType { kind } => write!(
                f,
                "the {kind} holds other types than the proxy's (type fingerprints differ)"
            ),
            Self::UnknownName(name) => write!(f, "no object is registered as {name:?}"),
            Self::NameTaken(name) => write!(f, "an object is registered as {name:?} already"),
            Self::Unsupported { kind, op } => write!(f, "a {kind} does not do {op}"),
            Self::IndexOutOfRange { index, len } => {
                write!(f, "index {index} is out of range for length {len}")
            }
            Self::Invalid(why) => write!(f, "invalid argument: {why}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Empty => f.write_str("the queue is empty"),
            Self::Full => f.write_str("the queue is full"),
            Self::NotOwner => f.write_str("this connection does not hold the lock"),
            Self::BrokenBarrier => f.write_str("the barrier is broken"),
            Self::Overflow => f.write_str("arithmetic overflow"),
            Self::FieldType(name) => write!(f, "field {name:?} holds a value of another type"),
            Self::NotLocal => f.write_str("only local clients may ask this"),
        }
    }
}

impl std::error::Error for ManagerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Process(error) => Some(error),
            Self::Os(error) => Some(error),
            Self::Io { source, .. } => Some(source),
            Self::Codec(error) => Some(error),
            _ => None,
        }
    }
}

impl From<postcard::Error> for ManagerError {
    fn from(error: postcard::Error) -> Self {
        Self::Codec(error)
    }
}

impl From<mproc_os::Error> for ManagerError {
    fn from(error: mproc_os::Error) -> Self {
        Self::Os(error)
    }
}

impl From<ProcessError> for ManagerError {
    fn from(error: ProcessError) -> Self {
        Self::Process(error)
    }
}

impl From<Fault> for ManagerError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Malformed(why) => Self::Protocol(format!("the server could not read: {why}")),
            Fault::TooLarge { len, max } => Self::TooLarge { len, max },
            Fault::UnknownObject(id) => Self::UnknownObject(id),
            Fault::WrongKind { object, proxy } => Self::WrongKind {
                object: object.name(),
                proxy: proxy.name(),
            },
            Fault::WrongType { kind } => Self::WrongType { kind: kind.name() },
            Fault::UnknownName(name) => Self::UnknownName(name),
            Fault::NameTaken(name) => Self::NameTaken(name),
            Fault::Unsupported { kind, op } => Self::Unsupported {
                kind: kind.name(),
                op,
            },
            Fault::IndexOutOfRange { index, len } => Self::IndexOutOfRange { index, len },
            Fault::Invalid(why) => Self::Invalid(why),
            Fault::Timeout => Self::Timeout,
            Fault::Empty => Self::Empty,
            Fault::Full => Self::Full,
            Fault::NotOwner => Self::NotOwner,
            Fault::BrokenBarrier => Self::BrokenBarrier,
            Fault::Overflow => Self::Overflow,
            Fault::FieldType(name) => Self::FieldType(name),
            Fault::NotLocal => Self::NotLocal,
        }
    }
}

/// A manager: the owner of a server process ([`Manager::start`],
/// [`Manager::serve`]), or a client of one ([`Manager::connect`]). It
/// makes objects in the server and returns proxies to them.
///
/// Dropping an owner shuts its server down (a manager used as a scope, as
/// Python's `with Manager() as m:`); dropping a client only disconnects.
///
/// See the [module docs](self).
pub struct Manager {
    /// The process that made this handle: only it shuts the server down
    /// on drop (not a child made with `fork` that got a copy).
    pid: u32,
    address: Address,
    authkey: Vec<u8>,
    /// The server process, for an owner.
    server: Option<Process<Result<(), String>>>,
    /// The TCP address the server listens on, if it does.
    tcp: Option<SocketAddr>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.address)
            .field("server_pid", &self.server.as_ref().map(Process::pid))
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

static STARTED: AtomicU64 = AtomicU64::new(0);

impl Manager {
    /// Starts a server process for this host's processes, with a random
    /// authkey.
    ///
    /// # Errors
    /// [`ManagerError::Start`] or [`ManagerError::Process`] if the server
    /// did not start.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let list = manager.list::<u32>()?;
    /// list.push(1)?;
    /// assert_eq!(list.len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start() -> Result<Manager, ManagerError> {
        Self::launch(auth::random_bytes(32)?, None)
    }

    /// Starts a server process that also listens on the TCP address `addr`
    /// (port 0 picks a free port: see [`Manager::tcp_address`]) for
    /// [`Manager::connect`] from other programs, which must know `authkey`.
    ///
    /// # Errors
    /// [`ManagerError::Start`] if the address cannot be listened on, or as
    /// [`Manager::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_pool::Manager;
    ///
    /// let server = Manager::serve("127.0.0.1:0", b"secret".to_vec())?;
    /// server.register("greeting", &server.value("hello".to_owned())?)?;
    ///
    /// // In another program, possibly on another host:
    /// let client = Manager::connect(server.tcp_address().unwrap(), b"secret".to_vec())?;
    /// let greeting = client.lookup::<mproc_pool::ValueProxy<String>>("greeting")?;
    /// assert_eq!(greeting.get()?, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve(
        addr: impl ToSocketAddrs,
        authkey: impl Into<Vec<u8>>,
    ) -> Result<Manager, ManagerError> {
        let addr = addr
            .to_socket_addrs()
            .map_err(|source| ManagerError::Io {
                context: "resolving the address",
                source,
            })?
            .next()
            .ok_or_else(|| ManagerError::Invalid("the address resolves to nothing".into()))?;
        Self::launch(authkey.into(), Some(addr))
    }

    fn launch(authkey: Vec<u8>, tcp: Option<SocketAddr>) -> Result<Manager, ManagerError> {
        let nonce: String = auth::random_bytes(8)?
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let name = format!(
            "mproc-manager-{}-{}-{nonce}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let args = ServerArgs {
            name: name.clone(),
            authkey: authkey.clone(),
            tcp: tcp.map(|addr| addr.to_string()),
        };
        let mut server = Process::builder()
            .name("Manager")
            .daemon(true)
            .start_method(StartMethod::ForkServer)
            .spawn_fn(server::server_main, args)?;
        let address = Address::Local(name);
        let deadline = Instant::now() + START_TIMEOUT;
        // The server listens once it is ready: connect until it does.
        loop {
            match client::connect(&address, &authkey) {
                Ok(()) => break,
                Err(ManagerError::ServerGone) if Instant::now() < deadline => {
                    if !server.is_alive() {
                        return Err(match server.join_timeout(EXIT_TIMEOUT) {
                            Ok(Err(why)) => ManagerError::Start(why),
                            Ok(Ok(())) => ManagerError::Start("the server exited".into()),
                            Err(error) => ManagerError::Process(error),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(ManagerError::ServerGone) => {
                    let _ = server.kill();
                    let _ = server.join_timeout(EXIT_TIMEOUT);
                    return Err(ManagerError::Start(
                        "the server did not listen in time".into(),
                    ));
                }
                Err(error) => {
                    let _ = server.kill();
                    let _ = server.join_timeout(EXIT_TIMEOUT);
                    return Err(error);
                }
            }
        }
        let mut manager = Manager {
            pid: std::process::id(),
            address,
            authkey,
            server: Some(server),
            tcp: None,
        };
        if let Answer::Text(Some(tcp)) = manager.request(&Request::Info)? {
            manager.tcp = tcp.parse().ok();
        }
        Ok(manager)
    }

    /// Connects to the server a [`Manager::serve`] started, possibly on
    /// another host, proving that this program knows `authkey`.
    ///
    /// # Errors
    /// [`ManagerError::Authentication`] for a wrong key;
    /// [`ManagerError::ServerGone`] if nothing listens there.
    pub fn connect(
        addr: impl ToSocketAddrs,
        authkey: impl Into<Vec<u8>>,
    ) -> Result<Manager, ManagerError> {
        let addr = addr
            .to_socket_addrs()
            .map_err(|source| ManagerError::Io {
                context: "resolving the address",
                source,
            })?
            .next()
            .ok_or_else(|| ManagerError::Invalid("the address resolves to nothing".into()))?;
        let manager = Manager {
            pid: std::process::id(),
            address: Address::Tcp(addr.to_string()),
            authkey: authkey.into(),
            server: None,
            tcp: Some(addr),
        };
        client::connect(&manager.address, &manager.authkey)?;
        Ok(manager)
    }

    /// The TCP address the server listens on ([`Manager::serve`], or the
    /// one [`Manager::connect`] reached), if any.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The pid of the server process, for an owner.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// The authkey every connection must prove it knows.
    pub fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    fn request(&self, request: &Request) -> Result<Answer, ManagerError> {
        client::call(&self.address, &self.authkey, request)
    }

    fn create<P: Proxy>(&self, init: Init) -> Result<P, ManagerError> {
        match self.request(&Request::Create {
            kind: P::KIND,
            fingerprint: P::fingerprint(),
            init,
        })? {
            Answer::Id(id) => Ok(self.proxy(id)),
            other => Err(ManagerError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    fn proxy<P: Proxy>(&self, id: u64) -> P {
        P::from_handle(Handle {
            address: self.address.clone(),
            authkey: self.authkey.clone(),
            id,
            kind: P::KIND,
            fingerprint: P::fingerprint(),
        })
    }

    /// A new empty dictionary.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError>
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + DeserializeOwned + 'static,
    {
        self.create(Init::Empty)
    }

    /// A new empty list.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn list<T: Serialize + DeserializeOwned + 'static>(
        &self,
    ) -> Result<ListProxy<T>, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new value, set to `initial`.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached or `initial` does
    /// not encode.
    pub fn value<T: Serialize + DeserializeOwned + 'static>(
        &self,
        initial: T,
    ) -> Result<ValueProxy<T>, ManagerError> {
        self.create(Init::Value(postcard::to_allocvec(&initial)?))
    }

    /// A new fixed-length array of `items`.
    ///
    /// # Errors
    /// As [`Manager::value`].
    pub fn array<T: Serialize + DeserializeOwned + 'static>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ArrayProxy<T>, ManagerError> {
        let items = items
            .into_iter()
            .map(|item| postcard::to_allocvec(&item))
            .collect::<Result<_, _>>()?;
        self.create(Init::Items(items))
    }

    /// A new namespace with no field.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new lock.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new reentrant lock.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn rlock(&self) -> Result<RLockProxy, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new semaphore with `value` units.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn semaphore(&self, value: u64) -> Result<SemaphoreProxy, ManagerError> {
        self.create(Init::Count(value))
    }

    /// A new event, not set.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new condition variable with its own lock.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        self.create(Init::Empty)
    }

    /// A new barrier for `parties` parties.
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] for no party, or as [`Manager::lock`].
    pub fn barrier(&self, parties: u64) -> Result<BarrierProxy, ManagerError> {
        self.create(Init::Count(parties))
    }

    /// A new queue of at most `capacity` items.
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] for no room, or as [`Manager::lock`].
    pub fn queue<T: Serialize + DeserializeOwned + 'static>(
        &self,
        capacity: usize,
    ) -> Result<QueueProxy<T>, ManagerError> {
        self.create(Init::Count(capacity as u64))
    }

    /// Registers `proxy`'s object under `name`, for [`Manager::lookup`].
    ///
    /// # Errors
    /// [`ManagerError::NameTaken`], or [`ManagerError`] if the server
    /// cannot be reached.
    pub fn register<P: Proxy>(&self, name: &str, proxy: &P) -> Result<(), ManagerError> {
        self.request(&Request::Register {
            name: name.to_owned(),
            id: proxy.handle().id,
        })
        .map(|_| ())
    }

    /// A proxy to the object registered under `name`, which must be of
    /// `P`'s kind and types.
    ///
    /// # Errors
    /// [`ManagerError::UnknownName`], [`ManagerError::WrongKind`],
    /// [`ManagerError::WrongType`], or [`ManagerError`] if the server
    /// cannot be reached.
    pub fn lookup<P: Proxy>(&self, name: &str) -> Result<P, ManagerError> {
        match self.request(&Request::Lookup {
            name: name.to_owned(),
            kind: P::KIND,
            fingerprint: P::fingerprint(),
        })? {
            Answer::Id(id) => Ok(self.proxy(id)),
            other => Err(ManagerError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Stops the server (for an owner, waits for its process to exit).
    /// Every proxy then fails with [`ManagerError::ServerGone`].
    ///
    /// # Errors
    /// [`ManagerError::ServerGone`] if it was gone already (crashed or
    /// killed), or [`ManagerError`] if it could not be reached.
    pub fn shutdown(mut self) -> Result<(), ManagerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ManagerError> {
        let asked = self.request(&Request::Shutdown).map(|_| ());
        client::forget(&self.address);
        let server = self.server.take();
        if self.pid != std::process::id() {
            // Asked by a child made with `fork`: the server process is
            // not its child to wait for.
            std::mem::forget(server);
            return asked;
        }
        if let Some(mut server) = server {
            match server.join_timeout(EXIT_TIMEOUT) {
                Ok(_) => {}
                Err(ProcessError::Timeout) => {
                    let _ = server.kill();
                    let _ = server.join_timeout(EXIT_TIMEOUT);
                }
                Err(error) => {
                    asked?;
                    return Err(error.into());
                }
            }
        }
        asked
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A copy in a child made with `fork`: the server is not its.
            if let Some(server) = self.server.take() {
                std::mem::forget(server);
            }
        } else if self.server.is_some() {
            let _ = self.stop();
        } else {
            client::forget(&self.address);
        }
    }
}

/// The fuzz target's entry point: runs `data` through the server's request
/// decoder and dispatcher, as frames (a 2-byte little-endian length, then
/// that many bytes), against one object of every kind, with no socket and
/// no waiting. Panics only if the server would.
#[doc(hidden)]
pub fn fuzz_requests(data: &[u8]) {
    server::fuzz(data);
}

/// The encoding of a request, for tests that speak the protocol by hand.
#[doc(hidden)]
pub mod wire {
    pub use super::protocol::{Answer, Fault, Init, Kind, MAX_FRAME, Op, Reply, Request};

    /// Passes the client's side of the handshake on a TCP stream of framed
    /// messages.
    ///
    /// # Errors
    /// [`ManagerError::Authentication`](super::ManagerError::Authentication)
    /// for a wrong key.
    pub fn client_handshake(
        stream: &mut std::net::TcpStream,
        authkey: &[u8],
    ) -> Result<(), super::ManagerError> {
        super::auth::client_handshake(&mut super::server::TcpWire(stream), authkey)
    }
}
