//! Loom models of the reentrant lock. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_rlock`.
#![cfg(loom)]

mod loom_support;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::rlock::{RawRLock, ReleaseError};

struct Shared {
    mem: Mem,
    counter: UnsafeCell<u32>,
    w: ModelWait,
}

// SAFETY: `counter` is only touched under the lock that lives in `mem`.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

impl Shared {
    fn new() -> Arc<Self> {
        let mem = Mem::new(RawRLock::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawRLock::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        Arc::new(Self {
            mem,
            counter: UnsafeCell::new(0),
            w: ModelWait::new(),
        })
    }

    fn lock(&self) -> &RawRLock {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawRLock::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }

    /// Takes the lock twice (the second time as its owner), increments the
    /// counter under it, and gives both levels back.
    fn increment_twice_locked(&self, who: u32, deadline: Option<MayTimeOut>) -> bool {
        let lock = self.lock();
        if lock.lock(&self.w, id(who), deadline).is_err() {
            return false;
        }
        assert!(lock.try_lock(id(who)), "the owner relocks at once");
        assert_eq!(lock.count(), 2);
        // SAFETY: we hold the lock; loom checks that nobody else accesses
        // the counter concurrently.
        self.counter.with_mut(|c| unsafe { *c += 1 });
        lock.unlock(&self.w, id(who)).unwrap();
        assert_eq!(lock.owner(), Some(who), "one level is still held");
        // SAFETY: as above; still held.
        self.counter.with_mut(|c| unsafe { *c += 1 });
        lock.unlock(&self.w, id(who)).unwrap();
        true
    }
}

/// Two owners, each taking the lock twice: mutual exclusion across the
/// levels (loom flags a concurrent access to the counter), and the last
/// unlock wakes the other (loom flags a deadlock).
#[test]
fn reentrant_exclusion() {
    model(|| {
        let shared = Shared::new();
        let other = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.increment_twice_locked(2, None)))
        };
        assert!(shared.increment_twice_locked(1, None));
        other.join().unwrap();
        // SAFETY: the other thread has been joined.
        assert_eq!(shared.counter.with(|c| unsafe { *c }), 4);
        assert!(!shared.lock().is_locked());
        assert_eq!(shared.lock().count(), 0);
    });
}

/// An unlock by somebody who does not hold the lock is refused and changes
/// nothing, whenever it happens.
#[test]
fn non_owner_unlock_is_refused() {
    model(|| {
        let shared = Shared::new();
        shared.lock().lock(&shared.w, id(1), None).unwrap();
        shared.lock().lock(&shared.w, id(1), None).unwrap();
        let intruder = {
            let shared = shared.clone();
            thread::spawn(move || shared.lock().unlock(&shared.w, id(2)))
        };
        shared.lock().unlock(&shared.w, id(1)).unwrap();
        let refused = intruder.join().unwrap();
        assert_eq!(refused, Err(ReleaseError::NotOwner { holder: Some(1) }));
        assert_eq!((shared.lock().owner(), shared.lock().count()), (Some(1), 1));
        shared.lock().unlock(&shared.w, id(1)).unwrap();
        assert_eq!(
            shared.lock().unlock(&shared.w, id(1)),
            Err(ReleaseError::NotOwner { holder: None })
        );
    });
}

/// A locker that gives up on its deadline neither takes a level nor strands
/// one that waits forever.
#[test]
fn timed_locker_does_not_strand_blocking_one() {
    model(|| {
        let shared = Shared::new();
        let timed = {
            let shared = shared.clone();
            thread::spawn(move || shared.increment_twice_locked(2, Some(MayTimeOut)))
        };
        assert!(shared.increment_twice_locked(1, None));
        let timed_got_it = timed.join().unwrap();
        // SAFETY: the other thread has been joined.
        let counter = shared.counter.with(|c| unsafe { *c });
        assert_eq!(counter, if timed_got_it { 4 } else { 2 });
        assert!(!shared.lock().is_locked());
    });
}
