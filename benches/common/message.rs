//! The message types of the messaging workloads: a `u64`, and bytes
//! (`Vec<u8>` for mproc and crossbeam, `serde_bytes::ByteBuf` for
//! ipc-channel, whose bytes then encode as one block as `Vec<u8>` does in
//! mproc). Shared by the criterion benches and the showdown example.

#![allow(dead_code)]

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

/// The `u64` that stops an echo (and per-sample work meaning "stop").
pub const STOP: u64 = u64::MAX;
/// The `u64` payload: large enough that every transport carries 8 bytes
/// or close to it (postcard's varint takes 9).
pub const U64: u64 = 0x0123_4567_89ab_cdef;

/// A message type of a workload.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// A new message carrying `payload` (a `u64`'s 8 bytes, or the bytes).
    fn make(payload: &[u8]) -> Self;
    /// The message that stops an echoing child.
    fn stop() -> Self;
    /// Whether this is [`Self::stop`].
    fn is_stop(&self) -> bool;
}

impl Message for u64 {
    fn make(payload: &[u8]) -> Self {
        u64::from_ne_bytes(payload.try_into().expect("a u64 payload has 8 bytes"))
    }
    fn stop() -> Self {
        STOP
    }
    fn is_stop(&self) -> bool {
        *self == STOP
    }
}

impl Message for Vec<u8> {
    fn make(payload: &[u8]) -> Self {
        payload.to_vec()
    }
    fn stop() -> Self {
        Vec::new()
    }
    fn is_stop(&self) -> bool {
        self.is_empty()
    }
}

impl Message for ByteBuf {
    fn make(payload: &[u8]) -> Self {
        ByteBuf::from(payload.to_vec())
    }
    fn stop() -> Self {
        ByteBuf::new()
    }
    fn is_stop(&self) -> bool {
        self.is_empty()
    }
}
