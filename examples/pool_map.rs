//! Squares of 1 to 10 with a pool of five workers: the `Pool.map` program
//! of the tutorials.
//!
//! ```text
//! cargo run --release --example pool_map
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def square(n):
//!     return n * n
//!
//! if __name__ == '__main__':
//!     with Pool(5) as pool:
//!         print(pool.map(square, range(1, 11)))
//! ```
//!
//! Prints:
//!
//! ```text
//! [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]
//! ```

fn square(n: u64) -> u64 {
    n * n
}

fn main() -> Result<(), mproc::PoolError> {
    // Dispatches the processes mproc starts (the fork server, when this
    // process has several threads); returns at once otherwise.
    mproc::init();
    // `with Pool(5) as pool:`: dropping the pool terminates it.
    let pool = mproc::Pool::new(5)?;
    println!("{:?}", pool.map(square, 1..=10)?);
    Ok(())
}
