//! Contended producer/consumer streams: `pairs` producers and `pairs`
//! consumers move messages through one channel; the rate of the whole
//! stream, from the first send to the last receive.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use ipc_channel::ipc;
use mproc::{PodQueue, Queue};
use serde_bytes::ByteBuf;

use crate::case::{Case, Sample, Unit, Workload};
use crate::crew::{Crew, Role, share};
use crate::frame::{FrameIn, write_frame};
use crate::message::{Message, U64};

/// A payload of the stream workloads.
#[derive(Clone, Copy)]
pub struct Payload {
    pub name: &'static str,
    pub len: usize,
    /// The bound in messages of the bounded channels (Python's `maxsize`).
    pub capacity: usize,
}

pub const PAYLOADS: [Payload; 3] = [
    Payload {
        name: "u64",
        len: 8,
        capacity: 4096,
    },
    Payload {
        name: "1KiB",
        len: 1 << 10,
        capacity: 4096,
    },
    Payload {
        name: "1MiB",
        len: 1 << 20,
        capacity: 16,
    },
];

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        if self.len == 8 {
            U64.to_ne_bytes().to_vec()
        } else {
            (0..self.len).map(|i| i as u8).collect()
        }
    }
}

pub fn workload(payload: &Payload, pairs: usize) -> Workload {
    let w = Workload::new(
        format!("stream/{}/{pairs}p{pairs}c", payload.name),
        format!("stream {}, {pairs}P/{pairs}C", payload.name),
        Unit::Rate,
    );
    if payload.len >= 1 << 20 {
        w.bytes(payload.len as u64)
    } else {
        w
    }
}

/// Runs `role` on a crew (processes or threads) for a warm-up and then
/// `n` measured messages.
fn crew_sample(n: u64, threads: bool, workers: usize, role: Role) -> Sample {
    let crew = if threads {
        Crew::threads(workers, role)
    } else {
        Crew::processes(workers, role)
    };
    crew.run((n / 8).max(1));
    let elapsed = crew.run(n);
    drop(crew);
    Sample { ops: n, elapsed }
}

/// `mproc::PodQueue<u64>` between processes (the zero-copy path).
pub fn pod_queue(pairs: usize) -> Role {
    let queue = PodQueue::<u64>::new(PAYLOADS[0].capacity).expect("a queue");
    Arc::new(move |index, n| {
        if index < pairs {
            for v in 0..share(n, index, pairs) {
                queue.put(v);
            }
        } else {
            for _ in 0..share(n, index - pairs, pairs) {
                black_box(queue.get());
            }
        }
    })
}

/// `crossbeam_queue::ArrayQueue<u64>` between threads, spinning with
/// crossbeam's backoff when full or empty.
pub fn array_queue(pairs: usize) -> Role {
    crate::crew::array_queue_role(pairs, PAYLOADS[0].capacity)
}

fn mproc_queue<M: Message>(p: Payload, pairs: usize) -> Role {
    let queue = Queue::<M>::new(p.capacity).expect("a queue");
    let payload = p.bytes();
    Arc::new(move |index, n| {
        if index < pairs {
            for _ in 0..share(n, index, pairs) {
                queue.put(M::make(&payload)).expect("an open queue");
            }
        } else {
            for _ in 0..share(n, index - pairs, pairs) {
                black_box(queue.get().expect("a message"));
            }
        }
    })
}

fn crossbeam_channel<M: Message>(p: Payload, pairs: usize) -> Role {
    let (tx, rx) = crossbeam_channel::bounded::<M>(p.capacity);
    let payload = p.bytes();
    Arc::new(move |index, n| {
        if index < pairs {
            for _ in 0..share(n, index, pairs) {
                tx.send(M::make(&payload)).expect("a receiver");
            }
        } else {
            for _ in 0..share(n, index - pairs, pairs) {
                black_box(rx.recv().expect("a message"));
            }
        }
    })
}

/// One producer (worker 0), one consumer (worker 1) from here on.
fn std_mpsc<M: Message>(p: Payload) -> Role {
    let (tx, rx) = std::sync::mpsc::sync_channel::<M>(p.capacity);
    let rx = Mutex::new(rx);
    let payload = p.bytes();
    Arc::new(move |index, n| {
        if index == 0 {
            for _ in 0..n {
                tx.send(M::make(&payload)).expect("a receiver");
            }
        } else {
            let rx = rx.lock().expect("one consumer");
            for _ in 0..n {
                black_box(rx.recv().expect("a message"));
            }
        }
    })
}

