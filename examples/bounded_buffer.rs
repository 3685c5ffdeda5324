//! The classic bounded buffer: a producer process and a consumer process
//! share a two-slot buffer, guarded by two counting semaphores (`empty`
//! slots, `full` slots) and a lock.
//!
//! ```text
//! cargo run --release --example bounded_buffer
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Process, Semaphore, Lock, Array
//!
//! def producer(buf, empty, full, lock):
//!     for i in range(6):
//!         empty.acquire()
//!         with lock:
//!             buf[i % 2] = i
//!             print('Producer put', i)
//!         full.release()
//!
//! def consumer(buf, empty, full, lock):
//!     for i in range(6):
//!         full.acquire()
//!         with lock:
//!             print('Consumer get', buf[i % 2])
//!         empty.release()
//!
//! if __name__ == '__main__':
//!     buf, empty, full, lock = Array('i', 2), Semaphore(2), Semaphore(0), Lock()
//!     p = Process(target=producer, args=(buf, empty, full, lock))
//!     c = Process(target=consumer, args=(buf, empty, full, lock))
//!     p.start(); c.start(); p.join(); c.join()
//! ```
//!
//! The producer can run at most two items ahead, so the output alternates
//! in pairs, typically:
//!
//! ```text
//! Producer put 0
//! Producer put 1
//! Consumer get 0
//! Consumer get 1
//! Producer put 2
//! Producer put 3
//! ...
//! ```

use mproc::{Array, Lock, Process, Semaphore};

const ITEMS: i32 = 6;

/// The buffer, its two semaphores and its lock: everything both processes
/// share (each field is a handle to shared memory).
#[derive(Clone)]
struct Shared {
    buf: Array<i32>,
    empty: Semaphore,
    full: Semaphore,
    lock: Lock,
}

fn producer(shared: &Shared) {
    for i in 0..ITEMS {
        shared.empty.acquire();
        {
            let _guard = shared.lock.lock();
            shared
                .buf
                .set(i as usize % 2, i)
                .expect("index within the buffer");
            println!("Producer put {i}");
        }
        shared.full.release().expect("full never exceeds its bound");
    }
}

fn consumer(shared: &Shared) {
    for i in 0..ITEMS {
        shared.full.acquire();
        {
            let _guard = shared.lock.lock();
            let item = shared
                .buf
                .get(i as usize % 2)
                .expect("index within the buffer");
            println!("Consumer get {item}");
        }
        shared
            .empty
            .release()
            .expect("empty never exceeds its bound");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shared = Shared {
        buf: Array::new(&[0; 2])?,
        empty: Semaphore::new(2)?,
        full: Semaphore::new(0)?,
        lock: Lock::new()?,
    };
    let mut p = {
        let shared = shared.clone();
        Process::spawn(move || producer(&shared))?
    };
    let mut c = {
        let shared = shared.clone();
        Process::spawn(move || consumer(&shared))?
    };
    p.join()?;
    c.join()?;
    Ok(())
}
