//! The manager's server: the objects, the request dispatcher, and the
//! threads that serve each connection.
//!
//! Objects are kept as encoded bytes, each behind a mutex of its own; the
//! blocking ones (locks, semaphores, events, conditions, barriers, queues)
//! have a condition variable beside it. A connection is served by a thread
//! of its own, so a request that waits (a lock acquire, a queue get) waits
//! in that thread, in slices, and gives up when its client is gone. When a
//! connection ends, however it ends, the locks it held are released.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mproc_os::connection::{Connection, RecvError, pipe};
use mproc_os::futex::Deadline;
use mproc_os::share::{self, Share};
use mproc_os::socket::Stream;
use rustix::net::RecvFlags;
use serde::{Deserialize, Serialize};

use super::ManagerError;
use super::auth::{self, MAX_MESSAGE, Wire};
use super::protocol::{
    Answer, Fault, FrameError, Init, Kind, MAX_FRAME, NumKind, Op, Reply, Request, encode_fault,
    encode_reply, read_frame, write_frame,
};

/// How long a waiting request sleeps before it looks whether its client
/// is still there.
const SLICE: Duration = Duration::from_millis(50);
/// How long a new connection has to pass the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server process is started with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ServerArgs {
    /// The abstract Unix socket name local clients connect to.
    pub(crate) name: String,
    /// The authkey every connection must prove it knows.
    pub(crate) authkey: Vec<u8>,
    /// The TCP address to listen on too, if any.
    pub(crate) tcp: Option<String>,
}

/// The entry point of the server process: serves until a client asks it
/// to shut down.
pub(crate) fn server_main(args: ServerArgs) -> Result<(), String> {
    let address = UnixAddr::from_abstract_name(args.name.as_bytes())
        .map_err(|error| format!("bad socket name: {error}"))?;
    let tcp = match &args.tcp {
        Some(addr) => Some(
            TcpListener::bind(addr).map_err(|error| format!("cannot listen on {addr}: {error}"))?,
        ),
        None => None,
    };
    let tcp_addr = match &tcp {
        Some(listener) => Some(
            listener
                .local_addr()
                .map_err(|error| format!("getsockname: {error}"))?
                .to_string(),
        ),
        None => None,
    };
    let store = Arc::new(Store::new(tcp_addr));
    let authkey: Arc<[u8]> = args.authkey.into();
    // Bound last: a client that can connect finds everything ready.
    let unix = UnixListener::bind_addr(&address)
        .map_err(|error| format!("cannot listen on the local socket: {error}"))?;
    {
        let (store, authkey) = (store.clone(), authkey.clone());
        std::thread::spawn(move || {
            for stream in unix.incoming().flatten() {
                let (store, authkey) = (store.clone(), authkey.clone());
                let id = store.next_connection();
                let _ = std::thread::Builder::new()
                    .name(format!("manager-conn-{id}"))
                    .spawn(move || serve_unix(&store, &authkey, OwnedFd::from(stream), id));
            }
        });
    }
    if let Some(tcp) = tcp {
        let (store, authkey) = (store.clone(), authkey.clone());
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                let (store, authkey) = (store.clone(), authkey.clone());
                let id = store.next_connection();
                let _ = std::thread::Builder::new()
                    .name(format!("manager-conn-{id}"))
                    .spawn(move || serve_tcp(&store, &authkey, stream, id));
            }
        });
    }
    store.wait_for_shutdown();
    Ok(())
}

/// Whether the peer of a connected socket has hung up (without taking
/// anything from it).
fn hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    match rustix::net::recv(fd, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => true,
        Ok(_) => false,
        Err(errno) => errno != rustix::io::Errno::AGAIN && errno != rustix::io::Errno::INTR,
    }
}

/// The handshake over a Unix stream socket.
struct UnixWire<'a>(&'a Stream);

impl Wire for UnixWire<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ManagerError> {
        self.0.send_message(bytes, &[]).map_err(ManagerError::Os)
    }

    fn recv(&mut self) -> Result<Vec<u8>, ManagerError> {
        match self
            .0
            .recv_message(MAX_MESSAGE, Deadline::after(HANDSHAKE_TIMEOUT))
        {
            Ok(Some(message)) => Ok(message.bytes),
            Ok(None) => Err(ManagerError::ServerGone),
            Err(error) => Err(ManagerError::Os(error)),
        }
    }
}

/// The handshake over a TCP stream.
pub(crate) struct TcpWire<'a>(pub(crate) &'a mut TcpStream);

impl Wire for TcpWire<'_> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ManagerError> {
        write_frame(self.0, bytes).map_err(|source| ManagerError::Io {
            context: "sending the handshake",
            source,
        })
    }

    fn recv(&mut self) -> Result<Vec<u8>, ManagerError> {
        read_frame(self.0, MAX_MESSAGE).map_err(|error| match error {
            FrameError::Closed => ManagerError::ServerGone,
            FrameError::TooLarge(_) => ManagerError::Authentication,
            FrameError::Io(source) => ManagerError::Io {
                context: "receiving the handshake",
                source,
            },
        })
    }
}

