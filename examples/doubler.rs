//! Five processes each double a number: the first `multiprocessing`
//! program of most tutorials, in two versions.
//!
//! ```text
//! cargo run --release --example doubler
//! ```
//!
//! Ports this Python program, then its variant that prints
//! `current_process().name` instead of the pid and adds a process named
//! `Test`:
//!
//! ```python
//! import os
//! from multiprocessing import Process
//!
//! def doubler(number):
//!     print(f'{number} doubled to {number * 2} by process id: {os.getpid()}')
//!
//! if __name__ == '__main__':
//!     procs = [Process(target=doubler, args=(n,)) for n in [5, 10, 15, 20, 25]]
//!     for proc in procs:
//!         proc.start()
//!     for proc in procs:
//!         proc.join()
//! ```
//!
//! Prints (pids and order vary; the names count on from the first part):
//!
//! ```text
//! 5 doubled to 10 by process id: 41721
//! 10 doubled to 20 by process id: 41722
//! 15 doubled to 30 by process id: 41723
//! 20 doubled to 40 by process id: 41724
//! 25 doubled to 50 by process id: 41725
//! 5 doubled to 10 by: Process-6
//! 10 doubled to 20 by: Process-7
//! 15 doubled to 30 by: Process-8
//! 20 doubled to 40 by: Process-9
//! 25 doubled to 50 by: Process-10
//! 2 doubled to 4 by: Test
//! ```

use mproc::{Process, ProcessError, current_process};

const NUMBERS: [u64; 5] = [5, 10, 15, 20, 25];

fn doubler(number: u64) {
    println!(
        "{number} doubled to {} by process id: {}",
        number * 2,
        std::process::id()
    );
}

fn named_doubler(number: u64) {
    println!(
        "{number} doubled to {} by: {}",
        number * 2,
        current_process().name()
    );
}

fn main() -> Result<(), ProcessError> {
    let mut procs = Vec::new();
    for number in NUMBERS {
        procs.push(Process::spawn(move || doubler(number))?);
    }
    for proc in &mut procs {
        proc.join()?;
    }

    let mut procs = Vec::new();
    for number in NUMBERS {
        procs.push(Process::spawn(move || named_doubler(number))?);
    }
    procs.push(Process::builder().name("Test").spawn(|| named_doubler(2))?);
    for proc in &mut procs {
        proc.join()?;
    }
    Ok(())
}
