//! The process layer of mproc: run a closure in a child process and get its
//! result back.
//!
//! [`Process::spawn`] forks; the child runs the closure, sends what it
//! returns (any `T: Serialize + DeserializeOwned`, encoded with postcard)
//! or the message of its panic back through a pipe, and exits without
//! running the parent's exit handlers. [`Process::join`] returns the value,
//! or a [`ProcessError`] that says how the child ended instead.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod process;

pub use process::{Process, ProcessError};
