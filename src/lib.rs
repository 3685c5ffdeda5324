//! Python's `multiprocessing`, for Rust: processes, queues, locks,
//! semaphores and shared values, over shared memory.
//!
//! ```
//! use mproc::{Process, Queue, Value};
//!
//! let queue = Queue::<u64>::new(1024)?;
//! let total = Value::new(0u64)?;
//!
//! let mut producer = {
//!     let queue = queue.clone();
//!     Process::spawn(move || (1..=1000).for_each(|n| queue.put(n).unwrap()))?
//! };
//! let mut consumer = {
//!     let (queue, total) = (queue.clone(), total.clone());
//!     Process::spawn(move || {
//!         for _ in 0..1000 {
//!             *total.lock() += queue.get().unwrap();
//!         }
//!     })?
//! };
//! producer.join()?;
//! consumer.join()?;
//! assert_eq!(total.get(), 500_500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The crates
//!
//! * [`mproc_core`] (`#![no_std]`, no allocation): the algorithms, placed in
//!   caller-provided shared memory and model-checked with loom: MPMC and
//!   SPSC rings, mutex, reentrant mutex, semaphores, event, condition
//!   variable, barrier, shared cells, layout headers.
//! * [`mproc_os`]: Linux: shared futexes, shared-memory regions (anonymous,
//!   memfd, named), `fork` and pidfds, and the blocking types below.
//! * [`mproc_pool`]: processes ([`Process`]) and their start methods, the
//!   process tree, logging, the worker [`Pool`], and the [`Manager`]
//!   server process with its typed proxies ([`manager`]).
//!
//! # Python → mproc
//!
//! | Python `multiprocessing` | mproc |
//! |---|---|
//! | `Process(target=f).start()`, `join()` | [`Process::spawn`]`(f)`, [`Process::join`] returns `f`'s value |
//! | `Process(name=.., daemon=..)`, start methods | [`Process::builder`] ([`Builder`]), [`StartMethod`], [`set_start_method`]; [`init`] first in `main` for `Spawn` |
//! | subclassing `Process` | [`Run`], [`Builder::start`] |
//! | `current_process()`, `parent_process()`, `active_children()`, `cpu_count()` | [`current_process`], [`parent_process`], [`active_children`], [`cpu_count`] |
//! | `Process(target=f, args=(lock, queue))` under `spawn` / `forkserver`: the objects are pickled and their fds passed | [`Builder::spawn_fn`]`(f, (lock.token()?, queue.token()?))` with any start method: [`Share::token`] makes a serde [`Token`], whose fds travel beside the arguments; the child calls [`Token::attach`], which checks kind and element type ([`share`]) |
//! | `Pool(processes, initializer, initargs, maxtasksperchild)`, `with Pool() as pool:` | [`Pool::new`]`(n)`, [`Pool::builder`] ([`PoolBuilder`]: `processes`, `initializer(f, args)`, `maxtasksperchild`, `start_method`, default [`StartMethod::ForkServer`]); dropping the pool terminates it |
//! | `pool.map(f, xs, chunksize)`, `starmap`, `imap`, `imap_unordered`, `apply`, `apply_async`, `map_async`, `starmap_async`, `callback` / `error_callback` | the same verbs on [`Pool`]; tasks are `fn` items (non-capturing closures coerce) with serde arguments; `chunksize` through [`Pool::chunksize`] ([`Chunked`]), callbacks through `*_with` and [`Callbacks`]; [`IMap`] pulls its input lazily (endless inputs work) and yields a `Result` per item |
//! | `AsyncResult`: `get(timeout)`, `wait(timeout)`, `ready`, `successful` | [`AsyncResult`]: `get`, `get_timeout` ([`PoolError::Timeout`]), `wait`, `wait_timeout`, `ready`, `successful` (`None` until ready) |
//! | `pool.close()`, `join()`, `terminate()` | the same; `join` before `close` is [`PoolError::StillRunning`] |
//! | a worker killed mid-task hangs the pool forever; an exception fails the task | a task whose worker is killed or exits fails with [`PoolError::WorkerKilled`] / [`PoolError::WorkerExited`] (pid, signal or code), a panic with [`PoolError::Panicked`]; the worker is replaced and every other task completes |
//! | `Manager()`: `dict()`, `list()`, `Value`, `Array`, `Namespace`, `Lock`, `RLock`, `Semaphore`, `Event`, `Condition`, `Barrier`, `Queue` proxies, passed to children | [`Manager::start`]: a server process (a daemon: it dies with its owner); [`Manager::dict`], [`Manager::list`], [`Manager::value`], [`Manager::array`], [`Manager::namespace`], [`Manager::lock`], ... return typed proxies ([`DictProxy`], [`ListProxy`], ...) that any child can use; a proxy of the wrong types is [`ManagerError::WrongType`]; dropping the manager shuts the server down ([`manager`]) |
//! | `BaseManager(address, authkey)`: `get_server().serve_forever()`, `connect()`, `register(typeid)` | [`Manager::serve`]`(addr, authkey)`, [`Manager::connect`]`(addr, authkey)` from any program on any host, [`Manager::register`] / [`Manager::lookup`] by name; every connection, local ones included, passes Python's HMAC challenge both ways ([`ManagerError::Authentication`]) |
//! | `log_to_stderr()` | [`log_to_stderr`] |
//! | `Queue(maxsize)`: `put`, `get`, `put_nowait`, `get_nowait`, `qsize`, `close` | [`Queue`] of any serde type, any size: `put`, `get`, `try_put`, `try_get`, `*_timeout`, `len`, `close` (then `get` drains and returns [`GetError::Closed`]) |
//! | `JoinableQueue`: `task_done`, `join`; `SimpleQueue` | [`JoinableQueue`] (`task_done` too often is an error, `join_timeout`), [`SimpleQueue`] |
//! | (no counterpart: plain data with no pickling) | [`PodQueue`] of [`ShmSafe`] values: no encoding, no allocation, batch `put_many` / `get_many` |
//! | `Pipe()`, `Pipe(duplex=False)`: `send`, `recv`, `poll`, `send_bytes`, `recv_bytes` | [`pipe`](fn@pipe) → two [`Connection`]s, [`pipe_simplex`] → ([`Receiver`], [`Sender`]), of any serde type, through shared memory: `send`, `recv`, `recv_timeout`, `try_recv`, `poll`, `send_bytes`, `recv_bytes`; a peer that exits or is killed is [`RecvError::Disconnected`], never a hang; `send_fd` / `recv_fd` pass open file descriptors |
//! | `multiprocessing.connection.wait(objects, timeout)` | [`wait()`]`(&[&conn, &queue, ..], timeout)` → the indices of the ready ones (empty on timeout); waits for any [`Waitable`]: [`Connection`], [`Receiver`], [`Queue`], [`JoinableQueue`], [`SimpleQueue`], [`PodQueue`]; a disconnected connection or a closed queue counts as ready |
//! | `Lock()` | [`Lock`] (guard released on drop, `try_lock`, `lock_timeout`) |
//! | `RLock()` | [`RLock`] (owned by a process: guards from `lock`, `try_lock`, `lock_timeout`, or `acquire` / `release`; a release by a non-owner is [`ReleaseError::NotOwner`]) |
//! | `Semaphore(n)` | [`Semaphore`] (`acquire`, `try_acquire`, `acquire_timeout`, `release`) |
//! | `BoundedSemaphore(n)` | [`BoundedSemaphore`] (as `Semaphore`; a release above `n` is [`Overflow`] and changes nothing) |
//! | `Event()` | [`Event`] |
//! | `Condition()` | [`Condition`] with its own lock: `lock` gives a [`ConditionGuard`]; `wait`, `wait_timeout` (false on timeout), `wait_for`, `wait_for_timeout`, `notify(n)`, `notify_one`, `notify_all` |
//! | `Barrier(parties)`: `wait`, `abort`, `reset`, `parties`, `n_waiting`, `broken` | [`Barrier`]: the same, `wait` returns the arrival index or [`BrokenBarrier`]; `wait_timeout` breaks it on timeout ([`BarrierWaitError`]) |
//! | `Value('d', 0.0)`, `Array('i', range(10))` | [`Value`], [`Array`], each with its lock |
//! | `shared_memory.SharedMemory(name, create, size)`: `name`, `size`, `buf`, `close`, `unlink` | [`SharedMemory::create`]`(name, size)`, [`SharedMemory::create_unique`]`(size)`, [`SharedMemory::open`]`(name)` from any process; `name`, `size`, `read` / `write` (bounds checked: [`OutOfRange`]), `as_ptr` / `as_slice` / `as_mut_slice` (unsafe); `unlink`; the creator's handle unlinks on drop unless kept (`keep`), an opener never unlinks (Python's resource tracker does, when an opener exits); the same `/dev/shm` names as Python, so each opens the other's blocks; errors are [`SharedMemoryError`] |
//!
//! Values in shared memory are plain old data: types that implement
//! [`ShmSafe`] (integers, floats, arrays of them, and your `#[repr(C)]`
//! structs of them).
//!
//! # Sharing with `ForkServer` and `Spawn` children
//!
//! A child started with [`StartMethod::Fork`] inherits everything its
//! parent made. The others share no memory with the parent: hand them
//! objects as [`Token`]s among their arguments (every shared type
//! implements [`Share`]; see [`share`] for how the descriptors travel).
//!
//! ```
//! use mproc::{Event, Share, StartMethod, Token, Value};
//!
//! fn count((total, done): (Token<Value<u64>>, Token<Event>)) {
//!     let (total, done) = (total.attach().unwrap(), done.attach().unwrap());
//!     *total.lock() += (1..=10).sum::<u64>();
//!     done.set();
//! }
//!
//! let total = Value::new(0u64)?;
//! let done = Event::new()?;
//! let mut child = mproc::Process::builder()
//!     .start_method(StartMethod::ForkServer)
//!     .spawn_fn(count, (total.token()?, done.token()?))?;
//! child.join()?;
//! assert!(done.is_set());
//! assert_eq!(total.get(), 55);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub use mproc_core::semaphore::Overflow;
pub use mproc_core::{LayoutError, ShmSafe, TimedOut};
pub use mproc_os::joinable::TooManyDone;
pub use mproc_os::share::{Share, ShareError, Token, TokenError};
pub use mproc_os::shm::Region;
pub use mproc_os::{
    Array, ArrayGuard, Barrier, BarrierWaitError, BoundedSemaphore, BrokenBarrier, CodecError,
    Condition, ConditionGuard, Connection, Error, Event, FdError, GetError, JoinableQueue, Lock,
    LockGuard, OutOfBounds, OutOfRange, PodQueue, PutError, Queue, RLock, RLockGuard, Receiver,
    RecvError, ReleaseError, Result, Semaphore, SendError, Sender, SharedMemory, SharedMemoryError,
    SimpleQueue, Value, ValueGuard, Waitable, spsc, wait,
};
// From `connection`: the root of mproc-os also has a `pipe` module (byte
// pipes), which the facade does not re-export.
pub use mproc_os::connection::{pipe, pipe_simplex};
pub use mproc_pool::manager;
pub use mproc_pool::{
    ArrayProxy, AsyncResult, BarrierProxy, Builder, Callbacks, Chunked, ConditionProxy, DictProxy,
    EventProxy, IMap, ListProxy, LockProxy, Manager, ManagerError, NamespaceProxy, ParentProcess,
    Pool, PoolBuilder, PoolError, Process, ProcessError, ProcessInfo, Proxy, ProxyGuard,
    QueueProxy, RLockProxy, Run, SemaphoreProxy, StarTask, StartMethod, ValueProxy,
    active_children, cpu_count, current_process, enable_test_support, init, log_to_stderr,
    parent_process, set_start_method, start_method,
};

/// The code blocks of `README.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use mproc_core;
pub use mproc_os;
pub use mproc_os::share;
pub use mproc_pool;
