//! Python's `log_to_stderr`: records of every process, prefixed with their
//! level and the name of the process that wrote them.
//!
//! ```text
//! [INFO/Process-1] child process calling self.run()
//! [INFO/Process-1] process shutting down
//! [INFO/Process-1] process exiting with exitcode 0
//! ```
//!
//! A record is formatted whole and written with one `write` system call,
//! so records of different processes sharing one stderr never interleave
//! mid-line (a pipe guarantees it up to 4096 bytes; terminals and files
//! opened for appending do in practice).

use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The logger [`log_to_stderr`] installs.
struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;
static INSTALLED: AtomicBool = AtomicBool::new(false);

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!("[{level}/{}] {}\n", crate::current::name(), record.args());
        mproc_os::process::write_stderr(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Sends the records of the `log` crate to stderr, each prefixed with
/// `[LEVEL/ProcessName]`, at `level` and above (Python's
/// `multiprocessing.log_to_stderr(level)`).
///
/// mproc itself logs the lifecycle of every child it starts at `Info`
/// (`child process calling self.run()`, `process shutting down`, `process
/// exiting with exitcode 0`). Children started with `Fork` or `ForkServer`
/// inherit the logger; children started with `Spawn` install it again with
/// the same level.
///
/// Calling it again only changes the level. If another logger is already
/// installed, it is left alone and this returns its error.
///
/// # Examples
///
/// ```
/// mproc_pool::log_to_stderr(log::LevelFilter::Info).unwrap();
/// log::info!("hello"); // [INFO/MainProcess] hello
/// ```
///
/// # Errors
///
/// [`log::SetLoggerError`] when a logger other than this one is already
/// installed.
pub fn log_to_stderr(level: LevelFilter) -> Result<(), log::SetLoggerError> {
    if !INSTALLED.load(Ordering::Acquire) {
        log::set_logger(&LOGGER)?;
        INSTALLED.store(true, Ordering::Release);
    }
    log::set_max_level(level);
    Ok(())
}

/// The level a spawned child should log at: `Some` when this process logs
/// through [`log_to_stderr`].
pub(crate) fn inherited_level() -> Option<LevelFilter> {
    INSTALLED.load(Ordering::Acquire).then(log::max_level)
}

/// Installs the logger at the level a parent passed down (a `LevelFilter`
/// as a number); a level out of range is ignored.
pub(crate) fn install(level: usize) {
    let level = LevelFilter::iter().find(|filter| *filter as usize == level);
    if let Some(level) = level {
        // Another logger already installed in this child wins.
        let _ = log_to_stderr(level);
    }
}
