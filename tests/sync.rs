//! `Lock`, `Semaphore`, `Event`, `Value` and `Array` across real forked
//! processes.

mod common;

use std::time::{Duration, Instant};

use common::{WATCHDOG, join, spawn};
use mproc::{Array, Event, Lock, Semaphore, Value};

/// Four processes each increment a shared counter 100,000 times under its
/// lock: it ends at exactly 400,000.
#[test]
fn counter_under_lock() {
    let counter = Value::new(0u64).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            spawn(move || {
                for _ in 0..100_000 {
                    *counter.lock_timeout(WATCHDOG).expect("the lock") += 1;
                }
            })
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    assert_eq!(counter.get(), 400_000);
}

/// A `Lock` guarding a non-atomic read-modify-write of an `Array` element,
/// from four processes.
#[test]
fn lock_excludes_across_processes() {
    let lock = Lock::new().unwrap();
    let data = Array::new(&[0u64; 2]).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            let (lock, data) = (lock.clone(), data.clone());
            spawn(move || {
                for _ in 0..20_000 {
                    let _guard = lock.lock_timeout(WATCHDOG).expect("the lock");
                    // Two separate accesses: only the lock keeps them together.
                    let v = data.get(0).unwrap();
                    data.set(0, v + 1).unwrap();
                    data.set(1, data.get(1).unwrap() + 2).unwrap();
                }
            })
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    assert_eq!(data.to_vec(), [80_000, 160_000]);
    assert!(!lock.is_locked());
}

/// The bounded buffer of the textbooks: two slots, `empty` = 2, `full` = 0,
/// and a lock; producer and consumer in separate processes. Every item
/// arrives in order, and the producer is never more than two items ahead.
#[test]
fn bounded_buffer_with_two_semaphores() {
    const ITEMS: u64 = 20_000;
    let empty = Semaphore::new(2).unwrap();
    let full = Semaphore::new(0).unwrap();
    let lock = Lock::new().unwrap();
    // Slots 0 and 1 hold items; 2 is the next write index, 3 the next read
    // index, 4 the number of items buffered.
    let buffer = Array::new(&[0u64; 5]).unwrap();

    let mut producer = spawn({
        let (empty, full, lock, buffer) =
            (empty.clone(), full.clone(), lock.clone(), buffer.clone());
        move || {
            for item in 0..ITEMS {
                empty.acquire_timeout(WATCHDOG).expect("a free slot");
                {
                    let _guard = lock.lock();
                    let mut b = buffer.lock();
                    let at = b[2] as usize;
                    b[at] = item;
                    b[2] = (b[2] + 1) % 2;
                    b[4] += 1;
                    assert!(b[4] <= 2, "producer ran ahead: {} items buffered", b[4]);
                }
                full.release().unwrap();
            }
        }
    });
    let mut consumer = spawn({
        let (empty, full, lock, buffer) =
            (empty.clone(), full.clone(), lock.clone(), buffer.clone());
        move || {
            for expected in 0..ITEMS {
                full.acquire_timeout(WATCHDOG).expect("an item");
                let item = {
                    let _guard = lock.lock();
                    let mut b = buffer.lock();
                    let at = b[3] as usize;
                    b[3] = (b[3] + 1) % 2;
                    assert!(b[4] >= 1, "consumer overtook the producer");
                    b[4] -= 1;
                    b[at]
                };
                empty.release().unwrap();
                assert_eq!(item, expected);
            }
        }
    });
    join(&mut producer);
    join(&mut consumer);
    assert_eq!(empty.value(), 2);
    assert_eq!(full.value(), 0);
    assert_eq!(buffer.get(4), Ok(0));
}

/// A process sleeping in `acquire` is woken by a `release` from another;
/// `acquire_timeout` without a release gives up after about its timeout.
#[test]
fn semaphore_wakes_and_times_out() {
    let sem = Semaphore::new(0).unwrap();
    let mut sleeper = spawn({
        let sem = sem.clone();
        move || {
            let start = Instant::now();
            let timed_out = sem.acquire_timeout(Duration::from_millis(150)).is_err();
            let waited = start.elapsed();
            let woken = sem.acquire_timeout(WATCHDOG).is_ok();
            (timed_out, waited, woken)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    sem.release().unwrap();
    let (timed_out, waited, woken) = join(&mut sleeper);
    assert!(timed_out);
    assert!(
        waited >= Duration::from_millis(150),
        "returned early: {waited:?}"
    );
    assert!(woken);
    assert_eq!(sem.value(), 0);
    assert!(
        Semaphore::new(Semaphore::MAX).unwrap().release().is_err(),
        "overflow is refused"
    );
}

/// `lock_timeout` on a lock held by another process gives up after about
/// its timeout and succeeds once the holder lets go; the lock records its
/// holder's pid.
#[test]
fn lock_timeout_and_owner() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let release = Event::new().unwrap();
    let mut holder = spawn({
        let (lock, held, release) = (lock.clone(), held.clone(), release.clone());
        move || {
            let _guard = lock.lock();
            held.set();
            release.wait_timeout(WATCHDOG)
        }
    });
    assert!(held.wait_timeout(WATCHDOG));
    assert_eq!(lock.owner(), Some(holder.pid()));
    assert!(lock.try_lock().is_none());
    let start = Instant::now();
    assert!(lock.lock_timeout(Duration::from_millis(150)).is_err());
    assert!(start.elapsed() >= Duration::from_millis(150));
    release.set();
    assert!(join(&mut holder));
    let guard = lock
        .lock_timeout(WATCHDOG)
        .expect("free once the holder let go");
    assert_eq!(lock.owner(), Some(std::process::id()));
    drop(guard);
    assert_eq!(lock.owner(), None);
}

/// A child sets a `Value<f64>` and an `Array<i32>` element; the parent sees
/// both (Python's `Value('d', 0.0)` / `Array('i', range(10))` example).
#[test]
fn value_and_array_are_shared() {
    let num = Value::new(0.0f64).unwrap();
    let arr = Array::new(&(0..10).collect::<Vec<i32>>()).unwrap();
    let mut child = spawn({
        let (num, arr) = (num.clone(), arr.clone());
        move || {
            num.set(2.5);
            arr.set(0, 5).unwrap();
            arr.set(10, 0).is_err()
        }
    });
    assert!(join(&mut child), "index 10 is out of bounds");
    assert_eq!(num.get(), 2.5);
    assert_eq!(arr.to_vec(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/// `Event::set` in one process wakes waiters in two others.
#[test]
fn event_wakes_all_waiters() {
    let event = Event::new().unwrap();
    let mut waiters: Vec<_> = (0..2)
        .map(|_| {
            let event = event.clone();
            spawn(move || event.wait_timeout(WATCHDOG))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    event.set();
    for waiter in &mut waiters {
        assert!(join(waiter));
    }
    event.clear();
    assert!(!event.wait_timeout(Duration::from_millis(10)));
}
