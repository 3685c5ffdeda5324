//! `pipe` and `pipe_simplex` across real forked processes: typed ping-pong
//! both ways, messages from 0 bytes to 16 MiB, raw bytes, timeouts, `poll`,
//! a peer that drops its end, is killed while the other side waits to
//! receive or to send, or is killed in the middle of a message, file
//! descriptors passed from a child, and frames that do not decode.
//!
//! The tests take turns (see [`serial`]): a child forked by one test
//! inherits every descriptor of the test process, including the pipe
//! sockets of a test running beside it, and would keep that test's peer
//! "alive" until it exits.

mod common;

use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mproc::{Event, RecvError, SendError, pipe, pipe_simplex};
use serde::{Deserialize, Serialize};

const MIB: usize = 1 << 20;

/// Runs the tests of this file one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills process `pid` with `SIGKILL` after `delay`, from another thread,
/// while the caller blocks.
fn kill_later(pid: u32, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let pid = rustix::process::Pid::from_raw(pid as i32).expect("a child's pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    })
}

/// Parks a child until it is killed (the watchdog ends it otherwise).
fn park() {
    std::thread::sleep(common::WATCHDOG);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Ball {
    Ping { round: u32, note: String },
    Pong { round: u32, seen: Vec<u32> },
}

/// Rounds of [`typed_ping_pong_both_ways`].
const ROUNDS: u32 = 200;

/// A parent and a child bat typed values back and forth; each checks what
/// it receives. (The child stops after a known number of rounds: it holds
/// a copy of the parent's end, inherited with `fork`, so it would not see
/// the parent drop its own.)
#[test]
fn typed_ping_pong_both_ways() {
    let _turn = serial();
    let (here, there) = pipe::<Ball>().unwrap();
    let mut child = common::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..ROUNDS {
            match there.recv_timeout(common::WATCHDOG) {
                Ok(Ball::Ping { round, note }) => {
                    assert_eq!(note, format!("ping {round}"));
                    seen.push(round);
                    there
                        .send(Ball::Pong {
                            round,
                            seen: seen.clone(),
                        })
                        .unwrap();
                }
                Ok(other) => panic!("child got {other:?}"),
                Err(other) => panic!("child recv: {other}"),
            }
        }
        seen.len()
    });
    for round in 0..ROUNDS {
        let note = format!("ping {round}");
        here.send(Ball::Ping { round, note }).unwrap();
        let expected: Vec<u32> = (0..=round).collect();
        assert_eq!(
            here.recv_timeout(common::WATCHDOG).unwrap(),
            Ball::Pong {
                round,
                seen: expected
            }
        );
    }
    assert_eq!(common::join(&mut child), ROUNDS as usize);
    // The child has exited: its end is gone.
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
}

/// The payload sizes sent: empty, around the 64 KiB buffer, and up to
/// 16 MiB.
fn sizes() -> Vec<usize> {
    vec![
        0,
        1,
        5,
        1000,
        65_535,
        65_536,
        65_537,
        MIB,
        3,
        16 * MIB,
        0,
        7,
    ]
}

/// `len` bytes that differ from message to message.
fn payload(index: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ index as u8)
        .collect()
}

/// Messages from 0 bytes to 16 MiB go from a child to its parent, and back
/// the other way, intact and in order.
#[test]
fn sizes_from_0_to_16_mib_both_ways() {
    let _turn = serial();
    let (here, there) = pipe::<Vec<u8>>().unwrap();
    let mut child = common::spawn(move || {
        for (index, &len) in sizes().iter().enumerate() {
            there.send(payload(index, len)).unwrap();
        }
        // And back: what the parent returns must be what was sent.
        for (index, &len) in sizes().iter().enumerate() {
            let got = there.recv_timeout(common::WATCHDOG).unwrap();
            assert_eq!(got.len(), len, "message {index}");
            assert!(got == payload(index, len), "message {index} corrupted");
        }
        sizes().len()
    });
    let mut received = Vec::new();
    for (index, &len) in sizes().iter().enumerate() {
        let got = here.recv_timeout(common::WATCHDOG).unwrap();
        assert_eq!(got.len(), len, "message {index}");
        assert!(got == payload(index, len), "message {index} corrupted");
        received.push(got);
    }
    for message in received {
        here.send(message).unwrap();
    }
    assert_eq!(common::join(&mut child), sizes().len());
}

