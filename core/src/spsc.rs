//! A single-producer single-consumer ring of plain-old-data values, laid out
//! in caller-provided shared memory.
//!
//! # Protocol
//!
//! Positions run over `0 .. 2 * capacity` (as in rtrb), so a full ring and an
//! empty one differ without a spare slot and no division is needed. Each side
//! keeps its own position and a cached copy of the other side's in its
//! process-local handle, and reads the shared word only when the cache says
//! the ring is full (producer) or empty (consumer).
//!
//! | word   | bits 0..63                | bit 63                           |
//! |--------|---------------------------|----------------------------------|
//! | `tail` | producer position         | the consumer is asleep for items |
//! | `head` | consumer position         | the producer is asleep for space |
//!
//! The producer publishes with one `swap` on `tail` (Release: the values are
//! visible before the position), which also tells it whether the consumer
//! set its "asleep" bit with a CAS; if so it bumps the `items` epoch and
//! wakes it. The consumer frees slots the same way through `head`. A batch
//! costs one such swap however many values it moves.
//!
//! # Progress
//!
//! `try_*` operations are wait-free. Blocking ones spin for
//! [`Wait::spin_rounds`], then sleep.
//!
//! # One producer, one consumer
//!
//! [`Spsc::producer`] and [`Spsc::consumer`] are `unsafe`: across all
//! processes at most one of each may exist at a time. mproc-os creates both
//! at once and moves each to the process that uses it.

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::layout::{
    self, CachePadded, Epochs, LayoutError, ObjectKind, ObjectLayout, Origin, Parts,
};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell, init_cell, init_u64};
use crate::wait::Wait;
use crate::{PopError, PushError, ShmSafe, TypeFingerprint, as_uninit};

/// "The other side is asleep" in a `head` / `tail` word.
const ASLEEP: u64 = 1 << 63;
/// The largest capacity.
const MAX_CAPACITY: u64 = 1 << 40;

/// The fixed part of an SPSC ring in shared memory.
#[derive(Debug)]
#[repr(C)]
pub struct SpscState {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    epochs: CachePadded<Epochs>,
}

/// One slot of the ring.
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

#[cfg(not(loom))]
mod pinned {
    use super::{Slot, SpscState};
    use core::mem::offset_of;
    use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

    assert_eq_size!(SpscState, [u8; 384]);
    assert_eq_align!(SpscState, crate::layout::CachePadded<u8>);
    const_assert_eq!(offset_of!(SpscState, head), 0);
    const_assert_eq!(offset_of!(SpscState, tail), 128);
    const_assert_eq!(offset_of!(SpscState, epochs), 256);
    assert_eq_size!(Slot<u64>, u64);
    assert_eq_align!(Slot<u64>, u64);
}

/// A process-local handle to an SPSC ring in shared memory, from which the
/// one [`Producer`] and the one [`Consumer`] are made.
///
/// # Examples
///
/// ```
/// use mproc_core::{Origin, Spin, spsc::Spsc};
///
/// let layout = Spsc::<u32>::layout(8).unwrap();
/// // SAFETY: the layout is not zero-sized.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
/// let base = std::ptr::NonNull::new(mem).unwrap();
/// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
/// // layout asks, that outlive the ring and are used by nothing else.
/// let ring = unsafe { Spsc::<u32>::create(base, layout.size(), 8, Origin::default()) }.unwrap();
/// // SAFETY: the only producer and the only consumer of this ring.
/// let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
///
/// assert_eq!(tx.try_push_slice(&Spin, &[1, 2, 3, 4, 5, 6, 7, 8, 9]), 8);
/// let mut out = [0; 5];
/// assert_eq!(rx.try_pop_slice(&Spin, &mut out), 5);
/// assert_eq!(out, [1, 2, 3, 4, 5]);
/// tx.try_push(&Spin, 10).unwrap();
/// assert_eq!(rx.len(), 4);
/// drop((tx, rx));
/// // SAFETY: allocated above with this layout; the ring is not used any more.
/// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
/// ```
pub struct Spsc<T> {
    state: NonNull<SpscState>,
    slots: NonNull<Slot<T>>,
    capacity: u64,
    _values: PhantomData<T>,
}

impl<T> Clone for Spsc<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Spsc<T> {}

impl<T> core::fmt::Debug for Spsc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Spsc")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

