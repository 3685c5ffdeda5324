//! The [`ForkServer`](crate::StartMethod::ForkServer) start method: a
//! single-threaded server process forks every child, so that a
//! multi-threaded program can start children without forking itself.
//!
//! # The server
//!
//! Each process that asks for a `ForkServer` child gets one server of its
//! own, started on first use: forked directly if the caller has one thread,
//! otherwise the program is run again ([`crate::spawn::exec_server`]) and
//! its `mproc::init()` calls [`serve`]. The server's record lives in a
//! static together with the owner's pid: a process forked from the owner
//! does not use the owner's server, it starts its own.
//!
//! The server ends with its owner: it exits when the control socket reaches
//! end of file (every copy of the owner's end is closed), and, if the owner
//! started it from its main thread, the kernel also kills it when the owner
//! dies (`PR_SET_PDEATHSIG`; that signal follows the thread that created the
//! server, so it is not asked for from other threads). Daemon children of
//! the server die with the server ([`crate::current::enter_child`]).
//!
//! # Wire format
//!
//! The control channel is a Unix stream socket pair. Every message is a
//! 4-byte little-endian length and that many bytes of postcard
//! ([`mproc_os::socket::Stream`]), with file descriptors attached
//! (`SCM_RIGHTS`). Requests and replies alternate, one at a time (the
//! owner's side is behind a mutex):
//!
//! | owner → server | fds | server → owner | fds |
//! |---|---|---|---|
//! | [`ToServer::Hello`] | none | [`FromServer::Ready`] | none |
//! | [`ToServer::Start`] | the descriptors of the tokens in the arguments, then the write end of the child's output pipe | [`FromServer::Started`] | the child's pidfd, the read end of its status socket |
//! | | | [`FromServer::Failed`] | none |
//!
//! The child writes its outcome frame to the output pipe, as every child
//! does ([`crate::process::child_main`]). Only the server can reap it, so it
//! relays the exit status on a second channel, a socket pair made per child:
//! once the child has been reaped the server writes [`TRAILER_LEN`] bytes,
//! [`TRAILER_MAGIC`] and the Python exit code as a little-endian `i32` (the
//! exit code, or minus the signal number), and closes its end. The child is
//! dead before the trailer is written, so whatever it wrote is in the
//! output pipe by then. A separate channel keeps the trailer apart from the
//! outcome frame whoever drains the output pipe (the
//! [`Process`](crate::Process) handle reads it without asking the child
//! handle).
//!
//! If the server dies, the status channel ends without a trailer: the
//! child is then reported as exited with code [`EXIT_STATUS_LOST`] once its
//! pidfd says it has ended (Python's forkserver reports 255 too), and the
//! next start starts a new server.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mproc_os::futex::Deadline;
use mproc_os::pipe::ReadBuffer;
use mproc_os::pipe::{Drained, PipeReader, PipeWriter, pipe};
use mproc_os::process::{Child, ExitStatus, Fork, Signal, current_pid, exit_now, fork};
use mproc_os::socket::{PidFd, Stream, socketpair, wait_readable};
use serde::{Deserialize, Serialize};

use crate::current::ChildSetup;
use crate::entry::Request;
use crate::process::{ChildKind, ProcessError};

/// The first bytes of a status trailer.
const TRAILER_MAGIC: [u8; 8] = *b"mprocFS\x01";

/// The length of a status trailer: the magic and an `i32`.
const TRAILER_LEN: usize = TRAILER_MAGIC.len() + 4;

/// The exit code reported for a child whose status the server could not
/// relay (it died first).
const EXIT_STATUS_LOST: i32 = 255;

/// The largest request the server accepts (arguments included).
const MAX_REQUEST: usize = 1 << 30;

/// The largest reply or hello accepted.
const MAX_REPLY: usize = 1 << 16;

/// How long the server may take to answer: a server that does not is
/// killed and the start fails (never a hang). Generous, for loaded
/// machines: a healthy server answers in milliseconds.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit code of a server whose control channel broke.
const EXIT_SERVER_BROKEN: i32 = 1;

