//! `mproc::wait` across real forked processes: a child makes one of several
//! connections or queues ready and `wait` returns exactly its index; every
//! kind of object mixed in one list; objects ready already; a timeout; a
//! peer that exits or is killed; a closed queue; an empty list; more
//! objects than `futex_waitv` takes at once; a waiter and a blocked reader
//! woken by the same message.
//!
//! The tests take turns (see [`serial`]): a child forked by one test
//! inherits every descriptor of the test process, including the pipe
//! sockets of a test running beside it, and would keep that test's peer
//! "alive" until it exits.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::WATCHDOG;
use mproc::{
    GetError, JoinableQueue, PodQueue, Queue, RecvError, SimpleQueue, Waitable, pipe, pipe_simplex,
    wait,
};

/// Runs the tests of this file one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a child waits before it makes something ready: long enough
/// that the parent is usually asleep in `wait` by then (the tests pass
/// either way).
const DELAY: Duration = Duration::from_millis(50);

/// A child sends on the second of three connections after a delay: `wait`
/// returns exactly that index, and the message is there.
#[test]
fn child_sends_on_one_of_three_connections() {
    let _turn = serial();
    let (here0, there0) = pipe::<String>().unwrap();
    let (here1, there1) = pipe::<String>().unwrap();
    let (here2, there2) = pipe::<String>().unwrap();
    let mut child = common::spawn(move || {
        std::thread::sleep(DELAY);
        there1.send("one".to_owned()).unwrap();
        // Keep every end open until the parent says goodbye, so that no
        // other connection turns ready by disconnecting.
        let bye = there1.recv_timeout(WATCHDOG).unwrap();
        drop((there0, there2));
        bye
    });
    let objects: [&dyn Waitable; 3] = [&here0, &here1, &here2];
    assert_eq!(wait(&objects, None), [1]);
    assert_eq!(here1.recv().unwrap(), "one");
    here1.send("bye".to_owned()).unwrap();
    assert_eq!(common::join(&mut child), "bye");
}

/// Every kind of waitable in one list: a child makes them ready one at a
/// time, in a shuffled order, and waits for the parent to take each before
/// the next; `wait` names each one in turn.
#[test]
fn queues_and_connections_mixed() {
    let _turn = serial();
    let (conn, peer) = pipe::<u32>().unwrap();
    let (receiver, sender) = pipe_simplex::<u32>().unwrap();
    let queue = Queue::<String>::new(4).unwrap();
    let pod = PodQueue::<u64>::new(4).unwrap();
    let joinable = JoinableQueue::<u32>::new(4).unwrap();
    let simple = SimpleQueue::<Vec<u8>>::new().unwrap();
    let ack = PodQueue::<u8>::new(1).unwrap();
    let order = [3usize, 0, 5, 2, 4, 1];
    let mut child = {
        let (queue, pod, joinable, simple, ack) = (
            queue.clone(),
            pod.clone(),
            joinable.clone(),
            simple.clone(),
            ack.clone(),
        );
        common::spawn(move || {
            for which in order {
                std::thread::sleep(DELAY);
                match which {
                    0 => peer.send(10).unwrap(),
                    1 => sender.send(11).unwrap(),
                    2 => queue.put("twelve".to_owned()).unwrap(),
                    3 => pod.put(13),
                    4 => joinable.put(14).unwrap(),
                    _ => simple.put(vec![15]).unwrap(),
                }
                ack.get_timeout(WATCHDOG).unwrap();
            }
            // The parent's ends stay connected until it has checked the
            // last one.
            drop((peer, sender));
        })
    };
    let objects: [&dyn Waitable; 6] = [&conn, &receiver, &queue, &pod, &joinable, &simple];
    for which in order {
        assert_eq!(wait(&objects, Some(WATCHDOG)), [which]);
        match which {
            0 => assert_eq!(conn.recv(), Ok(10)),
            1 => assert_eq!(receiver.recv(), Ok(11)),
            2 => assert_eq!(queue.get().unwrap(), "twelve"),
            3 => assert_eq!(pod.get(), 13),
            4 => {
                assert_eq!(joinable.get(), Ok(14));
                joinable.task_done().unwrap();
            }
            _ => assert_eq!(simple.get().unwrap(), [15]),
        }
        ack.put(1);
    }
    common::join(&mut child);
}

