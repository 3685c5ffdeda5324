//! `Pool`: `map` with default chunks and with one item per task, and the
//! `apply_async` round trip, against rayon (threads).

use std::hint::black_box;
use std::time::Instant;

use mproc::Pool;
use rayon::prelude::*;

use crate::case::{Case, Sample, Unit, Workload};

/// Items of the chunked `map`.
pub const BIG: u64 = 1_000_000;
/// Items of the `map` with one item per task.
pub const SMALL: u64 = 10_000;

pub fn square(n: u64) -> u64 {
    n.wrapping_mul(n)
}

pub fn workloads() -> [Workload; 3] {
    [
        Workload::new(
            "pool/map_1m",
            "pool map 1M items, default chunks",
            Unit::Rate,
        ),
        Workload::new(
            "pool/map_chunk1_10k",
            "pool map 10k items, chunksize 1",
            Unit::Rate,
        ),
        Workload::new(
            "pool/apply_async",
            "pool apply_async round trip",
            Unit::Latency,
        ),
    ]
}

/// A pool of `cpu_count` workers, warmed up.
fn pool() -> Pool {
    let pool = Pool::new(mproc::cpu_count()).expect("a pool");
    pool.map(square, 0..1000).expect("a warm-up map");
    pool
}

/// A rayon pool of `cpu_count` threads, warmed up, and run on `f`; its
/// threads are gone when this returns (the next case may fork).
fn with_rayon(f: impl FnOnce(&rayon::ThreadPool) -> Sample) -> Sample {
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(mproc::cpu_count())
        .build()
        .expect("a rayon pool");
    threads.install(|| (0..1000u64).into_par_iter().map(square).sum::<u64>());
    let sample = f(&threads);
    drop(threads);
    crate::settle_threads();
    sample
}

fn repeat(n: u64, items: u64, mut once: impl FnMut()) -> Sample {
    let start = Instant::now();
    for _ in 0..n {
        once();
    }
    Sample {
        ops: n * items,
        elapsed: start.elapsed(),
    }
}

pub fn cases() -> Vec<Case> {
    let [big, small, apply] = workloads();
    vec![
        Case::new(&big, "mproc Pool", true, |n| {
            let pool = pool();
            repeat(n, BIG, || {
                black_box(pool.map(square, 0..BIG).expect("map"));
            })
        }),
        Case::new(&big, "rayon (threads)", false, |n| {
            with_rayon(|threads| {
                repeat(n, BIG, || {
                    black_box(
                        threads
                            .install(|| (0..BIG).into_par_iter().map(square).collect::<Vec<_>>()),
                    );
                })
            })
        }),
        Case::new(&small, "mproc Pool", true, |n| {
            let pool = pool();
            repeat(n, SMALL, || {
                black_box(pool.chunksize(1).map(square, 0..SMALL).expect("map"));
            })
        }),
        Case::new(&small, "rayon (threads)", false, |n| {
            with_rayon(|threads| {
                repeat(n, SMALL, || {
                    black_box(threads.install(|| {
                        (0..SMALL as u32)
                            .into_par_iter()
                            .with_max_len(1)
                            .map(|n| square(u64::from(n)))
                            .collect::<Vec<_>>()
                    }));
                })
            })
        }),
        Case::new(&apply, "mproc Pool", true, |n| {
            let pool = pool();
            for k in 0..100 {
                pool.apply_async(square, k)
                    .expect("submit")
                    .get()
                    .expect("get");
            }
            repeat(n, 1, || {
                black_box(
                    pool.apply_async(square, black_box(3))
                        .expect("submit")
                        .get()
                        .expect("get"),
                );
            })
        }),
        Case::new(&apply, "rayon (threads)", false, |n| {
            with_rayon(|threads| {
                repeat(n, 1, || {
                    let k = black_box(3u64);
                    black_box(threads.install(move || square(k)));
                })
            })
        }),
    ]
}
