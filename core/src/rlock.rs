//! A reentrant lock: a [`RawMutex`] plus the number of times its owner took
//! it (Python's `RLock`).
//!
//! # State words
//!
//! `mutex`: a [`RawMutex`] (owner id in bits 0..30, `INCONSISTENT` in bit
//! 30, `WAITERS` in bit 31 of its word, and its owner record). An owner that
//! dies holding the lock is taken over by the next locker (see
//! [`crate::mutex`]), which starts again from one level: the dead owner's
//! levels die with it.
//!
//! `count`:
//!
//! | bits  | meaning                                                      |
//! |-------|--------------------------------------------------------------|
//! | 0..32 | levels the owner holds: 0 when unlocked, 1 after the first lock |
//!
//! An owner that locks again finds its own id in the mutex word and only
//! raises `count`; `count` is read and written by the owner alone, while it
//! holds the mutex, so plain loads and stores suffice (the mutex's
//! `Acquire`/`Release` order them between owners). Only the id in the mutex
//! word decides who holds the lock, so an unlock by anybody else is refused
//! with [`ReleaseError::NotOwner`] and changes nothing. The last unlock sets
//! `count` to 0 before it unlocks the mutex.

use core::fmt;
use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::mutex::{Acquired, RawMutex};
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::{OwnerId, TimedOut, Wait};

/// Why a reentrant lock was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockError {
    /// Another owner held it until the deadline passed.
    TimedOut,
    /// The caller already holds it `u32::MAX` times, the most the count
    /// can record.
    TooManyLevels,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("the operation timed out"),
            Self::TooManyLevels => {
                f.write_str("a reentrant lock was taken u32::MAX times without release")
            }
        }
    }
}

impl core::error::Error for LockError {}

impl From<TimedOut> for LockError {
    fn from(_: TimedOut) -> Self {
        Self::TimedOut
    }
}

/// Why an unlock of a reentrant lock was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The caller does not hold the lock; nothing was released.
    NotOwner {
        /// The owner id of the holder when the unlock was refused (`None`:
        /// nobody held it).
        holder: Option<u32>,
    },
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOwner {
                holder: Some(holder),
            } => write!(
                f,
                "cannot release a reentrant lock held by another owner ({holder})"
            ),
            Self::NotOwner { holder: None } => {
                f.write_str("cannot release a reentrant lock that nobody holds")
            }
        }
    }
}

impl core::error::Error for ReleaseError {}

/// A reentrant lock that can live in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::rlock::{RawRLock, ReleaseError};
/// use mproc_core::{OwnerId, Spin};
///
/// let mut words = [0u32; 2];
/// // SAFETY: `words` is 8 aligned bytes used only through `lock`.
/// let lock = unsafe { RawRLock::init(std::ptr::NonNull::from(&mut words).cast()) };
/// let (me, other) = (OwnerId::new(42).unwrap(), OwnerId::new(7).unwrap());
/// lock.lock(&Spin, me, None).unwrap();
/// assert!(lock.try_lock(me));
/// assert_eq!(lock.count(), 2);
/// assert!(!lock.try_lock(other));
/// assert_eq!(
///     lock.unlock(&Spin, other),
///     Err(ReleaseError::NotOwner { holder: Some(42) })
/// );
/// lock.unlock(&Spin, me).unwrap();
/// lock.unlock(&Spin, me).unwrap();
/// assert!(!lock.is_locked());
/// assert!(lock.try_lock(other));
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawRLock {
    mutex: RawMutex,
    count: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawRLock, [u64; 3]);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawRLock, u64);

