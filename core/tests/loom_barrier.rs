//! Loom models of the barrier. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_barrier`.
#![cfg(loom)]

mod loom_support;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, model, model_bounded, origin};
use mproc_core::barrier::{BarrierWaitError, RawBarrier};
use mproc_core::model::{MayTimeOut, ModelWait};

struct Shared {
    mem: Mem,
    /// One slot per party, written before the barrier and read after it by
    /// the others: loom flags a read that the barrier does not order after
    /// the write.
    slots: [UnsafeCell<u32>; 3],
    w: ModelWait,
}

// SAFETY: each slot is written by one party before the barrier and read
// only after it, which is what the models check.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

impl Shared {
    fn new(parties: u32) -> Arc<Self> {
        let mem = Mem::new(RawBarrier::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawBarrier::create(mem.ptr(), mem.len(), parties, origin()) }.unwrap();
        Arc::new(Self {
            mem,
            slots: [0, 0, 0].map(UnsafeCell::new),
            w: ModelWait::new(),
        })
    }

    fn barrier(&self) -> &RawBarrier {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawBarrier::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }

    /// Party `me` of `parties`: writes its slot, waits, then reads every
    /// slot. Returns its index.
    fn party(&self, me: usize, parties: usize) -> u32 {
        // SAFETY: only party `me` writes slot `me`, before the barrier.
        self.slots[me].with_mut(|s| unsafe { *s = 1 });
        let index = self.barrier().wait(&self.w, None).unwrap();
        for slot in &self.slots[..parties] {
            // SAFETY: every write happened before the barrier released us.
            assert_eq!(slot.with(|s| unsafe { *s }), 1);
        }
        index
    }
}

fn spawn<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let shared = shared.clone();
    thread::spawn(move || f(&shared))
}

/// Two parties: both are released, with indexes 0 and 1, and see what the
/// other wrote before arriving.
#[test]
fn two_parties_release_both() {
    model(|| {
        let shared = Shared::new(2);
        let other = spawn(&shared, |s| s.party(1, 2));
        let mine = shared.party(0, 2);
        let other = other.join().unwrap();
        let mut indexes = [mine, other];
        indexes.sort();
        assert_eq!(indexes, [0, 1]);
        assert_eq!(shared.barrier().n_waiting(), 0);
    });
}

/// Three parties: all are released, with indexes 0, 1 and 2.
#[test]
fn three_parties_release_all() {
    model_bounded(1, || {
        let shared = Shared::new(3);
        let others: Vec<_> = (1..3)
            .map(|me| spawn(&shared, move |s| s.party(me, 3)))
            .collect();
        let mut indexes = vec![shared.party(0, 3)];
        indexes.extend(others.into_iter().map(|t| t.join().unwrap()));
        indexes.sort();
        assert_eq!(indexes, [0, 1, 2]);
    });
}

/// Two parties through two generations: the barrier is reusable.
#[test]
fn two_generations() {
    model(|| {
        let shared = Shared::new(2);
        let other = spawn(&shared, |s| {
            let barrier = s.barrier();
            [barrier.wait(&s.w, None), barrier.wait(&s.w, None)]
        });
        let barrier = shared.barrier();
        let mine = [barrier.wait(&shared.w, None), barrier.wait(&shared.w, None)];
        let other = other.join().unwrap();
        for generation in 0..2 {
            let mut indexes = [mine[generation].unwrap(), other[generation].unwrap()];
            indexes.sort();
            assert_eq!(indexes, [0, 1]);
        }
    });
}

/// A party whose deadline passes breaks the barrier: then the other gets
/// `Broken`, now or when it arrives; or both were released first.
#[test]
fn timeout_breaks_for_all() {
    model(|| {
        let shared = Shared::new(2);
        let timed = spawn(&shared, |s| s.barrier().wait(&s.w, Some(MayTimeOut)));
        let blocking = shared.barrier().wait(&shared.w, None);
        let timed = timed.join().unwrap();
        match (timed, blocking) {
            (Ok(a), Ok(b)) => assert_eq!(a + b, 1),
            (Err(BarrierWaitError::TimedOut), Err(BarrierWaitError::Broken)) => {
                assert!(shared.barrier().is_broken());
                assert_eq!(
                    shared.barrier().wait(&shared.w, None),
                    Err(BarrierWaitError::Broken)
                );
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    });
}

/// A party that times out alone breaks the barrier for two waiters of three.
#[test]
fn timeout_breaks_two_waiters() {
    model_bounded(1, || {
        let shared = Shared::new(4);
        let waiters: Vec<_> = (0..2)
            .map(|_| spawn(&shared, |s| s.barrier().wait(&s.w, None)))
            .collect();
        let timed = shared.barrier().wait(&shared.w, Some(MayTimeOut));
        assert_eq!(timed, Err(BarrierWaitError::TimedOut));
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(BarrierWaitError::Broken));
        }
    });
}

/// `abort` breaks a waiting party, or one that arrives after it.
#[test]
fn abort_breaks_waiter() {
    model(|| {
        let shared = Shared::new(2);
        let waiter = spawn(&shared, |s| s.barrier().wait(&s.w, None));
        shared.barrier().abort(&shared.w);
        assert_eq!(waiter.join().unwrap(), Err(BarrierWaitError::Broken));
        assert!(shared.barrier().is_broken());
    });
}

/// `reset` tells a party still waiting that its generation broke, and the
/// barrier then releases two new parties.
#[test]
fn reset_breaks_waiter_then_works() {
    model(|| {
        let shared = Shared::new(2);
        let barrier = shared.barrier();
        barrier.abort(&shared.w);
        let waiter = spawn(&shared, |s| s.barrier().wait(&s.w, None));
        assert_eq!(waiter.join().unwrap(), Err(BarrierWaitError::Broken));
        barrier.reset(&shared.w);
        assert!(!barrier.is_broken());
        let other = spawn(&shared, |s| s.party(1, 2));
        let mine = shared.party(0, 2);
        assert_eq!(mine + other.join().unwrap(), 1);
    });
}

/// A reset while a party waits (not broken before): the waiter sees its
/// generation end as broken, not released, even though a new generation
/// has started.
#[test]
fn reset_of_waiting_generation_reports_broken() {
    model(|| {
        let shared = Shared::new(3);
        let first = spawn(&shared, |s| s.barrier().wait(&s.w, None));
        // Wait until the first party has arrived, then reset under it.
        while shared.barrier().n_waiting() == 0 {
            thread::yield_now();
        }
        shared.barrier().reset(&shared.w);
        assert_eq!(first.join().unwrap(), Err(BarrierWaitError::Broken));
        assert_eq!(shared.barrier().n_waiting(), 0);
    });
}
