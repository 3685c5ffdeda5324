//! Processes: the current pid, `fork`, and child handles held through a
//! pidfd.
//!
//! A [`Child`] refers to its process by its pid while it is unreaped (an
//! unreaped child keeps its pid, so waiting on it can never hit an
//! unrelated process) and through a pidfd (`pidfd_open`, opened on first
//! need) for signals and for waiting with a timeout, a `poll` on that fd.
//!
//! [`current_pid`] is cached (per thread), so that lock owners and queue
//! slot tags can record the pid without a system call. The cache is reset
//! in the child after [`fork`], and by a `pthread_atfork` child handler
//! (registered the first time the pid is needed) after forks made by any
//! other code that goes through the C library's `fork`. A child made with a raw `clone`
//! system call bypasses both and would inherit a stale pid: do not do that.

use core::cell::Cell;
use core::ffi::CStr;
use core::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use mproc_core::{Origin, OwnerId};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

pub use rustix::process::Signal;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result, os};
use crate::futex::Deadline;

std::thread_local! {
    /// The cached pid of this process, one copy per thread; 0 when not (or
    /// no longer) known.
    ///
    /// Per thread so that resetting it in a forked child writes only the
    /// forking thread's thread-local block: that block sits next to the
    /// thread descriptor, whose page the kernel writes in every child (it
    /// stores the child's thread id there), so the reset copies no page of
    /// its own. A process-wide static would cost the child a copy of
    /// whatever page it lies on. Constant-initialized and without a
    /// destructor, it is a plain `#[thread_local]` access: usable from the
    /// `pthread_atfork` handler.
    static PID: Cell<u32> = const { Cell::new(0) };
}

/// The pid whose start time [`START_TIME`] holds; 0 when none.
static START_PID: AtomicU32 = AtomicU32::new(0);

/// The start time of process [`START_PID`].
static START_TIME: AtomicU64 = AtomicU64::new(0);

/// State of the `pthread_atfork` registration: [`ATFORK_NONE`],
/// [`ATFORK_BUSY`], [`ATFORK_DONE`] or [`ATFORK_FAILED`].
///
/// An atomic rather than a `std::sync::Once`: a `Once` that another thread
/// was running when this process forked would stay "running" in the child
/// forever.
static ATFORK: AtomicU8 = AtomicU8::new(ATFORK_NONE);
const ATFORK_NONE: u8 = 0;
const ATFORK_BUSY: u8 = 1;
const ATFORK_DONE: u8 = 2;
const ATFORK_FAILED: u8 = 3;

/// The process id of the caller.
///
/// Cached: only the first call in each thread makes a system call
/// (`getpid`). The cache is reset in a child after [`fork`], and after forks
/// made by other code through the C library (a `pthread_atfork` child
/// handler registered on first use).
///
/// # References
///  - [Linux]
///
/// [Linux]: https://man7.org/linux/man-pages/man2/getpid.2.html
#[inline]
pub fn current_pid() -> u32 {
    match PID.get() {
        0 => current_pid_slow(),
        pid => pid,
    }
}

#[cold]
fn current_pid_slow() -> u32 {
    let pid = rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs();
    // Cache only once the handler that resets the cache in a child is in
    // place; until then every call asks the kernel.
    if atfork_registered() {
        PID.set(pid);
    }
    pid
}

/// Registers [`reset_after_fork`] as a `pthread_atfork` child handler, once.
/// Returns whether it is registered.
fn atfork_registered() -> bool {
    // Look before the compare-exchange: on x86 a `lock cmpxchg` writes its
    // line even when it fails, and every fork write-protects the page, so
    // a failing exchange on each fork would cost a page fault each time.
    // Acquire pairs with the Release store below (in another thread).
    match ATFORK.load(Ordering::Acquire) {
        ATFORK_DONE => return true,
        ATFORK_FAILED => return false,
        _ => {}
    }
    match ATFORK.compare_exchange(
        ATFORK_NONE,
        ATFORK_BUSY,
        // Acquire pairs with the Release store below (in another thread).
        Ordering::Acquire,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            // SAFETY: `reset_after_fork` is an `extern "C"` function that
            // only stores to a constant-initialized thread-local without a
            // destructor (a plain store through the thread pointer, no
            // lazy set-up), which is async-signal-safe and so allowed in a
            // child of a multi-threaded parent.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(reset_after_fork)) };
            let state = if rc == 0 { ATFORK_DONE } else { ATFORK_FAILED };
            // Release pairs with the Acquire above.
            ATFORK.store(state, Ordering::Release);
            rc == 0
        }
        Err(state) => state == ATFORK_DONE,
    }
}

/// Forgets the cached pid: run in the child after every `fork`, in the one
/// thread the child has (the one that forked).
extern "C" fn reset_after_fork() {
    PID.set(0);
}

/// The caller as an [`OwnerId`]: its pid, with the low 32 bits of its
/// start time ([`origin`]) as the start stamp, so that a later process that
/// reuses the pid is told apart ([`owner_gone`]).
#[inline]
pub fn owner_id() -> OwnerId {
    /// Never used: Linux pids are at most 2^22 - 1 (`PID_MAX_LIMIT` - 1)
    /// and never 0, so they are always valid owner ids.
    const UNREACHABLE: OwnerId = match OwnerId::new(OwnerId::MAX) {
        Some(id) => id,
        None => panic!("OwnerId::MAX is a valid owner id"),
    };
    let origin = origin();
    // The low 32 bits: ticks wrap after 497 days at 100 Hz, and a pid is
    // reused with the same stamp only by a process started a multiple of
    // that much later.
    OwnerId::with_start(origin.pid, origin.start_time as u32).unwrap_or(UNREACHABLE)
}

