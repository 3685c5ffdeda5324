//! [`Pool`]: a pool of worker processes (Python's `multiprocessing.Pool`),
//! whose tasks fail, rather than hang, when a worker dies.
//!
//! # Architecture
//!
//! * **Workers.** Each worker is a [`Process`] started with
//!   [`Builder::spawn_fn`](crate::Builder::spawn_fn) (by default through the
//!   single-threaded fork server, [`StartMethod::ForkServer`], so a pool
//!   made or refilled from a multi-threaded program forks nothing but the
//!   server). Its only tie to the pool is one duplex
//!   [`Connection`](mproc_os::Connection) made by the pool and handed over
//!   as a [`Token`](mproc_os::share::Token) among its arguments (wire
//!   format: [`wire`]). A worker holds at most one task (a chunk of items)
//!   at a time: it reads a task, runs its items, writes their results,
//!   and reads again.
//! * **No threads.** The pool starts no thread of its own. Work moves
//!   forward in the threads that call into the pool: submitting a task
//!   hands it to an idle worker at once (or queues it), and a thread that
//!   waits for a result ([`AsyncResult::get`], [`Pool::map`], an [`IMap`],
//!   [`Pool::join`], ...) *drives* the pool while it waits: it waits with
//!   [`mproc_os::wait()`] on the connections of the busy workers, collects
//!   whatever results arrive (its own or anybody's), hands queued tasks to
//!   the workers that became idle, and replaces workers that died or
//!   retired. One thread drives at a time; the others sleep on a condition
//!   variable and are woken by each batch of progress, and one of them
//!   takes over when the driver has what it waited for. So results are
//!   collected, and callbacks run, while some thread waits on the pool:
//!   a callback runs on the thread that drives at that moment, before the
//!   result it is given counts as ready (as in Python, where the pool's
//!   result thread calls it). [`AsyncResult::ready`] makes one
//!   non-blocking pass. Nothing can deadlock on a hidden thread, and a
//!   result is handed from a worker to the thread that waits for it with
//!   no extra hop.
//! * **Failures are values.** A task that panics fails with its message
//!   ([`PoolError::Panicked`]) and the worker goes on. A worker that dies
//!   (killed by a signal, or calling `std::process::exit`) closes its end
//!   of the connection with its exit: [`mproc_os::wait()`] reports that end
//!   as ready (looking at dead peers at least every 64 ms), the pool reaps
//!   the worker, fails exactly the task it held with
//!   [`PoolError::WorkerKilled`] or [`PoolError::WorkerExited`] (its pid,
//!   its signal or code), and starts a replacement.
//! * **Back-pressure.** [`Pool::imap`] and [`Pool::imap_unordered`] pull
//!   their input only as results are taken: at most
//!   `2 × processes × chunksize` items are in flight, so an endless input
//!   works.
//!
//! A chunk is the unit of failure when a worker dies: with a `chunksize`
//! above 1, every item of the chunk the worker held fails (the items are
//! reported together when the whole chunk is done).

mod codec;
mod result;
mod wire;

use core::fmt;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mproc_os::connection::{Receiver, RecvError, Sender, pipe, pipe_simplex};
use mproc_os::process::ExitStatus;
use mproc_os::share::{Share, Token};
use mproc_os::{Waitable, wait};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use result::{AsyncResult, Callbacks, IMap};
pub use wire::StarTask;

use crate::process::{Process, ProcessError, StartMethod};
use result::{ApplySink, Completion, ImapBuffer, MapSink, ResultCell};
use wire::{INIT_FAILED, InitCall, Link, RESULTS, Runner, STOP, TaskFrame, WorkerArgs};

/// How long a worker whose connection closed may take to exit before it
/// is killed (it is exiting: only a wedged exit takes more than
/// milliseconds).
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// How long a worker gets to exit after `SIGTERM` ([`Pool::terminate`])
/// before it is sent `SIGKILL`.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// The longest a thread waiting for another thread's progress sleeps
/// before it looks again. Every change notifies it; this only bounds the
/// cost of a missed case.
const NAP: Duration = Duration::from_millis(100);

/// How long a driver polls its busy workers (yielding its core between
/// looks) before it sleeps: a reply from a worker that is running comes
/// in microseconds, and a futex wake-up costs more than that.
const SPIN: Duration = Duration::from_micros(50);

/// The most bytes a map's task frame reserves before its items are
/// encoded.
const FRAME_GUESS: usize = 64 << 20;

/// How often a thread that submits the chunks of a job looks for results
/// of busy workers (nobody else may be driving the pool meanwhile).
const POLL: Duration = Duration::from_micros(100);

/// Why a pool task, or the pool itself, failed.
///
/// # Examples
///
/// ```
/// use mproc_pool::{Pool, PoolError, StartMethod};
///
/// fn check(n: u32) -> u32 {
///     assert!(n != 3, "three is not allowed");
///     n
/// }
///
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// let error = pool.apply(check, 3).unwrap_err();
/// assert!(matches!(&error, PoolError::Panicked { message, .. } if message == "three is not allowed"));
/// assert_eq!(pool.apply(check, 4)?, 4);
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// The task panicked in worker `pid`; the worker goes on.
    Panicked {
        /// The worker's pid.
        pid: u32,
        /// The panic message.
        message: String,
    },
    /// Worker `pid` was killed by `signal` while it held the task.
    WorkerKilled {
        /// The worker's pid.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// Worker `pid` exited with `code` while it held the task (it called
    /// `std::process::exit`, say).
    WorkerExited {
        /// The worker's pid.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// Worker `pid` ended some other way while it held the task.
    WorkerLost {
        /// The worker's pid.
        pid: u32,
        /// How it ended.
        reason: String,
    },
    /// The pool's initializer panicked in worker `pid`: the pool is broken,
    /// and every task not yet done fails with this error.
    Initializer {
        /// The worker's pid.
        pid: u32,
        /// The panic message.
        message: String,
    },
    /// Arguments or a result did not encode or decode.
    Codec {
        /// What did not, and why.
        reason: String,
    },
    /// Workers could not be started.
    Start {
        /// Why.
        reason: String,
    },
    /// The pool was configured with a value it cannot take, or a map's
    /// input miscounted itself.
    Invalid {
        /// Which, and why.
        reason: String,
    },
    /// The result was not ready before the timeout (it stays pending).
    Timeout,
    /// The pool takes no more tasks: it was closed or terminated.
    NotRunning,
    /// [`Pool::join`] was called before [`Pool::close`] or
    /// [`Pool::terminate`].
    StillRunning,
    /// The pool was terminated before the task was done.
    Terminated,
    /// The result was already taken by an earlier `get`.
    AlreadyTaken,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked { pid, message } => {
                write!(f, "the task panicked in worker {pid}: {message}")
            }
            Self::WorkerKilled { pid, signal } => {
                let status = ExitStatus::Signaled {
                    signal: *signal,
                    core_dumped: false,
                };
                write!(f, "worker {pid} was {status} while running the task")
            }
            Self::WorkerExited { pid, code } => {
                write!(
                    f,
                    "worker {pid} exited with code {code} while running the task"
                )
            }
            Self::WorkerLost { pid, reason } => {
                write!(f, "worker {pid} ended while running the task: {reason}")
            }
            Self::Initializer { pid, message } => {
                write!(
                    f,
                    "the pool's initializer panicked in worker {pid}: {message}"
                )
            }
            Self::Codec { reason } => f.write_str(reason),
            Self::Start { reason } => write!(f, "cannot start pool workers: {reason}"),
            Self::Invalid { reason } => f.write_str(reason),
            Self::Timeout => f.write_str("the result is not ready yet"),
            Self::NotRunning => f.write_str("the pool is closed or terminated"),
            Self::StillRunning => f.write_str("join needs the pool closed or terminated first"),
            Self::Terminated => f.write_str("the pool was terminated before the task was done"),
            Self::AlreadyTaken => f.write_str("the result was already taken"),
        }
    }
}