/// Raw bytes travel as they are; `recv_bytes` of a typed message is its
/// encoding, and bytes that are an encoding receive as the value.
#[test]
fn send_bytes_and_recv_bytes() {
    let _turn = serial();
    let (here, there) = pipe::<String>().unwrap();
    let mut child = common::spawn(move || {
        there.send_bytes(b"").unwrap();
        there.send_bytes(&[1, 2, 3, 255]).unwrap();
        there.send_bytes(&vec![9; MIB]).unwrap();
        there.send("hi".to_owned()).unwrap();
        // postcard's encoding of a string: its length, then its bytes.
        there.send_bytes(b"\x05hello").unwrap();
        there.recv_bytes_timeout(common::WATCHDOG).unwrap()
    });
    assert_eq!(here.recv_bytes().unwrap(), b"");
    assert_eq!(here.recv_bytes().unwrap(), [1, 2, 3, 255]);
    assert!(here.recv_bytes().unwrap() == vec![9; MIB]);
    assert_eq!(here.recv_bytes().unwrap(), b"\x02hi");
    assert_eq!(here.recv().unwrap(), "hello");
    here.send_bytes(b"back").unwrap();
    assert_eq!(common::join(&mut child), b"back");
}

/// With the peer alive and silent, `recv_timeout` and `try_recv` find
/// nothing, `poll` says so; once a message is there `poll` says that, and
/// once the peer is gone `poll` is true and `recv` reports it.
#[test]
fn timeouts_and_poll() {
    let _turn = serial();
    let (here, there) = pipe::<u64>().unwrap();
    let go = Event::new().unwrap();
    let mut child = {
        let go = go.clone();
        common::spawn(move || {
            assert!(go.wait_timeout(common::WATCHDOG), "never told to send");
            there.send(42).unwrap();
            // Wait until the parent has looked, then leave.
            there.recv_timeout(common::WATCHDOG).unwrap()
        })
    };
    assert_eq!(
        here.recv_timeout(Duration::from_millis(20)),
        Err(RecvError::Empty)
    );
    assert_eq!(here.try_recv(), Err(RecvError::Empty));
    assert!(!here.poll(Duration::ZERO));
    assert!(!here.poll(Duration::from_millis(20)));
    go.set();
    assert!(here.poll(common::WATCHDOG));
    // Polling leaves the message where it is.
    assert!(here.poll(Duration::ZERO));
    assert_eq!(here.try_recv(), Ok(42));
    assert!(!here.poll(Duration::ZERO));
    here.send(7).unwrap();
    assert_eq!(common::join(&mut child), 7);
    assert!(here.poll(common::WATCHDOG), "the peer is gone");
    assert_eq!(here.try_recv(), Err(RecvError::Disconnected));
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
}

/// A child that drops its end, and lives on, is seen gone once what it
/// sent has been received.
#[test]
fn peer_that_drops_its_end() {
    let _turn = serial();
    let (here, there) = pipe::<String>().unwrap();
    let done = Event::new().unwrap();
    let mut child = {
        let done = done.clone();
        common::spawn(move || {
            for word in ["one", "two", "three"] {
                there.send(word.to_owned()).unwrap();
            }
            drop(there);
            // Alive, with the end dropped, until the parent has checked.
            done.wait_timeout(common::WATCHDOG)
        })
    };
    for word in ["one", "two", "three"] {
        assert_eq!(here.recv_timeout(common::WATCHDOG).unwrap(), word);
    }
    assert_eq!(
        here.recv_timeout(common::WATCHDOG),
        Err(RecvError::Disconnected)
    );
    assert!(child.is_alive(), "the child is still running");
    match here.send_timeout("late".to_owned(), common::WATCHDOG) {
        // Room in the buffer: the message is delivered to nobody.
        Ok(()) => {}
        Err(other) => panic!("send to a dropped end with room: {other}"),
    }
    done.set();
    assert!(common::join(&mut child));
}

/// A child killed with `SIGKILL` while the parent waits in `recv`: the
/// parent gets `Disconnected`, not a hang.
#[test]
fn peer_killed_while_receiving() {
    let _turn = serial();
    let (here, there) = pipe::<u32>().unwrap();
    let mut child = common::spawn(move || {
        there.send(1).unwrap();
        park();
    });
    assert_eq!(here.recv_timeout(common::WATCHDOG), Ok(1));
    let killer = kill_later(child.pid(), Duration::from_millis(100));
    assert_eq!(
        here.recv_timeout(common::WATCHDOG),
        Err(RecvError::Disconnected)
    );
    killer.join().unwrap();
    assert!(child.join_timeout(common::WATCHDOG).is_err(), "killed");
}

/// A sender waiting for room in a full pipe, and one in the middle of a
/// message longer than the buffer, whose reader is killed: each gets
/// `Disconnected` with its value back.
#[test]
fn sender_blocked_on_full_pipe_whose_reader_dies() {
    let _turn = serial();
    for long in [false, true] {
        let (rx, tx) = pipe_simplex::<Vec<u8>>().unwrap();
        let mut child = common::spawn(move || {
            let _unread = rx;
            park();
        });
        let value = if long {
            payload(1, 4 * MIB)
        } else {
            // Fill the pipe with small messages first.
            let mut sent = 0usize;
            loop {
                match tx.send_timeout(vec![1; 1000], Duration::from_millis(10)) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full(_)) => break,
                    Err(other) => panic!("filling the pipe: {other}"),
                }
            }
            assert!(sent > 10, "the pipe holds its buffer's worth");
            vec![2; 1000]
        };
        let killer = kill_later(child.pid(), Duration::from_millis(100));
        match tx.send(value.clone()) {
            Err(SendError::Disconnected(back)) => assert!(back == value, "the value came back"),
            other => panic!("expected Disconnected, got {:?}", other.map(|_| ())),
        }
        killer.join().unwrap();
        assert!(child.join_timeout(common::WATCHDOG).is_err(), "killed");
        // And every later send that has to wait says so too.
        assert!(matches!(
            tx.send(vec![3; 2 * MIB]),
            Err(SendError::Disconnected(_))
        ));
    }
}

