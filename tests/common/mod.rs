//! Helpers for the integration tests: every wait has a deadline, so a hang
//! fails the test instead of stalling CI, and every child is killed and
//! reaped when its `Process` handle drops (on success or on panic).

#![allow(dead_code)]

use std::time::Duration;

use mproc::Process;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long any child may take before the test fails (generous: these
/// machines are shared and slow under load; only hangs should hit it).
pub const WATCHDOG: Duration = Duration::from_secs(300);

/// Joins `process`, failing the test with how it ended if it did not
/// return a value within [`WATCHDOG`].
pub fn join<T: Serialize + DeserializeOwned>(process: &mut Process<T>) -> T {
    let pid = process.pid();
    match process.join_timeout(WATCHDOG) {
        Ok(value) => value,
        Err(error) => panic!("child {pid}: {error}"),
    }
}

/// Spawns `f` in a child process.
pub fn spawn<T, F>(f: F) -> Process<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T + Send + 'static,
{
    Process::spawn(f).expect("fork a child")
}
