//! Locks whose holder is killed with `SIGKILL`: the next locker takes the
//! lock over and is told that the owner died; a process that reuses a dead
//! owner's pid is not mistaken for it; a killed semaphore waiter leaves the
//! count alone; a `PodQueue` slot whose claimer died before marking it is
//! given up on after a second of waiting, however the waiting is split.

mod common;

use std::time::Duration;

use common::{Guard, WATCHDOG, join, spawn};
use mproc::mproc_core::mpmc::{Mpmc, STUCK_MS};
use mproc::mproc_core::mutex::{Acquired, RawMutex};
use mproc::mproc_core::{OwnerId, Wait};
use mproc::mproc_os::futex::Futex;
use mproc::mproc_os::process::{origin, owner_id};
use mproc::{Array, Condition, Event, Lock, PodQueue, ProcessError, RLock, Semaphore, Value};

/// Forks a child that runs `hold` (which takes a lock), sets `held`, and
/// sleeps until it is killed; returns once the child holds the lock.
fn holder(held: &Event, hold: impl FnOnce() + Send + 'static) -> Guard<()> {
    let held_in_child = held.clone();
    let child = spawn(move || {
        hold();
        held_in_child.set();
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
    assert!(held.wait_timeout(WATCHDOG), "the child never took the lock");
    child
}

/// Kills `child` with SIGKILL and checks that it died of it.
fn kill(mut child: Guard<()>) {
    child.kill().unwrap();
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Signaled { signal, .. }) => assert_eq!(signal, libc::SIGKILL),
        other => panic!("the child was not killed: {other:?}"),
    }
}

#[test]
fn lock_holder_killed_is_taken_over() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let child = holder(&held, {
        let lock = lock.clone();
        move || std::mem::forget(lock.lock())
    });
    assert_eq!(lock.owner(), Some(child.pid()));
    // While the holder lives, nobody takes the lock over.
    assert!(lock.lock_timeout(Duration::from_millis(50)).is_err());
    kill(child);
    let mut guard = lock.lock_timeout(WATCHDOG).expect("taken over");
    assert!(guard.owner_died());
    assert_eq!(lock.owner(), Some(std::process::id()));
    drop(guard);
    // Not marked consistent: the next owner is told too.
    guard = lock.lock_timeout(WATCHDOG).unwrap();
    assert!(guard.owner_died());
    guard.mark_consistent();
    drop(guard);
    let guard = lock.lock_timeout(WATCHDOG).unwrap();
    assert!(!guard.owner_died());
}

/// The holder is killed while the parent already sleeps on the lock (no
/// timeout): the sleeper wakes up to check and takes it over.
#[test]
fn sleeping_waiter_takes_over() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let child = holder(&held, {
        let lock = lock.clone();
        move || std::mem::forget(lock.lock())
    });
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill(child);
    });
    let waiter = spawn({
        let lock = lock.clone();
        move || lock.lock().owner_died()
    });
    let mut waiter = waiter;
    assert!(join(&mut waiter), "the waiter was not told of {pid}");
    killer.join().unwrap();
}

#[test]
fn rlock_holder_killed_is_taken_over() {
    let lock = RLock::new().unwrap();
    let held = Event::new().unwrap();
    let child = holder(&held, {
        let lock = lock.clone();
        move || {
            lock.acquire();
            lock.acquire();
        }
    });
    assert_eq!(lock.count(), 2);
    kill(child);
    let mut guard = lock.lock_timeout(WATCHDOG).expect("taken over");
    assert!(guard.owner_died());
    // The dead owner's levels died with it.
    assert_eq!(lock.count(), 1);
    guard.mark_consistent();
    drop(guard);
    assert!(!lock.is_locked());
    assert!(!lock.owner_died());
}

#[test]
fn value_and_array_holder_killed() {
    let value = Value::new(7u64).unwrap();
    let array = Array::new(&[1u32, 2, 3]).unwrap();
    let held = Event::new().unwrap();
    let child = holder(&held, {
        let (value, array) = (value.clone(), array.clone());
        move || {
            let mut v = value.lock();
            *v = 8;
            std::mem::forget(v);
            let mut a = array.lock();
            a[0] = 10;
            std::mem::forget(a);
        }
    });
    kill(child);
    let mut v = value.lock_timeout(WATCHDOG).expect("taken over");
    assert!(v.owner_died());
    // What the dead owner wrote is there.
    assert_eq!(*v, 8);
    v.mark_consistent();
    drop(v);
    let mut a = array.lock_timeout(WATCHDOG).expect("taken over");
    assert!(a.owner_died());
    assert_eq!(a[..], [10, 2, 3]);
    a.mark_consistent();
    drop(a);
    assert!(!value.lock().owner_died());
    assert_eq!(value.get(), 8);
}

/// Waits on `cond` until killed.
fn wait_forever(cond: &Condition, guard: &mut mproc::ConditionGuard<'_>) {
    loop {
        cond.wait(guard);
    }
}

