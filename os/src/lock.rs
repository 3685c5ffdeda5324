//! [`Lock`]: a mutual-exclusion lock that processes share (Python's
//! `multiprocessing.Lock`).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::TimedOut;
use mproc_core::mutex::RawMutex;

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::shm::Region;

/// A lock that processes share, released when its guard is dropped.
///
/// Locking and unlocking an uncontended lock are one atomic operation each,
/// without a system call; a contended locker spins briefly, then sleeps on a
/// shared futex. The lock records the pid of its holder (in the same word
/// that locks it) and its start time (beside it). Like Python's `Lock` it
/// is not reentrant: a process that locks it twice waits for itself.
///
/// # A holder that dies
///
/// A process killed while it holds the lock (even with `SIGKILL`) does not
/// leave it locked for ever: a process waiting for the lock checks every
/// 10 ms ([`LIVENESS_CHECK_MS`]) whether the holder is still alive (by its
/// pid *and* its start time in `/proc/<pid>/stat`, so a new process that got
/// the dead holder's pid is not mistaken for it; a zombie counts as dead),
/// and takes the lock over when it is gone. Its guard then says so
/// ([`LockGuard::owner_died`]), as does every later guard until one calls
/// [`LockGuard::mark_consistent`], like a robust pthread mutex's
/// `EOWNERDEAD`. [`try_lock`](Self::try_lock) does not check liveness: use
/// [`lock_timeout`](Self::lock_timeout) to take over from a dead holder.
///
/// Why not the kernel's robust futexes: the kernel keeps one robust-futex
/// list per thread and the C library has registered its own, so mproc
/// cannot add its locks to it. A robust process-shared pthread mutex would
/// work too, but its layout is the C library's private business (40 bytes
/// in glibc, another size elsewhere), which a shared-memory layout pinned
/// at compile time cannot hold, and every lock and unlock also updates the
/// thread's robust list.
///
/// [`LIVENESS_CHECK_MS`]: mproc_core::wait::LIVENESS_CHECK_MS
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::lock::Lock;
///
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.lock();
///     assert!(lock.try_lock().is_none());
///     assert!(lock.lock_timeout(Duration::from_millis(10)).is_err());
/// }
/// assert!(lock.try_lock().is_some());
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    mutex: NonNull<RawMutex>,
    region: Mapping,
}

// SAFETY: `mutex` points into `region`, which the handle keeps mapped; the
// mutex is only used through its atomic operations, made for sharing.
unsafe impl Send for Lock {}
// SAFETY: as for `Send`.
unsafe impl Sync for Lock {}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &self.raw().owner())
            .finish()
    }
}

impl Lock {
    /// An unlocked lock in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new() -> Result<Self> {
        Self::create_in(shareable("Lock", Ok(RawMutex::object_layout()))?)
    }

    /// The bytes a region needs to hold a lock.
    pub fn region_size() -> usize {
        RawMutex::object_layout().size()
    }

    /// Creates an unlocked lock at the start of `region`.
    pub fn create_in(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let mutex = unsafe { RawMutex::create(region.as_ptr(), region.len(), origin())? };
        Ok(Self {
            mutex: NonNull::from(mutex),
            region: Arc::new(region),
        })
    }

    /// Attaches to a lock that another process created in `region`, after
    /// checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let mutex = unsafe { RawMutex::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            mutex: NonNull::from(mutex),
            region: Arc::new(region),
        })
    }

    /// The region the lock lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawMutex {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.mutex.as_ref() }
    }

    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) -> LockGuard<'_> {
        // Without a deadline the lock only returns once it is taken.
        let _ = self.raw().lock(&Futex, owner_id(), None);
        LockGuard::new(self)
    }

    /// Takes the lock, waiting at most `timeout`.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>, TimedOut> {
        self.raw().lock(&Futex, owner_id(), deadline(timeout))?;
        Ok(LockGuard::new(self))
    }

    /// Takes the lock if nobody holds it.
    #[inline]
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        self.raw()
            .try_lock(owner_id())
            .then(|| LockGuard::new(self))
    }

    /// Whether somebody holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        self.raw().owner()
    }
}

/// Holds a [`Lock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// Not `Send`: the lock is released by the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    fn new(lock: &'a Lock) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl LockGuard<'_> {
    /// Whether a process died holding the lock (this lock call or an earlier
    /// one took it over) and no holder has
    /// [marked it consistent](Self::mark_consistent) since: what the lock
    /// protects may be half-updated.
    pub fn owner_died(&self) -> bool {
        self.lock.raw().is_inconsistent()
    }

    /// Marks what the lock protects consistent again after a dead holder;
    /// later guards see [`owner_died`](Self::owner_died) false.
    pub fn mark_consistent(&mut self) {
        // SAFETY: a guard exists only while its lock is held by this process.
        unsafe { self.lock.raw().mark_consistent() };
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its lock is held by this process.
        unsafe { self.lock.raw().unlock(&Futex) };
    }
}

crate::share::share_one_region!("Lock", Lock);
