//! Three processes print one item each, taking turns on a shared
//! `mproc::Lock`, so their lines never interleave.
//!
//! ```text
//! cargo run --release --example lock_printer
//! ```
//!
//! Ports this Python program:
//!
//! ```python
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
//!     for item in ['tango', 'foxtrot', 10]:
//!         Process(target=printer, args=(item, lock)).start()
//! ```
//!
//! Prints the three items, one per line, usually in this order:
//!
//! ```text
//! tango
//! foxtrot
//! 10
//! ```

use std::fmt::Display;

use mproc::{Lock, Process};

fn printer(item: impl Display, lock: &Lock) {
    // The guard releases the lock when it drops, panic or not.
    let _guard = lock.lock();
    println!("{item}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    let items: [Box<dyn Display + Send>; 3] =
        [Box::new("tango"), Box::new("foxtrot"), Box::new(10)];
    let mut procs = Vec::new();
    for item in items {
        let lock = lock.clone();
        procs.push(Process::spawn(move || printer(item, &lock))?);
    }
    // Python joins non-daemon processes at exit; mproc would too, but
    // joining here also reports a child that failed.
    for proc in &mut procs {
        proc.join()?;
    }
    Ok(())
}
