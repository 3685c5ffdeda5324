//! Processes killed with `SIGKILL` at random moments, many times over:
//! nobody hangs, nothing is counted twice, every death is accounted for.
//!
//! Each test runs under a [`Watchdog`]: if it has not finished in
//! [`CHAOS_LIMIT`], the watchdog kills every child the test registered and
//! exits the test binary with a failure, so a hang fails instead of stalling.
//! Seeds are printed, so a failure can be replayed with `MPROC_CHAOS_SEED`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Guard, WATCHDOG, join, spawn};
use mproc::{Array, Event, PodQueue, Pool, PoolError, ProcessError, Queue, Region};

mproc::enable_test_support!();

/// The longest a chaos test may run before the watchdog fails it.
const CHAOS_LIMIT: Duration = Duration::from_secs(240);

/// Kills the registered children and fails the test binary if it is not
/// dropped within its limit.
struct Watchdog {
    done: Arc<(Mutex<bool>, std::sync::Condvar)>,
    pids: Arc<Mutex<Vec<u32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn new(name: &'static str, limit: Duration) -> Self {
        let done = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let pids = Arc::new(Mutex::new(Vec::<u32>::new()));
        let thread = std::thread::spawn({
            let (done, pids) = (done.clone(), pids.clone());
            move || {
                let (lock, cond) = &*done;
                let finished = cond
                    .wait_timeout_while(lock.lock().unwrap(), limit, |done| !*done)
                    .unwrap();
                if !*finished.0 {
                    for &pid in pids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        // SAFETY: `kill` has no memory-safety preconditions.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                    eprintln!("chaos test {name} hung for {limit:?}: watchdog fired");
                    std::process::exit(101);
                }
            }
        });
        Self {
            done,
            pids,
            thread: Some(thread),
        }
    }

