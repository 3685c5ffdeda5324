//! [`RLock`]: a reentrant lock that processes share (Python's
//! `multiprocessing.RLock`).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::TimedOut;
pub use mproc_core::rlock::ReleaseError;
use mproc_core::rlock::{LockError, RawRLock};

use crate::error::Result;
use crate::futex::{Deadline, Futex};
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::shm::Region;

/// A lock that the process holding it may take again; it is free once every
/// level has been given back.
///
/// The owner is the process (its pid), as the owner of a [`Lock`] is: the
/// threads of one process count as one owner, so use an `RLock` from one
/// thread per process (or put it behind a `std::sync::Mutex`).
///
/// Levels are taken with guards ([`lock`](Self::lock), dropped to give the
/// level back) or, as in Python, with [`acquire`](Self::acquire) and
/// [`release`](Self::release). A release by a process that does not hold
/// the lock is refused with [`ReleaseError::NotOwner`] and changes nothing.
///
/// [`Lock`]: crate::Lock
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::rlock::{RLock, ReleaseError};
///
/// let lock = RLock::new()?;
/// {
///     let _outer = lock.lock();
///     let _inner = lock.lock_timeout(Duration::from_secs(1))?;
///     assert_eq!(lock.count(), 2);
/// }
/// assert!(!lock.is_locked());
/// assert_eq!(lock.release(), Err(ReleaseError::NotOwner { holder: None }));
/// lock.acquire();
/// lock.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    lock: NonNull<RawRLock>,
    region: Mapping,
}

// SAFETY: `lock` points into `region`, which the handle keeps mapped; the
// lock is only used through its atomic operations, made for sharing.
unsafe impl Send for RLock {}
// SAFETY: as for `Send`.
unsafe impl Sync for RLock {}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner())
            .field("count", &self.count())
            .finish()
    }
}

impl RLock {
    /// An unlocked reentrant lock in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new() -> Result<Self> {
        Self::create_in(shareable("RLock", Ok(RawRLock::object_layout()))?)
    }

    /// The bytes a region needs to hold a reentrant lock.
    pub fn region_size() -> usize {
        RawRLock::object_layout().size()
    }

    /// Creates an unlocked reentrant lock at the start of `region`.
    pub fn create_in(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let lock = unsafe { RawRLock::create(region.as_ptr(), region.len(), origin())? };
        Ok(Self {
            lock: NonNull::from(lock),
            region: Arc::new(region),
        })
    }

    /// Attaches to a reentrant lock that another process created in
    /// `region`, after checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let lock = unsafe { RawRLock::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            lock: NonNull::from(lock),
            region: Arc::new(region),
        })
    }

    /// The region the lock lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawRLock {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.lock.as_ref() }
    }

    /// Takes a level, waiting as long as another process holds the lock.
    ///
    /// # Panics
    /// If this process already holds `u32::MAX` levels.
    #[inline]
    pub fn lock(&self) -> RLockGuard<'_> {
        self.acquire();
        RLockGuard::new(self)
    }

    /// Takes a level, waiting at most `timeout` for another process to let
    /// the lock go.
    ///
    /// # Panics
    /// If this process already holds `u32::MAX` levels.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RLockGuard<'_>, TimedOut> {
        self.acquire_timeout(timeout)?;
        Ok(RLockGuard::new(self))
    }

    /// Takes a level if this process holds the lock or nobody does; `None`
    /// if another process holds it (or this one already holds `u32::MAX`
    /// levels).
    #[inline]
    pub fn try_lock(&self) -> Option<RLockGuard<'_>> {
        self.try_acquire().then(|| RLockGuard::new(self))
    }

    /// Takes a level without a guard (Python's `acquire()`); give it back
    /// with [`release`](Self::release).
    ///
    /// # Panics
    /// If this process already holds `u32::MAX` levels.
    #[inline]
    pub fn acquire(&self) {
        // Without a deadline the lock does not time out.
        let _ = self.take(None);
    }

    /// Takes a level without a guard, waiting at most `timeout`.
    ///
    /// # Panics
    /// If this process already holds `u32::MAX` levels.
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        self.take(deadline(timeout))
    }

    #[inline]
    fn take(&self, until: Option<Deadline>) -> Result<(), TimedOut> {
        match self.raw().lock(&Futex, owner_id(), until) {
            Ok(_) => Ok(()),
            Err(LockError::TimedOut) => Err(TimedOut),
            Err(error) => panic!("{error}"),
        }
    }

    /// Takes a level without a guard if this process holds the lock or
    /// nobody does; false if another process holds it (or this one
    /// already holds `u32::MAX` levels).
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.raw().try_lock(owner_id())
    }

    /// Gives back one level; the last one unlocks the lock and wakes a
    /// waiting process.
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if this process does not hold the lock;
    /// nothing changes then.
    #[inline]
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.raw().unlock(&Futex, owner_id())
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.raw().owner()
    }

    /// Whether a process died holding the lock (a waiter took it over after
    /// finding the holder gone, within about 10 ms, as for a
    /// [`Lock`](crate::Lock)) and no holder has
    /// [marked it consistent](Self::mark_consistent) since: what it protects
    /// may be half-updated. A snapshot; exact for the holder.
    pub fn owner_died(&self) -> bool {
        self.raw().is_inconsistent()
    }

    /// Marks what the lock protects consistent again after a dead owner;
    /// later holders see [`owner_died`](Self::owner_died) false.
    ///
    /// # Errors
    /// [`ReleaseError::NotOwner`] if this process does not hold the lock;
    /// nothing changes then.
    pub fn mark_consistent(&self) -> Result<(), ReleaseError> {
        self.raw().mark_consistent(owner_id())
    }

    /// Whether this process holds the lock.
    pub fn is_owned(&self) -> bool {
        self.owner() == Some(owner_id().get())
    }

    /// The levels its holder has taken, 0 when unlocked (a snapshot; exact
    /// when the holder asks).
    pub fn count(&self) -> u32 {
        self.raw().count()
    }
}

/// Holds one level of an [`RLock`]; gives it back when dropped.
#[must_use = "the level is given back as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    /// Not `Send`: the level belongs to the process that took it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> RLockGuard<'a> {
    fn new(lock: &'a RLock) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl RLockGuard<'_> {
    /// Whether a process died holding the lock and no holder has marked it
    /// consistent since ([`RLock::owner_died`]).
    pub fn owner_died(&self) -> bool {
        self.lock.owner_died()
    }

    /// Marks what the lock protects consistent again
    /// ([`RLock::mark_consistent`]).
    pub fn mark_consistent(&mut self) {
        // The guard's process holds the lock, so this is not refused.
        let _ = self.lock.mark_consistent();
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl Drop for RLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A guard exists only while this process holds its level, so the
        // release is refused only if the level was already given back by an
        // unmatched `release`; then there is nothing left to give back.
        let _ = self.lock.release();
    }
}

crate::share::share_one_region!("RLock", RLock);
