//! The process layer of mproc: Python's `Process` for Rust.
//!
//! * [`Process`]: code running in a child process. [`Process::spawn`]
//!   forks a child that runs a closure; [`Process::builder`] names it, makes
//!   it a daemon, or starts it another way ([`StartMethod`]): through a
//!   single-threaded fork server, or by running the program again. `join`
//!   returns what the child returned (any `T: Serialize +
//!   DeserializeOwned`, sent back with postcard), or a [`ProcessError`] that
//!   says how it ended instead: exit code, signal, or panic message.
//! * Shared objects travel to `ForkServer` and `Spawn` children as
//!   [`Token`](mproc_os::share::Token)s in the arguments of
//!   [`Builder::spawn_fn`]: their file descriptors are sent beside the
//!   serialized arguments (`SCM_RIGHTS`).
//! * [`Pool`]: Python's `Pool` of worker processes (`map`, `imap`,
//!   `apply_async`, ...), tasks given as `fn` items with serde arguments; a
//!   task whose worker panics, is killed or exits fails with a
//!   [`PoolError`] saying so, and the pool replaces the worker.
//! * [`current_process`], [`parent_process`], [`active_children`],
//!   [`cpu_count`].
//! * [`Manager`]: a server process that keeps dicts, lists, values,
//!   locks, queues, ... and hands out typed proxies to them, for this
//!   host's processes and, over TCP with an authkey, other programs
//!   ([`manager`]).
//! * [`log_to_stderr`]: records prefixed with `[LEVEL/ProcessName]`.
//! * [`init`]: first thing in `main` for programs that use
//!   [`StartMethod::Spawn`]; [`enable_test_support!`] does the same for test
//!   binaries.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod current;
mod entry;
mod forkserver;
mod logging;
pub mod manager;
mod pool;
mod process;
mod spawn;

pub use current::{
    ParentProcess, ProcessInfo, active_children, cpu_count, current_process, parent_process,
};
pub use logging::log_to_stderr;
pub use manager::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListProxy, LockProxy, Manager,
    ManagerError, NamespaceProxy, Number, Proxy, ProxyGuard, QueueProxy, RLockProxy,
    SemaphoreProxy, ValueProxy,
};
pub use pool::{AsyncResult, Callbacks, Chunked, IMap, Pool, PoolBuilder, PoolError, StarTask};
pub use process::{
    Builder, Process, ProcessError, Run, StartMethod, set_start_method, start_method,
};
pub use spawn::init;
