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
    pub fn read_available<B: ReadBuffer + ?Sized>(&self, buf: &mut B) -> Result<Drained> {
        // The first read asks for little: most results are a few bytes.
        const FIRST: usize = 64;
        const CHUNK: usize = 4096;
        let mut chunk = FIRST;
        loop {
            let room = buf.room(chunk);
            chunk = CHUNK;
            let size = room.len();
            match rustix::io::read(&self.0, room) {
                Ok((read, _)) => {
                    let n = read.len();
                    if n == 0 {
                        return Ok(Drained::Closed);
                    }
                    // SAFETY: `read` wrote the first `n` bytes of the room.
                    unsafe { buf.filled(n) };
                    // A pipe hands over all it holds, up to the room given:
                    // a short read emptied it.
                    if n < size {
                        return Ok(Drained::Empty);
                    }
                }
                // A stream socket whose peer left with data unread
                // reports a reset: for us the same as an end of file.
                Err(Errno::CONNRESET) => return Ok(Drained::Closed),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(Drained::Empty),
                Err(errno) => return Err(os("read")(errno)),
            }
        }
    }
}

/// Where [`PipeReader::read_available`] puts what it reads: a `Vec<u8>`,
/// or a [`SmallBuffer`] that needs no allocation for a short message.
pub trait ReadBuffer {
    /// Uninitialized room for the next read: not empty, and `at_least`
    /// bytes unless the buffer prefers to fill a smaller fixed part first.
    fn room(&mut self, at_least: usize) -> &mut [core::mem::MaybeUninit<u8>];

    /// Counts the first `n` bytes of the last [`room`](ReadBuffer::room)
    /// as part of the contents.
    ///
    /// # Safety
    /// Those `n` bytes have been initialized.
    unsafe fn filled(&mut self, n: usize);
}

impl ReadBuffer for Vec<u8> {
    fn room(&mut self, at_least: usize) -> &mut [core::mem::MaybeUninit<u8>] {
        // Straight into the vector's spare room: a large buffer on the stack
        // would have to be copied (a page fault per page) while a freshly
        // forked child still shares the stack.
        self.reserve(at_least.max(1));
        self.spare_capacity_mut()
    }

    unsafe fn filled(&mut self, n: usize) {
        // SAFETY: the caller initialized the first `n` bytes of the spare
        // room, which `room` made at least `n` long.
        unsafe { self.set_len(self.len() + n) };
    }
}

/// A read buffer whose first `N` bytes are held inline, and the rest (if a
/// message is longer) in a `Vec`: reading a short message allocates
/// nothing.
///
/// # Examples
///
/// ```
/// use mproc_os::pipe::{SmallBuffer, pipe};
///
/// let (reader, writer) = pipe()?;
/// writer.write_all(b"hello")?;
/// let mut buf = SmallBuffer::<16>::new();
/// reader.read_available(&mut buf)?;
/// assert_eq!(buf.as_slice(), b"hello");
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct SmallBuffer<const N: usize> {
    inline: [core::mem::MaybeUninit<u8>; N],
    /// Bytes used of `inline`.
    len: usize,
    /// Everything, once it outgrew `inline` (`inline` is then unused).
    spilled: Vec<u8>,
}

impl<const N: usize> SmallBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        SmallBuffer {
            inline: [core::mem::MaybeUninit::uninit(); N],
            len: 0,
            spilled: Vec::new(),
        }
    }

    /// What has been read so far.
    pub fn as_slice(&self) -> &[u8] {
        if self.spilled.is_empty() {
            // SAFETY: the first `len` bytes of `inline` were initialized by
            // reads (`filled`).
            unsafe { core::slice::from_raw_parts(self.inline.as_ptr().cast(), self.len) }
        } else {
            &self.spilled
        }
    }

    /// Empties the buffer (keeping any allocation).
    pub fn clear(&mut self) {
        self.len = 0;
        self.spilled.clear();
    }
}

impl<const N: usize> Default for SmallBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for SmallBuffer<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmallBuffer")
            .field("len", &self.as_slice().len())
            .finish_non_exhaustive()
    }
}

impl<const N: usize> ReadBuffer for SmallBuffer<N> {
    fn room(&mut self, at_least: usize) -> &mut [core::mem::MaybeUninit<u8>] {
        if self.spilled.is_empty() {
            if self.len < N {
                return &mut self.inline[self.len..];
            }
            // Full: move to the heap and go on there.
            let bytes = self.as_slice().to_vec();
            self.spilled = bytes;
            self.len = 0;
        }
        self.spilled.room(at_least)
    }

