//! Messages between processes: mproc's `Queue` and `pipe` against their
//! peers on the same payloads, in one run.
//!
//! ```text
//! cargo bench --bench messaging
//! ```
//!
//! Three payloads: a `u64`, and a `Vec<u8>` of 1 KiB and of 1 MiB.
//!
//! * `one_way_<payload>/*`: a producer streams messages to a consumer that
//!   receives them one by one; the rate of the whole stream, from the
//!   producer's first send to the consumer's last receive.
//!   - `mproc_queue`: `mproc::Queue<u64>` / `Queue<Vec<u8>>`, producer and
//!     consumer processes.
//!   - `ipc_channel`: `ipc_channel::ipc::channel` of `u64` /
//!     `serde_bytes::ByteBuf` (its bytes encode as one block, as
//!     `Vec<u8>` does in mproc), processes.
//!   - `raw_pipe`: a `pipe(2)`; each message is its length as 4 bytes, then
//!     its bytes, written with one `writev` and read through a buffer;
//!     processes. The kernel's floor: no encoding, no allocation.
//!   - `crossbeam_threads`: `crossbeam_channel::bounded` between two
//!     *threads* of one process, where a `Vec` moves as a pointer: the
//!     ceiling.
//! * `pipe_round_trip_<payload>/*` (`u64` and 1 KiB): the parent sends a
//!   message, a child blocking in its receive echoes it, the parent blocks
//!   in its receive for the echo.
//!   - `mproc_pipe`: `send` then `recv` on a duplex `mproc::pipe()`.
//!   - `ipc_channel`: two `ipc_channel::ipc::channel`s, one each way.
//!   - `raw_socketpair`: a Unix stream socket pair (what Python's duplex
//!     `Pipe` uses), framed as `raw_pipe`.
//!   - `raw_pipe`: two `pipe(2)`s (what Python's `Pipe(duplex=False)`
//!     uses), framed as above.
//!   - `shm_spin_floor` (`u64` only): a value bounced across two cache
//!     lines of shared memory, both sides spinning: not a channel but the
//!     floor a round trip across cores costs on this machine (it moves with
//!     where the host puts the two CPUs).
//!
//! Typed channels take their messages by value, so their producers make
//! each one from the payload (`clone`), as a program sending new data
//! would; the raw channels write the payload's bytes as they are.
//!
//! With two CPUs or more the parent (the producer) runs on CPU 0 and the
//! child or thread on the other side on CPU 1 (`sched_setaffinity`), so
//! every message crosses cores. When criterion is done, the bench runs
//! `benches/python/messaging.py` (Python's `multiprocessing.Queue` and
//! `Pipe` on the same payloads; skipped with a note without `python3`) and
//! prints a table of rates, ratios and the project's targets.

mod common;

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::frame::{FrameIn, write_frame};
use common::message::{Message, STOP, U64};
use criterion::{Criterion, Throughput};
use crossbeam_utils::CachePadded;
use ipc_channel::ipc;
use mproc::{Process, Queue, Region, Semaphore, Value, pipe};
use rustix::thread::{CpuSet, sched_setaffinity};
use serde_bytes::ByteBuf;

/// One payload and how it is measured.
struct Workload {
    /// The suffix of the group names: `u64`, `1KiB`, `1MiB`.
    name: &'static str,
    /// The bytes of every message.
    payload: Vec<u8>,
    /// Per message: one element, or its bytes.
    throughput: Throughput,
    /// The bound in messages of the bounded channels (mproc's `Queue`,
    /// crossbeam's channel), as Python's `Queue(maxsize)`.
    capacity: usize,
}

impl Workload {
    fn u64() -> Self {
        Self {
            name: "u64",
            payload: U64.to_ne_bytes().to_vec(),
            throughput: Throughput::Elements(1),
            capacity: 4096,
        }
    }

    fn bytes(name: &'static str, len: usize, throughput: Throughput, capacity: usize) -> Self {
        Self {
            name,
            payload: (0..len).map(|i| i as u8).collect(),
            throughput,
            capacity,
        }
    }
}

/// Whether the two sides get a CPU each: decided once, before pinning (a
/// pinned process counts only the CPUs it may run on).
static PINNED: OnceLock<bool> = OnceLock::new();

