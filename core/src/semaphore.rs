//! A counting semaphore on one 32-bit word.
//!
//! # State word
//!
//! | bits  | meaning                                                       |
//! |-------|---------------------------------------------------------------|
//! | 0..31 | permits available ([`RawSemaphore::MAX`] at most)             |
//! | 31    | `WAITERS`: somebody may sleep on the word                     |
//!
//! `acquire` takes a permit with one CAS. With none left it spins for
//! [`Wait::spin_rounds`], then sets `WAITERS` and sleeps while the word shows
//! no permit. `release(n)` adds `n` permits and clears `WAITERS` in one CAS,
//! and wakes `n` sleepers if it was set. As with the mutex, an acquirer that
//! has slept takes its permit with `WAITERS` set (others may still sleep),
//! and one that gives up on its deadline has set `WAITERS` before its last
//! sleep.
//!
//! Unlike a mutex's, permits pile up: between a release that cleared
//! `WAITERS` (waking one sleeper) and that sleeper taking its permit, more
//! releases see no `WAITERS` and wake nobody, while others still sleep. So
//! an acquirer that has slept and leaves permits behind wakes one more
//! sleeper (it passes the baton), and no sleeper is stranded while permits
//! are available. The loom model `two_sleepers_two_releases` finds the lost
//! wake-up without this rule.

use core::fmt;
use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::{TimedOut, Wait};

const COUNT_MASK: u32 = (1 << 31) - 1;
const WAITERS: u32 = 1 << 31;

/// `release` would raise the count above [`RawSemaphore::MAX`] (or above the
/// bound of a bounded semaphore); nothing was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// Permits available when the release was refused.
    pub available: u32,
    /// Permits the release tried to add.
    pub adding: u32,
    /// The most permits allowed.
    pub max: u32,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "releasing {} permits onto {} would exceed the maximum of {}",
            self.adding, self.available, self.max
        )
    }
}

impl core::error::Error for Overflow {}

/// A counting semaphore that can live in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::{Spin, semaphore::RawSemaphore};
///
/// let mut word = 0u32;
/// // SAFETY: `word` is 4 aligned bytes used only through `sem`.
/// let sem = unsafe { RawSemaphore::init(std::ptr::NonNull::from(&mut word).cast(), 2) };
/// assert!(sem.try_acquire());
/// assert!(sem.try_acquire());
/// assert!(!sem.try_acquire());
/// sem.release(&Spin, 1).unwrap();
/// sem.acquire(&Spin, None).unwrap();
/// assert_eq!(sem.value(), 0);
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawSemaphore {
    state: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawSemaphore, u32);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawSemaphore, u32);

impl RawSemaphore {
    /// The most permits a semaphore can hold: 2^31 - 1 (as `SEM_VALUE_MAX`).
    pub const MAX: u32 = COUNT_MASK;

