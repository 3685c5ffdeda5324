//! mproc's queues across processes against their peers, in one run.
//!
//! ```text
//! cargo bench --bench queue
//! ```
//!
//! * `throughput/*`: `mproc::PodQueue<u64>` with producer and consumer
//!   *processes* against `crossbeam_queue::ArrayQueue<u64>` with producer and
//!   consumer *threads* (the hardware ceiling), 1P/1C, 2P/2C and 4P/4C.
//! * `spsc_batch/*`: `mproc::spsc` moving runs of 64 values between two
//!   processes against a minimal raw shared-memory SPSC ring doing the same.
//! * `round_trip/*`: one value to a child process and back, each side
//!   blocking in its receive between messages: two `mproc::PodQueue`s, an
//!   `mproc::spsc` pair, and a pair of raw pipes.
//!
//! Workers (processes or threads) live for a whole benchmark and are started
//! for each sample through two semaphores, so a sample measures messages
//! only. When criterion is done, a table of ratios against the targets of the
//! project is printed, with Python's `multiprocessing.Queue` measured on the
//! same machine in the same run (skipped with a note without `python3`).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::crew::{Crew, Role, STOP, array_queue_role, fork, share};
use criterion::{BenchmarkId, Criterion, Throughput};
use crossbeam_utils::{Backoff, CachePadded};
use mproc::{PodQueue, Region, spsc};

/// Slots in every queue.
const CAPACITY: usize = 4096;
/// Values per batch in `spsc_batch`.
const BATCH: usize = 64;

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(1));
    for pairs in [1usize, 2, 4] {
        let label = format!("{pairs}p{pairs}c");

        let queue = PodQueue::<u64>::new(CAPACITY).unwrap();
        let role: Role = Arc::new(move |index, n| {
            if index < pairs {
                for v in 0..share(n, index, pairs) {
                    queue.put(v);
                }
            } else {
                for _ in 0..share(n, index - pairs, pairs) {
                    black_box(queue.get());
                }
            }
        });
        let crew = Crew::processes(2 * pairs, role);
        group.bench_function(BenchmarkId::new("mproc_processes", &label), |b| {
            b.iter_custom(|iters| crew.run(iters))
        });
        drop(crew);

        let role = array_queue_role(pairs, CAPACITY);
        let crew = Crew::threads(2 * pairs, role);
        group.bench_function(BenchmarkId::new("crossbeam_threads", &label), |b| {
            b.iter_custom(|iters| crew.run(iters))
        });
    }
    group.finish();
}

/// A minimal single-producer single-consumer ring of `u64` in shared memory:
/// two indices on their own cache lines and a buffer, spinning when full or
/// empty. No blocking, no checks: the floor for what shared memory costs.
struct RawRing {
    region: Arc<Region>,
}

#[repr(C)]
struct RawIndices {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
}

impl RawRing {
    fn new() -> Self {
        let bytes = size_of::<RawIndices>() + CAPACITY * 8;
        Self {
            region: Arc::new(Region::anonymous(bytes).unwrap()),
        }
    }

    fn indices(&self) -> &RawIndices {
        // SAFETY: the region starts page-aligned, is zeroed (two zero
        // indices) and lives as long as `self`.
        unsafe { self.region.as_ptr().cast::<RawIndices>().as_ref() }
    }

    fn slots(&self) -> *mut u64 {
        // SAFETY: the buffer follows the indices inside the region.
        unsafe {
            self.region
                .as_ptr()
                .as_ptr()
                .add(size_of::<RawIndices>())
                .cast()
        }
    }

    fn push_slice(&self, values: &[u64]) {
        let (ix, backoff) = (self.indices(), Backoff::new());
        let tail = ix.tail.load(Ordering::Relaxed);
        while tail + values.len() as u64 - ix.head.load(Ordering::Acquire) > CAPACITY as u64 {
            backoff.snooze();
        }
        for (i, &v) in values.iter().enumerate() {
            // SAFETY: the slot is free (checked above) and inside the buffer.
            unsafe { self.slots().add((tail as usize + i) % CAPACITY).write(v) };
        }
        ix.tail.store(tail + values.len() as u64, Ordering::Release);
    }