/// Serves a local client: handshake, then requests over the socket until
/// the client asks for a shared-memory connection, then over that.
fn serve_unix(store: &Store, authkey: &[u8], fd: OwnedFd, id: u64) {
    let stream = Stream::from_fd(fd);
    if auth::server_handshake(&mut UnixWire(&stream), authkey).is_err() {
        return;
    }
    let alive = || !hung_up(stream.as_fd());
    loop {
        let message = match stream.recv_message(MAX_FRAME, None) {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => {
                if error.errno() == Some(rustix::io::Errno::MSGSIZE) {
                    // The frame's rest is still in the socket: answer, and
                    // close, since the stream cannot be resynchronised.
                    let fault = encode_fault(Fault::TooLarge {
                        len: u64::MAX,
                        max: MAX_FRAME as u64,
                    });
                    let _ = stream.send_message(&fault, &[]);
                }
                break;
            }
        };
        let ctx = Ctx {
            connection: id,
            alive: &alive,
            wait_cap: None,
        };
        match store.handle(&ctx, &message.bytes) {
            Outcome::Reply(reply) => {
                if stream.send_message(&reply, &[]).is_err() {
                    break;
                }
            }
            Outcome::Local => {
                match local_connection() {
                    Ok((mine, encoded)) => {
                        let fds: Vec<BorrowedFd<'_>> =
                            encoded.fds.iter().map(AsFd::as_fd).collect();
                        if stream.send_message(&encoded.bytes, &fds).is_ok() {
                            drop(encoded);
                            serve_shm(store, &mine, id);
                        }
                    }
                    Err(fault) => {
                        let reply: Result<(), Fault> = Err(fault);
                        let _ = stream
                            .send_message(&postcard::to_allocvec(&reply).unwrap_or_default(), &[]);
                    }
                }
                break;
            }
            Outcome::Shutdown(reply) => {
                let _ = stream.send_message(&reply, &[]);
                store.shut_down();
                break;
            }
            Outcome::Gone => break,
        }
    }
    store.release_all(id);
}

/// A new shared-memory connection: the server's end, and the encoded
/// token of the client's end (whose only other copy is dropped here).
fn local_connection() -> Result<(Connection<Vec<u8>>, share::Encoded), Fault> {
    let fail =
        |error: &dyn std::fmt::Display| Fault::Invalid(format!("no local connection: {error}"));
    let (mine, theirs) = pipe::<Vec<u8>>().map_err(|error| fail(&error))?;
    let token = theirs.token().map_err(|error| fail(&error))?;
    let reply: Result<_, Fault> = Ok(token);
    let encoded = share::encode(&reply).map_err(|error| fail(&error))?;
    drop(reply);
    drop(theirs);
    Ok((mine, encoded))
}

/// Serves requests that come through a shared-memory connection, until
/// the client's end is gone.
fn serve_shm(store: &Store, connection: &Connection<Vec<u8>>, id: u64) {
    // The client sends nothing while it waits for a reply: anything to
    // read then means its end is gone.
    let alive = || !connection.poll(Duration::ZERO);
    loop {
        let reply = match connection.recv_bytes_max(MAX_FRAME) {
            Ok(bytes) => {
                let ctx = Ctx {
                    connection: id,
                    alive: &alive,
                    wait_cap: None,
                };
                match store.handle(&ctx, &bytes) {
                    Outcome::Reply(reply) => reply,
                    Outcome::Local => encode_fault(Fault::NotLocal),
                    Outcome::Shutdown(reply) => {
                        let _ = connection.send_bytes(&reply);
                        store.shut_down();
                        return;
                    }
                    Outcome::Gone => return,
                }
            }
            Err(RecvError::TooLong { len, max }) => encode_fault(Fault::TooLarge { len, max }),
            Err(RecvError::Empty) => continue,
            Err(_) => return,
        };
        if connection.send_bytes(&reply).is_err() {
            return;
        }
    }
}

/// Serves a remote client: handshake, then requests over the stream.
fn serve_tcp(store: &Store, authkey: &[u8], mut stream: TcpStream, id: u64) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    if auth::server_handshake(&mut TcpWire(&mut stream), authkey).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(None);
    let Ok(peek) = stream.try_clone() else {
        return;
    };
    let alive = || !hung_up(peek.as_fd());
    loop {
        let request = match read_frame(&mut stream, MAX_FRAME) {
            Ok(request) => request,
            Err(FrameError::TooLarge(len)) => {
                let fault = encode_fault(Fault::TooLarge {
                    len,
                    max: MAX_FRAME as u64,
                });
                let _ = write_frame(&mut stream, &fault);
                break;
            }
            Err(FrameError::Closed | FrameError::Io(_)) => break,
        };
        let ctx = Ctx {
            connection: id,
            alive: &alive,
            wait_cap: None,
        };
        let reply = match store.handle(&ctx, &request) {
            Outcome::Reply(reply) => reply,
            Outcome::Local => encode_fault(Fault::NotLocal),
            Outcome::Shutdown(reply) => {
                let _ = write_frame(&mut stream, &reply);
                store.shut_down();
                break;
            }
            Outcome::Gone => break,
        };
        if write_frame(&mut stream, &reply).is_err() {
            break;
        }
    }
    store.release_all(id);
}

/// Who is asking, and how long it may wait.
pub(crate) struct Ctx<'a> {
    /// The connection: the owner of the locks it takes.
    pub(crate) connection: u64,
    /// Whether the client is still there (asked between slices of a wait).
    pub(crate) alive: &'a dyn Fn() -> bool,
    /// The longest any request may wait (the fuzz target waits not at all).
    pub(crate) wait_cap: Option<Duration>,
}

/// What the transport does after a request.
pub(crate) enum Outcome {
    /// Send this reply.
    Reply(Vec<u8>),
    /// Set up a shared-memory connection (the transport's business).
    Local,
    /// Send this reply, then stop the server.
    Shutdown(Vec<u8>),
    /// The client left while its request waited: send nothing.
    Gone,
}

