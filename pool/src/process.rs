//! [`Process`]: code running in a child process, and the way to its result.

use core::fmt;
use core::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use compact_str::CompactString;
use mproc_os::futex::Deadline;
use mproc_os::pipe::{PIPE_ATOMIC, PipeReader, PipeWriter, ReadBuffer, SpillFile, pipe};
use mproc_os::process::{Child, ExitStatus, Fork, Signal, current_pid, exit_now, fork};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::current::{self, ChildSetup, Entry, EntryRef};

/// Exit code of a child whose closure returned.
pub(crate) const EXIT_RETURNED: i32 = 0;
/// Exit code of a child whose closure panicked (Rust's usual 101).
pub(crate) const EXIT_PANICKED: i32 = 101;
/// Exit code of a child that could not send its result.
pub(crate) const EXIT_UNSENT: i32 = 102;
/// Exit code of a daemon child whose parent was gone before it started.
pub(crate) const EXIT_ORPHANED: i32 = 103;
/// Exit code of a child that could not start its entry point.
pub(crate) const EXIT_START_FAILED: i32 = 104;

/// What a child sends back: one postcard frame.
#[derive(Serialize, Deserialize)]
pub(crate) enum Outcome<T> {
    /// The closure returned this.
    Returned(T),
    /// The closure panicked with this message.
    Panicked(String),
    /// The entry point could not be started (say, its arguments did not
    /// decode).
    Failed(String),
}

/// How a process could not be started, or failed to deliver its result.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The child exited with `code` without returning a value (it called
    /// `std::process::exit`, or could not send its result).
    Exited {
        /// The child's pid.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// The child was killed by `signal` (Python's negative exit code).
    Signaled {
        /// The child's pid.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// The closure panicked.
    Panicked {
        /// The child's pid.
        pid: u32,
        /// The panic message.
        message: String,
    },
    /// The child started but could not run its entry point.
    StartFailed {
        /// The child's pid.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// `join_timeout`: the child was still running when the timeout passed.
    Timeout,
    /// The result was already taken by an earlier `join`.
    AlreadyJoined,
    /// The child exited normally but what it sent does not decode as the
    /// expected type.
    BadResult {
        /// The child's pid.
        pid: u32,
        /// Why it does not decode.
        reason: String,
    },
    /// [`StartMethod::Fork`] was asked of a process that runs several
    /// threads: the child would start with every lock that another thread
    /// held at that moment locked forever. Use [`StartMethod::ForkServer`]
    /// or [`StartMethod::Spawn`], or opt in with
    /// [`Builder::allow_threaded_fork`].
    ThreadedFork {
        /// The number of threads the process had.
        threads: u64,
    },
    /// A closure can only be started with [`StartMethod::Fork`]; the other
    /// start methods run a `fn` with serialized arguments
    /// ([`Builder::spawn_fn`]).
    NeedsFn {
        /// The start method that was asked for.
        method: StartMethod,
    },
    /// The start method could not start the child.
    Start {
        /// What went wrong.
        reason: String,
    },
    /// The handle was inherited through a `fork`: process `pid` is a child
    /// of the parent, which alone can wait for it or signal it through
    /// this handle.
    NotChild {
        /// The child's pid.
        pid: u32,
    },
    /// Creating or waiting for the child failed.
    Os(mproc_os::Error),
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { pid, code } => {
                write!(f, "process {pid} exited with code {code} without a result")
            }
            Self::Signaled { pid, signal } => {
                let status = ExitStatus::Signaled {
                    signal: *signal,
                    core_dumped: false,
                };
                write!(f, "process {pid} was {status}")
            }
            Self::Panicked { pid, message } => write!(f, "process {pid} panicked: {message}"),
            Self::StartFailed { pid, reason } => {
                write!(f, "process {pid} could not start: {reason}")
            }
            Self::Timeout => f.write_str("the process is still running"),
            Self::AlreadyJoined => f.write_str("the process was already joined"),
            Self::BadResult { pid, reason } => {
                write!(f, "the result of process {pid} does not decode: {reason}")
            }
            Self::ThreadedFork { threads } => write!(
                f,
                "refusing to fork a process that runs {threads} threads (the child could \
                 deadlock on a lock another thread holds): use StartMethod::ForkServer or \
                 StartMethod::Spawn, or opt in with Builder::allow_threaded_fork"
            ),
            Self::NeedsFn { method } => write!(
                f,
                "start method {method:?} cannot run a closure: use Builder::spawn_fn with a \
                 fn and serializable arguments, or StartMethod::Fork"
            ),
            Self::Start { reason } => write!(f, "cannot start the process: {reason}"),
            Self::NotChild { pid } => write!(
                f,
                "process {pid} is not a child of this process (its handle was inherited \
                 through a fork)"
            ),
            Self::Os(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os(error) => Some(error),
            _ => None,
        }
    }
}

impl From<mproc_os::Error> for ProcessError {
    fn from(error: mproc_os::Error) -> Self {
        Self::Os(error)
    }
}

/// How a child process is started (Python's start methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork` the caller: the fastest, and the child starts with a copy of
    /// everything the parent had, so it can run any closure. Refused when
    /// the caller runs several threads unless
    /// [`Builder::allow_threaded_fork`] opts in.
    #[default]
    Fork,
    /// Ask a single-threaded server process to fork the child: safe from a
    /// multi-threaded parent. The child runs a `fn` with serialized
    /// arguments ([`Builder::spawn_fn`]).
    ForkServer,
    /// Run the program again (`/proc/self/exe`): the child starts fresh,
    /// `mproc::init()` at the top of `main` hands it its `fn` and
    /// arguments ([`Builder::spawn_fn`]).
    Spawn,
}