    fn pop_slice(&self, out: &mut [u64]) -> usize {
        let (ix, backoff) = (self.indices(), Backoff::new());
        let head = ix.head.load(Ordering::Relaxed);
        let mut ready;
        loop {
            ready = ix.tail.load(Ordering::Acquire) - head;
            if ready > 0 {
                break;
            }
            backoff.snooze();
        }
        let n = (ready as usize).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            // SAFETY: the slot holds a published value and is in the buffer.
            *slot = unsafe { self.slots().add((head as usize + i) % CAPACITY).read() };
        }
        ix.head.store(head + n as u64, Ordering::Release);
        n
    }
}

fn spsc_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_batch");
    group.throughput(Throughput::Elements(1));

    // One channel per direction of use: the producer end goes to worker 0,
    // the consumer end to worker 1, each moved in by fork and used by one
    // process only.
    let (tx, rx) = spsc::channel::<u64>(CAPACITY).unwrap();
    let ends = Arc::new(std::sync::Mutex::new((Some(tx), Some(rx))));
    let role: Role = Arc::new(move |index, n| {
        let mut ends = ends.lock().unwrap();
        let values: Vec<u64> = (0..BATCH as u64).collect();
        let mut out = [0u64; BATCH];
        if index == 0 {
            let tx = ends.0.as_mut().unwrap();
            let mut left = n;
            while left > 0 {
                let k = left.min(BATCH as u64) as usize;
                tx.push_slice(&values[..k]);
                left -= k as u64;
            }
        } else {
            let rx = ends.1.as_mut().unwrap();
            let mut left = n;
            while left > 0 {
                let k = left.min(BATCH as u64) as usize;
                left -= rx.pop_slice(&mut out[..k]) as u64;
            }
            black_box(out);
        }
    });
    let crew = Crew::processes(2, role);
    group.bench_function("mproc_spsc_batch64", |b| {
        b.iter_custom(|iters| crew.run(iters))
    });
    drop(crew);

    let ring = Arc::new(RawRing::new());
    let role: Role = Arc::new(move |index, n| {
        let values: Vec<u64> = (0..BATCH as u64).collect();
        let mut out = [0u64; BATCH];
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH as u64) as usize;
            if index == 0 {
                ring.push_slice(&values[..k]);
                left -= k as u64;
            } else {
                left -= ring.pop_slice(&mut out[..k]) as u64;
            }
        }
        black_box(out);
    });
    let crew = Crew::processes(2, role);
    group.bench_function("raw_ring_batch64", |b| {
        b.iter_custom(|iters| crew.run(iters))
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");

    let (ping, pong) = (
        PodQueue::<u64>::new(16).unwrap(),
        PodQueue::<u64>::new(16).unwrap(),
    );
    let mut echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        fork(move || {
            loop {
                let v = ping.get();
                if v == STOP {
                    return;
                }
                pong.put(v);
            }
        })
    };
    group.bench_function("mproc_queue", |b| {
        b.iter(|| {
            ping.put(black_box(1));
            pong.get()
        })
    });
    ping.put(STOP);
    echo.join().unwrap();

    let (mut ping_tx, mut ping_rx) = spsc::channel::<u64>(16).unwrap();
    let (mut pong_tx, mut pong_rx) = spsc::channel::<u64>(16).unwrap();
    let mut echo = fork(move || {
        loop {
            let v = ping_rx.pop();
            if v == STOP {
                return;
            }
            pong_tx.push(v);
        }
    });
    group.bench_function("mproc_spsc", |b| {
        b.iter(|| {
            ping_tx.push(black_box(1));
            pong_rx.pop()
        })
    });
    ping_tx.push(STOP);
    echo.join().unwrap();

    let (ping_read, ping_write) = rustix::pipe::pipe().unwrap();
    let (pong_read, pong_write) = rustix::pipe::pipe().unwrap();
    let mut echo = fork(move || {
        let mut byte = [0u8; 1];
        loop {
            if rustix::io::read(&ping_read, &mut byte).unwrap() == 0 || byte[0] == 0 {
                return;
            }
            rustix::io::write(&pong_write, &byte).unwrap();
        }
    });
    group.bench_function("raw_pipe", |b| {
        let mut byte = [1u8; 1];
        b.iter(|| {
            rustix::io::write(&ping_write, &byte).unwrap();
            rustix::io::read(&pong_read, &mut byte).unwrap()
        })
    });
    rustix::io::write(&ping_write, &[0]).unwrap();
    echo.join().unwrap();
    group.finish();
}

