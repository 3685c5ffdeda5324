//! A round trip through a pipe: the parent sends a `u64`, a forked child
//! that blocks in `recv` echoes it, the parent blocks in `recv` for the
//! echo. mproc's `pipe` against the kernel's, in one run.
//!
//! ```text
//! cargo bench --bench pipe
//! ```
//!
//! * `pipe_round_trip/mproc_pipe`: `Connection::send` then
//!   `Connection::recv` on a duplex `mproc::pipe::<u64>()`.
//! * `pipe_round_trip/raw_socketpair`: `write` then `read` of 8 bytes on a
//!   Unix stream socket pair (blocking): what Python's duplex `Pipe` uses.
//! * `pipe_round_trip/raw_pipe`: `write` then `read` of 8 bytes on two
//!   `pipe(2)`s (blocking): what Python's `Pipe(duplex=False)` uses.
//!
//! With two CPUs or more, the parent runs on CPU 0 and the child on CPU 1
//! (`sched_setaffinity`), so every round trip crosses cores. When criterion
//! is done, a table of the medians and of their ratios is printed.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use criterion::Criterion;
use mproc::{Process, pipe};
use rustix::thread::{CpuSet, sched_setaffinity};

/// What the parent sends to stop an echoing child.
const STOP: u64 = u64::MAX;

/// Whether the parent and the child get a CPU each: decided once, before
/// pinning (a pinned process counts only the CPUs it may run on).
static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Runs the caller on `cpu` if the machine has two CPUs or more.
fn pin(cpu: usize) {
    if *PINNED.get_or_init(|| mproc::cpu_count() >= 2) {
        let mut set = CpuSet::new();
        set.set(cpu);
        // Not pinned is still a valid measurement, just a noisier one.
        let _ = sched_setaffinity(None, &set);
    }
}

/// Forks a child that runs `f` on CPU 1.
fn spawn_echo(f: impl FnOnce() + Send + 'static) -> Process<()> {
    Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || {
            pin(1);
            f()
        })
        .expect("fork the echoing child")
}

/// Writes all 8 bytes of `n` to `fd`.
fn write_u64(fd: &OwnedFd, n: u64) {
    let bytes = n.to_ne_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match rustix::io::write(fd, &bytes[at..]) {
            Ok(written) => at += written,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => panic!("write: {errno}"),
        }
    }
}

/// Reads 8 bytes from `fd`; `None` at end of file.
fn read_u64(fd: &OwnedFd) -> Option<u64> {
    let mut bytes = [0u8; 8];
    let mut at = 0;
    while at < bytes.len() {
        match rustix::io::read(fd, &mut bytes[at..]) {
            Ok(0) => return None,
            Ok(read) => at += read,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => panic!("read: {errno}"),
        }
    }
    Some(u64::from_ne_bytes(bytes))
}

/// Echoes `u64`s read from `input` to `output` until [`STOP`] or the end
/// of file.
fn echo_fds(input: &OwnedFd, output: &OwnedFd) {
    while let Some(n) = read_u64(input) {
        if n == STOP {
            return;
        }
        write_u64(output, n);
    }
}

fn round_trip(c: &mut Criterion) {
    pin(0);
    let mut group = c.benchmark_group("pipe_round_trip");

    {
        let (here, there) = pipe::<u64>().expect("a pipe");
        let mut child = spawn_echo(move || {
            while let Ok(n) = there.recv() {
                if n == STOP {
                    return;
                }
                there.send(n).expect("the parent is there");
            }
        });
        let mut n = 0u64;
        group.bench_function("mproc_pipe", |b| {
            b.iter(|| {
                n += 1;
                here.send(n).unwrap();
                assert_eq!(here.recv().unwrap(), n);
            })
        });
        here.send(STOP).unwrap();
        child.join().expect("the echoing child");
    }

    {
        let (here, there) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .expect("a socket pair");
        let mut child = spawn_echo(move || echo_fds(&there, &there));
        let mut n = 0u64;
        group.bench_function("raw_socketpair", |b| {
            b.iter(|| {
                n += 1;
                write_u64(&here, n);
                assert_eq!(read_u64(&here), Some(n));
            })
        });
        write_u64(&here, STOP);
        child.join().expect("the echoing child");
    }

    {
        let flags = rustix::pipe::PipeFlags::CLOEXEC;
        let (down_read, down_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
        let (up_read, up_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
        let mut child = spawn_echo(move || echo_fds(&down_read, &up_write));
        let mut n = 0u64;
        group.bench_function("raw_pipe", |b| {
            b.iter(|| {
                n += 1;
                write_u64(&down_write, n);
                assert_eq!(read_u64(&up_read), Some(n));
            })
        });
        write_u64(&down_write, STOP);
        child.join().expect("the echoing child");
    }

    group.finish();
}

fn report() {
    let us = |id: &str| common::median(&format!("pipe_round_trip/{id}")).map(|s| s * 1e6);
    println!("\nmproc pipe bench: medians of this run, microseconds per round trip of a u64");
    println!("{:<30} {:>10}", "workload", "us");
    for (id, label) in [
        ("mproc_pipe", "mproc pipe (shared memory)"),
        ("raw_socketpair", "raw socketpair"),
        ("raw_pipe", "raw pipe(2) x 2"),
    ] {
        match us(id) {
            Some(t) => println!("{label:<30} {t:>10.2}"),
            None => println!("{label:<30} {:>10}", "not measured"),
        }
    }
    println!("\n{:<44} {:>10} {:>10}", "comparison", "value", "target");
    match us("mproc_pipe") {
        Some(m) => println!(
            "{:<44} {:>8.2}us {:>10}",
            "mproc pipe round trip", m, "<= 2us"
        ),
        None => println!("{:<44} {:>10}", "mproc pipe round trip", "not measured"),
    }
    for (id, label) in [
        ("raw_socketpair", "raw socketpair time / mproc pipe time"),
        ("raw_pipe", "raw pipe(2) time / mproc pipe time"),
    ] {
        match (us(id), us("mproc_pipe")) {
            (Some(raw), Some(m)) => println!("{label:<44} {:>9.2}x", raw / m),
            _ => println!("{label:<44} {:>10}", "not measured"),
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    round_trip(&mut c);
    c.final_summary();
    report();
}