/// How a wait ended.
enum Waited<R> {
    Ready(R),
    TimedOut,
    Gone,
}

/// State behind a mutex, with a condition variable for those who wait for
/// it to change.
struct Gate<S> {
    state: Mutex<S>,
    changed: Condvar,
}

impl<S> Gate<S> {
    fn new(state: S) -> Self {
        Self {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes every waiter.
    fn change<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed.notify_all();
        result
    }

    /// Waits until `ready` returns `Some` (it runs with the lock held, and
    /// may change the state: waiters are woken after it does), the timeout
    /// passes, or the client is gone.
    fn wait_for<R>(
        &self,
        ctx: &Ctx<'_>,
        timeout: Option<Duration>,
        mut ready: impl FnMut(&mut S) -> Option<R>,
    ) -> Waited<R> {
        let timeout = match (timeout, ctx.wait_cap) {
            (Some(timeout), Some(cap)) => Some(timeout.min(cap)),
            (timeout, cap) => timeout.or(cap),
        };
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let mut state = self.lock();
        loop {
            if let Some(result) = ready(&mut state) {
                drop(state);
                self.changed.notify_all();
                return Waited::Ready(result);
            }
            let slice = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Waited::TimedOut;
                    }
                    (deadline - now).min(SLICE)
                }
                // No deadline, or one past what a clock can hold.
                None => SLICE,
            };
            let (next, result) = self
                .changed
                .wait_timeout(state, slice)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if result.timed_out() && !(ctx.alive)() {
                return Waited::Gone;
            }
        }
    }
}

/// A lock's (or reentrant lock's, or condition's) owner.
#[derive(Default)]
struct Owned {
    owner: Option<u64>,
    depth: u64,
}

#[derive(Default)]
struct ConditionState {
    lock: Owned,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

struct BarrierState {
    parties: u64,
    count: u64,
    generation: u64,
    resets: u64,
    broken: bool,
}

struct QueueState {
    items: VecDeque<Vec<u8>>,
    capacity: u64,
}

enum Body {
    Dict(Mutex<HashMap<Vec<u8>, Vec<u8>>>),
    List(Mutex<Vec<Vec<u8>>>),
    Value(Mutex<Vec<u8>>),
    Array(Mutex<Vec<Vec<u8>>>),
    Namespace(Mutex<HashMap<String, (u64, Vec<u8>)>>),
    Lock(Gate<Owned>),
    RLock(Gate<Owned>),
    Semaphore(Gate<u64>),
    Event(Gate<bool>),
    Condition(Gate<ConditionState>),
    Barrier(Gate<BarrierState>),
    Queue(Gate<QueueState>),
}

struct Object {
    kind: Kind,
    fingerprint: u64,
    body: Body,
}

/// Every object of a server, its names, and its shutdown flag.
pub(crate) struct Store {
    objects: RwLock<HashMap<u64, Arc<Object>>>,
    names: Mutex<HashMap<String, u64>>,
    next_object: AtomicU64,
    next_connection: AtomicU64,
    tcp: Option<String>,
    shutdown: Gate<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ms(timeout_ms: Option<u64>) -> Option<Duration> {
    timeout_ms.map(Duration::from_millis)
}

fn index(i: u64, len: usize) -> Result<usize, Fault> {
    match usize::try_from(i) {
        Ok(i) if i < len => Ok(i),
        _ => Err(Fault::IndexOutOfRange {
            index: i,
            len: len as u64,
        }),
    }
}

impl Store {
    /// An empty store; `tcp` is the address the server listens on, if any.
    pub(crate) fn new(tcp: Option<String>) -> Self {
        Self {
            objects: RwLock::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            next_object: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            tcp,
            shutdown: Gate::new(false),
        }
    }

