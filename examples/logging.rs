//! The lock printer of `lock_printer.rs` with mproc's logging on: every
//! process reports its lifecycle on stderr, prefixed with its level and
//! name.
//!
//! ```text
//! cargo run --release --example logging
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! import logging
//! import multiprocessing
//! from multiprocessing import Process, Lock
//!
//! def printer(item, lock):
//!     lock.acquire()
//!     try:
//!         print(item)
//!     finally:
//!         lock.release()
//!
//! if __name__ == '__main__':
//!     lock = Lock()
//!     multiprocessing.log_to_stderr()
//!     logger = multiprocessing.get_logger()
//!     logger.setLevel(logging.INFO)
//!     for item in ['tango', 'foxtrot', 10]:
//!         Process(target=printer, args=(item, lock)).start()
//! ```
//!
//! Prints (the items on stdout, the records on stderr; the order of the
//! processes varies):
//!
//! ```text
//! [INFO/Process-1] child process calling self.run()
//! tango
//! [INFO/Process-1] process shutting down
//! [INFO/Process-1] process exiting with exitcode 0
//! [INFO/Process-2] child process calling self.run()
//! foxtrot
//! [INFO/Process-2] process shutting down
//! [INFO/Process-2] process exiting with exitcode 0
//! [INFO/Process-3] child process calling self.run()
//! 10
//! [INFO/Process-3] process shutting down
//! [INFO/Process-3] process exiting with exitcode 0
//! [INFO/MainProcess] process shutting down
//! [INFO/MainProcess] calling join() for process Process-1
//! [INFO/MainProcess] calling join() for process Process-2
//! [INFO/MainProcess] calling join() for process Process-3
//! ```
//!
//! Like the Python program, `main` does not join its children: the exit
//! function does when `main` returns, and logs each one it waits for.

use std::fmt::Display;

use mproc::{Lock, Process};

fn printer(item: impl Display, lock: &Lock) {
    let _guard = lock.lock();
    println!("{item}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mproc::log_to_stderr(log::LevelFilter::Info)?;
    let lock = Lock::new()?;
    let items: [Box<dyn Display + Send>; 3] =
        [Box::new("tango"), Box::new("foxtrot"), Box::new(10)];
    for item in items {
        let lock = lock.clone();
        // Dropping the handle leaves the child running: it is joined when
        // `main` returns.
        Process::spawn(move || printer(item, &lock))?;
    }
    Ok(())
}
