//! `Pool`: mproc against rayon (threads: the ceiling without processes)
//! and Python's `multiprocessing.Pool`, on the same work, in one run.
//!
//! ```text
//! cargo bench --bench pool
//! ```
//!
//! * `pool_map/mproc_default_1m`: `pool.map(square, 0..1_000_000)` with
//!   Python's default chunking (`ceil(len / (4 × processes))`);
//!   `pool_map/rayon_1m`: the same with `into_par_iter`.
//! * `pool_map/mproc_chunk1_10k`: `pool.chunksize(1).map(square,
//!   0..10_000)`, one task per item; `pool_map/rayon_chunk1_10k`: rayon
//!   with `with_max_len(1)`.
//! * `pool_apply/mproc_apply_async`: `pool.apply_async(square, n)?.get()`,
//!   one round trip at a time; `pool_apply/rayon_install`: a rayon pool's
//!   `install` round trip.
//!
//! The pools have [`mproc::cpu_count`] workers ([`mproc::StartMethod::ForkServer`],
//! the default). When criterion is done, a table compares with Python's
//! `Pool` measured by `benches/python/pool.py` in the same run (skipped
//! with a note without `python3`), with verdicts against the targets of
//! the project, and the time from a worker's `SIGKILL` to its task's
//! error.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mproc::{Pool, PoolError};
use rayon::prelude::*;

fn square(n: u64) -> u64 {
    n.wrapping_mul(n)
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

const BIG: u64 = 1_000_000;
const SMALL: u64 = 10_000;

fn map(c: &mut Criterion, pool: &Pool, threads: &rayon::ThreadPool) {
    let mut group = c.benchmark_group("pool_map");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BIG));
    group.bench_function("mproc_default_1m", |b| {
        b.iter(|| pool.map(square, 0..BIG).unwrap())
    });
    group.bench_function("rayon_1m", |b| {
        b.iter(|| threads.install(|| (0..BIG).into_par_iter().map(square).collect::<Vec<_>>()))
    });
    group.throughput(Throughput::Elements(SMALL));
    group.bench_function("mproc_chunk1_10k", |b| {
        b.iter(|| pool.chunksize(1).map(square, 0..SMALL).unwrap())
    });
    group.bench_function("rayon_chunk1_10k", |b| {
        b.iter(|| {
            threads.install(|| {
                (0..SMALL as u32)
                    .into_par_iter()
                    .with_max_len(1)
                    .map(|n| square(u64::from(n)))
                    .collect::<Vec<_>>()
            })
        })
    });
    group.finish();
}

fn apply(c: &mut Criterion, pool: &Pool, threads: &rayon::ThreadPool) {
    let mut group = c.benchmark_group("pool_apply");
    let mut n = 0u64;
    group.bench_function("mproc_apply_async", |b| {
        b.iter(|| {
            n += 1;
            pool.apply_async(square, n).unwrap().get().unwrap()
        })
    });
    group.bench_function("rayon_install", |b| {
        b.iter(|| {
            n += 1;
            let n = std::hint::black_box(n);
            threads.install(move || square(n))
        })
    });
    group.finish();
}

/// Milliseconds from a `SIGKILL` of a worker in the middle of a task to
/// that task's error, median of a few rounds.
fn death_latency() -> Result<f64, String> {
    let pool = Pool::new(1).map_err(|e| e.to_string())?;
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let victim = pool.pids()[0];
        let task = pool
            .apply_async(nap, 3_600_000)
            .map_err(|e| e.to_string())?;
        // Let it start.
        std::thread::sleep(Duration::from_millis(20));
        let killed = Instant::now();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(victim as i32).ok_or("no pid")?,
            rustix::process::Signal::KILL,
        )
        .map_err(|e| e.to_string())?;
        match task.get() {
            Err(PoolError::WorkerKilled { pid, signal: 9 }) if pid == victim => {}
            other => return Err(format!("unexpected: {other:?}")),
        }
        rounds.push(killed.elapsed().as_secs_f64() * 1e3);
        // The replacement starts with the next task.
        pool.apply(square, 2).map_err(|e| e.to_string())?;
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[rounds.len() / 2])
}