impl StartMethod {
    fn to_u8(self) -> u8 {
        match self {
            Self::Fork => 0,
            Self::ForkServer => 1,
            Self::Spawn => 2,
        }
    }

    fn from_u8(raw: u8) -> Self {
        match raw {
            1 => Self::ForkServer,
            2 => Self::Spawn,
            _ => Self::Fork,
        }
    }
}

static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(0);

/// Sets the start method of builders that do not choose one (Python's
/// `set_start_method`).
pub fn set_start_method(method: StartMethod) {
    DEFAULT_METHOD.store(method.to_u8(), Ordering::Relaxed);
}

/// The start method of builders that do not choose one
/// ([`StartMethod::Fork`] unless [`set_start_method`] changed it).
pub fn start_method() -> StartMethod {
    StartMethod::from_u8(DEFAULT_METHOD.load(Ordering::Relaxed))
}

/// Options for a new [`Process`]: name, daemon flag, start method.
///
/// # Examples
///
/// ```
/// use mproc_pool::{Process, StartMethod};
///
/// let mut child = Process::builder()
///     .name("worker")
///     .start_method(StartMethod::Fork)
///     .spawn(|| mproc_pool::current_process().name().to_owned())?;
/// assert_eq!(child.name(), "worker");
/// assert_eq!(child.join()?, "worker");
/// # Ok::<(), mproc_pool::ProcessError>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
    allow_threaded_fork: bool,
}

impl Builder {
    /// A builder with the defaults: named `Process-N`, not a daemon, the
    /// default start method ([`start_method`]).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the child (default `Process-N`, numbered in start order; a
    /// child's children are `Process-N:M`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Makes the child a daemon: when this process exits normally, the
    /// child is terminated (`SIGTERM`, then `SIGKILL` after a second)
    /// instead of waited for, and the kernel kills it (`SIGKILL`) if this
    /// process dies any other way, `SIGKILL` included.
    ///
    /// The kernel ties that signal to the *thread* that started the child:
    /// start daemons from a thread that lives as long as the process (or
    /// use [`StartMethod::ForkServer`], whose server is such a thread).
    pub fn daemon(mut self, daemon: bool) -> Builder {
        self.daemon = daemon;
        self
    }

    /// Chooses how the child is started.
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// Lets [`StartMethod::Fork`] fork a process that runs several threads.
    ///
    /// The child is a copy of the calling thread only: a lock another
    /// thread held at that moment (inside `malloc`, stdout, a `Mutex`)
    /// stays locked in the child forever. Opt in only when no other thread
    /// can hold such a lock (say, in a test harness whose other threads
    /// only wait), or keep the child to async-signal-safe calls.
    pub fn allow_threaded_fork(mut self, allow: bool) -> Builder {
        self.allow_threaded_fork = allow;
        self
    }

    fn method(&self) -> StartMethod {
        self.method.unwrap_or_else(start_method)
    }

