//! `Queue<T>` of any serde type and size, across real forked processes:
//! sizes from 0 bytes to 64 MiB in one queue, several producers and
//! consumers, timeouts, close, and every error with the value handed back.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use mproc::mproc_core::frames::FrameRing;
use mproc::mproc_core::{OwnerId, TypeFingerprint};
use mproc::mproc_os::futex::Futex;
use mproc::mproc_os::joinable::TooManyDone;
use mproc::{GetError, JoinableQueue, PutError, Queue, Region, SimpleQueue};
use serde::{Deserialize, Serialize, Serializer};

const MIB: usize = 1 << 20;

/// A second mapping of the memfd behind `region`.
fn remap(region: &Region) -> Region {
    let fd = region
        .fd()
        .expect("a memfd region")
        .try_clone_to_owned()
        .unwrap();
    Region::from_fd(fd).unwrap()
}

/// The payload sizes of one producer, small and large interleaved.
fn sizes() -> Vec<usize> {
    let large = [5, 6, 1000, 64 << 10, 300 << 10, MIB, 16 * MIB, 64 * MIB];
    large.iter().flat_map(|&n| [n, 3, 17]).collect()
}

/// Message `index` of `producer`, `len` bytes long (at least its 5-byte
/// tag): the tag, then a pattern that differs between messages.
fn payload(producer: u8, index: usize, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len.max(5));
    bytes.push(producer);
    bytes.extend_from_slice(&(index as u32).to_le_bytes());
    let block: Vec<u8> = (0..251u8)
        .map(|i| i.wrapping_mul(31) ^ producer ^ (index as u8).wrapping_mul(7))
        .collect();
    while bytes.len() < len {
        let n = (len - bytes.len()).min(block.len());
        bytes.extend_from_slice(&block[..n]);
    }
    bytes
}

/// Who sent `bytes`, its index, and whether it is intact.
fn check(bytes: &[u8]) -> (u8, u32, bool) {
    let producer = bytes[0];
    let index = u32::from_le_bytes(bytes[1..5].try_into().unwrap());
    let intact = bytes == payload(producer, index as usize, bytes.len());
    (producer, index, intact)
}

