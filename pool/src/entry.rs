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

use mproc_os::pipe::PipeWriter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::current::ChildSetup;
use crate::process::{ProcessError, child_failed, child_main};

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

/// The trampoline for `fn(A) -> T`: decodes `A`, runs the function as a
/// child's body, ends the process.
type Trampoline = unsafe fn(usize, &[u8], &ChildSetup, u32, PipeWriter) -> !;

/// # Safety
/// `func` is the address, in this process, of a `fn(A) -> T`.
unsafe fn trampoline<A, T>(
    func: usize,
    args: &[u8],
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
    match postcard::from_bytes::<A>(args) {
        Ok(args) => child_main(setup.clone(), os_parent, None, output, move || f(args)),
        Err(error) => child_failed(
            setup.clone(),
            os_parent,
            output,
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
    /// `A`, postcard-encoded.
    args: Vec<u8>,
    /// [`mproc_os::process::exe_identity`] of the sender.
    exe: [u64; 4],
}

impl Request {
    /// The request to run `f(args)`.
    pub(crate) fn new<A, T>(f: fn(A) -> T, args: &A) -> Result<Request, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        let args = postcard::to_allocvec(args).map_err(|error| ProcessError::Start {
            reason: format!("the arguments do not serialize: {error}"),
        })?;
        let base = anchor_address();
        let entry = trampoline::<A, T> as Trampoline as usize;
        Ok(Request {
            entry: entry.wrapping_sub(base),
            func: (f as usize).wrapping_sub(base),
            args,
            exe: mproc_os::process::exe_identity()?,
        })
    }

    /// Runs the request as the body of the child `setup` describes, and
    /// ends the process. `os_parent` is the process that forked or spawned
    /// this one.
    pub(crate) fn run(self, setup: &ChildSetup, os_parent: u32, output: PipeWriter) -> ! {
        match mproc_os::process::exe_identity() {
            Ok(exe) if exe == self.exe => {}
            Ok(_) => child_failed(
                setup.clone(),
                os_parent,
                output,
                "the program file changed since the parent started (rebuilt?): its code \
                 addresses cannot be trusted"
                    .to_owned(),
            ),
            Err(error) => child_failed(setup.clone(), os_parent, output, error.to_string()),
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
                setup,
                os_parent,
                output,
            )
        }
    }
}
