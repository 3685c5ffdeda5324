//! The wait/wake hook: the only way anything in mproc-core blocks.
//!
//! Core knows nothing about an operating system. When an algorithm has to
//! wait for another party it spins a little through [`Wait::relax`], then
//! sleeps on one 32-bit word through [`Wait::wait`], and whoever changes that
//! word calls [`Wait::wake`]. `mproc-os` implements the trait with the Linux
//! futex syscall on *shared* (not private) futexes, so sleepers and wakers may
//! live in different processes; the loom models implement it with a mutex and
//! a condition variable (see `ModelWait`, compiled under `--cfg loom`).

use core::fmt;

use crate::sync::AtomicU32;

/// The deadline of a blocking call passed before it could complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operation timed out")
    }
}

impl core::error::Error for TimedOut {}

/// Blocking and back-off, supplied by the platform.
///
/// The contract is the one of `FUTEX_WAIT` / `FUTEX_WAKE`:
///
/// * [`wait`](Wait::wait) atomically checks that `word` still holds
///   `expected` and, if so, sleeps until a [`wake`](Wait::wake) on the same
///   word, until `deadline`, or spuriously. The check and the sleep must be
///   atomic with respect to `wake`: a `wake` issued after the word changed
///   either finds the sleeper or the sleeper sees the new value.
/// * Callers always re-check their condition after `wait` returns, so a
///   spurious return is harmless; the only hard requirement is "no lost
///   wake-up".
pub trait Wait {
    /// An absolute point in time after which a blocking call gives up.
    type Deadline: Copy;

    /// Sleeps while `*word == expected`, until woken or until `deadline`.
    ///
    /// Returns `Err(TimedOut)` when the deadline passed without a wake-up
    /// (an implementation may return it for a past deadline without looking
    /// at the word, so callers take a last look at their condition after a
    /// timeout); `Ok(())` after a wake-up, a changed word, or a spurious
    /// return.
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Self::Deadline>,
    ) -> Result<(), TimedOut>;

    /// Wakes up to `count` sleepers on `word` (`u32::MAX` wakes all).
    fn wake(&self, word: &AtomicU32, count: u32);

    /// Whether `deadline` has passed.
    fn expired(&self, deadline: Self::Deadline) -> bool;

    /// How many [`relax`](Wait::relax) rounds a blocking call spends retrying
    /// before it registers as a sleeper and calls [`wait`](Wait::wait).
    fn spin_rounds(&self) -> u32;

    /// Backs off for one round of a retry loop; `round` counts up from 0.
    ///
    /// Small rounds should only hint the CPU; larger ones should give the CPU
    /// away (yield, then short sleeps), because the party being waited for
    /// may be a process that is not running.
    fn relax(&self, round: u32);

    /// The deadline of one sleep of a party that waits for an owner which
    /// might have died: `deadline`, or sooner, so that the waiter wakes up
    /// now and then to check the owner with [`owner_gone`](Wait::owner_gone).
    /// The flag says whether the returned deadline is a check sooner than
    /// `deadline` (so a sleep that times out is not the caller's time
    /// running out).
    ///
    /// The default never checks: it returns `(deadline, false)`. mproc-os
    /// returns at most [`LIVENESS_CHECK_MS`] milliseconds from now.
    fn check_deadline(&self, deadline: Option<Self::Deadline>) -> (Option<Self::Deadline>, bool) {
        (deadline, false)
    }

    /// Whether the owner `id` is certainly gone (it died, or exited).
    ///
    /// `start` is its start stamp (see [`OwnerId`]) when the owner recorded
    /// one, `None` when it is not known (the owner died, or is about to
    /// record it, in the few instructions between claiming and recording).
    /// An implementation answers `true` only when it is sure: a process
    /// with that id does not exist (or is a zombie), or exists with another
    /// start stamp (the id was reused).
    ///
    /// The default cannot tell, and answers `false`.
    fn owner_gone(&self, id: u32, start: Option<u32>) -> bool {
        let _ = (id, start);
        false
    }

    /// Milliseconds on a clock that every process on the machine shares
    /// (wrapping), for waits whose length adds up across calls and
    /// processes in shared memory; `None` when there is no such clock (the
    /// default), and then such waits count the caller's liveness checks
    /// instead. mproc-os reads `CLOCK_MONOTONIC`.
    fn now_ms(&self) -> Option<u32> {
        None
    }
}

/// How often (in milliseconds) a party waiting on a lock or a slot whose
/// owner may have died checks that owner's liveness, in mproc-os: an owner
/// killed while it holds a lock is detected by a waiter within this time
/// (plus the cost of the check, a read of `/proc/<pid>/stat`).
pub const LIVENESS_CHECK_MS: u32 = 10;

