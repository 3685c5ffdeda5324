//! `Pool` with real worker processes: every verb, callbacks, timeouts,
//! panics, workers killed with `SIGKILL` or calling `exit` mid-task,
//! worker recycling, an initializer, a multi-threaded parent, and nothing
//! left behind (processes, fds, shared memory).
//!
//! The test binary is multi-threaded, so the pools' fork server is this
//! program run again: `enable_test_support!` gives that run its entry
//! point. Every wait has a deadline ([`WATCHDOG`]), so a hang fails the
//! test instead of stalling CI.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{WATCHDOG, join, spawn};
use mproc::{Callbacks, Pool, PoolError, Share, StartMethod, Token, Value};

mproc::enable_test_support!();

fn square(n: u64) -> u64 {
    n * n
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_seven(n: u32) -> u32 {
    assert!(n != 7, "seven is unlucky");
    n
}

/// Kills its own worker with `SIGKILL` on 13.
fn die_on_13(n: u32) -> u32 {
    if n == 13 {
        let me = rustix::process::getpid();
        rustix::process::kill_process(me, rustix::process::Signal::KILL).unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    n
}

/// Calls `std::process::exit(3)` in its worker on 4.
fn exit_on_4(n: u32) -> u32 {
    if n == 4 {
        std::process::exit(3);
    }
    n
}

fn pool(processes: usize) -> Pool {
    Pool::new(processes).expect("start a pool")
}

/// Gets `result` within the watchdog.
fn get<R>(mut result: mproc::AsyncResult<R>) -> Result<R, PoolError> {
    match result.get_timeout(WATCHDOG) {
        Err(PoolError::Timeout) => panic!("a pool result did not arrive within the watchdog"),
        other => other,
    }
}

#[test]
fn map_keeps_order_with_any_chunksize() {
    let pool = pool(3);
    let expected: Vec<u64> = (0..1000).map(|n| n * n).collect();
    assert_eq!(
        get(pool.map_async(square, 0..1000).unwrap()).unwrap(),
        expected
    );
    for chunksize in [1, 7, 1000, 5000] {
        let result = pool
            .chunksize(chunksize)
            .map_async(square, 0..1000)
            .unwrap();
        assert_eq!(get(result).unwrap(), expected, "chunksize {chunksize}");
    }
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(pool.map(square, [12]).unwrap(), [144]);
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
enum Shape {
    Point,
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Record {
    id: u16,
    name: String,
    shape: Shape,
    tags: Vec<Option<char>>,
    extra: HashMap<String, i64>,
}

fn describe(record: Record) -> (u16, String, Option<Shape>) {
    let name = format!("{}:{}", record.name, record.tags.len());
    let shape = record.extra.len().is_multiple_of(2).then_some(record.shape);
    (record.id, name, shape)
}

#[test]
fn map_carries_every_serde_shape() {
    let pool = pool(2);
    // 37 items: chunks of Python's default size (3 here) do not divide it.
    let records: Vec<Record> = (0..37u16)
        .map(|id| Record {
            id,
            name: "é".repeat(usize::from(id % 5)),
            shape: match id % 3 {
                0 => Shape::Point,
                1 => Shape::Circle(f64::from(id) / 3.0),
                _ => Shape::Rect { w: id.into(), h: 1 },
            },
            tags: (0..id % 4)
                .map(|t| char::from_u32(0x41 + u32::from(t)).filter(|_| t != 1))
                .collect(),
            extra: (0..id % 3)
                .map(|k| (k.to_string(), -i64::from(k)))
                .collect(),
        })
        .collect();
    let expected: Vec<_> = records.iter().cloned().map(describe).collect();
    assert_eq!(
        get(pool.map_async(describe, records.clone()).unwrap()).unwrap(),
        expected
    );
    // Through an iterator that does not say its length.
    let filtered = records.clone().into_iter().filter(|r| r.id % 2 == 1);
    let odd: Vec<_> = expected
        .iter()
        .filter(|(id, ..)| id % 2 == 1)
        .cloned()
        .collect();
    assert_eq!(
        get(pool.chunksize(4).map_async(describe, filtered).unwrap()).unwrap(),
        odd
    );
}

/// An iterator whose `size_hint` claims `claimed` items while it yields
/// `actual`.
struct Liar {
    next: u64,
    actual: u64,
    claimed: usize,
}

impl Iterator for Liar {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        (self.next < self.actual).then(|| {
            self.next += 1;
            self.next
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claimed, Some(self.claimed))
    }
}

#[test]
fn an_input_that_miscounts_itself_is_an_error() {
    let pool = pool(2);
    for (actual, claimed, chunksize) in [(5, 10, 3), (5, 10, 100), (10, 5, 2), (3, 0, 1)] {
        let input = Liar {
            next: 0,
            actual,
            claimed,
        };
        let error = match pool.chunksize(chunksize).map_async(square, input) {
            Ok(result) => get(result).unwrap_err(),
            Err(error) => error,
        };
        assert!(
            matches!(&error, PoolError::Invalid { reason } if reason.contains("size_hint")),
            "{actual} items claiming {claimed}: {error}"
        );
    }
    // An input too long for its results to fit in memory.
    let error = pool.map_async(square, 0..u64::MAX).unwrap_err();
    assert!(
        matches!(&error, PoolError::Invalid { reason } if reason.contains("no room")),
        "{error}"
    );
    // The pool goes on.
    assert_eq!(pool.map(square, 1..=3).unwrap(), [1, 4, 9]);
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
#[serde(untagged)]
enum NumberOrText {
    Number(u32),
    Text(String),
}

fn text_len(value: NumberOrText) -> usize {
    match value {
        NumberOrText::Number(n) => n as usize,
        NumberOrText::Text(t) => t.len(),
    }
}

#[test]
fn a_type_the_encoding_cannot_carry_is_a_clear_error() {
    let pool = pool(1);
    // Untagged enums need a self-describing format.
    let error = pool.map(text_len, [NumberOrText::Number(1)]).unwrap_err();
    assert!(
        matches!(&error, PoolError::Codec { reason } if reason.contains("self-describing")),
        "{error}"
    );
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn starmap_apply_and_strings() {
    let pool = pool(2);
    fn join_words(a: String, sep: char, b: String) -> String {
        format!("{a}{sep}{b}")
    }
    let words = vec![
        ("a".to_owned(), '-', "b".to_owned()),
        ("c".to_owned(), '+', "d".to_owned()),
    ];
    assert_eq!(pool.starmap(join_words, words).unwrap(), ["a-b", "c+d"]);
    assert_eq!(
        pool.chunksize(1)
            .starmap(|a: u8, b: u8| a + b, [(1, 2), (3, 4)])
            .unwrap(),
        [3, 7]
    );
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
    // A big argument and result (longer than a pipe's buffer).
    let big = vec![7u8; 1 << 20];
    let echoed = pool.apply(
        |v: Vec<u8>| v.into_iter().rev().collect::<Vec<u8>>(),
        big.clone(),
    );
    assert_eq!(echoed.unwrap(), big);
}

#[test]
fn apply_async_timeout_ready_successful() {
    let pool = pool(2);
    let mut slow = pool.apply_async(nap, 300).unwrap();
    assert!(!slow.ready());
    assert_eq!(slow.successful(), None);
    assert_eq!(
        slow.get_timeout(Duration::from_millis(10)),
        Err(PoolError::Timeout)
    );
    assert!(!slow.wait_timeout(Duration::from_millis(1)));
    assert_eq!(slow.get_timeout(WATCHDOG), Ok(300));
    assert_eq!(slow.get_timeout(WATCHDOG), Err(PoolError::AlreadyTaken));

    let bad = pool.apply_async(fail_on_seven, 7).unwrap();
    assert!(bad.wait_timeout(WATCHDOG));
    assert!(bad.ready());
    assert_eq!(bad.successful(), Some(false));
    let good = pool.apply_async(fail_on_seven, 8).unwrap();
    good.wait();
    assert_eq!(good.successful(), Some(true));
}

#[test]
fn a_panic_fails_its_task_only() {
    let pool = pool(2);
    let results: Vec<_> = (0..12)
        .map(|n| pool.apply_async(fail_on_seven, n).unwrap())
        .collect();
    for (n, result) in results.into_iter().enumerate() {
        match get(result) {
            Ok(value) => assert_eq!(value as usize, n),
            Err(PoolError::Panicked { pid, message }) => {
                assert_eq!(n, 7);
                assert_ne!(pid, std::process::id());
                assert_eq!(message, "seven is unlucky");
            }
            Err(other) => panic!("{other}"),
        }
    }
    // map reports the failed item's error.
    let error = get(pool.chunksize(3).map_async(fail_on_seven, 0..20).unwrap()).unwrap_err();
    assert!(matches!(error, PoolError::Panicked { .. }), "{error}");
    // imap yields it in its place and goes on.
    let items: Vec<_> = pool.imap(fail_on_seven, 5..10).collect();
    assert_eq!(items.len(), 5);
    assert!(items[2].is_err());
    assert_eq!(items[4], Ok(9));
}

#[test]
fn callbacks_run_before_ready() {
    let pool = pool(2);
    let log = Arc::new(Mutex::new(Vec::new()));
    for n in [1u32, 7, 3] {
        let (ok, err) = (log.clone(), log.clone());
        let callbacks = Callbacks::new()
            .on_success(move |v: &u32| ok.lock().unwrap().push(format!("ok {v}")))
            .on_error(move |e: &PoolError| err.lock().unwrap().push(format!("error {e}")));
        pool.apply_async_with(fail_on_seven, n, callbacks).unwrap();
    }
    let total = Arc::new(Mutex::new(0));
    let sum = total.clone();
    let all = pool
        .map_async_with(
            square,
            1..=3,
            Callbacks::new().on_success(move |v: &Vec<u64>| *sum.lock().unwrap() = v.iter().sum()),
        )
        .unwrap();
    assert!(all.wait_timeout(WATCHDOG));
    assert_eq!(*total.lock().unwrap(), 14);
    pool.close();
    pool.join().unwrap();
    let mut log = log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[0].starts_with("error the task panicked in worker"),
        "{log:?}"
    );
    assert!(log[0].ends_with("seven is unlucky"), "{log:?}");
    assert_eq!(log[1..], ["ok 1", "ok 3"]);
}

#[test]
fn imap_is_lazy_and_ordered() {
    let pool = pool(2);
    let pulled = Arc::new(Mutex::new(0usize));
    let counter = pulled.clone();
    let endless = (0u64..).inspect(move |_| *counter.lock().unwrap() += 1);
    let first: Vec<u64> = pool
        .imap(square, endless)
        .take(50)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, (0..50).map(|n| n * n).collect::<Vec<_>>());
    // At most a window (2 × processes × chunksize) beyond what was taken.
    let pulled = *pulled.lock().unwrap();
    assert!((50..=50 + 4).contains(&pulled), "pulled {pulled}");

    let chunked: Vec<u64> = pool
        .chunksize(10)
        .imap(square, 0..95)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunked, (0..95).map(|n| n * n).collect::<Vec<_>>());
}

#[test]
fn imap_unordered_yields_as_done() {
    let pool = pool(2);
    // The long task first: the short ones come out before it.
    let order: Vec<u64> = pool
        .imap_unordered(nap, [600, 1, 2, 3])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(order.len(), 4);
    assert_eq!(order.last(), Some(&600));
    let mut all: Vec<u64> = pool
        .chunksize(4)
        .imap_unordered(square, 0..30)
        .collect::<Result<_, _>>()
        .unwrap();
    all.sort();
    assert_eq!(all, (0..30).map(|n| n * n).collect::<Vec<_>>());
}

#[test]
fn sigkill_mid_task_fails_that_task_only() {
    let pool = pool(3);
    let results: Vec<_> = (0..40)
        .map(|n| pool.apply_async(die_on_13, n).unwrap())
        .collect();
    let mut killed = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        match get(result) {
            Ok(value) => assert_eq!(value as usize, n),
            Err(PoolError::WorkerKilled { pid, signal }) => {
                assert_ne!(pid, std::process::id());
                assert_eq!(signal, 9);
                killed.push(n);
            }
            Err(other) => panic!("task {n}: {other}"),
        }
    }
    assert_eq!(killed, [13]);
    // Replaced: the pool is whole again and works.
    assert_eq!(pool.map(square, 0..10).unwrap().len(), 10);
    assert_eq!(pool.pids().len(), 3);
}

#[test]
fn sigkill_from_outside_is_reported_with_pid_and_signal() {
    let pool = pool(1);
    let victim = pool.pids()[0];
    let sleeper = pool.apply_async(nap, 3_600_000).unwrap();
    let queued = pool.apply_async(square, 5).unwrap();
    let killed_at = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let error = get(sleeper).unwrap_err();
    let latency = killed_at.elapsed();
    assert_eq!(
        error,
        PoolError::WorkerKilled {
            pid: victim,
            signal: 9
        }
    );
    assert!(error.to_string().contains(&victim.to_string()));
    assert!(error.to_string().contains("SIGKILL"), "{error}");
    // Generous: the pool looks at dead workers every 64 ms at most.
    assert!(latency < Duration::from_secs(10), "{latency:?}");
    // The queued task ran on the replacement.
    assert_eq!(get(queued), Ok(25));
    assert_ne!(pool.pids(), [victim]);
}

#[test]
fn exit_mid_task_fails_that_task_only() {
    let pool = pool(2);
    let items: Vec<_> = pool.imap(exit_on_4, 0..10).collect();
    for (n, item) in items.iter().enumerate() {
        match item {
            Ok(value) => assert_eq!(*value as usize, n),
            Err(PoolError::WorkerExited { code: 3, .. }) => assert_eq!(n, 4),
            Err(other) => panic!("item {n}: {other}"),
        }
    }
}

/// How many tasks each worker pid ran, for `items` tasks of one item.
fn tasks_per_worker(pool: &Pool, items: u32) -> HashMap<u32, usize> {
    let pids = get(pool.chunksize(1).map_async(pid, 0..items).unwrap()).unwrap();
    let mut per_worker: HashMap<u32, usize> = HashMap::new();
    for pid in pids {
        *per_worker.entry(pid).or_default() += 1;
    }
    per_worker
}

#[test]
fn maxtasksperchild_recycles_exactly() {
    // One worker at a time: 12 tasks are exactly 4 workers of 3.
    let pool = Pool::builder()
        .processes(1)
        .maxtasksperchild(3)
        .build()
        .unwrap();
    let per_worker = tasks_per_worker(&pool, 12);
    assert_eq!(per_worker.len(), 4, "{per_worker:?}");
    assert!(
        per_worker.values().all(|&tasks| tasks == 3),
        "{per_worker:?}"
    );

    // Two at a time: none runs more than 3, and only the (at most two)
    // workers still running at the end ran fewer.
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(3)
        .build()
        .unwrap();
    let per_worker = tasks_per_worker(&pool, 30);
    assert_eq!(per_worker.values().sum::<usize>(), 30);
    assert!(
        per_worker.values().all(|&tasks| tasks <= 3),
        "{per_worker:?}"
    );
    assert!(
        per_worker.values().filter(|&&tasks| tasks < 3).count() <= 2,
        "{per_worker:?}"
    );
}

/// Runs once per worker: counts itself in a shared value.
fn count_worker(counter: Token<Value<u32>>) {
    let counter = counter.attach().unwrap();
    *counter.lock() += 1;
    INITIALIZED.store(true, std::sync::atomic::Ordering::Relaxed);
}

static INITIALIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn initialized(_: u8) -> bool {
    INITIALIZED.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn initializer_runs_once_per_worker() {
    let counter = Value::new(0u32).unwrap();
    let pool = Pool::builder()
        .processes(3)
        .initializer(count_worker, counter.token().unwrap())
        .build()
        .unwrap();
    let all = get(pool.chunksize(1).map_async(initialized, 0..9).unwrap()).unwrap();
    assert!(all.into_iter().all(|done| done));
    pool.close();
    pool.join().unwrap();
    assert_eq!(counter.get(), 3);
}

fn broken_init(_: ()) {
    panic!("no database");
}

#[test]
fn a_failing_initializer_breaks_the_pool_without_hanging() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(broken_init, ())
        .build()
        .unwrap();
    let error = get(pool.map_async(square, 0..10).unwrap()).unwrap_err();
    assert!(
        matches!(&error, PoolError::Initializer { message, .. } if message == "no database"),
        "{error}"
    );
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(PoolError::Initializer { .. })
    ));
}

