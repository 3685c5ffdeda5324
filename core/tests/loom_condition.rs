//! Loom models of the condition variable. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_condition`.
#![cfg(loom)]

mod loom_support;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::condition::RawCondition;
use mproc_core::model::{MayTimeOut, ModelWait};

struct Shared {
    mem: Mem,
    /// Items made and not yet taken: the state the waiters wait for,
    /// touched only under the condition's mutex.
    items: UnsafeCell<u32>,
    w: ModelWait,
}

// SAFETY: `items` is only touched under the mutex that lives in `mem`.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

impl Shared {
    fn new() -> Arc<Self> {
        let mem = Mem::new(RawCondition::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawCondition::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        Arc::new(Self {
            mem,
            items: UnsafeCell::new(0),
            w: ModelWait::new(),
        })
    }

    fn cond(&self) -> &RawCondition {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawCondition::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }

    /// Makes `count` items under the mutex, then notifies `notify` waiters
    /// (after unlocking, which the design allows).
    fn produce(&self, who: u32, count: u32, notify: u32) {
        self.cond().mutex().lock(&self.w, id(who), None).unwrap();
        // SAFETY: we hold the mutex; loom checks for concurrent access.
        self.items.with_mut(|n| unsafe { *n += count });
        // SAFETY: we hold it.
        unsafe { self.cond().mutex().unlock(&self.w) };
        self.cond().notify(&self.w, notify);
    }

    /// Takes one item, waiting for one until `deadline`, as Python's
    /// `wait_for`: returns whether it got one.
    fn consume(&self, who: u32, deadline: Option<MayTimeOut>) -> bool {
        let cond = self.cond();
        cond.mutex().lock(&self.w, id(who), None).unwrap();
        let got = loop {
            // SAFETY: we hold the mutex (`wait` returns holding it too).
            let items = self.items.with(|n| unsafe { *n });
            if items > 0 {
                // SAFETY: as above.
                self.items.with_mut(|n| unsafe { *n -= 1 });
                break true;
            }
            // SAFETY: we hold the mutex, as `who`.
            if unsafe { cond.wait(&self.w, id(who), deadline) }.is_err() {
                // Timed out: a last look, as Python's `wait_for`.
                // SAFETY: `wait` returns holding the mutex.
                let items = self.items.with(|n| unsafe { *n });
                if items > 0 {
                    // SAFETY: as above.
                    self.items.with_mut(|n| unsafe { *n -= 1 });
                }
                break items > 0;
            }
        };
        assert_eq!(cond.mutex().owner(), Some(who), "wait returns locked");
        // SAFETY: we hold it.
        unsafe { cond.mutex().unlock(&self.w) };
        got
    }

    fn items(&self) -> u32 {
        // SAFETY: called after every other thread has been joined.
        self.items.with(|n| unsafe { *n })
    }
}

/// A notify racing a waiter, anywhere between its check of the state and
/// its sleep, is never lost (loom flags the deadlock of a lost one).
#[test]
fn notify_racing_waiter_is_not_lost() {
    model(|| {
        let shared = Shared::new();
        let consumer = {
            let shared = shared.clone();
            thread::spawn(move || shared.consume(2, None))
        };
        shared.produce(1, 1, 1);
        assert!(consumer.join().unwrap());
        assert_eq!(shared.items(), 0);
        assert_eq!(shared.cond().waiters(), 0);
    });
}

/// One `notify_all` for two items wakes both waiters.
#[test]
fn notify_all_wakes_every_waiter() {
    model(|| {
        let shared = Shared::new();
        let consumers: Vec<_> = (2..=3)
            .map(|who| {
                let shared = shared.clone();
                thread::spawn(move || shared.consume(who, None))
            })
            .collect();
        shared.produce(1, 2, u32::MAX);
        for consumer in consumers {
            assert!(consumer.join().unwrap());
        }
        assert_eq!(shared.items(), 0);
    });
}

/// Two items, each with its own `notify(1)`: both waiters get one.
#[test]
fn notify_one_per_item_wakes_both() {
    model(|| {
        let shared = Shared::new();
        let consumers: Vec<_> = (2..=3)
            .map(|who| {
                let shared = shared.clone();
                thread::spawn(move || shared.consume(who, None))
            })
            .collect();
        shared.produce(1, 1, 1);
        shared.produce(1, 1, 1);
        for consumer in consumers {
            assert!(consumer.join().unwrap());
        }
        assert_eq!(shared.items(), 0);
    });
}

/// A waiter whose deadline races the notify either takes the item or
/// leaves it, and returns holding the mutex either way; the mutex works
/// afterwards.
#[test]
fn timed_wait_racing_notify() {
    model(|| {
        let shared = Shared::new();
        let consumer = {
            let shared = shared.clone();
            thread::spawn(move || shared.consume(2, Some(MayTimeOut)))
        };
        shared.produce(1, 1, 1);
        let got = consumer.join().unwrap();
        assert_eq!(shared.items(), u32::from(!got));
        assert!(!shared.cond().mutex().is_locked());
        assert_eq!(shared.cond().waiters(), 0);
    });
}

/// A waiter that gives up on its deadline does not strand one that waits
/// forever: a `notify_all` for two items reaches the blocking waiter.
#[test]
fn timed_waiter_does_not_strand_blocking_one() {
    model(|| {
        let shared = Shared::new();
        let timed = {
            let shared = shared.clone();
            thread::spawn(move || shared.consume(2, Some(MayTimeOut)))
        };
        let blocking = {
            let shared = shared.clone();
            thread::spawn(move || shared.consume(3, None))
        };
        shared.produce(1, 2, u32::MAX);
        assert!(blocking.join().unwrap());
        let timed_got_one = timed.join().unwrap();
        assert_eq!(shared.items(), u32::from(!timed_got_one));
    });
}