/// Whether a read from a ring would find something, as seen by a party that
/// watches rings without reading from them: one that waits for the first of
/// several rings to become readable (mproc-os's `wait`), then reads from it.
///
/// Returned by [`FrameRing::watch_read`](crate::frames::FrameRing::watch_read)
/// and [`Mpmc::watch_pop`](crate::mpmc::Mpmc::watch_pop). A watcher loops:
///
/// * [`Ready`](Readiness::Ready): stop watching, read;
/// * [`Sleep`](Readiness::Sleep): the watcher is registered; sleep (with
///   [`Wait::wait`], or on several words at once) while `*word == expected`,
///   then watch again. Whoever makes the ring readable afterwards changes
///   `word` and wakes **every** sleeper on it, so no wake-up is lost however
///   many watchers and readers sleep there;
/// * [`Busy`](Readiness::Busy): another party is in the middle of an
///   operation whose end makes no wake-up; back off
///   ([`Wait::relax`]) and watch again.
///
/// A watcher that stops watching leaves its registration behind; it costs the
/// next party that makes the ring readable one wake-up call with nobody to
/// wake.
///
/// # Examples
///
/// ```
/// use mproc_core::{Origin, OwnerId, Readiness, Spin, TypeFingerprint, frames::FrameRing};
///
/// let layout = FrameRing::layout(16).unwrap();
/// // SAFETY: the layout is not zero-sized.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
/// let base = std::ptr::NonNull::new(mem).unwrap();
/// let fingerprint = TypeFingerprint::of::<Vec<u8>>();
/// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
/// // layout asks, that outlive the ring and are used by nothing else.
/// let ring =
///     unsafe { FrameRing::create(base, layout.size(), 16, 4, fingerprint, Origin::default()) }
///         .unwrap();
/// assert!(matches!(ring.watch_read(), Readiness::Sleep { .. }));
/// let me = OwnerId::new(1).unwrap();
/// let mut writer = ring.begin_write(&Spin, me, 1, None).unwrap();
/// writer.write(&[7], None).unwrap();
/// writer.finish().unwrap();
/// assert!(matches!(ring.watch_read(), Readiness::Ready));
/// // SAFETY: allocated above with this layout; the ring is not used any more.
/// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
/// ```
#[derive(Clone, Copy, Debug)]
pub enum Readiness<'a> {
    /// A read would find something now (a value, a frame, or the end of a
    /// closed ring), as far as this snapshot can tell: another reader may
    /// take it first.
    Ready,
    /// Nothing to read; the watcher is registered: sleep while `word`
    /// holds `expected`.
    Sleep {
        /// The word to sleep on.
        word: &'a AtomicU32,
        /// Its value when the watcher registered.
        expected: u32,
    },
    /// Nothing to read yet, but a party is in the middle of an operation
    /// that will change that without waking anybody: back off and look
    /// again.
    Busy,
}

/// A deadline that cannot exist: [`Spin`] has no clock, so its blocking calls
/// can only be given no deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDeadline {}

/// A [`Wait`] that never sleeps: `wait` returns at once and callers retry.
///
/// For targets without an OS, and for examples. It busy-waits, so it should
/// only be used where the party waited for runs on another CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spin;

impl Wait for Spin {
    type Deadline = NoDeadline;

    #[inline]
    fn wait(&self, _: &AtomicU32, _: u32, deadline: Option<NoDeadline>) -> Result<(), TimedOut> {
        if let Some(never) = deadline {
            match never {}
        }
        crate::sync::spin_hint();
        Ok(())
    }

    #[inline]
    fn wake(&self, _: &AtomicU32, _: u32) {}

    fn expired(&self, deadline: NoDeadline) -> bool {
        match deadline {}
    }

    fn spin_rounds(&self) -> u32 {
        0
    }

    #[inline]
    fn relax(&self, _: u32) {
        crate::sync::spin_hint();
    }
}

/// The id a process (or thread) records in a lock it holds or a slot it
/// claims: a value in `1..=OwnerId::MAX`, and beside it a *start stamp*
/// that tells this owner from a later one with the same id.
///
/// mproc-os uses the process id and the low 32 bits of the process's start
/// time (clock ticks since boot): a process that reuses a dead owner's pid
/// starts later, so its stamp differs, and a waiter that checks liveness
/// ([`Wait::owner_gone`]) does not mistake it for the dead owner. A stamp of
/// 0 means "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnerId {
    id: core::num::NonZeroU32,
    start: u32,
}

impl OwnerId {
    /// The largest id: owner ids take the low 30 bits of a mutex word
    /// (Linux pids are below 2^22).
    pub const MAX: u32 = (1 << 30) - 1;

    /// `id` with an unknown start stamp, if `id` is in `1..=OwnerId::MAX`.
    pub const fn new(id: u32) -> Option<Self> {
        Self::with_start(id, 0)
    }

    /// `id` with the start stamp `start` (0: unknown), if `id` is in
    /// `1..=OwnerId::MAX`.
    pub const fn with_start(id: u32, start: u32) -> Option<Self> {
        if id > Self::MAX {
            return None;
        }
        match core::num::NonZeroU32::new(id) {
            Some(id) => Some(Self { id, start }),
            None => None,
        }
    }

    /// The id as a number.
    #[inline]
    pub const fn get(self) -> u32 {
        self.id.get()
    }

    /// The start stamp (0: unknown).
    #[inline]
    pub const fn start(self) -> u32 {
        self.start
    }

    /// The id and stamp packed in one `u64` (id in the high half), as locks
    /// and slots record them; never 0.
    #[inline]
    pub const fn pack(self) -> u64 {
        ((self.id.get() as u64) << 32) | self.start as u64
    }

    /// The inverse of [`pack`](Self::pack); `None` for 0 or an id out of
    /// range.
    #[inline]
    pub const fn unpack(packed: u64) -> Option<Self> {
        Self::with_start((packed >> 32) as u32, packed as u32)
    }
}
