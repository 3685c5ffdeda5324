//! [`Condition`]: a condition variable that processes share (Python's
//! `multiprocessing.Condition`).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::TimedOut;
use mproc_core::condition::RawCondition;

use crate::error::Result;
use crate::futex::{Deadline, Futex};
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::shm::Region;

/// A condition variable and its lock, both in one shared region.
///
/// Like Python's `Condition()` it makes its own lock, here a plain
/// (non-reentrant) one, held through a [`ConditionGuard`]. A process takes
/// the lock, checks the shared state it waits for, and if that is not there
/// yet calls [`wait`](Self::wait), which releases the lock, sleeps until a
/// notify, and takes the lock again; another process changes the state
/// under the lock and calls [`notify`](Self::notify) or
/// [`notify_all`](Self::notify_all). A notify sent after the state changed
/// under the lock is never lost, wherever the waiter is between its check
/// and its sleep. The notifier need not hold the lock when it notifies.
///
/// Wake-ups can be spurious (a notify may wake more waiters than asked), so
/// waiters re-check the state: [`wait_for`](Self::wait_for) does.
///
/// The lock guards no data of its own: pair it with [`Value`], [`Array`] or
/// any shared memory that all parties change only under it.
///
/// [`Value`]: crate::Value
/// [`Array`]: crate::Array
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::{Condition, Value};
///
/// let cond = Condition::new()?;
/// let ready = Value::new(0u32)?;
/// let mut guard = cond.lock();
/// // Nobody will notify: the wait times out, holding the lock again.
/// assert!(!cond.wait_timeout(&mut guard, Duration::from_millis(10)));
/// ready.set(1);
/// assert!(cond.wait_for_timeout(&mut guard, Duration::from_secs(1), || ready.get() == 1));
/// drop(guard);
/// cond.notify_all();
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    cond: NonNull<RawCondition>,
    region: Mapping,
}

// SAFETY: `cond` points into `region`, which the handle keeps mapped; the
// condition is only used through its atomic operations, made for sharing.
unsafe impl Send for Condition {}
// SAFETY: as for `Send`.
unsafe impl Sync for Condition {}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("owner", &self.raw().mutex().owner())
            .field("waiters", &self.raw().waiters())
            .finish()
    }
}

