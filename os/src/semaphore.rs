//! [`Semaphore`]: a counting semaphore that processes share (Python's
//! `multiprocessing.Semaphore`), and [`BoundedSemaphore`], one that refuses
//! to hold more permits than it started with.

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::TimedOut;
pub use mproc_core::semaphore::Overflow;
use mproc_core::semaphore::{RawBoundedSemaphore, RawSemaphore};

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::origin;
use crate::shm::Region;

/// A counting semaphore that processes share.
///
/// `acquire` takes a permit, waiting while there is none; `release` puts one
/// back, from any process. Uncontended, both are one atomic operation without
/// a system call, and `release` wakes a sleeper only if one is asleep.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::semaphore::Semaphore;
///
/// let sem = Semaphore::new(1)?;
/// sem.acquire();
/// assert!(!sem.try_acquire());
/// assert!(sem.acquire_timeout(Duration::from_millis(10)).is_err());
/// sem.release()?;
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    sem: NonNull<RawSemaphore>,
    region: Mapping,
}

// SAFETY: `sem` points into `region`, which the handle keeps mapped; the
// semaphore is only used through its atomic operations, made for sharing.
unsafe impl Send for Semaphore {}
// SAFETY: as for `Send`.
unsafe impl Sync for Semaphore {}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl Semaphore {
    /// The most permits a semaphore holds: 2^31 - 1 (`SEM_VALUE_MAX`).
    pub const MAX: u32 = RawSemaphore::MAX;

    /// A semaphore holding `permits` (at most [`Self::MAX`]) in a
    /// new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(permits: u32) -> Result<Self> {
        Self::create_in(
            shareable("Semaphore", Ok(RawSemaphore::object_layout()))?,
            permits,
        )
    }

    /// The bytes a region needs to hold a semaphore.
    pub fn region_size() -> usize {
        RawSemaphore::object_layout().size()
    }

    /// Creates a semaphore holding `permits` at the start of `region`.
    pub fn create_in(region: Region, permits: u32) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let sem =
            unsafe { RawSemaphore::create(region.as_ptr(), region.len(), permits, origin())? };
        Ok(Self {
            sem: NonNull::from(sem),
            region: Arc::new(region),
        })
    }

    /// Attaches to a semaphore that another process created in `region`,
    /// after checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let sem = unsafe { RawSemaphore::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            sem: NonNull::from(sem),
            region: Arc::new(region),
        })
    }

    /// The region the semaphore lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawSemaphore {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.sem.as_ref() }
    }

    /// Takes a permit, waiting as long as it takes.
    #[inline]
    pub fn acquire(&self) {
        // Without a deadline the acquire only returns once it succeeded.
        let _ = self.raw().acquire(&Futex, None);
    }

    /// Takes a permit, waiting at most `timeout`.
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        self.raw().acquire(&Futex, deadline(timeout))
    }

    /// Takes a permit if one is available now.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.raw().try_acquire()
    }

    /// Puts one permit back and wakes a waiter, if any.
    ///
    /// # Errors
    /// [`Overflow`] (nothing released) if the count is already
    /// [`Self::MAX`].
    #[inline]
    pub fn release(&self) -> Result<(), Overflow> {
        self.raw().release(&Futex, 1)
    }

    /// Puts `permits` back and wakes as many waiters.
    ///
    /// # Errors
    /// [`Overflow`] (nothing released) if the count would exceed
    /// [`Self::MAX`].
    pub fn release_n(&self, permits: u32) -> Result<(), Overflow> {
        self.raw().release(&Futex, permits)
    }

    /// Permits available now (a snapshot: Python's `get_value`).
    pub fn value(&self) -> u32 {
        self.raw().value()
    }
}

/// A semaphore that refuses to hold more permits than it started with
/// (Python's `multiprocessing.BoundedSemaphore`).
///
/// It is a [`Semaphore`] whose initial count is also its bound: a release
/// that would raise the count above it is refused with [`Overflow`] and
/// changes nothing (Python raises `ValueError`), which catches a process
/// that releases more often than it acquired.
///
/// # Examples
///
/// ```
/// use mproc_os::semaphore::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(2)?;
/// assert!(sem.release().is_err());
/// sem.acquire();
/// sem.release()?;
/// assert_eq!((sem.value(), sem.bound()), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: NonNull<RawBoundedSemaphore>,
    region: Mapping,
}

// SAFETY: `sem` points into `region`, which the handle keeps mapped; the
// semaphore is only used through its atomic operations, made for sharing.
unsafe impl Send for BoundedSemaphore {}
// SAFETY: as for `Send`.
unsafe impl Sync for BoundedSemaphore {}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .field("bound", &self.bound())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A semaphore holding, and bounded by, `permits` (at most
    /// [`Semaphore::MAX`]) in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(permits: u32) -> Result<Self> {
        Self::create_in(
            shareable("BoundedSemaphore", Ok(RawBoundedSemaphore::object_layout()))?,
            permits,
        )
    }

    /// The bytes a region needs to hold a bounded semaphore.
    pub fn region_size() -> usize {
        RawBoundedSemaphore::object_layout().size()
    }

    /// Creates a semaphore holding, and bounded by, `permits` at the start
    /// of `region`.
    pub fn create_in(region: Region, permits: u32) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let sem = unsafe {
            RawBoundedSemaphore::create(region.as_ptr(), region.len(), permits, origin())?
        };
        Ok(Self {
            sem: NonNull::from(sem),
            region: Arc::new(region),
        })
    }

    /// Attaches to a bounded semaphore that another process created in
    /// `region`, after checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let sem = unsafe { RawBoundedSemaphore::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            sem: NonNull::from(sem),
            region: Arc::new(region),
        })
    }

    /// The region the semaphore lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawBoundedSemaphore {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.sem.as_ref() }
    }

    /// Takes a permit, waiting as long as it takes.
    #[inline]
    pub fn acquire(&self) {
        // Without a deadline the acquire only returns once it succeeded.
        let _ = self.raw().acquire(&Futex, None);
    }

    /// Takes a permit, waiting at most `timeout`.
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        self.raw().acquire(&Futex, deadline(timeout))
    }

    /// Takes a permit if one is available now.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        self.raw().try_acquire()
    }

    /// Puts one permit back and wakes a waiter, if any.
    ///
    /// # Errors
    /// [`Overflow`] (nothing released) if the count is already at
    /// [`bound`](Self::bound).
    #[inline]
    pub fn release(&self) -> Result<(), Overflow> {
        self.raw().release(&Futex, 1)
    }

    /// Puts `permits` back and wakes as many waiters.
    ///
    /// # Errors
    /// [`Overflow`] (nothing released) if the count would exceed
    /// [`bound`](Self::bound).
    pub fn release_n(&self, permits: u32) -> Result<(), Overflow> {
        self.raw().release(&Futex, permits)
    }

    /// Permits available now (a snapshot: Python's `get_value`).
    pub fn value(&self) -> u32 {
        self.raw().value()
    }

    /// The most permits it may hold: its initial count.
    pub fn bound(&self) -> u32 {
        self.raw().bound()
    }
}

crate::share::share_one_region!("Semaphore", Semaphore);
crate::share::share_one_region!("BoundedSemaphore", BoundedSemaphore);
