//! An event flag on one 32-bit word (Python's `Event`).
//!
//! # State word
//!
//! | bit | meaning                                      |
//! |-----|----------------------------------------------|
//! | 0   | `SET`                                        |
//! | 1   | `WAITERS`: somebody may sleep on the word    |
//!
//! `set` swaps in `SET` (clearing `WAITERS`) and wakes every sleeper if
//! `WAITERS` was set; `clear` removes `SET`. A waiter sets `WAITERS` and
//! sleeps while the word is exactly `WAITERS`, so a `set` between its check
//! and its sleep changes the word and is never missed.

use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, Ordering, init_u32};
use crate::wait::Wait;

const SET: u32 = 1;
const WAITERS: u32 = 2;

/// A flag that processes can wait for.
///
/// # Examples
///
/// ```
/// use mproc_core::{Spin, event::RawEvent};
///
/// let mut word = 0u32;
/// // SAFETY: `word` is 4 aligned bytes used only through `event`.
/// let event = unsafe { RawEvent::init(std::ptr::NonNull::from(&mut word).cast()) };
/// assert!(!event.is_set());
/// event.set(&Spin);
/// assert!(event.wait(&Spin, None));
/// event.clear();
/// assert!(!event.is_set());
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawEvent {
    state: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawEvent, u32);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawEvent, u32);

impl RawEvent {
    /// Makes a cleared event out of the 4 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned, valid for reads and writes of 4 initialized bytes for
    /// `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawEvent>) -> &'a RawEvent {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*ptr.as_ptr()).state, 0);
            ptr.as_ref()
        }
    }

    /// The layout of an event object (header + event).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawEvent, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and an event always fit"),
        }
    }

    /// Creates an event object (header + cleared event) at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        origin: Origin,
    ) -> Result<&'a RawEvent, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawEvent, ()>(
                mem,
                len,
                ObjectKind::Event,
                TypeFingerprint::of::<()>(),
                0,
                Self::object_layout(),
                origin,
            )?;
            let event = Self::init(parts.body);
            parts.publish();
            Ok(event)
        }
    }

    /// Attaches to an event object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a RawEvent, LayoutError> {
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::attach::<RawEvent, ()>(
                mem,
                len,
                ObjectKind::Event,
                TypeFingerprint::of::<()>(),
                |_| Ok(Self::object_layout()),
            )?;
            Ok(parts.body.as_ref())
        }
    }

    /// Whether the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        // Acquire pairs with the Release swap in `set`.
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every waiter.
    #[inline]
    pub fn set<W: Wait>(&self, w: &W) {
        // Release pairs with the Acquire loads of the waiters.
        if self.state.swap(SET, Ordering::Release) & WAITERS != 0 {
            self.wake_all(w);
        }
    }

    #[cold]
    fn wake_all<W: Wait>(&self, w: &W) {
        w.wake(&self.state, u32::MAX);
    }

    /// Clears the flag.
    #[inline]
    pub fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Waits until the flag is set or `deadline` passes (`None`: forever);
    /// returns whether it is set, as Python's `Event.wait` does.
    pub fn wait<W: Wait>(&self, w: &W, deadline: Option<W::Deadline>) -> bool {
        // No spinning for a call whose deadline has already passed.
        let spins = match deadline {
            Some(d) if w.expired(d) => 0,
            _ => w.spin_rounds(),
        };
        for round in 0..spins {
            if self.is_set() {
                return true;
            }
            w.relax(round);
        }
        loop {
            // Acquire pairs with the Release swap in `set`.
            let state = self.state.load(Ordering::Acquire);
            if state & SET != 0 {
                return true;
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
            if w.wait(&self.state, WAITERS, deadline).is_err() {
                return self.is_set();
            }
        }
    }
}
