//! The [`Wait`] hook of mproc-core on Linux futexes, shared between
//! processes.
//!
//! [`Futex`] sleeps with `FUTEX_WAIT_BITSET` and wakes with `FUTEX_WAKE`,
//! both **without** `FUTEX_PRIVATE_FLAG`: the words live in memory mapped by
//! several processes, and a private futex is keyed by the address in one
//! process's address space, so a waker in another process would never find
//! the sleeper. A shared futex is keyed by the page it lives on (for
//! `MAP_SHARED` memory: the file or shmem object and the offset), so every
//! process that maps the word meets the others on it.
//!
//! Deadlines are absolute [`CLOCK_MONOTONIC`] times ([`Deadline`]), so a
//! sleep interrupted by a signal or a spurious wake-up resumes against the
//! same deadline and a deadline survives being passed around, and a change
//! of the wall clock does not move it.
//!
//! # Back-off
//!
//! Before a blocking call sleeps it retries for [`Futex::spin_rounds`]
//! rounds, calling [`Futex::relax`] between tries. The schedule:
//!
//! | rounds | relax does | why |
//! |---|---|---|
//! | `0..SPIN_ROUNDS` | `1 << min(round, 6)` spin hints | a hand-off between two running cores costs ~30 ns, a futex wake-up ~25 µs: a few µs of spinning pays for itself |
//! | `SPIN_ROUNDS..SPIN_ROUNDS + YIELD_ROUNDS` | `sched_yield` | the other party may share our CPU |
//! | later | `nanosleep` of `2^(round - SPIN_ROUNDS - YIELD_ROUNDS)` µs, at most 1 ms | on an oversubscribed machine a descheduled party must get the CPU |
//!
//! Blocking calls stop after [`SPIN_ROUNDS`]` + `[`YIELD_ROUNDS`] rounds
//! (spinning, then yielding) and sleep on the futex; loops that cannot sleep
//! (waiting for a slot a peer is writing) keep calling `relax` and reach the
//! sleeps. The yields matter when parties outnumber cores: a yield hands
//! the CPU to the party we wait for in about a microsecond, a futex sleep
//! and wake-up costs tens of microseconds on both sides.
//!
//! [`Wait`]: mproc_core::Wait
//! [`CLOCK_MONOTONIC`]: https://man7.org/linux/man-pages/man2/clock_gettime.2.html

use core::num::NonZeroU32;
use std::time::Duration;

use mproc_core::sync::AtomicU32;
use mproc_core::{TimedOut, Wait};
use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};

/// Rounds of [`Futex::relax`] that busy-spin. Round `r` spins
/// `1 << min(r, MAX_SPIN_SHIFT)` times, so the first rounds cost tens of
/// nanoseconds (a cross-core hand-off is ~30 ns) and the whole spin phase
/// (511 spin hints) a few microseconds, well under the ~25 µs a futex
/// wake-up costs.
pub const SPIN_ROUNDS: u32 = 12;

/// Rounds of [`Futex::relax`], after the spinning ones, that call
/// `sched_yield`: the party waited for may be runnable on our own CPU.
pub const YIELD_ROUNDS: u32 = 8;

/// The largest shift of the spin count: a spin round never exceeds 64 hints.
const MAX_SPIN_SHIFT: u32 = 6;

/// The longest sleep of one [`Futex::relax`] round, in microseconds: long
/// enough to hand the CPU to a descheduled party on an oversubscribed
/// machine, short enough not to add noticeable latency once it is done.
const MAX_SLEEP_MICROS: u64 = 1_000;

/// `FUTEX_BITSET_MATCH_ANY`: a bitset that matches every waker.
const BITSET_MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

/// An absolute `CLOCK_MONOTONIC` time: the point after which a blocking
/// call gives up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::futex::Deadline;
///
/// let deadline = Deadline::after(Duration::from_secs(5)).unwrap();
/// assert!(!deadline.has_passed());
/// assert!(deadline.remaining() <= Duration::from_secs(5));
/// assert!(Deadline::after(Duration::MAX).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Timespec);

impl Deadline {
    /// The current time.
    ///
    /// `clock_gettime(CLOCK_MONOTONIC)`, served by the vDSO without a system
    /// call.
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man2/clock_gettime.2.html
    #[inline]
    pub fn now() -> Deadline {
        Deadline(rustix::time::clock_gettime(ClockId::Monotonic))
    }

    /// `timeout` from now, or `None` if that time cannot be represented
    /// (for example `Duration::MAX`): callers treat `None` as "no deadline".
    pub fn after(timeout: Duration) -> Option<Deadline> {
        let timeout = Timespec::try_from(timeout).ok()?;
        Self::now().0.checked_add(timeout).map(Deadline)
    }

    /// Whether this time has come.
    #[inline]
    pub fn has_passed(self) -> bool {
        Self::now() >= self
    }

    /// The time left until this deadline; zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0
            .checked_sub(Self::now().0)
            .and_then(|left| Duration::try_from(left).ok())
            .unwrap_or(Duration::ZERO)
    }

    /// The deadline as a `timespec` on `CLOCK_MONOTONIC`, for system calls
    /// that take an absolute time.
    #[inline]
    pub fn as_timespec(self) -> Timespec {
        self.0
    }
}

/// The [`Wait`] hook on shared (not private) Linux futexes.
///
/// Sleepers and wakers may be in different processes, as long as the word
/// lies in memory they all map (for example a [`Region`]).
///
/// [`Region`]: crate::shm::Region
#[derive(Clone, Copy, Debug, Default)]
pub struct Futex;

impl Wait for Futex {
    type Deadline = Deadline;

