//! Loom models of the semaphore. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_semaphore`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::semaphore::RawSemaphore;

struct Shared {
    mem: Mem,
    w: ModelWait,
}

impl Shared {
    fn new(permits: u32) -> Arc<Self> {
        let mem = Mem::new(RawSemaphore::object_layout());
        // SAFETY: `mem` is zeroed, aligned, and lives as long as `Shared`.
        unsafe { RawSemaphore::create(mem.ptr(), mem.len(), permits, origin()) }.unwrap();
        Arc::new(Self {
            mem,
            w: ModelWait::new(),
        })
    }

    fn sem(&self) -> &RawSemaphore {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { RawSemaphore::attach(self.mem.ptr(), self.mem.len()) }.unwrap()
    }
}

/// A release racing a sleeping acquirer wakes it.
#[test]
fn release_races_sleeper() {
    model(|| {
        let shared = Shared::new(0);
        let sleeper = {
            let shared = shared.clone();
            thread::spawn(move || shared.sem().acquire(&shared.w, None).unwrap())
        };
        shared.sem().release(&shared.w, 1).unwrap();
        sleeper.join().unwrap();
        assert_eq!(shared.sem().value(), 0);
    });
}

/// Two sleepers, two single releases: both wake.
#[test]
fn two_sleepers_two_releases() {
    model(|| {
        let shared = Shared::new(0);
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.sem().acquire(&shared.w, None).unwrap())
            })
            .collect();
        shared.sem().release(&shared.w, 1).unwrap();
        shared.sem().release(&shared.w, 1).unwrap();
        for s in sleepers {
            s.join().unwrap();
        }
        assert_eq!(shared.sem().value(), 0);
    });
}

/// An acquirer that times out neither loses a permit nor strands a blocking
/// acquirer.
#[test]
fn timed_acquirer_does_not_strand_blocking_one() {
    model(|| {
        let shared = Shared::new(0);
        let timed = {
            let shared = shared.clone();
            thread::spawn(move || shared.sem().acquire(&shared.w, Some(MayTimeOut)).is_ok())
        };
        let blocking = {
            let shared = shared.clone();
            thread::spawn(move || shared.sem().acquire(&shared.w, None).unwrap())
        };
        shared.sem().release(&shared.w, 1).unwrap();
        shared.sem().release(&shared.w, 1).unwrap();
        blocking.join().unwrap();
        let timed_got_one = timed.join().unwrap();
        assert_eq!(shared.sem().value(), u32::from(!timed_got_one));
    });
}

/// Releasing past the maximum is refused and changes nothing.
#[test]
fn bounded_release_refuses_overflow() {
    model(|| {
        let shared = Shared::new(1);
        let err = shared.sem().release_bounded(&shared.w, 1, 1).unwrap_err();
        assert_eq!((err.available, err.adding, err.max), (1, 1, 1));
        assert_eq!(shared.sem().value(), 1);
    });
}

/// A third thread that never sleeps (`try_acquire`) can take a permit meant
/// for a woken sleeper; the sleepers still get the permits released for them.
#[test]
fn barger_does_not_strand_sleepers() {
    model(|| {
        let shared = Shared::new(0);
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.sem().acquire(&shared.w, None).unwrap())
            })
            .collect();
        let barger = {
            let shared = shared.clone();
            thread::spawn(move || shared.sem().try_acquire())
        };
        shared.sem().release(&shared.w, 1).unwrap();
        shared.sem().release(&shared.w, 1).unwrap();
        if barger.join().unwrap() {
            shared.sem().release(&shared.w, 1).unwrap();
        }
        for s in sleepers {
            s.join().unwrap();
        }
        assert_eq!(shared.sem().value(), 0);
    });
}

/// A bounded semaphore of one permit: a holder's release races an extra
/// release by somebody else. Exactly one of the two goes through, the
/// count never passes the bound, and a refused release changes nothing.
#[test]
fn bounded_over_release_races_holder() {
    use mproc_core::semaphore::RawBoundedSemaphore;

    model(|| {
        let mem = Arc::new(Mem::new(RawBoundedSemaphore::object_layout()));
        // SAFETY: `mem` is zeroed, aligned, and outlives every use below.
        unsafe { RawBoundedSemaphore::create(mem.ptr(), mem.len(), 1, origin()) }.unwrap();
        let w = Arc::new(ModelWait::new());
        let sem = |mem: &Mem| {
            // SAFETY: created above in memory that `mem` owns.
            unsafe { RawBoundedSemaphore::attach(mem.ptr(), mem.len()) }.unwrap()
        };
        let holder = {
            let (mem, w) = (mem.clone(), w.clone());
            thread::spawn(move || {
                sem(&mem).acquire(&*w, None).unwrap();
                sem(&mem).release(&*w, 1).is_ok()
            })
        };
        let extra = sem(&mem).release(&*w, 1);
        assert!(sem(&mem).value() <= 1);
        let holder_released = holder.join().unwrap();
        assert!(
            holder_released != extra.is_ok(),
            "exactly one release succeeds"
        );
        if let Err(err) = extra {
            assert_eq!((err.adding, err.max), (1, 1));
        }
        assert_eq!(sem(&mem).value(), 1);
    });
}