#[test]
fn close_join_terminate() {
    let pool = pool(2);
    assert_eq!(pool.join(), Err(PoolError::StillRunning));
    let pending: Vec<_> = (0..6)
        .map(|n| pool.apply_async(nap, 20 + n).unwrap())
        .collect();
    pool.close();
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(PoolError::NotRunning)
    ));
    pool.join().unwrap();
    for (n, result) in pending.into_iter().enumerate() {
        assert_eq!(get(result), Ok(20 + n as u64));
    }
    assert!(pool.pids().is_empty());

    let pool = pool_of_sleepers();
    pool.terminate();
    pool.join().unwrap();
}

fn pool_of_sleepers() -> Pool {
    let pool = pool(2);
    for _ in 0..4 {
        pool.apply_async(nap, 3_600_000).unwrap();
    }
    pool
}

#[test]
fn terminate_and_drop_fail_pending_tasks() {
    let pool = pool(1);
    let running = pool.apply_async(nap, 3_600_000).unwrap();
    let queued = pool.apply_async(square, 2).unwrap();
    let pids = pool.pids();
    pool.terminate();
    assert_eq!(get(running), Err(PoolError::Terminated));
    assert_eq!(get(queued), Err(PoolError::Terminated));
    assert!(
        pids.iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    );
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(PoolError::NotRunning)
    ));

    let pool = pool_of_sleepers();
    let pending = pool.apply_async(square, 3).unwrap();
    drop(pool);
    assert_eq!(get(pending), Err(PoolError::Terminated));
}