/// Exit code of a server whose owner was gone before it started.
const EXIT_SERVER_ORPHANED: i32 = 2;

/// A message from the owner to its server.
#[derive(Serialize, Deserialize)]
enum ToServer {
    /// The first message: who the owner is.
    Hello {
        /// The owner's pid.
        owner: u32,
        /// Whether the server should ask for `SIGKILL` when the owner dies
        /// (only when the owner started it from its main thread).
        die_with_owner: bool,
    },
    /// Fork a child that runs `request`; comes with the descriptors of the
    /// tokens in its arguments ([`Request::fd_count`] of them), then the
    /// write end of its output pipe.
    Start {
        /// Who the child is.
        setup: ChildSetup,
        /// What it runs.
        request: Request,
    },
}

/// A reply of the server.
#[derive(Serialize, Deserialize)]
enum FromServer {
    /// The answer to [`ToServer::Hello`].
    Ready {
        /// The server's pid.
        pid: u32,
    },
    /// The child is running; comes with its pidfd and the read end of its
    /// status channel.
    Started {
        /// The child's pid.
        pid: u32,
    },
    /// The child could not be started.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The trailer that relays `status`.
fn trailer(status: ExitStatus) -> [u8; TRAILER_LEN] {
    let mut bytes = [0u8; TRAILER_LEN];
    bytes[..TRAILER_MAGIC.len()].copy_from_slice(&TRAILER_MAGIC);
    bytes[TRAILER_MAGIC.len()..].copy_from_slice(&status.code().to_le_bytes());
    bytes
}

/// The status a trailer relays, or `None` if `bytes` is not a trailer.
fn parse_trailer(bytes: &[u8]) -> Option<ExitStatus> {
    let (magic, code) = bytes.split_at_checked(TRAILER_MAGIC.len())?;
    if magic != TRAILER_MAGIC {
        return None;
    }
    let code = i32::from_le_bytes(code.try_into().ok()?);
    Some(match code {
        0.. => ExitStatus::Exited(code),
        _ => ExitStatus::Signaled {
            signal: code.checked_neg()?,
            core_dumped: false,
        },
    })
}

/// A child of the fork server, as its requester holds it: signalled through
/// the pidfd the server sent, its exit status read from the status channel.
#[derive(Debug)]
pub(crate) struct Relayed {
    pid: u32,
    pidfd: PidFd,
    /// The read end of the status channel (non-blocking).
    channel: PipeReader,
    /// What arrived on it so far.
    trailer: Vec<u8>,
    /// Whether the server closed the channel.
    channel_closed: bool,
    /// Set once the child is known to have ended.
    status: Option<ExitStatus>,
}

impl Relayed {
    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How the child ended, if it has, without blocking.
    ///
    /// Must not log: the registry calls it with its lock held.
    fn check(&mut self) -> mproc_os::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        if !self.channel_closed
            && self.channel.read_available(&mut self.trailer)? == Drained::Closed
        {
            self.channel_closed = true;
        }
        if self.trailer.len() >= TRAILER_LEN {
            let status = parse_trailer(&self.trailer[..TRAILER_LEN])
                .unwrap_or(ExitStatus::Exited(EXIT_STATUS_LOST));
            self.status = Some(status);
        } else if self.channel_closed && self.pidfd.has_exited()? {
            // The server died before it could relay the status.
            self.status = Some(ExitStatus::Exited(EXIT_STATUS_LOST));
        }
        Ok(self.status)
    }

