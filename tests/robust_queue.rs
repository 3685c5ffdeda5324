//! Processes killed with `SIGKILL` at known points inside `put`, `get`,
//! `send` and `recv` of the frame-ring queues (`Queue`, and so
//! `JoinableQueue` and `SimpleQueue`, and `Pipe`): the next writer or reader
//! takes the ring's lock over and repairs the ring, a reader waiting in the
//! middle of a dead writer's message gives up on that message, at most the
//! one message in flight is lost, and the queue goes on at full capacity.
//!
//! The point of death is exact: [`Blob`] stops in the middle of being
//! encoded or decoded, in a process that asked for it, and sleeps there
//! until it is killed.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Guard, WATCHDOG, join, spawn};
use mproc::{Event, GetError, ProcessError, Queue, RecvError, Share, pipe};
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a [`Blob`] stops in a process that set [`STALL`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Encoding, after `at` bytes (in `put`/`send`, holding the writer lock).
    Encode,
    /// Decoding, after `at` bytes (in `get`/`recv`, holding the reader lock).
    Decode,
}

/// Set in a child before it puts or gets: where to stop, and the event to
/// set once stopped.
static STALL: OnceLock<(Stage, usize, Event)> = OnceLock::new();
/// Encodings of a blob so far in this process: the first one measures it,
/// the second writes it.
static ENCODINGS: AtomicUsize = AtomicUsize::new(0);

/// Bytes that travel as a sequence of `u8` (as a `Vec<u8>` would), and stop
/// where [`STALL`] says.
#[derive(Debug, PartialEq, Eq)]
struct Blob(Vec<u8>);

impl Blob {
    fn new(len: usize, seed: u8) -> Self {
        Self(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect(),
        )
    }
}

/// Sets the stall event and sleeps until killed, if `stage` and `at` are
/// where this process was asked to stop.
fn maybe_stall(stage: Stage, at: usize) {
    if let Some((want, point, event)) = STALL.get()
        && *want == stage
        && *point == at
    {
        event.set();
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let writing = ENCODINGS.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (i, byte) in self.0.iter().enumerate() {
            if writing {
                maybe_stall(Stage::Encode, i);
            }
            seq.serialize_element(byte)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut bytes = Vec::new();
                while let Some(byte) = seq.next_element::<u8>()? {
                    maybe_stall(Stage::Decode, bytes.len());
                    bytes.push(byte);
                }
                Ok(Blob(bytes))
            }
        }
        deserializer.deserialize_seq(Bytes)
    }
}

/// Forks a child that, stopping at `stage` after `at` bytes, runs `work`;
/// returns once it has stopped there.
fn stalled<T>(stage: Stage, at: usize, work: impl FnOnce() -> T + Send + 'static) -> Guard<T>
where
    T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let stopped = Event::new().unwrap();
    let child = spawn({
        let stopped = stopped.clone();
        move || {
            // Counted from this child's own first encoding.
            ENCODINGS.store(0, Ordering::Relaxed);
            let _ = STALL.set((stage, at, stopped));
            work()
        }
    });
    assert!(
        stopped.wait_timeout(WATCHDOG),
        "the child never got to its stopping point"
    );
    child
}

/// Kills `child` with SIGKILL and checks that it died of it.
fn kill<T>(mut child: Guard<T>)
where
    T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    child.kill().unwrap();
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Signaled { signal, .. }) => assert_eq!(signal, libc::SIGKILL),
        other => panic!("the child was not killed: {other:?}"),
    }
}

/// Waits (politely) until `done` holds, failing after the watchdog time.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WATCHDOG, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The queue holds exactly `maxsize` more messages and gives them back:
/// no kill cost it a place.
fn full_capacity(queue: &Queue<Blob>, maxsize: usize) {
    for n in 0..maxsize {
        assert!(
            queue.try_put(Blob::new(8, n as u8)).is_ok(),
            "the queue took only {n} of {maxsize} messages"
        );
    }
    assert!(queue.try_put(Blob::new(8, 0)).is_err());
    for n in 0..maxsize {
        assert_eq!(queue.get_timeout(WATCHDOG).unwrap(), Blob::new(8, n as u8));
    }
    assert_eq!(queue.len(), 0);
}

/// A writer killed before any byte of its message was published: the
/// message is forgotten (it no longer counts against `maxsize`), and the
/// next writer takes the lock over.
#[test]
fn writer_killed_before_publishing() {
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    let child = stalled(Stage::Encode, 10, {
        let queue = queue.clone();
        move || queue.put(Blob::new(100, 1)).is_ok()
    });
    // The message counts while its writer lives.
    assert_eq!(queue.len(), 1);
    assert!(
        queue
            .put_timeout(Blob::new(8, 2), Duration::from_millis(50))
            .is_err(),
        "a live writer's lock was taken"
    );
    kill(child);
    queue.put_timeout(Blob::new(8, 2), WATCHDOG).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get_timeout(WATCHDOG).unwrap(), Blob::new(8, 2));
    full_capacity(&queue, 4);
}

/// A writer killed in the middle of a message a reader is reading: the
/// reader, blocked in the message without a deadline, takes the writer
/// lock over, cuts the message and waits for the next one; nobody receives
/// the cut message.
#[test]
fn writer_killed_mid_message_is_cut_for_the_waiting_reader() {
    // A message of 100 000 bytes streams through a buffer of 4096.
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    let reader = spawn({
        let queue = queue.clone();
        move || queue.get().map(|blob| blob.0.len()).ok()
    });
    let writer = stalled(Stage::Encode, 30_000, {
        let queue = queue.clone();
        move || queue.put(Blob::new(100_000, 3)).is_ok()
    });
    // The reader is in the message, waiting for bytes that never come.
    std::thread::sleep(Duration::from_millis(20));
    kill(writer);
    // Nobody but the reader touches the queue until it has passed the cut.
    eventually("the reader passes the cut message", || queue.is_empty());
    queue.put_timeout(Blob::new(8, 4), WATCHDOG).unwrap();
    let mut reader = reader;
    assert_eq!(join(&mut reader), Some(8));
    full_capacity(&queue, 4);
}

