//! A daemon process dies with the process that started it; a daemon that
//! is joined runs to its end.
//!
//! ```text
//! cargo run --release --example daemon
//! ```
//!
//! Ports this Python program, and its variant that calls `p.join()` before
//! the main program ends:
//!
//! ```python
//! import time
//! from multiprocessing import Process
//!
//! def ticker():
//!     for n in range(10):
//!         print(f'daemon: tick {n}', flush=True)
//!         time.sleep(0.1)
//!
//! if __name__ == '__main__':
//!     p = Process(target=ticker, daemon=True)
//!     p.start()
//!     time.sleep(0.35)
//!     print('main: ends')    # the daemon is terminated here
//! ```
//!
//! The first part needs a main program that ends while the rest of this
//! one goes on, so a child process (`Process-1`) plays it. Prints:
//!
//! ```text
//! daemon: tick 0
//! daemon: tick 1
//! daemon: tick 2
//! daemon: tick 3
//! main: ends after 350 ms
//! daemon printed 4 of 10 ticks: terminated when its parent ended
//! daemon: tick 0
//! ...
//! daemon: tick 9
//! daemon printed 10 of 10 ticks: joined, so it ran to its end (exit code 0)
//! ```

use std::time::Duration;

use mproc::{Process, Value};

const TICKS: u32 = 10;

/// Prints a tick every 100 ms, counting them in `printed`.
fn ticker(printed: &Value<u32>) {
    for n in 0..TICKS {
        println!("daemon: tick {n}");
        printed.set(n + 1);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The Python program: the daemon's parent ends after 350 ms.
    let printed = Value::new(0u32)?;
    let mut main_program = {
        let printed = printed.clone();
        Process::spawn(move || {
            let _daemon = Process::builder()
                .daemon(true)
                .spawn(move || ticker(&printed))
                .expect("start the daemon");
            std::thread::sleep(Duration::from_millis(350));
            println!("main: ends after 350 ms");
        })?
    };
    main_program.join()?;
    println!(
        "daemon printed {} of {TICKS} ticks: terminated when its parent ended",
        printed.get()
    );

    // The variant: the daemon is joined before its parent ends.
    let printed = Value::new(0u32)?;
    let mut daemon = {
        let printed = printed.clone();
        Process::builder()
            .daemon(true)
            .spawn(move || ticker(&printed))?
    };
    daemon.join()?;
    println!(
        "daemon printed {} of {TICKS} ticks: joined, so it ran to its end (exit code {})",
        printed.get(),
        daemon.exitcode().unwrap_or(-1)
    );
    Ok(())
}
