//! A model of the futex for the loom checks (compiled under
//! `--cfg loom` only).
//!
//! [`ModelWait`] keeps one wait queue behind a loom mutex: `wait` checks the
//! word and enqueues under the mutex, `wake` dequeues under it, so a waker
//! that changed the word before calling `wake` either finds the sleeper or
//! the sleeper sees the new value: the futex contract. A wait with a deadline
//! gives the scheduler a chance to wake it and then times out if nobody did,
//! so loom explores both outcomes of every timed wait.
//!
//! # Spinning
//!
//! A ring waiter that finds a slot still held by a party that claimed it
//! earlier backs off ([`Wait::relax`]) until that party finishes a few
//! straight-line steps. The kernel's scheduler always lets it finish; loom's
//! exploration does not promise that, and with two spinners it can schedule
//! them forever (tokio-rs/loom#398 reports the same for heapless's ring). So
//! after [`STOP_EXPLORING_AFTER`] back-off rounds in one execution the model
//! calls `loom::stop_exploring`: everything up to that point is explored, and
//! the rest of that execution follows loom's default schedule, which prefers
//! the threads that have not been yielding (the claimer), as a real
//! scheduler would.

// Bookkeeping of the model, not shared state under test: a plain std
// atomic that loom does not explore.
#[allow(clippy::disallowed_types)]
use std::sync::atomic::AtomicBool;
use std::vec::Vec;

use loom::sync::{Condvar, Mutex};

use crate::sync::{AtomicU32, Ordering};
use crate::wait::{TimedOut, Wait};

/// The deadline of a model wait: "this wait may time out".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MayTimeOut;

#[derive(Debug, Default)]
struct Sleepers {
    next_id: u64,
    /// (address of the word, sleeper id)
    queue: Vec<(usize, u64)>,
}

/// Back-off rounds after which an execution stops branching (see the module
/// docs).
pub const STOP_EXPLORING_AFTER: u32 = 3;

/// The futex model. See the module docs. Make one per model execution.
#[derive(Debug, Default)]
pub struct ModelWait {
    sleepers: Mutex<Sleepers>,
    woken: Condvar,
    /// Whether this execution has stopped branching. Bookkeeping of the
    /// model, not shared state under test, hence a plain std atomic.
    #[allow(clippy::disallowed_types)]
    stopped: AtomicBool,
    /// Owners may die ([`ModelWait::with_deaths`]): lockers check liveness.
    deaths: bool,
    /// The owner id that has died, 0 for none (shared state under test:
    /// a death is an event other threads observe).
    dead: AtomicU32,
    /// Liveness checks that found the owner alive, in this execution
    /// (bookkeeping).
    #[allow(clippy::disallowed_types)]
    checks: std::sync::atomic::AtomicU32,
}

impl ModelWait {
    /// A model with no sleepers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A model in which an owner may die ([`ModelWait::die`]): a locker
    /// without a deadline sleeps with one that may time out, then checks
    /// the owner, as mproc-os does every 10 ms.
    pub fn with_deaths() -> Self {
        Self {
            deaths: true,
            ..Self::default()
        }
    }

    /// Owner `id` dies (it must hold nothing it will release).
    pub fn die(&self, id: u32) {
        self.dead.store(id, Ordering::SeqCst);
    }
}

impl Wait for ModelWait {
    type Deadline = MayTimeOut;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<MayTimeOut>,
    ) -> Result<(), TimedOut> {
        let addr = word as *const AtomicU32 as usize;
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if word.load(Ordering::SeqCst) != expected {
            return Ok(());
        }
        let id = sleepers.next_id;
        sleepers.next_id += 1;
        sleepers.queue.push((addr, id));
        let queued = |s: &Sleepers| s.queue.iter().any(|&(_, i)| i == id);
        if deadline.is_some() {
            // Let others run (and maybe wake us), then time out if not woken.
            drop(sleepers);
            loom::thread::yield_now();
            let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            return match sleepers.queue.iter().position(|&(_, i)| i == id) {
                Some(at) => {
                    sleepers.queue.remove(at);
                    Err(TimedOut)
                }
                None => Ok(()),
            };
        }
        while queued(&sleepers) {
            sleepers = self.woken.wait(sleepers).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn wake(&self, word: &AtomicU32, count: u32) {
        let addr = word as *const AtomicU32 as usize;
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        let mut left = count;
        sleepers.queue.retain(|&(a, _)| {
            if a == addr && left > 0 {
                left -= 1;
                false
            } else {
                true
            }
        });
        drop(sleepers);
        self.woken.notify_all();
    }

    fn expired(&self, _: MayTimeOut) -> bool {
        false
    }

    fn spin_rounds(&self) -> u32 {
        0
    }

    fn check_deadline(&self, deadline: Option<MayTimeOut>) -> (Option<MayTimeOut>, bool) {
        match deadline {
            None if self.deaths => (Some(MayTimeOut), true),
            deadline => (deadline, false),
        }
    }

    fn owner_gone(&self, id: u32, _start: Option<u32>) -> bool {
        if self.dead.load(Ordering::SeqCst) == id {
            return true;
        }
        // A live owner: the checker loops. Bound the exploration of such
        // loops as `relax` does.
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks + 1 >= STOP_EXPLORING_AFTER
            && !self
                .stopped
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            loom::stop_exploring();
        }
        false
    }

    fn relax(&self, round: u32) {
        if round >= STOP_EXPLORING_AFTER
            && !self
                .stopped
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            loom::stop_exploring();
        }
        loom::thread::yield_now();
    }
}
