//! Unix stream sockets that carry file descriptors: the control channel of
//! the fork server.
//!
//! * [`socketpair`] makes two connected [`Stream`]s; a [`Stream`] sends and
//!   receives length-prefixed messages, each with up to [`MAX_FDS`] file
//!   descriptors attached (`SCM_RIGHTS`).
//! * [`PidFd`] holds a process through a pidfd received from another
//!   process (say, the fork server that forked it): it can signal and
//!   watch a process that is not the caller's child.
//! * [`wait_readable`] waits for any of several descriptors.
//!
//! Every descriptor made or received here is close-on-exec, and nothing
//! sent here raises `SIGPIPE`: a peer that is gone is an `EPIPE` error.
//!
//! # Message format
//!
//! A message is a 4-byte little-endian length, then that many bytes. The
//! descriptors attached to a message travel with its first byte, so a
//! receiver that reads one message at a time gets exactly that message's
//! descriptors.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::Signal;

use crate::error::{Error, Result, os};
use crate::futex::Deadline;

/// The most file descriptors one message may carry: the kernel's limit
/// for one `SCM_RIGHTS` control message (`SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Room for the control message of [`MAX_FDS`] descriptors.
const FD_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// Makes a pair of connected Unix stream sockets, both close-on-exec.
///
/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)`.
///
/// # Errors
///
/// [`Error::Os`] from `socketpair` (`EMFILE`, `ENFILE`).
///
/// # References
///  - [Linux `socketpair`]
///  - [Linux `unix(7)`]
///
/// [Linux `socketpair`]: https://man7.org/linux/man-pages/man2/socketpair.2.html
/// [Linux `unix(7)`]: https://man7.org/linux/man-pages/man7/unix.7.html
pub fn socketpair() -> Result<(Stream, Stream)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(os("socketpair"))?;
    Ok((Stream(a), Stream(b)))
}

/// One end of a connected Unix stream socket (blocking).
#[derive(Debug)]
pub struct Stream(OwnedFd);

/// A message received by [`Stream::recv_message`].
#[derive(Debug, Default)]
pub struct Message {
    /// Its bytes (without the length prefix).
    pub bytes: Vec<u8>,
    /// The descriptors that came with it, close-on-exec.
    pub fds: Vec<OwnedFd>,
}

impl Stream {
    /// Takes `fd`, a connected Unix stream socket in blocking mode (say,
    /// one end of a [`socketpair`] handed to a new program as its stdin).
    pub fn from_fd(fd: OwnedFd) -> Stream {
        Stream(fd)
    }

    /// Sends `bytes` as one message with `fds` attached.
    ///
    /// Blocks while the socket buffer is full. `sendmsg` with an
    /// `SCM_RIGHTS` control message and `MSG_NOSIGNAL`, then `sendmsg` for
    /// whatever the first call did not take; retried on `EINTR`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sendmsg`: `EPIPE` if the peer is gone,
    /// `EMSGSIZE` for more than `u32::MAX` bytes, `EINVAL` for more than
    /// [`MAX_FDS`] descriptors.
    ///
    /// # References
    ///  - [Linux `sendmsg`]
    ///  - [Linux `unix(7)`] (`SCM_RIGHTS`)
    ///
    /// [Linux `sendmsg`]: https://man7.org/linux/man-pages/man2/sendmsg.2.html
    /// [Linux `unix(7)`]: https://man7.org/linux/man-pages/man7/unix.7.html
    pub fn send_message(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let too_big = || Error::Os {
            call: "sendmsg",
            errno: Errno::MSGSIZE,
        };
        let len = u32::try_from(bytes.len()).map_err(|_| too_big())?;
        if fds.len() > MAX_FDS {
            return Err(os("sendmsg")(Errno::INVAL));
        }
        let header = len.to_le_bytes();
        let total = header.len() + bytes.len();
        let mut sent = 0;
        // The first call carries the descriptors, and then only data.
        while sent == 0 {
            let mut space = [MaybeUninit::<u8>::uninit(); FD_SPACE];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(os("sendmsg")(Errno::INVAL));
            }
            let iov = [IoSlice::new(&header), IoSlice::new(bytes)];
            match rustix::net::sendmsg(&self.0, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(n) => sent = n,
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("sendmsg")(errno)),
            }
        }
        while sent < total {
            let (head, body) = if sent < header.len() {
                (&header[sent..], bytes)
            } else {
                (&[][..], &bytes[sent - header.len()..])
            };
            let iov = [IoSlice::new(head), IoSlice::new(body)];
            let mut control = SendAncillaryBuffer::default();
            match rustix::net::sendmsg(&self.0, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("sendmsg")(errno)),
            }
        }
        Ok(())
    }

    /// Receives one message of at most `max_len` bytes, waiting until
    /// `deadline` at most (`None`: for as long as it takes). `Ok(None)` if
    /// the peer closed its end before the message started.
    ///
    /// `poll` (with a deadline) and `recvmsg` with `MSG_CMSG_CLOEXEC`,
    /// until the whole message is in; retried on `EINTR`.
    ///
    /// After an error the stream may have been left in the middle of a
    /// message: drop it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] with `call: "recvmsg"` and `ETIMEDOUT` if the deadline
    /// passed, `ECONNRESET` if the peer closed its end in the middle of the
    /// message, `EMSGSIZE` if the message is longer than `max_len`,
    /// `EPROTO` if it carried more than [`MAX_FDS`] descriptors; or an
    /// errno from `poll` or `recvmsg`.
    ///
    /// # References
    ///  - [Linux `recvmsg`]
    ///  - [Linux `unix(7)`] (`SCM_RIGHTS`)
    ///
    /// [Linux `recvmsg`]: https://man7.org/linux/man-pages/man2/recvmsg.2.html
    /// [Linux `unix(7)`]: https://man7.org/linux/man-pages/man7/unix.7.html
    pub fn recv_message(
        &self,
        max_len: usize,
        deadline: Option<Deadline>,
    ) -> Result<Option<Message>> {
        let mut message = Message::default();
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < header.len() {
            let n = self.recv_some(&mut header[got..], &mut message.fds, deadline)?;
            if n == 0 {
                if got == 0 && message.fds.is_empty() {
                    return Ok(None);
                }
                return Err(os("recvmsg")(Errno::CONNRESET));
            }
            got += n;
        }
        let len = u32::from_le_bytes(header) as usize;
        if len > max_len {
            return Err(os("recvmsg")(Errno::MSGSIZE));
        }
        message.bytes = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = self.recv_some(&mut message.bytes[got..], &mut message.fds, deadline)?;
            if n == 0 {
                return Err(os("recvmsg")(Errno::CONNRESET));
            }
            got += n;
        }
        Ok(Some(message))
    }

    /// One `recvmsg` into `buf` (after a `poll` if there is a deadline),
    /// appending any descriptors that came along to `fds`.
    fn recv_some(
        &self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        deadline: Option<Deadline>,
    ) -> Result<usize> {
        loop {
            if deadline.is_some() && !wait_readable(&[self.0.as_fd()], deadline)?[0] {
                return Err(os("recvmsg")(Errno::TIMEDOUT));
            }
            let mut space = [MaybeUninit::<u8>::uninit(); FD_SPACE];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(buf)];
            let received = match rustix::net::recvmsg(
                &self.0,
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(received) => received,
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(os("recvmsg")(errno)),
            };
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            // Descriptors the kernel had no room for are closed by it; the
            // message is then incomplete.
            if received.flags.contains(ReturnFlags::CTRUNC) || fds.len() > MAX_FDS {
                return Err(os("recvmsg")(Errno::PROTO));
            }
            return Ok(received.bytes);
        }
    }

    /// Writes all of `bytes` as they are (no length prefix, no
    /// descriptors), blocking while the socket buffer is full.
    ///
    /// `send` with `MSG_NOSIGNAL`, retried on `EINTR`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `send` (`EPIPE` once the peer is gone).
    ///
    /// # References
    ///  - [Linux `send`]
    ///
    /// [Linux `send`]: https://man7.org/linux/man-pages/man2/send.2.html
    pub fn write_all(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            match rustix::net::send(&self.0, bytes, SendFlags::NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::INTR) => {}
                Err(errno) => return Err(os("send")(errno)),
            }
        }
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<Stream> for OwnedFd {
    fn from(stream: Stream) -> OwnedFd {
        stream.0
    }
}