    /// What to wait on: the status channel while it is open, then (the
    /// server is gone) the child's pidfd.
    fn watched(&self) -> BorrowedFd<'_> {
        if self.channel_closed {
            self.pidfd.as_fd()
        } else {
            self.channel.as_fd()
        }
    }

    /// Reaps the child if it has exited, without blocking (the server has
    /// reaped it: this reads the status it relayed).
    pub(crate) fn try_wait(&mut self) -> mproc_os::Result<Option<ExitStatus>> {
        self.check()
    }

    /// Blocks until the child has exited.
    pub(crate) fn wait(&mut self) -> mproc_os::Result<ExitStatus> {
        loop {
            if let Some(status) = self.check()? {
                return Ok(status);
            }
            wait_readable(&[self.watched()], None)?;
        }
    }

    /// Waits until the child has exited or `timeout` passes (`Ok(None)`).
    pub(crate) fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> mproc_os::Result<Option<ExitStatus>> {
        let Some(deadline) = Deadline::after(timeout) else {
            return self.wait().map(Some);
        };
        loop {
            if let Some(status) = self.check()? {
                return Ok(Some(status));
            }
            if deadline.has_passed() {
                return Ok(None);
            }
            wait_readable(&[self.watched()], Some(deadline))?;
        }
    }

    /// Waits until the child has exited or `deadline` passes (`None`:
    /// forever), appending what it writes to `output` meanwhile, so that it
    /// never blocks on a full pipe. `Ok(None)` when the deadline passed.
    pub(crate) fn wait_collecting<B: ReadBuffer + ?Sized>(
        &mut self,
        output: &PipeReader,
        received: &mut B,
        deadline: Option<Deadline>,
    ) -> mproc_os::Result<Option<ExitStatus>> {
        let mut output_open = true;
        loop {
            if output_open && output.read_available(received)? == Drained::Closed {
                output_open = false;
            }
            if let Some(status) = self.check()? {
                // It is dead: whatever it wrote is in the pipe now.
                output.read_available(received)?;
                return Ok(Some(status));
            }
            if deadline.is_some_and(Deadline::has_passed) {
                return Ok(None);
            }
            let both = [self.watched(), output.as_fd()];
            let fds = if output_open { &both[..] } else { &both[..1] };
            wait_readable(fds, deadline)?;
        }
    }

    /// Sends `signal` to the child (no-op once it has exited).
    pub(crate) fn signal(&self, signal: Signal) -> mproc_os::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.pidfd.signal(signal)
    }
}

/// The fork server of this process, as its owner holds it.
pub(crate) struct Server {
    /// The process that started it (a copy of this record inherited
    /// through `fork` is not ours).
    owner: u32,
    /// The server process, our child.
    process: Child,
    /// Our end of the control channel.
    control: Stream,
}