    /// Sleeps while `*word == expected`, until a wake-up, a signal or
    /// `deadline`.
    ///
    /// `futex(word, FUTEX_WAIT_BITSET, expected, deadline, NULL,
    /// FUTEX_BITSET_MATCH_ANY)` with an absolute `CLOCK_MONOTONIC` deadline.
    /// A deadline that has already passed returns `Err(TimedOut)` without a
    /// system call. `EAGAIN` (the word changed) and `EINTR` return `Ok`:
    /// callers re-check their condition after every return.
    ///
    /// # References
    ///  - [Linux `futex` system call]
    ///  - [Linux `futex` feature]
    ///
    /// [Linux `futex` system call]: https://man7.org/linux/man-pages/man2/futex.2.html
    /// [Linux `futex` feature]: https://man7.org/linux/man-pages/man7/futex.7.html
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Deadline>,
    ) -> Result<(), TimedOut> {
        if deadline.is_some_and(Deadline::has_passed) {
            return Err(TimedOut);
        }
        let timeout = deadline.map(Deadline::as_timespec);
        match futex::wait_bitset(
            word.as_core(),
            futex::Flags::empty(),
            expected,
            timeout.as_ref(),
            BITSET_MATCH_ANY,
        ) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(()),
            Err(Errno::TIMEDOUT) => Err(TimedOut),
            Err(errno) => {
                // Nothing else is expected from a valid word and deadline;
                // returning is always allowed, since callers re-check.
                debug_assert!(false, "FUTEX_WAIT_BITSET failed: {errno:?}");
                Ok(())
            }
        }
    }

    /// Wakes up to `count` sleepers on `word` (`u32::MAX`: all of them).
    ///
    /// `futex(word, FUTEX_WAKE, count)`; `count` is clamped to `i32::MAX`
    /// because the kernel reads it as an `int`.
    ///
    /// # References
    ///  - [Linux `futex` system call]
    ///
    /// [Linux `futex` system call]: https://man7.org/linux/man-pages/man2/futex.2.html
    #[inline]
    fn wake(&self, word: &AtomicU32, count: u32) {
        let count = count.min(i32::MAX as u32);
        let woken = futex::wake(word.as_core(), futex::Flags::empty(), count);
        // FUTEX_WAKE only fails for a word the process cannot access, which
        // a `&AtomicU32` rules out.
        debug_assert!(woken.is_ok(), "FUTEX_WAKE failed: {woken:?}");
    }

    #[inline]
    fn expired(&self, deadline: Deadline) -> bool {
        deadline.has_passed()
    }

    /// `deadline`, or [`LIVENESS_CHECK_MS`] milliseconds from now if that is
    /// sooner: a party waiting for an owner that may have died wakes up that
    /// often to check it.
    ///
    /// [`LIVENESS_CHECK_MS`]: mproc_core::wait::LIVENESS_CHECK_MS
    #[inline]
    fn check_deadline(&self, deadline: Option<Deadline>) -> (Option<Deadline>, bool) {
        let check = Deadline::after(Duration::from_millis(u64::from(
            mproc_core::wait::LIVENESS_CHECK_MS,
        )));
        match (deadline, check) {
            (Some(deadline), Some(check)) if check < deadline => (Some(check), true),
            (None, Some(check)) => (Some(check), true),
            (deadline, _) => (deadline, false),
        }
    }

    /// [`owner_gone`](crate::process::owner_gone): no such process, a
    /// zombie, or another start time.
    fn owner_gone(&self, id: u32, start: Option<u32>) -> bool {
        crate::process::owner_gone(id, start)
    }

    /// Milliseconds of `CLOCK_MONOTONIC`, which every process on the
    /// machine shares (the vDSO serves it without a system call).
    fn now_ms(&self) -> Option<u32> {
        let now = rustix::time::clock_gettime(ClockId::Monotonic);
        Some((now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000) as u32)
    }

    /// [`SPIN_ROUNDS`]` + `[`YIELD_ROUNDS`]: blocking calls spin, yield, then
    /// sleep.
    #[inline]
    fn spin_rounds(&self) -> u32 {
        SPIN_ROUNDS + YIELD_ROUNDS
    }

    /// Spins, yields or sleeps according to the schedule in the
    /// [module documentation](self).
    ///
    /// `sched_yield()` and `nanosleep()`.
    ///
    /// # References
    ///  - [Linux `sched_yield`]
    ///  - [Linux `nanosleep`]
    ///
    /// [Linux `sched_yield`]: https://man7.org/linux/man-pages/man2/sched_yield.2.html
    /// [Linux `nanosleep`]: https://man7.org/linux/man-pages/man2/nanosleep.2.html
    #[inline]
    fn relax(&self, round: u32) {
        if round < SPIN_ROUNDS {
            for _ in 0..1u32 << round.min(MAX_SPIN_SHIFT) {
                core::hint::spin_loop();
            }
        } else {
            relax_slow(round);
        }
    }
}

/// The yielding and sleeping rounds of [`Futex::relax`].
#[cold]
fn relax_slow(round: u32) {
    if round < SPIN_ROUNDS + YIELD_ROUNDS {
        rustix::thread::sched_yield();
        return;
    }
    let exponent = round - SPIN_ROUNDS - YIELD_ROUNDS;
    let micros = 1u64
        .checked_shl(exponent)
        .map_or(MAX_SLEEP_MICROS, |micros| micros.min(MAX_SLEEP_MICROS));
    let request = Timespec {
        tv_sec: 0,
        // At most 1 ms, so always below one second.
        tv_nsec: (micros * 1_000) as rustix::time::Nsecs,
    };
    // An early return (EINTR) only shortens one back-off round.
    let _ = rustix::thread::nanosleep(&request);
}