/// A process held through a pidfd that may have come from another process:
/// it can be signalled and watched, not waited for (only its parent can
/// reap it).
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Takes `fd`, a pidfd (from `pidfd_open`, here or in the process that
    /// sent it).
    pub fn from_fd(fd: OwnedFd) -> PidFd {
        PidFd(fd)
    }

    /// Sends `signal` to the process; one that has already exited is not an
    /// error (`ESRCH` is ignored).
    ///
    /// `pidfd_send_signal(pidfd, signal, NULL, 0)`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `pidfd_send_signal` (`EPERM`, `EBADF` if `fd` was
    /// not a pidfd).
    ///
    /// # References
    ///  - [Linux `pidfd_send_signal`]
    ///
    /// [Linux `pidfd_send_signal`]: https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html
    pub fn signal(&self, signal: Signal) -> Result<()> {
        match rustix::process::pidfd_send_signal(&self.0, signal) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(errno) => Err(os("pidfd_send_signal")(errno)),
        }
    }

    /// Whether the process has exited (reaped or not).
    ///
    /// `poll` on the pidfd with a zero timeout: a pidfd is readable once
    /// its process has exited.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `poll`.
    ///
    /// # References
    ///  - [Linux `pidfd_open`] (what polling a pidfd reports)
    ///
    /// [Linux `pidfd_open`]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
    pub fn has_exited(&self) -> Result<bool> {
        let now = Deadline::now();
        Ok(wait_readable(&[self.0.as_fd()], Some(now))?[0])
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Waits until one of `fds` is readable, at its end or in error, or until
/// `deadline` passes (`None`: no limit). Returns, for each of `fds`,
/// whether it is ready: all `false` once the deadline passed.
///
/// A pidfd is readable once its process has exited; a pipe or socket once
/// there is data or every writer is gone.
///
/// `poll(fds, POLLIN)`, retried on `EINTR` with the time left.
///
/// # Errors
///
/// [`Error::Os`] from `poll`.
///
/// # References
///  - [Linux `poll`]
///
/// [Linux `poll`]: https://man7.org/linux/man-pages/man2/poll.2.html
pub fn wait_readable(fds: &[BorrowedFd<'_>], deadline: Option<Deadline>) -> Result<Vec<bool>> {
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    loop {
        let left = match deadline {
            None => None,
            Some(deadline) => Some(
                rustix::time::Timespec::try_from(deadline.remaining()).map_err(|_| Error::Os {
                    call: "poll",
                    errno: Errno::INVAL,
                })?,
            ),
        };
        match rustix::event::poll(&mut polls, left.as_ref()) {
            Ok(_) => return Ok(polls.iter().map(|fd| !fd.revents().is_empty()).collect()),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(os("poll")(errno)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::{MAX_FDS, socketpair};
    use crate::futex::Deadline;

    #[test]
    fn message_with_fds_round_trips() {
        let (a, b) = socketpair().unwrap();
        let (c, d) = socketpair().unwrap();
        a.send_message(b"hello", &[c.as_fd(), d.as_fd()]).unwrap();
        a.send_message(&[], &[]).unwrap();
        let big = vec![7u8; 1 << 20];
        let reader = std::thread::spawn(move || {
            let first = b.recv_message(1 << 21, None).unwrap().unwrap();
            let second = b.recv_message(16, None).unwrap().unwrap();
            let third = b.recv_message(1 << 21, None).unwrap().unwrap();
            let end = b.recv_message(16, None).unwrap();
            (first, second, third, end.is_none())
        });
        a.send_message(&big, &[]).unwrap();
        drop(a);
        let (first, second, third, ended) = reader.join().unwrap();
        assert_eq!(first.bytes, b"hello");
        assert_eq!(first.fds.len(), 2);
        assert!(second.bytes.is_empty() && second.fds.is_empty());
        assert_eq!(third.bytes, big);
        assert!(ended);
        // The received descriptors are the sockets sent.
        let passed = super::Stream::from_fd(first.fds.into_iter().next().unwrap());
        passed.write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(rustix::io::read(&d, &mut buf), Ok(1));
    }

    #[test]
    fn limits_and_timeouts() {
        let (a, b) = socketpair().unwrap();
        let fds: Vec<_> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        assert!(a.send_message(b"x", &fds).is_err());
        let deadline = Deadline::after(std::time::Duration::from_millis(20));
        let error = b.recv_message(16, deadline).unwrap_err();
        assert_eq!(error.errno(), Some(rustix::io::Errno::TIMEDOUT));
        a.send_message(&[0u8; 17], &[]).unwrap();
        let error = b.recv_message(16, None).unwrap_err();
        assert_eq!(error.errno(), Some(rustix::io::Errno::MSGSIZE));
    }
}
