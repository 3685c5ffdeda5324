//! `imap_unordered`: results printed as the workers finish them, not in
//! input order.
//!
//! ```text
//! cargo run --release --example pool_imap_unordered
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! import time
//! from multiprocessing import Pool
//!
//! def slow_square(n):
//!     time.sleep((5 - n) * 0.1)
//!     return n, n * n
//!
//! if __name__ == '__main__':
//!     with Pool(3) as pool:
//!         for n, square in pool.imap_unordered(slow_square, range(6)):
//!             print(f'{n} squared is {square}')
//! ```
//!
//! Prints (the later inputs sleep less, so they tend to come out first):
//!
//! ```text
//! 2 squared is 4
//! 1 squared is 1
//! 0 squared is 0
//! 5 squared is 25
//! 4 squared is 16
//! 3 squared is 9
//! ```

use std::time::Duration;

use mproc::{Pool, PoolError};

fn slow_square(n: u64) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis((5 - n) * 100));
    (n, n * n)
}

fn main() -> Result<(), PoolError> {
    mproc::init();
    let pool = Pool::new(3)?;
    for result in pool.imap_unordered(slow_square, 0..6) {
        let (n, square) = result?;
        println!("{n} squared is {square}");
    }
    Ok(())
}
