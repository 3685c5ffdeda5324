//! `fork`, child handles, exit statuses and the pid cache, with real
//! processes.
//!
//! The harness is multi-threaded, so children only make system calls, touch
//! atomics and end with `exit_now`.

use std::time::{Duration, Instant};

use mproc_core::sync::{AtomicU32, Ordering};
use mproc_os::Error;
use mproc_os::process::{
    Child, ExitStatus, Fork, current_pid, exit_now, fork, origin, owner_id, start_time,
};
use mproc_os::shm::Region;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use rustix::time::Timespec;

/// Forks a child that runs `body`, which ends with `exit_now` (a child that
/// returns exits with 100).
fn spawn(body: impl FnOnce()) -> Child {
    // SAFETY: every `body` in this file only makes system calls, touches
    // atomics and ends with `exit_now`.
    match unsafe { fork() }.unwrap() {
        Fork::Child => {
            body();
            exit_now(100)
        }
        Fork::Parent(child) => child,
    }
}

/// In a child: sleeps for `secs` seconds, then exits 0.
fn sleep_then_exit(secs: i64) -> ! {
    let _ = rustix::thread::nanosleep(&Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    });
    exit_now(0)
}

/// Blocks until `child` has exited, without reaping it.
fn wait_until_exited(child: &Child) {
    let pidfd = child.pidfd().unwrap();
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(n) if n > 0 => return,
            Ok(_) | Err(Errno::INTR) => {}
            Err(errno) => panic!("poll: {errno}"),
        }
    }
}

/// Word `index` of `region` as an atomic.
fn word(region: &Region, index: usize) -> &AtomicU32 {
    assert!((index + 1) * 4 <= region.len());
    // SAFETY: in bounds (checked), aligned (the mapping is page aligned),
    // initialized, alive as long as `region`; every bit pattern is a valid
    // `AtomicU32` and all accesses to it are atomic.
    unsafe { region.as_ptr().cast::<AtomicU32>().add(index).as_ref() }
}

#[test]
fn exit_code_is_reported() {
    let mut child = spawn(|| exit_now(7));
    let status = child.wait().unwrap();
    assert_eq!(status, ExitStatus::Exited(7));
    assert_eq!(status.code(), 7);
    assert!(!status.success());
    assert_eq!(status.to_string(), "exited with code 7");

    let mut child = spawn(|| exit_now(0));
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(status.code(), 0);
}

#[test]
fn death_by_signal_is_reported() {
    let mut child = spawn(|| {
        let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
        exit_now(1)
    });
    let status = child.wait().unwrap();
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
    assert_eq!(status.code(), -9);
    assert!(!status.success());
    assert_eq!(status.to_string(), "killed by signal 9 (SIGKILL)");
}

#[test]
fn exit_status_display() {
    let segv = ExitStatus::Signaled {
        signal: 11,
        core_dumped: true,
    };
    assert_eq!(
        segv.to_string(),
        "killed by signal 11 (SIGSEGV), core dumped"
    );
    assert_eq!(segv.code(), -11);
    let odd = ExitStatus::Signaled {
        signal: 40,
        core_dumped: false,
    };
    assert_eq!(odd.to_string(), "killed by signal 40");
}

#[test]
fn wait_timeout_then_terminate() {
    let mut child = spawn(|| sleep_then_exit(10));
    assert_eq!(child.try_wait().unwrap(), None);
    let start = Instant::now();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(100)).unwrap(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), None);

    child.terminate().unwrap();
    let status = child.wait_timeout(Duration::from_secs(60)).unwrap();
    let terminated = ExitStatus::Signaled {
        signal: 15,
        core_dumped: false,
    };
    assert_eq!(status, Some(terminated));
    assert_eq!(terminated.code(), -15);
    assert_eq!(terminated.to_string(), "killed by signal 15 (SIGTERM)");

    // Reaped: everything returns the stored status, and signals are no-ops.
    assert_eq!(child.try_wait().unwrap(), Some(terminated));
    assert_eq!(child.wait().unwrap(), terminated);
    assert_eq!(
        child.wait_timeout(Duration::ZERO).unwrap(),
        Some(terminated)
    );
    child.kill().unwrap();
    child.terminate().unwrap();
}

#[test]
fn wait_timeout_returns_the_exit() {
    let mut child = spawn(|| exit_now(3));
    let status = child.wait_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(3)));

    let mut child = spawn(|| exit_now(4));
    let status = child.wait_timeout(Duration::MAX).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(4)));
}

#[test]
fn kill_stops_a_sleeping_child() {
    let mut child = spawn(|| sleep_then_exit(60));
    child.kill().unwrap();
    assert_eq!(
        child.wait().unwrap(),
        ExitStatus::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
}

#[test]
fn signalling_an_exited_child_is_fine() {
    let mut child = spawn(|| exit_now(5));
    wait_until_exited(&child);
    // Exited but not reaped.
    child.kill().unwrap();
    child.signal(Signal::USR1).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(5));
}

#[test]
fn drop_reaps_an_exited_child() {
    let child = spawn(|| exit_now(0));
    wait_until_exited(&child);
    let pid = Pid::from_raw(child.pid() as i32).unwrap();
    drop(child);
    let err = rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    )
    .unwrap_err();
    assert_eq!(err, Errno::CHILD, "no zombie is left");
}