impl std::error::Error for PoolError {}

impl PoolError {
    fn start(error: impl fmt::Display) -> Self {
        Self::Start {
            reason: error.to_string(),
        }
    }

    fn encode(error: impl fmt::Display) -> Self {
        Self::Codec {
            reason: format!(
                "the arguments do not serialize: {error} (a task's arguments cannot hold \
                 tokens: pass shared objects through the initializer)"
            ),
        }
    }
}

/// Starts one worker: its end of the connection, its name.
type Spawner = Arc<dyn Fn(Token<Link>, String) -> Result<Process<()>, ProcessError> + Send + Sync>;

/// The spawner of workers that run `init` first (if any), started with
/// `method`.
fn spawner<I>(method: StartMethod, init: Option<(fn(I), I)>) -> Result<Spawner, PoolError>
where
    I: Serialize + DeserializeOwned + Send + 'static,
{
    // The arguments are encoded once, with the descriptors of their
    // tokens; each worker gets a copy decoded from duplicates of them.
    let init = match init {
        None => None,
        Some((f, args)) => {
            let encoded = mproc_os::share::encode(&args).map_err(|error| PoolError::Codec {
                reason: format!("the initializer's arguments do not serialize: {error}"),
            })?;
            Some((wire::init_offset(f), encoded))
        }
    };
    Ok(Arc::new(move |link, name| {
        let init = match &init {
            None => None,
            Some((func, encoded)) => {
                let fds = encoded
                    .fds
                    .iter()
                    .map(|fd| fd.try_clone())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| ProcessError::Start {
                        reason: format!("cannot duplicate the initializer's descriptors: {error}"),
                    })?;
                let args = mproc_os::share::decode::<I>(&encoded.bytes, fds).map_err(|error| {
                    ProcessError::Start {
                        reason: format!("the initializer's arguments do not decode: {error}"),
                    }
                })?;
                Some(InitCall { func: *func, args })
            }
        };
        // A daemon dies with the thread that started it (the kernel's
        // parent-death signal follows the thread): workers started by the
        // fork server, or forked by the process's only thread, are safe;
        // a spawned worker started from another thread is not made a
        // daemon, and ends when the pool's end of its connection goes.
        let daemon = method != StartMethod::Spawn || mproc_os::process::is_main_thread();
        Process::builder()
            .name(name)
            .daemon(daemon)
            .start_method(method)
            .spawn_fn(wire::worker_main::<I>, WorkerArgs { link, init })
    }))
}

/// Makes the spawner of a pool with an initializer, for a start method.
type MakeSpawner = Box<dyn FnOnce(StartMethod) -> Result<Spawner, PoolError>>;

/// Options for a new [`Pool`]: number of workers, initializer, worker
/// recycling, start method.
///
/// # Examples
///
/// ```
/// use mproc_pool::{Pool, StartMethod};
///
/// fn greet(name: String) {
///     // Runs once in each worker, before its first task.
///     assert_eq!(name, "pool");
/// }
///
/// fn pid(_: u32) -> u32 {
///     std::process::id()
/// }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .initializer(greet, "pool".to_owned())
///     .maxtasksperchild(1)
///     .start_method(StartMethod::Fork)
///     .build()?;
/// let pids = pool.chunksize(1).map(pid, 0..4)?;
/// // One task per worker: four different workers.
/// assert_eq!(pids.iter().collect::<std::collections::HashSet<_>>().len(), 4);
/// # Ok::<(), mproc_pool::PoolError>(())
/// ```
#[must_use]
pub struct PoolBuilder {
    processes: Option<usize>,
    maxtasks: Option<usize>,
    method: StartMethod,
    init: Option<MakeSpawner>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("maxtasksperchild", &self.maxtasks)
            .field("start_method", &self.method)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolBuilder {
    /// A builder with the defaults: [`cpu_count`](crate::cpu_count)
    /// workers, no initializer, workers never recycled,
    /// [`StartMethod::ForkServer`].
    pub fn new() -> Self {
        Self {
            processes: None,
            maxtasks: None,
            method: StartMethod::ForkServer,
            init: None,
        }
    }

    /// The number of workers (at least 1; default
    /// [`cpu_count`](crate::cpu_count)).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// A function each worker runs once, with a copy of `args`, before its
    /// first task (Python's `initializer` and `initargs`). `args` may hold
    /// [`Token`]s of shared objects: each worker gets its own.
    ///
    /// If it panics, the pool is broken: the task that met the failure,
    /// every queued task and every later submission fail with
    /// [`PoolError::Initializer`] (Python starts new workers forever).
    pub fn initializer<I>(mut self, f: fn(I), args: I) -> Self
    where
        I: Serialize + DeserializeOwned + Send + 'static,
    {
        self.init = Some(Box::new(move |method| spawner(method, Some((f, args)))));
        self
    }

    /// Replaces each worker after it has run `tasks` tasks (at least 1;
    /// default: never). As in Python, a task is a chunk: one item of
    /// `apply`, `chunksize` items of `map`.
    pub fn maxtasksperchild(mut self, tasks: usize) -> Self {
        self.maxtasks = Some(tasks);
        self
    }

    /// How workers are started (default [`StartMethod::ForkServer`]).
    ///
    /// [`StartMethod::Fork`] forks the calling process: only from a
    /// single-threaded process (every start, replacements included, fails
    /// with [`PoolError::Start`] otherwise). [`StartMethod::Spawn`] needs
    /// `mproc::init()` first in `main`.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`PoolError::Invalid`] for 0 processes or 0 tasks per child,
    /// [`PoolError::Start`] if a worker cannot be started,
    /// [`PoolError::Codec`] if the initializer's arguments do not
    /// serialize.
    pub fn build(self) -> Result<Pool, PoolError> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(PoolError::Invalid {
                reason: "a pool needs at least one process".to_owned(),
            });
        }
        if self.maxtasks == Some(0) {
            return Err(PoolError::Invalid {
                reason: "maxtasksperchild must be at least 1".to_owned(),
            });
        }
        let spawner = match self.init {
            Some(init) => init(self.method)?,
            None => spawner::<()>(self.method, None)?,
        };
        let (bell, ringer) = pipe_simplex::<u8>().map_err(PoolError::start)?;
        let mut state = State {
            status: Status::Running,
            processes,
            maxtasks: self.maxtasks,
            spawner,
            workers: Vec::with_capacity(processes),
            retiring: Vec::new(),
            queue: VecDeque::new(),
            jobs: HashMap::new(),
            next_job: 0,
            next_worker: 0,
            driving: false,
            bell_rung: false,
            completing: 0,
            broken: None,
            arrived: Vec::new(),
            polled: None,
        };
        for _ in 0..processes {
            if let Err(error) = state.start_worker() {
                state.kill_all();
                return Err(error);
            }
        }
        Ok(Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                progress: Condvar::new(),
                bell,
                ringer,
            }),
        })
    }
}

