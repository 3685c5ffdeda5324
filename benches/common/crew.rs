//! Long-lived workers (processes or threads) that run one sample of a
//! workload each time they are started, so a sample measures the workload
//! only: shared by the criterion benches and the showdown example.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mproc::{Process, Semaphore, Value};

/// Per-sample work meaning "stop".
pub const STOP: u64 = u64::MAX;

/// What worker `index` does with the sample's count of operations.
pub type Role = Arc<dyn Fn(usize, u64) + Send + Sync>;

/// Long-lived workers, started for each sample with the size of its work.
pub struct Crew {
    /// One starting gun per worker, so a fast worker cannot take the permit
    /// of a slow one and run a sample twice.
    go: Vec<Semaphore>,
    done: Semaphore,
    work: Value<u64>,
    processes: Vec<Process<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Crew {
    fn new() -> Self {
        Self {
            go: Vec::new(),
            done: Semaphore::new(0).expect("a semaphore"),
            work: Value::new(0).expect("a shared value"),
            processes: Vec::new(),
            threads: Vec::new(),
        }
    }

    fn worker(&mut self, index: usize, role: Role) -> impl FnOnce() + Send + 'static {
        self.go.push(Semaphore::new(0).expect("a semaphore"));
        let (go, done, work) = (self.go[index].clone(), self.done.clone(), self.work.clone());
        move || {
            loop {
                go.acquire();
                let n = work.get();
                if n == STOP {
                    return;
                }
                role(index, n);
                done.release().expect("one sample at a time");
            }
        }
    }

    /// `workers` child processes, worker `i` running `role(i, n)` per sample.
    pub fn processes(workers: usize, role: Role) -> Self {
        let mut crew = Self::new();
        for index in 0..workers {
            let worker = crew.worker(index, role.clone());
            crew.processes.push(fork(worker));
        }
        crew
    }

    /// `workers` threads of this process, worker `i` running `role(i, n)`
    /// per sample.
    pub fn threads(workers: usize, role: Role) -> Self {
        let mut crew = Self::new();
        for index in 0..workers {
            let worker = crew.worker(index, role.clone());
            crew.threads.push(std::thread::spawn(worker));
        }
        crew
    }

    /// Runs one sample of `n` operations and returns how long it took.
    pub fn run(&self, n: u64) -> Duration {
        self.work.set(n);
        let start = Instant::now();
        for go in &self.go {
            go.release().expect("one sample at a time");
        }
        for _ in &self.go {
            self.done.acquire();
        }
        start.elapsed()
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.work.set(STOP);
        for go in &self.go {
            go.release().expect("one sample at a time");
        }
        for process in &mut self.processes {
            process.join().expect("a worker process");
        }
        for thread in self.threads.drain(..) {
            thread.join().expect("a worker thread");
        }
    }
}

/// Forks a child running `f`. Thread crews are joined before any fork and
/// the measuring code takes no lock a child could inherit held, so opting
/// in to forking a threaded process (criterion's own threads) is safe here.
pub fn fork<T, F>(f: F) -> Process<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce() -> T + Send + 'static,
{
    Process::builder()
        .allow_threaded_fork(true)
        .spawn(f)
        .expect("fork a child")
}

/// The part of `n` operations that worker `i` of `of` handles.
pub fn share(n: u64, i: usize, of: usize) -> u64 {
    n / of as u64 + u64::from((i as u64) < n % of as u64)
}

/// The peer role of the stream workloads: `pairs` producers and `pairs`
/// consumers threads moving `u64`s through one
/// `crossbeam_queue::ArrayQueue` of `capacity`, spinning with crossbeam's
/// backoff when it is full or empty (workers `0..pairs` produce).
pub fn array_queue_role(pairs: usize, capacity: usize) -> Role {
    let queue = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(capacity));
    Arc::new(move |index, n| {
        if index < pairs {
            for v in 0..share(n, index, pairs) {
                let backoff = crossbeam_utils::Backoff::new();
                while queue.push(v).is_err() {
                    backoff.snooze();
                }
            }
        } else {
            for _ in 0..share(n, index - pairs, pairs) {
                let backoff = crossbeam_utils::Backoff::new();
                loop {
                    if let Some(v) = queue.pop() {
                        std::hint::black_box(v);
                        break;
                    }
                    backoff.snooze();
                }
            }
        }
    })
}
