//! Loom model of the lock-protected shared cell. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_cell`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::cell::SharedCell;
use mproc_core::model::ModelWait;

/// Three read-modify-writes of one value under the cell's lock: none lost,
/// and loom flags any access outside the lock.
#[test]
fn increments_under_the_lock() {
    model(|| {
        let mem = Mem::new(SharedCell::<u64>::layout(2).unwrap());
        // SAFETY: `mem` is zeroed, aligned, and outlives every thread.
        let cell =
            unsafe { SharedCell::create(mem.ptr(), mem.len(), &[0u64, 7], origin()) }.unwrap();
        let w = Arc::new(ModelWait::new());
        let increment = move |w: &ModelWait, who| {
            let mut guard = cell.lock(w, id(who), None).unwrap();
            let v = guard.get(0).unwrap();
            assert!(guard.set(0, v + 1));
        };
        let threads: Vec<_> = (1..=2)
            .map(|who| {
                let w = w.clone();
                thread::spawn(move || increment(&w, who))
            })
            .collect();
        increment(&w, 3);
        for t in threads {
            t.join().unwrap();
        }
        let guard = cell.lock(&*w, id(1), None).unwrap();
        assert_eq!(
            (guard.get(0), guard.get(1), guard.get(2)),
            (Some(3), Some(7), None)
        );
        drop(guard);
        drop(mem);
    });
}
