//! Many forks leave no fd and no zombie behind.
//!
//! In a test binary of its own, with a single test, so that no other test
//! forks or opens fds while it counts.

use std::time::Duration;

use mproc_os::process::{ExitStatus, Fork, exit_now, fork};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{WaitIdOptions, WaitOptions};
use rustix::time::Timespec;

/// Number of open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn two_hundred_forks_leak_nothing() {
    let before = open_fds();
    for round in 0..200u32 {
        let code = (round % 100) as i32;
        // SAFETY: children only make system calls and end with `exit_now`.
        let mut child = match unsafe { fork() }.unwrap() {
            Fork::Child => {
                if round % 4 == 3 {
                    let _ = rustix::thread::nanosleep(&Timespec {
                        tv_sec: 60,
                        tv_nsec: 0,
                    });
                }
                exit_now(code)
            }
            Fork::Parent(child) => child,
        };
        match round % 4 {
            // Blocking wait.
            0 => assert_eq!(child.wait().unwrap(), ExitStatus::Exited(code)),
            // Wait with a timeout.
            1 => assert_eq!(
                child.wait_timeout(Duration::from_secs(60)).unwrap(),
                Some(ExitStatus::Exited(code))
            ),
            // Dropped after it exited, without waiting: drop reaps it.
            2 => {
                let pidfd = child.pidfd().unwrap();
                let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
                while !matches!(rustix::event::poll(&mut fds, None), Ok(n) if n > 0) {}
                drop(child);
            }
            // Killed while sleeping.
            _ => {
                child.kill().unwrap();
                assert_eq!(
                    child.wait().unwrap(),
                    ExitStatus::Signaled {
                        signal: 9,
                        core_dumped: false
                    }
                );
            }
        }
    }
    assert_eq!(open_fds(), before, "pidfds leaked");
    assert_eq!(
        rustix::process::wait(WaitOptions::NOHANG).unwrap_err(),
        Errno::CHILD,
        "a child is left (zombie or running)"
    );
    assert_eq!(
        rustix::process::waitid(
            rustix::process::WaitId::All,
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG
        )
        .unwrap_err(),
        Errno::CHILD
    );
}
