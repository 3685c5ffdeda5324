//! Arbitrary bytes as a shared region another process wrote: attaching any
//! kind of object returns a typed error or a handle, and operating on a
//! handle over corrupted state never panics, hangs or reads out of bounds
//! (the address sanitizer checks the last).
#![no_main]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use libfuzzer_sys::fuzz_target;
use mproc_core::barrier::RawBarrier;
use mproc_core::cell::SharedCell;
use mproc_core::condition::RawCondition;
use mproc_core::event::RawEvent;
use mproc_core::mpmc::Mpmc;
use mproc_core::mutex::RawMutex;
use mproc_core::rlock::RawRLock;
use mproc_core::semaphore::{RawBoundedSemaphore, RawSemaphore};
use mproc_core::spsc::Spsc;
use mproc_core::{OwnerId, Spin};

/// The fuzz input copied into memory aligned as a mapping would be.
struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Region {
    fn new(bytes: &[u8]) -> Self {
        let layout = Layout::from_size_align(bytes.len().max(1), 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        // SAFETY: `ptr` has room for `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        Self { ptr, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let region = Region::new(bytes);
    let (mem, len) = (region.ptr, bytes.len());
    let me = OwnerId::new(1).unwrap();
    // Every attach below is sound for the same reason: `mem` holds `len`
    // initialized bytes that outlive the handle and nothing else uses.
    // SAFETY: as above.
    if let Ok(ring) = unsafe { Mpmc::<u64>::attach(mem, len) } {
        let _ = ring.len();
        let _ = ring.try_push(&Spin, me, 1);
        let _ = ring.try_push_slice(&Spin, me, &[2, 3, 4]);
        let mut out = [0; 8];
        let _ = ring.try_pop_slice(&Spin, me, &mut out);
        let _ = ring.try_pop(&Spin, me);
    }
    // SAFETY: as for the first attach above.
    if let Ok(ring) = unsafe { Spsc::<u64>::attach(mem, len) } {
        let _ = ring.len();
        // SAFETY: the only producer and consumer of this copy.
        if let (Ok(mut tx), Ok(mut rx)) = unsafe { (ring.producer(), ring.consumer()) } {
            let _ = tx.try_push(&Spin, 1);
            let _ = tx.try_push_slice(&Spin, &[2, 3, 4]);
            let mut out = [0; 8];
            let _ = rx.try_pop_slice(&Spin, &mut out);
            let _ = rx.try_pop(&Spin);
            let _ = (rx.len(), tx.free_len());
        }
    }
    // SAFETY: as for the first attach above.
    if let Ok(mutex) = unsafe { RawMutex::attach(mem, len) } {
        if mutex.try_lock(me) {
            // SAFETY: just locked.
            unsafe { mutex.unlock(&Spin) };
        }
        let _ = (mutex.owner(), mutex.is_locked());
    }
    // SAFETY: as for the first attach above.
    if let Ok(sem) = unsafe { RawSemaphore::attach(mem, len) } {
        if sem.try_acquire() {
            let _ = sem.release(&Spin, 1);
        }
        let _ = sem.release_bounded(&Spin, 3, 5);
        let _ = sem.value();
    }
    // SAFETY: as for the first attach above.
    if let Ok(event) = unsafe { RawEvent::attach(mem, len) } {
        let _ = event.is_set();
        event.set(&Spin);
        event.clear();
    }
    // SAFETY: as for the first attach above.
    if let Ok(cell) = unsafe { SharedCell::<u64>::attach(mem, len) } {
        if let Some(mut guard) = cell.try_lock(&Spin, me) {
            let n = guard.len();
            let first = guard.first().copied();
            if let Some(v) = first {
                guard.set(n - 1, v);
            }
            let _ = guard.get(n);
        }
    }
    // SAFETY: as for the first attach above.
    if let Ok(lock) = unsafe { RawRLock::attach(mem, len) } {
        if lock.try_lock(me) {
            let _ = lock.unlock(&Spin, me);
        }
        let _ = lock.unlock(&Spin, me);
        let _ = (lock.owner(), lock.count(), lock.is_locked());
    }
    // SAFETY: as for the first attach above.
    if let Ok(sem) = unsafe { RawBoundedSemaphore::attach(mem, len) } {
        if sem.try_acquire() {
            let _ = sem.release(&Spin, 1);
        }
        let _ = sem.release(&Spin, 2);
        let _ = (sem.value(), sem.bound());
    }
    // SAFETY: as for the first attach above.
    if let Ok(cond) = unsafe { RawCondition::attach(mem, len) } {
        cond.notify(&Spin, 1);
        cond.notify_all(&Spin);
        if cond.mutex().try_lock(me) {
            // SAFETY: just locked.
            unsafe { cond.mutex().unlock(&Spin) };
        }
        let _ = cond.waiters();
    }
    // SAFETY: as for the first attach above.
    if let Ok(barrier) = unsafe { RawBarrier::attach(mem, len) } {
        let _ = (barrier.parties(), barrier.n_waiting(), barrier.is_broken());
        // A party of one never waits for anybody, whatever the state says.
        if barrier.parties() == 1 {
            let _ = barrier.wait(&Spin, None);
        }
        barrier.abort(&Spin);
        barrier.reset(&Spin);
    }
});
