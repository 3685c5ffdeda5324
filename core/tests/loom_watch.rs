//! Loom models of watching rings without reading them
//! (`FrameRing::watch_read`, `Mpmc::watch_pop`): a watcher that sleeps
//! beside a reader or consumer is woken, and so is the reader. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_watch`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::frames::{BeginReadError, FrameRing};
use mproc_core::model::ModelWait;
use mproc_core::mpmc::Mpmc;
use mproc_core::{Readiness, TypeFingerprint, Wait};

/// Sleeps through `readiness` until it is `Ready`: what a watcher does.
/// Returns false for `Ready`, true if it has to look again.
fn sleep_through(w: &ModelWait, readiness: Readiness<'_>, round: &mut u32) -> bool {
    match readiness {
        Readiness::Ready => false,
        Readiness::Sleep { word, expected } => {
            // Without a deadline the model only returns once woken, or
            // once the word moved.
            let _ = w.wait(word, expected, None);
            true
        }
        Readiness::Busy => {
            w.relax(*round);
            *round += 1;
            true
        }
    }
}

struct Frames {
    mem: Mem,
    w: ModelWait,
}

impl Frames {
    fn new() -> Arc<Self> {
        let mem = Mem::new(FrameRing::layout(16).unwrap());
        // SAFETY: `mem` is zeroed, aligned for the layout, and lives as long
        // as `Frames`.
        unsafe {
            FrameRing::create(
                mem.ptr(),
                mem.len(),
                16,
                4,
                TypeFingerprint::of::<u8>(),
                origin(),
            )
        }
        .unwrap();
        Arc::new(Self {
            mem,
            w: ModelWait::new(),
        })
    }

    fn ring(&self) -> FrameRing {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { FrameRing::attach(self.mem.ptr(), self.mem.len(), TypeFingerprint::of::<u8>()) }
            .unwrap()
    }

    fn watch_until_ready(&self) {
        let ring = self.ring();
        let mut round = 0;
        while sleep_through(&self.w, ring.watch_read(), &mut round) {}
    }
}

/// A writer sends two frames while a reader takes one and a watcher
/// waits: the reader gets the first frame, and the watcher is woken (one
/// frame is left for it to see); nobody sleeps forever.
#[test]
fn frames_reader_and_watcher_both_woken() {
    model(|| {
        let shared = Frames::new();
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                for byte in [8, 9] {
                    let mut writer = ring.begin_write(&shared.w, id(1), 1, None).unwrap();
                    writer.write(&[byte], None).unwrap();
                    writer.finish().unwrap();
                }
            })
        };
        let watcher = {
            let shared = shared.clone();
            thread::spawn(move || shared.watch_until_ready())
        };
        let ring = shared.ring();
        let mut reader = ring.begin_read(&shared.w, id(2), None).unwrap();
        let mut got = [0];
        reader.read(&mut got).unwrap();
        reader.finish().unwrap();
        assert_eq!(got, [8]);
        watcher.join().unwrap();
        writer.join().unwrap();
        assert_eq!(ring.len(), 1);
    });
}

/// A watcher alone sees the frame a writer sends, and a read after `Ready`
/// finds it without waiting.
#[test]
fn frames_watcher_then_read() {
    model(|| {
        let shared = Frames::new();
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                let mut writer = ring.begin_write(&shared.w, id(1), 2, None).unwrap();
                writer.write(&[1, 2], None).unwrap();
                writer.finish().unwrap();
            })
        };
        shared.watch_until_ready();
        let ring = shared.ring();
        let reader = ring.begin_read(&shared.w, id(2), None).unwrap();
        assert_eq!(reader.len(), 2);
        reader.finish().unwrap();
        writer.join().unwrap();
    });
}

/// Closing an empty ring makes a watcher ready, and a read then reports
/// the close.
#[test]
fn frames_close_wakes_watcher() {
    model(|| {
        let shared = Frames::new();
        let closer = {
            let shared = shared.clone();
            thread::spawn(move || shared.ring().close(&shared.w))
        };
        shared.watch_until_ready();
        let ring = shared.ring();
        assert_eq!(
            ring.begin_read(&shared.w, id(2), None).unwrap_err(),
            BeginReadError::Closed
        );
        closer.join().unwrap();
    });
}

fn mpmc(capacity: u64) -> (Mem, Mpmc<u32>) {
    let mem = Mem::new(Mpmc::<u32>::layout(capacity).unwrap());
    // SAFETY: `mem` is zeroed, aligned for the layout, and outlives every
    // thread of the model (all are joined before it is dropped).
    let ring = unsafe { Mpmc::<u32>::create(mem.ptr(), mem.len(), capacity, origin()) }.unwrap();
    (mem, ring)
}

fn watch_pop_until_ready(w: &ModelWait, ring: &Mpmc<u32>) {
    let mut round = 0;
    while sleep_through(w, ring.watch_pop(), &mut round) {}
}

/// A producer pushes two values while a consumer pops one and a watcher
/// waits: the watcher is woken (one value is left for it to see), and the
/// consumer too.
#[test]
fn mpmc_consumer_and_watcher_both_woken() {
    model(|| {
        let (mem, ring) = mpmc(2);
        let w = Arc::new(ModelWait::new());
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                ring.push(&*w, id(1), 1, None).unwrap();
                ring.push(&*w, id(1), 2, None).unwrap();
            })
        };
        let watcher = {
            let w = w.clone();
            thread::spawn(move || watch_pop_until_ready(&w, &ring))
        };
        assert_eq!(ring.pop(&*w, id(2), None).unwrap(), 1);
        watcher.join().unwrap();
        producer.join().unwrap();
        assert_eq!(ring.len(), 1);
        drop(mem);
    });
}

/// A watcher alone sees the value a producer pushes, and a pop after
/// `Ready` finds it without waiting.
#[test]
fn mpmc_watcher_then_pop() {
    model(|| {
        let (mem, ring) = mpmc(2);
        let w = Arc::new(ModelWait::new());
        let producer = {
            let w = w.clone();
            thread::spawn(move || ring.push(&*w, id(1), 7, None).unwrap())
        };
        watch_pop_until_ready(&w, &ring);
        assert_eq!(ring.try_pop(&*w, id(2)), Ok(7));
        producer.join().unwrap();
        drop(mem);
    });
}
