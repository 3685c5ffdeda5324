//! The `Spawn` start method: the test binary is run again and its
//! `__mproc_spawn_entry` test (from `enable_test_support!`) dispatches the
//! child, which runs a `fn` with serialized arguments and sends its value
//! back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::WATCHDOG;
use mproc::{Process, ProcessError, StartMethod};

mproc::enable_test_support!();

fn spawn<A, T>(f: fn(A) -> T, args: A) -> Process<T>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(f, args)
        .expect("spawn a child")
}

fn describe((n, word): (u64, String)) -> (u64, String, String, u32, bool) {
    let me = mproc::current_process();
    let parent = mproc::parent_process().expect("a spawned child has a parent");
    (
        n * 2,
        word.to_uppercase(),
        me.name().to_owned(),
        parent.pid(),
        // A fresh program: nothing of the parent's memory is here.
        PARENT_ONLY.load(Ordering::Relaxed),
    )
}

static PARENT_ONLY: AtomicBool = AtomicBool::new(false);

#[test]
fn spawned_child_runs_a_fn_and_returns_its_value() {
    PARENT_ONLY.store(true, Ordering::Relaxed);
    let mut child = Process::builder()
        .name("spawned")
        .start_method(StartMethod::Spawn)
        .spawn_fn(describe, (21, "ok".to_owned()))
        .unwrap();
    let (doubled, upper, name, parent, inherited) = child.join_timeout(WATCHDOG).unwrap();
    assert_eq!(doubled, 42);
    assert_eq!(upper, "OK");
    assert_eq!(name, "spawned");
    assert_eq!(parent, std::process::id());
    assert!(!inherited, "a spawned child starts from a fresh program");
    assert_eq!(child.exitcode(), Some(0));
}

fn boom(message: String) -> u8 {
    panic!("{message}")
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms))
}

#[test]
fn spawned_child_reports_panic_exit_code_and_signal() {
    let mut child = spawn(boom, "spawned boom".to_owned());
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Panicked { message, .. }) => assert_eq!(message, "spawned boom"),
        other => panic!("expected a panic, got {other:?}"),
    }

    let mut child = spawn(exit_with, 7);
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Exited { code: 7, .. }) => {}
        other => panic!("expected exit code 7, got {other:?}"),
    }
    assert_eq!(child.exitcode(), Some(7));

    let mut child = spawn(sleep_ms, 60_000);
    assert!(matches!(
        child.join_timeout(Duration::from_millis(50)),
        Err(ProcessError::Timeout)
    ));
    assert!(child.is_alive());
    child.terminate().unwrap();
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Signaled { signal: 15, .. }) => {}
        other => panic!("expected SIGTERM, got {other:?}"),
    }
    assert_eq!(child.exitcode(), Some(-15));
}

fn sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[test]
fn spawn_works_from_a_parent_running_four_threads() {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Allocate and print-free work that holds malloc locks
                    // now and then: what makes a plain fork unsafe.
                    let v: Vec<u64> = (0..64).collect();
                    std::hint::black_box(v);
                }
            })
        })
        .collect();
    let mut children: Vec<_> = (0..4u64)
        .map(|i| spawn(sum, (0..=i * 100).collect()))
        .collect();
    let results: Vec<u64> = children
        .iter_mut()
        .map(|child| child.join_timeout(WATCHDOG).unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(results, vec![0, 5050, 20100, 45150]);
}

#[test]
fn closures_need_fork() {
    let result = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn(|| 1u8);
    assert!(matches!(
        result,
        Err(ProcessError::NeedsFn {
            method: StartMethod::Spawn
        })
    ));
}