/// Whether the owner `pid` (with start stamp `start`, the low 32 bits of its
/// start time, when known) is certainly gone: the liveness check behind
/// [`Futex`](crate::futex::Futex)'s [`Wait::owner_gone`](mproc_core::Wait::owner_gone).
///
/// Reads `/proc/<pid>/stat` (`open`, `read`, `close`): gone if there is no
/// such process, if it is a zombie (killed but not yet reaped: it holds
/// nothing any more), or if it started at another time than `start` (the
/// pid was reused). Without a readable `/proc` it falls back to
/// `kill(pid, 0)` failing with `ESRCH`. Any other failure answers "not
/// gone": a waiter then keeps waiting rather than break a live owner's lock.
///
/// # References
///  - [Linux `proc_pid_stat(5)`]
///  - [Linux `kill(2)`]
///
/// [Linux `proc_pid_stat(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
/// [Linux `kill(2)`]: https://man7.org/linux/man-pages/man2/kill.2.html
pub fn owner_gone(pid: u32, start: Option<u32>) -> bool {
    let mut stat = [0u8; 2048];
    match read_stat(pid, &mut stat) {
        Ok(len) => {
            let stat = &stat[..len];
            if matches!(stat_state(stat), Some(b'Z' | b'X' | b'x')) {
                return true;
            }
            match (start, parse_start_time(stat)) {
                (Some(start), Some(now)) if start != 0 => now as u32 != start,
                _ => false,
            }
        }
        Err(Error::Os {
            errno: Errno::NOENT | Errno::SRCH,
            ..
        }) => {
            // No entry: gone, if this process can read its own.
            if origin().start_time != 0 {
                return true;
            }
            let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return false;
            };
            rustix::process::test_kill_process(pid) == Err(Errno::SRCH)
        }
        Err(_) => false,
    }
}

/// Field 3 (`state`, one letter) of a `/proc/<pid>/stat` line.
fn stat_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

/// The start time of process `pid`, in clock ticks since boot.
///
/// Field 22 (`starttime`) of `/proc/<pid>/stat`. Together with the pid it
/// identifies a process for good: a later process that reuses the pid has
/// a later start time.
///
/// Makes only async-signal-safe system calls (`open`, `read`, `close`) and
/// does not allocate, so a child forked from a multi-threaded parent may
/// call it.
///
/// # Errors
///
/// [`Error::Os`] with `call: "open /proc/<pid>/stat"` and `errno: ENOENT`
/// if there is no such process, or an errno from `open` or `read`; `EINVAL`
/// (`call: "parse /proc/<pid>/stat"`) if the file cannot be parsed.
///
/// # References
///  - [Linux `proc_pid_stat(5)`]
///
/// [Linux `proc_pid_stat(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
pub fn start_time(pid: u32) -> Result<u64> {
    let mut stat = [0u8; 2048];
    let len = read_stat(pid, &mut stat)?;
    parse_start_time(&stat[..len]).ok_or(Error::Os {
        call: "parse /proc/<pid>/stat",
        errno: Errno::INVAL,
    })
}

/// Writes `/proc/<pid>/stat` and a NUL into `buf`, without allocating.
///
/// A `u32` has at most 10 digits, so the path takes at most 22 of the 32
/// bytes and no index below can go out of bounds.
fn proc_stat_path(pid: u32, buf: &mut [u8; 32]) -> Option<&CStr> {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        buf[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(b"/proc/");
    for &digit in digits[..count].iter().rev() {
        push(&[digit]);
    }
    push(b"/stat\0");
    CStr::from_bytes_with_nul(&buf[..len]).ok()
}

/// Field 22 of a `/proc/<pid>/stat` line.
fn parse_start_time(stat: &[u8]) -> Option<u64> {
    stat_field(stat, 22)
}

/// Numeric field `field` (counted from 1, at least 3) of a
/// `/proc/<pid>/stat` line.
///
/// Field 2 (`comm`) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the last `)`: field 3 is the
/// first after it.
fn stat_field(stat: &[u8], field: usize) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = core::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace()
        .nth(field.checked_sub(3)?)?
        .parse()
        .ok()
}

/// Reads `/proc/<pid>/stat` into `buf` and returns the bytes read, without
/// allocating (only `open`, `read` and `close`).
fn read_stat(pid: u32, buf: &mut [u8; 2048]) -> Result<usize> {
    let unparsable = || Error::Os {
        call: "parse /proc/<pid>/stat",
        errno: Errno::INVAL,
    };
    let mut path = [0u8; 32];
    let path = proc_stat_path(pid, &mut path).ok_or_else(unparsable)?;
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(os("open /proc/<pid>/stat"))?;
    // The line has 52 numeric fields and a name of at most 64 bytes: well
    // under 2 KiB.
    let mut len = 0;
    loop {
        let Some(free) = buf.get_mut(len..).filter(|free| !free.is_empty()) else {
            return Err(unparsable());
        };
        match rustix::io::read(&fd, free) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(errno) => return Err(os("read /proc/<pid>/stat")(errno)),
        }
    }
}