/// A pool of worker processes that run `fn` items with serde arguments
/// (Python's `multiprocessing.Pool`).
///
/// Tasks are `fn(A) -> R` items (a closure that captures nothing coerces
/// to one; [`starmap`](Pool::starmap) takes functions of several
/// arguments); `A` travels to a worker and `R` back with serde, in a
/// binary encoding of fixed-width little-endian fields (a `u64` is 8
/// bytes, a string its length and bytes). That encoding does not describe
/// itself, so a type whose `Deserialize` needs `deserialize_any`
/// (untagged enums, `#[serde(flatten)]`, `serde_json::Value`) fails with
/// [`PoolError::Codec`] saying so. The verbs are Python's:
/// [`apply`](Pool::apply),
/// [`apply_async`](Pool::apply_async), [`map`](Pool::map),
/// [`map_async`](Pool::map_async), [`starmap`](Pool::starmap),
/// [`imap`](Pool::imap), [`imap_unordered`](Pool::imap_unordered); a
/// `chunksize` goes through [`Pool::chunksize`]; callbacks through the
/// `*_with` forms and [`Callbacks`]. Then [`close`](Pool::close) and
/// [`join`](Pool::join), or [`terminate`](Pool::terminate); dropping the
/// pool terminates it (Python's `with Pool() as pool:`).
///
/// A task that panics, or whose worker is killed or exits, fails with a
/// [`PoolError`] saying so; the pool replaces the worker and the other
/// tasks go on. See [below](#how-work-moves) for how work moves without a
/// thread of the pool's own.
///
/// `Pool` is `Sync`: threads may share one and submit and wait at once.
///
/// # How work moves
///
/// * **Workers.** Each worker is a [`Process`] started with
///   [`Builder::spawn_fn`](crate::Builder::spawn_fn) (by default through the
///   single-threaded fork server, [`StartMethod::ForkServer`], so a pool
///   made or refilled from a multi-threaded program forks nothing but the
///   server). Its only tie to the pool is one duplex
///   [`Connection`](mproc_os::Connection) made by the pool and handed over
///   as a [`Token`](mproc_os::share::Token) among its arguments. A
///   worker holds at most one task (a chunk of items) at a time: it reads a task, runs its items, writes their results,
///   and reads again.
/// * **No threads.** The pool starts no thread of its own. Work moves
///   forward in the threads that call into the pool: submitting a task
///   hands it to an idle worker at once (or queues it), and a thread that
///   waits for a result ([`AsyncResult::get`], [`Pool::map`], an [`IMap`],
///   [`Pool::join`], ...) *drives* the pool while it waits: it waits with
///   [`mproc_os::wait()`] on the connections of the busy workers, collects
///   whatever results arrive (its own or anybody's), hands queued tasks to
///   the workers that became idle, and replaces workers that died or
///   retired. One thread drives at a time; the others sleep on a condition
///   variable and are woken by each batch of progress, and one of them
///   takes over when the driver has what it waited for. So results are
///   collected, and callbacks run, while some thread waits on the pool:
///   a callback runs on the thread that drives at that moment, before the
///   result it is given counts as ready (as in Python, where the pool's
///   result thread calls it). [`AsyncResult::ready`] makes one
///   non-blocking pass. Nothing can deadlock on a hidden thread, and a
///   result is handed from a worker to the thread that waits for it with
///   no extra hop.
/// * **Failures are values.** A task that panics fails with its message
///   ([`PoolError::Panicked`]) and the worker goes on. A worker that dies
///   (killed by a signal, or calling `std::process::exit`) closes its end
///   of the connection with its exit: [`mproc_os::wait()`] reports that end
///   as ready (looking at dead peers at least every 64 ms), the pool reaps
///   the worker, fails exactly the task it held with
///   [`PoolError::WorkerKilled`] or [`PoolError::WorkerExited`] (its pid,
///   its signal or code), and starts a replacement.
/// * **Back-pressure.** [`Pool::imap`] and [`Pool::imap_unordered`] pull
///   their input only as results are taken: at most
///   `2 × processes × chunksize` items are in flight, so an endless input
///   works.
///
/// A chunk is the unit of failure when a worker dies: with a `chunksize`
/// above 1, every item of the chunk the worker held fails (the items are
/// reported together when the whole chunk is done).
///
/// # Examples
///
/// ```
/// use mproc_pool::{Pool, StartMethod};
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// assert_eq!(pool.map(square, 1..=5)?, [1, 4, 9, 16, 25]);
/// let pending = pool.apply_async(square, 12)?;
/// assert_eq!(pool.imap(square, 1..).take(3).collect::<Result<Vec<_>, _>>()?, [1, 4, 9]);
/// assert_eq!(pending.get()?, 144);
/// pool.close();
/// pool.join()?;
/// # Ok::<(), mproc_pool::PoolError>(())
/// ```
///
/// In a program (not a test), [`StartMethod::ForkServer`], the default,
/// is the robust choice: it works from any number of threads.
///
/// ```
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// fn main() -> Result<(), mproc_pool::PoolError> {
///     mproc_pool::init(); // needed for StartMethod::Spawn only; harmless otherwise
///     let pool = mproc_pool::Pool::new(4)?;
///     println!("{:?}", pool.map(square, 1..=10)?);
///     Ok(())
/// }
/// ```
pub struct Pool {
    shared: Arc<Shared>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Pool")
            .field("processes", &state.processes)
            .field("status", &state.status)
            .field("workers", &state.workers.len())
            .field("queued", &state.queue.len())
            .finish_non_exhaustive()
    }
}

/// What the pool's handles share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified after every batch of progress and whenever the driver
    /// stops driving.
    progress: Condvar,
    /// Rung to wake the driver when the set of busy workers changed, or
    /// the pool was terminated (one of the objects it waits on).
    bell: Receiver<u8>,
    ringer: Sender<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Running,
    Closed,
    Terminated,
    Joined,
}

/// A chunk of items waiting for a worker.
struct Chunk {
    task: Task,
    frame: Vec<u8>,
}

/// Which items of which job a chunk holds.
#[derive(Clone, Copy)]
struct Task {
    job: u64,
    start: usize,
    count: usize,
}

/// A worker as the pool holds it.
struct Worker {
    id: u64,
    link: Arc<Link>,
    process: Process<()>,
    /// The chunk it holds.
    task: Option<Task>,
    /// How many chunks it finished.
    done: usize,
}

/// What became of a whole chunk.
pub(crate) enum ChunkOutcome<'a> {
    /// The worker's results frame (after its kind byte).
    Results { payload: &'a [u8], pid: u32 },
    /// No results: every item fails with this.
    Failed(PoolError),
}

