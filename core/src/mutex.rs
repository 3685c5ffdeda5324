//! A mutex on one 32-bit word that records its owner, and finds out when
//! that owner died.
//!
//! # State word
//!
//! | bits   | meaning                                                          |
//! |--------|------------------------------------------------------------------|
//! | 0..30  | owner id ([`OwnerId`]); 0 when unlocked                           |
//! | 30     | `INCONSISTENT`: an owner died holding the lock, and no owner since has marked the data consistent |
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
//!
//! # A dead owner
//!
//! The kernel keeps one robust-futex list per thread and the C library
//! already registers it, so mproc cannot have the kernel release its locks
//! when a process dies. Instead, beside the word, the owner records its
//! [`OwnerId`] *with its start stamp* (`holder`, a `u64`, written right
//! after the CAS that takes the lock and cleared right before the swap that
//! releases it). A sleeping locker wakes up every
//! [`Wait::check_deadline`] interval (10 ms in mproc-os) and asks
//! [`Wait::owner_gone`] whether the owner in the word still lives: with the
//! start stamp when `holder` names the same id, so that a process that
//! reuses the dead owner's pid is recognised as another process. When the
//! owner is gone the locker takes the lock over with a CAS from the exact
//! word it examined (so two lockers that both see the death cannot both win)
//! and sets `INCONSISTENT`.
//!
//! `INCONSISTENT` stays set across unlocks until an owner calls
//! [`RawMutex::mark_consistent`]: like a robust pthread mutex's
//! `EOWNERDEAD`, every owner learns ([`RawMutex::is_inconsistent`]) that the
//! data the lock protects may be half-updated, until one of them repairs it.
//! Unlike a robust pthread mutex the lock never becomes unusable.

use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, AtomicU64, Ordering, init_u32, init_u64};
use crate::wait::{OwnerId, TimedOut, Wait};

const OWNER_MASK: u32 = OwnerId::MAX;
/// An owner died holding the lock; the data has not been repaired since.
const INCONSISTENT: u32 = 1 << 30;
const WAITERS: u32 = 1 << 31;

/// What a successful lock found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was released by its last owner, and no owner died holding it
    /// since the data was last marked consistent.
    Clean,
    /// An owner died holding the lock (this call or an earlier one took it
    /// over), and no owner has called [`RawMutex::mark_consistent`] since:
    /// the protected data may be half-updated.
    OwnerDied,
}

/// A mutual-exclusion lock that can live in shared memory.
///
/// It protects no data of its own: the typed wrappers (`mproc::Lock`,
/// [`crate::cell::SharedCell`]) pair it with what it guards.
///
/// # Examples
///
/// ```
/// use mproc_core::{OwnerId, Spin, mutex::{Acquired, RawMutex}};
///
/// let mut word = [0u64; 2];
/// // SAFETY: `word` is 16 aligned bytes used only through `mutex`.
/// let mutex = unsafe { RawMutex::init(std::ptr::NonNull::from(&mut word).cast()) };
/// let me = OwnerId::new(42).unwrap();
/// assert!(mutex.try_lock(me));
/// assert_eq!(mutex.owner(), Some(42));
/// assert!(!mutex.try_lock(OwnerId::new(7).unwrap()));
/// // SAFETY: we hold it.
/// unsafe { mutex.unlock(&Spin) };
/// assert_eq!(mutex.lock(&Spin, me, None), Ok(Acquired::Clean));
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawMutex {
    state: AtomicU32,
    reserved: AtomicU32,
    /// The owner's [`OwnerId::pack`]: written after the CAS that takes the
    /// lock, cleared (0) before the swap that releases it.
    holder: AtomicU64,
}

#[cfg(not(loom))]
mod pinned {
    use super::RawMutex;
    use core::mem::offset_of;
    use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

    assert_eq_size!(RawMutex, [u64; 2]);
    assert_eq_align!(RawMutex, u64);
    const_assert_eq!(offset_of!(RawMutex, state), 0);
    const_assert_eq!(offset_of!(RawMutex, holder), 8);
}

impl RawMutex {
    /// Makes an unlocked mutex out of the 16 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 16 initialized bytes
    /// for `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawMutex>) -> &'a RawMutex {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*ptr.as_ptr()).state, 0);
            init_u32(&raw mut (*ptr.as_ptr()).reserved, 0);
            init_u64(&raw mut (*ptr.as_ptr()).holder, 0);
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

    /// Takes the lock if it is free (whether or not it is
    /// [inconsistent](Self::is_inconsistent)). It never checks whether an
    /// owner is alive: a lock held by a dead process stays taken for
    /// `try_lock`, and [`lock`](Self::lock) (with a deadline if need be)
    /// takes it over.
    #[inline]
    pub fn try_lock(&self, id: OwnerId) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        let taken = state & OWNER_MASK == 0
            && self
                .state
                // Acquire pairs with the Release swap in `unlock`.
                .compare_exchange(
                    state,
                    state | id.get(),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok();
        if taken {
            self.record(id);
        }
        taken
    }

    /// Records the new owner beside the word (see the module docs).
    #[inline]
    fn record(&self, id: OwnerId) {
        self.holder.store(id.pack(), Ordering::Relaxed);
    }