#[test]
fn a_pool_is_shared_by_threads() {
    let pool = Arc::new(pool(2));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                (0..25u64)
                    .map(|n| get(pool.apply_async(square, t * 100 + n).unwrap()).unwrap())
                    .sum::<u64>()
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let expected: u64 = (0..4u64)
        .flat_map(|t| (0..25).map(move |n| (t * 100 + n) * (t * 100 + n)))
        .sum();
    assert_eq!(total, expected);
}

/// Made and used in a forked (single-threaded) child that then starts
/// extra threads: the pool forks nothing but its server.
#[test]
fn a_pool_made_in_a_multithreaded_process() {
    let ok = common::spawn(|| {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut noise = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Hold the allocator's locks now and then.
                        noise.push(vec![0u8; 100]);
                        noise.truncate(10);
                    }
                })
            })
            .collect();
        let pool = Pool::new(2).unwrap();
        let squares = pool.map(square, 0..100).unwrap();
        // Refilled from the multi-threaded process too.
        let killed = pool.apply_async(die_on_13, 13).unwrap().get();
        let again = pool.chunksize(1).map(square, 0..10).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        busy.into_iter().for_each(|t| t.join().unwrap());
        squares.len() == 100
            && matches!(killed, Err(PoolError::WorkerKilled { signal: 9, .. }))
            && again.len() == 10
    });
    let mut child = ok;
    assert!(join(&mut child));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn shm_entries() -> HashSet<std::ffi::OsString> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// In a forked child: after `terminate`, `join` or drop, the workers are
