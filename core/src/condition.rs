//! A condition variable with its own mutex (Python's `Condition()`, which
//! makes its own lock).
//!
//! # State words
//!
//! `mutex`: a [`RawMutex`] (owner id in bits 0..30, `INCONSISTENT` in bit
//! 30, `WAITERS` in bit 31 of its word, and its owner record). It is the lock that waiters hold when they check their
//! condition; [`RawCondition::mutex`] hands it out.
//!
//! `seq`, the word waiters sleep on:
//!
//! | bits  | meaning                                               |
//! |-------|-------------------------------------------------------|
//! | 0..32 | notify sequence: +1 (wrapping) on every notify        |
//!
//! `waiters`:
//!
//! | bits  | meaning                                                     |
//! |-------|-------------------------------------------------------------|
//! | 0..32 | waiters between their registration and their return        |
//!
//! The classic futex condition variable. A waiter, holding the mutex, reads
//! `seq`, registers in `waiters`, unlocks the mutex and sleeps while `seq`
//! still holds what it read; then it locks the mutex again. A notifier adds
//! 1 to `seq` and, if anybody is registered, wakes up to `n` sleepers on it.
//!
//! No notify is lost between the waiter's unlock and its sleep: whoever
//! changed the waited-for state did so under the mutex, so after the
//! waiter's read of `seq` and its registration; its notify then bumps `seq`
//! past what the waiter read (so the sleep returns at once) and sees the
//! registration (so it wakes the sleeper). A notify with nothing before it
//! under the mutex may count as one that came before the wait.
//!
//! A waiter returns when `seq` has moved (or its deadline passed), so a
//! notify may wake more waiters than asked (those registered but not yet
//! asleep), and a waiter may return for a notify sent before a later one it
//! was meant for: waiters re-check their condition, as with every condition
//! variable. `seq` wraps after 2^32 notifies; a waiter that sleeps through
//! exactly that many misses its wake-up (the same bound as glibc's and
//! Rust's own futex condition variables).

use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::mutex::RawMutex;
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::{OwnerId, TimedOut, Wait};

/// A condition variable and the mutex it is used with, in shared memory.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use mproc_core::condition::RawCondition;
/// use mproc_core::{OwnerId, Spin};
///
/// let mut words = [0u32; 3];
/// // SAFETY: `words` is 12 aligned bytes used only through `cond`.
/// let cond = unsafe { RawCondition::init(std::ptr::NonNull::from(&mut words).cast()) };
/// let (me, other) = (OwnerId::new(1).unwrap(), OwnerId::new(2).unwrap());
/// let ready = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         cond.mutex().lock(&Spin, other, None).unwrap();
///         ready.store(true, Ordering::Relaxed);
///         // SAFETY: this thread holds the mutex, as `other`.
///         unsafe { cond.mutex().unlock(&Spin) };
///         cond.notify_all(&Spin);
///     });
///     cond.mutex().lock(&Spin, me, None).unwrap();
///     while !ready.load(Ordering::Relaxed) {
///         // SAFETY: this thread holds the mutex, as `me`.
///         unsafe { cond.wait(&Spin, me, None) }.unwrap();
///     }
///     // SAFETY: as above.
///     unsafe { cond.mutex().unlock(&Spin) };
/// });
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawCondition {
    mutex: RawMutex,
    seq: AtomicU32,
    waiters: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawCondition, [u64; 3]);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawCondition, u64);

impl RawCondition {
    /// Makes a condition with an unlocked mutex out of the 24 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 24 initialized bytes
    /// for `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawCondition>) -> &'a RawCondition {
        let p = ptr.as_ptr();
        // SAFETY: forwarded from the caller; the fields lie inside `*p`.
        unsafe {
            RawMutex::init(NonNull::new_unchecked(&raw mut (*p).mutex));
            init_u32(&raw mut (*p).seq, 0);
            init_u32(&raw mut (*p).waiters, 0);
            ptr.as_ref()
        }
    }

    /// The layout of a condition object (header + condition).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawCondition, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a condition always fit"),
        }
    }

    /// Creates a condition object (header + condition, mutex unlocked) at
    /// `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        origin: Origin,
    ) -> Result<&'a RawCondition, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawCondition, ()>(
                mem,
                len,
                ObjectKind::Condition,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let cond = Self::init(parts.body);
            parts.publish();
            Ok(cond)
        }
    }

    /// Attaches to a condition object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(
        mem: NonNull<u8>,
        len: usize,
    ) -> Result<&'a RawCondition, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawCondition, ()>(
                mem,
                len,
                ObjectKind::Condition,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// The mutex that waiters hold while they check their condition.
    #[inline]
    pub fn mutex(&self) -> &RawMutex {
        &self.mutex
    }

    /// Unlocks the mutex, sleeps until a notify or `deadline` (`None`:
    /// forever), and locks the mutex again (without a deadline: it holds
    /// the mutex when it returns, whatever the outcome).
    ///
    /// Returns `Ok` after a notify (or a spurious wake-up), `Err(TimedOut)`
    /// if the deadline passed first.
    ///
    /// # Safety
    /// The caller holds [`Self::mutex`] under `id`.
    pub unsafe fn wait<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<(), TimedOut> {
        // Read under the mutex: every notify that follows a state change
        // made under the mutex after this point moves `seq` past it.
        let seq = self.seq.load(Ordering::Relaxed);
        // SeqCst, as the notifier's bump of `seq` and its load of `waiters`:
        // a notifier ordered after us by the mutex sees the registration.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller holds the mutex.
        unsafe { self.mutex.unlock(w) };
        let result = loop {
            let slept = w.wait(&self.seq, seq, deadline);
            if self.seq.load(Ordering::Relaxed) != seq {
                // Notified (possibly just as the deadline passed).
                break Ok(());
            }
            if slept.is_err() {
                break Err(TimedOut);
            }
            // A signal or a spurious return: sleep again.
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        // Without a deadline the lock only returns once it is taken.
        let _ = self.mutex.lock(w, id, None);
        result
    }

    /// Wakes up to `count` waiters (`u32::MAX`: all).
    ///
    /// The caller need not hold the mutex, but what the waiters wait for
    /// must have been changed under it (see the module docs).
    #[inline]
    pub fn notify<W: Wait>(&self, w: &W, count: u32) {
        if count == 0 {
            return;
        }
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake(w, count);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all<W: Wait>(&self, w: &W) {
        self.notify(w, u32::MAX);
    }

    #[cold]
    fn wake<W: Wait>(&self, w: &W, count: u32) {
        w.wake(&self.seq, count);
    }

    /// Waiters between their registration and their return (a snapshot).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}