    /// Takes the lock, waiting until `deadline` (`None`: forever).
    ///
    /// While it waits it checks, every [`Wait::check_deadline`] interval,
    /// whether the owner is gone ([`Wait::owner_gone`]); if so it takes the
    /// lock over and returns [`Acquired::OwnerDied`]. So it returns
    /// [`Acquired::OwnerDied`] when an owner died holding the lock and no
    /// owner has [marked it consistent](Self::mark_consistent) since.
    #[inline]
    pub fn lock<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<Acquired, TimedOut> {
        if self
            .state
            // Acquire pairs with the Release swap in `unlock`.
            .compare_exchange_weak(0, id.get(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.record(id);
            return Ok(Acquired::Clean);
        }
        self.lock_slow(w, id, deadline)?;
        Ok(self.acquired())
    }

    /// Takes the lock over if its owner is gone ([`Wait::owner_gone`]),
    /// without waiting; returns whether it did. The lock is then held by
    /// `id` and [inconsistent](Self::is_inconsistent), as after a
    /// [`lock`](Self::lock) that returned [`Acquired::OwnerDied`].
    ///
    /// For a party that waits, not for the lock, but for what its owner
    /// does while holding it (a frame ring's reader waits for the writer
    /// in the middle of a frame), and repairs the data if the owner died.
    #[cold]
    pub fn take_over_if_gone<W: Wait>(&self, w: &W, id: OwnerId) -> bool {
        let seen = self.state.load(Ordering::Relaxed);
        self.take_over_if_dead(w, id, seen)
    }

    /// What the owner (the caller) finds in the word.
    #[inline]
    fn acquired(&self) -> Acquired {
        // Only an owner changes INCONSISTENT while the lock is held.
        if self.state.load(Ordering::Relaxed) & INCONSISTENT != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        }
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
                    Ok(_) => {
                        self.record(id);
                        return Ok(());
                    }
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
            let (until, check) = w.check_deadline(deadline);
            if w.wait(&self.state, state, until).is_err() {
                if !check || deadline.is_some_and(|d| w.expired(d)) {
                    // Out of time; a last look. WAITERS stays set, so
                    // sleepers behind us are still woken by the next unlock.
                    return if self.try_lock(id) {
                        Ok(())
                    } else {
                        Err(TimedOut)
                    };
                }
                // A liveness check is due.
                if self.take_over_if_dead(w, id, state) {
                    return Ok(());
                }
            }
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// Takes the lock over if its word still holds `seen` and the owner in
    /// it is gone; returns whether it did.
    #[cold]
    fn take_over_if_dead<W: Wait>(&self, w: &W, id: OwnerId, seen: u32) -> bool {
        let owner = seen & OWNER_MASK;
        if owner == 0 {
            return false;
        }
        // Acquire pairs with the Release swap in `unlock` (through the
        // release sequence the owner's CAS continues): a `holder` read
        // after this load is the owner's record or a later one, never an
        // earlier owner's.
        if self.state.load(Ordering::Acquire) != seen {
            return false;
        }
        let start = OwnerId::unpack(self.holder.load(Ordering::Relaxed))
            .filter(|holder| holder.get() == owner)
            .map(OwnerId::start);
        // The record may belong to a later owner with the same id only if
        // the word changed in between: look again.
        if self.state.load(Ordering::Acquire) != seen || !w.owner_gone(owner, start) {
            return false;
        }
        let taken = self
            .state
            .compare_exchange(
                seen,
                id.get() | WAITERS | INCONSISTENT,
                // Acquire: what the dead owner wrote is visible to the new one.
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok();
        if taken {
            self.record(id);
        }
        taken
    }

    /// Releases the lock.
    ///
    /// An [inconsistent](Self::is_inconsistent) lock stays inconsistent.
    ///
    /// # Safety
    /// The caller holds the lock (it locked it and has not unlocked it since).
    #[inline]
    pub unsafe fn unlock<W: Wait>(&self, w: &W) {
        // Only an owner changes INCONSISTENT while the lock is held.
        let keep = self.state.load(Ordering::Relaxed) & INCONSISTENT;
        self.holder.store(0, Ordering::Relaxed);
        // Release pairs with the Acquire of the next locker (and orders the
        // clearing of `holder` before the release).
        let state = self.state.swap(keep, Ordering::Release);
        if state & WAITERS != 0 {
            self.wake_one(w);
        }
    }

    /// Marks the protected data consistent again after an owner died: later
    /// owners get [`Acquired::Clean`].
    ///
    /// # Safety
    /// The caller holds the lock.
    pub unsafe fn mark_consistent(&self) {
        self.state.fetch_and(!INCONSISTENT, Ordering::Relaxed);
    }

    /// Whether an owner died holding the lock and nobody has marked it
    /// consistent since (a snapshot; exact for the owner).
    pub fn is_inconsistent(&self) -> bool {
        self.state.load(Ordering::Relaxed) & INCONSISTENT != 0
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

    /// Whether `id` (with its start stamp) holds the lock. Exact when asked
    /// by `id` itself: only `id` writes itself into the word and its record,
    /// and only `id` clears them. A process that reuses a dead owner's pid
    /// has another start stamp, so it does not hold the dead owner's lock.
    #[inline]
    pub fn held_by(&self, id: OwnerId) -> bool {
        self.state.load(Ordering::Relaxed) & OWNER_MASK == id.get()
            && self.holder.load(Ordering::Relaxed) == id.pack()
    }

    /// The id of the holder, if any (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) & OWNER_MASK {
            0 => None,
            id => Some(id),
        }
    }
}
