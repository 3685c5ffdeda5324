//! The algorithms of [mproc], without an operating system.
//!
//! `mproc-core` is `#![no_std]` and never allocates. Its types live in memory
//! that the caller provides, usually a shared mapping that several processes
//! see at different addresses, so they hold offsets and never pointers, and
//! their layouts are pinned (see [`layout`]). They block only through the
//! [`Wait`] hook; `mproc-os` implements it with shared futexes.
//!
//! | primitive | module | progress |
//! |---|---|---|
//! | bounded MPMC ring of plain data, batch push/pop | [`mpmc`] | `try_*`: lock-free; a claimer stopped between claim and publish holds up the slots behind it until a blocking waiter finds it dead (its slot records it) and skips the slot |
//! | SPSC ring, batch push/pop | [`spsc`] | `try_*`: wait-free |
//! | ring of byte frames (messages of any length), one writer and one reader at a time | [`frames`] | blocking; a reader in the middle of a frame waits for its writer |
//! | mutex with owner id | [`mutex`] | blocking; uncontended lock and unlock are one atomic each (and one store of the owner record); a waiter takes over from a dead owner and reports it |
//! | reentrant mutex (a mutex and a count) | [`rlock`] | blocking; a relock by its owner takes no read-modify-write |
//! | counting semaphore, bounded semaphore | [`semaphore`] | blocking; uncontended acquire and release are one CAS each |
//! | condition variable with its mutex | [`condition`] | blocking; a notify with no waiter makes no wake-up call |
//! | barrier that breaks, reusable | [`barrier`] | blocking; each arrival is one CAS |
//! | event | [`event`] | blocking; `set` and `clear` are one atomic each |
//! | lock-protected array of values | [`cell`] | blocking (its mutex) |
//! | count of unfinished tasks, wait for zero | [`waitgroup`] | blocking; `add` and `done` are one CAS each |
//!
//! Blocking calls spin for [`Wait::spin_rounds`] rounds, then sleep; a
//! wake-up is issued only when somebody sleeps. Every algorithm is model
//! checked with [loom] (`core/tests/loom_*.rs`, built with
//! `RUSTFLAGS="--cfg loom"`).
//!
//! [mproc]: https://docs.rs/mproc
//! [loom]: https://docs.rs/loom

#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(loom)]
extern crate std;

pub mod barrier;
pub mod cell;
pub mod condition;
pub mod event;
pub mod frames;
pub mod layout;
pub mod mpmc;
pub mod mutex;
pub mod rlock;
pub mod semaphore;
pub mod spsc;
pub mod sync;
pub mod wait;
pub mod waitgroup;

#[cfg(loom)]
pub mod model;

use core::fmt;

pub use layout::{LayoutError, ObjectKind, Origin, ShmSafe, TypeFingerprint};
pub use wait::{OwnerId, Readiness, Spin, TimedOut, Wait};

/// Why a push did not happen. The value is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError<T> {
    /// No slot was free (before the deadline, for a blocking push).
    Full(T),
}

impl<T> PushError<T> {
    /// The value that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) => value,
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the queue is full"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

/// Why a pop returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PopError {
    /// No value was ready (before the deadline, for a blocking pop).
    Empty,
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the queue is empty"),
        }
    }
}

impl core::error::Error for PopError {}

/// Views initialized values as possibly-uninitialized ones, to be overwritten.
pub(crate) fn as_uninit<T: Copy>(values: &mut [T]) -> &mut [core::mem::MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and callers only write
    // initialized values through the view, so `values` stays initialized.
    unsafe { &mut *(values as *mut [T] as *mut [core::mem::MaybeUninit<T>]) }
}
