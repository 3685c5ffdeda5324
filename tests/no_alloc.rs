//! Plain-old-data messages cost no allocation: a counting allocator sees
//! none in 10,000 puts and gets, on `PodQueue` (no encoding either) and on
//! `Queue` (postcard straight into and out of shared memory), with a child
//! process on the other side of the queue.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mproc::{PodQueue, Queue};

/// Counts the allocations of the thread that asked for counting.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// thread-locals it touches are `const`-initialized and need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    f();
    COUNTING.with(|counting| counting.set(false));
    COUNT.with(Cell::get)
}

const ROUNDS: u64 = 10_000;

/// A child echoes `ROUNDS` values from `requests` to `replies`; the parent
/// counts its own allocations while it puts and gets.
#[test]
fn pod_queue_allocates_nothing() {
    let (requests, replies) = (
        PodQueue::<u64>::new(64).unwrap(),
        PodQueue::<u64>::new(64).unwrap(),
    );
    let mut echo = {
        let (requests, replies) = (requests.clone(), replies.clone());
        common::spawn(move || {
            for _ in 0..ROUNDS {
                replies.put(requests.get() + 1);
            }
        })
    };
    let mut sum = 0;
    let count = allocations(|| {
        for n in 0..ROUNDS {
            requests.put(n);
            sum += replies.get();
        }
    });
    common::join(&mut echo);
    assert_eq!(sum, (1..=ROUNDS).sum::<u64>());
    assert_eq!(count, 0, "allocations in {ROUNDS} put + get rounds");
}

#[test]
fn typed_queue_of_plain_data_allocates_nothing() {
    let (requests, replies) = (
        Queue::<u64>::new(64).unwrap(),
        Queue::<u64>::new(64).unwrap(),
    );
    let mut echo = {
        let (requests, replies) = (requests.clone(), replies.clone());
        common::spawn(move || {
            for _ in 0..ROUNDS {
                replies.put(requests.get().unwrap() + 1).unwrap();
            }
        })
    };
    let mut sum = 0;
    let count = allocations(|| {
        for n in 0..ROUNDS {
            requests.put(n).unwrap();
            sum += replies.get().unwrap();
        }
    });
    common::join(&mut echo);
    assert_eq!(sum, (1..=ROUNDS).sum::<u64>());
    assert_eq!(count, 0, "allocations in {ROUNDS} put + get rounds");
}

/// The counter itself sees an allocation (so the zeros above mean
/// something).
#[test]
fn the_counter_counts() {
    assert_eq!(
        allocations(|| drop(std::hint::black_box(Box::new(1u64)))),
        1
    );
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![0u8; 3]))), 1);
}
