//! `RLock`, `BoundedSemaphore`, `Condition` and `Barrier` across real forked
//! processes.

mod common;

use std::time::{Duration, Instant};

use common::{WATCHDOG, join, spawn};
use mproc::{
    Array, Barrier, BarrierWaitError, BoundedSemaphore, BrokenBarrier, Condition, Event, Overflow,
    RLock, ReleaseError, Value,
};

/// Waits until `done()` holds, failing the test if it does not within
/// [`WATCHDOG`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WATCHDOG, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A barrier outcome that can cross back from a child.
fn outcome(result: Result<u32, BarrierWaitError>) -> Result<u32, String> {
    result.map_err(|error| format!("{error:?}"))
}

/// Four processes take an `RLock` twice over (the second time as its owner)
/// around two non-atomic read-modify-writes: none is lost, and inside, the
/// lock counts two levels held by the process itself.
#[test]
fn rlock_reentrance_and_exclusion() {
    let lock = RLock::new().unwrap();
    let data = Array::new(&[0u64; 2]).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            let (lock, data) = (lock.clone(), data.clone());
            spawn(move || {
                for _ in 0..5_000 {
                    let _outer = lock.lock_timeout(WATCHDOG).expect("the lock");
                    let v = data.get(0).unwrap();
                    data.set(0, v + 1).unwrap();
                    let _inner = lock.try_lock().expect("the owner relocks at once");
                    assert_eq!(lock.count(), 2);
                    assert!(lock.is_owned());
                    let v = data.get(1).unwrap();
                    data.set(1, v + 1).unwrap();
                }
            })
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    assert_eq!(data.to_vec(), [20_000, 20_000]);
    assert!(!lock.is_locked());
    assert_eq!(lock.count(), 0);
}

/// A process that does not hold the `RLock` cannot release it (a typed
/// error, nothing changes) nor take it; once its owner has given back every
/// level, it can.
#[test]
fn rlock_release_by_non_owner_is_refused() {
    let lock = RLock::new().unwrap();
    let me = std::process::id();
    lock.acquire();
    let guard = lock.lock();
    assert_eq!((lock.owner(), lock.count()), (Some(me), 2));

    let mut intruder = spawn({
        let lock = lock.clone();
        move || {
            let refused = lock.release() == Err(ReleaseError::NotOwner { holder: Some(me) })
                && !lock.is_owned();
            let excluded = lock.try_lock().is_none()
                && lock.acquire_timeout(Duration::from_millis(50)).is_err();
            (refused, excluded, lock.count())
        }
    });
    assert_eq!(join(&mut intruder), (true, true, 2));
    assert_eq!((lock.owner(), lock.count()), (Some(me), 2));

    drop(guard);
    assert_eq!(lock.count(), 1);
    lock.release().unwrap();
    assert_eq!(lock.release(), Err(ReleaseError::NotOwner { holder: None }));

    let mut taker = spawn({
        let lock = lock.clone();
        move || {
            let guard = lock.lock_timeout(WATCHDOG).expect("free now");
            let owner = lock.owner();
            drop(guard);
            (owner == Some(std::process::id()), lock.is_locked())
        }
    });
    assert_eq!(join(&mut taker), (true, false));
}

/// A `BoundedSemaphore` refuses a release above its initial count, in any
/// process, and the count stays what it was; permits taken in one process
/// and given back in another work as with a `Semaphore`.
#[test]
fn bounded_semaphore_over_release_is_refused() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert_eq!(
        sem.release(),
        Err(Overflow {
            available: 2,
            adding: 1,
            max: 2
        })
    );
    assert_eq!(sem.value(), 2);

    let mut taker = spawn({
        let sem = sem.clone();
        move || {
            sem.acquire_timeout(WATCHDOG).expect("a permit");
            sem.acquire_timeout(WATCHDOG).expect("a permit");
            let drained = !sem.try_acquire();
            // One back, then two more than were taken: refused whole.
            sem.release().unwrap();
            let refused = sem.release_n(2).is_err();
            (drained, refused, sem.value())
        }
    });
    assert_eq!(join(&mut taker), (true, true, 1));
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    assert!(sem.release().is_err());
    assert_eq!((sem.value(), sem.bound()), (2, 2));
}