/// Where the results of a job's chunks go.
pub(crate) trait Sink: Send {
    /// The outcome of the chunk of `count` items starting at item `start`;
    /// returns the job's completion once its last chunk is in.
    fn chunk(
        &mut self,
        start: usize,
        count: usize,
        outcome: ChunkOutcome<'_>,
    ) -> Option<Completion>;

    /// Ends the job with `error` without waiting for the chunks not in
    /// yet; returns its completion unless it completed already.
    fn abandon(&mut self, error: PoolError) -> Option<Completion>;
}

struct State {
    status: Status,
    processes: usize,
    maxtasks: Option<usize>,
    spawner: Spawner,
    workers: Vec<Worker>,
    /// Workers told to stop (recycled), not yet reaped.
    retiring: Vec<Process<()>>,
    queue: VecDeque<Chunk>,
    jobs: HashMap<u64, Box<dyn Sink>>,
    next_job: u64,
    next_worker: u64,
    /// A thread is waiting on the busy workers' connections.
    driving: bool,
    /// The bell was rung since the driver started waiting.
    bell_rung: bool,
    /// Batches of completions being run outside the lock.
    completing: usize,
    /// Set when the pool cannot run tasks any more.
    broken: Option<PoolError>,
    /// Results frames received and not yet handed to their jobs (the
    /// chunk, the frame, the worker's pid).
    arrived: Vec<(Task, Vec<u8>, u32)>,
    /// When [`State::poll_busy`] last looked.
    polled: Option<Instant>,
}

impl State {
    fn start_worker(&mut self) -> Result<(), PoolError> {
        let (ours, theirs) = pipe::<Vec<u8>>().map_err(PoolError::start)?;
        let token = theirs.token().map_err(PoolError::start)?;
        // The worker's end lives in the worker only, so that its exit
        // closes it.
        drop(theirs);
        self.next_worker += 1;
        let name = format!("PoolWorker-{}", self.next_worker);
        let process = (self.spawner)(token, name).map_err(PoolError::start)?;
        log::debug!("started pool worker {}", process.pid());
        self.workers.push(Worker {
            id: self.next_worker,
            link: Arc::new(ours),
            process,
            task: None,
            done: 0,
        });
        Ok(())
    }

