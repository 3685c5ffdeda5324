//! Starting and joining a trivial child, the raw way and mproc's: shared
//! by the spawn bench and the showdown example.

#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use mproc::{Process, StartMethod};

/// What the `spawn_fn` children run.
pub fn zero(_: ()) -> u8 {
    0
}

/// `fork`, the child `_exit(0)`s, the parent `waitpid`s: the floor.
/// Returns the wait status.
pub fn raw_fork_waitpid() -> i32 {
    // SAFETY: the child calls nothing but `_exit`, which is
    // async-signal-safe whatever threads the parent has.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our unreaped child; `status` is a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "waitpid failed");
    status
}

/// Whether `method` starts and joins a child in this build (a program
/// run again by `Spawn` must call `mproc::init()` first; a failure or a
/// panic is reported, not raised).
pub fn works(method: StartMethod) -> Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let tried = catch_unwind(AssertUnwindSafe(|| {
        let mut child = Process::builder()
            .start_method(method)
            .spawn_fn(zero, ())
            .map_err(|e| e.to_string())?;
        child
            .join_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())
    }));
    std::panic::set_hook(hook);
    match tried {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(other)) => Err(format!("the child returned {other}, not 0")),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("it panicked".to_owned()),
    }
}