/// Two producers and two consumers, each a process, move messages of
/// 5 bytes to 64 MiB, and empty ones, through one queue with a 256 KiB
/// buffer: every message arrives once, intact.
#[test]
fn any_size_many_processes() {
    let queue = Queue::<Vec<u8>>::new(4).unwrap();
    let producers: Vec<_> = (1..=2u8)
        .map(|producer| {
            let queue = queue.clone();
            common::spawn(move || {
                for (index, &len) in sizes().iter().enumerate() {
                    queue.put(payload(producer, index, len)).unwrap();
                    queue.put(Vec::new()).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            common::spawn(move || {
                // (producer, index, length, intact), and the empty ones.
                let (mut seen, mut empty) = (Vec::new(), 0);
                loop {
                    match queue.get_timeout(common::WATCHDOG) {
                        Ok(bytes) if bytes.is_empty() => empty += 1,
                        Ok(bytes) => {
                            let (producer, index, intact) = check(&bytes);
                            seen.push((producer, index, bytes.len(), intact));
                        }
                        Err(GetError::Closed) => return (seen, empty),
                        Err(other) => panic!("get: {other}"),
                    }
                }
            })
        })
        .collect();
    for mut producer in producers {
        common::join(&mut producer);
    }
    queue.close();
    let (mut all, mut empty) = (BTreeMap::new(), 0);
    for mut consumer in consumers {
        let (seen, n) = common::join(&mut consumer);
        empty += n;
        for (producer, index, len, intact) in seen {
            assert!(
                intact,
                "message {producer}/{index} of {len} bytes corrupted"
            );
            assert!(
                all.insert((producer, index), len).is_none(),
                "message {producer}/{index} received twice"
            );
        }
    }
    let expected: BTreeMap<_, _> = (1..=2u8)
        .flat_map(|p| {
            sizes()
                .into_iter()
                .enumerate()
                .map(move |(i, n)| ((p, i as u32), n.max(5)))
        })
        .collect();
    assert_eq!(all, expected);
    assert_eq!(empty, 2 * sizes().len());
}

/// A record with strings, numbers and a long list of numbers: postcard's
/// element-by-element path, streamed through a buffer smaller than it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    kind: Kind,
    values: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Small,
    Large { scale: f64 },
}

#[test]
fn structs_stream_through_a_small_buffer() {
    let queue = Queue::<Record>::with_buffer(2, 4096).unwrap();
    let records: Vec<Record> = (0..6u32)
        .map(|n| Record {
            name: format!("record {n}"),
            kind: if n % 2 == 0 {
                Kind::Small
            } else {
                Kind::Large {
                    scale: f64::from(n),
                }
            },
            values: (0..n * 10_000).collect(),
        })
        .collect();
    let mut producer = {
        let (queue, records) = (queue.clone(), records.clone());
        common::spawn(move || {
            for record in records {
                queue.put(record).unwrap();
            }
        })
    };
    let mut consumer = {
        let queue = queue.clone();
        common::spawn(move || {
            (0..6)
                .map(|_| queue.get_timeout(common::WATCHDOG).unwrap())
                .collect::<Vec<Record>>()
        })
    };
    common::join(&mut producer);
    assert_eq!(common::join(&mut consumer), records);
}

/// Every verb's error, with the value handed back intact.
#[test]
fn errors_hand_the_value_back() {
    let queue = Queue::<String>::new(1).unwrap();
    assert_eq!(queue.try_get(), Err(GetError::Empty));
    assert_eq!(
        queue.get_timeout(Duration::from_millis(20)),
        Err(GetError::Empty)
    );
    queue.put("first".to_owned()).unwrap();
    assert!(queue.is_full());
    match queue.try_put("second".to_owned()) {
        Err(PutError::Full(value)) => assert_eq!(value, "second"),
        other => panic!("expected Full, got {other:?}"),
    }
    match queue.put_timeout("third".to_owned(), Duration::from_millis(20)) {
        Err(PutError::Full(value)) => assert_eq!(value, "third"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get().unwrap(), "first");
    assert!(queue.is_empty());
}

/// A message longer than 4 GiB - 1 bytes is refused before anything is
/// written (the vector is never touched: the allocator maps it lazily).
#[test]
fn too_large() {
    let queue = Queue::<Vec<u8>>::new(1).unwrap();
    let huge = vec![0u8; (u32::MAX as usize) + 1];
    match queue.put(huge) {
        Err(PutError::TooLarge(value)) => assert_eq!(value.len(), u32::MAX as usize + 1),
        other => panic!(
            "expected TooLarge, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
    queue.put(vec![1, 2, 3]).unwrap();
    assert_eq!(queue.get().unwrap(), [1, 2, 3]);
}

/// A value whose `Serialize` fails.
#[derive(Debug, PartialEq, Deserialize)]
struct Unencodable(u32);

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be encoded"))
    }
}

#[test]
fn encode_error() {
    let queue = Queue::<Unencodable>::new(2).unwrap();
    match queue.put(Unencodable(7)) {
        Err(PutError::Encode(value, error)) => {
            assert_eq!(value, Unencodable(7));
            assert!(error.postcard().is_some(), "{error}");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert!(queue.is_empty());
}

/// A message that does not decode as the queue's type is taken and
/// reported; the next message is unaffected.
#[test]
fn decode_error_loses_nothing_else() {
    let size = Queue::<String>::region_size(4096).unwrap();
    let region = Region::memfd("decode", size).unwrap();
    let queue = Queue::<String>::create_in(remap(&region), 4).unwrap();
    // A peer that writes frames by hand, bypassing the encoder: bytes that
    // are not a string, then a proper one.
    // SAFETY: the region is mapped for its length while `region` lives.
    let ring = unsafe {
        FrameRing::attach(
            region.as_ptr(),
            region.len(),
            TypeFingerprint::of::<String>(),
        )
    }
    .unwrap();
    let me = OwnerId::new(1).unwrap();
    for frame in [&[0xff, 0xff, 0xff][..], &[2, 0xc3, 0x28][..], b"\x02ok"] {
        let mut writer = ring
            .begin_write(&Futex, me, frame.len() as u64, None)
            .unwrap();
        writer.write(frame, None).unwrap();
        writer.finish().unwrap();
    }
    assert!(
        matches!(queue.get(), Err(GetError::Decode(_))),
        "bad varint"
    );
    assert!(matches!(queue.get(), Err(GetError::Decode(_))), "bad UTF-8");
    assert_eq!(queue.get().unwrap(), "ok");
    assert!(queue.is_empty());
}

/// A put that times out in the middle of a message longer than the buffer
/// hands the value back, and no reader ever sees a partial message.
#[test]
fn timeout_mid_message_cuts_it() {
    let queue = Queue::<Vec<u8>>::with_buffer(4, 4096).unwrap();
    let long = payload(1, 0, 100_000);
    match queue.put_timeout(long.clone(), Duration::from_millis(50)) {
        Err(PutError::Full(value)) => assert_eq!(value, long),
        other => panic!("expected Full, got {:?}", other.map(|_| ())),
    }
    let mut consumer = {
        let queue = queue.clone();
        common::spawn(move || queue.get_timeout(common::WATCHDOG).unwrap())
    };
    queue.put(vec![42; 10]).unwrap();
    assert_eq!(common::join(&mut consumer), vec![42; 10]);
    assert!(queue.is_empty());
}

/// Close: a consumer blocked in `get` in another process is woken; what
/// was put before the close is drained first; later puts fail with the
/// value.
#[test]
fn close_wakes_and_drains() {
    let queue = Queue::<u64>::new(8).unwrap();
    let mut consumer = {
        let queue = queue.clone();
        common::spawn(move || {
            let mut got = Vec::new();
            loop {
                match queue.get() {
                    Ok(n) => got.push(n),
                    Err(GetError::Closed) => return got,
                    Err(other) => panic!("get: {other}"),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    for n in 1..=3 {
        queue.put(n).unwrap();
    }
    queue.close();
    assert!(queue.is_closed());
    match queue.put(4) {
        Err(PutError::Closed(4)) => {}
        other => panic!("expected Closed(4), got {other:?}"),
    }
    assert_eq!(common::join(&mut consumer), [1, 2, 3]);
    assert_eq!(queue.try_get(), Err(GetError::Closed));
}

/// A producer blocked on a full queue is woken by close and gets its value
/// back.
#[test]
fn close_wakes_a_blocked_producer() {
    let queue = Queue::<u64>::new(1).unwrap();
    queue.put(1).unwrap();
    let mut producer = {
        let queue = queue.clone();
        common::spawn(move || match queue.put(2) {
            Err(PutError::Closed(value)) => value,
            other => panic!("expected Closed, got {other:?}"),
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    queue.close();
    assert_eq!(common::join(&mut producer), 2);
    assert_eq!(queue.get().unwrap(), 1);
    assert_eq!(queue.get(), Err(GetError::Closed));
}

/// A queue attached from a named region by its type; another type is
/// refused.
#[test]
fn attach_checks_the_type() {
    let size = Queue::<String>::region_size(1024).unwrap();
    let region = Region::memfd("typed", size).unwrap();
    let queue = Queue::<String>::create_in(remap(&region), 2).unwrap();
    queue.put("shared".to_owned()).unwrap();
    assert!(Queue::<Vec<u8>>::attach(remap(&region)).is_err());
    let attached = Queue::<String>::attach(region).unwrap();
    assert_eq!(attached.get().unwrap(), "shared");
}

/// Python's JoinableQueue pattern: two worker processes get jobs and mark
/// each done; the parent's `join` returns only once every job is handled.
#[test]
fn joinable_queue_join_waits_for_every_task() {
    let jobs = JoinableQueue::<u64>::new(4).unwrap();
    let handled = mproc::Value::new(0u64).unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (jobs, handled) = (jobs.clone(), handled.clone());
            common::spawn(move || {
                loop {
                    match jobs.get() {
                        Ok(n) => {
                            std::thread::sleep(Duration::from_millis(1));
                            *handled.lock() += n;
                            jobs.task_done().unwrap();
                        }
                        Err(GetError::Closed) => return,
                        Err(other) => panic!("get: {other}"),
                    }
                }
            })
        })
        .collect();
    for n in 1..=50 {
        jobs.put(n).unwrap();
    }
    jobs.join_timeout(common::WATCHDOG).unwrap();
    // Every task was marked done after its work was recorded.
    assert_eq!(handled.get(), (1..=50).sum::<u64>());
    assert_eq!(jobs.unfinished(), 0);
    assert!(matches!(jobs.task_done(), Err(TooManyDone)));
    jobs.close();
    for mut worker in workers {
        common::join(&mut worker);
    }
}

/// `join` times out while a task is unfinished; a put that fails is not
/// counted.
#[test]
fn joinable_queue_counts_only_what_was_put() {
    let jobs = JoinableQueue::<String>::new(1).unwrap();
    jobs.put("a".to_owned()).unwrap();
    assert!(matches!(
        jobs.try_put("b".to_owned()),
        Err(PutError::Full(_))
    ));
    assert_eq!(jobs.unfinished(), 1);
    assert!(jobs.join_timeout(Duration::from_millis(20)).is_err());
    let mut worker = {
        let jobs = jobs.clone();
        common::spawn(move || {
            let job = jobs.get().unwrap();
            jobs.task_done().unwrap();
            job
        })
    };
    jobs.join_timeout(common::WATCHDOG).unwrap();
    assert_eq!(common::join(&mut worker), "a");
}

/// SimpleQueue between processes, closed by the producer.
#[test]
fn simple_queue() {
    let queue = SimpleQueue::<(u32, String)>::new().unwrap();
    let mut producer = {
        let queue = queue.clone();
        common::spawn(move || {
            for n in 0..100 {
                queue.put((n, n.to_string())).unwrap();
            }
            queue.close();
        })
    };
    let mut got = Vec::new();
    loop {
        match queue.get() {
            Ok(item) => got.push(item),
            Err(GetError::Closed) => break,
            Err(other) => panic!("get: {other}"),
        }
    }
    common::join(&mut producer);
    assert_eq!(
        got,
        (0..100).map(|n| (n, n.to_string())).collect::<Vec<_>>()
    );
    assert!(queue.is_empty());
}
