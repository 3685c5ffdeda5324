//! Who this process is, who its parent is, and which children it has:
//! [`current_process`], [`parent_process`], [`active_children`],
//! [`cpu_count`], and what happens to children when this process exits.
//!
//! Each process keeps one record of itself (its name, its place in the
//! tree, whether it is a daemon) and a registry of the children it started.
//! A record copied into a child by `fork` belongs to the parent: every
//! access checks the pid it was made for, and a child starts from a fresh
//! one (the child's own name comes from [`enter_child`]).
//!
//! At exit (returning from `main` or `std::process::exit`) a process that
//! started children runs Python's exit function: it logs `process shutting
//! down`, terminates its daemon children (`SIGTERM`) and waits for all of
//! them. A child started by mproc runs the same function when its closure
//! returns. Daemon children are also asked to die with their parent
//! (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), so that a parent killed with
//! `SIGKILL` does not leave them behind.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mproc_os::pipe::{PipeReader, PipeWriter};
use mproc_os::process::{current_pid, parent_pid};
use serde::{Deserialize, Serialize};

use crate::process::ChildKind;

/// How a child learns who it is: sent through `fork` (a copy), or in the
/// request of a `Spawn` / `ForkServer` start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChildSetup {
    /// The child's name (`Process-N` unless the builder named it).
    pub(crate) name: String,
    /// Its place in the tree: `[1]` for `Process-1`, `[1, 2]` for the second
    /// child of `Process-1`.
    pub(crate) identity: Vec<u32>,
    /// Whether it is a daemon.
    pub(crate) daemon: bool,
    /// The process that asked for it (not the fork server that forked it).
    pub(crate) parent_pid: u32,
    /// That process's name; `None` for a child forked directly, which
    /// finds it in the record it inherits.
    pub(crate) parent_name: Option<String>,
    /// The level of [`log_to_stderr`](crate::log_to_stderr) in the parent,
    /// if it logs through it: a child that does not inherit the logger
    /// (`Spawn`, `ForkServer`) installs it with this level.
    pub(crate) log_level: Option<usize>,
}

/// The record of this process.
pub(crate) struct Me {
    /// The process this record is about: a record inherited through a fork
    /// that did not go through [`enter_child`] is replaced.
    pid: u32,
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    /// Children started so far (numbers the next default name).
    started: u32,
    parent: Option<ParentProcess>,
    /// Children started and not yet known to be reaped.
    children: Vec<Arc<Entry>>,
    /// Whether the exit function is registered in this process.
    exit_hook: bool,
    /// The output pipe of a joined child, empty, for the next child forked
    /// directly (see [`keep_spare_pipe`]).
    spare_pipe: Option<(PipeReader, PipeWriter)>,
}

impl Me {
    fn main(pid: u32) -> Me {
        Me {
            pid,
            name: "MainProcess".to_owned(),
            identity: Vec::new(),
            daemon: false,
            started: 0,
            parent: None,
            children: Vec::new(),
            exit_hook: false,
            spare_pipe: None,
        }
    }
}

static ME: OnePage<Mutex<Option<Me>>> = OnePage(Mutex::new(None));

/// A value aligned so that it never straddles two pages (its size is
/// checked below): the record is written on every start and join, and in
/// every forked child, and each page a fork shares that a process then
/// writes costs that process a page fault.
#[repr(C, align(256))]
struct OnePage<T>(T);

const _: () = assert!(core::mem::size_of::<OnePage<Mutex<Option<Me>>>>() <= 256);

/// The record of this process, made fresh if there is none yet or the one
/// there was inherited from a parent.
///
/// Never log while holding it: the logger asks for the name.
fn me() -> MutexGuard<'static, Option<Me>> {
    let mut me = ME.0.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = current_pid();
    if me.as_ref().is_none_or(|me| me.pid != pid) {
        // The parent's children are not ours; dropping their handles here
        // only closes this process's copies of their pidfds.
        *me = Some(Me::main(pid));
    }
    me
}

fn with_me<R>(f: impl FnOnce(&mut Me) -> R) -> R {
    let mut guard = me();
    match guard.as_mut() {
        Some(me) => f(me),
        // `me()` always leaves a record.
        None => unreachable!("the process record was just made"),
    }
}

/// A child in the registry, shared with its [`Process`](crate::Process)
/// handle (if the handle still exists).
pub(crate) struct Entry {
    pub(crate) pid: u32,
    pub(crate) name: String,
    /// Its place in the tree (see [`ChildSetup::identity`]). Kept here
    /// rather than freed once the child is started: a forked child shares
    /// the allocator's pages with its parent until it exits, and a free
    /// in between would make the parent copy them.
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    /// Locked while somebody waits for the child.
    pub(crate) child: Mutex<ChildKind>,
}