/// Objects that are ready already are reported at once, all of them, in
/// order; with a zero timeout too, and an object listed twice is reported
/// twice.
#[test]
fn already_ready_returns_every_ready_index() {
    let _turn = serial();
    let queue = Queue::<u8>::new(4).unwrap();
    let empty = Queue::<u8>::new(4).unwrap();
    let pod = PodQueue::<u32>::new(4).unwrap();
    let (a, b) = pipe::<u8>().unwrap();
    queue.put(1).unwrap();
    pod.put(2);
    a.send(3).unwrap();
    let objects: [&dyn Waitable; 5] = [&empty, &queue, &pod, &b, &queue];
    assert_eq!(wait(&objects, None), [1, 2, 3, 4]);
    assert_eq!(wait(&objects, Some(Duration::ZERO)), [1, 2, 3, 4]);
    // Waiting takes nothing.
    assert_eq!(queue.get(), Ok(1));
    assert_eq!(pod.get(), 2);
    assert_eq!(b.recv(), Ok(3));
    assert!(wait(&objects, Some(Duration::ZERO)).is_empty());
}

/// Nothing becomes ready: `wait` returns no index, and not before the
/// timeout.
#[test]
fn timeout_returns_empty_after_the_deadline() {
    let _turn = serial();
    let queue = Queue::<u8>::new(4).unwrap();
    let pod = PodQueue::<u8>::new(4).unwrap();
    let (_a, b) = pipe::<u8>().unwrap();
    let objects: [&dyn Waitable; 3] = [&queue, &pod, &b];
    for timeout in [Duration::from_millis(1), Duration::from_millis(150)] {
        let start = Instant::now();
        assert!(wait(&objects, Some(timeout)).is_empty());
        assert!(start.elapsed() >= timeout, "returned before the timeout");
    }
}

