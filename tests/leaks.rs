//! Nothing leaks: after a workload that touches every kind of object,
//! forks, kills children with `SIGKILL` in the middle of their work and
//! runs a pool, there are no zombie children, no file descriptors more
//! than before, and no `/dev/shm` entry left by this program; and a named
//! object whose creator was killed is cleaned up by the next opener.
//!
//! The workload runs in one test, so that nothing else in this binary opens
//! descriptors meanwhile. Other programs (other test binaries running at
//! the same time) may create `/dev/shm` entries of their own: an entry
//! counts as a leak only if it is new and was created by this process or
//! by a process that is gone.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{WATCHDOG, join, spawn};
use mproc::mproc_core::layout::{Header, MAGIC};
use mproc::mproc_os::process::owner_gone;
use mproc::{
    Array, Condition, Event, Lock, PodQueue, Pool, Queue, RLock, Region, Semaphore, SharedMemory,
    Value, pipe,
};

mproc::enable_test_support!();

/// What a process holds that could leak.
#[derive(Debug)]
struct Snapshot {
    fds: usize,
    shm: HashSet<String>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        shm: shm_entries(),
    }
}

/// The `/dev/shm` entries whose name mentions mproc.
fn shm_entries() -> HashSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("mproc"))
                .collect()
        })
        .unwrap_or_default()
}

/// The pid that created the mproc object `name` in `/dev/shm`, if it is one.
fn creator(name: &str) -> Option<u32> {
    let region = Region::open_named(name).ok()?;
    if region.len() < size_of::<Header>() {
        return None;
    }
    // SAFETY: the mapping is page aligned, at least a header long, and a
    // header is valid for any bytes (all its fields are atomics).
    let header = unsafe { region.as_ptr().cast::<Header>().as_ref() };
    (header.magic() == MAGIC).then(|| header.origin().pid)
}

/// Children of this process that are zombies (dead, not reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&me.to_string().as_str()) {
            zombies.push(pid);
        }
    }
    zombies
}