/// The number of threads of the calling process.
///
/// `fstat` of `/proc/self/task`, whose link count procfs reports as 2 plus
/// the number of threads (`proc_task_getattr`): one cheap system call on a
/// directory descriptor opened once per process. If the count looks wrong
/// (a procfs that does not report it), falls back to field 20
/// (`num_threads`) of `/proc/self/stat`. Used to refuse a plain `fork`
/// from a multi-threaded process, on every fork, so it has to be cheap.
///
/// # Errors
///
/// [`Error::Os`] if `/proc` cannot be read or parsed.
///
/// # References
///  - [Linux `proc_pid_task(5)`]
///  - [Linux `proc_pid_stat(5)`]
///
/// [Linux `proc_pid_task(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_task.5.html
/// [Linux `proc_pid_stat(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
pub fn thread_count() -> Result<u64> {
    if known_single_threaded() {
        return Ok(1);
    }
    let pid = current_pid();
    let links = with_task_dir(pid, |dir| rustix::fs::fstat(dir).map(|stat| stat.st_nlink))?;
    if links >= 3 {
        return Ok(links as u64 - 2);
    }
    thread_count_from_stat(pid)
}

/// Whether the C library knows this process to be single-threaded: glibc's
/// `__libc_single_threaded` (glibc 2.32 and later) is non-zero until a
/// second thread is created. Looked up once with `dlsym`; without it (an
/// older or another C library), `false`, and [`thread_count`] asks the
/// kernel.
///
/// # References
///  - [glibc `__libc_single_threaded`]
///
/// [glibc `__libc_single_threaded`]: https://man7.org/linux/man-pages/man3/__libc_single_threaded.3.html
fn known_single_threaded() -> bool {
    use std::sync::atomic::AtomicPtr;
    /// Marks "looked up, and absent".
    const ABSENT: *mut u8 = core::ptr::dangling_mut();
    static FLAG: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
    let mut flag = FLAG.load(Ordering::Relaxed);
    if flag.is_null() {
        // SAFETY: `dlsym` with `RTLD_DEFAULT` and a NUL-terminated name
        // only looks the symbol up.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
        flag = if found.is_null() {
            ABSENT
        } else {
            found.cast()
        };
        FLAG.store(flag, Ordering::Relaxed);
    }
    // SAFETY: a non-sentinel `flag` is the address of glibc's
    // `char __libc_single_threaded`, which lives as long as the process;
    // glibc documents reading it without synchronization.
    flag != ABSENT && unsafe { flag.read_volatile() } != 0
}

/// [`thread_count`] from `/proc/<pid>/stat`, where the task directory's
/// link count does not tell. Out of line, so that the common path's stack
/// frame stays small: a deep one reaches a stack page that the last
/// `fork` write-protected, and the kernel's `fstat` into it then costs a
/// page fault on every start.
#[cold]
#[inline(never)]
fn thread_count_from_stat(pid: u32) -> Result<u64> {
    let mut stat = [0u8; 2048];
    let len = read_stat(pid, &mut stat)?;
    stat_field(&stat[..len], 20).ok_or(Error::Os {
        call: "parse /proc/<pid>/stat",
        errno: Errno::INVAL,
    })
}

/// `/proc/self/task` of process `TASK_DIR >> 32`, open as the low 32 bits;
/// 0 when none is open. A child inherits its parent's (which lists the
/// parent's threads): it opens its own and closes the inherited copy.
static TASK_DIR: AtomicU64 = AtomicU64::new(0);

/// Runs `f` on this process's open `/proc/self/task` directory.
fn with_task_dir<R>(
    pid: u32,
    f: impl FnOnce(BorrowedFd<'_>) -> rustix::io::Result<R>,
) -> Result<R> {
    // Acquire pairs with the AcqRel exchange below: the fd is open.
    let cached = TASK_DIR.load(Ordering::Acquire);
    let raw = if cached != 0 && (cached >> 32) as u32 == pid {
        cached as u32 as i32
    } else {
        let dir = rustix::fs::open(
            "/proc/self/task",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os("open /proc/self/task"))?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(dir);
        let mine = (u64::from(pid) << 32) | u64::from(raw as u32);
        match TASK_DIR.compare_exchange(cached, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if cached != 0 {
                    // SAFETY: the inherited descriptor is this process's
                    // copy of its parent's directory; no thread of this
                    // process uses it (they all see the pid mismatch), and
                    // the exchange above makes this the only close of it.
                    drop(unsafe {
                        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(cached as u32 as i32)
                    });
                }
                raw
            }
            Err(now) => {
                // Another thread stored its own first: use that one.
                // SAFETY: `raw` was opened above and is owned by nobody else.
                drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
                if (now >> 32) as u32 != pid {
                    return Err(Error::Os {
                        call: "open /proc/self/task",
                        errno: Errno::AGAIN,
                    });
                }
                now as u32 as i32
            }
        }
    };
    // SAFETY: `raw` is this process's task directory, stored in TASK_DIR
    // and never closed while this process lives (only a child closes its
    // inherited copy, which is not this one).
    let dir = unsafe { BorrowedFd::borrow_raw(raw) };
    f(dir).map_err(os("fstat /proc/self/task"))
}

