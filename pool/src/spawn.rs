//! PLACEHOLDER: being written (spawn start method).
use mproc_os::pipe::PipeReader;

use crate::current::ChildSetup;
use crate::entry::Request;
use crate::process::{ChildKind, ProcessError};

/// Placeholder.
pub fn init() {}

pub(crate) fn start(_: ChildSetup, _: Request) -> Result<(ChildKind, PipeReader), ProcessError> {
    unimplemented!()
}
