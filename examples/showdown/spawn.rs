//! Starting a child that does nothing and joining it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use mproc::{Process, StartMethod};

use crate::case::{Case, Sample, Unit, Workload};

pub fn workload() -> Workload {
    Workload::new("spawn/join", "spawn + join", Unit::Latency)
}

/// What the `spawn_fn` children run.
fn zero(_: ()) -> u8 {
    0
}

/// Gives the heap's free memory back to the system before measuring:
/// `fork` copies the page tables of everything mapped, so whatever ran
/// before would otherwise slow the forks down.
fn trim_heap() {
    // SAFETY: `malloc_trim` has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

fn spawns(n: u64, mut one: impl FnMut()) -> Sample {
    trim_heap();
    one();
    let start = Instant::now();
    for _ in 0..n {
        one();
    }
    Sample {
        ops: n,
        elapsed: start.elapsed(),
    }
}

fn raw_fork_waitpid() {
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
}

/// Whether `method` starts and joins a child in this build.
fn works(method: StartMethod) -> Result<(), String> {
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

/// The cases, and a note for each start method that does not work here.
pub fn cases() -> (Vec<Case>, Vec<String>) {
    let w = workload();
    let mut cases = vec![
        Case::new(&w, "mproc Fork", true, |n| {
            spawns(n, || {
                let code = Process::spawn(|| 0u8).expect("fork").join().expect("join");
                assert_eq!(code, 0);
            })
        }),
        Case::new(&w, "raw fork + waitpid", false, |n| {
            spawns(n, raw_fork_waitpid)
        }),
    ];
    let mut notes = Vec::new();
    for (name, method) in [
        ("mproc ForkServer", StartMethod::ForkServer),
        ("mproc Spawn", StartMethod::Spawn),
    ] {
        match works(method) {
            Ok(()) => cases.push(Case::new(&w, name, true, move |n| {
                spawns(n, || {
                    let code = Process::builder()
                        .start_method(method)
                        .spawn_fn(zero, ())
                        .expect("start")
                        .join()
                        .expect("join");
                    assert_eq!(code, 0);
                })
            })),
            Err(why) => notes.push(format!("{name} not measured: {why}")),
        }
    }
    (cases, notes)
}
