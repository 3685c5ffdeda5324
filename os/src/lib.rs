//! The Linux layer of mproc.
//!
//! * [`futex`]: the [`mproc_core::Wait`] hook on shared (not private) futexes.
//! * [`shm`]: shared-memory regions: anonymous (inherited by `fork`), memfd
//!   (passable as a file descriptor) and named (`/dev/shm`).
//! * [`process`]: `fork`, pidfd-based child handles, the current pid;
//!   [`pipe`](mod@pipe): byte pipes from a child back to its parent.
//! * [`socket`]: Unix stream sockets that pass file descriptors, pidfds
//!   received from another process, waiting on several descriptors.
//!
//! and the process-shared types built from mproc-core's algorithms on them:
//!
//! * [`Queue`]: a bounded MPMC queue of any serde values of any size
//!   ([`message`] says how they are encoded), which can be closed;
//!   [`JoinableQueue`] (`task_done`, `join`) and [`SimpleQueue`] on top;
//!   [`PodQueue`]: one of plain-old-data values with no encoding, with batch
//!   verbs; [`spsc::channel`]: a faster single-producer single-consumer one.
//! * [`pipe`](fn@pipe) and [`pipe_simplex`]: two connected ends that send
//!   each other serde values through shared memory, notice when the other
//!   end's processes are gone, and pass file descriptors ([`connection`]).
//! * [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//!   [`Condition`], [`Barrier`].
//! * [`Value`] and [`Array`]: plain-old-data in shared memory with a lock.
//! * [`SharedMemory`]: a named block of bytes that unrelated processes open
//!   by name, unlinked when its creator decides
//!   ([`shared_memory`](mod@shared_memory)).
//! * [`wait()`]: block until the first of several connections and queues is
//!   ready to be read ([`wait`](mod@wait) says how).
//!
//! Each is created in a parent in a sealed memfd region and used in
//! children made with `fork`, which inherit it; or in any other process
//! through a [`Token`] ([`share`]: the memfd's descriptor travels over a
//! Unix socket, and the header is checked on attach); or created in /
//! attached to a named or anonymous [`shm::Region`] after its header is
//! checked. The uncontended fast path of every one makes no system call.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod barrier;
pub mod condition;
pub mod connection;
pub mod error;
pub mod event;
pub mod futex;
pub mod joinable;
pub mod lock;
pub mod message;
mod object;
pub mod pipe;
pub mod pod_queue;
pub mod process;
pub mod queue;
pub mod rlock;
pub mod semaphore;
pub mod share;
pub mod shared_memory;
pub mod shm;
pub mod socket;
pub mod spsc;
pub mod value;
pub mod wait;

pub use barrier::{Barrier, BarrierWaitError, BrokenBarrier};
pub use condition::{Condition, ConditionGuard};
pub use connection::{
    Connection, FdError, Receiver, RecvError, SendError, Sender, pipe, pipe_simplex,
};
pub use error::{Error, Result};
pub use event::Event;
pub use joinable::{JoinableQueue, SimpleQueue};
pub use lock::{Lock, LockGuard};
pub use pod_queue::PodQueue;
pub use queue::{CodecError, GetError, PutError, Queue};
pub use rlock::{RLock, RLockGuard, ReleaseError};
pub use rustix::io::Errno;
pub use semaphore::{BoundedSemaphore, Semaphore};
pub use share::{Share, ShareError, Token, TokenError};
pub use shared_memory::{OutOfRange, SharedMemory, SharedMemoryError};
pub use value::{Array, ArrayGuard, OutOfBounds, Value, ValueGuard};
pub use wait::{Waitable, wait};
