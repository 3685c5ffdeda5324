//! `Process` with real processes: how a child ends (value, exit code,
//! signal, panic, timeout), names and the process tree, daemons, logging,
//! and no zombie or fd left behind.
//!
//! The test harness runs tests in parallel on threads of one process, so a
//! test that looks at the whole process (its children, its fds, its child
//! registry) runs its body in a forked child of its own ([`in_child`]):
//! single-threaded, with nobody else starting children there.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use common::{WATCHDOG, join, spawn};
use mproc::{Process, ProcessError, Value, active_children, cpu_count, current_process};
use rustix::io::Errno;
use rustix::process::{Signal, WaitId, WaitIdOptions};

/// Runs `f` in a forked child and returns its value; a panic in `f` fails
/// the test with its message.
fn in_child<T, F>(f: F) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce() -> T + Send + 'static,
{
    join(&mut spawn(f))
}

/// Joins within the watchdog and returns the error, failing the test if
/// the child returned a value instead.
fn join_err<T: serde::Serialize + serde::de::DeserializeOwned>(
    process: &mut Process<T>,
) -> ProcessError {
    match process.join_timeout(WATCHDOG) {
        Ok(_) => panic!("child {} returned a value", process.pid()),
        Err(ProcessError::Timeout) => panic!("child {} still runs", process.pid()),
        Err(error) => error,
    }
}

/// Whether process `pid` has ended: no `/proc/<pid>`, or a zombie left to
/// a parent that has not reaped it yet.
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => proc_state(&stat) == Some('Z'),
        Err(_) => true,
    }
}

/// Waits (up to the watchdog) until process `pid` has ended.
fn wait_ended(pid: u32) -> bool {
    let deadline = Instant::now() + WATCHDOG;
    while !ended(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The state letter of a `/proc/<pid>/stat` line (after the `(comm)`,
/// which may itself hold spaces and parentheses).
fn proc_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The parent pid of a `/proc/<pid>/stat` line.
fn proc_ppid(stat: &str) -> Option<u32> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The zombie children of this process, found in `/proc`.
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && proc_ppid(&stat) == Some(me)
            && proc_state(&stat) == Some('Z')
        {
            zombies.push(pid);
        }
    }
    zombies
}

/// Whether this process has a child that exited and was not reaped
/// (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`, which leaves it as it is).
fn has_unreaped_child() -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match rustix::process::waitid(WaitId::All, options) {
        Ok(status) => status.is_some(),
        Err(Errno::CHILD) => false,
        Err(errno) => panic!("waitid: {errno}"),
    }
}

/// The number of open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The number in a default name: `Process-12` → 12.
fn number(name: &str) -> u32 {
    name.strip_prefix("Process-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name:?} is not a default name"))
}

/// Sends `SIGKILL` to the calling process.
fn kill_self() -> ! {
    rustix::process::kill_process(rustix::process::getpid(), Signal::KILL).unwrap();
    unreachable!("SIGKILL returned")
}

/// Sleeps until killed (the watchdog bounds it if nobody does).
fn sleep_forever() {
    std::thread::sleep(WATCHDOG);
}

#[test]
fn join_returns_the_value_once() {
    let mut child = spawn(|| (vec![1u32, 2, 3], "three".to_owned()));
    assert_eq!(join(&mut child), (vec![1, 2, 3], "three".to_owned()));
    assert_eq!(child.exitcode(), Some(0));
    assert!(!child.is_alive());
    assert!(matches!(child.join(), Err(ProcessError::AlreadyJoined)));
}

#[test]
fn exit_code() {
    let mut child = spawn::<(), _>(|| std::process::exit(7));
    let pid = child.pid();
    match join_err(&mut child) {
        ProcessError::Exited { pid: p, code: 7 } if p == pid => {}
        error => panic!("expected exit code 7: {error}"),
    }
    assert_eq!(child.exitcode(), Some(7));
}

#[test]
fn killed_by_a_signal() {
    let mut child = spawn::<(), _>(|| kill_self());
    let pid = child.pid();
    match join_err(&mut child) {
        ProcessError::Signaled { pid: p, signal: 9 } if p == pid => {}
        error => panic!("expected SIGKILL: {error}"),
    }
    assert_eq!(child.exitcode(), Some(-9));
}

#[test]
fn panic_message() {
    let mut child = spawn::<u8, _>(|| panic!("boom {}", 6 * 7));
    let pid = child.pid();
    match join_err(&mut child) {
        ProcessError::Panicked { pid: p, message } if p == pid => assert_eq!(message, "boom 42"),
        error => panic!("expected a panic: {error}"),
    }
    assert_eq!(child.exitcode(), Some(101));
}