    /// Starts a child that runs `f` and sends back what it returns.
    ///
    /// Only [`StartMethod::Fork`] can run a closure (it copies the parent's
    /// memory, captures included); any other start method returns
    /// [`ProcessError::NeedsFn`].
    ///
    /// In the child, a panic in `f` is caught and reported to `join` with
    /// its message; whatever happens, the child ends with `_exit`, so the
    /// parent's exit handlers and destructors never run twice.
    pub fn spawn<T, F>(self, f: F) -> Result<Process<T>, ProcessError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.method() {
            StartMethod::Fork => self.fork(f),
            method => Err(ProcessError::NeedsFn { method }),
        }
    }

    /// Starts a child that runs `f(args)`, with any start method, and sends
    /// back what it returns.
    ///
    /// `f` is a `fn` item (a closure that captures nothing coerces to one);
    /// `args` travel to the child serialized (postcard), so the child of a
    /// [`StartMethod::Spawn`] or [`StartMethod::ForkServer`] start, which
    /// shares no memory with the caller, gets them too.
    ///
    /// To hand the child a lock, queue, pipe end or any other shared
    /// object, put its [`Token`](mproc_os::share::Token) in `args`
    /// ([`Share::token`](mproc_os::share::Share::token)); the child
    /// attaches it ([`Token::attach`](mproc_os::share::Token::attach)). The
    /// descriptors behind the tokens travel beside the serialized `args`
    /// (`SCM_RIGHTS`, at most 252 per child); with [`StartMethod::Fork`]
    /// the child simply inherits them. `args` is consumed: this process
    /// keeps no copy of the tokens' descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_pool::Process;
    ///
    /// fn double(n: u64) -> u64 {
    ///     2 * n
    /// }
    ///
    /// let mut child = Process::builder().spawn_fn(double, 21)?;
    /// assert_eq!(child.join()?, 42);
    /// # Ok::<(), mproc_pool::ProcessError>(())
    /// ```
    ///
    /// With a shared object (any start method; [`StartMethod::Spawn`]
    /// also needs `mproc::init()` first in `main`):
    ///
    /// ```
    /// use mproc_os::Queue;
    /// use mproc_os::share::{Share, Token};
    /// use mproc_pool::{Process, StartMethod};
    ///
    /// fn produce((queue, n): (Token<Queue<u64>>, u64)) {
    ///     let queue = queue.attach().unwrap();
    ///     (1..=n).for_each(|i| queue.put(i).unwrap());
    /// }
    ///
    /// let queue = Queue::<u64>::new(16)?;
    /// let mut child = Process::builder()
    ///     .start_method(StartMethod::Fork)
    ///     .spawn_fn(produce, (queue.token()?, 3))?;
    /// child.join()?;
    /// assert_eq!([queue.get()?, queue.get()?, queue.get()?], [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_fn<A, T>(self, f: fn(A) -> T, args: A) -> Result<Process<T>, ProcessError>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        T: Serialize + DeserializeOwned,
    {
        match self.method() {
            StartMethod::Fork => self.fork(move || f(args)),
            method => {
                let (request, fds) = crate::entry::Request::new(f, &args)?;
                // The child gets its own descriptors: ours go with `args`.
                drop(args);
                let setup = current::next_child(self.name, self.daemon);
                let (name, daemon) = (setup.name.clone(), setup.daemon);
                let (child, output) = match method {
                    StartMethod::Spawn => crate::spawn::start(setup, request, fds)?,
                    _ => crate::forkserver::start(setup, request, fds)?,
                };
                Ok(Process::started(child, output, name, daemon, method))
            }
        }
    }

    /// Starts a child that runs `target` (the counterpart of subclassing
    /// Python's `Process` and overriding `run`); any start method that can
    /// run a closure, so [`StartMethod::Fork`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_pool::{Process, Run};
    ///
    /// struct Countdown(u32);
    ///
    /// impl Run for Countdown {
    ///     type Output = u32;
    ///     fn run(self) -> u32 {
    ///         (1..=self.0).rev().count() as u32
    ///     }
    /// }
    ///
    /// let mut child = Process::builder().start(Countdown(3))?;
    /// assert_eq!(child.join()?, 3);
    /// # Ok::<(), mproc_pool::ProcessError>(())
    /// ```
    pub fn start<R: Run>(self, target: R) -> Result<Process<R::Output>, ProcessError> {
        self.spawn(move || target.run())
    }

    fn fork<T, F>(self, f: F) -> Result<Process<T>, ProcessError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let single = if self.allow_threaded_fork {
            matches!(mproc_os::process::thread_count(), Ok(1))
        } else {
            let threads = mproc_os::process::thread_count()?;
            if threads > 1 {
                return Err(ProcessError::ThreadedFork { threads });
            }
            true
        };
        let setup = current::next_child(self.name, self.daemon);
        let parent = current_pid();
        let (reader, writer, spill) = match current::take_spare_output() {
            Some(output) => output,
            None => {
                let (reader, writer) = pipe()?;
                (reader, writer, SpillFile::new()?)
            }
        };
        // No other thread may hold the fork server's lock at the fork: the
        // child would inherit it locked forever. With one thread there is
        // no other thread, and nothing to lock: locking and unlocking would
        // only write pages that the fork then makes both processes copy.
        // (The process record needs no such care: a child opens its own.)
        let server = (!single).then(crate::forkserver::hold);
        // SAFETY: the child only runs `f` (the caller's code, which may use
        // anything it captured) through `child_main`, which ends it with
        // `_exit`; it never returns into the caller's stack frames. Either
        // this process has one thread, or the caller opted in and takes on
        // the restrictions `fork` documents.
        let forked = unsafe { fork() };
        match forked {
            Ok(Fork::Child) => {
                // The read end stays open, unused: closing it would cost a
                // system call, and the child's result never waits for a
                // reader (see `finish`).
                std::mem::forget(reader);
                crate::forkserver::release_in_child(server);
                child_main(setup, parent, Output::forked(writer, spill), f)
            }
            Err(error) => Err(error.into()),
            Ok(Fork::Parent(child)) => {
                drop(server);
                let mut process = Process::started(
                    ChildKind::Direct(child),
                    reader,
                    setup.name,
                    setup.daemon,
                    StartMethod::Fork,
                );
                // Completion is decided by the child's exit, never by end of
                // file, so the parent may keep the write end: once the
                // child is joined the pipe is empty and serves the next one.
                process.spare = Some((writer, spill));
                Ok(process)
            }
        }
    }
}

