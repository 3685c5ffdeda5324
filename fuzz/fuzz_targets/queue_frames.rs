//! The message decoder against whatever bytes a peer may leave in a
//! queue's shared memory: positions, cut marks, frame lengths and payloads
//! are all fuzz input. Every `get` returns a value or an error; never a
//! panic, a hang or undefined behaviour. (The two lock words are kept
//! free: a lock held forever by a peer is the business of owner-death
//! detection, not of the decoder.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mproc_os::queue::Queue;
use mproc_os::shm::Region;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The queue's buffer: small, so positions wrap often.
const BUFFER: usize = 64;
/// Where the frame ring's state starts in its region (after the 64-byte
/// header, aligned to 128), and where its lock words lie in it
/// (`core/src/frames.rs` pins these offsets).
const STATE: usize = 128;
const LOCKS: usize = STATE + 256;

fn run<T: Serialize + DeserializeOwned + 'static>(data: &[u8]) {
    let region = Region::anonymous(Queue::<T>::region_size(BUFFER).unwrap()).unwrap();
    let (base, len) = (region.as_ptr(), region.len());
    let queue = Queue::<T>::create_in(region, 4).unwrap();
    let n = data.len().min(len - STATE);
    // SAFETY: the region is mapped for `len` bytes while `queue` lives, and
    // `STATE + n <= len`; nothing else runs while we overwrite it.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), base.as_ptr().add(STATE), n);
        std::ptr::write_bytes(base.as_ptr().add(LOCKS), 0, 8);
    }
    for _ in 0..8 {
        let _ = queue.try_get();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => run::<String>(rest),
        1 => run::<Vec<u8>>(rest),
        _ => run::<(u32, Vec<u16>, Option<String>)>(rest),
    }
});
