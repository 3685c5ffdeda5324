//! A slot of the MPMC ring claimed and never confirmed (its claimer was
//! killed between its CAS on `tail` or `head` and its confirming CAS): the
//! waiters behind it give up on it after [`STUCK_MS`] on a shared clock,
//! however they wait — here in short timed calls, one after the other,
//! none of which waits anywhere near that long by itself.
//!
//! The clock is a model: it moves 1 ms per back-off round and jumps to the
//! deadline of a sleep, so the test runs in no time and the waiting is
//! measured exactly.
#![cfg(not(loom))]

use std::alloc::{alloc_zeroed, dealloc};
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use mproc_core::mpmc::{Mpmc, STUCK_MS};
use mproc_core::sync::{AtomicU32, AtomicU64};
use mproc_core::{Origin, OwnerId, TimedOut, Wait};

/// A clock in milliseconds that only waiting moves.
#[derive(Default)]
struct Clock {
    ms: Cell<u32>,
}

impl Clock {
    fn now(&self) -> u32 {
        self.ms.get()
    }
}

impl Wait for Clock {
    type Deadline = u32;

    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<u32>) -> Result<(), TimedOut> {
        if word.load(Ordering::Relaxed) != expected {
            return Ok(());
        }
        let deadline = deadline.expect("a sleep without a deadline, in a test of timed calls");
        self.ms.set(self.ms.get().max(deadline));
        Err(TimedOut)
    }

    fn wake(&self, _: &AtomicU32, _: u32) {}

    fn expired(&self, deadline: u32) -> bool {
        self.ms.get() >= deadline
    }

    fn spin_rounds(&self) -> u32 {
        0
    }

    fn relax(&self, _: u32) {
        self.ms.set(self.ms.get() + 1);
    }

    /// A liveness check every 10 ms, as mproc-os does.
    fn check_deadline(&self, deadline: Option<u32>) -> (Option<u32>, bool) {
        let check = self.ms.get() + 10;
        match deadline {
            Some(d) if d <= check => (Some(d), false),
            _ => (Some(check), true),
        }
    }

    /// The claimer left no id to check.
    fn owner_gone(&self, _: u32, _: Option<u32>) -> bool {
        false
    }

    fn now_ms(&self) -> Option<u32> {
        Some(self.ms.get())
    }
}

/// A ring of `capacity` `u64`s in zeroed heap memory.
struct Ring {
    mem: NonNull<u8>,
    layout: std::alloc::Layout,
    body: usize,
    ring: Mpmc<u64>,
}

impl Ring {
    fn new(capacity: u64) -> Self {
        let object = Mpmc::<u64>::layout(capacity).unwrap();
        let layout = object.alloc_layout();
        // SAFETY: an object layout has a header, so it is not zero-sized.
        let mem = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        // SAFETY: `mem` holds `layout.size()` zeroed bytes, aligned for the
        // ring, used by nothing else, freed only in `drop` after the ring.
        let ring = unsafe { Mpmc::<u64>::create(mem, layout.size(), capacity, Origin::default()) }
            .unwrap();
        Self {
            mem,
            layout,
            body: object.body_offset(),
            ring,
        }
    }

    /// Claims the next position of `tail` (offset 0 of the ring's state)
    /// or `head` (offset 128) and does nothing more: what a claimer killed
    /// right after its claiming CAS leaves behind.
    fn claim_and_die(&self, offset: usize) {
        // SAFETY: the state's `tail` and `head` words lie in the mapping at
        // these offsets (pinned by the ring's layout assertions), aligned,
        // and are only used atomically.
        let word = unsafe {
            &*self
                .mem
                .as_ptr()
                .add(self.body + offset)
                .cast::<AtomicU64>()
        };
        word.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring is unused.
        unsafe { dealloc(self.mem.as_ptr(), self.layout) }
    }
}

const TAIL: usize = 0;
const HEAD: usize = 128;

fn me() -> OwnerId {
    OwnerId::new(7).unwrap()
}

/// A producer died after claiming a position: consumers in 20 ms calls
/// skip the slot once it has stalled them for a second, and not before;
/// the value pushed after it arrives.
#[test]
fn consumers_in_short_calls_skip_a_dead_producers_slot() {
    let ring = Ring::new(4);
    let clock = Clock::default();
    ring.claim_and_die(TAIL);
    ring.ring.try_push(&clock, me(), 42).unwrap();
    let got = loop {
        let start = clock.now();
        match ring.ring.pop(&clock, me(), Some(start + 20)) {
            Ok(value) => break value,
            Err(_) => assert!(clock.now() < STUCK_MS + 20, "never skipped"),
        }
    };
    assert_eq!(got, 42);
    assert!(
        clock.now() >= STUCK_MS,
        "gave up on the claimer after {} ms",
        clock.now()
    );
    assert_eq!(ring.ring.len(), 0);
    // Whole again.
    ring.ring.try_push(&clock, me(), 1).unwrap();
    assert_eq!(ring.ring.try_pop(&clock, me()), Ok(1));
}

/// A consumer died after claiming a position of a full ring: producers in
/// 20 ms calls free the slot once it has stalled them for a second (its
/// message is lost, the one the consumer was taking), and not before.
#[test]
fn producers_in_short_calls_free_a_dead_consumers_slot() {
    let ring = Ring::new(2);
    let clock = Clock::default();
    ring.ring.try_push(&clock, me(), 1).unwrap();
    ring.ring.try_push(&clock, me(), 2).unwrap();
    ring.claim_and_die(HEAD);
    loop {
        let start = clock.now();
        match ring.ring.push(&clock, me(), 3, Some(start + 20)) {
            Ok(()) => break,
            Err(_) => assert!(clock.now() < STUCK_MS + 20, "never freed"),
        }
    }
    assert!(clock.now() >= STUCK_MS);
    assert_eq!(ring.ring.try_pop(&clock, me()), Ok(2));
    assert_eq!(ring.ring.try_pop(&clock, me()), Ok(3));
    assert!(ring.ring.try_pop(&clock, me()).is_err());
}