/// Where a child sends its outcome: the write end of its output pipe (or
/// stream socket), and for a forked child a [`SpillFile`] for an outcome
/// longer than one atomic pipe write.
pub(crate) struct Output {
    pipe: PipeWriter,
    spill: Option<SpillFile>,
}

impl Output {
    /// The output of a child started through the fork server or by
    /// `Spawn`, whose parent drains the pipe while it waits.
    pub(crate) fn streamed(pipe: PipeWriter) -> Output {
        Output { pipe, spill: None }
    }

    /// The output of a forked child, whose parent reads it only after the
    /// exit: nothing sent ever waits for a reader.
    fn forked(pipe: PipeWriter, spill: SpillFile) -> Output {
        Output {
            pipe,
            spill: Some(spill),
        }
    }
}

/// The first byte of an outcome message: the encoded outcome follows.
const INLINE: u8 = 0;
/// The first byte of an outcome message: the encoded outcome is in the
/// child's [`SpillFile`], and its length (`u64`, little-endian) follows.
const SPILLED: u8 = 1;

/// What a child process runs, as a type: the Rust counterpart of
/// subclassing Python's `Process` and overriding `run`. Start one with
/// [`Builder::start`].
pub trait Run: Send + 'static {
    /// What `run` returns to the parent's `join`.
    type Output: Serialize + DeserializeOwned;

    /// The body of the child process.
    fn run(self) -> Self::Output;
}

/// Runs `f` as the body of a child described by `setup` and ends the
/// process: the one way every start method runs a child.
///
/// Logs Python's lifecycle records (`child process calling self.run()`,
/// `process shutting down`, `process exiting with exitcode N`), catches a
/// panic, runs the exit function (terminates daemon children, waits for the
/// others), sends the outcome to `output` and `_exit`s.
pub(crate) fn child_main<T, F>(setup: ChildSetup, os_parent: u32, output: Output, f: F) -> !
where
    T: Serialize,
    F: FnOnce() -> T,
{
    current::enter_child(setup, os_parent);
    log::info!("child process calling self.run()");
    let outcome = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Outcome::Returned(value),
        Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
    };
    let code = match outcome {
        Outcome::Returned(_) => EXIT_RETURNED,
        _ => EXIT_PANICKED,
    };
    finish(outcome, code, output)
}