/// How a signal was handled before [`ignore_signal`] changed it: restore
/// it with [`SignalDisposition::restore`] (in a child, say, that should get
/// the signal as its parent's program would).
pub struct SignalDisposition {
    signal: Signal,
    action: libc::sigaction,
}

impl fmt::Debug for SignalDisposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalDisposition")
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}

/// Ignores `signal` in this process (`SIG_IGN`) and returns how it was
/// handled before. A fork server does this for `SIGINT`, as Python's does:
/// Ctrl-C in a terminal reaches the whole foreground process group, and
/// whether the program stops is for its own handler to decide, not for a
/// helper process that dies under it.
///
/// `sigaction(signal, {SIG_IGN}, &old)`.
///
/// # Errors
///
/// [`Error::Os`] from `sigaction` (`EINVAL` for `SIGKILL` or `SIGSTOP`).
///
/// # References
///  - [Linux]
///
/// [Linux]: https://man7.org/linux/man-pages/man2/sigaction.2.html
pub fn ignore_signal(signal: Signal) -> Result<SignalDisposition> {
    // SAFETY: an all-zero `sigaction` is a valid value of the C struct (no
    // handler, empty mask, no flags).
    let mut ignore: libc::sigaction = unsafe { core::mem::zeroed() };
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are to live, initialized `sigaction`s; setting
    // SIG_IGN installs no code, so nothing can run in a signal context.
    let rc = unsafe { libc::sigaction(signal.as_raw(), &ignore, &mut old) };
    if rc != 0 {
        return Err(Error::Os {
            call: "sigaction",
            errno: Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ),
        });
    }
    Ok(SignalDisposition {
        signal,
        action: old,
    })
}

impl SignalDisposition {
    /// Puts back the handling [`ignore_signal`] replaced.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sigaction`.
    pub fn restore(&self) -> Result<()> {
        // SAFETY: `action` is what the kernel reported for this signal in
        // this process (or in the process this one was forked from, which
        // has the same handlers at the same addresses), so installing it
        // again installs nothing new.
        let rc =
            unsafe { libc::sigaction(self.signal.as_raw(), &self.action, core::ptr::null_mut()) };
        if rc != 0 {
            return Err(Error::Os {
                call: "sigaction",
                errno: Errno::from_raw_os_error(
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                ),
            });
        }
        Ok(())
    }
}

/// Whether the caller is the main thread of its process: the thread whose
/// id is the process id (the one that runs `main`).
///
/// What [`set_parent_death_signal`] in a child means depends on it: the
/// signal comes when the *thread* that created the child exits.
///
/// `gettid()`, compared with [`current_pid`].
///
/// # References
///  - [Linux `gettid`]
///
/// [Linux `gettid`]: https://man7.org/linux/man-pages/man2/gettid.2.html
pub fn is_main_thread() -> bool {
    rustix::thread::gettid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
        == current_pid()
}

/// Asks the kernel to send `signal` to the caller when its parent exits
/// (`None`: not to).
///
/// The "parent" is the *thread* that created the caller: if that thread
/// exits while its process lives on, the signal is sent all the same.
/// Returns whether the parent was still `expected_parent` once the request
/// was in place: if not, the parent died before and no signal will come.
///
/// `prctl(PR_SET_PDEATHSIG, signal)`, then `getppid()`.
///
/// # Errors
///
/// [`Error::Os`] from `prctl`.
///
/// # References
///  - [Linux `prctl`]
///
/// [Linux `prctl`]: https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html
pub fn set_parent_death_signal(signal: Option<Signal>, expected_parent: u32) -> Result<bool> {
    rustix::process::set_parent_process_death_signal(signal).map_err(os("prctl"))?;
    Ok(parent_pid() == expected_parent)
}

/// The process id of the caller's parent (`getppid()`); 0 if it has none in
/// the caller's pid namespace.
pub fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs())
}

/// The creator record for a new shared object: the caller's pid and start
/// time (0 if `/proc` cannot be read).
///
/// The start time is read once per process and cached. Like
/// [`start_time`], this does not allocate.
pub fn origin() -> Origin {
    let pid = current_pid();
    // Acquire pairs with the Release store below: a matching pid comes with
    // its start time. Only one pid is ever stored in a given process (a
    // child starts from a copy and stores its own).
    if START_PID.load(Ordering::Acquire) == pid {
        return Origin {
            pid,
            start_time: START_TIME.load(Ordering::Relaxed),
        };
    }
    match start_time(pid) {
        Ok(start_time) => {
            START_TIME.store(start_time, Ordering::Relaxed);
            // Release pairs with the Acquire load above.
            START_PID.store(pid, Ordering::Release);
            Origin { pid, start_time }
        }
        // Not cached: a later call may find /proc readable.
        Err(_) => Origin { pid, start_time: 0 },
    }
}

/// What [`fork`] returned in each process.
#[derive(Debug)]
pub enum Fork {
    /// In the parent: the new child.
    Parent(Child),
    /// In the child.
    Child,
}

