//! A progress bar over `imap_unordered`: the bar moves as each result
//! comes back (the tutorials' `tqdm(pool.imap_unordered(...))`).
//!
//! ```text
//! cargo run --release --example pool_progress
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Pool
//! from tqdm import tqdm
//!
//! def work(n):
//!     return sum(i * i for i in range(n * 1000))
//!
//! if __name__ == '__main__':
//!     with Pool() as pool:
//!         total = sum(tqdm(pool.imap_unordered(work, range(200)), total=200))
//!     print(total)
//! ```
//!
//! Draws a bar on a terminal (nothing when stderr is not one), then prints
//! the total:
//!
//! ```text
//! [00:00:01] ######################################## 200/200 tasks
//! 200 tasks done, checksum 132002009986650000
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use mproc::{Pool, PoolError};

const TASKS: u64 = 200;

/// Some work that takes longer for larger `n`.
fn work(n: u64) -> u64 {
    (0..n * 1000).fold(0u64, |sum, i| sum.wrapping_add(i.wrapping_mul(i)))
}

fn main() -> Result<(), PoolError> {
    mproc::init();
    let pool = Pool::new(mproc::cpu_count())?;
    let bar = ProgressBar::new(TASKS);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:40} {pos}/{len} tasks")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut checksum = 0u64;
    for result in bar.wrap_iter(pool.imap_unordered(work, 0..TASKS)) {
        checksum = checksum.wrapping_add(result?);
    }
    bar.finish();
    println!("{TASKS} tasks done, checksum {checksum}");
    Ok(())
}
