//! Locks and semaphores, uncontended (one process) and contended (several
//! processes on one object, an empty critical section), against a minimal
//! futex lock and semaphore in shared memory.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use mproc::{Lock, Region, Semaphore};
use rustix::thread::futex;
use static_assertions::{assert_eq_align, assert_eq_size};

use crate::case::{Case, Sample, Unit, Workload};
use crate::crew::{Crew, Role, share};

/// Processes sharing the lock in the contended lock workload.
const LOCKERS: usize = 2;
/// Processes, and permits, of the contended semaphore workload.
const SEM_USERS: usize = 4;
const SEM_PERMITS: u32 = 2;

/// A futex mutex in shared memory (Drepper's "Futexes Are Tricky", mutex
/// 2): 0 unlocked, 1 locked, 2 locked with sleepers.
#[repr(C)]
struct RawMutex {
    state: AtomicU32,
}

assert_eq_size!(RawMutex, u32);
assert_eq_align!(RawMutex, u32);

impl RawMutex {
    fn lock(&self) {
        // Acquire: pairs with the Release of `unlock`.
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            // EAGAIN (no longer 2) and EINTR: try again.
            let _ = futex::wait(&self.state, futex::Flags::empty(), 2, None);
        }
    }

    fn unlock(&self) {
        // Release: pairs with the Acquire of `lock`.
        if self.state.swap(0, Ordering::Release) == 2 {
            let _ = futex::wake(&self.state, futex::Flags::empty(), 1);
        }
    }
}

/// A futex counting semaphore in shared memory: the count, and how many
/// sleep on it (a release makes a syscall only when somebody sleeps).
#[repr(C)]
struct RawSemaphore {
    count: AtomicU32,
    sleepers: AtomicU32,
}

assert_eq_size!(RawSemaphore, [u32; 2]);
assert_eq_align!(RawSemaphore, u32);

