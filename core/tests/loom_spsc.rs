//! Loom models of the SPSC ring. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_spsc`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, model, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::spsc::Spsc;

fn ring(capacity: u64) -> (Mem, Spsc<u32>) {
    let mem = Mem::new(Spsc::<u32>::layout(capacity).unwrap());
    // SAFETY: `mem` is zeroed, aligned for the layout, and outlives every
    // thread of the model.
    let ring = unsafe { Spsc::<u32>::create(mem.ptr(), mem.len(), capacity, origin()) }.unwrap();
    (mem, ring)
}

/// Blocking push and pop through two slots: order kept, nobody stranded.
#[test]
fn blocking_push_pop() {
    model(|| {
        let (mem, ring) = ring(2);
        let w = Arc::new(ModelWait::new());
        // SAFETY: the only producer and the only consumer of this ring.
        let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                for n in 1..=3 {
                    tx.push(&*w, n, None).unwrap();
                }
            })
        };
        let got: Vec<u32> = (0..3).map(|_| rx.pop(&*w, None).unwrap()).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        drop(mem);
    });
}

/// Batches wrap around the end of the ring and keep order.
#[test]
fn batches() {
    model(|| {
        let (mem, ring) = ring(2);
        let w = Arc::new(ModelWait::new());
        // SAFETY: the only producer and the only consumer of this ring.
        let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        let producer = {
            let w = w.clone();
            thread::spawn(move || assert_eq!(tx.push_slice(&*w, &[1, 2, 3], None), 3))
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut out = [0; 2];
            let n = rx.pop_slice(&*w, &mut out, None);
            got.extend_from_slice(&out[..n]);
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        drop(mem);
    });
}

/// Timed-out sleeps leave the "asleep" bits consistent: a consumer that
/// keeps timing out still receives everything, and the producer is never
/// stranded on a full ring.
#[test]
fn timed_pops() {
    model(|| {
        let (mem, ring) = ring(1);
        let w = Arc::new(ModelWait::new());
        // SAFETY: the only producer and the only consumer of this ring.
        let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                for n in 1..=2 {
                    tx.push(&*w, n, None).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Ok(v) = rx.pop(&*w, Some(MayTimeOut)) {
                got.push(v);
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2]);
        drop(mem);
    });
}