impl RawRLock {
    /// Makes an unlocked reentrant lock out of the 24 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 24 initialized bytes for
    /// `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawRLock>) -> &'a RawRLock {
        let p = ptr.as_ptr();
        // SAFETY: forwarded from the caller; both fields lie inside `*p`.
        unsafe {
            RawMutex::init(NonNull::new_unchecked(&raw mut (*p).mutex));
            init_u32(&raw mut (*p).count, 0);
            ptr.as_ref()
        }
    }

    /// The layout of a reentrant lock object (header + lock).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawRLock, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a reentrant lock always fit"),
        }
    }

    /// Creates a reentrant lock object (header + unlocked lock) at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        origin: Origin,
    ) -> Result<&'a RawRLock, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawRLock, ()>(
                mem,
                len,
                ObjectKind::RLock,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let lock = Self::init(parts.body);
            parts.publish();
            Ok(lock)
        }
    }

    /// Attaches to a reentrant lock object at `mem`, after checking its
    /// header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a RawRLock, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawRLock, ()>(
                mem,
                len,
                ObjectKind::RLock,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// Whether `id` holds the lock ([`RawMutex::held_by`]: exact when `id`
    /// asks, and false for a process that reuses a dead owner's pid).
    #[inline]
    fn held_by(&self, id: OwnerId) -> bool {
        self.mutex.held_by(id)
    }

    /// One more level for the owner; false if it holds `u32::MAX` already.
    #[inline]
    fn relock(&self) -> bool {
        match self.count.load(Ordering::Relaxed).checked_add(1) {
            Some(count) => {
                self.count.store(count, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Takes the lock (a first level) or, for its owner, one more level,
    /// if that is possible without waiting. False if another owner holds
    /// it, or `id` already holds `u32::MAX` levels.
    #[inline]
    pub fn try_lock(&self, id: OwnerId) -> bool {
        if self.held_by(id) {
            return self.relock();
        }
        if self.mutex.try_lock(id) {
            self.count.store(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever); for its
    /// owner, takes one more level at once.
    ///
    /// # Errors
    /// [`LockError::TimedOut`] if another owner held it until `deadline`;
    /// [`LockError::TooManyLevels`] if `id` already holds `u32::MAX`
    /// levels. Nothing changes then.
    #[inline]
    ///
    /// Returns [`Acquired::OwnerDied`] if an owner died holding the lock
    /// and nobody has [marked it consistent](Self::mark_consistent) since.
    pub fn lock<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<Acquired, LockError> {
        if self.held_by(id) {
            return if self.relock() {
                Ok(self.acquired())
            } else {
                Err(LockError::TooManyLevels)
            };
        }
        let acquired = self.mutex.lock(w, id, deadline)?;
        self.count.store(1, Ordering::Relaxed);
        Ok(acquired)
    }

    fn acquired(&self) -> Acquired {
        if self.mutex.is_inconsistent() {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
    }

    /// Whether an owner died holding the lock and nobody has marked it
    /// consistent since (a snapshot; exact for the holder).
    pub fn is_inconsistent(&self) -> bool {
        self.mutex.is_inconsistent()
    }

    /// Marks the data the lock protects consistent again after an owner
    /// died ([`RawMutex::mark_consistent`]).
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if `id` does not hold the lock; nothing
    /// changes then.
    pub fn mark_consistent(&self, id: OwnerId) -> Result<(), ReleaseError> {
        if !self.held_by(id) {
            return Err(ReleaseError::NotOwner {
                holder: self.mutex.owner(),
            });
        }
        // SAFETY: `id` holds the mutex (checked above; only `id` changes that).
        unsafe { self.mutex.mark_consistent() };
        Ok(())
    }

    /// Gives back one level; the last one unlocks the lock and wakes a
    /// waiter.
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if `id` does not hold the lock; nothing
    /// changes then.
    #[inline]
    pub fn unlock<W: Wait>(&self, w: &W, id: OwnerId) -> Result<(), ReleaseError> {
        if !self.held_by(id) {
            return Err(ReleaseError::NotOwner {
                holder: self.mutex.owner(),
            });
        }
        let count = self.count.load(Ordering::Relaxed);
        if count > 1 {
            self.count.store(count - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.count.store(0, Ordering::Relaxed);
        // SAFETY: the mutex word holds `id`, which only `id` writes there:
        // the caller locked the mutex and has not unlocked it since.
        unsafe { self.mutex.unlock(w) };
        Ok(())
    }

    /// Whether somebody holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }

    /// The id of the holder, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.mutex.owner()
    }

    /// The levels its holder has taken, 0 when unlocked (a snapshot; exact
    /// only when asked by the holder).
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }
}
