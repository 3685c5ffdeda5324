//! `PodQueue` and `spsc` across real forked processes.

mod common;

use std::time::{Duration, Instant};

use common::{WATCHDOG, join, spawn};
use mproc::{GetError, PodQueue, PutError, spsc};

const MILLION: u64 = 1_000_000;
/// A value no producer sends: tells a consumer to stop.
const STOP: u64 = u64::MAX;

/// One producer process, one consumer process, 1,000,000 values: each
/// arrives exactly once, in order.
#[test]
fn one_producer_one_consumer_in_order() {
    let queue = PodQueue::<u64>::new(1024).unwrap();
    let mut consumer = spawn({
        let queue = queue.clone();
        move || {
            for expected in 0..MILLION {
                let got = queue
                    .get_timeout(WATCHDOG)
                    .expect("a value before the watchdog");
                assert_eq!(got, expected, "out of order or lost");
            }
            queue.try_get() == Err(GetError::Empty)
        }
    });
    let mut producer = spawn({
        let queue = queue.clone();
        move || (0..MILLION).for_each(|n| queue.put(n))
    });
    join(&mut producer);
    assert!(join(&mut consumer), "a value arrived twice");
    assert!(queue.is_empty());
}

/// The same through the batch verbs, in runs of up to 256.
#[test]
fn batches_in_order() {
    let queue = PodQueue::<u64>::new(1000).unwrap();
    let mut consumer = spawn({
        let queue = queue.clone();
        move || {
            let mut expected = 0;
            let mut out = vec![0; 256];
            while expected < MILLION {
                let n = queue.get_many_timeout(&mut out, WATCHDOG);
                assert!(n > 0, "no value before the watchdog");
                for &got in &out[..n] {
                    assert_eq!(got, expected, "out of order or lost");
                    expected += 1;
                }
            }
        }
    });
    let mut producer = spawn({
        let queue = queue.clone();
        move || {
            let values: Vec<u64> = (0..MILLION).collect();
            for chunk in values.chunks(256) {
                queue.put_many(chunk);
            }
        }
    });
    join(&mut producer);
    join(&mut consumer);
    assert!(queue.is_empty());
}

/// Four producer processes and four consumer processes on two cores move
/// 1,000,000 values: the multiset received equals the multiset sent.
#[test]
fn four_producers_four_consumers_lose_nothing() {
    const PER_PRODUCER: u64 = MILLION / 4;
    let queue = PodQueue::<u64>::new(256).unwrap();
    let mut consumers: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            spawn(move || {
                let mut got = Vec::new();
                loop {
                    match queue
                        .get_timeout(WATCHDOG)
                        .expect("a value before the watchdog")
                    {
                        STOP => return got,
                        value => got.push(value),
                    }
                }
            })
        })
        .collect();
    let mut producers: Vec<_> = (0..4u64)
        .map(|p| {
            let queue = queue.clone();
            spawn(move || {
                for i in 0..PER_PRODUCER {
                    queue.put(p * PER_PRODUCER + i);
                }
            })
        })
        .collect();
    for producer in &mut producers {
        join(producer);
    }
    for _ in 0..4 {
        queue
            .put_timeout(STOP, WATCHDOG)
            .expect("room for the stop values");
    }
    let mut received: Vec<u64> = consumers.iter_mut().flat_map(|c| join(c)).collect();
    received.sort_unstable();
    assert_eq!(received.len() as u64, MILLION);
    assert!(
        received.iter().copied().eq(0..MILLION),
        "a value was lost or duplicated"
    );
    assert!(queue.is_empty());
}

/// `get_timeout` on an empty queue waits about its timeout, then reports
/// `Empty`; a value put meanwhile by another process is got instead.
#[test]
fn get_timeout_on_empty_queue() {
    let queue = PodQueue::<u64>::new(4).unwrap();
    let mut child = spawn({
        let queue = queue.clone();
        move || {
            let start = Instant::now();
            let first = queue.get_timeout(Duration::from_millis(200)).ok();
            let waited = start.elapsed();
            let second = queue.get_timeout(WATCHDOG).ok();
            (first, waited, second)
        }
    });
    // The child's first wait times out; only then does a value arrive.
    std::thread::sleep(Duration::from_millis(600));
    queue.put_timeout(7, WATCHDOG).unwrap();
    let (first, waited, second) = join(&mut child);
    assert_eq!(first, None, "nothing to get yet");
    assert!(
        waited >= Duration::from_millis(200),
        "returned early: {waited:?}"
    );
    assert_eq!(second, Some(7));
}

/// `put_timeout` on a full queue waits about its timeout, then hands the
/// value back in `Full`; `try_put` does so at once.
#[test]
fn put_timeout_on_full_queue() {
    let queue = PodQueue::<u64>::new(2).unwrap();
    queue.put_many(&[1, 2]);
    assert!(queue.is_full());
    let mut child = spawn({
        let queue = queue.clone();
        move || {
            let start = Instant::now();
            let put = queue.put_timeout(3, Duration::from_millis(200));
            (
                put.map_err(PutError::into_inner),
                start.elapsed(),
                queue.try_put(4).map_err(PutError::into_inner),
            )
        }
    });
    let (put, waited, try_put) = join(&mut child);
    assert_eq!(put, Err(3), "the value comes back");
    assert!(
        waited >= Duration::from_millis(200),
        "returned early: {waited:?}"
    );
    assert_eq!(try_put, Err(4));
    let mut out = [0; 4];
    assert_eq!(queue.try_get_many(&mut out), 2);
    assert_eq!(out[..2], [1, 2], "nothing else got in");
}

/// A consumer asleep on an empty queue is woken by a producer in another
/// process (the wake-up crosses processes through a shared futex).
#[test]
fn sleeping_consumer_is_woken() {
    let queue = PodQueue::<u64>::new(1).unwrap();
    let mut consumer = spawn({
        let queue = queue.clone();
        move || {
            (0..100)
                .map(|_| queue.get_timeout(WATCHDOG).unwrap())
                .sum::<u64>()
        }
    });
    for n in 0..100 {
        // Give the consumer time to fall asleep between values.
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        queue.put_timeout(n, WATCHDOG).unwrap();
    }
    assert_eq!(join(&mut consumer), (0..100).sum());
}

/// The SPSC channel: 1,000,000 values between two processes, in order, in
/// batches of varying size.
#[test]
fn spsc_in_order() {
    let (mut tx, mut rx) = spsc::channel::<u64>(4096).unwrap();
    let mut consumer = spawn(move || {
        let mut expected = 0;
        let mut out = vec![0; 300];
        while expected < MILLION {
            let want = (MILLION - expected).min(300) as usize;
            let n = rx.pop_slice_timeout(&mut out[..want], WATCHDOG);
            assert!(n > 0, "no value before the watchdog");
            for &got in &out[..n] {
                assert_eq!(got, expected);
                expected += 1;
            }
        }
        rx.pop_timeout(WATCHDOG).ok()
    });
    let mut producer = spawn(move || {
        let mut next = 0;
        let mut size = 1;
        while next < MILLION {
            let end = (next + size).min(MILLION);
            let batch: Vec<u64> = (next..end).collect();
            tx.push_slice(&batch);
            next = end;
            size = size % 97 + 1;
        }
        tx.push_timeout(STOP, Duration::ZERO).is_ok()
    });
    assert!(join(&mut producer), "the stop value fits");
    assert_eq!(
        join(&mut consumer),
        Some(STOP),
        "nothing between the last value and the stop"
    );
}