/// Ends a child that could not start its entry point.
pub(crate) fn child_failed(setup: ChildSetup, os_parent: u32, output: Output, reason: String) -> ! {
    current::enter_child(setup, os_parent);
    log::error!("child process could not start: {reason}");
    finish(Outcome::<()>::Failed(reason), EXIT_START_FAILED, output)
}

fn finish<T: Serialize>(outcome: Outcome<T>, code: i32, output: Output) -> ! {
    // Children may hold pipes or locks the parent waits on: end them first,
    // as Python does before it reports the exit code.
    current::exit_function();
    // A small outcome is encoded on the stack: no allocation, so no heap
    // page the child still shares with its parent gets copied.
    let mut small = [0u8; 256];
    small[0] = INLINE;
    let sent = match postcard::to_slice(&outcome, &mut small[1..]) {
        Ok(frame) => {
            let len = 1 + frame.len();
            send(&output, &small[..len])
        }
        Err(_) => match postcard::to_allocvec(&outcome) {
            Ok(frame) => match &output.spill {
                // Too long for one atomic write: into the spill file, and
                // only its length through the pipe.
                Some(spill) if 1 + frame.len() > PIPE_ATOMIC => {
                    let mut message = [SPILLED; 9];
                    message[1..].copy_from_slice(&(frame.len() as u64).to_le_bytes());
                    spill.write(&frame).is_ok() && send(&output, &message)
                }
                _ => {
                    let mut message = Vec::with_capacity(1 + frame.len());
                    message.push(INLINE);
                    message.extend_from_slice(&frame);
                    send(&output, &message)
                }
            },
            Err(_) => false,
        },
    };
    let code = if sent { code } else { EXIT_UNSENT };
    log::info!("process exiting with exitcode {code}");
    exit_now(code)
}

/// Writes an outcome message. A forked child's is at most one atomic
/// write into its empty pipe, so it never waits; another child's parent
/// drains the pipe while it waits. Nobody listening (the handle was
/// dropped) is not a failure.
fn send(output: &Output, message: &[u8]) -> bool {
    match output.pipe.write_all(message) {
        Ok(()) => true,
        Err(error) => error.errno() == Some(mproc_os::Errno::PIPE),
    }
}

/// A child as its parent holds it: forked directly, or started through the
/// fork server (which reaps it and relays how it ended).
pub(crate) enum ChildKind {
    /// A child of this process, held through a pidfd.
    Direct(Child),
    /// A child of the fork server.
    Relayed(crate::forkserver::Relayed),
}

impl ChildKind {
    pub(crate) fn try_wait(&mut self) -> mproc_os::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.try_wait(),
            Self::Relayed(child) => child.try_wait(),
        }
    }

    pub(crate) fn wait(&mut self) -> mproc_os::Result<ExitStatus> {
        match self {
            Self::Direct(child) => child.wait(),
            Self::Relayed(child) => child.wait(),
        }
    }

    pub(crate) fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> mproc_os::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.wait_timeout(timeout),
            Self::Relayed(child) => child.wait_timeout(timeout),
        }
    }

    fn wait_collecting<B: ReadBuffer + ?Sized>(
        &mut self,
        output: &PipeReader,
        received: &mut B,
        deadline: Option<Deadline>,
    ) -> mproc_os::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.wait_collecting(output, received, deadline),
            Self::Relayed(child) => child.wait_collecting(output, received, deadline),
        }
    }

    pub(crate) fn signal(&self, signal: Signal) -> mproc_os::Result<()> {
        match self {
            Self::Direct(child) => child.signal(signal),
            Self::Relayed(child) => child.signal(signal),
        }
    }

    pub(crate) fn terminate(&self) -> mproc_os::Result<()> {
        self.signal(Signal::TERM)
    }

    pub(crate) fn kill(&self) -> mproc_os::Result<()> {
        self.signal(Signal::KILL)
    }
}