    fn register(&self, pid: u32) {
        self.pids.lock().unwrap().push(pid);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.done.0.lock().unwrap() = true;
        self.done.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A small xorshift generator: the tests need cheap, replayable randomness.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Self {
        let seed = std::env::var("MPROC_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("{test}: MPROC_CHAOS_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Kills `child` with SIGKILL and reaps it; whether it died of the signal
/// (it may have finished just before).
fn kill_and_reap<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
    mut child: Guard<T>,
) -> bool {
    child.kill().unwrap();
    match child.join_timeout(WATCHDOG) {
        Err(ProcessError::Signaled { signal, .. }) => signal == libc::SIGKILL,
        Ok(_) => false,
        Err(other) => panic!("a child ended badly: {other}"),
    }
}

// Slots of the shared array in `value_under_lock_with_a_killed_incrementer`.
const TOTAL: usize = 0;
/// Per-process counts start here: workers 0..3, then the victim.
const PER: usize = 1;
const VICTIM: usize = PER + 3;
const REPORTS: usize = VICTIM + 1;
const SLOTS: usize = REPORTS + 1;

/// One increment under the lock: the total and the caller's own count move
/// together, so `total == sum of counts` whenever the lock is free, unless
/// an owner died between the two writes. An owner that finds the lock
/// inconsistent repairs the invariant, counts the report and marks it
/// consistent.
fn increment(array: &Array<u64>, me: usize) {
    let mut guard = array.lock_timeout(WATCHDOG).expect("the lock (deadlock?)");
    if guard.owner_died() {
        guard[TOTAL] = guard[PER..=VICTIM].iter().sum();
        guard[REPORTS] += 1;
        guard.mark_consistent();
    }
    guard[TOTAL] += 1;
    guard[me] += 1;
}

/// Four processes increment a shared array under its lock; one of them is
/// killed and restarted over and over, alternately at a random moment and
/// while it holds the lock. No deadlock; every kill while holding the lock
/// is reported to exactly one later owner as owner-died; the counts add up.
#[test]
fn value_under_lock_with_a_killed_incrementer() {
    const KILLS: usize = 100;
    let dog = Watchdog::new("value_under_lock_with_a_killed_incrementer", CHAOS_LIMIT);
    let mut rng = Rng::seeded("value_under_lock_with_a_killed_incrementer");
    let array = Array::new(&[0u64; SLOTS]).unwrap();
    let stop = Event::new().unwrap();
    let mut workers: Vec<_> = (0..3)
        .map(|i| {
            let (array, stop) = (array.clone(), stop.clone());
            let worker = spawn(move || {
                let mut done = 0u64;
                while !stop.is_set() {
                    increment(&array, PER + i);
                    done += 1;
                }
                done
            });
            dog.register(worker.pid());
            worker
        })
        .collect();
    let mut killed_holding = 0u64;
    let mut killed_any = 0u64;
    for round in 0..KILLS {
        let holding = Event::new().unwrap();
        let hold = round % 2 == 0;
        let normal = rng.below(50);
        let victim = spawn({
            let (array, holding) = (array.clone(), holding.clone());
            move || {
                for _ in 0..normal {
                    increment(&array, VICTIM);
                }
                if hold {
                    // Increment, then keep the lock until killed.
                    let mut guard = array.lock_timeout(WATCHDOG).expect("the lock");
                    if guard.owner_died() {
                        guard[TOTAL] = guard[PER..=VICTIM].iter().sum();
                        guard[REPORTS] += 1;
                        guard.mark_consistent();
                    }
                    guard[TOTAL] += 1;
                    guard[VICTIM] += 1;
                    std::mem::forget(guard);
                    holding.set();
                }
                loop {
                    increment(&array, VICTIM);
                }
            }
        });
        dog.register(victim.pid());
        if hold {
            assert!(
                holding.wait_timeout(WATCHDOG),
                "the victim never held the lock"
            );
        } else {
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
        if kill_and_reap::<()>(victim) {
            killed_any += 1;
            killed_holding += u64::from(hold);
        }
    }
    stop.set();
    let counts: Vec<u64> = workers.iter_mut().map(|w| join(w)).collect();
    let mut guard = array.lock_timeout(WATCHDOG).expect("the lock at the end");
    if guard.owner_died() {
        guard[TOTAL] = guard[PER..=VICTIM].iter().sum();
        guard[REPORTS] += 1;
        guard.mark_consistent();
    }
    let reports = guard[REPORTS];
    eprintln!(
        "{killed_any} kills ({killed_holding} holding the lock), {reports} owner-died reports, \
         worker increments {counts:?}"
    );
    assert!(
        reports >= killed_holding && reports <= killed_any,
        "{reports} reports for {killed_holding} kills holding the lock, {killed_any} in all"
    );
    assert_eq!(guard[PER..VICTIM], counts[..], "a worker's count was lost");
    assert_eq!(guard[TOTAL], guard[PER..=VICTIM].iter().sum::<u64>());
}

fn square_slowly(n: u64) -> u64 {
    if n.is_multiple_of(97) {
        std::thread::sleep(Duration::from_millis(1));
    }
    n * n
}

/// A pool maps 10,000 tasks while a killer thread SIGKILLs random workers:
/// every task ends in its result or a worker-lost error (at most one per
/// kill), the map returns, and the pool still works afterwards.
#[test]
fn pool_map_with_killed_workers() {
    const TASKS: u64 = 10_000;
    let dog = Watchdog::new("pool_map_with_killed_workers", CHAOS_LIMIT);
    let mut rng = Rng::seeded("pool_map_with_killed_workers");
    let pool = Pool::new(4).expect("a pool");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let killer_seed = rng.next();
    let killer = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let mut rng = Rng(killer_seed | 1);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5 + rng.below(20)));
                let pids = pool.pids();
                if pids.is_empty() || stop.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let victim = pids[rng.below(pids.len() as u64) as usize];
                dog.register(victim);
                // SAFETY: `kill` has no memory-safety preconditions.
                if unsafe { libc::kill(victim as i32, libc::SIGKILL) } == 0 {
                    kills.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let mut lost = 0u64;
        for (n, result) in pool.imap(square_slowly, 0..TASKS).enumerate() {
            match result {
                Ok(value) => assert_eq!(value, (n as u64) * (n as u64)),
                Err(PoolError::WorkerKilled { signal, .. }) => {
                    assert_eq!(signal, libc::SIGKILL);
                    lost += 1;
                }
                Err(other) => panic!("task {n}: {other}"),
            }
        }
        // A map under the same fire returns: all results, or a lost worker.
        match pool.map(square_slowly, 0..TASKS) {
            Ok(all) => assert_eq!(all.len(), TASKS as usize),
            Err(PoolError::WorkerKilled { .. }) => {}
            Err(other) => panic!("map: {other}"),
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        killer.join().unwrap();
        lost
    });
    let kills = kills.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{kills} workers killed, {killer} of {TASKS} tasks lost");
    assert!(kills > 0, "the killer never fired");
    assert!(killer <= kills, "{killer} tasks lost to {kills} kills");
    // Still usable, and whole again. A worker killed in the instant between
    // the pool's look at it and its reading of a task, just before the
    // killer stopped, fails that task, so the first map afterwards may
    // still lose one; no later one does.
    let mut outcome = Err(PoolError::Timeout);
    for _ in 0..5 {
        outcome = pool.map(square_slowly, 0..1_000);
        match &outcome {
            Err(PoolError::WorkerKilled { .. }) => continue,
            _ => break,
        }
    }
    assert_eq!(
        outcome.unwrap(),
        (0..1_000).map(|n| n * n).collect::<Vec<_>>()
    );
    assert_eq!(pool.pids().len(), 4);
}

// The producer/consumer test: message `generation << 32 | seq` is number `seq` of
// producer incarnation `generation`.
const SEQ_MAX: u64 = 8_192;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
const QUEUE_KILLS: usize = 200;
const MAX_GEN: u64 = (PRODUCERS + CONSUMERS + QUEUE_KILLS) as u64;

/// One counter per message (how many times it was received), and one for
/// messages that are not any producer's.
#[derive(Clone)]
struct Tally {
    region: Arc<Region>,
}

impl Tally {
    fn new() -> Self {
        let len = (MAX_GEN * SEQ_MAX + 1) as usize * 4;
        Self {
            region: Arc::new(Region::anonymous(len).expect("a shared region")),
        }
    }

    fn counters(&self) -> &[std::sync::atomic::AtomicU32] {
        // SAFETY: the region is mapped (shared, zero-filled) for as long as
        // `self` lives, 4-aligned, and only used through atomics.
        unsafe {
            std::slice::from_raw_parts(self.region.as_ptr().as_ptr().cast(), self.region.len() / 4)
        }
    }

    fn receive(&self, msg: u64) {
        let (generation, seq) = (msg >> 32, msg & 0xffff_ffff);
        let index = if generation < MAX_GEN && seq < SEQ_MAX {
            (generation * SEQ_MAX + seq) as usize
        } else {
            (MAX_GEN * SEQ_MAX) as usize
        };
        self.counters()[index].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The queue kinds the producer/consumer test runs on: `PodQueue` (slots
/// that name their mover) and `Queue` (a ring of frames, locked per side).
trait ChaosQueue: Clone + Send + 'static {
    fn put(&self, msg: u64) -> bool;
    fn get(&self, timeout: Duration) -> Option<u64>;
    fn try_put(&self, msg: u64) -> bool;
    fn len(&self) -> usize;
}

impl ChaosQueue for PodQueue<u64> {
    fn put(&self, msg: u64) -> bool {
        self.put_timeout(msg, WATCHDOG).is_ok()
    }
    fn get(&self, timeout: Duration) -> Option<u64> {
        self.get_timeout(timeout).ok()
    }
    fn try_put(&self, msg: u64) -> bool {
        PodQueue::try_put(self, msg).is_ok()
    }
    fn len(&self) -> usize {
        PodQueue::len(self)
    }
}

impl ChaosQueue for Queue<u64> {
    fn put(&self, msg: u64) -> bool {
        self.put_timeout(msg, WATCHDOG).is_ok()
    }
    fn get(&self, timeout: Duration) -> Option<u64> {
        self.get_timeout(timeout).ok()
    }
    fn try_put(&self, msg: u64) -> bool {
        Queue::try_put(self, msg).is_ok()
    }
    fn len(&self) -> usize {
        Queue::len(self)
    }
}

fn producer<Q: ChaosQueue>(queue: Q, generation: u64) -> Guard<u64> {
    spawn(move || {
        for seq in 0..SEQ_MAX {
            assert!(queue.put(generation << 32 | seq), "a put (hang?)");
        }
        SEQ_MAX
    })
}

fn consumer<Q: ChaosQueue>(queue: Q, tally: &Tally, stop: &Event) -> Guard<u64> {
    let tally = tally.clone();
    let stop = stop.clone();
    spawn(move || {
        let mut got = 0;
        loop {
            match queue.get(Duration::from_millis(20)) {
                Some(msg) => {
                    tally.receive(msg);
                    got += 1;
                }
                None if stop.is_set() => return got,
                None => {}
            }
        }
    })
}

/// 4 producers and 4 consumers move numbered messages through a `PodQueue`
/// while the test SIGKILLs a random one of them at random moments and
/// starts a new one in its place, 200 times. Afterwards no message was
/// received twice, none that nobody sent, the number missing is at most
/// the number of kills, and the survivors finish.
#[test]
fn queue_producers_and_consumers_killed_at_random() {
    producers_and_consumers_killed_at_random(
        "queue_producers_and_consumers_killed_at_random",
        PodQueue::<u64>::new(64).unwrap(),
        64,
    );
}

/// The same through a `Queue`, whose messages are frames in a byte ring: a
/// process killed in the middle of writing or reading one holds the ring's
/// writer or reader lock, which the next writer or reader takes over,
/// repairing the ring.
#[test]
fn frame_queue_producers_and_consumers_killed_at_random() {
    producers_and_consumers_killed_at_random(
        "frame_queue_producers_and_consumers_killed_at_random",
        // A buffer of 512 bytes holds about 60 messages of 8 bytes.
        Queue::<u64>::with_buffer(64, 512).unwrap(),
        64,
    );
}

fn producers_and_consumers_killed_at_random<Q: ChaosQueue>(
    name: &'static str,
    queue: Q,
    maxsize: usize,
) {
    let dog = Watchdog::new(name, CHAOS_LIMIT);
    let mut rng = Rng::seeded(name);
    let tally = Tally::new();
    let stop = Event::new().unwrap();
    let mut next_gen = 0u64;
    let mut producers: Vec<(u64, Guard<u64>)> = (0..PRODUCERS)
        .map(|_| {
            let generation = next_gen;
            next_gen += 1;
            let child = producer(queue.clone(), generation);
            dog.register(child.pid());
            (generation, child)
        })
        .collect();
    let mut consumers: Vec<Guard<u64>> = (0..CONSUMERS)
        .map(|_| {
            let child = consumer(queue.clone(), &tally, &stop);
            dog.register(child.pid());
            child
        })
        .collect();
    let mut kills = 0u64;
    for _ in 0..QUEUE_KILLS {
        std::thread::sleep(Duration::from_micros(rng.below(4_000)));
        let which = rng.below((PRODUCERS + CONSUMERS) as u64) as usize;
        if which < PRODUCERS {
            let generation = next_gen;
            next_gen += 1;
            let fresh = producer(queue.clone(), generation);
            dog.register(fresh.pid());
            let (_, old) = std::mem::replace(&mut producers[which], (generation, fresh));
            kills += u64::from(kill_and_reap(old));
        } else {
            let fresh = consumer(queue.clone(), &tally, &stop);
            dog.register(fresh.pid());
            let old = std::mem::replace(&mut consumers[which - PRODUCERS], fresh);
            kills += u64::from(kill_and_reap(old));
        }
    }
    // The survivors finish: every producer sends all it has, then the
    // consumers drain the queue.
    for (_, child) in &mut producers {
        assert_eq!(join(child), SEQ_MAX);
    }
    stop.set();
    for child in &mut consumers {
        join(child);
    }
    assert_eq!(queue.len(), 0, "messages left in the queue");
    drop(dog);

    let counters = tally.counters();
    let bogus = counters[(MAX_GEN * SEQ_MAX) as usize].load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(bogus, 0, "messages nobody sent were received");
    let survivors: Vec<u64> = producers
        .iter()
        .map(|(generation, _)| *generation)
        .collect();
    let mut missing = 0u64;
    let mut received = 0u64;
    for generation in 0..next_gen {
        let row = &counters[(generation * SEQ_MAX) as usize..((generation + 1) * SEQ_MAX) as usize];
        let counts: Vec<u32> = row
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        if let Some(seq) = counts.iter().position(|&c| c > 1) {
            panic!(
                "message {seq} of incarnation {generation} was received {} times",
                counts[seq]
            );
        }
        // A surviving producer sent all its messages; a killed one at least
        // up to the last one received (what it was putting when killed is
        // the kill's loss, unseen here).
        let sent = if survivors.contains(&generation) {
            SEQ_MAX as usize
        } else {
            counts.iter().rposition(|&c| c == 1).map_or(0, |s| s + 1)
        };
        let got = counts.iter().filter(|&&c| c == 1).count();
        missing += (sent - got) as u64;
        received += got as u64;
    }
    eprintln!("{kills} kills, {received} messages received, {missing} missing");
    assert!(
        missing <= kills,
        "{missing} messages missing after {kills} kills"
    );
    // Still usable, and no kill cost a place: the queue takes `maxsize`
    // messages again, and gives them back in order.
    for n in 0..maxsize as u64 {
        assert!(
            queue.try_put(n),
            "the queue holds {n} messages, not {maxsize}"
        );
    }
    for n in 0..maxsize as u64 {
        assert_eq!(queue.get(WATCHDOG), Some(n));
    }
    assert_eq!(queue.len(), 0);
}
