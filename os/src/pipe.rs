//! Byte pipes between a parent and a child process: how a child made with
//! `fork` sends its result back.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use crate::error::{Result, os};

/// Makes a pipe, both ends close-on-exec and non-blocking ([`PipeWriter`]
/// waits for room itself).
///
/// `pipe2(O_CLOEXEC | O_NONBLOCK)`: one system call.
///
/// # References
///  - [Linux `pipe2`]
///
/// [Linux `pipe2`]: https://man7.org/linux/man-pages/man2/pipe.2.html
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (read, write) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(os("pipe2"))?;
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
        // Straight into the vector's spare room: a large buffer on the
        // stack would have to be copied (a page fault per page) while a
        // freshly forked child still shares the stack. The first read asks
        // for little: most results are a few bytes, and a small block comes
        // from the allocator's per-thread cache, where a page-sized one
        // would be carved from fresh heap pages (a page fault each, as the
        // last fork write-protected them).
        const FIRST: usize = 64;
        const CHUNK: usize = 4096;
        let mut chunk = FIRST;
        loop {
            buf.reserve(chunk);
            chunk = CHUNK;
            let room = buf.capacity() - buf.len();
            match rustix::io::read(&self.0, rustix::buffer::spare_capacity(buf)) {
                // A stream socket whose peer left with data unread
                // reports a reset: for us the same as an end of file.
                Ok(0) | Err(Errno::CONNRESET) => return Ok(Drained::Closed),
                // A pipe hands over all it holds, up to the room given: a
                // short read emptied it.
                Ok(n) if n < room => return Ok(Drained::Empty),
                Ok(_) => {}
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(Drained::Empty),
                Err(errno) => return Err(os("read")(errno)),
            }
        }
    }
}

impl PipeReader {
    /// Closes this end.
    ///
    /// The `close` system call made directly rather than through the C
    /// library, as a child forked to write the other end does first thing:
    /// every page of code a child runs that its parent's code around the
    /// fork did not is one more page for it to map.
    pub fn close(self) {
        let fd = std::os::fd::IntoRawFd::into_raw_fd(self.0);
        // SAFETY: `fd` was owned by `self`, which is consumed here: nothing
        // else closes or uses it.
        unsafe { rustix::io::close(fd) };
    }
}

impl AsFd for PipeReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The write end of a [`pipe`] (or of a stream socket); [`write_all`]
/// waits for room whether the descriptor blocks or not.
///
/// [`write_all`]: PipeWriter::write_all
#[derive(Debug)]
pub struct PipeWriter(OwnedFd);

impl PipeWriter {
    /// Writes to `fd` (a pipe or a stream socket).
    pub fn from_fd(fd: OwnedFd) -> PipeWriter {
        PipeWriter(fd)
    }

    /// Writes all of `bytes`, blocking while the pipe is full.
    ///
    /// Only `write` and `poll` system calls: safe in a child forked from a
    /// multi-threaded parent.
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `write` (`EPIPE` once the read end is closed).
    ///
    /// # References
    ///  - [Linux `write`]
    ///
    /// [Linux `write`]: https://man7.org/linux/man-pages/man2/write.2.html
    #[inline]
    pub fn write_all(&self, bytes: &[u8]) -> Result<()> {
        // One `write` is the common case (a child's result fits in the
        // pipe): inlined, so that a forked child does not map another page
        // of code for it.
        match rustix::io::write(&self.0, bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => self.write_rest(&bytes[n..]),
            Err(_) => self.write_rest(bytes),
        }
    }

    /// The rest of [`write_all`](PipeWriter::write_all): retries, and waits
    /// while the pipe is full.
    #[cold]
    fn write_rest(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            match rustix::io::write(&self.0, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    // Full: wait until the reader makes room (or leaves).
                    let mut fds = [rustix::event::PollFd::new(
                        &self.0,
                        rustix::event::PollFlags::OUT,
                    )];
                    match rustix::event::poll(&mut fds, None) {
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(errno) => return Err(os("poll")(errno)),
                    }
                }
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