/// Runs the calling thread on `cpu` if the machine has two CPUs or more.
fn pin(cpu: usize) {
    if *PINNED.get_or_init(|| mproc::cpu_count() >= 2) {
        let mut set = CpuSet::new();
        set.set(cpu);
        // Not pinned is still a valid measurement, just a noisier one.
        let _ = sched_setaffinity(None, &set);
    }
}

/// Lets the calling thread run on every CPU again (for the Python script,
/// whose processes would otherwise all inherit CPU 0).
fn unpin() {
    let mut set = CpuSet::new();
    for cpu in 0..mproc::cpu_count().clamp(1, CpuSet::MAX_CPU) {
        set.set(cpu);
    }
    let _ = sched_setaffinity(None, &set);
}

/// Forks a child that runs `f` on CPU 1. The bench's only thread besides
/// the main one (a crossbeam consumer) is joined before the next fork, so
/// opting in to forking a threaded process is safe here.
fn fork(f: impl FnOnce() + Send + 'static) -> Process<()> {
    Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || {
            pin(1);
            f()
        })
        .expect("fork a child")
}

/// Starts the consumer of a one-way stream for each sample, with the
/// number of messages to receive, and tells the producer when it has
/// received them all. The consumer lives for the whole benchmark.
#[derive(Clone)]
struct Gate {
    go: Semaphore,
    done: Semaphore,
    work: Value<u64>,
}

impl Gate {
    fn new() -> Self {
        Self {
            go: Semaphore::new(0).expect("a semaphore"),
            done: Semaphore::new(0).expect("a semaphore"),
            work: Value::new(0).expect("a shared value"),
        }
    }

    /// The consumer's loop: per sample, `recv` as many messages as the
    /// producer sends; returns when told to stop.
    fn serve(&self, mut recv: impl FnMut()) {
        loop {
            self.go.acquire();
            let n = self.work.get();
            if n == STOP {
                return;
            }
            for _ in 0..n {
                recv();
            }
            self.done.release().expect("one sample at a time");
        }
    }

    /// One sample: `send` `n` messages and wait for the consumer to have
    /// received them.
    fn sample(&self, n: u64, mut send: impl FnMut()) -> Duration {
        self.work.set(n);
        let start = Instant::now();
        self.go.release().expect("one sample at a time");
        for _ in 0..n {
            send();
        }
        self.done.acquire();
        start.elapsed()
    }

    /// Ends the consumer's loop.
    fn stop(&self) {
        self.work.set(STOP);
        self.go.release().expect("one sample at a time");
    }
}

/// One-way streams of `M` (mproc, crossbeam) and `I` (ipc-channel).
fn one_way<M: Message, I: Message>(c: &mut Criterion, w: &Workload) {
    let mut group = c.benchmark_group(format!("one_way_{}", w.name));
    group.throughput(w.throughput.clone());
    let payload = &w.payload[..];

    {
        let queue = Queue::<M>::new(w.capacity).expect("a queue");
        let gate = Gate::new();
        let mut child = fork({
            let (queue, gate) = (queue.clone(), gate.clone());
            move || {
                gate.serve(|| {
                    black_box(queue.get().expect("a message"));
                })
            }
        });
        group.bench_function("mproc_queue", |b| {
            b.iter_custom(|n| {
                gate.sample(n, || queue.put(M::make(payload)).expect("an open queue"))
            })
        });
        gate.stop();
        child.join().expect("the consumer");
    }

    {
        let (tx, rx) = ipc::channel::<I>().expect("an ipc channel");
        let gate = Gate::new();
        let mut child = fork({
            let gate = gate.clone();
            move || {
                gate.serve(|| {
                    black_box(rx.recv().expect("a message"));
                })
            }
        });
        group.bench_function("ipc_channel", |b| {
            b.iter_custom(|n| gate.sample(n, || tx.send(I::make(payload)).expect("a receiver")))
        });
        gate.stop();
        child.join().expect("the consumer");
    }

    {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("a pipe");
        let gate = Gate::new();
        let mut child = fork({
            let gate = gate.clone();
            move || {
                let (mut input, mut buf) = (FrameIn::new(read), Vec::new());
                gate.serve(|| {
                    assert!(input.recv(&mut buf), "a frame");
                    black_box(&buf);
                })
            }
        });
        group.bench_function("raw_pipe", |b| {
            b.iter_custom(|n| gate.sample(n, || write_frame(&write, payload)))
        });
        gate.stop();
        child.join().expect("the consumer");
    }

    {
        let (tx, rx) = crossbeam_channel::bounded::<M>(w.capacity);
        let gate = Gate::new();
        let consumer = std::thread::spawn({
            let gate = gate.clone();
            move || {
                pin(1);
                gate.serve(|| {
                    black_box(rx.recv().expect("a message"));
                })
            }
        });
        group.bench_function("crossbeam_threads", |b| {
            b.iter_custom(|n| gate.sample(n, || tx.send(M::make(payload)).expect("a receiver")))
        });
        gate.stop();
        consumer.join().expect("the consumer");
    }

    group.finish();
}

