//! A mutex on one 32-bit word that records its owner.
//!
//! # State word
//!
//! | bits   | meaning                                                          |
//! |--------|------------------------------------------------------------------|
//! | 0..30  | owner id ([`OwnerId`]); 0 when unlocked                           |
//! | 30     | reserved (for marking a dead owner)                               |
//! | 31     | `WAITERS`: somebody may sleep on the word, so unlock must wake   |
//!
//! Locking is one CAS from 0 to the caller's id, so the lock and its owner
//! are written together: a process that dies holding the lock leaves its id
//! behind, for a later acquirer to find. Contended lockers spin for
//! [`Wait::spin_rounds`], then set `WAITERS` and sleep on the word. Unlock
//! swaps in 0 and wakes one sleeper only if `WAITERS` was set. As in
//! Drepper's "Futexes Are Tricky", a locker that has slept takes the lock
//! with `WAITERS` set, since others may still sleep; one spare wake-up is the
//! price of never losing one. A locker that gives up on its deadline leaves
//! `WAITERS` set for the same reason.

use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::{OwnerId, TimedOut, Wait};

const OWNER_MASK: u32 = OwnerId::MAX;
const WAITERS: u32 = 1 << 31;

/// A mutual-exclusion lock that can live in shared memory.
///
/// It protects no data of its own: the typed wrappers (`mproc::Lock`,
/// [`crate::cell::SharedCell`]) pair it with what it guards.
///
/// # Examples
///
/// ```
/// use mproc_core::{OwnerId, Spin, mutex::RawMutex};
///
/// let mut word = 0u32;
/// // SAFETY: `word` is 4 aligned bytes used only through `mutex`.
/// let mutex = unsafe { RawMutex::init(std::ptr::NonNull::from(&mut word).cast()) };
/// let me = OwnerId::new(42).unwrap();
/// assert!(mutex.try_lock(me));
/// assert_eq!(mutex.owner(), Some(42));
/// assert!(!mutex.try_lock(OwnerId::new(7).unwrap()));
/// // SAFETY: we hold it.
/// unsafe { mutex.unlock(&Spin) };
/// mutex.lock(&Spin, me, None).unwrap();
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawMutex {
    state: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawMutex, u32);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawMutex, u32);

impl RawMutex {
    /// Makes an unlocked mutex out of the 4 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 4 initialized bytes for
    /// `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawMutex>) -> &'a RawMutex {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*ptr.as_ptr()).state, 0);
            ptr.as_ref()
        }
    }

    /// The layout of a mutex object (header + mutex) in its own region.
    pub fn object_layout() -> ObjectLayout {
        // A header and 4 bytes always fit.
        match ObjectLayout::new::<RawMutex, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a mutex always fit"),
        }
    }

    /// Creates a mutex object (header + unlocked mutex) at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        origin: Origin,
    ) -> Result<&'a RawMutex, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawMutex, ()>(
                mem,
                len,
                ObjectKind::Mutex,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let mutex = Self::init(parts.body);
            parts.publish();
            Ok(mutex)
        }
    }

    /// Attaches to a mutex object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a RawMutex, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawMutex, ()>(
                mem,
                len,
                ObjectKind::Mutex,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self, id: OwnerId) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        state & OWNER_MASK == 0
            && self
                .state
                // Acquire pairs with the Release swap in `unlock`.
                .compare_exchange(
                    state,
                    state | id.get(),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever).
    #[inline]
    pub fn lock<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<(), TimedOut> {
        if self
            .state
            // Acquire pairs with the Release swap in `unlock`.
            .compare_exchange_weak(0, id.get(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        self.lock_slow(w, id, deadline)
    }

    #[cold]
    fn lock_slow<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<(), TimedOut> {
        // No spinning for a call whose deadline has already passed.
        let spins = match deadline {
            Some(d) if w.expired(d) => 0,
            _ => w.spin_rounds(),
        };
        for round in 0..spins {
            if self.try_lock(id) {
                return Ok(());
            }
            w.relax(round);
        }
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & OWNER_MASK == 0 {
                // Free: take it, keeping WAITERS set since others may sleep.
                match self.state.compare_exchange_weak(
                    state,
                    state | id.get() | WAITERS,
                    // Acquire pairs with the Release swap in `unlock`.
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(()),
                    Err(now) => {
                        state = now;
                        continue;
                    }
                }
            }
            if state & WAITERS == 0 {
                if let Err(now) = self.state.compare_exchange_weak(
                    state,
                    state | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = now;
                    continue;
                }
                state |= WAITERS;
            }
            if w.wait(&self.state, state, deadline).is_err() {
                // Out of time; a last look. WAITERS stays set, so sleepers
                // behind us are still woken by the next unlock.
                return if self.try_lock(id) {
                    Ok(())
                } else {
                    Err(TimedOut)
                };
            }
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller holds the lock (it locked it and has not unlocked it since).
    #[inline]
    pub unsafe fn unlock<W: Wait>(&self, w: &W) {
        // Release pairs with the Acquire of the next locker.
        let state = self.state.swap(0, Ordering::Release);
        if state & WAITERS != 0 {
            self.wake_one(w);
        }
    }

    #[cold]
    fn wake_one<W: Wait>(&self, w: &W) {
        w.wake(&self.state, 1);
    }

    /// Whether somebody holds the lock (a snapshot). When it is free, what
    /// the last holder did before unlocking is visible (Acquire pairs with
    /// the Release swap in `unlock`).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Acquire) & OWNER_MASK != 0
    }

    /// The id of the holder, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) & OWNER_MASK {
            0 => None,
            id => Some(id),
        }
    }
}
