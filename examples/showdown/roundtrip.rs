//! Blocking round trips: the parent sends a `u64`, an echoing child (or
//! thread) blocking in its receive sends it back, the parent blocks in its
//! receive for the echo.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_utils::CachePadded;
use ipc_channel::ipc;
use mproc::{PodQueue, Region, pipe, spsc};
use rustix::thread::futex;
use static_assertions::{assert_eq_align, assert_eq_size};

use crate::case::{Case, Sample, Unit, Workload};
use crate::crew::{STOP, fork};

pub fn workload() -> Workload {
    Workload::new("roundtrip/u64", "blocking round trip, u64", Unit::Latency)
}

/// Times `n` round trips after a warm-up of a thousand.
fn trips(n: u64, mut trip: impl FnMut(u64)) -> Sample {
    for v in 0..1000 {
        trip(v);
    }
    let start = Instant::now();
    for v in 0..n {
        trip(black_box(v));
    }
    Sample {
        ops: n,
        elapsed: start.elapsed(),
    }
}

fn pod_queue(n: u64) -> Sample {
    let (ping, pong) = (
        PodQueue::<u64>::new(16).expect("a queue"),
        PodQueue::<u64>::new(16).expect("a queue"),
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
    let sample = trips(n, |v| {
        ping.put(v);
        black_box(pong.get());
    });
    ping.put(STOP);
    echo.join().expect("the echo");
    sample
}

fn mproc_pipe(n: u64) -> Sample {
    let (here, there) = pipe::<u64>().expect("a pipe");
    let mut echo = fork(move || {
        while let Ok(v) = there.recv() {
            if v == STOP {
                return;
            }
            there.send(v).expect("the parent is there");
        }
    });
    let sample = trips(n, |v| {
        here.send(v).expect("the child is there");
        black_box(here.recv().expect("the echo"));
    });
    here.send(STOP).expect("the child is there");
    echo.join().expect("the echo");
    sample
}

fn mproc_spsc(n: u64) -> Sample {
    let (mut ping_tx, mut ping_rx) = spsc::channel::<u64>(16).expect("a channel");
    let (mut pong_tx, mut pong_rx) = spsc::channel::<u64>(16).expect("a channel");
    let mut echo = fork(move || {
        loop {
            let v = ping_rx.pop();
            if v == STOP {
                return;
            }
            pong_tx.push(v);
        }
    });
    let sample = trips(n, |v| {
        ping_tx.push(v);
        black_box(pong_rx.pop());
    });
    ping_tx.push(STOP);
    echo.join().expect("the echo");
    sample
}

fn ipc_channel(n: u64) -> Sample {
    let (down_tx, down_rx) = ipc::channel::<u64>().expect("an ipc channel");
    let (up_tx, up_rx) = ipc::channel::<u64>().expect("an ipc channel");
    let mut echo = fork(move || {
        while let Ok(v) = down_rx.recv() {
            if v == STOP {
                return;
            }
            up_tx.send(v).expect("the parent is there");
        }
    });
    let sample = trips(n, |v| {
        down_tx.send(v).expect("the child is there");
        black_box(up_rx.recv().expect("the echo"));
    });
    down_tx.send(STOP).expect("the child is there");
    echo.join().expect("the echo");
    sample
}

/// Reads exactly 8 bytes: a `u64` (the kernel's stream, no framing needed
/// for a fixed size).
fn read_u64(fd: &std::os::fd::OwnedFd) -> Option<u64> {
    let mut bytes = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match rustix::io::read(fd, &mut bytes[got..]) {
            Ok(0) => return None,
            Ok(k) => got += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => panic!("read: {errno}"),
        }
    }
    Some(u64::from_ne_bytes(bytes))
}

fn write_u64(fd: &std::os::fd::OwnedFd, v: u64) {
    let n = rustix::io::write(fd, &v.to_ne_bytes()).expect("write");
    assert_eq!(n, 8, "8 bytes fit in any pipe at once");
}

