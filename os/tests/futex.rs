//! The futex [`Wait`] hook across real processes.
//!
//! Children only touch atomics, make futex calls and `exit_now`: the test
//! harness is multi-threaded, so a forked child must stay async-signal-safe.

use std::time::{Duration, Instant};

use mproc_core::sync::{AtomicU32, Ordering};
use mproc_core::{TimedOut, Wait};
use mproc_os::futex::{Deadline, Futex};
use mproc_os::process::{ExitStatus, Fork, exit_now, fork};
use mproc_os::shm::Region;

/// The first word of `region` as an atomic.
fn word(region: &Region) -> &AtomicU32 {
    // SAFETY: the mapping is page aligned, at least 4 bytes, initialized
    // (zeroed) and lives as long as `region`; every bit pattern is a valid
    // `AtomicU32`, and all accesses to it are atomic.
    unsafe { region.as_ptr().cast::<AtomicU32>().as_ref() }
}

/// The scheduler state of process `pid` (field 3 of `/proc/<pid>/stat`).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().next()?.chars().next()
}

/// Waits until process `pid` sleeps (state `S`), for at most 20 s.
fn wait_until_sleeping(pid: u32) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while proc_state(pid) != Some('S') {
        assert!(Instant::now() < give_up, "child {pid} never went to sleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a child: sleeps on `word` until it is no longer 0, then exits 0 if it
/// holds 42, 1 if it holds anything else, and 2 if 20 s pass first.
fn child_waits_for_42(word: &AtomicU32) -> ! {
    let Some(deadline) = Deadline::after(Duration::from_secs(20)) else {
        exit_now(3)
    };
    loop {
        // Acquire pairs with the parent's Release store.
        match word.load(Ordering::Acquire) {
            0 => {}
            42 => exit_now(0),
            _ => exit_now(1),
        }
        if Futex.wait(word, 0, Some(deadline)).is_err() {
            exit_now(2);
        }
    }
}

#[test]
fn wake_reaches_a_sleeper_in_another_process() {
    let region = Region::anonymous(4096).unwrap();
    let word = word(&region);
    // SAFETY: the child only uses atomics, futex calls and `exit_now`.
    let mut child = match unsafe { fork() }.unwrap() {
        Fork::Child => child_waits_for_42(word),
        Fork::Parent(child) => child,
    };
    wait_until_sleeping(child.pid());
    // Release pairs with the child's Acquire load.
    word.store(42, Ordering::Release);
    Futex.wake(word, 1);
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
}

#[test]
fn wake_all_reaches_every_sleeper() {
    let region = Region::anonymous(4096).unwrap();
    let word = word(&region);
    let mut children = Vec::new();
    for _ in 0..3 {
        // SAFETY: the child only uses atomics, futex calls and `exit_now`.
        match unsafe { fork() }.unwrap() {
            Fork::Child => child_waits_for_42(word),
            Fork::Parent(child) => children.push(child),
        }
    }
    for child in &children {
        wait_until_sleeping(child.pid());
    }
    word.store(42, Ordering::Release);
    // u32::MAX must wake all of them (the kernel reads the count as an int,
    // where u32::MAX would be -1).
    Futex.wake(word, u32::MAX);
    for mut child in children {
        assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    }
}

#[test]
fn wait_times_out_after_its_deadline() {
    let word = AtomicU32::new(7);
    let start = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(50)).unwrap();
    // Spurious returns are allowed; callers re-check and wait again.
    let result = loop {
        match Futex.wait(&word, 7, Some(deadline)) {
            Ok(()) => continue,
            Err(timed_out) => break timed_out,
        }
    };
    assert_eq!(result, TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(deadline.has_passed());
    assert!(Futex.expired(deadline));
    assert_eq!(deadline.remaining(), Duration::ZERO);
}

#[test]
fn wait_on_a_changed_word_returns_at_once() {
    let word = AtomicU32::new(5);
    let deadline = Deadline::after(Duration::from_secs(30)).unwrap();
    assert_eq!(Futex.wait(&word, 4, Some(deadline)), Ok(()));
    assert_eq!(Futex.wait(&word, 4, None), Ok(()));
    // The farthest deadline there is still makes a valid timeout (the
    // kernel checks it before the value; a debug assertion would fire on
    // EINVAL).
    let far = Deadline::after(Duration::from_secs(i64::MAX as u64 / 2)).unwrap();
    assert_eq!(Futex.wait(&word, 4, Some(far)), Ok(()));
}

#[test]
fn wait_with_a_past_deadline_times_out() {
    let word = AtomicU32::new(0);
    let past = Deadline::now();
    assert_eq!(Futex.wait(&word, 0, Some(past)), Err(TimedOut));
    let zero = Deadline::after(Duration::ZERO).unwrap();
    assert!(zero.has_passed());
}

#[test]
fn wake_without_sleepers_is_harmless() {
    let word = AtomicU32::new(0);
    Futex.wake(&word, 1);
    Futex.wake(&word, 0);
    Futex.wake(&word, u32::MAX);
}

#[test]
fn deadlines() {
    assert_eq!(Deadline::after(Duration::MAX), None);
    assert_eq!(Deadline::after(Duration::from_secs(u64::MAX / 2)), None);
    let soon = Deadline::after(Duration::from_secs(1)).unwrap();
    let later = Deadline::after(Duration::from_secs(3600)).unwrap();
    assert!(soon < later);
    assert!(!later.has_passed());
    assert!(later.remaining() <= Duration::from_secs(3600));
    assert!(later.remaining() > Duration::from_secs(3000));
    assert!(Deadline::now() <= Deadline::now());
}

#[test]
fn relax_handles_every_round() {
    let rounds = Futex.spin_rounds();
    assert!(rounds > 0);
    for round in 0..rounds + 8 {
        Futex.relax(round);
    }
    // Sleeping rounds are capped, so even huge rounds return promptly.
    Futex.relax(u32::MAX);
    Futex.relax(u32::MAX / 2);
}