/// Fails if `before` and now differ by anything that leaked.
fn assert_no_leaks(before: &Snapshot) {
    let after = snapshot();
    assert!(
        after.fds <= before.fds,
        "open descriptors grew from {} to {}",
        before.fds,
        after.fds
    );
    let zombies = zombie_children();
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
    let me = std::process::id();
    let leaked: Vec<_> = after
        .shm
        .difference(&before.shm)
        .filter(|name| match creator(name) {
            Some(pid) => pid == me || owner_gone(pid, None),
            // Not an mproc object: ours only if named after us.
            None => name.contains(&format!("leaks-{me}")),
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "/dev/shm entries left behind: {leaked:?}"
    );
}

fn square(n: u64) -> u64 {
    n * n
}

/// Puts and gets until killed.
fn churn(pod: &PodQueue<u64>) {
    loop {
        let _ = pod.put_timeout(1, Duration::from_millis(1));
        let _ = pod.get_timeout(Duration::from_millis(1));
    }
}

/// Sleeps until killed.
fn sleep_forever() {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn workload() {
    let me = std::process::id();
    // Every kind of object, shared with children that finish normally.
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    let cond = Condition::new().unwrap();
    let value = Value::new(0u64).unwrap();
    let array = Array::new(&[0u32; 4]).unwrap();
    let sem = Semaphore::new(1).unwrap();
    let event = Event::new().unwrap();
    let pod = PodQueue::<u64>::new(16).unwrap();
    let queue = Queue::<String>::new(16).unwrap();
    let (left, right) = pipe::<u32>().unwrap();
    let named = SharedMemory::create(&format!("mproc-leaks-{me}"), 4096).unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|i| {
            let (lock, rlock, cond, value, array, sem, pod, queue) = (
                lock.clone(),
                rlock.clone(),
                cond.clone(),
                value.clone(),
                array.clone(),
                sem.clone(),
                pod.clone(),
                queue.clone(),
            );
            spawn(move || {
                drop(lock.lock_timeout(WATCHDOG).unwrap());
                drop(rlock.lock_timeout(WATCHDOG).unwrap());
                drop(cond.lock_timeout(WATCHDOG).unwrap());
                *value.lock_timeout(WATCHDOG).unwrap() += 1;
                array.set(i, 1).unwrap();
                sem.acquire_timeout(WATCHDOG).unwrap();
                sem.release().unwrap();
                pod.put_timeout(i as u64, WATCHDOG).unwrap();
                queue.put_timeout(format!("{i}"), WATCHDOG).unwrap();
                i
            })
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    assert_eq!(value.get(), 3);
    right.send(7).unwrap();
    assert_eq!(left.recv_timeout(WATCHDOG).unwrap(), 7);
    event.set();
    drop(children);

    // Children killed with SIGKILL while they hold a lock or sit in a
    // queue operation.
    for _ in 0..5 {
        let held = Event::new().unwrap();
        let mut child = spawn({
            let (lock, pod, held) = (lock.clone(), pod.clone(), held.clone());
            move || {
                std::mem::forget(lock.lock());
                held.set();
                churn(&pod);
            }
        });
        assert!(held.wait_timeout(WATCHDOG));
        std::thread::sleep(Duration::from_millis(2));
        child.kill().unwrap();
        assert!(child.join_timeout(WATCHDOG).is_err());
        let mut guard = lock.lock_timeout(WATCHDOG).unwrap();
        assert!(guard.owner_died());
        guard.mark_consistent();
    }

    // A pool with a worker killed mid-task.
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.map(square, 0..100).unwrap().len(), 100);
    let victim = pool.pids()[0];
    // SAFETY: `kill` has no memory-safety preconditions.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let mut again = Err(mproc::PoolError::Timeout);
    for _ in 0..5 {
        again = pool.map(square, 0..100);
        if again.is_ok() {
            break;
        }
    }
    assert_eq!(again.unwrap().len(), 100);
    drop(pool);
    drop(named);
}

#[test]
fn nothing_leaks() {
    // Warm up once, so that descriptors this program keeps for good (the
    // fork server, caches) are counted before the snapshot.
    workload();
    let before = snapshot();
    workload();
    workload();
    assert_no_leaks(&before);
    stale_named_object_is_cleaned_up_by_the_next_opener();
    assert_no_leaks(&before);
}

/// A creator killed with SIGKILL leaves its name in `/dev/shm`; the next
/// opener unlinks it (and still gets the object), and the next creator of
/// the same name gets a fresh object. A kept name and a live creator's name
/// are left alone.
fn stale_named_object_is_cleaned_up_by_the_next_opener() {
    let me = std::process::id();
    let path = |name: &str| std::path::Path::new("/dev/shm").join(name);
    for (round, reopen) in [(0, true), (1, false)] {
        let name = format!("mproc-leaks-stale-{me}-{round}");
        let made = Event::new().unwrap();
        let mut creator = spawn({
            let (name, made) = (name.clone(), made.clone());
            move || {
                let region = Region::create_named(&name, Lock::region_size()).unwrap();
                let lock = Lock::create_in(region).unwrap();
                std::mem::forget(lock.lock());
                made.set();
                sleep_forever();
            }
        });
        assert!(made.wait_timeout(WATCHDOG));
        // The creator lives: opening leaves the name alone.
        drop(Region::open_named(&name).unwrap());
        assert!(path(&name).exists());
        creator.kill().unwrap();
        assert!(creator.join_timeout(WATCHDOG).is_err());
        assert!(path(&name).exists(), "the killed creator left its name");
        if reopen {
            let lock = Lock::attach(Region::open_named(&name).unwrap()).unwrap();
            assert!(!path(&name).exists(), "the opener unlinked the stale name");
            // The object is still usable, and its dead holder is found.
            assert!(lock.lock_timeout(WATCHDOG).unwrap().owner_died());
        } else {
            let region = Region::create_named(&name, Lock::region_size()).unwrap();
            let lock = Lock::create_in(region).unwrap();
            assert!(!lock.lock_timeout(WATCHDOG).unwrap().owner_died());
            drop(lock);
            assert!(!path(&name).exists(), "the new creator unlinks on drop");
        }
    }

    // A kept name outlives its creator, dead or not.
    let name = format!("mproc-leaks-kept-{me}");
    let mut keeper = spawn({
        let name = name.clone();
        move || {
            let mut region = Region::create_named(&name, Lock::region_size()).unwrap();
            region.keep_name();
            std::mem::forget(Lock::create_in(region).unwrap());
        }
    });
    join(&mut keeper);
    drop(Region::open_named(&name).unwrap());
    assert!(path(&name).exists(), "a kept name is not stale");
    Region::unlink_named(&name).unwrap();
}