/// Code running in a child process, and the way to its result (Python's
/// `Process`).
///
/// [`Process::spawn`] forks a child that runs a closure; [`Process::builder`]
/// names it, makes it a daemon or picks another [`StartMethod`].
/// [`join`](Process::join) returns what the closure returned, or a
/// [`ProcessError`] saying how the child ended instead: its exit code, the
/// signal that killed it, or its panic message.
///
/// Dropping the handle does not stop the child (Python's behaviour): it
/// runs on, is reaped the next time this process starts a child or calls
/// [`active_children`](crate::active_children), and at this process's exit
/// is waited for (or, a daemon, terminated). So no zombie stays behind.
///
/// # Examples
///
/// ```
/// use mproc_pool::Process;
///
/// let mut child = Process::spawn(|| (1..=10u64).sum::<u64>())?;
/// assert_eq!(child.join()?, 55);
/// assert_eq!(child.exitcode(), Some(0));
/// # Ok::<(), mproc_pool::ProcessError>(())
/// ```
pub struct Process<T> {
    entry: EntryRef,
    pid: u32,
    name: CompactString,
    daemon: bool,
    /// The read end of the child's output pipe; `None` once joined.
    output: Option<PipeReader>,
    /// For a child forked directly, the parent's copy of the write end and
    /// the spill file, kept so that they serve the next child once this
    /// one is joined (see [`current::keep_spare_output`]). A child with
    /// them never waits for its output to be read.
    spare: Option<(PipeWriter, SpillFile)>,
    joined: bool,
    method: StartMethod,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

impl Process<()> {
    /// A builder for a child with a name, the daemon flag or another start
    /// method.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<T> Process<T> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child is a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the child is still running (reaps it if it has exited).
    pub fn is_alive(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How the child ended, Python style: `None` while it runs, its exit
    /// code, or minus the signal that killed it.
    pub fn exitcode(&mut self) -> Option<i32> {
        self.exit_status().map(|status| status.code())
    }

    /// The child's entry, or [`ProcessError::NotChild`] in a process that
    /// inherited this handle through a `fork`.
    fn entry(&self) -> Result<&Entry, ProcessError> {
        self.entry
            .get()
            .ok_or(ProcessError::NotChild { pid: self.pid })
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        let entry = self.entry().ok()?;
        let mut child = entry.child();
        let child = &mut *child;
        // Drain what the child wrote so far, so that it never blocks on a
        // full pipe while we only look.
        if let Some(output) = &self.output {
            let _ = output.read_available(&mut child.received);
        }
        child.kind.try_wait().ok().flatten()
    }

    /// Sends `SIGTERM` to the child (no-op once it has exited).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        Ok(self.entry()?.child().kind.terminate()?)
    }

    /// Sends `SIGKILL` to the child (no-op once it has exited).
    pub fn kill(&self) -> Result<(), ProcessError> {
        Ok(self.entry()?.child().kind.kill()?)
    }
}

impl<T: Serialize + DeserializeOwned> Process<T> {
    /// Forks a child that runs `f` and sends back what it returns, with the
    /// defaults of [`Builder`] (the start method must be
    /// [`StartMethod::Fork`], and this process single-threaded).
    pub fn spawn<F>(f: F) -> Result<Self, ProcessError>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        Builder::new().spawn(f)
    }

    pub(crate) fn started(
        child: ChildKind,
        output: PipeReader,
        name: CompactString,
        daemon: bool,
        method: StartMethod,
    ) -> Self {
        let pid = match &child {
            ChildKind::Direct(child) => child.pid(),
            ChildKind::Relayed(child) => child.pid(),
        };
        let entry = EntryRef::new(Entry::new(pid, name.clone(), daemon, child));
        current::register(&entry);
        Self {
            entry,
            pid,
            name,
            daemon,
            output: Some(output),
            spare: None,
            joined: false,
            method,
            _result: PhantomData,
        }
    }

    /// Waits for the child to end and returns the closure's value, or how
    /// the child failed.
    pub fn join(&mut self) -> Result<T, ProcessError> {
        self.join_until(None)
    }

    /// As [`join`](Process::join), but gives up with
    /// [`ProcessError::Timeout`] if the child is still running after
    /// `timeout` (it keeps running; join again later).
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, ProcessError> {
        match Deadline::after(timeout) {
            Some(deadline) => self.join_until(Some(deadline)),
            None => self.join_until(None),
        }
    }