/// Producer and consumer in two processes pass 2,000 items through a
/// one-slot mailbox guarded by a `Condition`, each waiting with `wait_for`
/// for its turn and waking the other with `notify_one`: every item
/// arrives, in order.
#[test]
fn condition_producer_consumer() {
    const ITEMS: u64 = 2_000;
    let cond = Condition::new().unwrap();
    // [full, item]: changed only under the condition's lock.
    let mailbox = Array::new(&[0u64; 2]).unwrap();

    let mut producer = spawn({
        let (cond, mailbox) = (cond.clone(), mailbox.clone());
        move || {
            for item in 1..=ITEMS {
                let mut guard = cond.lock();
                let empty = cond.wait_for_timeout(&mut guard, WATCHDOG, || mailbox.get(0) == Ok(0));
                assert!(empty, "the consumer never emptied the mailbox");
                mailbox.set(1, item).unwrap();
                mailbox.set(0, 1).unwrap();
                drop(guard);
                cond.notify_one();
            }
        }
    });
    let mut consumer = spawn({
        let (cond, mailbox) = (cond.clone(), mailbox.clone());
        move || {
            let mut sum = 0;
            for expected in 1..=ITEMS {
                let mut guard = cond.lock();
                let full = cond.wait_for_timeout(&mut guard, WATCHDOG, || mailbox.get(0) == Ok(1));
                assert!(full, "the producer never filled the mailbox");
                let item = mailbox.get(1).unwrap();
                assert_eq!(item, expected);
                sum += item;
                mailbox.set(0, 0).unwrap();
                cond.notify_one();
            }
            sum
        }
    });
    join(&mut producer);
    assert_eq!(join(&mut consumer), ITEMS * (ITEMS + 1) / 2);
    assert_eq!(mailbox.to_vec(), [0, ITEMS]);
}

/// Three processes wait on one `Condition`; the parent sees all three
/// registered (each counted itself in under the lock, which only `wait`
/// gives up) before it sets the flag and calls `notify_all` once: all three
/// wake.
#[test]
fn condition_notify_all_wakes_every_process() {
    let cond = Condition::new().unwrap();
    // [arrived, go]: changed only under the condition's lock.
    let state = Array::new(&[0u64; 2]).unwrap();
    let mut waiters: Vec<_> = (0..3)
        .map(|_| {
            let (cond, state) = (cond.clone(), state.clone());
            spawn(move || {
                let mut guard = cond.lock();
                let arrived = state.get(0).unwrap();
                state.set(0, arrived + 1).unwrap();
                // Tell the parent; then wait for the flag.
                cond.notify_all();
                cond.wait_for_timeout(&mut guard, WATCHDOG, || state.get(1) == Ok(1))
            })
        })
        .collect();
    let mut guard = cond.lock();
    let all_in = cond.wait_for_timeout(&mut guard, WATCHDOG, || state.get(0) == Ok(3));
    assert!(all_in, "the waiters never arrived");
    state.set(1, 1).unwrap();
    cond.notify_all();
    drop(guard);
    for waiter in &mut waiters {
        assert!(join(waiter), "a waiter timed out instead of being woken");
    }
}

/// `wait_timeout` with nobody notifying returns false and holds the lock
/// again; `wait_for_timeout` on a predicate nobody makes true returns
/// false; `wait_for_timeout` on one that another process makes true, a step
/// at a time with a notify each, returns true.
#[test]
fn condition_timeouts_and_wait_for() {
    let cond = Condition::new().unwrap();
    let steps = Value::new(0u32).unwrap();

    let mut guard = cond.lock();
    assert!(!cond.wait_timeout(&mut guard, Duration::from_millis(20)));
    assert!(cond.try_lock().is_none(), "the lock is held again");
    assert!(!cond.wait_for_timeout(&mut guard, Duration::from_millis(20), || steps.get() == 1));
    drop(guard);

    let started = Event::new().unwrap();
    let mut waiter = spawn({
        let (cond, steps, started) = (cond.clone(), steps.clone(), started.clone());
        move || {
            let mut guard = cond.lock();
            started.set();
            let done = cond.wait_for_timeout(&mut guard, WATCHDOG, || steps.get() == 3);
            (done, steps.get())
        }
    });
    assert!(started.wait_timeout(WATCHDOG));
    for _ in 0..3 {
        let guard = cond.lock_timeout(WATCHDOG).expect("the lock");
        steps.set(steps.get() + 1);
        drop(guard);
        cond.notify(1);
    }
    assert_eq!(join(&mut waiter), (true, 3));
}