#[test]
fn join_timeout_then_terminate() {
    let mut child = spawn(sleep_forever);
    assert!(child.is_alive());
    assert_eq!(child.exitcode(), None);
    assert!(matches!(
        child.join_timeout(Duration::from_millis(50)),
        Err(ProcessError::Timeout)
    ));
    // A timed-out join leaves the child running and joinable.
    assert!(child.is_alive());
    child.terminate().unwrap();
    match join_err(&mut child) {
        ProcessError::Signaled { signal: 15, .. } => {}
        error => panic!("expected SIGTERM: {error}"),
    }
    assert!(!child.is_alive());
    assert_eq!(child.exitcode(), Some(-15));
    // Signalling a child that is gone is not an error.
    child.terminate().unwrap();
    child.kill().unwrap();
}

#[test]
fn kill() {
    let mut child = spawn(sleep_forever);
    child.kill().unwrap();
    assert!(matches!(
        join_err(&mut child),
        ProcessError::Signaled { signal: 9, .. }
    ));
    assert_eq!(child.exitcode(), Some(-9));
}

#[test]
fn default_names_count_up() {
    let mut first = spawn(|| current_process().name().to_owned());
    let mut second = spawn(|| current_process().name().to_owned());
    // Other tests start children meanwhile: the numbers grow, not
    // necessarily by one.
    assert!(number(first.name()) < number(second.name()));
    assert!(!first.daemon());
    assert_eq!(join(&mut first), first.name());
    assert_eq!(join(&mut second), second.name());
}

#[test]
fn builder_name_and_daemon_flag() {
    let mut child = common::Guard(
        Process::builder()
            .name("worker")
            .daemon(true)
            .allow_threaded_fork(true)
            .spawn(|| {
                let me = current_process();
                (me.name().to_owned(), me.pid(), me.daemon())
            })
            .unwrap(),
    );
    assert_eq!(child.name(), "worker");
    assert!(child.daemon());
    let pid = child.pid();
    assert_eq!(join(&mut child), ("worker".to_owned(), pid, true));
}

#[test]
fn current_and_parent_process() {
    let me = current_process();
    assert_eq!(me.name(), "MainProcess");
    assert_eq!(me.pid(), std::process::id());
    assert!(!me.daemon());
    assert_eq!(mproc::parent_process(), None);

    let mut child = spawn(|| {
        let parent = mproc::parent_process().expect("a parent");
        (
            current_process().pid(),
            parent.pid(),
            parent.name().to_owned(),
            parent.is_alive(),
        )
    });
    let pid = child.pid();
    assert_eq!(
        join(&mut child),
        (pid, std::process::id(), "MainProcess".to_owned(), true)
    );
}

#[test]
fn nested_names() {
    let mut child = spawn(|| {
        // A forked child has one thread: the default builder forks it.
        let mut grandchild = Process::spawn(|| {
            let parent = mproc::parent_process().expect("a parent");
            (
                current_process().name().to_owned(),
                parent.name().to_owned(),
                parent.pid(),
            )
        })
        .unwrap();
        let (name, parent_name, parent_pid) = grandchild.join_timeout(WATCHDOG).unwrap();
        assert_eq!(name, grandchild.name());
        assert_eq!(parent_name, current_process().name());
        assert_eq!(parent_pid, std::process::id());
        name
    });
    let expected = format!("{}:1", child.name());
    assert_eq!(join(&mut child), expected);
}

#[test]
fn active_children_lists_and_reaps() {
    in_child(|| {
        assert!(active_children().is_empty());
        let go = mproc::Event::new().unwrap();
        let mut pids = Vec::new();
        for name in ["a", "b"] {
            let go = go.clone();
            let child = Process::builder()
                .name(name)
                .spawn(move || {
                    assert!(go.wait_timeout(WATCHDOG), "never told to end");
                })
                .unwrap();
            pids.push(child.pid());
            // The handle is dropped: the registry still holds the child.
        }
        let mut listed: Vec<_> = active_children()
            .iter()
            .map(|c| (c.name().to_owned(), c.pid()))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            vec![("a".to_owned(), pids[0]), ("b".to_owned(), pids[1])]
        );
        go.set();
        let deadline = Instant::now() + WATCHDOG;
        while !active_children().is_empty() {
            assert!(Instant::now() < deadline, "children still listed");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Listing reaped them: nothing left to wait for, no zombie.
        assert!(!has_unreaped_child());
        assert_eq!(zombie_children(), Vec::<u32>::new());
    });
}

