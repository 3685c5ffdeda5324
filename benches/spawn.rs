//! Starting and joining a process: mproc against a raw `fork` + `waitpid`
//! and Python's `multiprocessing.Process`, in one run.
//!
//! ```text
//! cargo bench --bench spawn
//! ```
//!
//! * `spawn_join/mproc_fork`: `Process::spawn(|| 0u8)` then `join` (the
//!   child sends its `0u8` back through a pipe).
//! * `spawn_join/raw_fork_waitpid`: `libc::fork()`, the child `_exit(0)`s,
//!   the parent `waitpid`s: the floor.
//! * `spawn_join/mproc_forkserver`, `spawn_join/mproc_spawn`:
//!   `Process::builder().start_method(..).spawn_fn(zero, ())` then `join`,
//!   measured when the start method works in this build (skipped with a
//!   note otherwise).
//!
//! When criterion is done, a table of ratios against the targets of the
//! project is printed (the Fork / raw fork target is judged on paired
//! rounds, raw and mproc timed back to back, robust to a changing load), with Python's `multiprocessing.Process(target=f)`
//! `start()` + `join()` measured on the same machine in the same run
//! (`benches/python/process_spawn.py`; skipped with a note without
//! `python3`).

mod common;

use std::time::Duration;

use common::spawn::{raw_fork_waitpid, works, zero};
use criterion::Criterion;
use mproc::{Process, StartMethod};

/// Paired rounds for the Fork / raw ratio, and starts per block in each.
const PAIRED_ROUNDS: usize = 31;
const PAIRED_BLOCK: usize = 200;

/// Gives the heap's free memory back to the system before a bench.
///
/// `fork` copies the page tables of everything mapped, so a process whose
/// heap grew (criterion's analysis of the previous bench) forks more
/// slowly: without this, whichever bench runs later pays for it.
fn trim_heap() {
    // SAFETY: `malloc_trim` has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// `Process::spawn(|| 0u8)` and `join`.
fn mproc_fork() -> u8 {
    Process::spawn(|| 0u8).unwrap().join().unwrap()
}

/// The ratio of mproc's `Fork` start + join to a raw `fork` + `waitpid`,
/// measured in paired rounds: each round times a block of each, back to
/// back (in alternating order), so that both see the same load, and the
/// round's ratio is one sample. Criterion's medians come from benches run
/// minutes apart, which on a shared machine may see different loads.
/// Returns the median, lowest and highest ratio.
fn paired_ratio(rounds: usize, block: usize) -> (f64, f64, f64) {
    let time = |f: &dyn Fn()| {
        let start = std::time::Instant::now();
        for _ in 0..block {
            f();
        }
        start.elapsed().as_secs_f64()
    };
    let raw = || {
        std::hint::black_box(raw_fork_waitpid());
    };
    let mproc = || {
        std::hint::black_box(mproc_fork());
    };
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let r = time(&raw);
                time(&mproc) / r
            } else {
                let m = time(&mproc);
                m / time(&raw)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[rounds / 2], ratios[0], ratios[rounds - 1])
}

fn spawn_join(c: &mut Criterion) -> Vec<(&'static str, String)> {
    let mut skipped = Vec::new();
    let mut group = c.benchmark_group("spawn_join");

    trim_heap();
    group.bench_function("raw_fork_waitpid", |b| b.iter(raw_fork_waitpid));

    trim_heap();
    group.bench_function("mproc_fork", |b| b.iter(mproc_fork));

    for (id, method) in [
        ("mproc_forkserver", StartMethod::ForkServer),
        ("mproc_spawn", StartMethod::Spawn),
    ] {
        match works(method) {
            Ok(()) => {
                trim_heap();
                group.bench_function(id, |b| {
                    b.iter(|| {
                        Process::builder()
                            .start_method(method)
                            .spawn_fn(zero, ())
                            .unwrap()
                            .join()
                            .unwrap()
                    })
                });
            }
            Err(why) => skipped.push((id, why)),
        }
    }
    group.finish();
    skipped
}

fn report(skipped: &[(&str, String)]) {
    // A skipped bench may have a median on disk from an earlier run: not
    // this run's.
    let us = |id: &str| {
        if skipped.iter().any(|(s, _)| *s == id) {
            return None;
        }
        common::median(&format!("spawn_join/{id}")).map(|s| s * 1e6)
    };
    let python = common::python("process_spawn.py", "200");
    let python_us = |method: &str| -> Option<f64> {
        let rows = python.as_ref().ok()?;
        let name = format!("python_process_{method}");
        rows.iter().find(|(n, _)| *n == name).map(|(_, s)| s * 1e6)
    };

    println!("\nmproc spawn bench: medians of this run, microseconds per start + join");
    println!("{:<26} {:>12}", "workload", "us");
    for (id, label) in [
        ("mproc_fork", "mproc Fork"),
        ("raw_fork_waitpid", "raw fork + waitpid"),
        ("mproc_forkserver", "mproc ForkServer"),
        ("mproc_spawn", "mproc Spawn"),
    ] {
        match us(id) {
            Some(t) => println!("{label:<26} {t:>12.1}"),
            None => match skipped.iter().find(|(s, _)| *s == id) {
                Some((_, why)) => println!("{label:<26} {:>12}  skipped: {why}", "-"),
                None => println!("{label:<26} {:>12}", "not measured"),
            },
        }
    }
    match &python {
        Ok(_) => {
            for method in ["fork", "forkserver", "spawn"] {
                let label = format!("Python {method}");
                match python_us(method) {
                    Some(t) => println!("{label:<26} {t:>12.1}"),
                    None => println!("{label:<26} {:>12}", "not measured"),
                }
            }
        }
        Err(why) => println!("{:<26} {:>12}  skipped: {why}", "Python", "-"),
    }

    println!("\n{:<44} {:>10} {:>10}", "comparison", "ratio", "target");
    if let (Some(m), Some(raw)) = (us("mproc_fork"), us("raw_fork_waitpid")) {
        println!(
            "{:<44} {:>9.2}x",
            "mproc Fork / raw fork (criterion medians)",
            m / raw,
        );
    }
    trim_heap();
    let (median, low, high) = paired_ratio(PAIRED_ROUNDS, PAIRED_BLOCK);
    println!(
        "{:<44} {:>9.2}x {:>10}  {}  (rounds {low:.2}..{high:.2})",
        "mproc Fork / raw fork (paired rounds)",
        median,
        "<= 1.3x",
        if median <= 1.3 { "met" } else { "MISSED" },
    );
    for (id, method, target) in [
        ("mproc_fork", "fork", ">= 5x"),
        ("mproc_forkserver", "forkserver", ""),
        ("mproc_spawn", "spawn", ""),
    ] {
        let name = format!("Python {method} time / mproc time");
        match (us(id), python_us(method)) {
            (Some(m), Some(p)) => println!("{name:<44} {:>9.2}x {target:>10}", p / m),
            _ => println!("{name:<44} {:>10}", "not measured"),
        }
    }
}

fn main() {
    // A child started with `StartMethod::Spawn` runs this binary again:
    // `init` runs its `fn` and exits before anything below happens twice.
    mproc::init();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let skipped = spawn_join(&mut c);
    c.final_summary();
    report(&skipped);
}