/// Four processes meet at a `Barrier` 50 times. In every round each counts
/// itself in before waiting and, once released, finds all four counted;
/// the indexes of a round are 0, 1, 2 and 3.
#[test]
fn barrier_four_processes_many_generations() {
    const ROUNDS: usize = 50;
    let barrier = Barrier::new(4).unwrap();
    let arrived = Array::new(&[0u64; ROUNDS]).unwrap();
    let mut parties: Vec<_> = (0..4)
        .map(|_| {
            let (barrier, arrived) = (barrier.clone(), arrived.clone());
            spawn(move || {
                let mut indexes = Vec::new();
                for round in 0..ROUNDS {
                    arrived.lock()[round] += 1;
                    let index = barrier.wait_timeout(WATCHDOG).expect("released");
                    assert_eq!(arrived.get(round), Ok(4), "released before all arrived");
                    indexes.push(index);
                }
                indexes
            })
        })
        .collect();
    let indexes: Vec<Vec<u32>> = parties.iter_mut().map(|party| join(party)).collect();
    for round in 0..ROUNDS {
        let mut seen: Vec<u32> = indexes.iter().map(|party| party[round]).collect();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3], "round {round}");
    }
    assert_eq!((barrier.n_waiting(), barrier.broken()), (0, false));
}

/// Two processes wait at a barrier of four; the parent's `wait_timeout`
/// runs out: it gets `TimedOut`, both waiters `Broken`, and so does every
/// later wait, until `reset` makes the barrier work again for four.
#[test]
fn barrier_timeout_breaks_it_until_reset() {
    let barrier = Barrier::new(4).unwrap();
    let mut waiters: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            spawn(move || outcome(barrier.wait_timeout(WATCHDOG)))
        })
        .collect();
    wait_until("two waiting parties", || barrier.n_waiting() == 2);
    assert_eq!(
        barrier.wait_timeout(Duration::from_millis(20)),
        Err(BarrierWaitError::TimedOut)
    );
    for waiter in &mut waiters {
        assert_eq!(join(waiter), Err("Broken".to_string()));
    }
    assert!(barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
    assert_eq!(barrier.wait(), Err(BrokenBarrier));

    barrier.reset();
    assert!(!barrier.broken());
    let mut parties: Vec<_> = (0..3)
        .map(|_| {
            let barrier = barrier.clone();
            spawn(move || outcome(barrier.wait_timeout(WATCHDOG)))
        })
        .collect();
    let mut indexes = vec![barrier.wait_timeout(WATCHDOG).expect("released")];
    for party in &mut parties {
        indexes.push(join(party).expect("released"));
    }
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2, 3]);
}

/// `abort` breaks the barrier for a process waiting at it; `reset` while a
/// process waits tells it its round broke; then the barrier works again.
#[test]
fn barrier_abort_and_reset_wake_waiters() {
    let barrier = Barrier::new(2).unwrap();
    let wait_in_child = || {
        let barrier = barrier.clone();
        spawn(move || outcome(barrier.wait_timeout(WATCHDOG)))
    };

    let mut waiter = wait_in_child();
    wait_until("a waiting party", || barrier.n_waiting() == 1);
    barrier.abort();
    assert_eq!(join(&mut waiter), Err("Broken".to_string()));
    assert!(barrier.broken());
    barrier.reset();

    let mut waiter = wait_in_child();
    wait_until("a waiting party", || barrier.n_waiting() == 1);
    barrier.reset();
    assert_eq!(join(&mut waiter), Err("Broken".to_string()));
    assert!(!barrier.broken(), "a reset leaves the barrier usable");

    let mut other = wait_in_child();
    let mine = barrier.wait_timeout(WATCHDOG).expect("released");
    assert_eq!(mine + join(&mut other).expect("released"), 1);
}