#[test]
fn drop_neither_waits_for_nor_kills_a_running_child() {
    let child = spawn(|| sleep_then_exit(60));
    let pid = Pid::from_raw(child.pid() as i32).unwrap();
    let start = Instant::now();
    drop(child);
    assert!(start.elapsed() < Duration::from_secs(30), "drop blocked");
    // Still ours and not reaped, so the pid cannot have been reused.
    rustix::process::test_kill_process(pid).unwrap();
    let alive = rustix::process::waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    )
    .unwrap();
    assert!(alive.is_none(), "drop killed the child");
    rustix::process::kill_process(pid, Signal::KILL).unwrap();
    let status = rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED)
        .unwrap()
        .unwrap();
    assert_eq!(status.terminating_signal(), Some(9));
}

#[test]
fn current_pid_is_reset_in_a_child() {
    let parent = current_pid();
    assert_eq!(
        parent,
        rustix::process::getpid().as_raw_nonzero().get() as u32
    );
    let region = Region::anonymous(4096).unwrap();
    let mut child = spawn(|| {
        word(&region, 0).store(current_pid(), Ordering::Relaxed);
        word(&region, 1).store(
            rustix::process::getpid().as_raw_nonzero().get() as u32,
            Ordering::Relaxed,
        );
        word(&region, 2).store(owner_id().get(), Ordering::Relaxed);
        exit_now(0)
    });
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    let cached = word(&region, 0).load(Ordering::Relaxed);
    assert_eq!(cached, word(&region, 1).load(Ordering::Relaxed));
    assert_eq!(cached, child.pid());
    assert_eq!(word(&region, 2).load(Ordering::Relaxed), child.pid());
    assert_ne!(cached, parent);
    assert_eq!(current_pid(), parent);
}

#[test]
fn current_pid_is_reset_after_a_foreign_fork() {
    let parent = current_pid();
    let region = Region::anonymous(4096).unwrap();
    // SAFETY: the child only makes system calls, touches atomics and ends
    // with `_exit`.
    let raw = unsafe { libc::fork() };
    assert!(raw >= 0, "fork failed");
    if raw == 0 {
        word(&region, 0).store(current_pid(), Ordering::Relaxed);
        exit_now(0);
    }
    let pid = Pid::from_raw(raw).unwrap();
    let status = rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED)
        .unwrap()
        .unwrap();
    assert_eq!(status.exit_status(), Some(0));
    assert_eq!(word(&region, 0).load(Ordering::Relaxed), raw as u32);
    assert_ne!(raw as u32, parent);
}

#[test]
fn start_time_and_origin() {
    let me = current_pid();
    let started = start_time(me).unwrap();
    assert!(started > 0);
    assert_eq!(start_time(me).unwrap(), started);
    let here = origin();
    assert_eq!(here.pid, me);
    assert_eq!(here.start_time, started);
    assert_eq!(origin(), here);
    assert_eq!(owner_id().get(), me);

    // A child started later than us.
    let mut child = spawn(|| sleep_then_exit(60));
    let child_started = start_time(child.pid()).unwrap();
    assert!(child_started >= started);
    child.kill().unwrap();
    child.wait().unwrap();

    // No such process (pids stay below 2^22).
    match start_time(1 << 23) {
        Err(Error::Os { errno, .. }) => assert_eq!(errno, Errno::NOENT),
        other => panic!("expected ENOENT, got {other:?}"),
    }
}

#[test]
fn origin_in_a_child_is_the_childs() {
    let parent = origin();
    let region = Region::anonymous(4096).unwrap();
    let mut child = spawn(|| {
        // `origin` reads /proc without allocating: fine in a child.
        let here = origin();
        word(&region, 0).store(here.pid, Ordering::Relaxed);
        word(&region, 1).store((here.start_time != 0) as u32, Ordering::Relaxed);
        exit_now(0)
    });
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(word(&region, 0).load(Ordering::Relaxed), child.pid());
    assert_eq!(word(&region, 1).load(Ordering::Relaxed), 1);
    assert_ne!(parent.pid, child.pid());
}

/// `thread_count` follows the threads of a process: 1 in a fresh child,
/// 2 while it runs a second thread, and 1 again once that thread has
/// ended (the C library no longer vouches for a single thread then, so the
/// kernel is asked).
#[test]
fn thread_count_follows_threads() {
    let child = spawn(|| {
        let ok = |cond: bool, code: i32| {
            if !cond {
                exit_now(code)
            }
        };
        ok(mproc_os::process::thread_count().ok() == Some(1), 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv().is_ok());
        ok(mproc_os::process::thread_count().ok() == Some(2), 2);
        drop(tx);
        ok(thread.join().is_ok(), 3);
        // The kernel drops the thread from the task list as it exits;
        // give it a moment after the join.
        let deadline = Instant::now() + Duration::from_secs(5);
        while mproc_os::process::thread_count().ok() != Some(1) {
            ok(Instant::now() < deadline, 4);
            std::thread::sleep(Duration::from_millis(1));
        }
        exit_now(0)
    });
    let mut child = child;
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
}