    /// Refuses a submission unless the pool runs.
    fn check_running(&self) -> Result<(), PoolError> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        match self.status {
            Status::Running => Ok(()),
            _ => Err(PoolError::NotRunning),
        }
    }

    /// Hands `outcome` to the job of `task`.
    fn deliver(&mut self, task: Task, outcome: ChunkOutcome<'_>, done: &mut Vec<Completion>) {
        if let Some(sink) = self.jobs.get_mut(&task.job)
            && let Some(completion) = sink.chunk(task.start, task.count, outcome)
        {
            self.jobs.remove(&task.job);
            done.push(completion);
        }
    }

    /// Starts workers up to the pool's size while it has work to do.
    fn refill(&mut self, done: &mut Vec<Completion>) {
        let wanted = matches!(self.status, Status::Running)
            || (self.status == Status::Closed && !self.queue.is_empty());
        while wanted && self.broken.is_none() && self.workers.len() < self.processes {
            if let Err(error) = self.start_worker() {
                log::warn!("cannot start a pool worker: {error}");
                if self.workers.is_empty() {
                    self.break_pool(error, done);
                }
                return;
            }
        }
    }

    /// Hands the results that arrived to their jobs.
    fn deliver_arrived(&mut self, done: &mut Vec<Completion>) {
        for (task, frame, pid) in std::mem::take(&mut self.arrived) {
            let payload = &frame[1..];
            self.deliver(task, ChunkOutcome::Results { payload, pid }, done);
        }
    }

    /// Hands queued chunks to idle workers, then the results that arrived
    /// to their jobs.
    fn dispatch(&mut self, done: &mut Vec<Completion>) {
        self.hand_out(done);
        self.deliver_arrived(done);
    }

    fn hand_out(&mut self, done: &mut Vec<Completion>) {
        if matches!(self.status, Status::Terminated | Status::Joined) {
            return;
        }
        self.refill(done);
        while !self.queue.is_empty() {
            let Some(index) = self.workers.iter().position(|w| w.task.is_none()) else {
                if self.workers.is_empty() {
                    let error = self.broken.clone().unwrap_or_else(|| PoolError::Start {
                        reason: "no worker is running".to_owned(),
                    });
                    self.break_pool(error, done);
                }
                return;
            };
            // An idle worker has nothing to say unless its initializer
            // failed or it is gone: look before giving it work. (`wait`
            // looks without spinning, as a receive with a zero timeout
            // would before it gives up.)
            let link: &dyn Waitable = &*self.workers[index].link;
            if !wait(&[link], Some(Duration::ZERO)).is_empty() {
                match self.workers[index].link.recv_bytes_timeout(Duration::ZERO) {
                    Err(RecvError::Empty) => {}
                    Ok(frame) => {
                        self.received(index, frame, done);
                        self.refill(done);
                        continue;
                    }
                    Err(_) => {
                        self.lost(index, done);
                        self.refill(done);
                        continue;
                    }
                }
            }
            let Some(chunk) = self.queue.pop_front() else {
                return;
            };
            let worker = &mut self.workers[index];
            // The worker is idle, so it reads: a frame longer than the
            // pipe's buffer streams through while it does.
            match worker.link.send_bytes(&chunk.frame) {
                Ok(()) => worker.task = Some(chunk.task),
                Err(_) => {
                    self.queue.push_front(chunk);
                    self.lost(index, done);
                    self.refill(done);
                }
            }
        }
    }

    /// Takes, without waiting, what the busy workers sent, at most once
    /// per [`POLL`] (a look at a worker that has nothing to say is a
    /// system call).
    fn poll_busy(&mut self, done: &mut Vec<Completion>) {
        let now = Instant::now();
        if self.polled.is_some_and(|at| now.duration_since(at) < POLL) {
            return;
        }
        self.polled = Some(now);
        let busy: Vec<(u64, Arc<Link>)> = self
            .workers
            .iter()
            .filter(|w| w.task.is_some())
            .map(|w| (w.id, w.link.clone()))
            .collect();
        let links: Vec<&dyn Waitable> = busy.iter().map(|(_, l)| &**l as &dyn Waitable).collect();
        for index in wait(&links, Some(Duration::ZERO)) {
            if let Some((id, _)) = busy.get(index) {
                self.collect(*id, done);
            }
        }
    }

    /// Takes what worker `id` sent, if anything.
    fn collect(&mut self, id: u64, done: &mut Vec<Completion>) {
        let Some(index) = self.workers.iter().position(|w| w.id == id) else {
            return;
        };
        match self.workers[index].link.recv_bytes_timeout(Duration::ZERO) {
            Err(RecvError::Empty) => {}
            Ok(frame) => self.received(index, frame, done),
            Err(_) => self.lost(index, done),
        }
    }

    /// Handles a frame from worker `index`.
    fn received(&mut self, index: usize, frame: Vec<u8>, done: &mut Vec<Completion>) {
        let worker = &mut self.workers[index];
        let pid = worker.process.pid();
        match frame.first() {
            Some(&RESULTS) if worker.task.is_some() => {
                let Some(task) = worker.task.take() else {
                    return;
                };
                worker.done += 1;
                let retire = self.maxtasks.is_some_and(|max| worker.done >= max);
                // Decoded after the next dispatch, so that the worker gets
                // its next chunk first.
                self.arrived.push((task, frame, pid));
                if retire {
                    self.retire(index);
                }
            }
            Some(&INIT_FAILED) => {
                let message = String::from_utf8_lossy(&frame[1..]).into_owned();
                let error = PoolError::Initializer { pid, message };
                log::error!("{error}");
                if let Some(task) = worker.task.take() {
                    self.deliver(task, ChunkOutcome::Failed(error.clone()), done);
                }
                // It exits by itself.
                self.lost(index, done);
                self.break_pool(error, done);
            }
            _ => {
                log::error!("pool worker {pid} sent a frame out of turn: killing it");
                let _ = self.workers[index].process.kill();
                self.lost(index, done);
            }
        }
    }

    /// Tells worker `index` to stop (it ran its share of tasks) and sets
    /// it aside to be reaped.
    fn retire(&mut self, index: usize) {
        let worker = self.workers.remove(index);
        log::debug!("retiring pool worker {}", worker.process.pid());
        // If it is gone already, so much the better.
        let _ = worker.link.send_bytes(&[STOP]);
        self.retiring.push(worker.process);
    }

    /// Reaps the retired workers that have exited.
    fn reap_retired(&mut self) {
        self.retiring.retain_mut(|process| {
            matches!(
                process.join_timeout(Duration::ZERO),
                Err(ProcessError::Timeout)
            )
        });
    }

    /// Worker `index` closed its connection: reaps it and fails the chunk
    /// it held with how it ended.
    fn lost(&mut self, index: usize, done: &mut Vec<Completion>) {
        let Worker {
            link,
            mut process,
            task,
            ..
        } = self.workers.remove(index);
        drop(link);
        let pid = process.pid();
        let error = match process.join_timeout(EXIT_GRACE) {
            Ok(()) => PoolError::WorkerExited { pid, code: 0 },
            Err(ProcessError::Signaled { pid, signal }) => PoolError::WorkerKilled { pid, signal },
            Err(ProcessError::Exited { pid, code }) => PoolError::WorkerExited { pid, code },
            Err(ProcessError::Timeout) => {
                let _ = process.kill();
                let _ = process.join();
                PoolError::WorkerLost {
                    pid,
                    reason: "it closed its connection but did not exit".to_owned(),
                }
            }
            Err(other) => PoolError::WorkerLost {
                pid,
                reason: other.to_string(),
            },
        };
        if let Some(task) = task {
            log::warn!("{error}");
            self.deliver(task, ChunkOutcome::Failed(error), done);
        }
    }

    /// Marks the pool broken: queued chunks fail with `error`, and so does
    /// every later submission.
    fn break_pool(&mut self, error: PoolError, done: &mut Vec<Completion>) {
        while let Some(chunk) = self.queue.pop_front() {
            self.deliver(chunk.task, ChunkOutcome::Failed(error.clone()), done);
        }
        self.broken.get_or_insert(error);
    }

    /// Fails every chunk, queued or held, with `error`.
    fn fail_all(&mut self, error: &PoolError, done: &mut Vec<Completion>) {
        self.deliver_arrived(done);
        while let Some(chunk) = self.queue.pop_front() {
            self.deliver(chunk.task, ChunkOutcome::Failed(error.clone()), done);
        }
        let held: Vec<Task> = self
            .workers
            .iter_mut()
            .filter_map(|w| w.task.take())
            .collect();
        for task in held {
            self.deliver(task, ChunkOutcome::Failed(error.clone()), done);
        }
    }

    /// Terminates every worker (`SIGTERM`, then `SIGKILL` after
    /// [`TERM_GRACE`]) and reaps it.
    fn kill_all(&mut self) {
        let mut processes: Vec<Process<()>> = self.workers.drain(..).map(|w| w.process).collect();
        processes.append(&mut self.retiring);
        for process in &processes {
            let _ = process.terminate();
        }
        for process in &mut processes {
            if matches!(process.join_timeout(TERM_GRACE), Err(ProcessError::Timeout)) {
                let _ = process.kill();
                let _ = process.join();
            }
        }
    }

    /// Stops every worker once it is idle (a stop frame) and reaps it.
    fn stop_all(&mut self) {
        for worker in &self.workers {
            let _ = worker.link.send_bytes(&[STOP]);
        }
        let mut processes: Vec<Process<()>> = self.workers.drain(..).map(|w| w.process).collect();
        processes.append(&mut self.retiring);
        for process in &mut processes {
            if matches!(process.join_timeout(EXIT_GRACE), Err(ProcessError::Timeout)) {
                let _ = process.kill();
                let _ = process.join();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver, if a thread drives, so that it looks at the pool
    /// again.
    fn ring(&self, state: &mut State) {
        if state.driving && !state.bell_rung {
            state.bell_rung = true;
            let _ = self.ringer.send(0);
        }
    }

    /// Runs `done` outside the lock (callbacks may call into the pool),
    /// then wakes the threads waiting for progress. A panic in a callback
    /// is raised again once all have run.
    fn complete<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        done: Vec<Completion>,
    ) -> MutexGuard<'a, State> {
        if done.is_empty() {
            return state;
        }
        state.completing += 1;
        drop(state);
        let mut panic = None;
        for completion in done {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(completion)) {
                panic.get_or_insert(payload);
            }
        }
        let mut state = self.lock();
        state.completing -= 1;
        self.progress.notify_all();
        if let Some(payload) = panic {
            drop(state);
            resume_unwind(payload);
        }
        state
    }

    /// Queues the chunks of job `sink` and hands what it can to idle
    /// workers.
    fn submit(
        &self,
        chunks: Vec<(Vec<u8>, usize, usize)>,
        sink: Box<dyn Sink>,
    ) -> Result<u64, PoolError> {
        let mut state = self.lock();
        state.check_running()?;
        let job = state.next_job;
        state.next_job += 1;
        state.jobs.insert(job, sink);
        for (frame, start, count) in chunks {
            let task = Task { job, start, count };
            state.queue.push_back(Chunk { task, frame });
        }
        let mut done = Vec::new();
        state.dispatch(&mut done);
        self.ring(&mut state);
        drop(self.complete(state, done));
        Ok(job)
    }

    /// Queues one more chunk of `job` (submitted already); false if the
    /// job is gone (terminated, or failed as a whole).
    fn extend(&self, job: u64, (frame, start, count): (Vec<u8>, usize, usize)) -> bool {
        let mut state = self.lock();
        if !state.jobs.contains_key(&job) {
            return false;
        }
        let task = Task { job, start, count };
        let mut done = Vec::new();
        match state.broken.clone() {
            Some(error) => state.deliver(task, ChunkOutcome::Failed(error), &mut done),
            None => {
                state.queue.push_back(Chunk { task, frame });
                state.dispatch(&mut done);
                // While a job is being submitted, nobody may be driving:
                // take what busy workers finished, so that they get the
                // chunks queued since.
                if !state.queue.is_empty() && !state.driving {
                    state.poll_busy(&mut done);
                    state.dispatch(&mut done);
                }
                self.ring(&mut state);
            }
        }
        drop(self.complete(state, done));
        true
    }

    /// Ends `job` with `error`, whatever of it is still to come.
    fn abandon(&self, job: u64, error: PoolError) {
        let mut state = self.lock();
        let mut done = Vec::new();
        if let Some(mut sink) = state.jobs.remove(&job) {
            done.extend(sink.abandon(error));
        }
        self.progress.notify_all();
        drop(self.complete(state, done));
    }

    /// Makes progress until `done` holds or `deadline` passes (false then;
    /// a deadline that has passed already still makes one non-blocking
    /// pass). See the module docs for who drives.
    fn drive(&self, deadline: Option<Instant>, mut done: impl FnMut(&mut State) -> bool) -> bool {
        let mut state = self.lock();
        let mut looked = false;
        loop {
            if done(&mut state) {
                return true;
            }
            let remaining = match deadline {
                None => None,
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ if looked => return false,
                    _ => Some(Duration::ZERO),
                },
            };
            looked = true;
            let nap = remaining.map_or(NAP, |left| left.min(NAP));
            if state.driving || state.completing > 0 {
                // Another thread drives, or runs callbacks: it notifies.
                if nap.is_zero() {
                    continue;
                }
                state = self.nap(state, nap);
                continue;
            }
            let mut finished = Vec::new();
            state.dispatch(&mut finished);
            state.reap_retired();
            if !finished.is_empty() {
                self.progress.notify_all();
                state = self.complete(state, finished);
                continue;
            }
            let busy: Vec<(u64, Arc<Link>)> = state
                .workers
                .iter()
                .filter(|w| w.task.is_some())
                .map(|w| (w.id, w.link.clone()))
                .collect();
            if busy.is_empty() {
                // Nothing in flight: what `done` waits for can only come
                // from another thread.
                if !nap.is_zero() {
                    state = self.nap(state, nap);
                }
                continue;
            }
            state.driving = true;
            drop(state);
            let ready = self.await_ready(&busy, remaining);
            state = self.lock();
            state.driving = false;
            if std::mem::take(&mut state.bell_rung) {
                // Rung once per wait: one message (never a receive on an
                // empty pipe, which would spin before it gives up).
                let bell: &dyn Waitable = &self.bell;
                if !wait(&[bell], Some(Duration::ZERO)).is_empty() {
                    let _ = self.bell.try_recv();
                }
            }
            let mut finished = Vec::new();
            for index in ready {
                if let Some((id, _)) = busy.get(index) {
                    state.collect(*id, &mut finished);
                }
            }
            state.dispatch(&mut finished);
            self.progress.notify_all();
            state = self.complete(state, finished);
        }
    }

    fn nap<'a>(&'a self, state: MutexGuard<'a, State>, nap: Duration) -> MutexGuard<'a, State> {
        self.progress
            .wait_timeout(state, nap)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Waits until one of the `busy` links (or the bell) is ready, or
    /// `timeout` passes; returns the indices of the ready ones (the bell's
    /// is `busy.len()`).
    fn await_ready(&self, busy: &[(u64, Arc<Link>)], timeout: Option<Duration>) -> Vec<usize> {
        let mut objects: Vec<&dyn Waitable> = busy
            .iter()
            .map(|(_, link)| &**link as &dyn Waitable)
            .collect();
        objects.push(&self.bell);
        if timeout == Some(Duration::ZERO) {
            return wait(&objects, timeout);
        }
        let start = Instant::now();
        let spin = timeout.map_or(SPIN, |timeout| timeout.min(SPIN));
        loop {
            let ready = wait(&objects, Some(Duration::ZERO));
            if !ready.is_empty() {
                return ready;
            }
            if start.elapsed() >= spin {
                break;
            }
            // Give the core away between looks: a worker that has to
            // run for the reply to come may be waiting for this very
            // core (more processes than cores). With nobody waiting,
            // this returns at once.
            std::thread::yield_now();
        }
        wait(
            &objects,
            timeout.map(|timeout| timeout.saturating_sub(start.elapsed())),
        )
    }

    fn terminate(&self) {
        let mut state = self.lock();
        if matches!(state.status, Status::Terminated | Status::Joined) {
            return;
        }
        state.status = Status::Terminated;
        log::debug!("terminating the pool");
        let mut done = Vec::new();
        state.fail_all(&PoolError::Terminated, &mut done);
        state.kill_all();
        // Jobs whose chunks were not all submitted yet.
        for (_, mut sink) in std::mem::take(&mut state.jobs) {
            done.extend(sink.abandon(PoolError::Terminated));
        }
        self.ring(&mut state);
        self.progress.notify_all();
        drop(self.complete(state, done));
    }
}

