//! Loom models of the event. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_event`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, model, origin};
use mproc_core::event::RawEvent;
use mproc_core::model::{MayTimeOut, ModelWait};

struct Shared {
    mem: Mem,
    w: ModelWait,
}

impl Shared {
    fn new() -> Arc<Self> {
        let mem = Mem::new(RawEvent::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawEvent::create(mem.ptr(), mem.len(), origin()) }.unwrap();
        Arc::new(Self {
            mem,
            w: ModelWait::new(),
        })
    }

    fn event(&self) -> &RawEvent {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawEvent::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }
}

/// `set` wakes every waiter, whenever it happens relative to their sleep.
#[test]
fn set_wakes_all_waiters() {
    model(|| {
        let shared = Shared::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || assert!(shared.event().wait(&shared.w, None)))
            })
            .collect();
        shared.event().set(&shared.w);
        for waiter in waiters {
            waiter.join().unwrap();
        }
    });
}

/// A timed wait reports the flag it saw; a clear before the set does not
/// hide the set from a blocking waiter.
#[test]
fn timed_wait_and_clear() {
    model(|| {
        let shared = Shared::new();
        let timed = {
            let shared = shared.clone();
            thread::spawn(move || shared.event().wait(&shared.w, Some(MayTimeOut)))
        };
        let blocking = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.event().wait(&shared.w, None)))
        };
        shared.event().clear();
        shared.event().set(&shared.w);
        blocking.join().unwrap();
        let _ = timed.join().unwrap();
        assert!(shared.event().is_set());
    });
}
