//! Helpers for the integration tests: every wait has a deadline, so a hang
//! fails the test instead of stalling CI, and every child is killed when its
//! guard drops (on success or on panic).

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

/// Forks a child that runs `f`, and kills it when the returned guard drops
/// (so a failing test leaves nothing running).
///
/// The test harness runs every test on a thread of its own, so the test
/// process always has several threads; its other threads only wait, so
/// forking it is safe and the guard opts in.
pub fn spawn<T, F>(f: F) -> Guard<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T + Send + 'static,
{
    Guard(
        Process::builder()
            .allow_threaded_fork(true)
            .spawn(f)
            .expect("fork a child"),
    )
}

/// A child that is killed when the guard drops.
pub struct Guard<T>(pub Process<T>);

impl<T> std::ops::Deref for Guard<T> {
    type Target = Process<T>;
    fn deref(&self) -> &Process<T> {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Guard<T> {
    fn deref_mut(&mut self) -> &mut Process<T> {
        &mut self.0
    }
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}
