//! Loom models of the MPMC ring. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_mpmc`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, model_bounded, origin};
use mproc_core::model::{MayTimeOut, ModelWait};
use mproc_core::mpmc::Mpmc;

fn ring(capacity: u64) -> (Mem, Mpmc<u32>) {
    let mem = Mem::new(Mpmc::<u32>::layout(capacity).unwrap());
    // SAFETY: `mem` is zeroed, aligned for the layout, and outlives every
    // thread of the model (all are joined before it is dropped).
    let ring = unsafe { Mpmc::<u32>::create(mem.ptr(), mem.len(), capacity, origin()) }.unwrap();
    (mem, ring)
}

/// Runs `pushes[p]` blocking pushes on each producer thread and `pops[c]`
/// blocking pops on each consumer thread, on a ring of `capacity` slots,
/// exploring interleavings with at most `preemptions` preemptions: every
/// value arrives exactly once, each producer's values in order, and nobody
/// sleeps forever (loom reports a deadlock otherwise).
fn producers_consumers(
    capacity: u64,
    pushes: &'static [u32],
    pops: &'static [u32],
    preemptions: usize,
) {
    assert_eq!(pushes.iter().sum::<u32>(), pops.iter().sum::<u32>());
    model_bounded(preemptions, move || {
        let (mem, ring) = ring(capacity);
        let w = Arc::new(ModelWait::new());
        let producers: Vec<_> = (0..pushes.len() as u32)
            .map(|p| {
                let w = w.clone();
                thread::spawn(move || {
                    for n in 1..=pushes[p as usize] {
                        ring.push(&*w, id(p + 1), p * 10 + n, None).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..pops.len() as u32)
            .map(|c| {
                let w = w.clone();
                thread::spawn(move || {
                    (0..pops[c as usize])
                        .map(|_| ring.pop(&*w, id(c + 10), None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut got = Vec::new();
        for c in consumers {
            let mine = c.join().unwrap();
            for pair in mine.windows(2) {
                if pair[0] / 10 == pair[1] / 10 {
                    assert!(
                        pair[0] < pair[1],
                        "one producer's values out of order: {pair:?}"
                    );
                }
            }
            got.extend(mine);
        }
        got.sort_unstable();
        let mut sent: Vec<u32> = (0..pushes.len() as u32)
            .flat_map(|p| (1..=pushes[p as usize]).map(move |n| p * 10 + n))
            .collect();
        sent.sort_unstable();
        assert_eq!(got, sent);
        assert!(ring.is_empty());
        drop(mem);
    });
}

/// Two producers and two consumers on two slots. Four threads: explored with
/// at most one preemption (at two it runs for hours on two cores); the
/// three-thread models below use two where that stays within minutes.
#[test]
fn two_producers_two_consumers_capacity_two() {
    producers_consumers(2, &[1, 1], &[1, 1], 1);
}

/// Two producers on one slot: one of them sleeps for space. At most one
/// preemption, as the timed models below: every slot operation confirms its
/// claim with a CAS on the slot word (so that a dead claimer can be found),
/// and at two this model runs for six minutes on two cores.
#[test]
fn two_producers_one_slot() {
    producers_consumers(1, &[1, 1], &[2], 1);
}

/// Two consumers on one slot: both may sleep for items (at most one
/// preemption, as above).
#[test]
fn two_consumers_one_slot() {
    producers_consumers(1, &[2], &[1, 1], 1);
}

/// Three values through two slots: the ring wraps and fills.
#[test]
fn wrap_around() {
    producers_consumers(2, &[3], &[3], 2);
}

/// Batch push and pop: one CAS claims a run of slots.
#[test]
fn batches() {
    model(|| {
        let (mem, ring) = ring(2);
        let w = Arc::new(ModelWait::new());
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                assert_eq!(ring.push_slice(&*w, id(1), &[1, 2, 3], None), 3);
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 3 {
                    let mut out = [0; 3];
                    let n = ring.pop_slice(&*w, id(2), &mut out, None);
                    assert!(n >= 1);
                    got.extend_from_slice(&out[..n]);
                }
                got
            })
        };
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), [1, 2, 3]);
        drop(mem);
    });
}

/// A consumer whose wait times out must not strand a blocking consumer: the
/// two values are both delivered, exactly once.
///
/// At most one preemption: each slot operation confirms its claim with a
/// CAS on the slot word (so that a dead claimer can be found), and at two
/// preemptions the four parties of this model run for over twenty minutes.
#[test]
fn timed_consumer_does_not_strand_blocking_one() {
    model_bounded(1, || {
        let (mem, ring) = ring(1);
        let w = Arc::new(ModelWait::new());
        let timed = {
            let w = w.clone();
            thread::spawn(move || ring.pop(&*w, id(2), Some(MayTimeOut)).ok())
        };
        let blocking = {
            let w = w.clone();
            thread::spawn(move || ring.pop(&*w, id(3), None).unwrap())
        };
        ring.push(&*w, id(1), 1, None).unwrap();
        ring.push(&*w, id(1), 2, None).unwrap();
        let mut got = vec![blocking.join().unwrap()];
        got.extend(timed.join().unwrap());
        got.extend(ring.try_pop(&*w, id(1)).ok());
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        drop(mem);
    });
}

/// A producer whose wait for space times out hands its value back and does
/// not strand a blocking producer (at most one preemption, as above).
#[test]
fn timed_producer_on_full_ring() {
    model_bounded(1, || {
        let (mem, ring) = ring(1);
        let w = Arc::new(ModelWait::new());
        ring.push(&*w, id(1), 1, None).unwrap();
        let timed = {
            let w = w.clone();
            thread::spawn(move || ring.push(&*w, id(2), 2, Some(MayTimeOut)).is_ok())
        };
        let blocking = {
            let w = w.clone();
            thread::spawn(move || ring.push(&*w, id(3), 3, None).unwrap())
        };
        let mut got = vec![ring.pop(&*w, id(4), None).unwrap()];
        got.push(ring.pop(&*w, id(4), None).unwrap());
        blocking.join().unwrap();
        let timed_pushed = timed.join().unwrap();
        got.extend(ring.try_pop(&*w, id(4)).ok());
        got.sort_unstable();
        if timed_pushed {
            assert_eq!(got, [1, 2, 3]);
        } else {
            assert_eq!(got, [1, 3]);
        }
        drop(mem);
    });
}
