//! A count of unfinished tasks that processes wait on until it reaches
//! zero: the counter behind `JoinableQueue` (Python's `task_done` and
//! `join`).
//!
//! # State word
//!
//! | bits   | meaning                                                    |
//! |--------|------------------------------------------------------------|
//! | 0..31  | unfinished tasks                                           |
//! | 31     | `WAITERS`: somebody may sleep until the count is zero      |
//!
//! [`add`](RawWaitGroup::add) and [`done`](RawWaitGroup::done) are one CAS
//! each; `done` that brings the count to zero clears `WAITERS` in the same
//! CAS and, if it was set, wakes every sleeper. A waiter sets `WAITERS` and
//! sleeps on the word itself, so any change of the word (a new task, the
//! last one done) ends its sleep and it looks again.

use core::fmt;
use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::{TimedOut, Wait};

const WAITERS: u32 = 1 << 31;
const COUNT: u32 = WAITERS - 1;

/// `done` was called more times than tasks were added; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyDone;

impl fmt::Display for TooManyDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than there were tasks")
    }
}

impl core::error::Error for TooManyDone {}

/// Adding tasks would pass 2^31 - 1 unfinished ones; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTasks;

impl fmt::Display for TooManyTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("more than 2^31 - 1 unfinished tasks")
    }
}

impl core::error::Error for TooManyTasks {}

/// A count of unfinished tasks that can live in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::{Spin, waitgroup::RawWaitGroup};
///
/// let mut word = 0u32;
/// // SAFETY: `word` is 4 aligned bytes used only through `group`.
/// let group = unsafe { RawWaitGroup::init(std::ptr::NonNull::from(&mut word).cast()) };
/// group.add(2).unwrap();
/// group.done(&Spin).unwrap();
/// assert_eq!(group.count(), 1);
/// group.done(&Spin).unwrap();
/// assert!(group.done(&Spin).is_err());
/// group.wait(&Spin, None).unwrap(); // the count is zero: returns at once
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawWaitGroup {
    state: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawWaitGroup, u32);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawWaitGroup, u32);

impl RawWaitGroup {
    /// The most unfinished tasks: 2^31 - 1.
    pub const MAX: u32 = COUNT;

    /// Makes a group with no tasks out of the 4 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 4 initialized bytes
    /// for `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawWaitGroup>) -> &'a RawWaitGroup {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*ptr.as_ptr()).state, 0);
            ptr.as_ref()
        }
    }

    /// The layout of a wait-group object (header + group) in its own
    /// region.
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawWaitGroup, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a wait group always fit"),
        }
    }

    /// Creates a wait-group object (header + group with no tasks) at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        origin: Origin,
    ) -> Result<&'a RawWaitGroup, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawWaitGroup, ()>(
                mem,
                len,
                ObjectKind::WaitGroup,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let group = Self::init(parts.body);
            parts.publish();
            Ok(group)
        }
    }

    /// Attaches to a wait-group object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(
        mem: NonNull<u8>,
        len: usize,
    ) -> Result<&'a RawWaitGroup, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawWaitGroup, ()>(
                mem,
                len,
                ObjectKind::WaitGroup,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// Unfinished tasks (a snapshot).
    pub fn count(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & COUNT
    }

    /// Adds `tasks` unfinished tasks.
    pub fn add(&self, tasks: u32) -> Result<(), TooManyTasks> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let count = (state & COUNT)
                .checked_add(tasks)
                .filter(|&count| count <= COUNT)
                .ok_or(TooManyTasks)?;
            match self.state.compare_exchange_weak(
                state,
                (state & WAITERS) | count,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => state = now,
            }
        }
    }

    /// Marks one task done; at zero, wakes every waiter.
    pub fn done<W: Wait>(&self, w: &W) -> Result<(), TooManyDone> {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let count = state & COUNT;
            if count == 0 {
                return Err(TooManyDone);
            }
            // The last task clears WAITERS: the sleepers are woken below.
            let new = if count == 1 {
                0
            } else {
                (state & WAITERS) | (count - 1)
            };
            // Release: what the task did happens before a waiter's Acquire
            // load that sees the count drop.
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if new == 0 && state & WAITERS != 0 {
                        w.wake(&self.state, u32::MAX);
                    }
                    return Ok(());
                }
                Err(now) => state = now,
            }
        }
    }

    /// Waits until no task is unfinished, until `deadline` (`None`:
    /// forever).
    pub fn wait<W: Wait>(&self, w: &W, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        let mut round = 0;
        loop {
            // Acquire pairs with the Release CAS of the last `done`.
            let state = self.state.load(Ordering::Acquire);
            if state & COUNT == 0 {
                return Ok(());
            }
            if round < w.spin_rounds() && !deadline.is_some_and(|d| w.expired(d)) {
                w.relax(round);
                round += 1;
                continue;
            }
            if state & WAITERS == 0
                && self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | WAITERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            if w.wait(&self.state, state | WAITERS, deadline).is_err() {
                // Out of time; a last look.
                return if self.state.load(Ordering::Acquire) & COUNT == 0 {
                    Ok(())
                } else {
                    Err(TimedOut)
                };
            }
        }
    }
}
