//! The [`Spawn`](crate::StartMethod::Spawn) start method: run the program
//! again and hand the new process its entry point.
//!
//! The parent runs `/proc/self/exe` with the arguments
//! `__mproc_spawn_entry --exact --nocapture --test-threads=1 --quiet`
//! (through `std::process::Command`, safe from any number of threads) and
//! one end of a Unix socket pair as its stdin. [`init`], first thing in
//! the new process's `main`, recognizes the first argument, takes the
//! socket (stdin becomes `/dev/null`), reads one length-prefixed postcard
//! frame ([`Role`]), with the file descriptors of the tokens in the
//! arguments attached (`SCM_RIGHTS`), and runs the child's `fn`, whose
//! outcome goes back
//! through the same socket; or, with `MPROC_ROLE=forkserver` in its
//! environment, serves as a fork server on that socket. It never returns
//! there.
//!
//! The other arguments are for test binaries: there libtest's `main` runs
//! instead of the user's, and they make it run exactly one test, the one
//! [`enable_test_support!`](crate::enable_test_support) defines, which
//! calls [`init`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use mproc_os::Errno;
use mproc_os::pipe::{PipeReader, PipeWriter};
use mproc_os::process::{Child, exit_now, parent_pid};
use mproc_os::socket::{Stream, socketpair};
use serde::{Deserialize, Serialize};

use crate::current::ChildSetup;
use crate::entry::Request;
use crate::process::{ChildKind, EXIT_START_FAILED, ProcessError};

/// The first argument of a spawned process (and the name of the test that
/// [`enable_test_support!`](crate::enable_test_support) defines).
const MARKER: &str = "__mproc_spawn_entry";

/// The arguments after [`MARKER`]: in a test binary they make libtest run
/// that one test, unfiltered output, on one thread.
const TEST_ARGS: [&str; 4] = ["--exact", "--nocapture", "--test-threads=1", "--quiet"];

/// The largest start frame a spawned process accepts (arguments included).
const MAX_FRAME: u32 = 1 << 30;

/// The environment variable that tells a spawned process its role:
/// [`ROLE_CHILD`] (a start frame follows on stdin) or [`ROLE_SERVER`].
const ROLE_ENV: &str = "MPROC_ROLE";
const ROLE_CHILD: &str = "child";
const ROLE_SERVER: &str = "forkserver";

/// The byte a spawned child sends back first, once [`init`] has read its
/// request: the outcome frame follows. A child of a program whose `main`
/// does not call [`init`] runs `main` instead and never sends it.
pub(crate) const DISPATCHED_MARK: u8 = b'S';

/// Set once [`init`] dispatched this process (or the process it was forked
/// from) to a role.
static DISPATCHED: AtomicBool = AtomicBool::new(false);

/// What a spawned child is asked to run: its start frame.
#[derive(Serialize, Deserialize)]
struct Role {
    /// Who it is.
    setup: ChildSetup,
    /// What it runs.
    request: Request,
}

/// Dispatches a process that mproc started with
/// [`StartMethod::Spawn`](crate::StartMethod::Spawn) (or as a fork server):
/// call it first thing in `main`. In any other process it returns at once.
///
/// In a process mproc started it never returns: the process runs the `fn`
/// it was asked to run and exits. So nothing before it in `main` may have
/// effects the child should not repeat (Python's `if __name__ ==
/// '__main__'` guard, made explicit).
///
/// # Examples
///
/// ```no_run
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// fn main() -> Result<(), mproc_pool::ProcessError> {
///     mproc_pool::init();
///     let mut child = mproc_pool::Process::builder()
///         .start_method(mproc_pool::StartMethod::Spawn)
///         .spawn_fn(square, 12)?;
///     assert_eq!(child.join()?, 144);
///     Ok(())
/// }
/// ```
pub fn init() {
    if DISPATCHED.load(Ordering::Relaxed)
        || std::env::args_os().nth(1).is_none_or(|arg| arg != MARKER)
    {
        return;
    }
    DISPATCHED.store(true, Ordering::Relaxed);
    let channel = match mproc_os::process::take_stdin() {
        Ok(fd) => fd,
        Err(error) => {
            mproc_os::process::write_stderr(
                format!("mproc: a spawned process cannot take its channel: {error}\n").as_bytes(),
            );
            exit_now(EXIT_START_FAILED)
        }
    };
    if std::env::var_os(ROLE_ENV).is_some_and(|role| role == ROLE_SERVER) {
        crate::forkserver::serve(channel)
    }
    let stream = Stream::from_fd(channel);
    let (setup, request, fds) = match read_frame(&stream) {
        Ok((Role { setup, request }, fds)) => (setup, request, fds),
        Err(reason) => {
            mproc_os::process::write_stderr(
                format!("mproc: a spawned process got no valid start frame: {reason}\n").as_bytes(),
            );
            exit_now(EXIT_START_FAILED)
        }
    };
    // Tell the parent its request arrived: a child that sends nothing at
    // all ran `main` instead (see `DISPATCHED_MARK`).
    if stream.write_all(&[DISPATCHED_MARK]).is_err() {
        // The parent is gone: nobody wants the result.
        exit_now(EXIT_START_FAILED)
    }
    request.run(
        &setup,
        parent_pid(),
        PipeWriter::from_fd(OwnedFd::from(stream)),
        fds,
    )
}