impl Condition {
    /// A condition with an unlocked lock in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new() -> Result<Self> {
        Self::create_in(shareable("Condition", Ok(RawCondition::object_layout()))?)
    }

    /// The bytes a region needs to hold a condition.
    pub fn region_size() -> usize {
        RawCondition::object_layout().size()
    }

    /// Creates a condition with an unlocked lock at the start of `region`.
    pub fn create_in(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let cond = unsafe { RawCondition::create(region.as_ptr(), region.len(), origin())? };
        Ok(Self {
            cond: NonNull::from(cond),
            region: Arc::new(region),
        })
    }

    /// Attaches to a condition that another process created in `region`,
    /// after checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let cond = unsafe { RawCondition::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            cond: NonNull::from(cond),
            region: Arc::new(region),
        })
    }

    /// The region the condition lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawCondition {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.cond.as_ref() }
    }

    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) -> ConditionGuard<'_> {
        // Without a deadline the lock only returns once it is taken.
        let _ = self.raw().mutex().lock(&Futex, owner_id(), None);
        ConditionGuard::new(self)
    }

    /// Takes the lock, waiting at most `timeout`.
    #[inline]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ConditionGuard<'_>, TimedOut> {
        self.raw()
            .mutex()
            .lock(&Futex, owner_id(), deadline(timeout))?;
        Ok(ConditionGuard::new(self))
    }

    /// Takes the lock if nobody holds it.
    #[inline]
    pub fn try_lock(&self) -> Option<ConditionGuard<'_>> {
        self.raw()
            .mutex()
            .try_lock(owner_id())
            .then(|| ConditionGuard::new(self))
    }

    /// Checks that `guard` holds this condition's lock.
    fn check(&self, guard: &ConditionGuard<'_>) {
        assert!(
            core::ptr::eq(guard.cond.raw(), self.raw()),
            "a guard of another condition was passed to Condition::wait"
        );
    }

    /// One wait with an optional deadline; true unless it timed out.
    fn wait_until(&self, guard: &mut ConditionGuard<'_>, until: Option<Deadline>) -> bool {
        self.check(guard);
        // SAFETY: the guard shows that this process holds the lock (it took
        // it as `owner_id()`), and `wait` returns holding it again.
        unsafe { self.raw().wait(&Futex, owner_id(), until) }.is_ok()
    }

    /// Releases the lock, sleeps until a notify (or spuriously), and takes
    /// the lock again.
    ///
    /// # Panics
    /// If `guard` was not taken from this handle or a clone of it.
    pub fn wait(&self, guard: &mut ConditionGuard<'_>) {
        self.wait_until(guard, None);
    }

    /// As [`wait`](Self::wait), but sleeps at most `timeout`; returns
    /// `false` if it timed out (as Python's `wait(timeout)`). Either way the
    /// lock is held again when it returns.
    ///
    /// # Panics
    /// If `guard` was not taken from this handle or a clone of it.
    pub fn wait_timeout(&self, guard: &mut ConditionGuard<'_>, timeout: Duration) -> bool {
        self.wait_until(guard, deadline(timeout))
    }

    /// Waits until `predicate` returns true: checks it, holding the lock,
    /// before every wait and after every wake-up (Python's `wait_for`).
    ///
    /// # Panics
    /// If `guard` was not taken from this handle or a clone of it.
    pub fn wait_for(&self, guard: &mut ConditionGuard<'_>, mut predicate: impl FnMut() -> bool) {
        while !predicate() {
            self.wait(guard);
        }
    }

    /// As [`wait_for`](Self::wait_for), but waits at most `timeout` in all;
    /// returns the last value of `predicate` (checked once more, holding
    /// the lock, after the timeout).
    ///
    /// # Panics
    /// If `guard` was not taken from this handle or a clone of it.
    pub fn wait_for_timeout(
        &self,
        guard: &mut ConditionGuard<'_>,
        timeout: Duration,
        mut predicate: impl FnMut() -> bool,
    ) -> bool {
        let until = deadline(timeout);
        loop {
            if predicate() {
                return true;
            }
            if !self.wait_until(guard, until) {
                return predicate();
            }
        }
    }

    /// Wakes up to `count` waiting processes (possibly more: wake-ups can
    /// be spurious).
    pub fn notify(&self, count: u32) {
        self.raw().notify(&Futex, count);
    }

    /// Wakes one waiting process (Python's `notify()`).
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes every waiting process.
    pub fn notify_all(&self) {
        self.raw().notify_all(&Futex);
    }
}

/// Holds a [`Condition`]'s lock; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    /// Not `Send`: the lock is released by the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> ConditionGuard<'a> {
    fn new(cond: &'a Condition) -> Self {
        Self {
            cond,
            _not_send: PhantomData,
        }
    }
}

impl ConditionGuard<'_> {
    /// Whether a process died holding the condition's lock (it was taken
    /// over, as for a [`Lock`](crate::Lock), by this lock or an earlier one,
    /// or when a [`wait`](Condition::wait) took the lock back) and no holder
    /// has [marked it consistent](Self::mark_consistent) since.
    pub fn owner_died(&self) -> bool {
        self.cond.raw().mutex().is_inconsistent()
    }

    /// Marks what the lock protects consistent again after a dead holder.
    pub fn mark_consistent(&mut self) {
        // SAFETY: a guard exists only while this process holds the lock.
        unsafe { self.cond.raw().mutex().mark_consistent() };
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl Drop for ConditionGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its lock is held by this process.
        unsafe { self.cond.raw().mutex().unlock(&Futex) };
    }
}

crate::share::share_one_region!("Condition", Condition);