/// Creates a child process, a copy of the caller.
///
/// `fork()` through the C library (so its `pthread_atfork` handlers run).
/// In the child, the cached pid of [`current_pid`] is reset. The parent's
/// [`Child`] opens its pidfd only when it needs one (see [`Child`]).
///
/// # Safety
///
/// The child is a copy of the calling *thread* only. If the parent has
/// other threads, they do not exist in the child, yet any lock they held at
/// the moment of the fork (inside `malloc`, `std::io::stdout`, a
/// `std::sync::Mutex`, the dynamic loader, ...) stays locked there forever.
/// So in a multi-threaded parent the child may only call async-signal-safe
/// functions (see `signal-safety(7)`), such as [`exit_now`], until it execs
/// or exits; in particular it must not allocate, print, take locks or
/// panic. The caller guarantees that either the process is single-threaded
/// or the child keeps to this.
///
/// Whatever the parent, the child should end with [`exit_now`] rather than
/// return from `main` or call `std::process::exit`: those run destructors,
/// `atexit` handlers and buffer flushes that belong to the parent.
///
/// Also, neither process may rely on other code reaping this child: a
/// `waitpid(-1, ...)` elsewhere, or `SIGCHLD` set to `SIG_IGN`, would reap it
/// behind the [`Child`] handle's back ([`Child::wait`] then fails with
/// `ECHILD`).
///
/// # Errors
///
/// [`Error::Os`] from `fork` (`EAGAIN`, `ENOMEM`).
///
/// # References
///  - [Linux `fork`]
///  - [`signal-safety(7)`]
///
/// [Linux `fork`]: https://man7.org/linux/man-pages/man2/fork.2.html
/// [Linux `pidfd_open`]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
/// [`signal-safety(7)`]: https://man7.org/linux/man-pages/man7/signal-safety.7.html
pub unsafe fn fork() -> Result<Fork> {
    // Register the atfork handler now, so that the cache is reset in
    // children of forks made by other code from here on.
    let _ = atfork_registered();
    // SAFETY: the caller upholds the contract above for the child; in the
    // parent `fork` has no preconditions.
    let raw = unsafe { libc::fork() };
    if raw < 0 {
        return Err(os("fork")(
            Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::AGAIN),
        ));
    }
    let Some(pid) = Pid::from_raw(raw) else {
        // Only a thread-local store: async-signal-safe.
        reset_after_fork();
        return Ok(Fork::Child);
    };
    Ok(Fork::Parent(Child::unopened(
        pid.as_raw_pid().unsigned_abs(),
    )))
}

/// Ends the calling process at once with `code`.
///
/// `_exit(code)`: no `atexit` handlers, no destructors, no flushing of
/// Rust's or C's stdio buffers. This is how a forked child should end: those
/// belong to the parent, and running them twice (or in a child of a
/// multi-threaded parent) is wrong. Async-signal-safe.
///
/// # References
///  - [Linux]
///
/// [Linux]: https://man7.org/linux/man-pages/man2/_exit.2.html
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process without
    // running any code of this one.
    unsafe { libc::_exit(code) }
}

/// Maps `len` bytes (rounded up to whole pages) of zeroed, private memory
/// that a `fork` does not copy: a child sees the range zeroed again
/// (`MADV_WIPEONFORK`). The mapping lives as long as the process.
///
/// The point is what the parent saves: `fork` write-protects every private
/// page the two processes then share, and the first write the parent makes
/// to each costs it a page fault and a copy while the child lives. A page
/// the child never gets is not write-protected. Bookkeeping a parent
/// updates right after each `fork` belongs here.
///
/// # Errors
///
/// [`Error::Os`] from `mmap` (`ENOMEM`) or from `madvise` (`EINVAL` on a
/// kernel older than 4.14); the range is unmapped again then.
///
/// # References
///  - [`madvise(2)`]
///
/// [`madvise(2)`]: https://man7.org/linux/man-pages/man2/madvise.2.html
pub fn map_wiped_on_fork(len: usize) -> Result<core::ptr::NonNull<u8>> {
    use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap_anonymous, munmap};
    let len = len.max(1);
    // SAFETY: a fresh anonymous mapping at an address the kernel picks
    // aliases nothing.
    let addr = unsafe {
        mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .map_err(os("mmap"))?;
    // SAFETY: `addr..addr + len` is the mapping just made.
    if let Err(errno) = unsafe { madvise(addr, len, Advice::LinuxWipeOnFork) } {
        // SAFETY: the mapping just made, which nothing refers to yet.
        let _ = unsafe { munmap(addr, len) };
        return Err(os("madvise")(errno));
    }
    // `mmap` never returns null for a mapping at an address it picked.
    core::ptr::NonNull::new(addr.cast()).ok_or(Error::Os {
        call: "mmap",
        errno: Errno::NOMEM,
    })
}

/// Runs `handler` when the process exits through `exit` (returning from
/// `main`, or `std::process::exit`); not after `_exit` ([`exit_now`]) or
/// death by a signal.
///
/// `atexit(handler)`.
///
/// # Errors
///
/// [`Error::Os`] (`ENOMEM`) if the C library has no room for another
/// handler.
///
/// # References
///  - [`atexit(3)`]
///
/// [`atexit(3)`]: https://man7.org/linux/man-pages/man3/atexit.3.html
pub fn at_exit(handler: extern "C" fn()) -> Result<()> {
    // SAFETY: `handler` is a plain function with no arguments, valid for the
    // life of the process; `atexit` only records it.
    match unsafe { libc::atexit(handler) } {
        0 => Ok(()),
        _ => Err(os("atexit")(Errno::NOMEM)),
    }
}

