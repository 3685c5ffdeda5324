//! `StartMethod::ForkServer` with real processes: how a child ends (value,
//! panic, exit code, signal, timeout), `is_alive`, no fd left behind, a
//! multi-threaded parent, a server forked from a single-threaded process,
//! and a server that dies.
//!
//! The test binary is multi-threaded, so its fork server is this program
//! run again: `enable_test_support!` gives that run its entry point. The
//! tests of this file share one server and count this process's fds, so
//! they run one at a time ([`serial`]).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::{Guard, WATCHDOG, join};
use mproc::{Process, ProcessError, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

mproc::enable_test_support!();

/// Held by every test of this file: they share this process's fork server
/// and its fd table.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts `f(args)` through the fork server; the child is killed when the
/// guard drops.
fn start<A, T>(f: fn(A) -> T, args: A) -> Guard<T>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    T: Serialize + DeserializeOwned,
{
    Guard(
        Process::builder()
            .start_method(StartMethod::ForkServer)
            .spawn_fn(f, args)
            .expect("start a child through the fork server"),
    )
}

/// Joins within the watchdog and returns the error, failing the test if
/// the child returned a value instead.
fn join_err<T: Serialize + DeserializeOwned>(process: &mut Process<T>) -> ProcessError {
    match process.join_timeout(WATCHDOG) {
        Ok(_) => panic!("child {} returned a value", process.pid()),
        Err(ProcessError::Timeout) => panic!("child {} still runs", process.pid()),
        Err(error) => error,
    }
}

/// Waits (up to the watchdog) until `process` has ended.
fn wait_not_alive<T>(process: &mut Process<T>) {
    let deadline = Instant::now() + WATCHDOG;
    while process.is_alive() {
        assert!(
            Instant::now() < deadline,
            "child {} still runs",
            process.pid()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` has ended: no `/proc/<pid>`, or a zombie.
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// The number of open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn double(n: u64) -> u64 {
    2 * n
}

fn boom(n: u32) -> u32 {
    // Quiet: the message reaches `join`, no backtrace needed on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    panic!("boom {n}")
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

/// Sleeps for `ms` milliseconds (bounded by the watchdog), then returns it.
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms).min(WATCHDOG));
    ms
}

/// `n` bytes: more than a pipe holds, for `n` over 64 KiB.
fn bytes(n: usize) -> Vec<u8> {
    vec![7; n]
}

/// The pid of the process that forked the caller: the fork server.
fn forked_by(_: ()) -> u32 {
    std::os::unix::process::parent_id()
}

#[test]
fn returns_the_value() {
    let _serial = serial();
    let mut child = start(double, 21);
    assert_eq!(join(&mut child), 42);
    assert_eq!(child.exitcode(), Some(0));
    assert!(!child.is_alive());
    assert!(matches!(child.join(), Err(ProcessError::AlreadyJoined)));
}

#[test]
fn large_result_and_daemon() {
    let _serial = serial();
    let mut child = start(bytes, 1 << 20);
    assert_eq!(join(&mut child), vec![7; 1 << 20]);
    let mut daemon = Guard(
        Process::builder()
            .daemon(true)
            .start_method(StartMethod::ForkServer)
            .spawn_fn(double, 4)
            .unwrap(),
    );
    assert!(daemon.daemon());
    assert_eq!(join(&mut daemon), 8);
}

#[test]
fn panic_message() {
    let _serial = serial();
    let mut child = start(boom, 7);
    match join_err(&mut child) {
        ProcessError::Panicked { message, .. } => assert_eq!(message, "boom 7"),
        error => panic!("{error}"),
    }
    assert_eq!(child.exitcode(), Some(101));
}

#[test]
fn exit_code() {
    let _serial = serial();
    let mut child = start(exit_with, 3);
    let pid = child.pid();
    match join_err(&mut child) {
        ProcessError::Exited { pid: p, code: 3 } => assert_eq!(p, pid),
        error => panic!("{error}"),
    }
    assert_eq!(child.exitcode(), Some(3));
}

#[test]
fn killed_by_sigkill() {
    let _serial = serial();
    let mut child = start(sleep_ms, u64::MAX);
    assert!(child.is_alive());
    child.kill().unwrap();
    match join_err(&mut child) {
        ProcessError::Signaled { signal: 9, .. } => {}
        error => panic!("{error}"),
    }
    assert_eq!(child.exitcode(), Some(-9));
    // Signalling a child that has ended is a no-op.
    child.kill().unwrap();
    child.terminate().unwrap();
}

#[test]
fn join_timeout_then_terminate() {
    let _serial = serial();
    let mut child = start(sleep_ms, u64::MAX);
    let began = Instant::now();
    assert!(matches!(
        child.join_timeout(Duration::from_millis(100)),
        Err(ProcessError::Timeout)
    ));
    assert!(began.elapsed() >= Duration::from_millis(100));
    assert!(child.is_alive());
    assert_eq!(child.exitcode(), None);
    child.terminate().unwrap();
    match join_err(&mut child) {
        ProcessError::Signaled { signal: 15, .. } => {}
        error => panic!("{error}"),
    }
    assert_eq!(child.exitcode(), Some(-15));
}

#[test]
fn is_alive_follows_the_child() {
    let _serial = serial();
    let mut child = start(sleep_ms, 200);
    assert!(child.is_alive());
    wait_not_alive(&mut child);
    assert_eq!(child.exitcode(), Some(0));
    // `is_alive` drained the outcome frame on the way: it is still whole.
    assert_eq!(join(&mut child), 200);
}

#[test]
fn no_fd_leak() {
    let _serial = serial();
    // The first child starts the server, which stays.
    assert_eq!(join(&mut start(double, 0)), 0);
    let fds = open_fds();
    for round in 0..50u64 {
        match round % 3 {
            0 => assert_eq!(join(&mut start(double, round)), 2 * round),
            1 => {
                let mut child = start(boom, 1);
                assert!(matches!(
                    join_err(&mut child),
                    ProcessError::Panicked { .. }
                ));
            }
            _ => {
                let mut child = start(sleep_ms, u64::MAX);
                child.kill().unwrap();
                assert!(matches!(
                    join_err(&mut child),
                    ProcessError::Signaled { signal: 9, .. }
                ));
            }
        }
    }
    assert_eq!(open_fds(), fds, "fds leaked");
}

/// Four busy threads in this process do not get in the way: children are
/// forked by the server, not by this process.
#[test]
fn works_with_threads_running() {
    let _serial = serial();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut spins = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    spins = spins.wrapping_add(i);
                    // Allocate: keeps the allocator's locks busy.
                    std::hint::black_box(Vec::<u8>::with_capacity(64));
                    std::thread::yield_now();
                }
                spins
            })
        })
        .collect();
    let mut children: Vec<_> = (0..8u64).map(|n| start(double, n)).collect();
    for (n, child) in children.iter_mut().enumerate() {
        assert_eq!(join(child), 2 * n as u64);
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
}

/// In a single-threaded process (here a forked child) the server is
/// forked directly; it belongs to that process, not to the one it was
/// forked from.
#[test]
fn single_threaded_owner_forks_its_server() {
    let _serial = serial();
    let ours = join(&mut start(forked_by, ()));
    let mut parent = common::spawn(move || {
        let theirs = join(&mut start(forked_by, ()));
        assert_ne!(theirs, ours, "the parent's server was used");
        assert_eq!(join(&mut start(double, 5)), 10);
        let mut child = start(exit_with, 4);
        assert!(matches!(
            join_err(&mut child),
            ProcessError::Exited { code: 4, .. }
        ));
        let mut child = start(sleep_ms, u64::MAX);
        child.terminate().unwrap();
        assert!(matches!(
            join_err(&mut child),
            ProcessError::Signaled { signal: 15, .. }
        ));
        // The direct server leaks nothing either.
        let fds = open_fds();
        for n in 0..20u64 {
            assert_eq!(join(&mut start(double, n)), 2 * n);
        }
        assert_eq!(open_fds(), fds, "fds leaked");
        theirs
    });
    let theirs = join(&mut parent);
    assert_ne!(theirs, ours);
    // The server of the child ended with it.
    let deadline = Instant::now() + WATCHDOG;
    while !ended(theirs) {
        assert!(Instant::now() < deadline, "the child's server outlived it");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A server killed under a running child: the child is reported (with
/// Python's 255) once it ends, and the next start starts a new server.
/// Sends `SIGINT` to the caller.
fn interrupt_self(_: ()) -> u32 {
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::INT).unwrap();
    std::thread::sleep(WATCHDOG);
    0
}

#[test]
fn ctrl_c_spares_the_server_not_its_children() {
    // Ctrl-C signals the whole foreground process group: the server
    // ignores it (as Python's does), its children get it as usual.
    let _serial = serial();
    let server = join(&mut start(forked_by, ()));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    // Whatever the server was doing, it goes on serving.
    assert_eq!(join(&mut start(double, 4)), 8);
    assert_eq!(join(&mut start(forked_by, ())), server);
    match join_err(&mut start(interrupt_self, ())) {
        ProcessError::Signaled { signal: 2, .. } => {}
        error => panic!("{error}"),
    }
}

#[test]
fn dead_server_is_replaced() {
    let _serial = serial();
    let server = join(&mut start(forked_by, ()));
    let mut orphan = start(sleep_ms, u64::MAX);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // Still running (a non-daemon outlives the server), and its handle
    // still reaches it.
    assert!(matches!(
        orphan.join_timeout(Duration::from_millis(50)),
        Err(ProcessError::Timeout)
    ));
    orphan.kill().unwrap();
    match join_err(&mut orphan) {
        ProcessError::Exited { code: 255, .. } => {}
        error => panic!("{error}"),
    }
    let replacement = join(&mut start(forked_by, ()));
    assert_ne!(replacement, server);
    // The dead server was reaped on the way: no zombie left.
    assert!(std::fs::metadata(format!("/proc/{server}")).is_err());
    assert_eq!(join(&mut start(double, 8)), 16);
}