impl Entry {
    pub(crate) fn child(&self) -> MutexGuard<'_, ChildKind> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the child has ended (and then it is reaped). A child that
    /// somebody is waiting for right now counts as running.
    fn has_ended(&self) -> bool {
        match self.child.try_lock() {
            Ok(mut child) => !matches!(child.try_wait(), Ok(None)),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                !matches!(poisoned.into_inner().try_wait(), Ok(None))
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }
}

/// The name and identity for the next child, and the setup it starts with.
/// A child `forked` directly from this process inherits this process's
/// record, parent name included.
pub(crate) fn next_child(name: Option<String>, daemon: bool, forked: bool) -> ChildSetup {
    with_me(|me| {
        me.started += 1;
        let mut identity = Vec::with_capacity(me.identity.len() + 1);
        identity.extend_from_slice(&me.identity);
        identity.push(me.started);
        let name = name.unwrap_or_else(|| default_name(&identity));
        ChildSetup {
            name,
            identity,
            daemon,
            parent_pid: me.pid,
            parent_name: (!forked).then(|| me.name.clone()),
            log_level: crate::logging::inherited_level().map(|level| level as usize),
        }
    })
}

/// `Process-1`, `Process-1:2`, ...: one allocation, no temporaries.
fn default_name(identity: &[u32]) -> String {
    use std::fmt::Write;
    let mut name = String::with_capacity(8 + 11 * identity.len());
    name.push_str("Process");
    for (i, number) in identity.iter().enumerate() {
        name.push(if i == 0 { '-' } else { ':' });
        // Writing to a `String` cannot fail.
        let _ = write!(name, "{number}");
    }
    name
}

/// Records a started child (and reaps the ones that have ended).
pub(crate) fn register(entry: Arc<Entry>) {
    let hook = with_me(|me| {
        me.children.retain(|child| !child.has_ended());
        me.children.push(entry);
        !std::mem::replace(&mut me.exit_hook, true)
    });
    if hook && mproc_os::process::at_exit(run_exit_function).is_err() {
        log::warn!("cannot register the exit function: children are not joined at exit");
    }
}

/// Forgets a child that was reaped through its handle.
pub(crate) fn unregister(pid: u32) {
    with_me(|me| me.children.retain(|child| child.pid != pid));
}

/// Keeps the output pipe of a child that was joined through its handle
/// for the next child this process forks directly: a spawn-and-join loop
/// then reuses one pipe instead of making one per child and closing both
/// ends (three system calls fewer per child). The record holds it so that
/// it belongs to this process: a child's record is a new one.
///
/// The pipe is empty (the child has exited and everything in it has been
/// read), and completion is decided by a child's exit, never by end of
/// file, so the parent's keeping the write end changes nothing for the
/// next child. Another process may hold a copy of the write end (a
/// grandchild forked while the child ran), as of any pipe; mproc never
/// writes through such a copy. A spare it replaces is closed.
pub(crate) fn keep_spare_pipe(reader: PipeReader, writer: PipeWriter) {
    let replaced = with_me(|me| me.spare_pipe.replace((reader, writer)));
    drop(replaced);
}

/// Takes this process's spare output pipe (see [`keep_spare_pipe`]).
pub(crate) fn take_spare_pipe() -> Option<(PipeReader, PipeWriter)> {
    with_me(|me| me.spare_pipe.take())
}

/// This process's record, locked across a `fork` by the forking thread, so
/// that no other thread holds it at that moment: the child inherits it
/// locked by its one thread, which [`enter_child`] then uses, and the
/// parent drops the guard.
pub(crate) type Held = MutexGuard<'static, Option<Me>>;

/// Locks this process's record for a `fork` (see [`Held`]).
pub(crate) fn hold() -> Held {
    me()
}

/// Becomes the child described by `setup`: run first thing in every child
/// mproc starts. `os_parent` is the process that forked us (the fork
/// server's pid for `ForkServer`); `held` is the record's lock when the
/// caller held it across the fork.
///
/// A daemon asks the kernel for `SIGKILL` when `os_parent` dies, and exits
/// at once if it already has.
pub(crate) fn enter_child(setup: ChildSetup, os_parent: u32, held: Option<Held>) {
    let pid = current_pid();
    let ChildSetup {
        name,
        identity,
        daemon,
        parent_pid,
        parent_name,
        log_level,
    } = setup;
    let mut guard = held.unwrap_or_else(|| ME.0.lock().unwrap_or_else(PoisonError::into_inner));
    let parent_name = match parent_name {
        Some(name) => name,
        // Forked directly: the record in place is the parent's (it made
        // one to number this child), so its name is already in memory.
        None => guard
            .as_mut()
            .map(|parent| std::mem::take(&mut parent.name))
            .unwrap_or_default(),
    };
    let inherited = guard.replace(Me {
        pid,
        name,
        identity,
        daemon,
        started: 0,
        parent: Some(ParentProcess {
            pid: parent_pid,
            name: parent_name,
        }),
        children: Vec::new(),
        exit_hook: false,
        spare_pipe: None,
    });
    drop(guard);
    let mut inherited = inherited;
    // The parent's spare pipe is the parent's: close our copies.
    drop(
        inherited
            .as_mut()
            .and_then(|parent| parent.spare_pipe.take()),
    );
    match inherited {
        // The parent's children are not ours: close our copies of their
        // descriptors, without waiting for or signalling them.
        Some(parent) if !parent.children.is_empty() => drop(parent),
        // Nothing to close: leave the parent's record where it lies.
        // Freeing it would only write to heap pages this child still
        // shares with its parent, and copying them is most of what a
        // short-lived child costs.
        other => core::mem::forget(other),
    }
    if let Some(level) = log_level {
        crate::logging::install(level);
    }
    if daemon {
        let parent_alive = mproc_os::process::set_parent_death_signal(
            Some(mproc_os::process::Signal::KILL),
            os_parent,
        );
        if matches!(parent_alive, Ok(false)) {
            // Our parent is already gone: a daemon does not outlive it.
            mproc_os::process::exit_now(crate::process::EXIT_ORPHANED);
        }
    }
}

/// The name of this process: `MainProcess`, `Process-N`, or what its
/// builder named it.
pub(crate) fn name() -> String {
    with_me(|me| me.name.clone())
}

/// What [`current_process`] and [`active_children`] tell about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ProcessInfo {
    /// Its name: `MainProcess` for the first process, `Process-N` (or
    /// `Process-N:M` for a child's child) unless named by its builder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it is a daemon (terminated when its parent exits).
    pub fn daemon(&self) -> bool {
        self.daemon
    }
}