/// Round trips of `M` (mproc) and `I` (ipc-channel) to an echoing child.
fn round_trip<M: Message, I: Message>(c: &mut Criterion, w: &Workload) {
    let mut group = c.benchmark_group(format!("pipe_round_trip_{}", w.name));
    let payload = &w.payload[..];

    {
        let (here, there) = pipe::<M>().expect("a pipe");
        let mut child = fork(move || {
            while let Ok(message) = there.recv() {
                if message.is_stop() {
                    return;
                }
                there.send(message).expect("the parent is there");
            }
        });
        group.bench_function("mproc_pipe", |b| {
            b.iter(|| {
                here.send(M::make(payload)).expect("the child is there");
                here.recv().expect("the echo")
            })
        });
        here.send(M::stop()).expect("the child is there");
        child.join().expect("the echoing child");
    }

    {
        let (down_tx, down_rx) = ipc::channel::<I>().expect("an ipc channel");
        let (up_tx, up_rx) = ipc::channel::<I>().expect("an ipc channel");
        let mut child = fork(move || {
            while let Ok(message) = down_rx.recv() {
                if message.is_stop() {
                    return;
                }
                up_tx.send(message).expect("the parent is there");
            }
        });
        group.bench_function("ipc_channel", |b| {
            b.iter(|| {
                down_tx.send(I::make(payload)).expect("the child is there");
                up_rx.recv().expect("the echo")
            })
        });
        down_tx.send(I::stop()).expect("the child is there");
        child.join().expect("the echoing child");
    }

    let echo = |input: OwnedFd, output: OwnedFd| {
        move || {
            let (mut input, mut buf) = (FrameIn::new(input), Vec::new());
            while input.recv(&mut buf) && !buf.is_empty() {
                write_frame(&output, &buf);
            }
        }
    };

    {
        let (here, there) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .expect("a socket pair");
        let there_out = there.try_clone().expect("dup");
        let mut child = fork(echo(there, there_out));
        let mut input = FrameIn::new(here.try_clone().expect("dup"));
        let mut buf = Vec::new();
        group.bench_function("raw_socketpair", |b| {
            b.iter(|| {
                write_frame(&here, payload);
                assert!(input.recv(&mut buf), "the echo");
            })
        });
        write_frame(&here, &[]);
        child.join().expect("the echoing child");
    }

    {
        let flags = rustix::pipe::PipeFlags::CLOEXEC;
        let (down_read, down_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
        let (up_read, up_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
        let mut child = fork(echo(down_read, up_write));
        let mut input = FrameIn::new(up_read);
        let mut buf = Vec::new();
        group.bench_function("raw_pipe", |b| {
            b.iter(|| {
                write_frame(&down_write, payload);
                assert!(input.recv(&mut buf), "the echo");
            })
        });
        write_frame(&down_write, &[]);
        child.join().expect("the echoing child");
    }

    group.finish();
}

/// Two cache lines in shared memory: the parent writes `ping`, the child
/// echoes it in `pong`.
#[repr(C)]
struct PingPong {
    ping: CachePadded<AtomicU64>,
    pong: CachePadded<AtomicU64>,
}

/// The floor of a round trip across cores: a value bounced across two
/// cache lines, both sides spinning.
fn shm_spin_floor(c: &mut Criterion) {
    let region = Arc::new(Region::anonymous(size_of::<PingPong>()).expect("a region"));
    let lines = |region: &Region| -> &PingPong {
        // SAFETY: the region starts page-aligned and is zeroed (two zero
        // atomics); the reference lives no longer than the borrow of the
        // region, which stays mapped while it is borrowed.
        unsafe { region.as_ptr().cast::<PingPong>().as_ref() }
    };
    let mut child = fork({
        let region = region.clone();
        move || {
            let lines = lines(&region);
            let mut last = 0;
            loop {
                // Acquire/Release: nothing rides on the values; the
                // orderings are those a real hand-off would use.
                let n = lines.ping.load(Ordering::Acquire);
                if n == last {
                    std::hint::spin_loop();
                    continue;
                }
                if n == STOP {
                    return;
                }
                lines.pong.store(n, Ordering::Release);
                last = n;
            }
        }
    });
    let pair = lines(&region);
    let mut n = 0;
    c.benchmark_group("pipe_round_trip_u64")
        .bench_function("shm_spin_floor", |b| {
            b.iter(|| {
                n += 1;
                pair.ping.store(n, Ordering::Release);
                while pair.pong.load(Ordering::Acquire) != n {
                    std::hint::spin_loop();
                }
            })
        });
    pair.ping.store(STOP, Ordering::Release);
    child.join().expect("the echoing child");
}

/// Seconds per iteration of `id`, this run's median.
fn median(id: &str) -> Option<f64> {
    common::median(id)
}

/// `PASS` or `MISS` for a measured value against its target.
fn verdict(value: Option<f64>, ok: impl Fn(f64) -> bool) -> &'static str {
    match value {
        Some(v) if ok(v) => "PASS",
        Some(_) => "MISS",
        None => "n/a",
    }
}

/// A value in a column of `width`, or a dash.
fn cell(value: Option<f64>, width: usize, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:>width$.decimals$}"),
        None => format!("{:>width$}", "-"),
    }
}

