//! Starting a child that does nothing and joining it.

use std::time::Instant;

use mproc::{Process, StartMethod};

use crate::case::{Case, Sample, Unit, Workload};
use crate::spawn_common::{raw_fork_waitpid, works, zero};

pub fn workload() -> Workload {
    Workload::new("spawn/join", "spawn + join", Unit::Latency)
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
            spawns(n, || {
                raw_fork_waitpid();
            })
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
