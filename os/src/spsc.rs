//! A single-producer single-consumer channel of plain-old-data values in
//! shared memory: the fastest way to stream values from one process to
//! another.
//!
//! [`channel`] makes both ends at once. Move each end into the process that
//! uses it (with `fork`, the parent drops the end it handed to the child):
//! at any time at most one process may use the [`Producer`] and one the
//! [`Consumer`]. Each end keeps a cached copy of the other end's position,
//! so a push or pop touches shared memory only for its values and one atomic
//! swap, and a batch (`push_slice`, `pop_slice`) pays that swap once.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::ShmSafe;
use mproc_core::spsc::{self as ring, Spsc};

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, anonymous, deadline};
use crate::process::origin;
use crate::queue::{GetError, PutError};

/// Makes a channel of `capacity` slots (at least 1) in a new anonymous
/// shared region, which children made with `fork` inherit.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = mproc_os::spsc::channel::<u32>(1024)?;
/// tx.push_slice(&[1, 2, 3]);
/// let mut out = [0; 16];
/// assert_eq!(rx.pop_slice(&mut out), 3);
/// assert_eq!(out[..3], [1, 2, 3]);
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub fn channel<T: ShmSafe>(capacity: usize) -> Result<(Producer<T>, Consumer<T>)> {
    let region = anonymous(Spsc::<T>::layout(capacity as u64))?;
    // SAFETY: the region is mapped read/write for `len` bytes as long as the
    // `Arc` held by both ends lives, and nobody else uses it yet.
    let spsc =
        unsafe { Spsc::<T>::create(region.as_ptr(), region.len(), capacity as u64, origin())? };
    // SAFETY: these are the only producer and consumer ever made for this
    // ring; each is moved (not copied) wherever it goes.
    let (tx, rx) = unsafe { (spsc.producer()?, spsc.consumer()?) };
    let region = Arc::new(region);
    Ok((
        Producer {
            ring: tx,
            _region: region.clone(),
        },
        Consumer {
            ring: rx,
            _region: region,
        },
    ))
}

/// The sending end of a [`channel`].
pub struct Producer<T: ShmSafe> {
    ring: ring::Producer<T>,
    _region: Mapping,
}

impl<T: ShmSafe> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl<T: ShmSafe> Producer<T> {
    /// Pushes `value`, waiting for a free slot as long as it takes.
    #[inline]
    pub fn push(&mut self, value: T) {
        let _ = self.ring.push(&Futex, value, None);
    }

    /// Pushes `value`, waiting at most `timeout`; on timeout the value comes
    /// back in [`PutError::Full`].
    #[inline]
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        Ok(self.ring.push(&Futex, value, deadline(timeout))?)
    }

    /// Pushes `value` if a slot is free now.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), PutError<T>> {
        Ok(self.ring.try_push(&Futex, value)?)
    }

    /// Pushes all of `values` in order, waiting for space as long as it
    /// takes.
    pub fn push_slice(&mut self, values: &[T]) {
        let mut done = 0;
        while done < values.len() {
            done += self.ring.push_slice(&Futex, &values[done..], None);
        }
    }

    /// Pushes `values` in order, waiting for space at most `timeout`;
    /// returns how many were pushed.
    pub fn push_slice_timeout(&mut self, values: &[T], timeout: Duration) -> usize {
        self.ring.push_slice(&Futex, values, deadline(timeout))
    }

    /// Pushes as many of `values` as fit now; returns how many.
    #[inline]
    pub fn try_push_slice(&mut self, values: &[T]) -> usize {
        self.ring.try_push_slice(&Futex, values)
    }

    /// Free slots now.
    pub fn free_len(&mut self) -> usize {
        self.ring.free_len()
    }
}

/// The receiving end of a [`channel`].
pub struct Consumer<T: ShmSafe> {
    ring: ring::Consumer<T>,
    _region: Mapping,
}

impl<T: ShmSafe> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl<T: ShmSafe> Consumer<T> {
    /// Pops the oldest value, waiting as long as it takes.
    #[inline]
    pub fn pop(&mut self) -> T {
        loop {
            if let Ok(value) = self.ring.pop(&Futex, None) {
                return value;
            }
        }
    }

    /// Pops the oldest value, waiting at most `timeout`.
    #[inline]
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, GetError> {
        Ok(self.ring.pop(&Futex, deadline(timeout))?)
    }

    /// Pops the oldest value if there is one now.
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, GetError> {
        Ok(self.ring.try_pop(&Futex)?)
    }

    /// Pops up to `out.len()` values into `out[..n]`, waiting as long as it
    /// takes for the first; returns `n` (at least 1 unless `out` is empty).
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize {
        if out.is_empty() {
            return 0;
        }
        loop {
            let n = self.ring.pop_slice(&Futex, out, None);
            if n > 0 {
                return n;
            }
        }
    }

    /// Pops up to `out.len()` values into `out[..n]`, waiting at most
    /// `timeout` for the first; returns `n` (0 on timeout).
    pub fn pop_slice_timeout(&mut self, out: &mut [T], timeout: Duration) -> usize {
        self.ring.pop_slice(&Futex, out, deadline(timeout))
    }

    /// Pops the values ready now, up to `out.len()`; returns how many.
    #[inline]
    pub fn try_pop_slice(&mut self, out: &mut [T]) -> usize {
        self.ring.try_pop_slice(&Futex, out)
    }

    /// Values ready now.
    pub fn len(&mut self) -> usize {
        self.ring.len()
    }

    /// Whether no value is ready now.
    pub fn is_empty(&mut self) -> bool {
        self.ring.is_empty()
    }
}
