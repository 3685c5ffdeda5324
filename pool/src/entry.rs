//! Entry points that cross into a process sharing no memory with the
//! caller: a `fn(A) -> T` and its serialized arguments, for the
//! [`Spawn`](crate::StartMethod::Spawn) and
//! [`ForkServer`](crate::StartMethod::ForkServer) start methods.
//!
//! Code addresses differ between two runs of one program (ASLR), but the
//! distance between two functions of one build does not. A [`Request`]
//! carries the user's `fn` and a monomorphized trampoline for its argument
//! and result types as offsets from [`anchor`], plus the identity of the
//! program file, which the child checks before it turns an offset back
//! into a function pointer.
//!
//! The arguments may hold [`Token`](mproc_os::share::Token)s: they are
//! encoded with [`mproc_os::share::encode`], which collects the file
//! descriptors behind the tokens, and the start method sends those beside
//! the request (`SCM_RIGHTS`); the child decodes the arguments with the
//! descriptors it received ([`mproc_os::share::decode`]).

use std::os::fd::OwnedFd;

use mproc_os::pipe::PipeWriter;
use mproc_os::socket::MAX_FDS;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::current::ChildSetup;
use crate::process::{Output, ProcessError, child_failed, child_main};

/// A function whose address all offsets are taken from. Its body is unique
/// (a read of a private static), so no identical-code folding can merge it
/// with another function.
#[inline(never)]
fn anchor() -> u64 {
    static MARK: u64 = 0x6d70_726f_635f_6578; // "mproc_ex"
    // SAFETY: reading an immutable static through a raw pointer is a plain
    // read of initialized memory.
    unsafe { core::ptr::read_volatile(&raw const MARK) }
}

fn anchor_address() -> usize {
    anchor as fn() -> u64 as usize
}

/// The offset of the code at `address` from [`anchor`]: what another
/// process of this program turns back into the same code with
/// [`code_address`].
pub(crate) fn code_offset(address: usize) -> usize {
    address.wrapping_sub(anchor_address())
}

/// The address, in this process, of the code at `offset` from [`anchor`]
/// (an offset taken by [`code_offset`] in a process of this program).
pub(crate) fn code_address(offset: usize) -> usize {
    anchor_address().wrapping_add(offset)
}

/// The most descriptors the arguments of one child may hold: one message
/// carries [`MAX_FDS`], and a start through the fork server also carries
/// the child's output pipe.
pub(crate) const MAX_ARG_FDS: usize = MAX_FDS - 1;

/// The trampoline for `fn(A) -> T`: decodes `A` (its tokens taking the
/// descriptors that came with it), runs the function as a child's body,
/// ends the process.
type Trampoline = unsafe fn(usize, &[u8], Vec<OwnedFd>, &ChildSetup, u32, PipeWriter) -> !;

/// # Safety
/// `func` is the address, in this process, of a `fn(A) -> T`.
unsafe fn trampoline<A, T>(
    func: usize,
    args: &[u8],
    fds: Vec<OwnedFd>,
    setup: &ChildSetup,
    os_parent: u32,
    output: PipeWriter,
) -> !
where
    A: DeserializeOwned,
    T: Serialize,
{
    // SAFETY: `fn(A) -> T` is a pointer-sized function pointer, and the
    // caller promises `func` is the address of one.
    let f = unsafe { core::mem::transmute::<usize, fn(A) -> T>(func) };
    match mproc_os::share::decode::<A>(args, fds) {
        Ok(args) => child_main(
            setup.clone(),
            os_parent,
            Output::streamed(output),
            move || f(args),
        ),
        Err(error) => child_failed(
            setup.clone(),
            os_parent,
            Output::streamed(output),
            format!("its arguments do not decode: {error}"),
        ),
    }
}

/// A `fn` and its arguments, ready to travel to another process of the
/// same program.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// `trampoline::<A, T>` as an offset from [`anchor`].
    entry: usize,
    /// The user's `fn(A) -> T` as an offset from [`anchor`].
    func: usize,
    /// `A`, postcard-encoded; its tokens hold indices into the descriptors
    /// that travel beside the request.
    args: Vec<u8>,
    /// How many descriptors travel beside the request.
    fds: u32,
    /// [`mproc_os::process::exe_identity`] of the sender.
    exe: [u64; 4],
}

impl Request {
    /// The request to run `f(args)`, and the descriptors of the tokens in
    /// `args`, to be sent beside it.
    pub(crate) fn new<A, T>(
        f: fn(A) -> T,
        args: &A,
    ) -> Result<(Request, Vec<OwnedFd>), ProcessError>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        let encoded = mproc_os::share::encode(args).map_err(|error| ProcessError::Start {
            reason: format!("the arguments do not serialize: {error}"),
        })?;
        if encoded.fds.len() > MAX_ARG_FDS {
            return Err(ProcessError::Start {
                reason: format!(
                    "the arguments hold {} file descriptors (in tokens), over the limit of \
                     {MAX_ARG_FDS}",
                    encoded.fds.len()
                ),
            });
        }
        let fds = encoded.fds.len() as u32;
        let base = anchor_address();
        let entry = trampoline::<A, T> as Trampoline as usize;
        let request = Request {
            entry: entry.wrapping_sub(base),
            func: (f as usize).wrapping_sub(base),
            args: encoded.bytes,
            fds,
            exe: mproc_os::process::exe_identity()?,
        };
        Ok((request, encoded.fds))
    }

    /// How many descriptors travel beside the request.
    pub(crate) fn fd_count(&self) -> usize {
        self.fds as usize
    }

    /// Runs the request as the body of the child `setup` describes, and
    /// ends the process. `os_parent` is the process that forked or spawned
    /// this one; `fds` are the descriptors that came beside the request.
    pub(crate) fn run(
        self,
        setup: &ChildSetup,
        os_parent: u32,
        output: PipeWriter,
        fds: Vec<OwnedFd>,
    ) -> ! {
        match mproc_os::process::exe_identity() {
            Ok(exe) if exe == self.exe => {}
            Ok(_) => child_failed(
                setup.clone(),
                os_parent,
                Output::streamed(output),
                "the program file changed since the parent started (rebuilt?): its code \
                 addresses cannot be trusted"
                    .to_owned(),
            ),
            Err(error) => child_failed(
                setup.clone(),
                os_parent,
                Output::streamed(output),
                error.to_string(),
            ),
        }
        if fds.len() != self.fd_count() {
            child_failed(
                setup.clone(),
                os_parent,
                Output::streamed(output),
                format!(
                    "{} file descriptors came with its arguments instead of {}",
                    fds.len(),
                    self.fds
                ),
            )
        }
        let base = anchor_address();
        // SAFETY: `entry` was taken from `trampoline::<A, T>` relative to
        // `anchor` in a process running this very program file (checked
        // just above), so the same offset from our `anchor` is that
        // function here; `func` likewise is the `fn(A) -> T` it expects.
        unsafe {
            let trampoline =
                core::mem::transmute::<usize, Trampoline>(base.wrapping_add(self.entry));
            trampoline(
                base.wrapping_add(self.func),
                &self.args,
                fds,
                setup,
                os_parent,
                output,
            )
        }
    }
}