/// Makes [`StartMethod::Spawn`](crate::StartMethod::Spawn) (and
/// [`StartMethod::ForkServer`](crate::StartMethod::ForkServer) from a
/// multi-threaded process) work in a test binary, whose `main` belongs to
/// libtest: defines the test `__mproc_spawn_entry`, which calls
/// [`init`]. Invoke it once, at the top level of the test crate (a test
/// file of `tests/`, or the crate root for unit tests). In a normal test
/// run that test does nothing and passes.
///
/// ```no_run
/// mproc_pool::enable_test_support!();
///
/// fn triple(n: u32) -> u32 {
///     3 * n
/// }
///
/// #[test]
/// fn spawned_child_returns() {
///     let mut child = mproc_pool::Process::builder()
///         .start_method(mproc_pool::StartMethod::Spawn)
///         .spawn_fn(triple, 5)
///         .unwrap();
///     assert_eq!(child.join().unwrap(), 15);
/// }
/// ```
#[macro_export]
macro_rules! enable_test_support {
    () => {
        /// The entry point of processes started with `StartMethod::Spawn`
        /// from this test binary (a no-op in a normal test run).
        #[test]
        fn __mproc_spawn_entry() {
            $crate::init();
        }
    };
}

/// Reads one start frame: a little-endian `u32` length, then that many
/// bytes of postcard, with the descriptors of the arguments' tokens
/// attached.
fn read_frame(stream: &Stream) -> Result<(Role, Vec<OwnedFd>), String> {
    let message = stream
        .recv_message(MAX_FRAME as usize, None)
        .map_err(|error| format!("reading it: {error}"))?
        .ok_or_else(|| "the parent closed the channel first".to_owned())?;
    let role =
        postcard::from_bytes(&message.bytes).map_err(|error| format!("decoding: {error}"))?;
    Ok((role, message.fds))
}

/// Writes one start frame with `fds` attached (see [`read_frame`]).
fn write_frame(stream: &Stream, role: &Role, fds: &[BorrowedFd<'_>]) -> Result<(), ProcessError> {
    let frame = postcard::to_allocvec(role).map_err(|error| ProcessError::Start {
        reason: format!("the start frame does not encode: {error}"),
    })?;
    if frame.len() > MAX_FRAME as usize {
        return Err(ProcessError::Start {
            reason: format!(
                "the arguments take {} bytes, over the limit of {MAX_FRAME}",
                frame.len()
            ),
        });
    }
    match stream.send_message(&frame, fds) {
        Ok(()) => Ok(()),
        // The new process closed its end without reading: it ran `main`
        // instead of its entry point and is exiting. Its handle reports
        // that when joined (no dispatch mark comes back).
        Err(error) if matches!(error.errno(), Some(Errno::PIPE | Errno::CONNRESET)) => Ok(()),
        Err(error) => Err(ProcessError::Start {
            reason: format!("the new process did not take its start frame: {error}"),
        }),
    }
}

/// Runs this program again as a process in `role`, with `channel` as its
/// stdin, and returns it (our child, held through a pidfd).
fn exec(role: &str, channel: OwnedFd) -> Result<Child, ProcessError> {
    if std::env::args_os().nth(1).is_some_and(|arg| arg == MARKER)
        && !DISPATCHED.load(Ordering::Relaxed)
    {
        // We were spawned, yet `init` did not run first in `main`: the
        // program would spawn itself over and over.
        return Err(ProcessError::Start {
            reason: "this process was started with StartMethod::Spawn but its main did not \
                     call mproc::init() first"
                .to_owned(),
        });
    }
    let child = Command::new("/proc/self/exe")
        .arg0(std::env::args_os().next().unwrap_or_else(|| "mproc".into()))
        .arg(MARKER)
        .args(TEST_ARGS)
        .env(ROLE_ENV, role)
        .stdin(Stdio::from(channel))
        .spawn()
        .map_err(|error| ProcessError::Start {
            reason: format!("cannot run /proc/self/exe: {error}"),
        })?;
    let pid = child.id();
    // Dropping std's handle neither waits for nor kills the child; the
    // pidfd takes over (the unreaped child keeps its pid).
    drop(child);
    Ok(Child::adopt(pid)?)
}

/// Starts `request` in a new run of this program, sending `fds` (the
/// descriptors of the tokens in its arguments) with it.
pub(crate) fn start(
    setup: ChildSetup,
    request: Request,
    fds: Vec<OwnedFd>,
) -> Result<(ChildKind, PipeReader), ProcessError> {
    let (ours, theirs) = socketpair()?;
    let mut child = exec(ROLE_CHILD, OwnedFd::from(theirs))?;
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let sent = write_frame(&ours, &Role { setup, request }, &borrowed);
    // The child has its copies now (or never will).
    drop(borrowed);
    drop(fds);
    if let Err(error) = sent {
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
    let output = PipeReader::from_fd(OwnedFd::from(ours))?;
    Ok((ChildKind::Direct(child), output))
}

/// Runs this program again as a fork server whose control channel is
/// `control` (see [`crate::forkserver::serve`]): the new process finds
/// `MPROC_ROLE=forkserver` in its environment and serves on its stdin.
pub(crate) fn exec_server(control: OwnedFd) -> Result<Child, ProcessError> {
    exec(ROLE_SERVER, control)
}