    /// Makes a semaphore holding `permits` (at most [`Self::MAX`]) out of
    /// the 4 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 4 initialized bytes for
    /// `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawSemaphore>, permits: u32) -> &'a RawSemaphore {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*ptr.as_ptr()).state, permits.min(Self::MAX));
            ptr.as_ref()
        }
    }

    /// The layout of a semaphore object (header + semaphore).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawSemaphore, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a semaphore always fit"),
        }
    }

    /// Creates a semaphore object holding `permits` at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        permits: u32,
        origin: Origin,
    ) -> Result<&'a RawSemaphore, LayoutError> {
        if permits > Self::MAX {
            return Err(LayoutError::BadCapacity {
                capacity: permits.into(),
                reason: "a semaphore holds at most 2^31 - 1 permits",
            });
        }
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawSemaphore, ()>(
                mem,
                len,
                ObjectKind::Semaphore,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let sem = Self::init(parts.body, permits);
            parts.publish();
            Ok(sem)
        }
    }

    /// Attaches to a semaphore object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(
        mem: NonNull<u8>,
        len: usize,
    ) -> Result<&'a RawSemaphore, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawSemaphore, ()>(
                mem,
                len,
                ObjectKind::Semaphore,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// Permits available now (a snapshot).
    pub fn value(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & COUNT_MASK
    }

    /// Takes a permit if one is available.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.take_one().is_some()
    }

    /// Takes a permit if one is available; returns how many are left.
    #[inline]
    fn take_one(&self) -> Option<u32> {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & COUNT_MASK != 0 {
            // Acquire pairs with the Release CAS in `release`.
            match self.state.compare_exchange_weak(
                state,
                state - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((state - 1) & COUNT_MASK),
                Err(now) => state = now,
            }
        }
        None
    }

    /// After taking a permit as a former sleeper: if permits are left, a
    /// sleeper that no release woke may be waiting for them.
    #[inline]
    fn pass_baton<W: Wait>(&self, w: &W, left: u32) {
        if left != 0 {
            self.wake(w, 1);
        }
    }

    /// Takes a permit, waiting until `deadline` (`None`: forever).
    #[inline]
    pub fn acquire<W: Wait>(&self, w: &W, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        if self.try_acquire() {
            return Ok(());
        }
        self.acquire_slow(w, deadline)
    }

    #[cold]
    fn acquire_slow<W: Wait>(&self, w: &W, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        // No spinning for a call whose deadline has already passed.
        let spins = match deadline {
            Some(d) if w.expired(d) => 0,
            _ => w.spin_rounds(),
        };
        for round in 0..spins {
            w.relax(round);
            if self.try_acquire() {
                return Ok(());
            }
        }
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & COUNT_MASK != 0 {
                // Take one, keeping WAITERS set since others may sleep.
                match self.state.compare_exchange_weak(
                    state,
                    (state - 1) | WAITERS,
                    // Acquire pairs with the Release CAS in `release`.
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.pass_baton(w, (state - 1) & COUNT_MASK);
                        return Ok(());
                    }
                    Err(now) => {
                        state = now;
                        continue;
                    }
                }
            }
            if state & WAITERS == 0 {
                if let Err(now) = self.state.compare_exchange_weak(
                    state,
                    state | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = now;
                    continue;
                }
                state |= WAITERS;
            }
            if w.wait(&self.state, state, deadline).is_err() {
                // Out of time; a last look. WAITERS stays set for the others.
                return match self.take_one() {
                    Some(left) => {
                        self.pass_baton(w, left);
                        Ok(())
                    }
                    None => Err(TimedOut),
                };
            }
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// Adds `permits` and wakes as many sleepers, refusing to go above
    /// [`Self::MAX`].
    #[inline]
    pub fn release<W: Wait>(&self, w: &W, permits: u32) -> Result<(), Overflow> {
        self.release_bounded(w, permits, Self::MAX)
    }

    /// Adds `permits` and wakes as many sleepers, refusing to go above `max`
    /// (the bound of a bounded semaphore).
    #[inline]
    pub fn release_bounded<W: Wait>(&self, w: &W, permits: u32, max: u32) -> Result<(), Overflow> {
        let max = max.min(Self::MAX);
        let mut state = self.state.load(Ordering::Relaxed);
        if permits == 0 {
            // Nothing to add; in particular WAITERS must not be cleared.
            return if state & COUNT_MASK > max {
                Err(Overflow {
                    available: state & COUNT_MASK,
                    adding: 0,
                    max,
                })
            } else {
                Ok(())
            };
        }
        loop {
            let available = state & COUNT_MASK;
            if permits > max - available.min(max) {
                return Err(Overflow {
                    available,
                    adding: permits,
                    max,
                });
            }
            // Release pairs with the Acquire of the acquirers.
            match self.state.compare_exchange_weak(
                state,
                available + permits,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state & WAITERS != 0 {
            self.wake(w, permits);
        }
        Ok(())
    }

    #[cold]
    fn wake<W: Wait>(&self, w: &W, count: u32) {
        w.wake(&self.state, count);
    }
}

/// A semaphore that refuses to hold more permits than it started with
/// (Python's `BoundedSemaphore`).
///
/// # State words
///
/// `sem`: the word of a [`RawSemaphore`] (permits in bits 0..31, `WAITERS`
/// in bit 31).
///
/// `bound`:
///
/// | bits  | meaning                                                   |
/// |-------|-----------------------------------------------------------|
/// | 0..32 | the most permits it may hold: its initial count, fixed at creation (also recorded as the capacity in the header) |
///
/// A release that would raise the count above the bound is refused with
/// [`Overflow`] and changes nothing ([`RawSemaphore::release_bounded`]: the
/// check and the addition are one CAS).
///
/// # Examples
///
/// ```
/// use mproc_core::{Spin, semaphore::RawBoundedSemaphore};
///
/// let mut words = [0u32; 2];
/// // SAFETY: `words` is 8 aligned bytes used only through `sem`.
/// let sem = unsafe { RawBoundedSemaphore::init(std::ptr::NonNull::from(&mut words).cast(), 1) };
/// assert!(sem.release(&Spin, 1).is_err());
/// assert!(sem.try_acquire());
/// sem.release(&Spin, 1).unwrap();
/// assert_eq!((sem.value(), sem.bound()), (1, 1));
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawBoundedSemaphore {
    sem: RawSemaphore,
    bound: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawBoundedSemaphore, [u32; 2]);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawBoundedSemaphore, u32);