// SAFETY: the handle only points into shared memory; slots are handed between
// the single producer and the single consumer by Release/Acquire on the
// positions, and the values are `ShmSafe` (plain data).
unsafe impl<T: ShmSafe> Send for Spsc<T> {}
// SAFETY: as for `Send`; the shared handle itself only reads positions.
unsafe impl<T: ShmSafe> Sync for Spsc<T> {}

impl<T: ShmSafe> Spsc<T> {
    /// The memory layout of a ring of `capacity` slots.
    pub fn layout(capacity: u64) -> Result<ObjectLayout, LayoutError> {
        if capacity == 0 {
            return Err(LayoutError::BadCapacity {
                capacity,
                reason: "a queue needs at least one slot",
            });
        }
        if capacity > MAX_CAPACITY {
            return Err(LayoutError::BadCapacity {
                capacity,
                reason: "a queue has at most 2^40 slots",
            });
        }
        ObjectLayout::new::<SpscState, Slot<T>>(capacity)
    }

    /// Creates an empty ring of `capacity` slots at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory (any contents), used by nobody else until this returns, and
    /// stays mapped for as long as this handle, a copy, or a producer or
    /// consumer made from it is used.
    pub unsafe fn create(
        mem: NonNull<u8>,
        len: usize,
        capacity: u64,
        origin: Origin,
    ) -> Result<Self, LayoutError> {
        let layout = Self::layout(capacity)?;
        // SAFETY: forwarded from the caller.
        let parts: Parts<SpscState, Slot<T>> = unsafe {
            layout::create(
                mem,
                len,
                ObjectKind::SpscQueue,
                TypeFingerprint::of::<T>(),
                capacity,
                layout,
                origin,
            )?
        };
        let state = parts.body.as_ptr();
        // SAFETY: `layout::create` checked that the body and `capacity` slots
        // lie inside the caller's memory, which nobody else uses yet.
        unsafe {
            init_u64(&raw mut (*state).head.0, 0);
            init_u64(&raw mut (*state).tail.0, 0);
            Epochs::init(&raw mut (*state).epochs.0);
            for i in 0..capacity as usize {
                init_cell(parts.elems.as_ptr().add(i), MaybeUninit::uninit());
            }
            parts.publish();
        }
        Ok(Self::from_parts(parts))
    }