/// The numbers of the JSON array `key` in `text`.
fn json_numbers(text: &str, key: &str) -> Option<Vec<f64>> {
    let start = text.find(&format!("\"{key}\":["))? + key.len() + 4;
    let end = text[start..].find(']')? + start;
    text[start..end]
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect()
}

/// The slowest sample of `id` in elements per second: a round that
/// collapsed (say, spinning parties starving the ones they wait for) shows
/// here even when the median looks fine.
fn slowest_rate(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let text = std::fs::read_to_string(format!("{dir}/criterion/{id}/new/sample.json")).ok()?;
    let (iters, times) = (json_numbers(&text, "iters")?, json_numbers(&text, "times")?);
    iters
        .iter()
        .zip(&times)
        .map(|(n, ns)| n / ns * 1e9)
        .min_by(f64::total_cmp)
}

fn report() {
    let rate = |id: &str| common::median(id).map(|s| 1.0 / s);
    let python = common::python("queue_throughput.py", "200000");
    println!("\nmproc queue bench: medians of this run");
    println!(
        "{:<44} {:>14} {:>10} {:>8}",
        "comparison", "mproc", "ratio", "target"
    );
    let row = |name: &str, mine: Option<f64>, peer: Option<f64>, unit: &str, target: &str| match (
        mine, peer,
    ) {
        (Some(m), Some(p)) => {
            println!("{name:<44} {m:>10.2} {unit:<3} {:>9.2}x {target:>8}", m / p)
        }
        _ => println!("{name:<44} {:>14}", "not measured"),
    };
    for pairs in [1, 2, 4] {
        let m = rate(&format!("throughput/mproc_processes/{pairs}p{pairs}c"));
        let x = rate(&format!("throughput/crossbeam_threads/{pairs}p{pairs}c"));
        let target = if pairs == 4 { ">= 0.5x" } else { ">= 1.0x" };
        row(
            &format!("{pairs}P/{pairs}C vs crossbeam ArrayQueue (threads)"),
            m.map(|r| r / 1e6),
            x.map(|r| r / 1e6),
            "M/s",
            target,
        );
        let id = format!("throughput/mproc_processes/{pairs}p{pairs}c");
        if let (Some(slowest), Some(m)) = (slowest_rate(&id), m) {
            println!(
                "{:<44} {:>10.2} M/s {:>9.2}x of the median",
                format!("{pairs}P/{pairs}C mproc, slowest round"),
                slowest / 1e6,
                slowest / m
            );
        }
        match &python {
            Ok(rates) => {
                let p = rates
                    .iter()
                    .find(|(n, _)| *n == format!("python_queue_{pairs}p{pairs}c"))
                    .map(|(_, r)| r / 1e6);
                row(
                    &format!("{pairs}P/{pairs}C vs Python multiprocessing.Queue"),
                    m.map(|r| r / 1e6),
                    p,
                    "M/s",
                    ">= 100x",
                );
            }
            Err(why) => println!("{:<44} skipped: {why}", "vs Python multiprocessing.Queue"),
        }
    }
    row(
        "SPSC batch 64 vs raw shared-memory ring",
        rate("spsc_batch/mproc_spsc_batch64").map(|r| r / 1e6),
        rate("spsc_batch/raw_ring_batch64").map(|r| r / 1e6),
        "M/s",
        ">= 0.5x",
    );
    for (name, id) in [
        ("round trip, mproc PodQueue", "mproc_queue"),
        ("round trip, mproc spsc", "mproc_spsc"),
    ] {
        let us = common::median(&format!("round_trip/{id}")).map(|s| s * 1e6);
        let pipe = common::median("round_trip/raw_pipe").map(|s| s * 1e6);
        match (us, pipe) {
            (Some(us), Some(pipe)) => println!(
                "{name:<44} {us:>10.2} us  {:>8.1}x faster than a raw pipe ({pipe:.1} us); target <= 1 us",
                pipe / us
            ),
            _ => println!("{name:<44} {:>14}", "not measured"),
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    throughput(&mut c);
    spsc_batch(&mut c);
    round_trip(&mut c);
    c.final_summary();
    report();
}