/// Round trips over two descriptors per side: `(parent_in, parent_out)`
/// and `(child_in, child_out)`.
fn raw_fds(
    n: u64,
    (parent_in, parent_out): (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
    (child_in, child_out): (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
) -> Sample {
    let mut echo = fork(move || {
        while let Some(v) = read_u64(&child_in) {
            if v == STOP {
                return;
            }
            write_u64(&child_out, v);
        }
    });
    let sample = trips(n, |v| {
        write_u64(&parent_out, v);
        black_box(read_u64(&parent_in).expect("the echo"));
    });
    write_u64(&parent_out, STOP);
    echo.join().expect("the echo");
    sample
}

fn raw_pipe(n: u64) -> Sample {
    let flags = rustix::pipe::PipeFlags::CLOEXEC;
    let (down_read, down_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
    let (up_read, up_write) = rustix::pipe::pipe_with(flags).expect("a pipe");
    raw_fds(n, (up_read, down_write), (down_read, up_write))
}

fn unix_socket(n: u64) -> Sample {
    let (here, there) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("a socket pair");
    let (here_out, there_out) = (
        here.try_clone().expect("dup"),
        there.try_clone().expect("dup"),
    );
    raw_fds(n, (here, here_out), (there, there_out))
}

/// Two futex words in shared memory, one per direction, on their own
/// cache lines.
#[repr(C)]
struct FutexPair {
    ping: CachePadded<AtomicU32>,
    pong: CachePadded<AtomicU32>,
}

assert_eq_size!(FutexPair, [u8; 256]);
assert_eq_align!(FutexPair, CachePadded<u8>);

/// The words of a zeroed anonymous shared region.
fn futex_pair(region: &Region) -> &FutexPair {
    // SAFETY: the region is page-aligned, at least `size_of::<FutexPair>()`
    // long and zeroed (two zero atomics, a valid `FutexPair`); the reference
    // lives no longer than the borrow of the region, mapped while borrowed.
    unsafe { region.as_ptr().cast::<FutexPair>().as_ref() }
}

/// Waits until `word` no longer holds `seen`: a `FUTEX_WAIT` (shared, not
/// private: the other side is another process) whenever it still does.
fn futex_wait_change(word: &AtomicU32, seen: u32) -> u32 {
    loop {
        // Acquire: pairs with the Release store of the other side.
        let now = word.load(Ordering::Acquire);
        if now != seen {
            return now;
        }
        // EAGAIN (the word changed) and EINTR both mean: look again.
        let _ = futex::wait(word, futex::Flags::empty(), seen, None);
    }
}

/// Stores `v` and wakes the other side (always: a raw futex has no waiter
/// count, every hand-off is a syscall on each side).
fn futex_set(word: &AtomicU32, v: u32) {
    // Release: pairs with the Acquire load in `futex_wait_change`.
    word.store(v, Ordering::Release);
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// Ping-pong of a counter through two futex words, both sides sleeping in
/// the kernel between messages: the floor for a blocking hand-off.
fn raw_futex(n: u64) -> Sample {
    let region = Arc::new(Region::anonymous(size_of::<FutexPair>()).expect("a region"));
    let mut echo = fork({
        let region = region.clone();
        move || {
            let words = futex_pair(&region);
            let mut seen = 0;
            loop {
                seen = futex_wait_change(&words.ping, seen);
                if seen == u32::MAX {
                    return;
                }
                futex_set(&words.pong, seen);
            }
        }
    });
    let words = futex_pair(&region);
    // Counts 1, 2, ... wrapping below u32::MAX, which means "stop".
    let mut count = 0u32;
    let sample = trips(n, |_| {
        count = count % (u32::MAX - 1) + 1;
        futex_set(&words.ping, count);
        while futex_wait_change(&words.pong, count.wrapping_sub(1)) != count {}
    });
    futex_set(&words.ping, u32::MAX);
    echo.join().expect("the echo");
    sample
}

/// Two cache lines bounced between processes, both sides spinning: not a
/// channel but the floor a round trip across cores costs on this machine.
fn spin_floor(n: u64) -> Sample {
    #[repr(C)]
    struct Lines {
        ping: CachePadded<AtomicU64>,
        pong: CachePadded<AtomicU64>,
    }
    assert_eq_size!(Lines, [u8; 256]);
    let region = Arc::new(Region::anonymous(size_of::<Lines>()).expect("a region"));
    let lines = |region: &Region| -> &Lines {
        // SAFETY: as `futex_pair`: page-aligned, long enough, zeroed (two
        // zero atomics), borrowed no longer than the region.
        unsafe { region.as_ptr().cast::<Lines>().as_ref() }
    };
    let mut echo = fork({
        let region = region.clone();
        move || {
            let lines = lines(&region);
            let mut last = 0;
            loop {
                // Acquire/Release: the orderings a real hand-off would use.
                let v = lines.ping.load(Ordering::Acquire);
                if v == last {
                    std::hint::spin_loop();
                    continue;
                }
                if v == STOP {
                    return;
                }
                lines.pong.store(v, Ordering::Release);
                last = v;
            }
        }
    });
    let pair = lines(&region);
    let mut count = 0;
    let sample = trips(n, |_| {
        count += 1;
        pair.ping.store(count, Ordering::Release);
        while pair.pong.load(Ordering::Acquire) != count {
            std::hint::spin_loop();
        }
    });
    pair.ping.store(STOP, Ordering::Release);
    echo.join().expect("the echo");
    sample
}

fn crossbeam_threads(n: u64) -> Sample {
    let (down_tx, down_rx) = crossbeam_channel::bounded::<u64>(16);
    let (up_tx, up_rx) = crossbeam_channel::bounded::<u64>(16);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = down_rx.recv() {
            if v == STOP {
                return;
            }
            up_tx.send(v).expect("the sender is there");
        }
    });
    let sample = trips(n, |v| {
        down_tx.send(v).expect("the echo is there");
        black_box(up_rx.recv().expect("the echo"));
    });
    down_tx.send(STOP).expect("the echo is there");
    echo.join().expect("the echo");
    sample
}

fn std_mpsc_threads(n: u64) -> Sample {
    let (down_tx, down_rx) = std::sync::mpsc::sync_channel::<u64>(16);
    let (up_tx, up_rx) = std::sync::mpsc::sync_channel::<u64>(16);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = down_rx.recv() {
            if v == STOP {
                return;
            }
            up_tx.send(v).expect("the sender is there");
        }
    });
    let sample = trips(n, |v| {
        down_tx.send(v).expect("the echo is there");
        black_box(up_rx.recv().expect("the echo"));
    });
    down_tx.send(STOP).expect("the echo is there");
    echo.join().expect("the echo");
    sample
}

pub fn cases() -> Vec<Case> {
    let w = workload();
    vec![
        Case::new(&w, "mproc PodQueue pair", true, pod_queue),
        Case::new(&w, "mproc Pipe", true, mproc_pipe),
        Case::new(&w, "mproc spsc pair", true, mproc_spsc),
        Case::new(&w, "ipc-channel", false, ipc_channel),
        Case::new(&w, "raw pipe pair", false, raw_pipe),
        Case::new(&w, "raw Unix socket", false, unix_socket),
        Case::new(&w, "raw futex", false, raw_futex),
        Case::new(&w, "shared-memory spin (floor)", false, spin_floor),
        Case::new(&w, "crossbeam channel (threads)", false, crossbeam_threads),
        Case::new(&w, "std mpsc (threads)", false, std_mpsc_threads),
    ]
}
