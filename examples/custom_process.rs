//! A process as a type: a struct implementing `mproc::Run`, the Rust
//! counterpart of subclassing Python's `Process` and overriding `run`.
//!
//! ```text
//! cargo run --release --example custom_process
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! import os
//! from multiprocessing import Process
//!
//! class Worker(Process):
//!     def __init__(self, loops):
//!         super().__init__()
//!         self.loops = loops
//!
//!     def run(self):
//!         for count in range(self.loops):
//!             print(f'process {os.getpid()}: loop {count}')
//!
//! if __name__ == '__main__':
//!     workers = [Worker(loops) for loops in (1, 2, 3)]
//!     for worker in workers:
//!         worker.start()
//!     for worker in workers:
//!         worker.join()
//! ```
//!
//! Prints (pids and the order of the processes vary), and, beyond Python,
//! what each `run` returned:
//!
//! ```text
//! process 51234: loop 0
//! process 51235: loop 0
//! process 51235: loop 1
//! process 51236: loop 0
//! process 51236: loop 1
//! process 51236: loop 2
//! Process-1 (pid 51234) ran 1 loop(s)
//! Process-2 (pid 51235) ran 2 loop(s)
//! Process-3 (pid 51236) ran 3 loop(s)
//! ```

use mproc::{Process, ProcessError, Run};

/// What the child runs: the fields are the constructor's arguments.
struct Worker {
    loops: u32,
}

impl Run for Worker {
    /// `run` returns the number of loops it made to the parent's `join`.
    type Output = u32;

    fn run(self) -> u32 {
        let pid = std::process::id();
        for count in 0..self.loops {
            println!("process {pid}: loop {count}");
        }
        self.loops
    }
}

fn main() -> Result<(), ProcessError> {
    let mut workers = Vec::new();
    for loops in 1..=3 {
        workers.push(Process::builder().start(Worker { loops })?);
    }
    for worker in &mut workers {
        let loops = worker.join()?;
        println!(
            "{} (pid {}) ran {loops} loop(s)",
            worker.name(),
            worker.pid()
        );
    }
    Ok(())
}
