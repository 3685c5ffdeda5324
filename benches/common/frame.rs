//! Length-prefixed frames over a raw descriptor (a pipe or a Unix socket):
//! the kernel's floor for a message channel, shared by the criterion
//! benches and the showdown example.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufReader, IoSlice, Read};
use std::os::fd::OwnedFd;

/// Writes `bytes` to `fd` as one frame: their length as 4 bytes, then the
/// bytes, with one `writev` (more only if the kernel takes part of them).
pub fn write_frame(fd: &OwnedFd, bytes: &[u8]) {
    let len = u32::try_from(bytes.len())
        .expect("a frame under 4 GiB")
        .to_ne_bytes();
    let total = len.len() + bytes.len();
    let mut written = 0;
    while written < total {
        let parts = if written < len.len() {
            [IoSlice::new(&len[written..]), IoSlice::new(bytes)]
        } else {
            [
                IoSlice::new(&bytes[written - len.len()..]),
                IoSlice::new(&[]),
            ]
        };
        match rustix::io::writev(fd, &parts) {
            Ok(n) => written += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => panic!("writev: {errno}"),
        }
    }
}

/// Reads the frames of [`write_frame`] from a descriptor through a buffer,
/// as a program reading a stream of messages would.
pub struct FrameIn(BufReader<File>);

impl FrameIn {
    /// Frames from `fd`.
    pub fn new(fd: OwnedFd) -> Self {
        Self(BufReader::with_capacity(64 << 10, File::from(fd)))
    }

    /// Reads the next frame into `buf` (resized to it); `false` at the end
    /// of the stream.
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let mut len = [0; 4];
        if self.0.read_exact(&mut len).is_err() {
            return false;
        }
        buf.resize(u32::from_ne_bytes(len) as usize, 0);
        self.0.read_exact(buf).expect("a whole frame");
        true
    }
}
