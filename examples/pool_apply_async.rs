//! `apply_async` with a timeout: a doubler answers in time, a sleeper does
//! not, and the program still exits at once.
//!
//! ```text
//! cargo run --release --example pool_apply_async
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! import time
//! from multiprocessing import Pool, TimeoutError
//!
//! def doubler(n):
//!     return n * 2
//!
//! def sleeper(seconds):
//!     time.sleep(seconds)
//!     return seconds
//!
//! if __name__ == '__main__':
//!     with Pool(2) as pool:
//!         print(pool.apply_async(doubler, (25,)).get(timeout=1))
//!         try:
//!             pool.apply_async(sleeper, (10,)).get(timeout=1)
//!         except TimeoutError:
//!             print('We lacked patience and got a multiprocessing.TimeoutError')
//! ```
//!
//! Prints (then exits after about a second, not ten):
//!
//! ```text
//! 50
//! We lacked patience and got a timeout: the result is not ready yet
//! terminated the pool after 1.0 s
//! ```

use std::time::{Duration, Instant};

use mproc::{Pool, PoolError};

fn doubler(n: u32) -> u32 {
    n * 2
}

fn sleeper(seconds: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(seconds));
    seconds
}

fn main() -> Result<(), PoolError> {
    mproc::init();
    let start = Instant::now();
    let pool = Pool::new(2)?;
    let mut doubled = pool.apply_async(doubler, 25)?;
    println!("{}", doubled.get_timeout(Duration::from_secs(1))?);
    let mut slow = pool.apply_async(sleeper, 10)?;
    match slow.get_timeout(Duration::from_secs(1)) {
        Err(error @ PoolError::Timeout) => {
            println!("We lacked patience and got a timeout: {error}")
        }
        other => println!("unexpected: {other:?}"),
    }
    // Python's `with` block ends with `terminate()`: the sleeper is killed,
    // not waited for.
    pool.terminate();
    println!(
        "terminated the pool after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
