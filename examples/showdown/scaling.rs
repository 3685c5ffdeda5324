//! How the costs grow: producers/consumers from 1 to 8 pairs, and pool
//! `map` from 10^3 to 10^7 items, each size in a fresh process whose peak
//! RSS is reported.

use std::process::Command;
use std::time::{Duration, Instant};

use mproc::Pool;

use crate::case::Case;
use crate::crew::Role;
use crate::{median, pool, stream};

/// Seconds per message at `pairs` producer/consumer pairs: (mproc
/// PodQueue across processes, crossbeam ArrayQueue across threads),
/// medians of `reps` measurements.
pub fn pairs(max: usize, reps: usize, budget: Duration) -> Vec<(usize, f64, f64)> {
    let mut rows = Vec::new();
    for pairs in 1..=max {
        let w = stream::workload(&stream::PAYLOADS[0], pairs);
        let make = |mproc: bool| -> Case {
            let role = move || -> Role {
                if mproc {
                    stream::pod_queue(pairs)
                } else {
                    stream::array_queue(pairs)
                }
            };
            let name = if mproc {
                "mproc PodQueue"
            } else {
                "crossbeam ArrayQueue (threads)"
            };
            stream::crew_case(&w, name, mproc, !mproc, pairs, role)
        };
        let (mut m, mut x) = (make(true), make(false));
        m.calibrate(budget);
        x.calibrate(budget);
        let (mut ms, mut xs) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            ms.push(m.measure());
            xs.push(x.measure());
        }
        rows.push((pairs, median(&mut ms), median(&mut xs)));
    }
    rows
}

/// One size of the pool scaling, measured in a fresh process.
pub struct PoolRow {
    pub items: u64,
    pub lazy: bool,
    pub seconds: f64,
    /// Peak RSS of the process calling `map`, KiB.
    pub peak_kib: u64,
    /// Its RSS before the pool was made, KiB.
    pub base_kib: u64,
}

/// The argument that makes this binary run one pool scaling size.
pub const CHILD_ARG: &str = "--pool-scaling-child";

/// Runs each size `reps` times, each in a fresh run of this binary
/// (`CHILD_ARG items lazy`): the median time, the largest peak RSS.
pub fn pool_sizes(max_exp: u32, reps: usize) -> Result<Vec<PoolRow>, String> {
    let mut rows = Vec::new();
    for exp in 3..=max_exp {
        for lazy in [false, true] {
            let items = 10u64.pow(exp);
            let runs = (0..reps.max(1))
                .map(|_| pool_size(items, lazy))
                .collect::<Result<Vec<_>, _>>()?;
            let mut seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            rows.push(PoolRow {
                items,
                lazy,
                seconds: median(&mut seconds),
                peak_kib: runs.iter().map(|r| r.peak_kib).max().unwrap_or(0),
                base_kib: runs.iter().map(|r| r.base_kib).max().unwrap_or(0),
            });
        }
    }
    Ok(rows)
}

/// One run of one size in a fresh process.
fn pool_size(items: u64, lazy: bool) -> Result<PoolRow, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(&exe)
        .args([CHILD_ARG, &items.to_string(), &lazy.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "pool scaling child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [seconds, peak, base] = fields[..] else {
        return Err(format!("unreadable pool scaling child output: {text}"));
    };
    Ok(PoolRow {
        items,
        lazy,
        seconds,
        peak_kib: peak as u64,
        base_kib: base as u64,
    })
}

/// A field of `/proc/self/status` in KiB (`VmHWM`: the peak RSS of this
/// process since its `exec`; `VmRSS`: its RSS now).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child side: `map` (or, lazily, `imap` folded as it goes) over
/// `items` items; prints seconds, peak RSS and the RSS before, in KiB.
pub fn child(items: u64, lazy: bool) {
    let base = status_kib("VmRSS");
    let pool = Pool::new(mproc::cpu_count()).expect("a pool");
    pool.map(pool::square, 0..1000).expect("a warm-up map");
    let start = Instant::now();
    if lazy {
        let chunk = (items / (4 * mproc::cpu_count() as u64)).clamp(1, 10_000) as usize;
        let mut sum = 0u64;
        for r in pool.chunksize(chunk).imap(pool::square, 0..items) {
            sum = sum.wrapping_add(r.expect("a result"));
        }
        std::hint::black_box(sum);
    } else {
        std::hint::black_box(pool.map(pool::square, 0..items).expect("map"));
    }
    let seconds = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM");
    drop(pool);
    println!("{seconds} {peak} {base}");
}