/// The chunk size of Python's `map`: the items spread over four chunks
/// per worker, rounded up.
fn default_chunksize(items: usize, processes: usize) -> usize {
    items.div_ceil(4 * processes).max(1)
}

impl Pool {
    /// A pool of `processes` workers, with the defaults of [`PoolBuilder`]
    /// ([`StartMethod::ForkServer`]).
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// fn double(n: i64) -> i64 {
    ///     2 * n
    /// }
    ///
    /// let pool = mproc_pool::Pool::new(2)?;
    /// assert_eq!(pool.apply(double, 21)?, 42);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        PoolBuilder::new().processes(processes).build()
    }

    /// A builder for a pool with an initializer, recycled workers or
    /// another start method.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.shared.lock().processes
    }

    /// The pids of the workers running now (replaced workers get new
    /// ones).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(3)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// assert_eq!(pool.pids().len(), 3);
    /// pool.terminate();
    /// assert!(pool.pids().is_empty());
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        let state = self.shared.lock();
        state.workers.iter().map(|w| w.process.pid()).collect()
    }

    /// Runs `f(args)` in a worker and returns its result (Python's
    /// `apply`): blocks until it is done.
    ///
    /// # Errors
    /// How the task failed ([`PoolError`]), or [`PoolError::NotRunning`]
    /// after [`close`](Pool::close) or [`terminate`](Pool::terminate).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(1)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// assert_eq!(pool.apply(|s: String| s.len(), "four".to_owned())?, 4);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Starts `f(args)` in a worker and returns a handle to its result at
    /// once (Python's `apply_async`).
    ///
    /// # Errors
    /// [`PoolError::NotRunning`] after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate), [`PoolError::Codec`] if `args`
    /// does not serialize.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fn slow_double(n: u32) -> u32 {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     2 * n
    /// }
    ///
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// let result = pool.apply_async(slow_double, 21)?;
    /// result.wait();
    /// assert!(result.ready());
    /// assert_eq!(result.successful(), Some(true));
    /// assert_eq!(result.get()?, 42);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> Result<AsyncResult<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_with(f, args, Callbacks::new())
    }

    /// [`apply_async`](Pool::apply_async) with callbacks, run with the
    /// result (or the error) before it counts as ready; see the [pool
    /// docs](Pool#how-work-moves) for which thread runs them.
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use mproc_pool::{Callbacks, Pool, StartMethod};
    ///
    /// fn cube(n: i32) -> i32 {
    ///     n * n * n
    /// }
    ///
    /// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// for n in 1..=3 {
    ///     let seen = seen.clone();
    ///     let callbacks = Callbacks::new().on_success(move |r: &i32| seen.lock().unwrap().push(*r));
    ///     pool.apply_async_with(cube, n, callbacks)?;
    /// }
    /// pool.close();
    /// pool.join()?;
    /// let mut seen = seen.lock().unwrap().clone();
    /// seen.sort();
    /// assert_eq!(seen, [1, 8, 27]);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut frame = TaskFrame::new(wire::run_fn::<A, R>, f as usize, 16);
        frame.push(&args).map_err(PoolError::encode)?;
        let (frame, count) = frame.finish();
        let cell = Arc::new(ResultCell::new());
        let sink = ApplySink::new(cell.clone(), callbacks);
        self.shared
            .submit(vec![(frame, 0, count)], Box::new(sink))?;
        Ok(AsyncResult::new(self.shared.clone(), cell))
    }

    /// Runs `f` on every item in the workers and returns the results in
    /// order (Python's `map`), in chunks of Python's default size (the
    /// items spread over four chunks per worker; [`Pool::chunksize`]
    /// chooses another). An input that knows its length (its
    /// `size_hint` is exact, as for a range or a `Vec`) is encoded chunk
    /// by chunk as it is read, the first chunks running while the others
    /// are encoded; any other input is collected first (Python makes a
    /// list of it). Results are decoded straight into the vector
    /// returned.
    ///
    /// # Errors
    /// The first failed item's error (by position), or as
    /// [`apply_async`](Pool::apply_async); [`PoolError::Invalid`] if the
    /// input yields another number of items than its exact `size_hint`
    /// said.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// let words = ["apple", "fig", "kiwi"].map(String::from);
    /// assert_eq!(pool.map(|w: String| w.len(), words)?, [5, 3, 4]);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`map`](Pool::map) without waiting: a handle to the whole result
    /// (Python's `map_async`).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// let squares = pool.map_async(|n: u32| n * n, 0..100)?;
    /// assert_eq!(squares.get()?.iter().sum::<u32>(), 328_350);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_job(
            wire::run_fn::<A, R>,
            f as usize,
            items,
            None,
            Callbacks::new(),
        )
    }

    /// [`map_async`](Pool::map_async) with callbacks (see
    /// [`apply_async_with`](Pool::apply_async_with)).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use mproc_pool::{Callbacks, Pool, StartMethod};
    ///
    /// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let callbacks = Callbacks::new().on_success(move |all: &Vec<u8>| tx.send(all.len()).unwrap());
    /// let result = pool.map_async_with(|n: u8| n / 2, 0..10, callbacks)?;
    /// result.wait();
    /// assert_eq!(rx.recv().unwrap(), 10);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_job(wire::run_fn::<A, R>, f as usize, items, None, callbacks)
    }

    /// Runs `f` on the elements of every tuple of `items` (Python's
    /// `starmap`, which calls `f(*args)`), in order, chunked as
    /// [`map`](Pool::map). `f` is a fn item or a closure that captures
    /// nothing, of 1 to 6 arguments ([`StarTask`]).
    ///
    /// # Errors
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// assert_eq!(pool.starmap(power, [(2, 10), (3, 3)])?, [1024, 27]);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn starmap<F, Args>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: StarTask<Args>,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, items)?.get()
    }

    /// [`starmap`](Pool::starmap) without waiting (Python's
    /// `starmap_async`).
    ///
    /// # Errors
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// let result = pool.starmap_async(|a: u8, b: u8| a.max(b), [(1, 2), (4, 3)])?;
    /// assert_eq!(result.get()?, [2, 4]);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn starmap_async<F, Args>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<F::Output>>, PoolError>
    where
        F: StarTask<Args>,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        let _ = f;
        self.map_job(wire::run_star::<F, Args>, 0, items, None, Callbacks::new())
    }

    /// Runs `f` on every item, lazily, and yields the results in order
    /// (Python's `imap`): the input is pulled only as results are taken,
    /// with at most `2 × processes × chunksize` items in flight, so it
    /// may be endless. Chunks of one item ([`Pool::chunksize`] chooses
    /// another size). Each item is a `Result`: a failed item does not end
    /// the iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// // An endless input: only what is taken is computed (and a little more).
    /// let first: Vec<u64> = pool
    ///     .imap(|n: u64| n * n, 1..)
    ///     .take(4)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(first, [1, 4, 9, 16]);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn imap<I, R>(&self, f: fn(I::Item) -> R, items: I) -> IMap<'_, I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_job(f, items, 1, true)
    }

    /// As [`imap`](Pool::imap), but yields each result as soon as it is
    /// done, in whatever order (Python's `imap_unordered`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// let mut all: Vec<u32> = pool
    ///     .imap_unordered(|n: u32| n + 1, 0..10)
    ///     .collect::<Result<_, _>>()?;
    /// all.sort();
    /// assert_eq!(all, (1..=10).collect::<Vec<_>>());
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn imap_unordered<I, R>(&self, f: fn(I::Item) -> R, items: I) -> IMap<'_, I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_job(f, items, 1, false)
    }

    /// The map verbs with chunks of `chunksize` items (0 counts as 1):
    /// Python's `chunksize=` argument.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = mproc_pool::Pool::builder()
    ///     .processes(2)
    ///     .start_method(mproc_pool::StartMethod::Fork)
    ///     .build()?;
    /// assert_eq!(pool.chunksize(1).map(|n: u8| n + 1, [1, 2, 3])?, [2, 3, 4]);
    /// let lazy = pool.chunksize(16).imap(|n: u32| n % 7, 0..100);
    /// assert_eq!(lazy.map(Result::unwrap).sum::<u32>(), 295);
    /// # Ok::<(), mproc_pool::PoolError>(())
    /// ```
    pub fn chunksize(&self, chunksize: usize) -> Chunked<'_> {
        Chunked {
            pool: self,
            chunksize: chunksize.max(1),
        }
    }

    /// Takes no more tasks (Python's `close`): the workers finish what was
    /// submitted, then [`join`](Pool::join) ends them.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_pool::{Pool, PoolError, StartMethod};
    ///
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
    /// let pending = pool.apply_async(|n: u8| n + 1, 1)?;
    /// pool.close();
    /// assert_eq!(pool.apply(|n: u8| n + 1, 2), Err(PoolError::NotRunning));
    /// pool.join()?;
    /// assert_eq!(pending.get()?, 2);
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn close(&self) {
        let mut state = self.shared.lock();
        if state.status == Status::Running {
            state.status = Status::Closed;
        }
    }

    /// Waits for every submitted task to be done, then for the workers to
    /// exit (Python's `join`). After [`terminate`](Pool::terminate) it
    /// returns at once.
    ///
    /// # Errors
    /// [`PoolError::StillRunning`] unless [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate) was called first.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_pool::{Pool, PoolError, StartMethod};
    ///
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
    /// assert_eq!(pool.join(), Err(PoolError::StillRunning));
    /// pool.close();
    /// pool.join()?;
    /// assert!(pool.pids().is_empty());
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn join(&self) -> Result<(), PoolError> {
        match self.shared.lock().status {
            Status::Running => return Err(PoolError::StillRunning),
            Status::Terminated | Status::Joined => return Ok(()),
            Status::Closed => {}
        }
        self.shared.drive(None, |state| {
            state.status != Status::Closed
                || (state.jobs.is_empty() && state.queue.is_empty() && state.completing == 0)
        });
        let mut state = self.shared.lock();
        if state.status == Status::Closed {
            state.status = Status::Joined;
            state.stop_all();
        }
        Ok(())
    }

    /// Stops the workers now (`SIGTERM`, then `SIGKILL` after a second)
    /// and reaps them; every task not done fails with
    /// [`PoolError::Terminated`] (Python's `terminate`). Dropping the pool
    /// does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use mproc_pool::{Pool, PoolError, StartMethod};
    ///
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
    /// let forever = pool.apply_async(|s: u64| std::thread::sleep(Duration::from_secs(s)), 3600)?;
    /// pool.terminate();
    /// assert_eq!(forever.get(), Err(PoolError::Terminated));
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn terminate(&self) {
        self.shared.terminate();
    }

    fn map_job<A, R>(
        &self,
        runner: Runner,
        func: usize,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter();
        // An input that says its length is encoded as it is read; any
        // other is collected first (as Python's `map` makes a list).
        match items.size_hint() {
            (low, Some(high)) if low == high => {
                self.map_items(runner, func, items, low, chunksize, callbacks)
            }
            _ => {
                let items: Vec<A> = items.collect();
                let len = items.len();
                self.map_items(runner, func, items.into_iter(), len, chunksize, callbacks)
            }
        }
    }

    /// [`map_job`](Pool::map_job) of an input that says it holds `len`
    /// items: chunks are encoded from it one by one and handed to the
    /// workers as they are made, so the first chunks run while the others
    /// are encoded. An input that holds another number of items than it
    /// said fails the job with [`PoolError::Invalid`].
    fn map_items<A, R>(
        &self,
        runner: Runner,
        func: usize,
        mut items: impl Iterator<Item = A>,
        len: usize,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let chunksize = chunksize.unwrap_or_else(|| default_chunksize(len, self.processes()));
        let cell = Arc::new(ResultCell::new());
        let mut sink = MapSink::new(cell.clone(), callbacks, len, chunksize)?;
        let miscounted = |more: bool| PoolError::Invalid {
            reason: format!(
                "the items' iterator yielded {} items than its size_hint said ({len})",
                if more { "more" } else { "fewer" }
            ),
        };
        let mut encode = |start: usize| -> Result<_, PoolError> {
            let count = chunksize.min(len - start);
            // Room for the items as they are in memory, a good guess for
            // plain data (the frame grows as needed).
            let guess = count.saturating_mul(size_of::<A>()).min(FRAME_GUESS);
            let mut frame = TaskFrame::new(runner, func, guess);
            for _ in 0..count {
                let item = items.next().ok_or_else(|| miscounted(false))?;
                frame.push(&item).map_err(PoolError::encode)?;
            }
            if start + count == len && items.next().is_some() {
                return Err(miscounted(true));
            }
            let (frame, count) = frame.finish();
            Ok((frame, start, count))
        };
        if len == 0 {
            self.shared.lock().check_running()?;
            if items.next().is_some() {
                return Err(miscounted(true));
            }
            if let Some(completion) = sink.empty() {
                completion();
            }
            return Ok(AsyncResult::new(self.shared.clone(), cell));
        }
        let job = self.shared.submit(vec![encode(0)?], Box::new(sink))?;
        for start in (chunksize..len).step_by(chunksize) {
            match encode(start) {
                Ok(chunk) => {
                    if !self.shared.extend(job, chunk) {
                        break;
                    }
                }
                Err(error) => {
                    self.shared.abandon(job, error);
                    break;
                }
            }
        }
        Ok(AsyncResult::new(self.shared.clone(), cell))
    }

    fn imap_job<I, R>(
        &self,
        f: fn(I::Item) -> R,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> IMap<'_, I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let window = 2 * self.processes() * chunksize;
        IMap::new(
            self,
            wire::run_fn::<I::Item, R>,
            f as usize,
            items.into_iter(),
            chunksize,
            window,
            ImapBuffer::new(ordered),
        )
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.terminate();
    }
}

