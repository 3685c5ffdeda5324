//! Byte pipes between a parent and a child process: how a child made with
//! `fork` sends its result back.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use crate::error::{Result, os};

/// Makes a pipe, both ends close-on-exec; the read end is non-blocking.
///
/// `pipe2(O_CLOEXEC)`, then `fcntl(F_SETFL, O_NONBLOCK)` on the read end.
///
/// # References
///  - [Linux `pipe2`]
///
/// [Linux `pipe2`]: https://man7.org/linux/man-pages/man2/pipe.2.html
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(os("pipe2"))?;
    let flags = rustix::fs::fcntl_getfl(&read).map_err(os("fcntl"))?;
    rustix::fs::fcntl_setfl(&read, flags | rustix::fs::OFlags::NONBLOCK).map_err(os("fcntl"))?;
    Ok((PipeReader(read), PipeWriter(write)))
}

/// The read end of a [`pipe`] (non-blocking).
#[derive(Debug)]
pub struct PipeReader(OwnedFd);

/// What [`PipeReader::read_available`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Everything written so far has been read; more may come.
    Empty,
    /// Every write end is closed and everything has been read.
    Closed,
}

impl PipeReader {
    /// Reads from `fd` (a pipe or a stream socket), made non-blocking here.
    ///
    /// `fcntl(F_SETFL, O_NONBLOCK)`.
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `fcntl`.
    pub fn from_fd(fd: OwnedFd) -> Result<PipeReader> {
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(os("fcntl"))?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK).map_err(os("fcntl"))?;
        Ok(PipeReader(fd))
    }

    /// Appends everything readable now to `buf`, without blocking.
    ///
    /// `read` until `EAGAIN` (or end of file), retried on `EINTR`.
    ///
    /// # References
    ///  - [Linux `read`]
    ///
    /// [Linux `read`]: https://man7.org/linux/man-pages/man2/read.2.html
    pub fn read_available(&self, buf: &mut Vec<u8>) -> Result<Drained> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rustix::io::read(&self.0, &mut chunk) {
                Ok(0) => return Ok(Drained::Closed),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(Drained::Empty),
                Err(errno) => return Err(os("read")(errno)),
            }
        }
    }
}

impl AsFd for PipeReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The write end of a [`pipe`] (blocking).
#[derive(Debug)]
pub struct PipeWriter(OwnedFd);

impl PipeWriter {
    /// Writes to `fd` (a pipe or a stream socket, in blocking mode).
    pub fn from_fd(fd: OwnedFd) -> PipeWriter {
        PipeWriter(fd)
    }

    /// Writes all of `bytes`, blocking while the pipe is full.
    ///
    /// Only `write` system calls: safe in a child forked from a
    /// multi-threaded parent.
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `write` (`EPIPE` once the read end is closed).
    ///
    /// # References
    ///  - [Linux `write`]
    ///
    /// [Linux `write`]: https://man7.org/linux/man-pages/man2/write.2.html
    pub fn write_all(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            match rustix::io::write(&self.0, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("write")(errno)),
            }
        }
        Ok(())
    }
}

impl AsFd for PipeWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