    /// Attaches to a ring that another handle created at `mem`, after checking
    /// its header, its element type and its positions.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory, and stays mapped for as long as this handle, a copy, or a
    /// producer or consumer made from it is used.
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller.
        let parts = unsafe {
            layout::attach(
                mem,
                len,
                ObjectKind::SpscQueue,
                TypeFingerprint::of::<T>(),
                Self::layout,
            )?
        };
        let ring = Self::from_parts(parts);
        ring.positions()?;
        Ok(ring)
    }

    fn from_parts(parts: Parts<SpscState, Slot<T>>) -> Self {
        Self {
            state: parts.body,
            slots: parts.elems,
            capacity: parts.capacity,
            _values: PhantomData,
        }
    }

    #[inline]
    fn state(&self) -> &SpscState {
        // SAFETY: `state` points into memory that the creator of this handle
        // promised stays mapped; every field is an atomic.
        unsafe { self.state.as_ref() }
    }

    /// The current (head, tail), checked to be possible.
    fn positions(&self) -> Result<(u64, u64), LayoutError> {
        let head = self.state().head.load(Ordering::Acquire) & !ASLEEP;
        let tail = self.state().tail.load(Ordering::Acquire) & !ASLEEP;
        if head >= 2 * self.capacity
            || tail >= 2 * self.capacity
            || self.distance(head, tail) > self.capacity
        {
            return Err(LayoutError::Corrupted {
                what: "queue head or tail outside the ring",
            });
        }
        Ok((head, tail))
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Number of values in the ring (a snapshot).
    pub fn len(&self) -> usize {
        let head = self.state().head.load(Ordering::Acquire) & !ASLEEP;
        let tail = self.state().tail.load(Ordering::Acquire) & !ASLEEP;
        self.distance(head, tail).min(self.capacity) as usize
    }

    /// Whether the ring holds no value (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the producer.
    ///
    /// # Safety
    /// No other [`Producer`] of this ring exists or will exist while this one
    /// is used, in any process.
    pub unsafe fn producer(&self) -> Result<Producer<T>, LayoutError> {
        let (head, tail) = self.positions()?;
        Ok(Producer {
            ring: *self,
            tail,
            head,
        })
    }

    /// Makes the consumer.
    ///
    /// # Safety
    /// No other [`Consumer`] of this ring exists or will exist while this one
    /// is used, in any process.
    pub unsafe fn consumer(&self) -> Result<Consumer<T>, LayoutError> {
        let (head, tail) = self.positions()?;
        Ok(Consumer {
            ring: *self,
            head,
            tail,
        })
    }

    /// Values between position `from` and position `to`.
    #[inline]
    fn distance(&self, from: u64, to: u64) -> u64 {
        if to >= from {
            to - from
        } else {
            to + 2 * self.capacity - from
        }
    }

    #[inline]
    fn index(&self, pos: u64) -> u64 {
        if pos < self.capacity {
            pos
        } else {
            pos - self.capacity
        }
    }

    #[inline]
    fn advance(&self, pos: u64, count: u64) -> u64 {
        let next = pos + count;
        if next >= 2 * self.capacity {
            next - 2 * self.capacity
        } else {
            next
        }
    }

    /// The slot at `index`.
    ///
    /// # Safety
    /// `index < capacity`.
    #[inline]
    unsafe fn slot(&self, index: u64) -> &Slot<T> {
        debug_assert!(index < self.capacity);
        // SAFETY: in range (caller); `create`/`attach` checked that
        // `capacity` slots lie in the mapping.
        unsafe { &*self.slots.as_ptr().add(index as usize) }
    }

    /// Sleeps until `word` moves away from `stuck_at` (the position that
    /// leaves this side nothing to do: the consumer's own head when empty, the
    /// producer's cached head when full), until `deadline`, or spuriously.
    /// `Err` on timeout.
    #[cold]
    fn sleep<W: Wait>(
        &self,
        w: &W,
        word: &AtomicU64,
        epoch: &AtomicU32,
        stuck_at: u64,
        deadline: Option<W::Deadline>,
    ) -> Result<(), ()> {
        if deadline.is_some_and(|d| w.expired(d)) {
            return Err(());
        }
        // Read the epoch before setting the bit: the other side bumps it only
        // after its swap saw the bit, hence after this load.
        // Acquire pairs with the Release bump in `Epochs::bump_and_wake`.
        let key = epoch.load(Ordering::Acquire);
        let seen = word.load(Ordering::Relaxed);
        if seen & !ASLEEP != stuck_at {
            // The other side moved: no need to sleep.
            return Ok(());
        }
        // Release: our epoch load happens before the other side's bump,
        // whose swap reads this CAS with Acquire.
        if seen & ASLEEP == 0
            && word
                .compare_exchange(seen, seen | ASLEEP, Ordering::Release, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        match w.wait(epoch, key, deadline) {
            Ok(()) => Ok(()),
            Err(_) => {
                // Leave; take the bit back (the other side may already have).
                word.fetch_and(!ASLEEP, Ordering::Relaxed);
                Err(())
            }
        }
    }
}

/// The sending side of an SPSC ring.
pub struct Producer<T> {
    ring: Spsc<T>,
    /// Our position (only we move it).
    tail: u64,
    /// The consumer's position as last read.
    head: u64,
}

impl<T> core::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

// SAFETY: a producer is the ring's one writer; moving it to another thread
// keeps it the only one.
unsafe impl<T: ShmSafe> Send for Producer<T> {}

impl<T: ShmSafe> Producer<T> {
    /// Free slots, reading the consumer's position only if the cached one
    /// shows fewer than `want`.
    #[inline]
    fn free(&mut self, want: u64) -> u64 {
        let ring = &self.ring;
        let used = ring.distance(self.head, self.tail);
        if used <= ring.capacity && ring.capacity - used >= want {
            return ring.capacity - used;
        }
        self.refresh();
        self.ring
            .capacity
            .saturating_sub(self.ring.distance(self.head, self.tail))
    }

    /// Re-reads the consumer's position.
    #[inline]
    fn refresh(&mut self) {
        // Acquire pairs with the consumer's Release swap that freed slots, so
        // our writes cannot overtake its reads.
        let head = self.ring.state().head.load(Ordering::Acquire) & !ASLEEP;
        if head < 2 * self.ring.capacity {
            self.head = head;
        }
    }

    /// Writes `values` (at most the free slots) and publishes them.
    #[inline]
    fn write<W: Wait>(&mut self, w: &W, values: &[T]) {
        let ring = self.ring;
        let mut pos = self.tail;
        for value in values {
            // SAFETY: `index` is below the capacity, and the slot is free:
            // the consumer's position shows it read this slot's last value.
            let slot = unsafe { ring.slot(ring.index(pos)) };
            // SAFETY: only the producer writes free slots, and the consumer
            // reads none until the swap below publishes them.
            slot.with_mut(|cell| unsafe { cell.write(MaybeUninit::new(*value)) });
            pos = ring.advance(pos, 1);
        }
        self.tail = pos;
        let state = ring.state();
        // AcqRel: Release publishes the values with the position, and
        // Acquire pairs with the consumer's Release CAS that set ASLEEP, so
        // its epoch read happens before our bump.
        let old = state.tail.swap(pos, Ordering::AcqRel);
        if old & ASLEEP != 0 {
            Epochs::bump_and_wake(w, &state.epochs.items, 1);
        }
    }

    /// Free slots now (reads the consumer's position).
    pub fn free_len(&mut self) -> usize {
        self.refresh();
        self.free(0) as usize
    }

    /// Pushes `value` if a slot is free.
    #[inline]
    pub fn try_push<W: Wait>(&mut self, w: &W, value: T) -> Result<(), PushError<T>> {
        if self.free(1) == 0 {
            return Err(PushError::Full(value));
        }
        self.write(w, core::slice::from_ref(&value));
        Ok(())
    }

    /// Pushes `value`, waiting for a free slot until `deadline` (`None`:
    /// forever). On timeout the value is handed back.
    #[inline]
    pub fn push<W: Wait>(
        &mut self,
        w: &W,
        value: T,
        deadline: Option<W::Deadline>,
    ) -> Result<(), PushError<T>> {
        match self.push_slice(w, core::slice::from_ref(&value), deadline) {
            1 => Ok(()),
            _ => Err(PushError::Full(value)),
        }
    }

    /// Pushes as many of `values` as fit now, in order; returns how many.
    #[inline]
    pub fn try_push_slice<W: Wait>(&mut self, w: &W, values: &[T]) -> usize {
        let count = (self.free(values.len() as u64) as usize).min(values.len());
        if count > 0 {
            self.write(w, &values[..count]);
        }
        count
    }

    /// Pushes all of `values`, waiting for space until `deadline` (`None`:
    /// forever); returns how many it pushed (all unless the deadline passed).
    pub fn push_slice<W: Wait>(
        &mut self,
        w: &W,
        values: &[T],
        deadline: Option<W::Deadline>,
    ) -> usize {
        let mut done = 0;
        let mut round = 0;
        while done < values.len() {
            let pushed = self.try_push_slice(w, &values[done..]);
            if pushed > 0 {
                done += pushed;
                continue;
            }
            if round < w.spin_rounds() && !deadline.is_some_and(|d| w.expired(d)) {
                w.relax(round);
                round += 1;
                continue;
            }
            let ring = self.ring;
            let state = ring.state();
            // Full: our view of `head` is one lap behind our tail.
            if ring
                .sleep(w, &state.head, &state.epochs.space, self.head, deadline)
                .is_err()
            {
                return done + self.try_push_slice(w, &values[done..]);
            }
        }
        done
    }
}

/// The receiving side of an SPSC ring.
pub struct Consumer<T> {
    ring: Spsc<T>,
    /// Our position (only we move it).
    head: u64,
    /// The producer's position as last read.
    tail: u64,
}

impl<T> core::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

// SAFETY: a consumer is the ring's one reader; moving it to another thread
// keeps it the only one.
unsafe impl<T: ShmSafe> Send for Consumer<T> {}

impl<T: ShmSafe> Consumer<T> {
    /// Values ready, reading the producer's position only if the cached one
    /// shows fewer than `want`.
    #[inline]
    fn ready(&mut self, want: u64) -> u64 {
        let ring = &self.ring;
        let ready = ring.distance(self.head, self.tail);
        if ready >= want && ready <= ring.capacity {
            return ready;
        }
        self.refresh();
        self.ring
            .distance(self.head, self.tail)
            .min(self.ring.capacity)
    }

    /// Reads `out.len()` ready values and frees their slots.
    #[inline]
    fn read<W: Wait>(&mut self, w: &W, out: &mut [MaybeUninit<T>]) {
        let ring = self.ring;
        let mut pos = self.head;
        for value in out.iter_mut() {
            // SAFETY: `index` is below the capacity, and the slot holds a
            // value the producer published (our Acquire load saw it).
            let slot = unsafe { ring.slot(ring.index(pos)) };
            // SAFETY: the producer does not touch a published slot until our
            // swap below frees it; `T: ShmSafe` is valid for any bytes.
            *value = slot.with(|cell| unsafe { *cell });
            pos = ring.advance(pos, 1);
        }
        self.head = pos;
        let state = ring.state();
        // AcqRel: Release frees the slots with the position; Acquire pairs
        // with the producer's Release CAS that set ASLEEP.
        let old = state.head.swap(pos, Ordering::AcqRel);
        if old & ASLEEP != 0 {
            Epochs::bump_and_wake(w, &state.epochs.space, 1);
        }
    }

    /// Values ready now (reads the producer's position).
    pub fn len(&mut self) -> usize {
        self.refresh();
        self.ready(0) as usize
    }

    /// Whether no value is ready now (reads the producer's position).
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Re-reads the producer's position.
    #[inline]
    fn refresh(&mut self) {
        // Acquire pairs with the producer's Release swap that published.
        let tail = self.ring.state().tail.load(Ordering::Acquire) & !ASLEEP;
        if tail < 2 * self.ring.capacity {
            self.tail = tail;
        }
    }

    /// Pops the oldest value if one is ready.
    #[inline]
    pub fn try_pop<W: Wait>(&mut self, w: &W) -> Result<T, PopError> {
        if self.ready(1) == 0 {
            return Err(PopError::Empty);
        }
        let mut value = MaybeUninit::uninit();
        self.read(w, core::slice::from_mut(&mut value));
        // SAFETY: `read` initialized it.
        Ok(unsafe { value.assume_init() })
    }

    /// Pops the oldest value, waiting until `deadline` (`None`: forever).
    #[inline]
    pub fn pop<W: Wait>(&mut self, w: &W, deadline: Option<W::Deadline>) -> Result<T, PopError> {
        let mut value = MaybeUninit::uninit();
        match self.pop_into(w, core::slice::from_mut(&mut value), deadline) {
            // SAFETY: `pop_into` initialized the value it reports.
            1 => Ok(unsafe { value.assume_init() }),
            _ => Err(PopError::Empty),
        }
    }

    /// Pops up to `out.len()` ready values into `out[..n]`; returns `n`.
    #[inline]
    pub fn try_pop_slice<W: Wait>(&mut self, w: &W, out: &mut [T]) -> usize {
        let count = (self.ready(out.len() as u64) as usize).min(out.len());
        if count > 0 {
            self.read(w, &mut as_uninit(out)[..count]);
        }
        count
    }

    /// Pops up to `out.len()` values into `out[..n]`, waiting until at least
    /// one is ready or `deadline` passes (`None`: forever); returns `n`.
    pub fn pop_slice<W: Wait>(
        &mut self,
        w: &W,
        out: &mut [T],
        deadline: Option<W::Deadline>,
    ) -> usize {
        self.pop_into(w, as_uninit(out), deadline)
    }

    fn pop_into<W: Wait>(
        &mut self,
        w: &W,
        out: &mut [MaybeUninit<T>],
        deadline: Option<W::Deadline>,
    ) -> usize {
        let mut round = 0;
        while !out.is_empty() {
            let count = (self.ready(out.len() as u64) as usize).min(out.len());
            if count > 0 {
                self.read(w, &mut out[..count]);
                return count;
            }
            if round < w.spin_rounds() && !deadline.is_some_and(|d| w.expired(d)) {
                w.relax(round);
                round += 1;
                continue;
            }
            let ring = self.ring;
            let state = ring.state();
            if ring
                .sleep(w, &state.tail, &state.epochs.items, self.head, deadline)
                .is_err()
            {
                let count = (self.ready(out.len() as u64) as usize).min(out.len());
                if count > 0 {
                    self.read(w, &mut out[..count]);
                }
                return count;
            }
        }
        0
    }
}