/// A writer killed while holding the writer lock of a closed queue: a
/// reader waiting for the queue to drain finds the writer dead and reports
/// the queue closed.
#[test]
fn writer_killed_in_a_closed_queue() {
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    let writer = stalled(Stage::Encode, 10, {
        let queue = queue.clone();
        move || queue.put(Blob::new(100, 5)).is_ok()
    });
    queue.close();
    let mut reader = spawn({
        let queue = queue.clone();
        move || matches!(queue.get(), Err(GetError::Closed))
    });
    std::thread::sleep(Duration::from_millis(20));
    kill(writer);
    assert!(join(&mut reader), "the reader did not see the queue closed");
    assert_eq!(queue.len(), 0);
}

/// A reader killed after it read a message but before it let go of any of
/// its bytes: the message stays in the queue, whole, for the next reader.
/// The dead reader never returned it, so it is received once.
#[test]
fn reader_killed_before_releasing_leaves_the_message() {
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    queue.put(Blob::new(1_000, 6)).unwrap();
    queue.put(Blob::new(8, 7)).unwrap();
    let reader = stalled(Stage::Decode, 500, {
        let queue = queue.clone();
        move || queue.get().map(|blob| blob.0.len()).ok()
    });
    kill(reader);
    assert_eq!(queue.get_timeout(WATCHDOG).unwrap(), Blob::new(1_000, 6));
    assert_eq!(queue.get_timeout(WATCHDOG).unwrap(), Blob::new(8, 7));
    full_capacity(&queue, 4);
}

/// A reader killed in a message it had partly released (longer than the
/// buffer): the next reader skips the rest of that message, the writer
/// finishes, and the next message arrives whole.
#[test]
fn reader_killed_mid_message_is_skipped() {
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    let mut writer = spawn({
        let queue = queue.clone();
        move || queue.put(Blob::new(100_000, 8)).is_ok() && queue.put(Blob::new(8, 9)).is_ok()
    });
    let reader = stalled(Stage::Decode, 50_000, {
        let queue = queue.clone();
        move || queue.get().map(|blob| blob.0.len()).ok()
    });
    kill(reader);
    assert_eq!(queue.get_timeout(WATCHDOG).unwrap(), Blob::new(8, 9));
    assert!(join(&mut writer));
    full_capacity(&queue, 4);
}

/// A reader killed in a message whose writer is still writing it (and
/// stopped, alive): the next reader, with a timeout, takes the reader lock
/// over and skips what has come of the message, and gives up at its
/// deadline instead of waiting for the rest; once the writer is killed
/// too, the message is cut, and the next reader skips the rest of it and
/// gets the message after it.
#[test]
fn skipping_a_dead_readers_message_keeps_to_the_deadline() {
    let queue = Queue::<Blob>::with_buffer(4, 4096).unwrap();
    let reader = spawn({
        let queue = queue.clone();
        move || queue.get().map(|blob| blob.0.len()).ok()
    });
    // The writer gets this far only as the reader drains the ring.
    let writer = stalled(Stage::Encode, 60_000, {
        let queue = queue.clone();
        move || queue.put(Blob::new(100_000, 12)).is_ok()
    });
    kill(reader);
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(100)),
        Err(GetError::Empty)
    ));
    kill(writer);
    // The next reader skips the rest of the message (its writer is dead
    // now: the message is cut), then waits for the next one.
    let mut reader = spawn({
        let queue = queue.clone();
        move || queue.get().map(|blob| blob.0.len()).ok()
    });
    queue.put_timeout(Blob::new(8, 13), WATCHDOG).unwrap();
    assert_eq!(join(&mut reader), Some(8));
    full_capacity(&queue, 4);
}

/// A pipe end shared by two processes: one is killed in the middle of a
/// message, which the receiver (blocked in that message) gives up on; the
/// other still sends through the same end, and the receiver gets it.
#[test]
fn pipe_writer_killed_mid_message_while_the_end_lives_on() {
    let (receiver, sender) = pipe::<Blob>().unwrap();
    let go = Event::new().unwrap();
    let mut survivor = spawn({
        let (token, go) = (sender.token().unwrap(), go.clone());
        move || {
            let sender = token.attach().unwrap();
            go.wait_timeout(WATCHDOG) && sender.send(Blob::new(8, 10)).is_ok()
        }
    });
    let writer = stalled(Stage::Encode, 30_000, {
        let token = sender.token().unwrap();
        move || token.attach().unwrap().send(Blob::new(100_000, 11)).is_ok()
    });
    drop(sender);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        kill(writer);
        // Time for the receiver to give up on the cut message first.
        std::thread::sleep(Duration::from_millis(50));
        go.set();
    });
    assert_eq!(
        receiver.recv_timeout(WATCHDOG).unwrap(),
        Blob::new(8, 10),
        "the receiver did not get the survivor's message"
    );
    killer.join().unwrap();
    assert!(join(&mut survivor));
    // Every sender is gone now.
    assert!(matches!(
        receiver.recv_timeout(WATCHDOG),
        Err(RecvError::Disconnected)
    ));
}
