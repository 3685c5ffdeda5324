//! The one door to atomics and interior mutability in mproc-core.
//!
//! Every algorithm in this crate imports its atomics, fences and cells from
//! here. In a normal build they are `core`'s; built with
//! `RUSTFLAGS="--cfg loom"` they are [loom]'s, so the models in
//! `core/tests/loom_*.rs` explore every interleaving of the real code. The cfg
//! is named for mproc alone so that it does not flip loom support in other
//! crates. `core/clippy.toml` forbids naming `core::sync::atomic` anywhere else.
//!
//! [loom]: https://docs.rs/loom

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub use core::sync::atomic::Ordering;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, fence};

/// An atomic fence (`core::sync::atomic::fence`, or loom's).
#[cfg(not(loom))]
#[inline]
pub fn fence(order: Ordering) {
    core::sync::atomic::fence(order);
}

/// Defines a `repr(transparent)` newtype over a `core` atomic with the subset
/// of its API that mproc uses, so that clippy's `disallowed-types` can keep
/// the `core` type out of every other module.
#[cfg(not(loom))]
macro_rules! atomic_newtype {
    ($name:ident, $inner:ty, $int:ty) => {
        #[doc = concat!("`", stringify!($inner), "` (loom's under `--cfg loom`).")]
        #[derive(Debug, Default)]
        #[repr(transparent)]
        pub struct $name($inner);

        impl $name {
            /// A new atomic holding `value`.
            #[inline]
            pub const fn new(value: $int) -> Self {
                Self(<$inner>::new(value))
            }

            /// The underlying `core` atomic (for handing to a syscall).
            #[inline]
            pub const fn as_core(&self) -> &$inner {
                &self.0
            }

            /// Loads the value.
            #[inline]
            pub fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }

            /// Stores `value`.
            #[inline]
            pub fn store(&self, value: $int, order: Ordering) {
                self.0.store(value, order)
            }

            /// Stores `value`, returning the previous value.
            #[inline]
            pub fn swap(&self, value: $int, order: Ordering) -> $int {
                self.0.swap(value, order)
            }

            /// Stores `new` if the value is `current`.
            #[inline]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }

            /// Stores `new` if the value is `current`; may fail spuriously.
            #[inline]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }

            /// Adds `value` (wrapping), returning the previous value.
            #[inline]
            pub fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_add(value, order)
            }

            /// Subtracts `value` (wrapping), returning the previous value.
            #[inline]
            pub fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_sub(value, order)
            }

            /// Bitwise "and" with `value`, returning the previous value.
            #[inline]
            pub fn fetch_and(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_and(value, order)
            }

            /// Bitwise "or" with `value`, returning the previous value.
            #[inline]
            pub fn fetch_or(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_or(value, order)
            }
        }
    };
}

#[cfg(not(loom))]
atomic_newtype!(AtomicU32, core::sync::atomic::AtomicU32, u32);
#[cfg(not(loom))]
atomic_newtype!(AtomicU64, core::sync::atomic::AtomicU64, u64);

/// Tells the CPU (or the model checker) that this thread is busy-waiting.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Exponential back-off after a lost race (a failed CAS, a slot a peer is
/// in the middle of updating): `1 << min(step, 6)` spin hints, so that
/// contending parties spread out instead of hammering one cache line.
///
/// Under loom it does nothing: every loop that backs off is bounded without
/// it (a failed CAS means another party made progress; a slot that stays
/// busy ends the claim and the caller waits through [`crate::Wait`]), and a
/// yield here would only multiply the schedules loom explores.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spins for the current step and lengthens the next one.
    #[inline]
    pub(crate) fn spin(&mut self) {
        #[cfg(not(loom))]
        for _ in 0..1u32 << self.step.min(6) {
            core::hint::spin_loop();
        }
        self.step = self.step.saturating_add(1);
    }
}

/// `core::cell::UnsafeCell` behind loom's closure API (`with` / `with_mut`),
/// so that loom can check every access to a slot or cell for data races.
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Runs `f` with a shared pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Writes `value` into the not-yet-shared atomic at `ptr`.
///
/// Outside loom any initialized 4 bytes are a valid `AtomicU32`, so this is a
/// plain (relaxed) store into memory that may hold anything; under loom the
/// atomic carries model state and must be constructed.
///
/// # Safety
/// `ptr` is aligned and valid for reads and writes, and points to initialized
/// memory (any contents) that no other thread or process uses yet.
#[inline]
pub(crate) unsafe fn init_u32(ptr: *mut AtomicU32, value: u32) {
    #[cfg(not(loom))]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and initialized;
    // every bit pattern is a valid `AtomicU32`.
    unsafe {
        (*ptr).store(value, Ordering::Relaxed)
    };
    #[cfg(loom)]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and unshared.
    unsafe {
        ptr.write(AtomicU32::new(value))
    };
}

/// Writes `value` into the not-yet-shared atomic at `ptr`; see [`init_u32`].
///
/// # Safety
/// As for [`init_u32`].
#[inline]
pub(crate) unsafe fn init_u64(ptr: *mut AtomicU64, value: u64) {
    #[cfg(not(loom))]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and initialized;
    // every bit pattern is a valid `AtomicU64`.
    unsafe {
        (*ptr).store(value, Ordering::Relaxed)
    };
    #[cfg(loom)]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and unshared.
    unsafe {
        ptr.write(AtomicU64::new(value))
    };
}

/// Puts `value` into the not-yet-shared cell at `ptr`.
///
/// Outside loom a cell is just its bytes; under loom it carries model state
/// and must be constructed.
///
/// # Safety
/// `ptr` is aligned, valid for writes, and not used by anybody else yet.
#[inline]
pub(crate) unsafe fn init_cell<T>(ptr: *mut UnsafeCell<T>, value: T) {
    #[cfg(not(loom))]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and unshared, and
    // `UnsafeCell<T>` is `repr(transparent)` over `T`.
    unsafe {
        ptr.cast::<T>().write(value)
    };
    #[cfg(loom)]
    // SAFETY: the caller guarantees `ptr` is aligned, valid and unshared.
    unsafe {
        ptr.write(UnsafeCell::new(value))
    };
}
