//! Loom models of the mutex. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_mutex`.
#![cfg(loom)]

mod loom_support;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::mutex::RawMutex;

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
