//! [`Process`]: a closure running in a child process.

use core::fmt;
use core::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use mproc_os::futex::Deadline;
use mproc_os::pipe::{PipeReader, pipe};
use mproc_os::process::{Child, ExitStatus, Fork, exit_now, fork};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Exit code of a child whose closure returned.
const EXIT_RETURNED: i32 = 0;
/// Exit code of a child whose closure panicked (Rust's usual 101).
const EXIT_PANICKED: i32 = 101;
/// Exit code of a child that could not send its result.
const EXIT_UNSENT: i32 = 102;

/// What a child sends back: one postcard frame.
#[derive(Serialize, Deserialize)]
enum Outcome<T> {
    Returned(T),
    Panicked(String),
}

/// How a child process failed to deliver its result.
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
            Self::Timeout => f.write_str("the process is still running"),
            Self::AlreadyJoined => f.write_str("the process was already joined"),
            Self::BadResult { pid, reason } => {
                write!(f, "the result of process {pid} does not decode: {reason}")
            }
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

/// A closure running in a child process, and the way to its result.
///
/// The child is created with `fork`, so it starts with a copy of the
/// parent's memory: the closure may use anything the parent had, including
/// mproc's shared queues, locks and values (made before the spawn), which
/// stay shared. The closure's captures move to the child: the parent drops
/// its copies when `spawn` returns.
///
/// A `Process` owns its child. Dropping the handle of a child that is still
/// running kills it (`SIGKILL`) and reaps it, so that no child outlives its
/// handle unnoticed and none stays a zombie; call [`join`](Process::join) to
/// wait for it instead.
///
/// # Examples
///
/// ```
/// use mproc_pool::Process;
///
/// let mut child = Process::spawn(|| (1..=10u64).sum::<u64>())?;
/// assert_eq!(child.join()?, 55);
/// # Ok::<(), mproc_pool::ProcessError>(())
/// ```
pub struct Process<T> {
    child: Child,
    output: PipeReader,
    received: Vec<u8>,
    joined: bool,
    _result: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.child.pid())
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned> Process<T> {
    /// Forks a child that runs `f` and sends back what it returns.
    ///
    /// In the child, a panic in `f` is caught and reported to `join` with its
    /// message; whatever happens, the child ends with `_exit`, so the
    /// parent's exit handlers and destructors never run twice.
    pub fn spawn<F>(f: F) -> Result<Self, ProcessError>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let (reader, writer) = pipe()?;
        // SAFETY: the child only runs `f` (the caller's code, which may use
        // anything it captured), encodes the result and writes it with
        // `write` system calls, then leaves with `_exit`; it never returns
        // into the caller's stack frames.
        match unsafe { fork()? } {
            Fork::Child => {
                drop(reader);
                let outcome = match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(value) => Outcome::Returned(value),
                    Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
                };
                let code = match outcome {
                    Outcome::Returned(_) => EXIT_RETURNED,
                    Outcome::Panicked(_) => EXIT_PANICKED,
                };
                let sent = postcard::to_allocvec(&outcome)
                    .ok()
                    .is_some_and(|frame| writer.write_all(&frame).is_ok());
                exit_now(if sent { code } else { EXIT_UNSENT })
            }
            Fork::Parent(child) => {
                drop(writer);
                Ok(Self {
                    child,
                    output: reader,
                    received: Vec::new(),
                    joined: false,
                    _result: PhantomData,
                })
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
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

    fn exit_status(&mut self) -> Option<ExitStatus> {
        // Drain what the child wrote so far, so that it never blocks on a
        // full pipe while we only look.
        let _ = self.output.read_available(&mut self.received);
        self.child.try_wait().ok().flatten()
    }

    /// Sends `SIGTERM` to the child (no-op once it has exited).
    pub fn terminate(&self) -> Result<(), ProcessError> {
        Ok(self.child.terminate()?)
    }

    /// Sends `SIGKILL` to the child (no-op once it has exited).
    pub fn kill(&self) -> Result<(), ProcessError> {
        Ok(self.child.kill()?)
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
        if self.joined {
            return Err(ProcessError::AlreadyJoined);
        }
        let pid = self.child.pid();
        let Some(status) =
            self.child
                .wait_collecting(&self.output, &mut self.received, deadline)?
        else {
            return Err(ProcessError::Timeout);
        };
        self.joined = true;
        let frame = std::mem::take(&mut self.received);
        match status {
            ExitStatus::Signaled { signal, .. } => Err(ProcessError::Signaled { pid, signal }),
            ExitStatus::Exited(code) if frame.is_empty() => Err(ProcessError::Exited { pid, code }),
            ExitStatus::Exited(code) => match postcard::from_bytes::<Outcome<T>>(&frame) {
                Ok(Outcome::Returned(value)) => Ok(value),
                Ok(Outcome::Panicked(message)) => Err(ProcessError::Panicked { pid, message }),
                // Cut short: the child failed while sending.
                Err(_) if code != EXIT_RETURNED => Err(ProcessError::Exited { pid, code }),
                Err(error) => Err(ProcessError::BadResult {
                    pid,
                    reason: error.to_string(),
                }),
            },
        }
    }
}

impl<T> Drop for Process<T> {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The message of a panic payload (`&str` or `String`, as `panic!` makes).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