impl Server {
    /// Sends `message` with `fds` and waits for the reply (and the
    /// descriptors that came with it).
    fn exchange(
        &self,
        message: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(FromServer, Vec<OwnedFd>), String> {
        self.control
            .send_message(message, fds)
            .map_err(|error| format!("the fork server does not take requests: {error}"))?;
        let reply = self
            .control
            .recv_message(MAX_REPLY, Deadline::after(ANSWER_TIMEOUT))
            .map_err(|error| match error.errno() {
                Some(mproc_os::Errno::TIMEDOUT) => format!(
                    "the fork server did not answer within {} seconds",
                    ANSWER_TIMEOUT.as_secs()
                ),
                _ => format!("the fork server's answer did not arrive: {error}"),
            })?
            .ok_or_else(|| "the fork server exited".to_owned())?;
        let decoded = postcard::from_bytes(&reply.bytes)
            .map_err(|error| format!("the fork server's answer does not decode: {error}"))?;
        Ok((decoded, reply.fds))
    }

    /// Ends the server: kills and reaps it if it is ours, only closes our
    /// copies of its descriptors if it was inherited.
    fn retire(mut self) {
        if self.owner == current_pid() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// This process's fork server, if it has started one.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Whether [`SERVER`] was ever filled in this process or the one it was
/// forked from: until then a forked child has no server record to forget,
/// and [`release_in_child`] writes nothing (a write would copy the page).
static EVER_STARTED: AtomicBool = AtomicBool::new(false);

pub(crate) type Slot = MutexGuard<'static, Option<Server>>;

/// Locks the fork-server record for a `fork` made by the `Fork` start
/// method, so that no other thread holds it at that moment (the child would
/// inherit it locked).
pub(crate) fn hold() -> Slot {
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// In a child forked by the `Fork` start method: forgets the parent's
/// server (closing this process's copies of its descriptors, so the server
/// still sees its owner leave) and releases the lock if the parent held it
/// across the fork (`slot`), or takes it if the parent had one thread.
///
/// Inlined into the forking code: a page of code a forked child runs is a
/// page it has to map, so the common case (no server ever started) costs
/// the child a load and nothing else.
#[inline(always)]
pub(crate) fn release_in_child(slot: Option<Slot>) {
    // Acquire pairs with the Release store in `launch`; a record filled
    // after the fork is not in this copy of memory anyway.
    if slot.is_some() || EVER_STARTED.load(Ordering::Acquire) {
        forget_server_in_child(slot);
    }
}

#[cold]
fn forget_server_in_child(slot: Option<Slot>) {
    let mut slot = slot.unwrap_or_else(|| SERVER.lock().unwrap_or_else(PoisonError::into_inner));
    let inherited = slot.take();
    drop(slot);
    drop(inherited);
}

/// Starts a fork server for this process and puts it in `slot` (which is
/// empty): forked directly if this process has one thread, run as a new
/// process otherwise. Takes the guard by value so that a forked server can
/// release its copy of the lock.
fn launch(mut slot: Slot) -> Result<Slot, ProcessError> {
    let (ours, theirs) = socketpair()?;
    let owner = current_pid();
    let single = matches!(mproc_os::process::thread_count(), Ok(1));
    let process = if single {
        // SAFETY: this process has one thread, so the child is a complete
        // copy of it and may run anything; it ends in `serve`, which never
        // returns into the caller's frames.
        match unsafe { fork()? } {
            Fork::Child => {
                // The lock and the record are the owner's: release our copy
                // (the children we fork may start servers of their own).
                *slot = None;
                drop(slot);
                drop(ours);
                serve(OwnedFd::from(theirs))
            }
            Fork::Parent(child) => child,
        }
    } else {
        crate::spawn::exec_server(OwnedFd::from(theirs))?
    };
    let server = Server {
        owner,
        process,
        control: ours,
    };
    let hello = ToServer::Hello {
        owner,
        die_with_owner: mproc_os::process::is_main_thread(),
    };
    let answer = postcard::to_allocvec(&hello)
        .map_err(|error| error.to_string())
        .and_then(|hello| server.exchange(&hello, &[]));
    match answer {
        Ok((FromServer::Ready { .. }, _)) => {
            // Release pairs with the Acquire load in `release_in_child`.
            EVER_STARTED.store(true, Ordering::Release);
            *slot = Some(server);
            Ok(slot)
        }
        Ok(_) => {
            server.retire();
            Err(ProcessError::Start {
                reason: "the fork server answered its hello with something else".to_owned(),
            })
        }
        Err(reason) => {
            server.retire();
            Err(ProcessError::Start {
                reason: format!(
                    "the fork server did not start ({reason}); a program run again as a \
                     server must call mproc::init() first in main (a test binary: \
                     mproc::enable_test_support!())"
                ),
            })
        }
    }
}

/// Start `request` as the child described by `setup`, through the fork
/// server (starting the server first if needed), with `fds` (the
/// descriptors of the tokens in its arguments). Returns the child and the
/// read end of the pipe its outcome frame arrives on.
pub(crate) fn start(
    setup: ChildSetup,
    request: Request,
    fds: Vec<OwnedFd>,
) -> Result<(ChildKind, PipeReader), ProcessError> {
    let message = postcard::to_allocvec(&ToServer::Start { setup, request }).map_err(|error| {
        ProcessError::Start {
            reason: format!("the request does not encode: {error}"),
        }
    })?;
    if message.len() > MAX_REQUEST {
        return Err(ProcessError::Start {
            reason: format!(
                "the arguments take {} bytes, over the limit of {MAX_REQUEST}",
                message.len()
            ),
        });
    }
    let (output, writer) = pipe()?;
    let mut slot = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    // A server that is not ours (inherited through a fork) or has died is
    // replaced.
    let usable = match slot.as_mut() {
        None => true,
        Some(server) => {
            server.owner == current_pid() && matches!(server.process.try_wait(), Ok(None))
        }
    };
    if !usable && let Some(server) = slot.take() {
        server.retire();
    }
    if slot.is_none() {
        slot = launch(slot)?;
    }
    let Some(server) = slot.as_mut() else {
        return Err(ProcessError::Start {
            reason: "no fork server".to_owned(),
        });
    };
    let mut attached: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    attached.push(writer.as_fd());
    let answer = server.exchange(&message, &attached);
    // The child has its copies now (or never will).
    drop(attached);
    drop(fds);
    drop(writer);
    let broken = |slot: &mut Slot, reason: String| {
        if let Some(server) = slot.take() {
            server.retire();
        }
        ProcessError::Start { reason }
    };
    match answer {
        Ok((FromServer::Started { pid }, fds)) if fds.len() == 2 => {
            let mut fds = fds.into_iter();
            let (Some(pidfd), Some(channel)) = (fds.next(), fds.next()) else {
                return Err(broken(
                    &mut slot,
                    "the fork server sent no handles".to_owned(),
                ));
            };
            let relayed = Relayed {
                pid,
                pidfd: PidFd::from_fd(pidfd),
                channel: PipeReader::from_fd(channel)?,
                trailer: Vec::new(),
                channel_closed: false,
                status: None,
            };
            Ok((ChildKind::Relayed(relayed), output))
        }
        Ok((FromServer::Failed { reason }, _)) => Err(ProcessError::Start {
            reason: format!("the fork server could not start the child: {reason}"),
        }),
        Ok(_) => Err(broken(
            &mut slot,
            "the fork server answered a start with something else".to_owned(),
        )),
        Err(reason) => Err(broken(&mut slot, reason)),
    }
}

/// A child of the server: its handle, and our end of its status channel.
struct Served {
    child: Child,
    status: Stream,
}

/// Sends `reply` with `fds` to the owner, or ends the server if the owner
/// cannot be told.
fn reply(control: &Stream, reply: &FromServer, fds: &[BorrowedFd<'_>]) {
    let sent = postcard::to_allocvec(reply)
        .ok()
        .is_some_and(|bytes| control.send_message(&bytes, fds).is_ok());
    if !sent {
        exit_now(EXIT_SERVER_BROKEN);
    }
}

/// The fork server's main loop, in a process that was forked or run again
/// to be the server, on the control channel `control`. Never returns.
///
/// Waits (`poll`) on the control socket and on the pidfd of every child
/// still running. A child that exited is reaped, and its status relayed;
/// a request is served by forking the child, which runs it. End of file on
/// the control socket (the owner is gone) ends the server.
pub(crate) fn serve(control: OwnedFd) -> ! {
    let control = Stream::from_fd(control);
    let me = current_pid();
    let hello = match control.recv_message(MAX_REPLY, None) {
        Ok(Some(message)) => postcard::from_bytes::<ToServer>(&message.bytes).ok(),
        Ok(None) => exit_now(EXIT_SERVER_ORPHANED),
        Err(_) => None,
    };
    let Some(ToServer::Hello {
        owner,
        die_with_owner,
    }) = hello
    else {
        exit_now(EXIT_SERVER_BROKEN)
    };
    if die_with_owner {
        match mproc_os::process::set_parent_death_signal(Some(Signal::KILL), owner) {
            Ok(true) => {}
            _ => exit_now(EXIT_SERVER_ORPHANED),
        }
    }
    // Ctrl-C reaches the whole foreground process group: the program
    // decides whether it stops (and then the server goes with it), the
    // server does not die under it. Its children get the signal as the
    // program had it.
    let interrupt = mproc_os::process::ignore_signal(Signal::INT).ok();
    reply(&control, &FromServer::Ready { pid: me }, &[]);

    let mut children: Vec<Served> = Vec::new();
    loop {
        let ready = {
            let mut fds = Vec::with_capacity(children.len() + 1);
            fds.push(control.as_fd());
            for served in &children {
                // Opened when the child started (see below).
                match served.child.pidfd() {
                    Ok(pidfd) => fds.push(pidfd),
                    Err(_) => exit_now(EXIT_SERVER_BROKEN),
                }
            }
            match wait_readable(&fds, None) {
                Ok(ready) => ready,
                Err(_) => exit_now(EXIT_SERVER_BROKEN),
            }
        };
        // Reap the children whose pidfd is readable, and relay how they
        // ended (a requester that is gone is no error).
        let mut index = 0;
        children.retain_mut(|served| {
            index += 1;
            if !ready.get(index).copied().unwrap_or(false) {
                return true;
            }
            match served.child.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    let _ = served.status.write_all(&trailer(status));
                    false
                }
                // Not ours to reap after all: closing the channel tells the
                // requester the status is lost.
                Err(_) => false,
            }
        });
        if !ready.first().copied().unwrap_or(false) {
            continue;
        }
        let message = match control.recv_message(MAX_REQUEST, None) {
            Ok(Some(message)) => message,
            Ok(None) => exit_now(0),
            Err(_) => exit_now(EXIT_SERVER_BROKEN),
        };
        let mut fds = message.fds;
        let output = fds.pop();
        let request = match (postcard::from_bytes::<ToServer>(&message.bytes), output) {
            (Ok(ToServer::Start { setup, request }), Some(output))
                if fds.len() == request.fd_count() =>
            {
                Some((setup, request, output, fds))
            }
            _ => None,
        };
        let Some((setup, request, output, fds)) = request else {
            let reason = "a malformed request".to_owned();
            reply(&control, &FromServer::Failed { reason }, &[]);
            continue;
        };
        // Made before the fork, so the child cannot take the blame for a
        // failure here; the child closes its copies below.
        let (status_reader, status_writer) = match socketpair() {
            Ok(pair) => pair,
            Err(error) => {
                let reason = format!("no status channel: {error}");
                reply(&control, &FromServer::Failed { reason }, &[]);
                continue;
            }
        };
        // SAFETY: the server runs on one thread: it was forked from a
        // single-threaded process, or is a program run anew whose `main`
        // called `mproc::init()` first. (In a test binary libtest's main
        // thread exists too, but it only waits for the thread running the
        // server and holds no lock.) So the child is a usable copy of the
        // server; it ends in `Request::run`, which never returns.
        match unsafe { fork() } {
            Ok(Fork::Child) => {
                // Nothing of the server's belongs in the child.
                drop(status_reader);
                drop(status_writer);
                drop(children);
                drop(control);
                if let Some(interrupt) = &interrupt {
                    // Without it the child keeps the server's SIG_IGN.
                    let _ = interrupt.restore();
                }
                request.run(&setup, me, PipeWriter::from_fd(output), fds)
            }
            Ok(Fork::Parent(mut child)) => {
                // The child has its copies: the server keeps none.
                drop(fds);
                drop(output);
                let pidfd = match child.pidfd() {
                    Ok(pidfd) => pidfd,
                    Err(error) => {
                        let _ = child.kill();
                        let reason = format!("pidfd_open: {error}");
                        reply(&control, &FromServer::Failed { reason }, &[]);
                        let _ = child.wait();
                        continue;
                    }
                };
                let started = FromServer::Started { pid: child.pid() };
                reply(&control, &started, &[pidfd, status_reader.as_fd()]);
                drop(status_reader);
                children.push(Served {
                    child,
                    status: status_writer,
                });
            }
            Err(error) => {
                let reason = format!("fork: {error}");
                reply(&control, &FromServer::Failed { reason }, &[]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mproc_os::process::ExitStatus;

    use super::{parse_trailer, trailer};

    #[test]
    fn trailer_round_trips() {
        for status in [
            ExitStatus::Exited(0),
            ExitStatus::Exited(255),
            ExitStatus::Signaled {
                signal: 9,
                core_dumped: false,
            },
        ] {
            assert_eq!(parse_trailer(&trailer(status)), Some(status));
        }
        assert_eq!(parse_trailer(b"not a trailer"), None);
        assert_eq!(parse_trailer(&[0; 12]), None);
        let mut bad = trailer(ExitStatus::Exited(0));
        bad[8..].copy_from_slice(&i32::MIN.to_le_bytes());
        assert_eq!(parse_trailer(&bad), None);
    }
}