/// The map verbs of a [`Pool`] with a chosen chunk size (Python's
/// `chunksize=`): made by [`Pool::chunksize`].
///
/// # Examples
///
/// ```
/// let pool = mproc_pool::Pool::builder()
///     .processes(2)
///     .start_method(mproc_pool::StartMethod::Fork)
///     .build()?;
/// let by_tens = pool.chunksize(10);
/// assert_eq!(by_tens.map(|n: u32| n * 2, 0..25)?.len(), 25);
/// assert_eq!(by_tens.starmap(|a: u32, b: u32| a * b, [(2, 3)])?, [6]);
/// # Ok::<(), mproc_pool::PoolError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Chunked<'p> {
    pool: &'p Pool,
    chunksize: usize,
}

impl<'p> Chunked<'p> {
    /// [`Pool::map`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`Pool::map_async`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map_async`].
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_with(f, items, Callbacks::new())
    }

    /// [`Pool::map_async_with`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map_async`].
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let runner = wire::run_fn::<A, R>;
        self.pool
            .map_job(runner, f as usize, items, Some(self.chunksize), callbacks)
    }

    /// [`Pool::starmap`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map`].
    pub fn starmap<F, Args>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: StarTask<Args>,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, items)?.get()
    }

    /// [`Pool::starmap_async`] in chunks of this size.
    ///
    /// # Errors
    /// As [`Pool::map_async`].
    pub fn starmap_async<F, Args>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<F::Output>>, PoolError>
    where
        F: StarTask<Args>,
        Args: Serialize + DeserializeOwned,
        F::Output: Serialize + DeserializeOwned + Send + 'static,
    {
        let _ = f;
        let runner = wire::run_star::<F, Args>;
        self.pool
            .map_job(runner, 0, items, Some(self.chunksize), Callbacks::new())
    }

    /// [`Pool::imap`] in chunks of this size.
    pub fn imap<I, R>(&self, f: fn(I::Item) -> R, items: I) -> IMap<'p, I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.imap_job(f, items, self.chunksize, true)
    }

    /// [`Pool::imap_unordered`] in chunks of this size.
    pub fn imap_unordered<I, R>(&self, f: fn(I::Item) -> R, items: I) -> IMap<'p, I::IntoIter, R>
    where
        I: IntoIterator,
        I::Item: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.imap_job(f, items, self.chunksize, false)
    }
}

#[cfg(test)]
mod tests {
    use super::default_chunksize;

    #[test]
    fn chunksize_is_pythons() {
        // Python: divmod(len, 4 * processes), rounded up.
        assert_eq!(default_chunksize(1_000_000, 2), 125_000);
        assert_eq!(default_chunksize(10, 5), 1);
        assert_eq!(default_chunksize(41, 5), 3);
        assert_eq!(default_chunksize(0, 4), 1);
    }
}