/// Writes all of `bytes` to the standard error stream with as few `write`
/// calls as the kernel allows: one for a record up to `PIPE_BUF` (4096)
/// bytes on a pipe, which no other writer can split; one in practice on a
/// terminal or a file opened for appending.
///
/// Errors are ignored: there is nowhere left to report them.
pub fn write_stderr(mut bytes: &[u8]) {
    let stderr = rustix::stdio::stderr();
    while !bytes.is_empty() {
        match rustix::io::write(stderr, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Whether a process with id `pid` exists (a zombie counts).
///
/// `kill(pid, 0)`: `ESRCH` means no; success or `EPERM` (exists, not ours
/// to signal) mean yes. A pid reused by another process counts as yes.
///
/// # References
///  - [Linux `kill`]
///
/// [Linux `kill`]: https://man7.org/linux/man-pages/man2/kill.2.html
pub fn exists(pid: u32) -> bool {
    match Pid::from_raw(pid as i32) {
        Some(pid) => !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH)),
        None => false,
    }
}

/// What identifies the program file this process runs: the device, inode,
/// size and modification time of `/proc/self/exe`.
///
/// Two processes with the same identity run the same build, so a code
/// address in one is the same offset from a known symbol in the other.
///
/// `stat("/proc/self/exe")`.
///
/// # Errors
///
/// [`Error::Os`] from `stat`.
///
/// # References
///  - [Linux `proc_pid_exe(5)`]
///
/// [Linux `proc_pid_exe(5)`]: https://man7.org/linux/man-pages/man5/proc_pid_exe.5.html
pub fn exe_identity() -> Result<[u64; 4]> {
    let stat = rustix::fs::stat("/proc/self/exe").map_err(os("stat /proc/self/exe"))?;
    Ok([
        stat.st_dev,
        stat.st_ino,
        stat.st_size as u64,
        (stat.st_mtime as u64) << 32 ^ stat.st_mtime_nsec as u64,
    ])
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited (returned from `main`, called `exit` or `_exit`) with this
    /// code (`0..=255`).
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        *self == Self::Exited(0)
    }

    /// Python's `exitcode`: the exit code, or minus the signal number.
    pub fn code(&self) -> i32 {
        match *self {
            Self::Exited(code) => code,
            Self::Signaled { signal, .. } => -signal,
        }
    }

    fn from_waitid(status: &WaitIdStatus) -> Option<Self> {
        if let Some(code) = status.exit_status() {
            return Some(Self::Exited(code));
        }
        status.terminating_signal().map(|signal| Self::Signaled {
            signal,
            core_dumped: status.dumped(),
        })
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exited with code {code}"),
            Self::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by signal {signal}")?;
                if let Some(name) = signal_name(signal) {
                    write!(f, " ({name})")?;
                }
                if core_dumped {
                    f.write_str(", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// The name of a standard Linux (x86_64) signal.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// A child process, held through its pid while it is unreaped (an unreaped
/// child keeps its pid, so nothing else can have it) and through a pidfd
/// for what needs a file descriptor: a timed wait, a signal. A child made
/// by [`fork`] opens its pidfd on first such need: a plain [`wait`]
/// (blocking `waitid` on the pid) needs none, and `pidfd_open` costs a
/// start-and-join loop about as much as the rest of mproc's work.
///
/// [`wait`]: Child::wait
///
/// Dropping a `Child` neither waits for nor kills the process: that policy
/// belongs to the owner of the handle. It does reap a child that has
/// already exited, so no zombie stays behind; a child that exits later is
/// reaped by whoever waits for it, or by `init` once this process is gone.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    /// Opened on first need (see [`Child::pidfd`]).
    pidfd: std::sync::OnceLock<OwnedFd>,
    /// Set once the child has been reaped.
    status: Option<ExitStatus>,
}

impl Child {
    /// Takes hold of child `pid`, which the caller created by other means
    /// (say `std::process::Command`) and has not reaped.
    ///
    /// `pidfd_open(pid, 0)`. The pid cannot have been reused: an unreaped
    /// child keeps it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `pidfd_open`.
    ///
    /// # References
    ///  - [Linux `pidfd_open`]
    ///
    /// [Linux `pidfd_open`]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
    pub fn adopt(pid: u32) -> Result<Child> {
        let raw = Pid::from_raw(pid as i32).ok_or(Error::Os {
            call: "pidfd_open",
            errno: Errno::SRCH,
        })?;
        let pidfd =
            rustix::process::pidfd_open(raw, PidfdFlags::empty()).map_err(os("pidfd_open"))?;
        let child = Child::unopened(pid);
        let _ = child.pidfd.set(pidfd);
        Ok(child)
    }

    /// Child `pid`, unreaped, whose pidfd is not open yet.
    fn unopened(pid: u32) -> Child {
        Child {
            pid,
            pidfd: std::sync::OnceLock::new(),
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's pidfd: readable (`POLLIN`) once it has exited. Opened on
    /// the first call (`pidfd_open(pid, 0)`).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `pidfd_open` (`EMFILE`, `ENOSYS` before Linux
    /// 5.3), or `ESRCH` for a child already reaped through this handle.
    pub fn pidfd(&self) -> Result<BorrowedFd<'_>> {
        if let Some(pidfd) = self.pidfd.get() {
            return Ok(pidfd.as_fd());
        }
        let unreaped = Pid::from_raw(self.pid as i32).filter(|_| self.status.is_none());
        let pid = unreaped.ok_or(Error::Os {
            call: "pidfd_open",
            errno: Errno::SRCH,
        })?;
        let pidfd =
            rustix::process::pidfd_open(pid, PidfdFlags::empty()).map_err(os("pidfd_open"))?;
        Ok(self.pidfd.get_or_init(|| pidfd).as_fd())
    }

    /// Reaps the child if it has exited, without blocking.
    ///
    /// `Some(status)` once it has; after that, every call returns the same
    /// status without a system call.
    ///
    /// `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `waitid` (`ECHILD` if somebody else reaped it).
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man2/waitid.2.html
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.reap(WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    }

    /// Blocks until the child exits, and reaps it.
    ///
    /// `waitid(P_PIDFD, pidfd, WEXITED)`, retried on `EINTR`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `waitid` (`ECHILD` if somebody else reaped it).
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man2/waitid.2.html
    pub fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.reap(WaitIdOptions::EXITED)? {
                return Ok(status);
            }
        }
    }

    /// Waits until the child exits or `timeout` passes; reaps it if it
    /// exited. `Ok(None)` on timeout.
    ///
    /// `poll` on the pidfd for `POLLIN` (retried on `EINTR` with the time
    /// left), then `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)`. A timeout too
    /// large to represent waits forever.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `poll` or `waitid`.
    ///
    /// # References
    ///  - [Linux `poll`]
    ///  - [Linux `waitid`]
    ///  - [Linux `pidfd_open`] (what polling a pidfd reports)
    ///
    /// [Linux `poll`]: https://man7.org/linux/man-pages/man2/poll.2.html
    /// [Linux `waitid`]: https://man7.org/linux/man-pages/man2/waitid.2.html
    /// [Linux `pidfd_open`]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let Some(deadline) = Deadline::after(timeout) else {
            return self.wait().map(Some);
        };
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.remaining();
            if left.is_zero() {
                return Ok(None);
            }
            let left = rustix::time::Timespec::try_from(left).map_err(|_| Error::Os {
                call: "poll",
                errno: Errno::INVAL,
            })?;
            let pidfd = self.pidfd()?;
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&left)) {
                // Ready, or out of time: the next round looks.
                Ok(_) | Err(Errno::INTR) => {}
                Err(errno) => return Err(os("poll")(errno)),
            }
        }
    }

    /// Waits until the child exits or `deadline` passes (`None`: forever),
    /// appending what it writes to `output` meanwhile; reaps it if it
    /// exited. `Ok(None)` when the deadline passed first.
    ///
    /// For its first millisecond the wait sleeps on the child's exit alone
    /// (a result that fits in the pipe is read after the exit, with one
    /// wake-up in all); after that the pipe is drained while the child
    /// runs, so a child writing more than a pipe holds never blocks on it
    /// for long. Completion is decided by the child's exit, not by end of
    /// file on the pipe (another process forked while the write end was
    /// open may hold a copy of it).
    ///
    /// `poll` on the pidfd and the pipe, `read`, then `waitid`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `poll`, `read` or `waitid`.
    ///
    /// # References
    ///  - [Linux `poll`]
    ///
    /// [Linux `poll`]: https://man7.org/linux/man-pages/man2/poll.2.html
    pub fn wait_collecting<B: crate::pipe::ReadBuffer + ?Sized>(
        &mut self,
        pipe: &crate::pipe::PipeReader,
        output: &mut B,
        deadline: Option<Deadline>,
    ) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            pipe.read_available(output)?;
            return Ok(Some(status));
        }
        // First sleep on the pidfd alone, for at most QUIET: a short-lived
        // child writes its result into the pipe and exits, and waking up
        // for the write as well would cost a second wake-up (and often a
        // migration) on every spawn. A child whose result does not fit in
        // the pipe blocks until we drain it, so after QUIET we drain and
        // from then on wake up for the pipe too.
        const QUIET: Duration = Duration::from_millis(1);
        let quiet_until = Deadline::after(QUIET);
        let mut pipe_open = true;
        let mut draining = false;
        loop {
            let mut until = deadline;
            if !draining {
                until = match (until, quiet_until) {
                    (Some(a), Some(b)) => Some(if a.remaining() < b.remaining() { a } else { b }),
                    (a, b) => a.or(b),
                };
            }
            let left = match until {
                None => None,
                Some(until) => Some(rustix::time::Timespec::try_from(until.remaining()).map_err(
                    |_| Error::Os {
                        call: "poll",
                        errno: Errno::INVAL,
                    },
                )?),
            };
            let pidfd = self.pidfd()?;
            let mut both = [
                PollFd::new(&pidfd, PollFlags::IN),
                PollFd::new(pipe, PollFlags::IN),
            ];
            let count = if pipe_open && draining { 2 } else { 1 };
            match rustix::event::poll(&mut both[..count], left.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(errno) => return Err(os("poll")(errno)),
            }
            let exited = !both[0].revents().is_empty();
            if exited && let Some(status) = self.try_wait()? {
                // It has exited: whatever it wrote is in the pipe now.
                pipe.read_available(output)?;
                return Ok(Some(status));
            }
            if !draining && quiet_until.is_none_or(Deadline::has_passed) {
                draining = true;
            }
            if pipe_open && draining && pipe.read_available(output)? == crate::pipe::Drained::Closed
            {
                pipe_open = false;
            }
            if deadline.is_some_and(Deadline::has_passed) {
                return Ok(None);
            }
        }
    }

    /// Sends `signal` to the child.
    ///
    /// A child that has already exited is not an error: sending to one that
    /// was reaped through this handle is a no-op, and `ESRCH` (exited, not
    /// reaped yet) is ignored.
    ///
    /// `pidfd_send_signal(pidfd, signal, NULL, 0)`; `kill(pid, signal)` if
    /// no pidfd can be opened (the unreaped child still holds its pid).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `pidfd_send_signal` (`EPERM`, ...).
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let sent = match self.pidfd() {
            Ok(pidfd) => rustix::process::pidfd_send_signal(pidfd, signal),
            // Gone already (reaped behind this handle's back).
            Err(Error::Os {
                errno: Errno::SRCH, ..
            }) => return Ok(()),
            // No pidfd to be had (out of descriptors): the pid itself, which
            // the unreaped child still holds.
            Err(_) => match Pid::from_raw(self.pid as i32) {
                Some(pid) => rustix::process::kill_process(pid, signal),
                None => Err(Errno::SRCH),
            },
        };
        match sent {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(errno) => Err(os("pidfd_send_signal")(errno)),
        }
    }

    /// Sends `SIGKILL` (see [`signal`](Child::signal)).
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL)
    }

    /// Sends `SIGTERM` (see [`signal`](Child::signal)).
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::TERM)
    }

    /// `waitid(P_PIDFD, pidfd, options)` (or `P_PID` while no pidfd is
    /// open), retried on `EINTR`; stores the status once the child is
    /// reaped.
    fn reap(&mut self, options: WaitIdOptions) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let found = loop {
            let id = match (self.pidfd.get(), Pid::from_raw(self.pid as i32)) {
                (Some(pidfd), _) => WaitId::PidFd(pidfd.as_fd()),
                (None, Some(pid)) => WaitId::Pid(pid),
                (None, None) => {
                    return Err(Error::Os {
                        call: "waitid",
                        errno: Errno::CHILD,
                    });
                }
            };
            match rustix::process::waitid(id, options) {
                Err(Errno::INTR) => continue,
                other => break other.map_err(os("waitid"))?,
            }
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let status = ExitStatus::from_waitid(&found);
        // With WEXITED alone the kernel reports only exits and deaths by
        // signal, both of which `from_waitid` maps.
        debug_assert!(status.is_some(), "waitid reported {found:?}");
        self.status = status;
        Ok(status)
    }
}