    fn next_connection(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    fn shut_down(&self) {
        self.shutdown.change(|flag| *flag = true);
    }

    fn wait_for_shutdown(&self) {
        let mut flag = self.shutdown.lock();
        while !*flag {
            flag = self
                .shutdown
                .changed
                .wait(flag)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn object(&self, id: u64) -> Option<Arc<Object>> {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Releases every lock connection `id` holds (it is gone).
    pub(crate) fn release_all(&self, id: u64) {
        let objects: Vec<Arc<Object>> = self
            .objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for object in objects {
            match &object.body {
                Body::Lock(gate) | Body::RLock(gate) => gate.change(|state| {
                    if state.owner == Some(id) {
                        *state = Owned::default();
                    }
                }),
                Body::Condition(gate) => gate.change(|state| {
                    if state.lock.owner == Some(id) {
                        state.lock = Owned::default();
                    }
                }),
                _ => {}
            }
        }
    }

    /// Decodes and runs one request.
    pub(crate) fn handle(&self, ctx: &Ctx<'_>, bytes: &[u8]) -> Outcome {
        let request: Request = match postcard::from_bytes(bytes) {
            Ok(request) => request,
            Err(error) => {
                return Outcome::Reply(encode_fault(Fault::Malformed(error.to_string())));
            }
        };
        let reply = match request {
            Request::Local => return Outcome::Local,
            Request::Shutdown => return Outcome::Shutdown(encode_reply(&Ok(Answer::Unit))),
            Request::Info => Ok(Answer::Text(self.tcp.clone())),
            Request::Create {
                kind,
                fingerprint,
                init,
            } => self.create(kind, fingerprint, init),
            Request::Register { name, id } => self.register(name, id),
            Request::Lookup {
                name,
                kind,
                fingerprint,
            } => self.lookup(&name, kind, fingerprint),
            Request::Call {
                id,
                kind,
                fingerprint,
                op,
            } => match self.call(ctx, id, kind, fingerprint, op) {
                Some(reply) => reply,
                None => return Outcome::Gone,
            },
        };
        Outcome::Reply(encode_reply(&reply))
    }

    fn create(&self, kind: Kind, fingerprint: u64, init: Init) -> Reply {
        let invalid = || Fault::Invalid(format!("bad initial contents for a {}", kind.name()));
        let body = match (kind, init) {
            (Kind::Dict, Init::Empty) => Body::Dict(Mutex::default()),
            (Kind::List, Init::Empty) => Body::List(Mutex::default()),
            (Kind::Value, Init::Value(bytes)) => Body::Value(Mutex::new(bytes)),
            (Kind::Array, Init::Items(items)) => Body::Array(Mutex::new(items)),
            (Kind::Namespace, Init::Empty) => Body::Namespace(Mutex::default()),
            (Kind::Lock, Init::Empty) => Body::Lock(Gate::new(Owned::default())),
            (Kind::RLock, Init::Empty) => Body::RLock(Gate::new(Owned::default())),
            (Kind::Semaphore, Init::Count(n)) => Body::Semaphore(Gate::new(n)),
            (Kind::Event, Init::Empty) => Body::Event(Gate::new(false)),
            (Kind::Condition, Init::Empty) => Body::Condition(Gate::new(ConditionState::default())),
            (Kind::Barrier, Init::Count(0)) => {
                return Err(Fault::Invalid("a barrier needs at least one party".into()));
            }
            (Kind::Barrier, Init::Count(parties)) => Body::Barrier(Gate::new(BarrierState {
                parties,
                count: 0,
                generation: 0,
                resets: 0,
                broken: false,
            })),
            (Kind::Queue, Init::Count(0)) => {
                return Err(Fault::Invalid(
                    "a queue needs a capacity of at least one".into(),
                ));
            }
            (Kind::Queue, Init::Count(capacity)) => Body::Queue(Gate::new(QueueState {
                items: VecDeque::new(),
                capacity,
            })),
            _ => return Err(invalid()),
        };
        let id = self.next_object.fetch_add(1, Ordering::Relaxed);
        let object = Arc::new(Object {
            kind,
            fingerprint,
            body,
        });
        self.objects
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, object);
        Ok(Answer::Id(id))
    }

    fn register(&self, name: String, id: u64) -> Reply {
        if self.object(id).is_none() {
            return Err(Fault::UnknownObject(id));
        }
        let mut names = lock(&self.names);
        if names.contains_key(&name) {
            return Err(Fault::NameTaken(name));
        }
        names.insert(name, id);
        Ok(Answer::Unit)
    }

    fn lookup(&self, name: &str, kind: Kind, fingerprint: u64) -> Reply {
        let id = *lock(&self.names)
            .get(name)
            .ok_or_else(|| Fault::UnknownName(name.to_owned()))?;
        let object = self.object(id).ok_or(Fault::UnknownObject(id))?;
        check(&object, kind, fingerprint)?;
        Ok(Answer::Id(id))
    }

    /// Runs `op` on object `id`; `None` if the client left while it waited.
    fn call(&self, ctx: &Ctx<'_>, id: u64, kind: Kind, fingerprint: u64, op: Op) -> Option<Reply> {
        let Some(object) = self.object(id) else {
            return Some(Err(Fault::UnknownObject(id)));
        };
        if let Err(fault) = check(&object, kind, fingerprint) {
            return Some(Err(fault));
        }
        let unsupported = |op: &Op| {
            Err(Fault::Unsupported {
                kind: object.kind,
                op: op_name(op),
            })
        };
        let reply = match &object.body {
            Body::Dict(dict) => dict_op(&mut lock(dict), op, unsupported),
            Body::List(list) => list_op(&mut lock(list), op, unsupported),
            Body::Array(array) => array_op(&mut lock(array), op, unsupported),
            Body::Value(value) => value_op(&mut lock(value), op, unsupported),
            Body::Namespace(fields) => namespace_op(&mut lock(fields), op, unsupported),
            Body::Lock(gate) => return lock_op(gate, ctx, false, op, unsupported),
            Body::RLock(gate) => return lock_op(gate, ctx, true, op, unsupported),
            Body::Semaphore(gate) => return semaphore_op(gate, ctx, op, unsupported),
            Body::Event(gate) => return event_op(gate, ctx, op, unsupported),
            Body::Condition(gate) => return condition_op(gate, ctx, op, unsupported),
            Body::Barrier(gate) => return barrier_op(gate, ctx, op, unsupported),
            Body::Queue(gate) => return queue_op(gate, ctx, op, unsupported),
        };
        Some(reply)
    }
}

/// The name of `op`'s variant, without formatting its (maybe large)
/// payload: `Debug` output is cut after a few characters.
fn op_name(op: &Op) -> String {
    struct Prefix(String);
    impl std::fmt::Write for Prefix {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            for c in text.chars() {
                if self.0.len() >= 32 || matches!(c, '(' | ' ' | '{') {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }
    let mut name = Prefix(String::new());
    let _ = std::fmt::write(&mut name, format_args!("{op:?}"));
    name.0
}

fn check(object: &Object, kind: Kind, fingerprint: u64) -> Result<(), Fault> {
    if object.kind != kind {
        return Err(Fault::WrongKind {
            object: object.kind,
            proxy: kind,
        });
    }
    if object.fingerprint != fingerprint {
        return Err(Fault::WrongType { kind });
    }
    Ok(())
}

fn dict_op(
    dict: &mut HashMap<Vec<u8>, Vec<u8>>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Reply {
    Ok(match op {
        Op::DictGet(key) => Answer::Maybe(dict.get(&key).cloned()),
        Op::DictInsert(key, value) => Answer::Maybe(dict.insert(key, value)),
        Op::DictRemove(key) => Answer::Maybe(dict.remove(&key)),
        Op::DictContains(key) => Answer::Bool(dict.contains_key(&key)),
        Op::DictKeys => Answer::Many(dict.keys().cloned().collect()),
        Op::DictValues => Answer::Many(dict.values().cloned().collect()),
        Op::DictItems => Answer::Pairs(dict.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Op::DictUpdate(pairs) => {
            dict.extend(pairs);
            Answer::Unit
        }
        Op::DictGetOrInsert(key, value) => Answer::Bytes(dict.entry(key).or_insert(value).clone()),
        Op::Len => Answer::Count(dict.len() as u64),
        Op::Clear => {
            dict.clear();
            Answer::Unit
        }
        op => return unsupported(&op),
    })
}

fn list_op(list: &mut Vec<Vec<u8>>, op: Op, unsupported: impl Fn(&Op) -> Reply) -> Reply {
    Ok(match op {
        Op::Push(item) => {
            list.push(item);
            Answer::Unit
        }
        Op::Pop => Answer::Maybe(list.pop()),
        Op::Extend(items) => {
            list.extend(items);
            Answer::Unit
        }
        Op::Insert(at, item) => {
            // Python's `insert` clamps the index; so does this one.
            let at = usize::try_from(at).unwrap_or(usize::MAX).min(list.len());
            list.insert(at, item);
            Answer::Unit
        }
        Op::RemoveAt(i) => Answer::Bytes(list.remove(index(i, list.len())?)),
        Op::Clear => {
            list.clear();
            Answer::Unit
        }
        op => return array_op(list, op, unsupported),
    })
}

fn array_op(array: &mut [Vec<u8>], op: Op, unsupported: impl Fn(&Op) -> Reply) -> Reply {
    Ok(match op {
        Op::Get(i) => Answer::Bytes(array[index(i, array.len())?].clone()),
        Op::Set(i, item) => {
            array[index(i, array.len())?] = item;
            Answer::Unit
        }
        Op::Len => Answer::Count(array.len() as u64),
        Op::Snapshot => Answer::Many(array.to_vec()),
        op => return unsupported(&op),
    })
}

fn value_op(value: &mut Vec<u8>, op: Op, unsupported: impl Fn(&Op) -> Reply) -> Reply {
    Ok(match op {
        Op::Load => Answer::Bytes(value.clone()),
        Op::Store(new) => {
            *value = new;
            Answer::Unit
        }
        Op::Swap(new) => Answer::Bytes(std::mem::replace(value, new)),
        Op::CompareAndSwap { current, new } => {
            // Equal values of one type encode to equal bytes.
            if *value == current {
                *value = new;
                Answer::Maybe(None)
            } else {
                Answer::Maybe(Some(value.clone()))
            }
        }
        Op::Add { kind, delta } => {
            let sum = add(kind, value, &delta)?;
            *value = sum.clone();
            Answer::Bytes(sum)
        }
        op => return unsupported(&op),
    })
}

/// `value + delta`, both encoded numbers of `kind`; integers are checked.
fn add(kind: NumKind, value: &[u8], delta: &[u8]) -> Result<Vec<u8>, Fault> {
    fn int<T>(value: &[u8], delta: &[u8], add: fn(T, T) -> Option<T>) -> Result<Vec<u8>, Fault>
    where
        T: Serialize + for<'de> Deserialize<'de>,
    {
        let malformed = |error: postcard::Error| Fault::Malformed(error.to_string());
        let a: T = postcard::from_bytes(value).map_err(malformed)?;
        let b: T = postcard::from_bytes(delta).map_err(malformed)?;
        let sum = add(a, b).ok_or(Fault::Overflow)?;
        postcard::to_allocvec(&sum).map_err(malformed)
    }
    match kind {
        NumKind::I8 => int::<i8>(value, delta, i8::checked_add),
        NumKind::I16 => int::<i16>(value, delta, i16::checked_add),
        NumKind::I32 => int::<i32>(value, delta, i32::checked_add),
        NumKind::I64 => int::<i64>(value, delta, i64::checked_add),
        NumKind::I128 => int::<i128>(value, delta, i128::checked_add),
        NumKind::Isize => int::<isize>(value, delta, isize::checked_add),
        NumKind::U8 => int::<u8>(value, delta, u8::checked_add),
        NumKind::U16 => int::<u16>(value, delta, u16::checked_add),
        NumKind::U32 => int::<u32>(value, delta, u32::checked_add),
        NumKind::U64 => int::<u64>(value, delta, u64::checked_add),
        NumKind::U128 => int::<u128>(value, delta, u128::checked_add),
        NumKind::Usize => int::<usize>(value, delta, usize::checked_add),
        NumKind::F32 => int::<f32>(value, delta, |a, b| Some(a + b)),
        NumKind::F64 => int::<f64>(value, delta, |a, b| Some(a + b)),
    }
}

fn namespace_op(
    fields: &mut HashMap<String, (u64, Vec<u8>)>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Reply {
    Ok(match op {
        Op::FieldGet(name) => Answer::Field(fields.get(&name).cloned()),
        Op::FieldSet(name, fingerprint, value) => {
            fields.insert(name, (fingerprint, value));
            Answer::Unit
        }
        Op::FieldRemove(name) => Answer::Bool(fields.remove(&name).is_some()),
        Op::FieldNames => {
            let mut names: Vec<String> = fields.keys().cloned().collect();
            names.sort();
            Answer::Names(names)
        }
        Op::Clear => {
            fields.clear();
            Answer::Unit
        }
        op => return unsupported(&op),
    })
}

/// A reply for a wait that timed out, or `None` if the client is gone.
fn waited<R>(waited: Waited<R>, ready: impl FnOnce(R) -> Reply, timed_out: Reply) -> Option<Reply> {
    match waited {
        Waited::Ready(result) => Some(ready(result)),
        Waited::TimedOut => Some(timed_out),
        Waited::Gone => None,
    }
}

fn lock_op(
    gate: &Gate<Owned>,
    ctx: &Ctx<'_>,
    reentrant: bool,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    let me = ctx.connection;
    match op {
        Op::Acquire { timeout_ms } => {
            let acquired = gate.wait_for(ctx, ms(timeout_ms), |state| match state.owner {
                None => {
                    *state = Owned {
                        owner: Some(me),
                        depth: 1,
                    };
                    Some(())
                }
                Some(owner) if reentrant && owner == me => {
                    state.depth += 1;
                    Some(())
                }
                Some(_) => None,
            });
            waited(
                acquired,
                |()| Ok(Answer::Bool(true)),
                Ok(Answer::Bool(false)),
            )
        }
        Op::Release => Some(gate.change(|state| {
            if state.owner != Some(me) {
                return Err(Fault::NotOwner);
            }
            state.depth -= 1;
            if state.depth == 0 {
                state.owner = None;
            }
            Ok(Answer::Unit)
        })),
        op => Some(unsupported(&op)),
    }
}

fn semaphore_op(
    gate: &Gate<u64>,
    ctx: &Ctx<'_>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    match op {
        Op::Acquire { timeout_ms } => {
            let acquired = gate.wait_for(ctx, ms(timeout_ms), |value| {
                (*value > 0).then(|| *value -= 1)
            });
            waited(
                acquired,
                |()| Ok(Answer::Bool(true)),
                Ok(Answer::Bool(false)),
            )
        }
        Op::Release => Some(gate.change(|value| match value.checked_add(1) {
            Some(next) => {
                *value = next;
                Ok(Answer::Unit)
            }
            None => Err(Fault::Overflow),
        })),
        Op::SemaphoreValue => Some(Ok(Answer::Count(*gate.lock()))),
        op => Some(unsupported(&op)),
    }
}

fn event_op(
    gate: &Gate<bool>,
    ctx: &Ctx<'_>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    match op {
        Op::EventSet => Some(Ok(gate.change(|flag| {
            *flag = true;
            Answer::Unit
        }))),
        Op::EventClear => Some(Ok(gate.change(|flag| {
            *flag = false;
            Answer::Unit
        }))),
        Op::IsSet => Some(Ok(Answer::Bool(*gate.lock()))),
        Op::Wait { timeout_ms } => {
            let set = gate.wait_for(ctx, ms(timeout_ms), |flag| flag.then_some(()));
            waited(set, |()| Ok(Answer::Bool(true)), Ok(Answer::Bool(false)))
        }
        op => Some(unsupported(&op)),
    }
}

fn condition_op(
    gate: &Gate<ConditionState>,
    ctx: &Ctx<'_>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    let me = ctx.connection;
    let take = |state: &mut ConditionState| match state.lock.owner {
        None => {
            state.lock = Owned {
                owner: Some(me),
                depth: 1,
            };
            Some(())
        }
        Some(_) => None,
    };
    match op {
        Op::Acquire { timeout_ms } => {
            let acquired = gate.wait_for(ctx, ms(timeout_ms), take);
            waited(
                acquired,
                |()| Ok(Answer::Bool(true)),
                Ok(Answer::Bool(false)),
            )
        }
        Op::Release => Some(gate.change(|state| {
            if state.lock.owner != Some(me) {
                return Err(Fault::NotOwner);
            }
            state.lock = Owned::default();
            Ok(Answer::Unit)
        })),
        Op::Notify(n) => Some(gate.change(|state| {
            if state.lock.owner != Some(me) {
                return Err(Fault::NotOwner);
            }
            for _ in 0..n {
                match state.waiting.pop_front() {
                    Some(ticket) => {
                        state.notified.insert(ticket);
                    }
                    None => break,
                }
            }
            Ok(Answer::Unit)
        })),
        Op::Wait { timeout_ms } => {
            // Release the lock and queue up, in one step.
            let ticket = gate.change(|state| {
                if state.lock.owner != Some(me) {
                    return None;
                }
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.waiting.push_back(ticket);
                state.lock = Owned::default();
                Some(ticket)
            });
            let Some(ticket) = ticket else {
                return Some(Err(Fault::NotOwner));
            };
            let woken = gate.wait_for(ctx, ms(timeout_ms), |state| {
                state.notified.remove(&ticket).then_some(())
            });
            let notified = match woken {
                Waited::Ready(()) => true,
                Waited::TimedOut | Waited::Gone => gate.change(|state| {
                    state.waiting.retain(|&waiting| waiting != ticket);
                    // Notified between the timeout and now: it counts.
                    state.notified.remove(&ticket)
                }),
            };
            if matches!(woken, Waited::Gone) {
                return None;
            }
            // Take the lock back, as long as it takes.
            match gate.wait_for(ctx, None, take) {
                Waited::Ready(()) => Some(Ok(Answer::Bool(notified))),
                Waited::TimedOut => Some(Err(Fault::Timeout)),
                Waited::Gone => None,
            }
        }
        op => Some(unsupported(&op)),
    }
}

fn barrier_op(
    gate: &Gate<BarrierState>,
    ctx: &Ctx<'_>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    match op {
        Op::Wait { timeout_ms } => {
            let arrival = gate.change(|state| {
                if state.broken {
                    return Err(Fault::BrokenBarrier);
                }
                let index = state.count;
                state.count += 1;
                if state.count == state.parties {
                    state.count = 0;
                    state.generation += 1;
                    return Ok((index, None));
                }
                Ok((index, Some((state.generation, state.resets))))
            });
            let (index, generation) = match arrival {
                Ok(arrival) => arrival,
                Err(fault) => return Some(Err(fault)),
            };
            let Some((generation, resets)) = generation else {
                return Some(Ok(Answer::Count(index)));
            };
            let done = gate.wait_for(ctx, ms(timeout_ms), |state| {
                if state.generation != generation {
                    Some(true)
                } else if state.broken || state.resets != resets {
                    Some(false)
                } else {
                    None
                }
            });
            match done {
                Waited::Ready(true) => Some(Ok(Answer::Count(index))),
                Waited::Ready(false) => Some(Err(Fault::BrokenBarrier)),
                // As Python's: a timeout breaks the barrier, and so does a
                // party that is gone (the others would wait forever).
                Waited::TimedOut | Waited::Gone => {
                    gate.change(|state| {
                        if state.generation == generation && state.resets == resets {
                            state.broken = true;
                        }
                    });
                    matches!(done, Waited::TimedOut).then_some(Err(Fault::BrokenBarrier))
                }
            }
        }
        Op::Abort => Some(Ok(gate.change(|state| {
            state.broken = true;
            Answer::Unit
        }))),
        Op::Reset => Some(Ok(gate.change(|state| {
            state.count = 0;
            state.broken = false;
            state.resets += 1;
            Answer::Unit
        }))),
        Op::Parties => Some(Ok(Answer::Count(gate.lock().parties))),
        Op::NWaiting => Some(Ok(Answer::Count(gate.lock().count))),
        Op::Broken => Some(Ok(Answer::Bool(gate.lock().broken))),
        op => Some(unsupported(&op)),
    }
}

fn queue_op(
    gate: &Gate<QueueState>,
    ctx: &Ctx<'_>,
    op: Op,
    unsupported: impl Fn(&Op) -> Reply,
) -> Option<Reply> {
    match op {
        Op::Put { item, timeout_ms } => {
            let mut item = Some(item);
            let put = gate.wait_for(ctx, ms(timeout_ms), |state| {
                if (state.items.len() as u64) < state.capacity {
                    state.items.extend(item.take());
                    Some(())
                } else {
                    None
                }
            });
            let full = if timeout_ms == Some(0) {
                Err(Fault::Full)
            } else {
                Err(Fault::Timeout)
            };
            waited(put, |()| Ok(Answer::Unit), full)
        }
        Op::Take { timeout_ms } => {
            let taken = gate.wait_for(ctx, ms(timeout_ms), |state| state.items.pop_front());
            let empty = if timeout_ms == Some(0) {
                Err(Fault::Empty)
            } else {
                Err(Fault::Timeout)
            };
            waited(taken, |item| Ok(Answer::Bytes(item)), empty)
        }
        Op::Len => Some(Ok(Answer::Count(gate.lock().items.len() as u64))),
        op => Some(unsupported(&op)),
    }
}

/// Runs random bytes through the request decoder and dispatcher of a
/// store that holds one object of every kind (ids 1 to 12, in the order
/// of [`Kind`]): the fuzz target's entry point. Each request is a frame
/// (2-byte little-endian length, then the bytes); nothing waits. A frame
/// `0xff, n, op...` is a call of the postcard `Op` that follows on object
/// `n % 12 + 1`.
pub(crate) fn fuzz(data: &[u8]) {
    let store = Store::new(None);
    let kinds = [
        (Kind::Dict, Init::Empty),
        (Kind::List, Init::Empty),
        (Kind::Value, Init::Value(vec![0])),
        (Kind::Array, Init::Items(vec![vec![0]; 4])),
        (Kind::Namespace, Init::Empty),
        (Kind::Lock, Init::Empty),
        (Kind::RLock, Init::Empty),
        (Kind::Semaphore, Init::Count(1)),
        (Kind::Event, Init::Empty),
        (Kind::Condition, Init::Empty),
        (Kind::Barrier, Init::Count(2)),
        (Kind::Queue, Init::Count(2)),
    ];
    for (kind, init) in &kinds {
        let _ = store.create(*kind, 0, init.clone());
    }
    let alive = || true;
    let mut rest = data;
    let mut connection = 1;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        // Two clients take turns; the first byte of a frame picks.
        connection = if frame.first().is_some_and(|byte| byte & 1 == 1) {
            3 - connection
        } else {
            connection
        };
        let ctx = Ctx {
            connection,
            alive: &alive,
            wait_cap: Some(Duration::ZERO),
        };
        // A frame `0xff, n, op...` is a call of `op` on object `n % 12 + 1`
        // with the right kind and fingerprint, so that random bytes reach
        // every object's verbs more often than whole requests would.
        let call;
        let frame = match frame {
            [0xff, which, op @ ..] => match postcard::from_bytes::<Op>(op) {
                Ok(op) => {
                    let (kind, _) = &kinds[usize::from(*which) % kinds.len()];
                    call = postcard::to_allocvec(&Request::Call {
                        id: u64::from(*which) % kinds.len() as u64 + 1,
                        kind: *kind,
                        fingerprint: 0,
                        op,
                    })
                    .unwrap_or_default();
                    &call[..]
                }
                Err(_) => frame,
            },
            _ => frame,
        };
        if let Outcome::Reply(reply) = store.handle(&ctx, frame) {
            assert!(postcard::from_bytes::<Reply>(&reply).is_ok());
        }
    }
    store.release_all(1);
    store.release_all(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(store: &Store, connection: u64, request: &Request) -> Reply {
        let alive = || true;
        let ctx = Ctx {
            connection,
            alive: &alive,
            wait_cap: Some(Duration::ZERO),
        };
        match store.handle(&ctx, &postcard::to_allocvec(request).unwrap()) {
            Outcome::Reply(reply) => postcard::from_bytes(&reply).unwrap(),
            _ => panic!("no reply"),
        }
    }

    fn create(store: &Store, kind: Kind, init: Init) -> u64 {
        match call(
            store,
            1,
            &Request::Create {
                kind,
                fingerprint: 7,
                init,
            },
        ) {
            Ok(Answer::Id(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    fn op(id: u64, kind: Kind, op: Op) -> Request {
        Request::Call {
            id,
            kind,
            fingerprint: 7,
            op,
        }
    }

    #[test]
    fn garbage_and_wrong_requests_get_faults() {
        let store = Store::new(None);
        let dict = create(&store, Kind::Dict, Init::Empty);
        let alive = || true;
        let ctx = Ctx {
            connection: 1,
            alive: &alive,
            wait_cap: Some(Duration::ZERO),
        };
        let Outcome::Reply(reply) = store.handle(&ctx, &[0xff, 0xff, 0xff]) else {
            panic!("no reply");
        };
        assert!(matches!(
            postcard::from_bytes::<Reply>(&reply).unwrap(),
            Err(Fault::Malformed(_))
        ));
        assert_eq!(
            call(&store, 1, &op(99, Kind::Dict, Op::Len)),
            Err(Fault::UnknownObject(99))
        );
        assert_eq!(
            call(&store, 1, &op(dict, Kind::List, Op::Len)),
            Err(Fault::WrongKind {
                object: Kind::Dict,
                proxy: Kind::List
            })
        );
        let wrong_type = Request::Call {
            id: dict,
            kind: Kind::Dict,
            fingerprint: 8,
            op: Op::Len,
        };
        assert_eq!(
            call(&store, 1, &wrong_type),
            Err(Fault::WrongType { kind: Kind::Dict })
        );
        assert_eq!(
            call(&store, 1, &op(dict, Kind::Dict, Op::Push(vec![0; 1000]))),
            Err(Fault::Unsupported {
                kind: Kind::Dict,
                op: "Push".into()
            })
        );
    }

    #[test]
    fn locks_of_a_connection_are_released_when_it_ends() {
        let store = Store::new(None);
        let id = create(&store, Kind::Lock, Init::Empty);
        let acquire = op(
            id,
            Kind::Lock,
            Op::Acquire {
                timeout_ms: Some(0),
            },
        );
        assert_eq!(call(&store, 1, &acquire), Ok(Answer::Bool(true)));
        assert_eq!(call(&store, 2, &acquire), Ok(Answer::Bool(false)));
        assert_eq!(
            call(&store, 2, &op(id, Kind::Lock, Op::Release)),
            Err(Fault::NotOwner)
        );
        store.release_all(1);
        assert_eq!(call(&store, 2, &acquire), Ok(Answer::Bool(true)));
    }

    #[test]
    fn add_checks_overflow() {
        let store = Store::new(None);
        let init = Init::Value(postcard::to_allocvec(&250u8).unwrap());
        let id = create(&store, Kind::Value, init);
        let add = |delta: u8| {
            op(
                id,
                Kind::Value,
                Op::Add {
                    kind: NumKind::U8,
                    delta: postcard::to_allocvec(&delta).unwrap(),
                },
            )
        };
        assert_eq!(
            call(&store, 1, &add(5)),
            Ok(Answer::Bytes(postcard::to_allocvec(&255u8).unwrap()))
        );
        assert_eq!(call(&store, 1, &add(1)), Err(Fault::Overflow));
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        fuzz(&[3, 0, 1, 2, 3, 200, 0, 9, 9]);
        // Calls on the list (object 2): push, then pop.
        let push = postcard::to_allocvec(&Op::Push(vec![1, 2])).unwrap();
        let pop = postcard::to_allocvec(&Op::Pop).unwrap();
        let mut data = Vec::new();
        for op in [push, pop] {
            data.extend_from_slice(&(op.len() as u16 + 2).to_le_bytes());
            data.extend_from_slice(&[0xff, 1]);
            data.extend_from_slice(&op);
        }
        fuzz(&data);
        fuzz(&[]);
    }
}
