//! A valid header over a hostile body: a ring, a frame ring and a mutex are
//! created, then the fuzz input overwrites words of their state (positions,
//! slot stamps and claims, lock words and owner records, the records of the
//! frames being written and read, the bytes) as a misbehaving or dying
//! process might, and drives blocking operations through a waiter
//! whose liveness checks are always due and whose owners are dead or alive
//! as the input says. Every operation must return (no hang), never panic,
//! and never touch memory outside the object (the address sanitizer checks
//! the last).
#![no_main]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::Cell;
use std::ptr::NonNull;

use libfuzzer_sys::fuzz_target;
use mproc_core::frames::FrameRing;
use mproc_core::layout::ObjectLayout;
use mproc_core::mpmc::Mpmc;
use mproc_core::mutex::RawMutex;
use mproc_core::sync::AtomicU32;
use mproc_core::{Origin, OwnerId, TimedOut, TypeFingerprint, Wait};

/// A deadline of [`Impatient`]: the caller's (after so many looks at the
/// clock), or a liveness check (always due).
#[derive(Clone, Copy)]
enum Due {
    After(u32),
    Check,
}

/// A waiter that never sleeps, runs out of time after a few looks at the
/// clock, checks liveness at every chance, and finds owners gone as the
/// input says.
struct Impatient {
    clock: Cell<u32>,
    gone: Cell<u8>,
}

impl Wait for Impatient {
    type Deadline = Due;

    fn wait(&self, _: &AtomicU32, _: u32, deadline: Option<Due>) -> Result<(), TimedOut> {
        self.clock.set(self.clock.get() + 1);
        match deadline {
            Some(_) => Err(TimedOut),
            None => Ok(()),
        }
    }

    fn wake(&self, _: &AtomicU32, _: u32) {}

    fn expired(&self, deadline: Due) -> bool {
        self.clock.set(self.clock.get() + 1);
        match deadline {
            Due::After(at) => self.clock.get() >= at,
            Due::Check => true,
        }
    }

    fn spin_rounds(&self) -> u32 {
        1
    }

    fn relax(&self, _: u32) {
        self.clock.set(self.clock.get() + 1);
    }

    fn check_deadline(&self, deadline: Option<Due>) -> (Option<Due>, bool) {
        match deadline {
            Some(Due::After(at)) if self.clock.get() >= at => (deadline, false),
            _ => (Some(Due::Check), true),
        }
    }

    fn owner_gone(&self, id: u32, start: Option<u32>) -> bool {
        let gone = self.gone.get();
        self.gone.set(gone.rotate_left(1));
        (gone & 1 == 1) ^ (id == 1 && start.is_some())
    }
}

/// Zeroed memory for `layout`, aligned as a mapping would be.
struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    fn new(object: ObjectLayout) -> Self {
        let layout = Layout::from_size_align(object.size(), 4096).unwrap();
        // SAFETY: non-zero size (a header at least).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        Self { ptr, layout }
    }

    /// Overwrites the aligned `u32` at word `index` (modulo the words after
    /// the 64-byte header) with `value`.
    fn poke(&self, index: u8, value: u32) {
        let words = (self.layout.size() - 64) / 4;
        let at = 64 + usize::from(index) % words * 4;
        // SAFETY: in bounds (`at + 4 <= size`), 4-aligned, and nobody else
        // uses the memory; all of it is atomics or plain data, valid for
        // any bytes.
        unsafe { self.ptr.as_ptr().add(at).cast::<u32>().write(value) };
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let capacity = u64::from(head % 8) + 1;
    let w = Impatient {
        clock: Cell::new(0),
        gone: Cell::new(head),
    };
    let me = OwnerId::with_start(2, 7).unwrap();
    let ring_mem = Mem::new(Mpmc::<u64>::layout(capacity).unwrap());
    // SAFETY: `ring_mem` holds the layout's zeroed bytes, aligned, that
    // outlive `ring`, used by nothing else.
    let ring = unsafe {
        Mpmc::<u64>::create(
            ring_mem.ptr,
            ring_mem.layout.size(),
            capacity,
            Origin::default(),
        )
    }
    .unwrap();
    let mutex_mem = Mem::new(RawMutex::object_layout());
    // SAFETY: as above, for `mutex`.
    let mutex =
        unsafe { RawMutex::create(mutex_mem.ptr, mutex_mem.layout.size(), Origin::default()) }
            .unwrap();
    let frames_capacity = 16 << (head % 3);
    let frames_mem = Mem::new(FrameRing::layout(frames_capacity).unwrap());
    // SAFETY: as above, for `frames`.
    let frames = unsafe {
        FrameRing::create(
            frames_mem.ptr,
            frames_mem.layout.size(),
            frames_capacity,
            u32::from(head % 4) + 1,
            TypeFingerprint::of::<u8>(),
            Origin::default(),
        )
    }
    .unwrap();
    let mut out = [0u64; 4];
    let mut bytes = [0u8; 64];
    for chunk in rest.chunks(6) {
        let [op, index, a, b, c, d] =
            <[u8; 6]>::try_from(chunk).unwrap_or([chunk[0], 0, 0, 0, 0, 0]);
        let value = u32::from_le_bytes([a, b, c, d]);
        let soon = Some(Due::After(w.clock.get() + 8));
        match op % 12 {
            0 => ring_mem.poke(index, value),
            1 => mutex_mem.poke(index, value),
            2 => {
                let _ = ring.push(&w, me, u64::from(value), soon);
            }
            3 => {
                let _ = ring.pop(&w, me, soon);
            }
            4 => {
                let _ = ring.push_slice(&w, me, &[1, 2, 3], soon);
                let _ = ring.pop_slice(&w, me, &mut out, soon);
            }
            5 => {
                if mutex.lock(&w, me, soon).is_ok() {
                    if index & 1 == 0 {
                        // SAFETY: locked just now.
                        unsafe { mutex.mark_consistent() };
                    }
                    // SAFETY: locked just now.
                    unsafe { mutex.unlock(&w) };
                }
            }
            6 => {
                let _ = (
                    ring.len(),
                    ring.claimer(usize::from(index)),
                    ring.watch_pop(),
                );
            }
            7 => {
                let _ = (mutex.owner(), mutex.is_inconsistent(), mutex.held_by(me));
                let _ = (ring.try_push(&w, me, 9), ring.try_pop(&w, me));
            }
            8 => frames_mem.poke(index, value),
            9 => {
                let len = u64::from(value % 48);
                if let Ok(mut writer) = frames.begin_write(&w, me, len, soon) {
                    // Finished whole, or (dropped) cut.
                    if writer.write(&bytes[..len as usize], soon).is_ok() && index & 1 == 0 {
                        let _ = writer.finish();
                    }
                }
            }
            10 => {
                if let Ok(mut reader) = frames.begin_read(&w, me, soon) {
                    let n = reader.remaining().min(64) as usize;
                    let _ = reader.read_until(&mut bytes[..n], soon);
                    if reader.remaining() == 0 {
                        let _ = reader.finish();
                    } else {
                        // Abandoned in the middle, as by a reader that
                        // died: it keeps the reader lock.
                        std::mem::forget(reader);
                    }
                }
            }
            _ => {
                let _ = (frames.len(), frames.is_empty(), frames.watch_read());
                match index % 3 {
                    0 => frames.close(&w),
                    1 => frames.wake_all(&w),
                    _ => {
                        if let Ok(reader) = frames.begin_read(&w, me, soon) {
                            reader.unread();
                        }
                    }
                }
            }
        }
    }
});