fn report() {
    unpin();
    let python = common::python("messaging.py", "200000");
    let py = |name: &str| -> Option<f64> {
        python
            .as_ref()
            .ok()?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    };
    // Messages per second, one way.
    let rate =
        |payload: &str, id: &str| median(&format!("one_way_{payload}/{id}")).map(|s| 1.0 / s);
    // Microseconds per round trip.
    let rt = |payload: &str, id: &str| {
        median(&format!("pipe_round_trip_{payload}/{id}")).map(|s| s * 1e6)
    };

    println!("\nmproc messaging bench: medians of this run (Python: means of its script)");
    if let Err(why) = &python {
        println!("Python skipped: {why}");
    }

    let peers = ["ipc_channel", "raw_pipe", "crossbeam_threads"];
    println!(
        "\none way, producer -> consumer      {:>12} {:>12} {:>12} {:>12} {:>12}",
        "mproc Queue", "ipc-channel", "raw pipe", "crossbeam*", "Python Queue"
    );
    for (payload, label, per_msg) in [
        ("u64", "u64, M msg/s", 1e-6),
        ("1KiB", "1 KiB, M msg/s", 1e-6),
        ("1MiB", "1 MiB, GB/s", (1u64 << 20) as f64 * 1e-9),
    ] {
        let scale = |r: Option<f64>| r.map(|r| r * per_msg);
        let mut line = format!(
            "{label:<34} {}",
            cell(scale(rate(payload, "mproc_queue")), 12, 2)
        );
        for peer in peers {
            line += &format!(" {}", cell(scale(rate(payload, peer)), 12, 2));
        }
        line += &format!(
            " {}",
            cell(scale(py(&format!("python_queue_{payload}"))), 12, 3)
        );
        println!("{line}");
    }
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "  mproc Queue is x times faster",
        "",
        "ipc-channel",
        "raw pipe",
        "crossbeam*",
        "Python Queue"
    );
    for payload in ["u64", "1KiB", "1MiB"] {
        let mine = rate(payload, "mproc_queue");
        let ratio = |peer: Option<f64>| mine.zip(peer).map(|(m, p)| m / p);
        let mut line = format!("{:<34} {:>12}", format!("  {payload}"), "");
        for peer in peers {
            line += &format!(" {}", cell(ratio(rate(payload, peer)), 11, 2) + "x");
        }
        line += &format!(
            " {}",
            cell(ratio(py(&format!("python_queue_{payload}"))), 11, 1) + "x"
        );
        println!("{line}");
    }
    println!("  * crossbeam: threads of one process; every other column: processes");

    let rt_peers = ["ipc_channel", "raw_socketpair", "raw_pipe"];
    println!(
        "\nround trip, us                     {:>12} {:>12} {:>12} {:>12} {:>12}",
        "mproc Pipe", "ipc-channel", "socketpair", "raw pipe", "Python Pipe"
    );
    for payload in ["u64", "1KiB"] {
        let mut line = format!(
            "{:<34} {}",
            format!("{payload}"),
            cell(rt(payload, "mproc_pipe"), 12, 2)
        );
        for peer in rt_peers {
            line += &format!(" {}", cell(rt(payload, peer), 12, 2));
        }
        let p = py(&format!("python_pipe_rt_{payload}")).map(|s| s * 1e6);
        line += &format!(" {}", cell(p, 12, 2));
        println!("{line}");
    }
    if let Some(floor) = rt("u64", "shm_spin_floor") {
        println!(
            "{:<34} {floor:>12.2}  (two cache lines bounced, spinning: this machine's floor)",
            "floor"
        );
    }
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "  mproc Pipe is x times faster",
        "",
        "ipc-channel",
        "socketpair",
        "raw pipe",
        "Python Pipe"
    );
    for payload in ["u64", "1KiB"] {
        let mine = rt(payload, "mproc_pipe");
        let ratio = |peer: Option<f64>| mine.zip(peer).map(|(m, p)| p / m);
        let mut line = format!("{:<34} {:>12}", format!("  {payload}"), "");
        for peer in rt_peers {
            line += &format!(" {}", cell(ratio(rt(payload, peer)), 11, 2) + "x");
        }
        let p = py(&format!("python_pipe_rt_{payload}")).map(|s| s * 1e6);
        line += &format!(" {}", cell(ratio(p), 11, 1) + "x");
        println!("{line}");
    }

    println!(
        "\n{:<52} {:>12} {:>12} {:>8}",
        "target", "measured", "wanted", "verdict"
    );
    let row =
        |name: &str, value: Option<f64>, shown: String, wanted: &str, ok: &dyn Fn(f64) -> bool| {
            println!(
                "{name:<52} {shown:>12} {wanted:>12} {:>8}",
                verdict(value, ok)
            );
        };
    let kib_ratio = rate("1KiB", "mproc_queue")
        .zip(py("python_queue_1KiB"))
        .map(|(m, p)| m / p);
    row(
        "1 KiB one way: mproc Queue / Python Queue",
        kib_ratio,
        cell(kib_ratio, 11, 1) + "x",
        ">= 50x",
        &|r| r >= 50.0,
    );
    let gbs = rate("1MiB", "mproc_queue").map(|r| r * (1u64 << 20) as f64 * 1e-9);
    row(
        "1 MiB one way: mproc Queue, end to end",
        gbs,
        cell(gbs, 7, 2) + " GB/s",
        ">= 5 GB/s",
        &|g| g >= 5.0,
    );
    for payload in ["u64", "1KiB"] {
        let us = rt(payload, "mproc_pipe");
        row(
            &format!("{payload} round trip: mproc Pipe median, across cores"),
            us,
            cell(us, 9, 2) + " us",
            "<= 2 us",
            &|t| t <= 2.0,
        );
        let p = py(&format!("python_pipe_rt_{payload}")).map(|s| s * 1e6);
        let x = us.zip(p).map(|(m, p)| p / m);
        row(
            &format!("{payload} round trip: Python Pipe time / mproc Pipe time"),
            x,
            cell(x, 11, 1) + "x",
            ">= 25x",
            &|r| r >= 25.0,
        );
    }
    if !*PINNED.get_or_init(|| false) {
        println!("(one CPU: both sides shared it, nothing crossed cores)");
    }
}

fn main() {
    pin(0);
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let u64_load = Workload::u64();
    let kib = Workload::bytes("1KiB", 1 << 10, Throughput::Elements(1), 4096);
    let mib = Workload::bytes("1MiB", 1 << 20, Throughput::Bytes(1 << 20), 16);
    one_way::<u64, u64>(&mut c, &u64_load);
    one_way::<Vec<u8>, ByteBuf>(&mut c, &kib);
    one_way::<Vec<u8>, ByteBuf>(&mut c, &mib);
    round_trip::<u64, u64>(&mut c, &u64_load);
    shm_spin_floor(&mut c);
    round_trip::<Vec<u8>, ByteBuf>(&mut c, &kib);
    c.final_summary();
    // `--profile-time` runs the routines without measuring them: there is
    // nothing to report.
    if !std::env::args().any(|arg| arg == "--profile-time") {
        report();
    }
}