fn report(death: Result<f64, String>) {
    let secs = |id: &str| common::median(id);
    let rate = |id: &str, n: u64| secs(id).map(|s| n as f64 / s);
    let python = common::python("pool.py", "1000000");
    let py = |name: &str| -> Option<f64> {
        let rows = python.as_ref().ok()?;
        rows.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    };

    println!(
        "\nmproc pool bench ({} workers): medians of this run",
        mproc::cpu_count()
    );
    println!("{:<40} {:>16}", "workload", "value");
    let rows = [
        (
            "mproc map 1M, default chunks",
            rate("pool_map/mproc_default_1m", BIG),
            "tasks/s",
        ),
        ("rayon map 1M", rate("pool_map/rayon_1m", BIG), "tasks/s"),
        (
            "Python map 1M, default chunks",
            py("python_pool_map_default"),
            "tasks/s",
        ),
        (
            "mproc map 10k, chunksize 1",
            rate("pool_map/mproc_chunk1_10k", SMALL),
            "tasks/s",
        ),
        (
            "rayon map 10k, one item per task",
            rate("pool_map/rayon_chunk1_10k", SMALL),
            "tasks/s",
        ),
        (
            "Python map 10k, chunksize=1",
            py("python_pool_map_chunk1"),
            "tasks/s",
        ),
    ];
    for (label, value, unit) in rows {
        match value {
            Some(v) => println!("{label:<40} {:>12.2} M {unit}", v / 1e6),
            None => println!("{label:<40} {:>16}", "not measured"),
        }
    }
    let us = |v: Option<f64>| v.map(|s| s * 1e6);
    for (label, value) in [
        (
            "mproc apply_async + get",
            us(secs("pool_apply/mproc_apply_async")),
        ),
        (
            "rayon install round trip",
            us(secs("pool_apply/rayon_install")),
        ),
        (
            "Python apply_async + get",
            us(py("python_pool_apply_async")),
        ),
    ] {
        match value {
            Some(v) => println!("{label:<40} {v:>12.2} us"),
            None => println!("{label:<40} {:>16}", "not measured"),
        }
    }
    match &death {
        Ok(ms) => println!("{:<40} {ms:>12.1} ms", "SIGKILL mid-task -> task error"),
        Err(why) => println!(
            "{:<40} {:>16}  {why}",
            "SIGKILL mid-task -> task error", "-"
        ),
    }
    if let Err(why) = &python {
        println!("Python: skipped: {why}");
    }

    println!(
        "\n{:<48} {:>10} {:>8} {:>8}",
        "comparison", "ratio", "target", "verdict"
    );
    let verdict = |ratio: f64, target: f64| if ratio >= target { "met" } else { "MISSED" };
    let comparisons = [
        (
            "map 1M: mproc / Python throughput",
            rate("pool_map/mproc_default_1m", BIG).zip(py("python_pool_map_default")),
            10.0,
        ),
        (
            "map 10k chunksize 1: mproc / Python throughput",
            rate("pool_map/mproc_chunk1_10k", SMALL).zip(py("python_pool_map_chunk1")),
            0.0,
        ),
        (
            "apply_async: Python / mproc round-trip time",
            py("python_pool_apply_async").zip(secs("pool_apply/mproc_apply_async")),
            20.0,
        ),
    ];
    for (label, pair, target) in comparisons {
        match pair {
            Some((a, b)) if target > 0.0 => {
                let ratio = a / b;
                println!(
                    "{label:<48} {ratio:>9.1}x {:>7}x {:>8}",
                    target,
                    verdict(ratio, target)
                );
            }
            Some((a, b)) => println!("{label:<48} {:>9.1}x {:>8} {:>8}", a / b, "-", "-"),
            None => println!("{label:<48} {:>10}", "not measured"),
        }
    }
    if let Ok(ms) = death {
        println!(
            "{:<48} {:>8.1}ms {:>8} {:>8}",
            "SIGKILL mid-task -> task error",
            ms,
            "< 1 s",
            if ms < 1000.0 { "met" } else { "MISSED" }
        );
    }
}

fn main() {
    // Workers of a pool started with `StartMethod::Spawn`, and a fork
    // server run again from a multi-threaded process, run this binary
    // again: `init` dispatches them.
    mproc::init();
    // The pool first, while this process has one thread: its fork server
    // is then forked, not run again.
    let pool = Pool::new(mproc::cpu_count()).expect("start the pool");
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(mproc::cpu_count())
        .build()
        .expect("a rayon pool");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    map(&mut c, &pool, &threads);
    apply(&mut c, &pool, &threads);
    drop(pool);
    let death = death_latency();
    c.final_summary();
    report(death);
}