/// This process: its name and pid (Python's `current_process()`).
///
/// # Examples
///
/// ```
/// let me = mproc_pool::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// ```
pub fn current_process() -> ProcessInfo {
    with_me(|me| ProcessInfo {
        name: me.name.clone(),
        pid: me.pid,
        daemon: me.daemon,
    })
}

/// The process that started this one, as [`parent_process`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentProcess {
    pid: u32,
    name: String,
}

impl ParentProcess {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs.
    ///
    /// A child forked directly sees its parent's pid as its own parent pid
    /// until the parent dies; a child started through the fork server asks
    /// the kernel whether the pid still exists (a pid reused in between
    /// would count as alive).
    pub fn is_alive(&self) -> bool {
        parent_pid() == self.pid || mproc_os::process::exists(self.pid)
    }
}

/// The process that started this one, or `None` in a process mproc did not
/// start (Python's `parent_process()`).
pub fn parent_process() -> Option<ParentProcess> {
    with_me(|me| me.parent.clone())
}

/// The children of this process that are still running; those that have
/// ended since the last look are reaped (Python's `active_children()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut child = mproc_pool::Process::spawn(|| std::thread::sleep(Duration::from_millis(200)))?;
/// assert!(mproc_pool::active_children().iter().any(|c| c.pid() == child.pid()));
/// child.join()?;
/// assert!(mproc_pool::active_children().is_empty());
/// # Ok::<(), mproc_pool::ProcessError>(())
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    with_me(|me| {
        me.children.retain(|child| !child.has_ended());
        me.children
            .iter()
            .map(|child| ProcessInfo {
                name: child.name.clone(),
                pid: child.pid,
                daemon: child.daemon,
            })
            .collect()
    })
}

/// The number of CPUs this process may run on (its affinity mask, as
/// `std::thread::available_parallelism` reports it; 1 if unknown).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How long a daemon child gets to exit after `SIGTERM` at its parent's
/// exit before it is sent `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(1);

/// Python's exit function: terminate the daemon children, then wait for
/// every child. Run when a child's closure returns, and at the exit of a
/// process that started children.
pub(crate) fn exit_function() {
    log::info!("process shutting down");
    let children = with_me(|me| std::mem::take(&mut me.children));
    for child in children.iter().filter(|child| child.daemon) {
        log::info!("calling terminate() for daemon {}", child.name);
        let _ = child.child().terminate();
    }
    for child in &children {
        log::info!("calling join() for process {}", child.name);
        let mut kind = child.child();
        if child.daemon && matches!(kind.wait_timeout(DAEMON_GRACE), Ok(None)) {
            let _ = kind.kill();
        }
        let _ = kind.wait();
    }
}

extern "C" fn run_exit_function() {
    // Only in the process that registered it: a child forked by other
    // code and ending with `exit` must not join its parent's children.
    let mine =
        ME.0.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|me| me.pid == current_pid());
    if mine {
        exit_function();
    }
}