    unsafe fn filled(&mut self, n: usize) {
        if self.spilled.is_empty() {
            self.len += n;
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.spilled.filled(n) };
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

/// The most bytes one `write` puts into a pipe whole, never interleaved
/// with another writer's and never partly (`PIPE_BUF`). Into an empty pipe
/// such a write never blocks either.
pub const PIPE_ATOMIC: usize = 4096;

/// A memory file (`memfd`) for a message too long to go through a pipe in
/// one atomic write: the writer puts it whole at offset 0 and never
/// blocks, the reader takes it afterwards. So a writer can hand over a
/// message of any size without the reader draining a pipe meanwhile.
///
/// # Examples
///
/// ```
/// use mproc_os::pipe::SpillFile;
///
/// let spill = SpillFile::new()?;
/// spill.write(&[7; 100_000])?;
/// assert_eq!(spill.read(100_000)?, vec![7; 100_000]);
/// spill.clear()?;
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Debug)]
pub struct SpillFile(OwnedFd);

impl SpillFile {
    /// A new, empty memory file (close-on-exec).
    ///
    /// `memfd_create("mproc-spill", MFD_CLOEXEC)`.
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `memfd_create` (`EMFILE`, `ENOMEM`).
    pub fn new() -> Result<SpillFile> {
        rustix::fs::memfd_create("mproc-spill", rustix::fs::MemfdFlags::CLOEXEC)
            .map(SpillFile)
            .map_err(os("memfd_create"))
    }

    /// Writes `bytes` at offset 0 (`pwrite`, retried until all is written).
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `pwrite` (`ENOSPC`, `EFBIG`, ...).
    pub fn write(&self, mut bytes: &[u8]) -> Result<()> {
        let mut offset = 0u64;
        while !bytes.is_empty() {
            match rustix::io::pwrite(&self.0, bytes, offset) {
                Ok(0) => return Err(os("pwrite")(Errno::NOSPC)),
                Ok(n) => {
                    bytes = &bytes[n..];
                    offset += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("pwrite")(errno)),
            }
        }
        Ok(())
    }

    /// Reads the first `len` bytes (`pread`).
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `pread`, or `EIO` if the file holds fewer
    /// than `len` bytes.
    pub fn read(&self, len: usize) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(len)
            .map_err(|_| os("pread")(Errno::NOMEM))?;
        while bytes.len() < len {
            let offset = bytes.len() as u64;
            let room = &mut bytes.spare_capacity_mut()[..len - offset as usize];
            match rustix::io::pread(&self.0, room, offset) {
                Ok(([], _)) => return Err(os("pread")(Errno::IO)),
                Ok((read, _)) => {
                    let n = read.len();
                    // SAFETY: `pread` initialized the next `n` bytes of the
                    // spare room.
                    unsafe { bytes.set_len(bytes.len() + n) };
                }
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("pread")(errno)),
            }
        }
        Ok(bytes)
    }

    /// Empties the file, giving its memory back (`ftruncate(fd, 0)`).
    ///
    /// # Errors
    /// [`crate::Error::Os`] from `ftruncate`.
    pub fn clear(&self) -> Result<()> {
        rustix::fs::ftruncate(&self.0, 0).map_err(os("ftruncate"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message longer than the inline part moves to the heap, across
    /// reads that end inside and outside the inline part, in order.
    #[test]
    fn a_small_buffer_spills_in_order() {
        let (reader, writer) = pipe().unwrap();
        let message: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut buf = SmallBuffer::<16>::new();
        for part in [
            &message[..10],
            &message[10..15],
            &message[15..300],
            &message[300..],
        ] {
            writer.write_all(part).unwrap();
            assert_eq!(reader.read_available(&mut buf).unwrap(), Drained::Empty);
        }
        assert_eq!(buf.as_slice(), &message[..]);
        buf.clear();
        writer.write_all(b"again").unwrap();
        drop(writer);
        // A short read empties the pipe; the next one finds the end.
        assert_eq!(reader.read_available(&mut buf).unwrap(), Drained::Empty);
        assert_eq!(reader.read_available(&mut buf).unwrap(), Drained::Closed);
        assert_eq!(buf.as_slice(), b"again");
    }
}