impl Drop for Child {
    /// Reaps the child if it has already exited (one non-blocking `waitid`);
    /// never blocks and never signals it.
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.try_wait();
        }
    }
}

/// Takes the caller's standard input away: returns it as a new
/// close-on-exec descriptor and puts `/dev/null` in its place (fd 0).
///
/// How a re-executed child picks up the channel its parent handed it as
/// stdin, leaving a harmless stdin to the code it runs.
///
/// `fcntl(0, F_DUPFD_CLOEXEC, 3)`, `open("/dev/null")`, `dup2(null, 0)`.
///
/// # Errors
///
/// [`Error::Os`] from any of those calls.
///
/// # References
///  - [Linux `fcntl`]
///  - [Linux `dup2`]
///
/// [Linux `fcntl`]: https://man7.org/linux/man-pages/man2/fcntl.2.html
/// [Linux `dup2`]: https://man7.org/linux/man-pages/man2/dup.2.html
pub fn take_stdin() -> Result<OwnedFd> {
    let stdin = rustix::stdio::stdin();
    let taken = rustix::io::fcntl_dupfd_cloexec(stdin, 3).map_err(os("fcntl"))?;
    let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(os("open /dev/null"))?;
    // SAFETY: fd 0 is this process's stdin, which we replace on purpose;
    // every user of it reads `/dev/null` from now on.
    let mut zero = unsafe { rustix::stdio::take_stdin() };
    let replaced = rustix::io::dup2(&null, &mut zero).map_err(os("dup2"));
    // fd 0 stays open: it is stdin again, now `/dev/null`.
    core::mem::forget(zero);
    replaced?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::parse_start_time;

    #[test]
    fn start_time_after_last_paren() {
        let mut buf = [0u8; 32];
        let path = super::proc_stat_path(4_294_967_295, &mut buf).unwrap();
        assert_eq!(path.to_bytes(), b"/proc/4294967295/stat");
        let mut buf = [0u8; 32];
        let path = super::proc_stat_path(0, &mut buf).unwrap();
        assert_eq!(path.to_bytes(), b"/proc/0/stat");
        let line = b"1234 (we ird) (name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time(b"1 (x) S 1 2"), None);
        assert_eq!(parse_start_time(b"no paren"), None);
    }
}