impl RawSemaphore {
    fn acquire(&self) {
        loop {
            let count = self.count.load(Ordering::Relaxed);
            if count > 0 {
                // Acquire: pairs with the release's increment.
                if self
                    .count
                    .compare_exchange_weak(count, count - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            // SeqCst with `release`: either it sees this sleeper, or the
            // futex wait sees its increment (and does not sleep).
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let _ = futex::wait(&self.count, futex::Flags::empty(), 0, None);
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn release(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _ = futex::wake(&self.count, futex::Flags::empty(), 1);
        }
    }
}

/// A zeroed anonymous shared region holding a `T` whose zero bytes are a
/// valid value, and the `T` (initialized by `init`).
struct Shared<T> {
    region: Arc<Region>,
    _type: std::marker::PhantomData<T>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self {
            region: self.region.clone(),
            _type: std::marker::PhantomData,
        }
    }
}

impl<T> Shared<T> {
    /// # Safety
    /// All-zero bytes must be a valid `T`, and `T` must be usable across
    /// processes (`repr(C)`, atomics only, no pointers).
    unsafe fn new() -> Self {
        Self {
            region: Arc::new(Region::anonymous(size_of::<T>()).expect("a region")),
            _type: std::marker::PhantomData,
        }
    }

    fn get(&self) -> &T {
        // SAFETY: the region is page-aligned (enough for `T`), at least
        // `size_of::<T>()` long and was zeroed, a valid `T` (`new`'s
        // contract); only atomics inside are ever written; the reference
        // lives no longer than `self`, which keeps the region mapped.
        unsafe { self.region.as_ptr().cast::<T>().as_ref() }
    }
}

// SAFETY: `Shared` hands out `&T` only; `T` (the raw lock and semaphore)
// is atomics only, which any thread may use through a shared reference.
unsafe impl<T: Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Shared<T> {}

fn raw_mutex() -> Shared<RawMutex> {
    // SAFETY: zero is "unlocked"; `RawMutex` is one atomic, `repr(C)`.
    unsafe { Shared::new() }
}

fn raw_semaphore(permits: u32) -> Shared<RawSemaphore> {
    // SAFETY: zero bytes are zero permits and no sleeper, both atomics;
    // `repr(C)`.
    let sem = unsafe { Shared::<RawSemaphore>::new() };
    sem.get().count.store(permits, Ordering::Relaxed);
    sem
}

/// `n` operations in this process.
fn here(n: u64, mut op: impl FnMut()) -> Sample {
    for _ in 0..(n / 8).max(1) {
        op();
    }
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    Sample {
        ops: n,
        elapsed: start.elapsed(),
    }
}

/// `n` operations shared by a fresh crew of `workers` processes (threads
/// if `threads`), after a warm-up.
fn crew(n: u64, workers: usize, threads: bool, op: impl Fn() + Send + Sync + 'static) -> Sample {
    let role: Role = Arc::new(move |index, n| {
        for _ in 0..share(n, index, workers) {
            op();
        }
    });
    let crew = if threads {
        Crew::threads(workers, role)
    } else {
        Crew::processes(workers, role)
    };
    crew.run((n / 8).max(1));
    let elapsed = crew.run(n);
    Sample { ops: n, elapsed }
}

pub fn workloads() -> [Workload; 4] {
    [
        Workload::new(
            "lock/uncontended",
            "lock + unlock, uncontended",
            Unit::Latency,
        ),
        Workload::new(
            "lock/contended",
            "lock + unlock, 2 processes",
            Unit::Latency,
        ),
        Workload::new(
            "semaphore/uncontended",
            "semaphore acquire + release, uncontended",
            Unit::Latency,
        ),
        Workload::new(
            "semaphore/contended",
            "semaphore(2) acquire + release, 4 processes",
            Unit::Latency,
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let [lock_free, lock_busy, sem_free, sem_busy] = workloads();
    vec![
        Case::new(&lock_free, "mproc Lock", true, |n| {
            let lock = Lock::new().expect("a lock");
            here(n, || drop(black_box(lock.lock())))
        }),
        Case::new(&lock_free, "raw futex mutex", false, |n| {
            let mutex = raw_mutex();
            here(n, || {
                mutex.get().lock();
                mutex.get().unlock();
            })
        }),
        Case::new(&lock_free, "std Mutex", false, |n| {
            let mutex = std::sync::Mutex::new(());
            here(n, || drop(black_box(mutex.lock())))
        }),
        Case::new(&lock_busy, "mproc Lock", true, |n| {
            let lock = Lock::new().expect("a lock");
            crew(n, LOCKERS, false, move || drop(black_box(lock.lock())))
        }),
        Case::new(&lock_busy, "raw futex mutex", false, |n| {
            let mutex = raw_mutex();
            crew(n, LOCKERS, false, move || {
                mutex.get().lock();
                mutex.get().unlock();
            })
        }),
        Case::new(&lock_busy, "std Mutex (2 threads)", false, |n| {
            let mutex = std::sync::Mutex::new(());
            crew(n, LOCKERS, true, move || drop(black_box(mutex.lock())))
        }),
        Case::new(&sem_free, "mproc Semaphore", true, |n| {
            let sem = Semaphore::new(1).expect("a semaphore");
            here(n, || {
                sem.acquire();
                sem.release().expect("one permit back");
            })
        }),
        Case::new(&sem_free, "raw futex semaphore", false, |n| {
            let sem = raw_semaphore(1);
            here(n, || {
                sem.get().acquire();
                sem.get().release();
            })
        }),
        Case::new(&sem_busy, "mproc Semaphore", true, |n| {
            let sem = Semaphore::new(SEM_PERMITS).expect("a semaphore");
            crew(n, SEM_USERS, false, move || {
                sem.acquire();
                sem.release().expect("one permit back");
            })
        }),
        Case::new(&sem_busy, "raw futex semaphore", false, |n| {
            let sem = raw_semaphore(SEM_PERMITS);
            crew(n, SEM_USERS, false, move || {
                sem.get().acquire();
                sem.get().release();
            })
        }),
    ]
}