/// gone (no zombie), and so are the pool's fds and shared memory. The
/// first pool starts the process's fork server, which outlives pools by
/// design: it is counted out.
#[test]
fn nothing_is_left_behind() {
    let mut child = spawn(|| {
        let warm = Pool::new(1).unwrap();
        warm.apply(square, 1).unwrap();
        drop(warm);
        let (fds, shm) = (open_fds(), shm_entries());
        let mut leftovers = Vec::new();
        for ending in ["terminate", "join", "drop"] {
            let pool = Pool::builder()
                .processes(3)
                .maxtasksperchild(2)
                .build()
                .unwrap();
            pool.chunksize(1).map(square, 0..20).unwrap();
            let _ = pool.apply_async(die_on_13, 13).unwrap().get();
            let pids = pool.pids();
            match ending {
                "terminate" => {
                    pool.apply_async(nap, 3_600_000).unwrap();
                    pool.terminate();
                    drop(pool);
                }
                "join" => {
                    pool.close();
                    pool.join().unwrap();
                    drop(pool);
                }
                _ => drop(pool),
            }
            for pid in pids {
                if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    leftovers.push(format!("{ending}: worker {pid} still exists"));
                }
            }
            if open_fds() != fds {
                leftovers.push(format!("{ending}: {} fds instead of {fds}", open_fds()));
            }
            if shm_entries() != shm {
                leftovers.push(format!("{ending}: /dev/shm changed"));
            }
        }
        leftovers
    });
    assert_eq!(join(&mut child), Vec::<String>::new());
}