#[test]
fn condition_holder_killed_and_waiter_killed() {
    let cond = Condition::new().unwrap();
    let flag = Value::new(0u32).unwrap();
    // A waiter that is killed while it waits leaves nothing behind.
    let sleeping = Event::new().unwrap();
    let mut waiter = spawn({
        let (cond, sleeping) = (cond.clone(), sleeping.clone());
        move || {
            let mut guard = cond.lock();
            sleeping.set();
            wait_forever(&cond, &mut guard);
        }
    });
    assert!(sleeping.wait_timeout(WATCHDOG));
    // It releases the lock while it waits.
    drop(
        cond.lock_timeout(WATCHDOG)
            .expect("free while the child waits"),
    );
    waiter.kill().unwrap();
    assert!(waiter.join_timeout(WATCHDOG).is_err());

    let held = Event::new().unwrap();
    let child = holder(&held, {
        let cond = cond.clone();
        move || std::mem::forget(cond.lock())
    });
    kill(child);
    // A live waiter is still notified after both deaths.
    let ready = Event::new().unwrap();
    let mut live = spawn({
        let (cond, flag, ready) = (cond.clone(), flag.clone(), ready.clone());
        move || {
            let mut guard = cond.lock_timeout(WATCHDOG).expect("taken over");
            let died = guard.owner_died();
            guard.mark_consistent();
            ready.set();
            assert!(cond.wait_for_timeout(&mut guard, WATCHDOG, || flag.get() == 1));
            died
        }
    });
    assert!(ready.wait_timeout(WATCHDOG));
    {
        // The child holds the lock until it waits.
        let guard = cond.lock_timeout(WATCHDOG).unwrap();
        assert!(!guard.owner_died());
        flag.set(1);
        cond.notify_all();
    }
    assert!(join(&mut live), "the live waiter was not told");
}

/// A lock record naming a live process with another start time (a process
/// that reused a dead owner's pid) is taken over; one naming the live
/// process with its own start time is not.
#[test]
fn pid_reuse_is_harmless() {
    let held = Event::new().unwrap();
    let child = holder(&held, || {});
    let pid = child.pid();
    let start = mproc::mproc_os::process::start_time(pid).unwrap() as u32;
    let me = owner_id();
    let mut words = [0u64; 2];
    // SAFETY: `words` is 16 aligned bytes, used only through `mutex`.
    let mutex = unsafe { RawMutex::init(std::ptr::NonNull::from(&mut words).cast()) };

    // The live child with its own start time: it holds the lock.
    assert!(mutex.try_lock(OwnerId::with_start(pid, start).unwrap()));
    let soon = mproc::mproc_os::futex::Deadline::after(Duration::from_millis(60));
    assert!(mutex.lock(&Futex, me, soon).is_err());
    assert_eq!(mutex.owner(), Some(pid));

    // Same pid, another start time: the owner it names is gone.
    let mut words = [0u64; 2];
    // SAFETY: as above.
    let mutex = unsafe { RawMutex::init(std::ptr::NonNull::from(&mut words).cast()) };
    assert!(mutex.try_lock(OwnerId::with_start(pid, start.wrapping_add(1)).unwrap()));
    assert!(Futex.owner_gone(pid, Some(start.wrapping_add(1))));
    assert!(!Futex.owner_gone(pid, Some(start)));
    assert_eq!(mutex.lock(&Futex, me, None), Ok(Acquired::OwnerDied));
    assert_eq!(mutex.owner(), Some(me.get()));
    assert!(mutex.held_by(me));
    assert_eq!(me.start() as u64, origin().start_time & u64::from(u32::MAX));
    kill(child);
}

/// A process killed while it waits on a semaphore does not change the
/// count: every permit released afterwards is there for the others.
#[test]
fn killed_semaphore_waiter_leaves_the_count() {
    let sem = Semaphore::new(0).unwrap();
    let mut waiters: Vec<_> = (0..3)
        .map(|_| {
            let sem = sem.clone();
            spawn(move || sem.acquire_timeout(WATCHDOG).is_ok())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    for waiter in &waiters {
        waiter.kill().unwrap();
    }
    for waiter in &mut waiters {
        assert!(waiter.join_timeout(WATCHDOG).is_err());
    }
    assert_eq!(sem.value(), 0);
    sem.release_n(2).unwrap();
    let mut taker = spawn({
        let sem = sem.clone();
        move || sem.acquire_timeout(WATCHDOG).is_ok() && sem.acquire_timeout(WATCHDOG).is_ok()
    });
    assert!(join(&mut taker));
    assert_eq!(sem.value(), 0);
}

/// A producer killed between claiming a position of a `PodQueue` and
/// marking the slot as its own (a window of a few instructions, so the
/// claim is made by hand here): a consumer that waits in short calls, one
/// after the other, skips the slot once it has waited behind it for a
/// second in all, measured on the clock all processes share, and gets the
/// value that follows.
#[test]
fn pod_queue_slot_of_a_producer_killed_after_claiming_is_skipped_by_short_waits() {
    let queue = PodQueue::<u64>::new(4).unwrap();
    let body = Mpmc::<u64>::layout(4).unwrap().body_offset();
    // SAFETY: the ring starts at the region's start and its state's first
    // word, `tail`, lies `body` bytes in: aligned, mapped while `queue`
    // lives, and only used atomically.
    let tail = unsafe {
        &*queue
            .region()
            .as_ptr()
            .as_ptr()
            .add(body)
            .cast::<std::sync::atomic::AtomicU64>()
    };
    tail.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    queue.put(42);
    let mut consumer = spawn({
        let queue = queue.clone();
        move || {
            let start = std::time::Instant::now();
            let value = loop {
                match queue.get_timeout(Duration::from_millis(20)) {
                    Ok(value) => break value,
                    Err(_) => assert!(start.elapsed() < WATCHDOG, "never skipped"),
                }
            };
            (value, start.elapsed())
        }
    });
    let (value, waited) = join(&mut consumer);
    assert_eq!(value, 42);
    assert!(
        waited >= Duration::from_millis(u64::from(STUCK_MS)),
        "gave up on a claimer after {waited:?}"
    );
    assert!(queue.is_empty());
}
