//! PLACEHOLDER: being written (fork server start method).

use std::os::fd::OwnedFd;
use std::time::Duration;

use mproc_os::futex::Deadline;
use mproc_os::pipe::PipeReader;
use mproc_os::process::{ExitStatus, Signal};

use crate::current::ChildSetup;
use crate::entry::Request;
use crate::process::{ChildKind, ProcessError};

pub(crate) struct Relayed {
    pid: u32,
}

impl Relayed {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
    pub(crate) fn try_wait(&mut self) -> mproc_os::Result<Option<ExitStatus>> {
        unimplemented!()
    }
    pub(crate) fn wait(&mut self) -> mproc_os::Result<ExitStatus> {
        unimplemented!()
    }
    pub(crate) fn wait_timeout(&mut self, _: Duration) -> mproc_os::Result<Option<ExitStatus>> {
        unimplemented!()
    }
    pub(crate) fn wait_collecting(
        &mut self,
        _: &PipeReader,
        _: &mut Vec<u8>,
        _: Option<Deadline>,
    ) -> mproc_os::Result<Option<ExitStatus>> {
        unimplemented!()
    }
    pub(crate) fn signal(&self, _: Signal) -> mproc_os::Result<()> {
        unimplemented!()
    }
}

pub(crate) fn start(_: ChildSetup, _: Request) -> Result<(ChildKind, PipeReader), ProcessError> {
    unimplemented!()
}

pub(crate) fn serve(_: OwnedFd) -> ! {
    unimplemented!()
}
