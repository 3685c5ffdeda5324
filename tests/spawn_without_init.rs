//! A program that uses `StartMethod::Spawn` without dispatching its
//! children (no `mproc::init()` first in `main`; in a test binary, no
//! `mproc::enable_test_support!()`) gets a clear error, not a hang or a
//! confusing I/O error: the child runs `main` instead of its entry point
//! and sends nothing back.

mod common;

use mproc::{Process, ProcessError, StartMethod};

fn double(n: u32) -> u32 {
    2 * n
}

#[test]
fn spawn_without_init_reports_the_missing_dispatch() {
    let mut child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(double, 21)
        .expect("the program starts again");
    match child.join_timeout(common::WATCHDOG) {
        Err(ProcessError::StartFailed { reason, .. }) => {
            assert!(reason.contains("mproc::init()"), "{reason}");
            assert!(reason.contains("enable_test_support"), "{reason}");
        }
        other => panic!("expected a start failure naming mproc::init(), got {other:?}"),
    }
}