#[test]
fn fork_and_spawn_start_methods() {
    // Fork from a single-threaded (forked) process.
    let mut child = spawn(|| {
        let pool = Pool::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        let squares = pool.map(square, 0..50).unwrap();
        let killed = pool.apply_async(die_on_13, 13).unwrap().get();
        let after = pool.apply(square, 4).unwrap();
        (
            squares.iter().sum::<u64>(),
            matches!(killed, Err(PoolError::WorkerKilled { .. })),
            after,
        )
    });
    assert_eq!(
        join(&mut child),
        ((0..50u64).map(|n| n * n).sum(), true, 16)
    );

    let pool = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    assert_eq!(
        get(pool.map_async(square, 0..20).unwrap()).unwrap().len(),
        20
    );
    assert!(matches!(
        get(pool.apply_async(exit_on_4, 4).unwrap()),
        Err(PoolError::WorkerExited { code: 3, .. })
    ));
    assert_eq!(get(pool.apply_async(square, 3).unwrap()), Ok(9));
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(matches!(Pool::new(0), Err(PoolError::Invalid { .. })));
    assert!(matches!(
        Pool::builder().maxtasksperchild(0).build(),
        Err(PoolError::Invalid { .. })
    ));
    // Fork from the multi-threaded test process is refused, with a reason.
    let error = Pool::builder()
        .start_method(StartMethod::Fork)
        .processes(1)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, PoolError::Start { reason } if reason.contains("thread")),
        "{error}"
    );
}

/// Whether process `pid` has ended: gone, or a zombie not reaped yet.
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A worker killed while idle costs no task: the pool finds it gone before
/// it hands it work, replaces it, and every later task completes.
#[test]
fn a_worker_killed_while_idle_costs_no_task() {
    let pool = pool(2);
    assert_eq!(
        get(pool.map_async(square, 0..10u64).unwrap())
            .unwrap()
            .len(),
        10
    );
    for _ in 0..3 {
        let victim = pool.pids()[0];
        // SAFETY: `kill` has no memory preconditions; `victim` is a worker
        // of this pool, not reaped yet (the pool reaps it only once it
        // notices).
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        let deadline = Instant::now() + WATCHDOG;
        while !ended(victim) {
            assert!(Instant::now() < deadline, "worker {victim} did not die");
            std::thread::sleep(Duration::from_millis(1));
        }
        for n in 0..20u64 {
            assert_eq!(get(pool.apply_async(square, n).unwrap()), Ok(n * n));
        }
        assert_eq!(pool.pids().len(), 2);
        assert!(!pool.pids().contains(&victim));
    }
}
