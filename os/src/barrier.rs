//! [`Barrier`]: a barrier that processes share (Python's
//! `multiprocessing.Barrier`).

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::barrier::RawBarrier;
pub use mproc_core::barrier::{BarrierWaitError, BrokenBarrier};

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::origin;
use crate::shm::Region;

/// A barrier for a fixed number of parties: each waits until all have
/// arrived, then all go on, and the barrier is ready for the next round.
///
/// [`wait`](Self::wait) returns the party's index in `0..parties`, its
/// arrival order (the last to arrive, which releases the others, gets
/// `parties - 1`), so exactly one party can be picked to do something
/// once per round, as in Python.
///
/// A party whose [`wait_timeout`](Self::wait_timeout) runs out breaks the
/// barrier (Python's `BrokenBarrierError`): it gets
/// [`BarrierWaitError::TimedOut`], every party waiting and every later wait
/// gets [`BrokenBarrier`] ([`BarrierWaitError::Broken`]) until
/// [`reset`](Self::reset). [`abort`](Self::abort) breaks it on purpose, for
/// example when a party failed and will never arrive.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::barrier::{Barrier, BarrierWaitError, BrokenBarrier};
///
/// let barrier = Barrier::new(1)?;
/// assert_eq!(barrier.wait(), Ok(0)); // one party: released at once
/// let two = Barrier::new(2)?;
/// // The other party never comes: the wait times out and breaks the barrier.
/// assert_eq!(
///     two.wait_timeout(Duration::from_millis(10)),
///     Err(BarrierWaitError::TimedOut)
/// );
/// assert!(two.broken());
/// assert_eq!(two.wait(), Err(BrokenBarrier));
/// two.reset();
/// assert_eq!((two.broken(), two.n_waiting(), two.parties()), (false, 0, 2));
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    barrier: NonNull<RawBarrier>,
    region: Mapping,
}

// SAFETY: `barrier` points into `region`, which the handle keeps mapped; the
// barrier is only used through its atomic operations, made for sharing.
unsafe impl Send for Barrier {}
// SAFETY: as for `Send`.
unsafe impl Sync for Barrier {}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}

impl Barrier {
    /// The most parties a barrier can have: 2^16 - 1.
    pub const MAX_PARTIES: u32 = RawBarrier::MAX_PARTIES;

    /// A barrier for `parties` (1 to [`Self::MAX_PARTIES`]) in a new shared
    /// region (a sealed memfd): children made with `fork` inherit it, and
    /// [`Share::token`](crate::share::Share::token) shares it with any
    /// other process.
    pub fn new(parties: u32) -> Result<Self> {
        Self::create_in(
            shareable("Barrier", Ok(RawBarrier::object_layout()))?,
            parties,
        )
    }

    /// The bytes a region needs to hold a barrier.
    pub fn region_size() -> usize {
        RawBarrier::object_layout().size()
    }

    /// Creates a barrier for `parties` at the start of `region`.
    pub fn create_in(region: Region, parties: u32) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let barrier =
            unsafe { RawBarrier::create(region.as_ptr(), region.len(), parties, origin())? };
        Ok(Self {
            barrier: NonNull::from(barrier),
            region: Arc::new(region),
        })
    }

    /// Attaches to a barrier that another process created in `region`,
    /// after checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let barrier = unsafe { RawBarrier::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            barrier: NonNull::from(barrier),
            region: Arc::new(region),
        })
    }

    /// The region the barrier lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawBarrier {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.barrier.as_ref() }
    }

    /// Waits until all parties have arrived; returns this party's index in
    /// `0..parties`.
    ///
    /// # Errors
    /// [`BrokenBarrier`] if the barrier is or becomes broken before this
    /// round completes.
    pub fn wait(&self) -> Result<u32, BrokenBarrier> {
        match self.raw().wait(&Futex, None) {
            Ok(index) => Ok(index),
            // Without a deadline the wait cannot time out; broken is all
            // that is left.
            Err(_) => Err(BrokenBarrier),
        }
    }

    /// As [`wait`](Self::wait), but waits at most `timeout`.
    ///
    /// # Errors
    /// [`BarrierWaitError::TimedOut`] if `timeout` passed first: this
    /// party broke the barrier. [`BarrierWaitError::Broken`] if it is or
    /// becomes broken otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierWaitError> {
        self.raw().wait(&Futex, deadline(timeout))
    }

    /// Breaks the barrier: waiting parties and later waits get
    /// [`BrokenBarrier`] until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.raw().abort(&Futex);
    }

    /// Makes the barrier new again: not broken, nobody arrived. Parties
    /// still waiting get [`BrokenBarrier`].
    pub fn reset(&self) {
        self.raw().reset(&Futex);
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.raw().parties()
    }

    /// Parties waiting in the current round (a snapshot; 0 when broken).
    pub fn n_waiting(&self) -> u32 {
        self.raw().n_waiting()
    }

    /// Whether the barrier is broken (a snapshot).
    pub fn broken(&self) -> bool {
        self.raw().is_broken()
    }
}

crate::share::share_one_region!("Barrier", Barrier);