/// A writer killed in the middle of a message longer than the buffer: the
/// reader drops the partial message and gets `Disconnected`, not a hang.
#[test]
fn writer_killed_in_the_middle_of_a_message() {
    let _turn = serial();
    let (rx, tx) = pipe_simplex::<Vec<u8>>().unwrap();
    let mut child = common::spawn(move || {
        // Longer than the buffer, and nobody reads yet: the child waits
        // in the middle of the message until it is killed.
        tx.send(vec![5; 4 * MIB]).unwrap();
        park();
    });
    // The message has started (its first part is published) ...
    assert!(rx.poll(common::WATCHDOG));
    // ... and the writer dies before finishing it.
    child.kill().unwrap();
    assert!(child.join_timeout(common::WATCHDOG).is_err(), "killed");
    assert_eq!(
        rx.recv_timeout(common::WATCHDOG),
        Err(RecvError::Disconnected)
    );
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    assert!(rx.poll(Duration::ZERO));
}

/// A child opens a file (a memfd), writes to it and passes the descriptor;
/// the parent reads the content through the descriptor it received.
#[test]
fn file_descriptor_passing() {
    let _turn = serial();
    let (here, there) = pipe::<u64>().unwrap();
    let mut child = common::spawn(move || {
        let file = rustix::fs::memfd_create("passed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let text = format!("written by {}", std::process::id());
        let written = rustix::io::write(&file, text.as_bytes()).unwrap();
        assert_eq!(written, text.len());
        there.send(text.len() as u64).unwrap();
        there.send_fd(file.as_fd()).unwrap();
        drop(file);
        // Hold on until the parent has read it: the file lives on in the
        // descriptor it received anyway.
        there.recv_timeout(common::WATCHDOG).unwrap();
        text
    });
    let len = here.recv_timeout(common::WATCHDOG).unwrap() as usize;
    let fd = here.recv_fd_timeout(common::WATCHDOG).unwrap();
    let mut read = vec![0; len + 16];
    let n = rustix::io::pread(&fd, &mut read, 0).unwrap();
    read.truncate(n);
    here.send(0).unwrap();
    let text = common::join(&mut child);
    assert_eq!(String::from_utf8(read).unwrap(), text);
    assert!(text.starts_with("written by "));
    // The child is gone: no more descriptors will come.
    assert!(matches!(
        here.recv_fd_timeout(common::WATCHDOG),
        Err(mproc::FdError::Disconnected)
    ));
}

/// A one-way pipe: a child sends, the parent receives everything, then
/// `Disconnected` once the child has exited.
#[test]
fn simplex_pipe() {
    let _turn = serial();
    let (rx, tx) = pipe_simplex::<u64>().unwrap();
    let mut child = common::spawn(move || {
        for n in 1..=10_000u64 {
            tx.send(n).unwrap();
        }
    });
    let mut total = 0;
    loop {
        match rx.recv_timeout(common::WATCHDOG) {
            Ok(n) => total += n,
            Err(RecvError::Disconnected) => break,
            Err(other) => panic!("recv: {other}"),
        }
    }
    assert_eq!(total, 10_000 * 10_001 / 2);
    common::join(&mut child);
}

/// Frames that are not a `String` (a bad length, bad UTF-8, and a length
/// that does not match a frame longer than the buffer) each fail to decode;
/// the message after them arrives intact.
#[test]
fn decode_errors_lose_nothing_else() {
    let _turn = serial();
    let (here, there) = pipe::<String>().unwrap();
    let mut child = common::spawn(move || {
        there.send_bytes(&[0xff, 0xff, 0xff]).unwrap();
        there.send_bytes(&[2, 0xc3, 0x28]).unwrap();
        let mut long = vec![3];
        long.resize(2 * MIB, b'x');
        there.send_bytes(&long).unwrap();
        there.send("ok".to_owned()).unwrap();
    });
    for what in ["bad varint", "bad UTF-8", "length mismatch"] {
        assert!(
            matches!(
                here.recv_timeout(common::WATCHDOG),
                Err(RecvError::Decode(_))
            ),
            "{what}"
        );
    }
    assert_eq!(here.recv_timeout(common::WATCHDOG).unwrap(), "ok");
    common::join(&mut child);
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
}
