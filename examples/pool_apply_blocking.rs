//! `apply` blocks, `apply_async` does not: three workers, four tasks that
//! print when they start and end around a sleep.
//!
//! ```text
//! cargo run --release --example pool_apply_blocking
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! import time
//! from multiprocessing import Pool
//!
//! def task(n):
//!     print(f'task {n} starts', flush=True)
//!     time.sleep(0.5)
//!     print(f'task {n} ends', flush=True)
//!
//! if __name__ == '__main__':
//!     with Pool(3) as pool:
//!         for n in range(4):
//!             pool.apply(task, (n,))
//!     with Pool(3) as pool:
//!         for n in range(4):
//!             pool.apply_async(task, (n,))
//!         pool.close()
//!         pool.join()
//! ```
//!
//! Prints the `apply` part strictly in sequence, then three tasks starting
//! at once with `apply_async` (the order within a group varies):
//!
//! ```text
//! apply:
//! task 0 starts
//! task 0 ends
//! task 1 starts
//! task 1 ends
//! task 2 starts
//! task 2 ends
//! task 3 starts
//! task 3 ends
//! apply_async + close + join:
//! task 0 starts
//! task 1 starts
//! task 2 starts
//! task 0 ends
//! task 3 starts
//! task 1 ends
//! task 2 ends
//! task 3 ends
//! ```

use std::io::Write;
use std::time::Duration;

use mproc::{Pool, PoolError};

fn task(n: u32) {
    let say = |what: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "task {n} {what}");
        let _ = out.flush();
    };
    say("starts");
    std::thread::sleep(Duration::from_millis(500));
    say("ends");
}

fn main() -> Result<(), PoolError> {
    mproc::init();
    println!("apply:");
    let pool = Pool::new(3)?;
    for n in 0..4 {
        pool.apply(task, n)?;
    }
    drop(pool);

    println!("apply_async + close + join:");
    let pool = Pool::new(3)?;
    for n in 0..4 {
        pool.apply_async(task, n)?;
    }
    pool.close();
    pool.join()?;
    Ok(())
}
