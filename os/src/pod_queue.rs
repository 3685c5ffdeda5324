//! [`PodQueue`]: a bounded multi-producer multi-consumer queue of
//! plain-old-data values in shared memory, copied in and out with no
//! encoding: the zero-copy fast path beside [`crate::queue::Queue`].

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::ShmSafe;
use mproc_core::mpmc::Mpmc;

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::queue::{GetError, PutError};
use crate::shm::Region;

/// A bounded queue of plain-old-data values that processes share.
///
/// Create it before `fork` and use it in parent and children alike (clone it
/// to share it between threads). Values are copied into shared memory, with
/// no encoding and no allocation; every queue has a capacity, and `put`
/// waits, times out or fails with [`PutError::Full`] when it is reached.
///
/// The uncontended fast path makes no system call: a process sleeps in the
/// kernel only after spinning briefly, and a wake-up is sent only to a
/// process that is asleep. Many processes may put and get at once
/// ([`mproc_core::mpmc`] describes the algorithm and its progress
/// guarantee). The batch verbs (`put_many`, `get_many`) claim several slots
/// with one atomic operation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::pod_queue::PodQueue;
/// use mproc_os::queue::GetError;
///
/// let queue = PodQueue::<u64>::new(4)?;
/// queue.put(1);
/// queue.put_many(&[2, 3]);
/// assert_eq!(queue.len(), 3);
/// assert_eq!(queue.get(), 1);
/// let mut out = [0; 8];
/// assert_eq!(queue.get_many(&mut out), 2);
/// assert_eq!(out[..2], [2, 3]);
/// assert_eq!(queue.get_timeout(Duration::from_millis(10)), Err(GetError::Empty));
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct PodQueue<T: ShmSafe> {
    ring: Mpmc<T>,
    region: Mapping,
}

impl<T: ShmSafe> Clone for PodQueue<T> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring,
            region: self.region.clone(),
        }
    }
}

impl<T: ShmSafe> fmt::Debug for PodQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodQueue")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: ShmSafe> PodQueue<T> {
    /// A queue of `capacity` slots (at least 1) in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(capacity: usize) -> Result<Self> {
        let region = shareable("PodQueue", Mpmc::<T>::layout(capacity as u64))?;
        Self::create_in(region, capacity)
    }

    /// The bytes a region needs to hold a queue of `capacity` slots.
    pub fn region_size(capacity: usize) -> Result<usize> {
        Ok(Mpmc::<T>::layout(capacity as u64)?.size())
    }

    /// Creates a queue of `capacity` slots at the start of `region` (for
    /// example a named or memfd region, so that unrelated processes can
    /// attach to it).
    pub fn create_in(region: Region, capacity: usize) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns (it
        // was just made, or the caller hands it over).
        let ring =
            unsafe { Mpmc::create(region.as_ptr(), region.len(), capacity as u64, origin())? };
        Ok(Self {
            ring,
            region: Arc::new(region),
        })
    }

    /// Attaches to a queue that another process created in `region`, after
    /// checking the header: magic, layout version, kind, element type
    /// fingerprint and size ([`mproc_core::LayoutError`] says what was
    /// wrong).
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let ring = unsafe { Mpmc::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            ring,
            region: Arc::new(region),
        })
    }

    /// The region the queue lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Number of values in the queue (a snapshot: Python's `qsize`).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the queue is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether the queue is full (a snapshot).
    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    /// Puts `value`, waiting for a free slot as long as it takes.
    #[inline(always)]
    pub fn put(&self, value: T) {
        // Without a deadline the push only returns once it succeeded.
        let _ = self.ring.push(&Futex, owner_id(), value, None);
    }

    /// Puts `value`, waiting for a free slot at most `timeout`; on timeout
    /// the value comes back in [`PutError::Full`].
    #[inline]
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        Ok(self
            .ring
            .push(&Futex, owner_id(), value, deadline(timeout))?)
    }

    /// Puts `value` if a slot is free now (Python's `put_nowait`).
    #[inline]
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        Ok(self.ring.try_push(&Futex, owner_id(), value)?)
    }

    /// Gets the oldest value, waiting as long as it takes.
    #[inline(always)]
    pub fn get(&self) -> T {
        loop {
            if let Ok(value) = self.ring.pop(&Futex, owner_id(), None) {
                return value;
            }
        }
    }

    /// Gets the oldest value, waiting at most `timeout`.
    #[inline]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        Ok(self.ring.pop(&Futex, owner_id(), deadline(timeout))?)
    }

    /// Gets the oldest value if there is one now (Python's `get_nowait`).
    #[inline]
    pub fn try_get(&self) -> Result<T, GetError> {
        Ok(self.ring.try_pop(&Futex, owner_id())?)
    }

    /// Puts all of `values` in order, waiting for free slots as long as it
    /// takes. Slots are claimed in runs, one atomic operation per run.
    pub fn put_many(&self, values: &[T]) {
        let mut done = 0;
        while done < values.len() {
            done += self
                .ring
                .push_slice(&Futex, owner_id(), &values[done..], None);
        }
    }

    /// Puts `values` in order, waiting for free slots at most `timeout`;
    /// returns how many were put (all of them unless the timeout passed).
    pub fn put_many_timeout(&self, values: &[T], timeout: Duration) -> usize {
        self.ring
            .push_slice(&Futex, owner_id(), values, deadline(timeout))
    }

    /// Puts as many of `values` as there are free slots now, in order;
    /// returns how many.
    pub fn try_put_many(&self, values: &[T]) -> usize {
        self.ring.try_push_slice(&Futex, owner_id(), values)
    }

    /// Gets up to `out.len()` values into `out[..n]`, oldest first, waiting
    /// as long as it takes for the first one; returns `n` (at least 1 unless
    /// `out` is empty).
    pub fn get_many(&self, out: &mut [T]) -> usize {
        if out.is_empty() {
            return 0;
        }
        loop {
            let n = self.ring.pop_slice(&Futex, owner_id(), out, None);
            if n > 0 {
                return n;
            }
        }
    }

    /// Gets up to `out.len()` values into `out[..n]`, oldest first, waiting
    /// at most `timeout` for the first one; returns `n` (0 on timeout).
    pub fn get_many_timeout(&self, out: &mut [T], timeout: Duration) -> usize {
        self.ring
            .pop_slice(&Futex, owner_id(), out, deadline(timeout))
    }

    /// Gets the values that are ready now, up to `out.len()`, into
    /// `out[..n]`; returns `n`.
    pub fn try_get_many(&self, out: &mut [T]) -> usize {
        self.ring.try_pop_slice(&Futex, owner_id(), out)
    }
}

impl<T: ShmSafe> crate::wait::sealed::Sealed for PodQueue<T> {
    fn look(&self) -> crate::wait::sealed::Look<'_> {
        self.ring.watch_pop().into()
    }
}

crate::share::share_one_region!("PodQueue", PodQueue<T>, [T: ShmSafe]);
