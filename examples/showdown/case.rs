//! The case registry: every (workload, implementation) pair the showdown
//! measures, and how one measurement is taken.
//!
//! A workload family is a module with a `cases(&Config) -> Vec<Case>`
//! function; `main` concatenates the families. Adding a workload is one
//! more module and one more line in `main::registry`.

use std::time::Duration;

/// How a workload's numbers read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Operations per second: higher is better, shown in M/s (or GB/s).
    Rate,
    /// Time per operation: lower is better, shown in us.
    Latency,
}

/// A workload: what is measured, the same for every implementation.
#[derive(Clone)]
pub struct Workload {
    /// A stable key, as the Python script names it: `stream/u64/1p1c`.
    pub key: String,
    /// What a reader sees: `u64, 1P/1C`.
    pub label: String,
    /// How the numbers read.
    pub unit: Unit,
    /// Bytes per operation, to show a rate in GB/s (0: show M ops/s).
    pub bytes: u64,
}

impl Workload {
    pub fn new(key: impl Into<String>, label: impl Into<String>, unit: Unit) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            unit,
            bytes: 0,
        }
    }

    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }
}

/// One measurement: `ops` operations took `elapsed`.
pub struct Sample {
    pub ops: u64,
    pub elapsed: Duration,
}

/// Runs `n` units of a workload (set up, measure, tear down) and returns
/// the measured part.
pub type Run = Box<dyn FnMut(u64) -> Sample>;

/// One implementation of one workload.
pub struct Case {
    pub workload: Workload,
    /// `mproc PodQueue (processes)`, `crossbeam ArrayQueue (threads)`, ...
    pub implementation: String,
    /// mproc's own implementation (the numerator of the ratios).
    pub mproc: bool,
    pub run: Run,
    /// Units per measurement, found by [`Case::calibrate`].
    pub n: u64,
}

impl Case {
    pub fn new(
        workload: &Workload,
        implementation: impl Into<String>,
        mproc: bool,
        run: impl FnMut(u64) -> Sample + 'static,
    ) -> Self {
        Self {
            workload: workload.clone(),
            implementation: implementation.into(),
            mproc,
            run: Box::new(run),
            n: 1,
        }
    }

    /// Finds the number of units that takes about `budget` (which also
    /// warms the case up).
    pub fn calibrate(&mut self, budget: Duration) {
        let mut n = 1u64;
        loop {
            let sample = (self.run)(n);
            let took = sample.elapsed.max(Duration::from_micros(1));
            if took >= budget / 4 || n >= 1 << 40 {
                let scaled = n as f64 * budget.as_secs_f64() / took.as_secs_f64();
                self.n = (scaled as u64).max(1);
                return;
            }
            n = n.saturating_mul(if took < budget / 100 { 10 } else { 4 });
        }
    }

    /// One measurement, in seconds per operation.
    pub fn measure(&mut self) -> f64 {
        let sample = (self.run)(self.n);
        sample.elapsed.as_secs_f64() / sample.ops.max(1) as f64
    }
}