/// More children alive at once than the process's books hold entries for
/// inline: the rest live on the heap, and all are listed, joined or
/// reaped alike.
#[test]
fn more_live_children_than_the_books_hold_inline() {
    in_child(|| {
        std::panic::set_hook(Box::new(|_| {}));
        Process::spawn(|| 0u8).unwrap().join().unwrap();
        let fds = open_fds();
        let go = mproc::Event::new().unwrap();
        let mut kept = Vec::new();
        let mut pids = Vec::new();
        for i in 0..45u32 {
            let go = go.clone();
            let child = Process::spawn(move || {
                assert!(go.wait_timeout(WATCHDOG), "never told to end");
                i
            })
            .unwrap();
            pids.push(child.pid());
            // Every third handle is dropped: the registry alone holds it.
            if i % 3 != 0 {
                kept.push((i, child));
            }
        }
        let mut listed: Vec<u32> = active_children().iter().map(|c| c.pid()).collect();
        listed.sort();
        pids.sort();
        assert_eq!(listed, pids);
        go.set();
        for (i, mut child) in kept {
            assert_eq!(child.join_timeout(WATCHDOG).unwrap(), i);
        }
        let deadline = Instant::now() + WATCHDOG;
        while !active_children().is_empty() {
            assert!(Instant::now() < deadline, "children still listed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!has_unreaped_child());
        assert_eq!(zombie_children(), Vec::<u32>::new());
        drop(go);
        assert_eq!(open_fds(), fds, "fds leaked");
    });
}

/// A handle moved into a forked closure is not the grandchild's to use:
/// joining or signalling through it is a clear error, dropping it does
/// nothing, and the parent still reaps the child.
#[test]
fn an_inherited_handle_is_not_the_childs_to_use() {
    in_child(|| {
        let go = mproc::Event::new().unwrap();
        let waiter = go.clone();
        let sibling = Process::spawn(move || {
            assert!(waiter.wait_timeout(WATCHDOG), "never told to end");
        })
        .unwrap();
        let sibling_pid = sibling.pid();
        let mut other = Process::spawn(move || {
            let mut sibling = sibling;
            let join = match sibling.join() {
                Err(ProcessError::NotChild { pid }) => pid,
                other => panic!("joined a sibling: {other:?}"),
            };
            let kill = match sibling.kill() {
                Err(ProcessError::NotChild { pid }) => pid,
                other => panic!("signalled through an inherited handle: {other:?}"),
            };
            assert!(sibling.is_alive());
            assert_eq!(sibling.exitcode(), None);
            drop(sibling);
            (join, kill, active_children().len())
        })
        .unwrap();
        assert_eq!(other.join().unwrap(), (sibling_pid, sibling_pid, 0));
        // The parent's copy of the handle went with the closure; the
        // registry still has the child, which ran on unharmed.
        assert!(active_children().iter().any(|c| c.pid() == sibling_pid));
        go.set();
        let deadline = Instant::now() + WATCHDOG;
        while !active_children().is_empty() {
            assert!(Instant::now() < deadline, "children still listed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(zombie_children(), Vec::<u32>::new());
    });
}

#[test]
fn cpu_count_is_positive() {
    assert!(cpu_count() >= 1);
}

#[test]
fn fork_refused_in_a_threaded_process() {
    // The harness runs this test on a thread of its own; one more thread
    // that surely lives while we fork makes the point without relying on it.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || stopped.recv_timeout(WATCHDOG));
    match Process::spawn(|| 0u8) {
        Err(ProcessError::ThreadedFork { threads }) => assert!(threads >= 2, "{threads}"),
        Err(error) => panic!("expected ThreadedFork: {error}"),
        Ok(child) => {
            let _ = child.kill();
            panic!("forked a threaded process without opting in")
        }
    }
    assert!(matches!(
        Process::builder().name("x").spawn(|| 0u8),
        Err(ProcessError::ThreadedFork { .. })
    ));
    drop(stop);
    let _ = helper.join();
}

/// 500 children ending every way there is (value, panic, exit code,
/// signal, terminated, handle dropped unjoined) leave no zombie and no fd
/// behind.
#[test]
fn a_reused_output_pipe_carries_only_its_own_childs_result() {
    // A joined child's output (pipe and spill file) serves the next child:
    // whatever the last one left (a result larger than a pipe holds, which
    // goes through the spill file, a child killed before it sent, a panic)
    // must not reach the next join.
    in_child(|| {
        std::panic::set_hook(Box::new(|_| {}));
        let big = |round: u32| vec![round as u8; 1 << 20];
        for round in 0..40u32 {
            match round % 4 {
                0 => assert_eq!(
                    Process::spawn(move || big(round)).unwrap().join().unwrap(),
                    big(round)
                ),
                1 => {
                    // Killed before it sends anything.
                    let mut child = Process::spawn(move || {
                        std::thread::sleep(WATCHDOG);
                        big(round)
                    })
                    .unwrap();
                    child.kill().unwrap();
                    let error = join_err(&mut child);
                    assert!(
                        matches!(error, ProcessError::Signaled { signal: 9, .. }),
                        "{error}"
                    );
                }
                2 => {
                    let error = Process::spawn(|| -> u32 { panic!("round") })
                        .unwrap()
                        .join()
                        .unwrap_err();
                    assert!(matches!(error, ProcessError::Panicked { .. }), "{error}");
                }
                _ => assert_eq!(
                    Process::spawn(move || round).unwrap().join().unwrap(),
                    round
                ),
            }
        }
    });
}

/// Results of every size come back whole: on the stack or the heap of the
/// child, inline in one pipe write or through the spill file (the limit is
/// one atomic pipe write, 4096 bytes with the tag), each followed by a
/// small one that must not see any of it; with a timeout too.
#[test]
fn results_of_every_size_come_back_whole() {
    in_child(|| {
        let sizes = [
            0usize,
            1,
            250,
            251,
            256,
            4000,
            4090,
            4091,
            4092,
            4093,
            5000,
            70_000,
            1 << 20,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..size).map(|k| (k * 7 + i) as u8).collect();
            let expected = bytes.clone();
            let mut child = Process::spawn(move || bytes).unwrap();
            let got = if i % 2 == 0 {
                child.join().unwrap()
            } else {
                child.join_timeout(WATCHDOG).unwrap()
            };
            assert_eq!(got.len(), size);
            assert!(got == expected, "size {size} came back changed");
            assert_eq!(Process::spawn(move || i).unwrap().join().unwrap(), i);
        }
    });
}

#[test]
fn no_zombie_no_fd_leak() {
    in_child(|| {
        // Quiet panics: with RUST_BACKTRACE set, each panicking child would
        // symbolize a backtrace (tens of ms). The message still reaches
        // `join` (this process's own assertions included).
        std::panic::set_hook(Box::new(|_| {}));
        // The first child sets up what stays for the life of the process.
        Process::spawn(|| 0u8).unwrap().join().unwrap();
        let fds = open_fds();
        for round in 0..500u32 {
            match round % 6 {
                0 => assert_eq!(
                    Process::spawn(move || round).unwrap().join().unwrap(),
                    round
                ),
                1 => {
                    let error = Process::spawn(|| -> u8 { panic!("round") })
                        .unwrap()
                        .join()
                        .unwrap_err();
                    assert!(matches!(error, ProcessError::Panicked { .. }), "{error}");
                }
                2 => {
                    let error = Process::spawn(|| -> u8 { std::process::exit(3) })
                        .unwrap()
                        .join()
                        .unwrap_err();
                    assert!(
                        matches!(error, ProcessError::Exited { code: 3, .. }),
                        "{error}"
                    );
                }
                3 => {
                    let error = Process::spawn(|| -> u8 { kill_self() })
                        .unwrap()
                        .join()
                        .unwrap_err();
                    assert!(
                        matches!(error, ProcessError::Signaled { signal: 9, .. }),
                        "{error}"
                    );
                }
                4 => {
                    let mut child = Process::spawn(sleep_forever).unwrap();
                    child.terminate().unwrap();
                    let error = child.join_timeout(WATCHDOG).unwrap_err();
                    assert!(
                        matches!(error, ProcessError::Signaled { signal: 15, .. }),
                        "{error}"
                    );
                }
                _ => drop(Process::spawn(|| 0u8).unwrap()),
            }
        }
        // The dropped handles' children are reaped by the next start or
        // by `active_children`.
        let deadline = Instant::now() + WATCHDOG;
        while !active_children().is_empty() {
            assert!(Instant::now() < deadline, "children still listed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!has_unreaped_child(), "an exited child was not reaped");
        assert_eq!(zombie_children(), Vec::<u32>::new());
        assert_eq!(open_fds(), fds, "fds leaked");
    });
}

/// A daemon dies when its parent returns: the parent's exit function
/// terminates it.
#[test]
fn daemon_ends_with_its_parent() {
    let mut parent = spawn(|| {
        let daemon = Process::builder()
            .daemon(true)
            .spawn(sleep_forever)
            .unwrap();
        daemon.pid()
    });
    let daemon = join(&mut parent);
    assert!(wait_ended(daemon), "daemon {daemon} outlived its parent");
}

/// A daemon dies when its parent is killed with `SIGKILL`, which runs no
/// exit function: the kernel's parent-death signal does it.
#[test]
fn daemon_dies_with_a_killed_parent() {
    let daemon_pid = Value::new(0u32).unwrap();
    let mut parent = {
        let daemon_pid = daemon_pid.clone();
        spawn(move || {
            let daemon = Process::builder()
                .daemon(true)
                .spawn(sleep_forever)
                .unwrap();
            daemon_pid.set(daemon.pid());
            sleep_forever();
        })
    };
    let deadline = Instant::now() + WATCHDOG;
    while daemon_pid.get() == 0 {
        assert!(Instant::now() < deadline, "the daemon never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let daemon = daemon_pid.get();
    parent.kill().unwrap();
    assert!(matches!(
        join_err(&mut parent),
        ProcessError::Signaled { signal: 9, .. }
    ));
    assert!(
        wait_ended(daemon),
        "daemon {daemon} outlived its killed parent"
    );
}

/// A child that is not a daemon is joined when its parent returns: the
/// parent's `join` returns only after the grandchild finished its work.
#[test]
fn non_daemon_joined_at_parent_exit() {
    let marker = Value::new(0u32).unwrap();
    let mut parent = {
        let marker = marker.clone();
        spawn(move || {
            let grandchild = Process::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                marker.set(42);
            })
            .unwrap();
            // Dropped, not joined: the exit function waits for it.
            grandchild.pid()
        })
    };
    let grandchild = join(&mut parent);
    assert_eq!(marker.get(), 42, "the parent ended before its child");
    assert!(ended(grandchild));
}

/// `log_to_stderr` in a child: every record is one whole line
/// `[INFO/<name>] <message>`, even with three processes logging at once
/// into one pipe.
#[test]
fn log_records_are_prefixed_and_whole() {
    let (read, write): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut child = spawn(move || {
        rustix::stdio::dup2_stderr(&write).unwrap();
        drop(write);
        mproc::log_to_stderr(log::LevelFilter::Info).unwrap();
        log::info!("hello from the child");
        let mut grandchildren: Vec<_> = (1..=3u32)
            .map(|k| {
                Process::spawn(move || {
                    for i in 0..50 {
                        log::info!("line {i} of grandchild {k}, padded to make it long");
                    }
                })
                .unwrap()
            })
            .collect();
        for grandchild in &mut grandchildren {
            grandchild.join_timeout(WATCHDOG).unwrap();
        }
        log::debug!("below the level: not written");
        current_process().name().to_owned()
    });
    let name = join(&mut child);
    // The child has exited: all it and its children wrote is in the pipe
    // (about 10 KB, well under what a pipe holds). Read without blocking:
    // children of other tests may hold copies of the write end.
    rustix::fs::fcntl_setfl(read.as_fd(), rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match rustix::io::read(&read, &mut buffer) {
            Ok(0) | Err(Errno::AGAIN) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(Errno::INTR) => {}
            Err(errno) => panic!("read: {errno}"),
        }
    }
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with('\n'), "a cut line: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        assert!(line.starts_with("[INFO/Process-"), "{line:?}");
    }
    assert!(lines.contains(&format!("[INFO/{name}] hello from the child").as_str()));
    for k in 1..=3 {
        let prefix = format!("[INFO/{name}:{k}] ");
        let mine: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.strip_prefix(prefix.as_str()))
            .collect();
        let logged: Vec<String> = (0..50)
            .map(|i| format!("line {i} of grandchild {k}, padded to make it long"))
            .collect();
        let mut expected = vec!["child process calling self.run()"];
        expected.extend(logged.iter().map(String::as_str));
        expected.extend(["process shutting down", "process exiting with exitcode 0"]);
        assert_eq!(mine, expected, "records of grandchild {k}");
    }
    for record in ["process shutting down", "process exiting with exitcode 0"] {
        assert!(lines.contains(&format!("[INFO/{name}] {record}").as_str()));
    }
    assert_eq!(lines.len(), 1 + 3 * 53 + 2, "{text}");
    assert!(!text.contains("below the level"));
}