fn ipc_channel<I: Message>(p: Payload) -> Role {
    let (tx, rx) = ipc::channel::<I>().expect("an ipc channel");
    // Each process has its own copy of both ends after the fork; the
    // mutexes only make the role `Sync`, nobody else takes them.
    let ends = Mutex::new((tx, rx));
    let payload = p.bytes();
    Arc::new(move |index, n| {
        let ends = ends.lock().expect("one user per process");
        if index == 0 {
            for _ in 0..n {
                ends.0.send(I::make(&payload)).expect("a receiver");
            }
        } else {
            for _ in 0..n {
                black_box(ends.1.recv().expect("a message"));
            }
        }
    })
}

/// A raw descriptor pair (a pipe, or a Unix stream socket pair): each
/// message is its length as 4 bytes then its bytes, read through a buffer.
fn raw_fd(read: std::os::fd::OwnedFd, write: std::os::fd::OwnedFd, p: Payload) -> Role {
    let input = Mutex::new((FrameIn::new(read), Vec::new()));
    let payload = p.bytes();
    Arc::new(move |index, n| {
        if index == 0 {
            for _ in 0..n {
                write_frame(&write, &payload);
            }
        } else {
            let mut input = input.lock().expect("one consumer");
            let (frames, buf) = &mut *input;
            for _ in 0..n {
                assert!(frames.recv(buf), "a frame");
                black_box(&buf);
            }
        }
    })
}

fn raw_pipe(p: Payload) -> Role {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("a pipe");
    raw_fd(read, write, p)
}

fn unix_socket(p: Payload) -> Role {
    let (read, write) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("a socket pair");
    raw_fd(read, write, p)
}

/// A case whose every measurement builds its channel with `make` and runs
/// it on a fresh crew of `2 * pairs` workers.
pub fn crew_case(
    w: &Workload,
    name: &str,
    mproc: bool,
    threads: bool,
    pairs: usize,
    make: impl Fn() -> Role + 'static,
) -> Case {
    Case::new(w, name, mproc, move |n| {
        crew_sample(n, threads, 2 * pairs, make())
    })
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for p in PAYLOADS {
        for pairs in [1usize, 2, 4] {
            let w = workload(&p, pairs);
            let bytes = p.len > 8;
            if !bytes {
                cases.push(crew_case(
                    &w,
                    "mproc PodQueue",
                    true,
                    false,
                    pairs,
                    move || pod_queue(pairs),
                ));
            }
            cases.push(if bytes {
                crew_case(&w, "mproc Queue", true, false, pairs, move || {
                    mproc_queue::<Vec<u8>>(p, pairs)
                })
            } else {
                crew_case(&w, "mproc Queue", true, false, pairs, move || {
                    mproc_queue::<u64>(p, pairs)
                })
            });
            if !bytes {
                cases.push(crew_case(
                    &w,
                    "crossbeam ArrayQueue (threads)",
                    false,
                    true,
                    pairs,
                    move || array_queue(pairs),
                ));
            }
            cases.push(if bytes {
                crew_case(
                    &w,
                    "crossbeam channel (threads)",
                    false,
                    true,
                    pairs,
                    move || crossbeam_channel::<Vec<u8>>(p, pairs),
                )
            } else {
                crew_case(
                    &w,
                    "crossbeam channel (threads)",
                    false,
                    true,
                    pairs,
                    move || crossbeam_channel::<u64>(p, pairs),
                )
            });
            if pairs != 1 {
                continue;
            }
            if bytes {
                cases.push(crew_case(
                    &w,
                    "std mpsc (threads)",
                    false,
                    true,
                    1,
                    move || std_mpsc::<Vec<u8>>(p),
                ));
                cases.push(crew_case(&w, "ipc-channel", false, false, 1, move || {
                    ipc_channel::<ByteBuf>(p)
                }));
            } else {
                cases.push(crew_case(
                    &w,
                    "std mpsc (threads)",
                    false,
                    true,
                    1,
                    move || std_mpsc::<u64>(p),
                ));
                cases.push(crew_case(&w, "ipc-channel", false, false, 1, move || {
                    ipc_channel::<u64>(p)
                }));
            }
            cases.push(crew_case(&w, "raw pipe", false, false, 1, move || {
                raw_pipe(p)
            }));
            cases.push(crew_case(
                &w,
                "raw Unix socket",
                false,
                false,
                1,
                move || unix_socket(p),
            ));
        }
    }
    cases
}
