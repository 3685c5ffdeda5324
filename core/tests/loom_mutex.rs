//! Loom models of the mutex. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_mutex`.
#![cfg(loom)]

mod loom_support;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::mutex::{Acquired, RawMutex};

struct Shared {
    mem: Mem,
    counter: UnsafeCell<u32>,
    w: ModelWait,
}

// SAFETY: `counter` is only touched under the mutex that lives in `mem`.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

impl Shared {
    fn new() -> Arc<Self> {
        let mem = Mem::new(RawMutex::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawMutex::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        Arc::new(Self {
            mem,
            counter: UnsafeCell::new(0),
            w: ModelWait::new(),
        })
    }

    fn mutex(&self) -> &RawMutex {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawMutex::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }

    fn increment(&self, who: u32, deadline: Option<MayTimeOut>) -> bool {
        if self.mutex().lock(&self.w, id(who), deadline).is_err() {
            return false;
        }
        // SAFETY: we hold the mutex; loom checks that nobody else accesses
        // the counter concurrently.
        self.counter.with_mut(|c| unsafe { *c += 1 });
        // SAFETY: we hold it.
        unsafe { self.mutex().unlock(&self.w) };
        true
    }
}

/// Three lockers: mutual exclusion (loom flags a concurrent access to the
/// counter) and no lost wake-up (loom flags a deadlock).
#[test]
fn exclusion_and_no_lost_wakeup() {
    model(|| {
        let shared = Shared::new();
        let threads: Vec<_> = (1..=2)
            .map(|who| {
                let shared = shared.clone();
                thread::spawn(move || assert!(shared.increment(who, None)))
            })
            .collect();
        assert!(shared.increment(3, None));
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: every other thread has been joined.
        assert_eq!(shared.counter.with(|c| unsafe { *c }), 3);
        assert!(!shared.mutex().is_locked());
    });
}

/// A locker that gives up on its deadline must not strand one that waits
/// forever.
#[test]
fn timed_locker_does_not_strand_blocking_one() {
    model(|| {
        let shared = Shared::new();
        let w = &shared.w;
        shared.mutex().lock(w, id(1), None).unwrap();
        let timed = {
            let shared = shared.clone();
            thread::spawn(move || shared.increment(2, Some(MayTimeOut)))
        };
        let blocking = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.increment(3, None)))
        };
        // SAFETY: locked above by this thread.
        unsafe { shared.mutex().unlock(w) };
        blocking.join().unwrap();
        let timed_got_it = timed.join().unwrap();
        // SAFETY: every other thread has been joined.
        let count = shared.counter.with(|c| unsafe { *c });
        assert_eq!(count, 1 + u32::from(timed_got_it));
        assert_eq!(shared.mutex().owner(), None);
    });
}

/// Owner 1 dies holding the lock; two lockers without deadlines both get it
/// (the dead owner is found and the lock taken over, never by both at once:
/// loom flags a concurrent access to the counter), and the owner-died report
/// reaches exactly one of them, which marks the lock consistent.
#[test]
fn dead_owner_is_taken_over_once() {
    loom_support::model_bounded(2, || {
        let mem = Mem::new(RawMutex::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `shared`.
        unsafe { RawMutex::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        let shared = Arc::new(Shared {
            mem,
            counter: UnsafeCell::new(0),
            w: ModelWait::with_deaths(),
        });
        let w = &shared.w;
        shared.mutex().lock(w, id(1), None).unwrap();
        let lockers: Vec<_> = (2..=3)
            .map(|who| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let mutex = shared.mutex();
                    let acquired = mutex.lock(&shared.w, id(who), None).unwrap();
                    if acquired == Acquired::OwnerDied {
                        // SAFETY: we hold it.
                        unsafe { mutex.mark_consistent() };
                    }
                    // SAFETY: we hold the mutex.
                    shared.counter.with_mut(|c| unsafe { *c += 1 });
                    // SAFETY: we hold it.
                    unsafe { mutex.unlock(&shared.w) };
                    acquired == Acquired::OwnerDied
                })
            })
            .collect();
        // Owner 1 dies without unlocking.
        w.die(1);
        let reports = lockers
            .into_iter()
            .map(|t| u32::from(t.join().unwrap()))
            .sum::<u32>();
        assert_eq!(reports, 1);
        // SAFETY: every other thread has been joined.
        assert_eq!(shared.counter.with(|c| unsafe { *c }), 2);
        assert!(!shared.mutex().is_locked());
        assert!(!shared.mutex().is_inconsistent());
    });
}
