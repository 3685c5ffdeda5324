//! Loom models of the wait group. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_waitgroup`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use loom_support::{Mem, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::waitgroup::RawWaitGroup;

struct Shared {
    mem: Mem,
    w: ModelWait,
    /// Work the tasks publish before they are done.
    work: AtomicU32,
}

impl Shared {
    fn new(tasks: u32) -> Arc<Self> {
        let mem = Mem::new(RawWaitGroup::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        let group = unsafe { RawWaitGroup::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        group.add(tasks).unwrap();
        Arc::new(Self {
            mem,
            w: ModelWait::new(),
            work: AtomicU32::new(0),
        })
    }

    fn group(&self) -> &RawWaitGroup {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawWaitGroup::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }
}

/// A waiter returns only after both tasks are done, and sees their work.
#[test]
fn wait_for_two_tasks() {
    model(|| {
        let shared = Shared::new(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    shared.work.fetch_add(1, Ordering::Relaxed);
                    shared.group().done(&shared.w).unwrap();
                })
            })
            .collect();
        shared.group().wait(&shared.w, None).unwrap();
        assert_eq!(shared.work.load(Ordering::Relaxed), 2);
        for worker in workers {
            worker.join().unwrap();
        }
        assert!(shared.group().done(&shared.w).is_err());
    });
}

/// A task added while a waiter sleeps keeps it waiting until that one is
/// done too; a timed wait either sees zero or times out, and never misses
/// the end.
#[test]
fn add_while_waiting() {
    model(|| {
        let shared = Shared::new(1);
        let worker = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.group().add(1).unwrap();
                shared.group().done(&shared.w).unwrap();
                shared.work.store(1, Ordering::Relaxed);
                shared.group().done(&shared.w).unwrap();
            })
        };
        if shared.group().wait(&shared.w, Some(MayTimeOut)).is_ok() {
            assert_eq!(shared.work.load(Ordering::Relaxed), 1);
        }
        shared.group().wait(&shared.w, None).unwrap();
        assert_eq!(shared.work.load(Ordering::Relaxed), 1);
        worker.join().unwrap();
    });
}