impl RawBoundedSemaphore {
    /// Makes a semaphore holding, and bounded by, `permits` (at most
    /// [`RawSemaphore::MAX`]) out of the 8 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 8 initialized bytes for
    /// `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawBoundedSemaphore>, permits: u32) -> &'a Self {
        let p = ptr.as_ptr();
        // SAFETY: forwarded from the caller; both fields lie inside `*p`.
        unsafe {
            RawSemaphore::init(NonNull::new_unchecked(&raw mut (*p).sem), permits);
            init_u32(&raw mut (*p).bound, permits.min(RawSemaphore::MAX));
            ptr.as_ref()
        }
    }

    /// The layout of a bounded semaphore object (header + semaphore).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawBoundedSemaphore, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a bounded semaphore always fit"),
        }
    }

    fn check_bound(bound: u64) -> Result<ObjectLayout, LayoutError> {
        if bound > u64::from(RawSemaphore::MAX) {
            return Err(LayoutError::BadCapacity {
                capacity: bound,
                reason: "a semaphore holds at most 2^31 - 1 permits",
            });
        }
        Ok(Self::object_layout())
    }

    /// Creates a bounded semaphore object holding, and bounded by,
    /// `permits` at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        permits: u32,
        origin: Origin,
    ) -> Result<&'a Self, LayoutError> {
        let layout = Self::check_bound(permits.into())?;
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawBoundedSemaphore, ()>(
                mem,
                len,
                ObjectKind::BoundedSemaphore,
                TypeFingerprint::of::<()>(),
                permits.into(),
                layout,
                origin,
            )?;
            let sem = Self::init(parts.body, permits);
            parts.publish();
            Ok(sem)
        }
    }

    /// Attaches to a bounded semaphore object at `mem`, after checking its
    /// header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawBoundedSemaphore, ()>(
                mem,
                len,
                ObjectKind::BoundedSemaphore,
                TypeFingerprint::of::<()>(),
                Self::check_bound,
            )?;
            let sem = parts.body.as_ref();
            if u64::from(sem.bound()) != parts.capacity {
                return Err(LayoutError::Corrupted {
                    what: "the semaphore's bound differs from its header's",
                });
            }
            Ok(sem)
        }
    }

    /// The most permits it may hold (its initial count).
    pub fn bound(&self) -> u32 {
        self.bound.load(Ordering::Relaxed)
    }

    /// Permits available now (a snapshot).
    pub fn value(&self) -> u32 {
        self.sem.value()
    }

    /// Takes a permit if one is available.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.sem.try_acquire()
    }

    /// Takes a permit, waiting until `deadline` (`None`: forever).
    #[inline]
    pub fn acquire<W: Wait>(&self, w: &W, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        self.sem.acquire(w, deadline)
    }

    /// Adds `permits` and wakes as many sleepers, refusing to go above
    /// [`bound`](Self::bound).
    #[inline]
    pub fn release<W: Wait>(&self, w: &W, permits: u32) -> Result<(), Overflow> {
        self.sem.release_bounded(w, permits, self.bound())
    }
}