/// Messages sent while the parent waits with a timeout that never comes:
/// a burst from the child wakes it each time, and nothing is lost.
#[test]
fn a_stream_of_messages_wakes_every_wait() {
    let _turn = serial();
    let pod = PodQueue::<u32>::new(8).unwrap();
    let queue = Queue::<u32>::new(8).unwrap();
    let mut child = {
        let (pod, queue) = (pod.clone(), queue.clone());
        common::spawn(move || {
            for n in 0..200u32 {
                if n % 2 == 0 {
                    pod.put(n);
                } else {
                    queue.put(n).unwrap();
                }
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let objects: [&dyn Waitable; 2] = [&pod, &queue];
    let mut got = Vec::new();
    while got.len() < 200 {
        let ready = wait(&objects, Some(WATCHDOG));
        assert!(!ready.is_empty(), "timed out after {} messages", got.len());
        for index in ready {
            if index == 0 {
                got.extend(pod.try_get());
            } else {
                got.extend(queue.try_get());
            }
        }
    }
    got.sort_unstable();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    common::join(&mut child);
}

/// A peer that exits (its end dropped with it) or is killed makes its
/// connection ready, and `recv` then reports the disconnection.
#[test]
fn peer_that_exits_or_is_killed_makes_its_connection_ready() {
    let _turn = serial();
    // Exits after a delay.
    let (here, there) = pipe::<u8>().unwrap();
    let (other, other_there) = pipe::<u8>().unwrap();
    let mut child = common::spawn(move || {
        std::thread::sleep(DELAY);
        drop(there);
    });
    let objects: [&dyn Waitable; 2] = [&other, &here];
    assert_eq!(wait(&objects, Some(WATCHDOG)), [1]);
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
    common::join(&mut child);

    // Killed while the parent waits: the socket hangs up and nothing
    // touches the futex, so `wait` finds out between its sleep slices.
    let (here, there) = pipe::<u8>().unwrap();
    let (receiver, sender) = pipe_simplex::<u8>().unwrap();
    let child = common::spawn(move || {
        let _keep = (there, sender);
        std::thread::sleep(WATCHDOG);
    });
    let pid = child.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        let pid = rustix::process::Pid::from_raw(pid as i32).expect("a child's pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    });
    let objects: [&dyn Waitable; 2] = [&here, &receiver];
    // The two ends go at once, but `wait` may look between them: a
    // connection once ready stays ready, so a second wait sees both.
    let mut ready = wait(&objects, Some(WATCHDOG));
    if ready.len() < 2 {
        ready = wait(&objects, Some(WATCHDOG));
    }
    assert_eq!(ready, [0, 1]);
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
    assert_eq!(receiver.recv(), Err(RecvError::Disconnected));
    killer.join().unwrap();
    drop(child);
    drop(other_there);
}

/// A queue closed by a child is ready, and `get` reports the close; one
/// closed with a message in it is ready and hands the message out first.
#[test]
fn closed_queue_is_ready() {
    let _turn = serial();
    let queue = Queue::<u8>::new(4).unwrap();
    let simple = SimpleQueue::<u8>::new().unwrap();
    let mut child = {
        let queue = queue.clone();
        common::spawn(move || {
            std::thread::sleep(DELAY);
            queue.close();
        })
    };
    let objects: [&dyn Waitable; 2] = [&simple, &queue];
    assert_eq!(wait(&objects, Some(WATCHDOG)), [1]);
    assert_eq!(queue.get(), Err(GetError::Closed));
    common::join(&mut child);

    simple.put(9).unwrap();
    simple.close();
    assert_eq!(wait(&objects, Some(Duration::ZERO)), [0, 1]);
    assert_eq!(simple.get(), Ok(9));
    assert_eq!(wait(&objects, Some(Duration::ZERO)), [0, 1]);
    assert_eq!(simple.get(), Err(GetError::Closed));
}

/// An empty list returns no index at once, with or without a timeout
/// (nothing could ever become ready).
#[test]
fn empty_list_returns_at_once() {
    assert!(wait(&[], None).is_empty());
    assert!(wait(&[], Some(Duration::from_secs(3600))).is_empty());
}

/// More objects than `futex_waitv` takes (128): one far down the list is
/// still seen, and so is one near its start.
#[test]
fn more_objects_than_the_kernel_watches_at_once() {
    let _turn = serial();
    let queues: Vec<PodQueue<u32>> = (0..200).map(|_| PodQueue::new(1).unwrap()).collect();
    let framed: Vec<Queue<u32>> = (0..20)
        .map(|_| Queue::with_buffer(1, 16).unwrap())
        .collect();
    let mut child = {
        let (far, near, last) = (queues[190].clone(), queues[3].clone(), framed[19].clone());
        common::spawn(move || {
            std::thread::sleep(DELAY);
            far.put(190);
            // Waits until the parent took it.
            while !far.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(DELAY);
            near.put(3);
            while !near.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(DELAY);
            last.put(219).unwrap();
        })
    };
    let objects: Vec<&dyn Waitable> = queues
        .iter()
        .map(|q| q as &dyn Waitable)
        .chain(framed.iter().map(|q| q as &dyn Waitable))
        .collect();
    assert_eq!(wait(&objects, Some(WATCHDOG)), [190]);
    assert_eq!(queues[190].get(), 190);
    assert_eq!(wait(&objects, Some(WATCHDOG)), [3]);
    assert_eq!(queues[3].get(), 3);
    assert_eq!(wait(&objects, Some(WATCHDOG)), [219]);
    assert_eq!(framed[19].get(), Ok(219));
    common::join(&mut child);
}

/// A child blocked in `get` and the parent in `wait` sleep on the same
/// queue; another child puts two messages: both sleepers are woken (the
/// reader gets one, the waiter sees the other).
#[test]
fn waiter_and_blocked_reader_are_both_woken() {
    let _turn = serial();
    let queue = Queue::<u32>::new(4).unwrap();
    let pod = PodQueue::<u32>::new(4).unwrap();
    let mut reader = {
        let (queue, pod) = (queue.clone(), pod.clone());
        common::spawn(move || {
            (
                queue.get_timeout(WATCHDOG).unwrap(),
                pod.get_timeout(WATCHDOG).unwrap(),
            )
        })
    };
    let mut writer = {
        let (queue, pod) = (queue.clone(), pod.clone());
        common::spawn(move || {
            std::thread::sleep(DELAY);
            queue.put(1).unwrap();
            queue.put(2).unwrap();
            std::thread::sleep(DELAY);
            pod.put(3);
            pod.put(4);
        })
    };
    assert_eq!(wait(&[&queue], Some(WATCHDOG)), [0]);
    assert_eq!(wait(&[&pod], Some(WATCHDOG)), [0]);
    common::join(&mut writer);
    let (first, second) = common::join(&mut reader);
    assert_eq!(queue.try_get().unwrap() + first, 3);
    assert_eq!(pod.try_get().unwrap() + second, 7);
}