    fn join_until(&mut self, deadline: Option<Deadline>) -> Result<T, ProcessError> {
        let (false, Some(output)) = (self.joined, &self.output) else {
            return Err(ProcessError::AlreadyJoined);
        };
        let pid = self.pid;
        let entry = self.entry.get().ok_or(ProcessError::NotChild { pid })?;
        let mut guard = entry.child();
        let child = &mut *guard;
        let status = match (&self.spare, deadline) {
            // A forked child never waits for its output to be read: wait for
            // the exit alone (a plain `waitid`, one wake-up), then read.
            (Some(_), None) => Some(child.kind.wait()?),
            (Some(_), Some(deadline)) => child.kind.wait_timeout(deadline.remaining())?,
            (None, _) => child
                .kind
                .wait_collecting(output, &mut child.received, deadline)?,
        };
        let Some(status) = status else {
            return Err(ProcessError::Timeout);
        };
        let spill = self.spare.as_ref().map(|(_, spill)| spill);
        if let Some(spill) = spill {
            output.read_available(&mut child.received)?;
            if let ExitStatus::Signaled { .. } = status {
                // Killed, perhaps while filling the spill file: empty it
                // for the next child.
                let _ = spill.clear();
            }
        }
        let result = decode(pid, self.method, status, child.received.as_slice(), spill);
        child.received.clear();
        drop(guard);
        self.joined = true;
        // The child has exited and everything it sent has been read.
        if let (Some(output), Some((writer, spill))) = (self.output.take(), self.spare.take()) {
            current::keep_spare_output(output, writer, spill);
        }
        current::unregister(pid);
        result
    }
}

/// What child `pid`, started with `method`, returned, or how it failed,
/// from its exit `status` and the message it sent (its outcome inline, or
/// the length of the outcome in `spill`).
fn decode<T: DeserializeOwned>(
    pid: u32,
    method: StartMethod,
    status: ExitStatus,
    mut message: &[u8],
    spill: Option<&SpillFile>,
) -> Result<T, ProcessError> {
    if let (StartMethod::Spawn, ExitStatus::Exited(code)) = (method, status) {
        // A spawned child first confirms it got its request; one that did
        // not ran the program's `main` instead of its entry point.
        if message.first() != Some(&crate::spawn::DISPATCHED_MARK) {
            return Err(ProcessError::StartFailed {
                pid,
                reason: format!(
                    "it exited with code {code} without running its entry point: does \
                     its main call mproc::init() first? (a test binary: \
                     mproc::enable_test_support!())"
                ),
            });
        }
    }
    if method == StartMethod::Spawn {
        message = message
            .strip_prefix(&[crate::spawn::DISPATCHED_MARK])
            .unwrap_or(message);
    }
    let code = match status {
        ExitStatus::Signaled { signal, .. } => return Err(ProcessError::Signaled { pid, signal }),
        ExitStatus::Exited(code) => code,
    };
    let spilled;
    let frame = match message.split_first() {
        None => return Err(ProcessError::Exited { pid, code }),
        Some((&INLINE, frame)) => frame,
        Some((&SPILLED, len)) => {
            let len = <[u8; 8]>::try_from(len).map(u64::from_le_bytes);
            let read = match (len, spill) {
                (Ok(len), Some(spill)) => usize::try_from(len)
                    .map_err(|_| "a spilled outcome too long for this process".to_owned())
                    .and_then(|len| spill.read(len).map_err(|error| error.to_string())),
                (Err(_), _) => Err("a cut spill length".to_owned()),
                (_, None) => Err("a spilled outcome without a spill file".to_owned()),
            };
            // The spill file serves the next child empty.
            if let Some(spill) = spill {
                let _ = spill.clear();
            }
            match read {
                Ok(bytes) => {
                    spilled = bytes;
                    &spilled[..]
                }
                Err(_) if code != EXIT_RETURNED => return Err(ProcessError::Exited { pid, code }),
                Err(reason) => return Err(ProcessError::BadResult { pid, reason }),
            }
        }
        Some((tag, _)) => {
            return if code != EXIT_RETURNED {
                Err(ProcessError::Exited { pid, code })
            } else {
                Err(ProcessError::BadResult {
                    pid,
                    reason: format!("an outcome message starting with {tag}"),
                })
            };
        }
    };
    match postcard::from_bytes::<Outcome<T>>(frame) {
        Ok(Outcome::Returned(value)) => Ok(value),
        Ok(Outcome::Panicked(message)) => Err(ProcessError::Panicked { pid, message }),
        Ok(Outcome::Failed(reason)) => Err(ProcessError::StartFailed { pid, reason }),
        // Cut short: the child failed while sending.
        Err(_) if code != EXIT_RETURNED => Err(ProcessError::Exited { pid, code }),
        Err(error) => Err(ProcessError::BadResult {
            pid,
            reason: error.to_string(),
        }),
    }
}

/// The message of a panic payload (`&str` or `String`, as `panic!` makes).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
