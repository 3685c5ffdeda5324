//! A bounded ring of byte frames: messages of any length, written by many
//! writers and read by many readers, one writer and one reader at a time.
//!
//! # Frames
//!
//! The ring carries one byte stream. A message is a *frame*: its length as
//! 4 little-endian bytes, then that many payload bytes. A writer holds the
//! writer lock for its whole frame and a reader holds the reader lock for
//! its whole frame, so frames never interleave and between the two locks the
//! ring is single-producer single-consumer. A frame longer than the ring
//! streams through it: the writer publishes what it has written so far, the
//! reader consumes it and releases the space, and the writer reuses it.
//!
//! # Words
//!
//! Stream positions count bytes since the ring was created (they do not
//! wrap in practice: 2^63 bytes); byte `p` lives at index `p % capacity`.
//!
//! | word         | bits 0..62                          | bit 63                              |
//! |--------------|-------------------------------------|-------------------------------------|
//! | `tail`       | position published by writers       | `ASLEEP`: a reader sleeps for data  |
//! | `head`       | position released by readers        | `ASLEEP`: a writer sleeps for space |
//! | `aborted`    | position where the last cut frame stops | `CUT`: a reader has not passed the cut yet |
//!
//! | word           | changed by     | meaning                                          |
//! |----------------|----------------|--------------------------------------------------|
//! | `begun`        | writers        | frames begun by writers (wrapping)               |
//! | `ended`        | readers        | frames read to their end by readers (wrapping)   |
//! | `head_seen`    | writers        | the head as the last writer read it              |
//! | `tail_seen`    | readers        | the tail as the last reader read it              |
//! | `max_messages` | the creator    | the bound on `begun - ended`, the frames in the ring |
//! | `closed`       | `close`        | 1 once the ring is closed                        |
//!
//! Each side's words (its lock, its count, its view of the other side's
//! position) share a cache line that only that side changes, and `tail`
//! and `head` have a line each, so a writer and a reader that keep up
//! with each other touch each other's lines only to pass positions: a
//! writer reads `head` and `ended` again only when the values it saw last
//! leave too little room, and a reader reads `tail` again only when the
//! value it saw last shows no frame. Seen values lag behind the real ones,
//! which only grow, so they never show room or frames that are not there.
//!
//! Each side publishes its position with one `swap` (Release: the bytes are
//! written, or read, before the position moves), which also tells it
//! whether the other side set its `ASLEEP` bit with a CAS; if so it bumps
//! the other side's epoch ([`Epochs`]) and wakes it. A sleeper reads the
//! epoch before it sets the bit and sleeps while the epoch is unchanged, so
//! no wake-up is lost (the scheme of [`crate::spsc`]). `close` and a cut
//! frame bump the epochs whether or not anybody sleeps: they are rare, and
//! they change no position a sleeper could watch.
//!
//! # A frame that is cut
//!
//! A writer that gives up in the middle of a frame (its deadline passed
//! while the ring was full, or it could not produce the bytes it announced)
//! publishes what it wrote, records the position in `aborted` and wakes the
//! reader, which drops the partial frame, clears the `CUT` bit (leaving the
//! position) and goes on with the next one. Until the reader has cleared it
//! no writer begins, so the bytes after a cut are never published before
//! the reader knows where the frame stopped. The writer's value is not
//! lost: it was never delivered, and the caller still holds it. A writer
//! that gives up before it published anything leaves no trace.
//!
//! # An owner that dies
//!
//! Both locks are [`RawMutex`]es, which record their owner: a writer (or
//! reader) that finds the lock's owner dead takes the lock over (see
//! [`crate::mutex`]) and repairs the ring before it goes on. Each side
//! keeps a record of the frame its lock holder is in, written before the
//! words it describes change, so the repair never guesses:
//!
//! * a writer's record (`frame`, `frame_len`, `frame_begun`, `cutting`):
//!   where the frame starts, how long it is, what `begun` is once it
//!   counts, and where a cut was begun. The new writer forgets a frame that
//!   published nothing (taking it out of `begun` if it was counted), keeps
//!   one that was published whole, and cuts one published in part where
//!   its bytes stop, or finishes the cut the dead writer was making;
//! * a reader's record (`frame`, `frame_end`, `frame_ended`): where the
//!   frame starts and stops (its end, or the cut the reader saw) and what
//!   `ended` is once it ends. The new reader finishes the ending of a frame
//!   that was counted ended; leaves a frame none of which was released in
//!   the ring, to be read again (the dead reader never returned it); and
//!   skips the rest of a frame that was released in part.
//!
//! Every repair step looks at what is already done, so a repairer that
//! dies in turn leaves a record the next one repairs from. A reader in the
//! middle of a frame waits for its writer, not for the writer lock: so it
//! checks the writer's liveness now and then ([`Wait::check_deadline`]),
//! takes the writer lock over itself if the writer is gone, repairs (which
//! cuts its frame) and releases the lock. A reader waiting for a closed
//! ring to drain does the same.
//!
//! # Closing
//!
//! After [`FrameRing::close`] a writer that has not started fails with
//! [`BeginWriteError::Closed`]; a frame already being written is finished.
//! Readers read what is left and then get [`BeginReadError::Closed`]
//! instead of waiting.
//!
//! # Watching
//!
//! A party that only wants to know when a frame is there, without taking
//! the reader lock ([`FrameRing::watch_read`]), registers like a sleeping
//! reader: it reads the `items` epoch, sets `ASLEEP` in `tail` with a CAS
//! that succeeds only if the tail still shows nothing to read, and sleeps
//! on the epoch. So the reader and any number of watchers may sleep on the
//! `items` epoch at once, and a writer that finds `ASLEEP` wakes them all.
//! A reader whose sleep times out leaves the bit set (a watcher may still
//! count on it): the next writer makes one wake-up call for nobody.
//!
//! # Progress
//!
//! Blocking. Writers wait for each other (the writer lock), for the bound on
//! messages, for space and for a reader to pass a cut; readers wait for each
//! other and for data. Every wait before a frame starts takes a deadline. A
//! reader in the middle of a frame waits for its writer without one unless
//! it asks for one ([`FrameReader::read_until`]): the writer either
//! finishes the frame or cuts it, and its own waits have deadlines; if it
//! dies instead, the reader cuts the frame for it. A reader whose
//! `read_until` timed out is still in its frame and may go on.

use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{
    self, CachePadded, Epochs, LayoutError, ObjectKind, ObjectLayout, Origin, Parts,
};
use crate::mutex::{Acquired, RawMutex};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell, init_u32, init_u64};
use crate::wait::{OwnerId, Readiness, TimedOut, Wait};

/// Bytes of the length that starts every frame.
pub const FRAME_HEADER: u64 = 4;
/// The longest payload a frame can carry: `u32::MAX` bytes.
pub const MAX_FRAME: u64 = u32::MAX as u64;
/// The smallest ring, in bytes.
pub const MIN_CAPACITY: u64 = 16;
/// The largest ring, in bytes.
pub const MAX_CAPACITY: u64 = 1 << 40;

/// "The other side is asleep" in `head` / `tail`.
const ASLEEP: u64 = 1 << 63;
/// "A frame was cut at this position" in `aborted` and `cutting`.
const CUT: u64 = 1 << 63;
/// "A frame is being written (read) from this position" in a side's
/// `frame` record.
const ACTIVE: u64 = 1 << 63;

/// One byte of the ring.
type Byte = UnsafeCell<u8>;

/// The fixed part of a frame ring in shared memory.
#[derive(Debug)]
#[repr(C)]
pub struct FrameState {
    tail: CachePadded<AtomicU64>,
    head: CachePadded<AtomicU64>,
    writers: CachePadded<WriterSide>,
    readers: CachePadded<ReaderSide>,
    ctl: CachePadded<Control>,
}

/// The words only a writer holding the writer lock changes.
#[derive(Debug)]
#[repr(C)]
struct WriterSide {
    lock: RawMutex,
    /// Frames begun since the ring was created, wrapping.
    begun: AtomicU32,
    /// `ended` as a writer last read it: at most the real one.
    ended_seen: AtomicU32,
    /// The payload length of the frame being written (see `frame`).
    frame_len: AtomicU32,
    /// `begun` once the frame being written counts (see `frame`).
    frame_begun: AtomicU32,
    /// `head` as a writer last read it: at most the real one.
    head_seen: AtomicU64,
    /// `ACTIVE` and the frame's start while a frame is being written, 0
    /// otherwise: the record a writer that takes over from a dead one
    /// repairs the ring by.
    frame: AtomicU64,
    /// `CUT` and the position of the last cut a writer began.
    cutting: AtomicU64,
}

/// The words only a reader holding the reader lock changes.
#[derive(Debug)]
#[repr(C)]
struct ReaderSide {
    lock: RawMutex,
    /// Frames read to their end since the ring was created, wrapping.
    ended: AtomicU32,
    /// `ended` once the frame being read is ended (see `frame`).
    frame_ended: AtomicU32,
    /// `tail` as a reader last read it: at most the real one.
    tail_seen: AtomicU64,
    /// `ACTIVE` and the frame's start while a frame is being read, 0
    /// otherwise: the record a reader that takes over from a dead one
    /// repairs the ring by.
    frame: AtomicU64,
    /// Where the frame being read stops: its end, or where it was cut.
    frame_end: AtomicU64,
}

/// The words writers and readers share besides the positions, changed
/// rarely: on a sleep or wake-up, a close, a cut frame.
#[derive(Debug)]
#[repr(C)]
struct Control {
    epochs: Epochs,
    max_messages: AtomicU32,
    closed: AtomicU32,
    aborted: AtomicU64,
}

#[cfg(not(loom))]
mod pinned {
    use super::{Byte, Control, FrameState, ReaderSide, WriterSide};
    use core::mem::offset_of;
    use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

    assert_eq_size!(WriterSide, [u64; 7]);
    const_assert_eq!(offset_of!(WriterSide, lock), 0);
    const_assert_eq!(offset_of!(WriterSide, begun), 16);
    const_assert_eq!(offset_of!(WriterSide, ended_seen), 20);
    const_assert_eq!(offset_of!(WriterSide, frame_len), 24);
    const_assert_eq!(offset_of!(WriterSide, frame_begun), 28);
    const_assert_eq!(offset_of!(WriterSide, head_seen), 32);
    const_assert_eq!(offset_of!(WriterSide, frame), 40);
    const_assert_eq!(offset_of!(WriterSide, cutting), 48);
    assert_eq_size!(ReaderSide, [u64; 6]);
    const_assert_eq!(offset_of!(ReaderSide, lock), 0);
    const_assert_eq!(offset_of!(ReaderSide, ended), 16);
    const_assert_eq!(offset_of!(ReaderSide, frame_ended), 20);
    const_assert_eq!(offset_of!(ReaderSide, tail_seen), 24);
    const_assert_eq!(offset_of!(ReaderSide, frame), 32);
    const_assert_eq!(offset_of!(ReaderSide, frame_end), 40);
    assert_eq_size!(Control, [u64; 3]);
    const_assert_eq!(offset_of!(Control, epochs), 0);
    const_assert_eq!(offset_of!(Control, max_messages), 8);
    const_assert_eq!(offset_of!(Control, closed), 12);
    const_assert_eq!(offset_of!(Control, aborted), 16);
    assert_eq_size!(FrameState, [u8; 640]);
    assert_eq_align!(FrameState, crate::layout::CachePadded<u8>);
    const_assert_eq!(offset_of!(FrameState, tail), 0);
    const_assert_eq!(offset_of!(FrameState, head), 128);
    const_assert_eq!(offset_of!(FrameState, writers), 256);
    const_assert_eq!(offset_of!(FrameState, readers), 384);
    const_assert_eq!(offset_of!(FrameState, ctl), 512);
    assert_eq_size!(Byte, u8);
}

/// Why a writer could not begin a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeginWriteError {
    /// The ring stayed full (of messages, or of bytes) or another writer
    /// kept the writer lock, until the deadline.
    Full,
    /// The ring is closed.
    Closed,
    /// The payload is longer than [`MAX_FRAME`].
    TooLarge,
    /// The positions in the ring are impossible (a peer wrote garbage).
    Corrupted,
}

/// Why a reader could not begin a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeginReadError {
    /// No frame arrived, or another reader kept the reader lock, until the
    /// deadline.
    Empty,
    /// The ring is closed and every frame has been read.
    Closed,
    /// The positions in the ring are impossible (a peer wrote garbage).
    Corrupted,
}

/// Why a frame write stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The ring stayed full until the deadline; what fit was written.
    TimedOut,
    /// More bytes than the frame announced; nothing was written.
    Overrun,
}

/// The frame being read was cut by its writer: its payload is incomplete
/// and has been dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut;

/// Why a frame read with a deadline stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The writer cut the frame (see [`Cut`]).
    Cut,
    /// The deadline passed before the writer wrote more of the frame; the
    /// frame is still being read.
    TimedOut,
}

/// A process-local handle to a frame ring in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::{OwnerId, Origin, Spin, TypeFingerprint, frames::FrameRing};
///
/// let layout = FrameRing::layout(16).unwrap();
/// // SAFETY: the layout is not zero-sized.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
/// let base = std::ptr::NonNull::new(mem).unwrap();
/// let fingerprint = TypeFingerprint::of::<Vec<u8>>();
/// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
/// // layout asks, that outlive the ring and are used by nothing else.
/// let ring =
///     unsafe { FrameRing::create(base, layout.size(), 16, 4, fingerprint, Origin::default()) }
///         .unwrap();
/// let me = OwnerId::new(1).unwrap();
///
/// // A message of 40 bytes streams through a ring of 16 when a reader
/// // drains it as it goes; here one thread does both, in steps.
/// let message: Vec<u8> = (0..40).collect();
/// let mut writer = ring.begin_write(&Spin, me, 40, None).unwrap();
/// writer.write(&message[..12], None).unwrap();
/// let mut reader = ring.begin_read(&Spin, me, None).unwrap();
/// assert_eq!(reader.len(), 40);
/// let mut got = vec![0; 40];
/// reader.read(&mut got[..12]).unwrap();
/// writer.write(&message[12..24], None).unwrap();
/// reader.read(&mut got[12..24]).unwrap();
/// writer.write(&message[24..], None).unwrap();
/// writer.finish().unwrap();
/// reader.read(&mut got[24..]).unwrap();
/// reader.finish();
/// assert_eq!(got, message);
/// assert!(ring.is_empty());
/// // SAFETY: allocated above with this layout; the ring is not used any more.
/// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
/// ```
#[derive(Clone, Copy)]
pub struct FrameRing {
    state: NonNull<FrameState>,
    data: NonNull<Byte>,
    capacity: u64,
    max_messages: u32,
}

// SAFETY: the handle points into shared memory that its creator promised
// stays mapped; every shared word is an atomic, and the bytes are accessed
// only by the writer and the reader that hold their locks, each in the part
// of the ring the protocol gives it.
unsafe impl Send for FrameRing {}
// SAFETY: as for `Send`.
unsafe impl Sync for FrameRing {}

impl core::fmt::Debug for FrameRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameRing")
            .field("capacity", &self.capacity)
            .field("max_messages", &self.max_messages)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl FrameRing {
    /// The memory layout of a ring of `capacity` bytes: a power of two
    /// from [`MIN_CAPACITY`] to [`MAX_CAPACITY`].
    pub fn layout(capacity: u64) -> Result<ObjectLayout, LayoutError> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(LayoutError::BadCapacity {
                capacity,
                reason: "a frame ring has 16 to 2^40 bytes",
            });
        }
        if !capacity.is_power_of_two() {
            return Err(LayoutError::BadCapacity {
                capacity,
                reason: "a frame ring's size is a power of two",
            });
        }
        ObjectLayout::new::<FrameState, Byte>(capacity)
    }

    /// Creates an empty, open ring of `capacity` bytes at `mem` that holds
    /// at most `max_messages` messages, for messages of the type
    /// `fingerprint` identifies (checked by [`Self::attach`]).
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory (any contents), used by nobody else until this returns, and
    /// stays mapped for as long as this handle or a copy of it is used.
    pub unsafe fn create(
        mem: NonNull<u8>,
        len: usize,
        capacity: u64,
        max_messages: u32,
        fingerprint: TypeFingerprint,
        origin: Origin,
    ) -> Result<Self, LayoutError> {
        if max_messages == 0 {
            return Err(LayoutError::BadCapacity {
                capacity: 0,
                reason: "a queue holds at least one message",
            });
        }
        let layout = Self::layout(capacity)?;
        // SAFETY: forwarded from the caller.
        let parts: Parts<FrameState, Byte> = unsafe {
            layout::create(
                mem,
                len,
                ObjectKind::FrameRing,
                fingerprint,
                capacity,
                layout,
                origin,
            )?
        };
        let state = parts.body.as_ptr();
        // SAFETY: `layout::create` checked that the body and `capacity` bytes
        // lie inside the caller's memory, which nobody else uses yet.
        unsafe {
            init_u64(&raw mut (*state).tail.0, 0);
            init_u64(&raw mut (*state).head.0, 0);
            let writers = &raw mut (*state).writers.0;
            RawMutex::init(NonNull::new_unchecked(&raw mut (*writers).lock));
            init_u32(&raw mut (*writers).begun, 0);
            init_u32(&raw mut (*writers).ended_seen, 0);
            init_u32(&raw mut (*writers).frame_len, 0);
            init_u32(&raw mut (*writers).frame_begun, 0);
            init_u64(&raw mut (*writers).head_seen, 0);
            init_u64(&raw mut (*writers).frame, 0);
            init_u64(&raw mut (*writers).cutting, 0);
            let readers = &raw mut (*state).readers.0;
            RawMutex::init(NonNull::new_unchecked(&raw mut (*readers).lock));
            init_u32(&raw mut (*readers).ended, 0);
            init_u32(&raw mut (*readers).frame_ended, 0);
            init_u64(&raw mut (*readers).tail_seen, 0);
            init_u64(&raw mut (*readers).frame, 0);
            init_u64(&raw mut (*readers).frame_end, 0);
            let ctl = &raw mut (*state).ctl.0;
            Epochs::init(&raw mut (*ctl).epochs);
            init_u32(&raw mut (*ctl).max_messages, max_messages);
            init_u32(&raw mut (*ctl).closed, 0);
            init_u64(&raw mut (*ctl).aborted, 0);
            // Outside loom the bytes are plain memory that is already
            // initialized (any contents are valid bytes).
            #[cfg(loom)]
            for i in 0..capacity as usize {
                crate::sync::init_cell(parts.elems.as_ptr().add(i), 0);
            }
            parts.publish();
        }
        Ok(Self::from_parts(parts, max_messages))
    }

    /// Attaches to a ring another handle created at `mem`, after checking
    /// its header, the message type and the ring's state.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory, and stays mapped for as long as this handle or a copy of it
    /// is used.
    pub unsafe fn attach(
        mem: NonNull<u8>,
        len: usize,
        fingerprint: TypeFingerprint,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller.
        let parts: Parts<FrameState, Byte> =
            unsafe { layout::attach(mem, len, ObjectKind::FrameRing, fingerprint, Self::layout)? };
        // SAFETY: the body lies in the caller's memory; all its fields are
        // atomics, valid for any contents.
        let max_messages = unsafe { parts.body.as_ref() }
            .ctl
            .max_messages
            .load(Ordering::Relaxed);
        if max_messages == 0 {
            return Err(LayoutError::Corrupted {
                what: "frame ring bounded to zero messages",
            });
        }
        let ring = Self::from_parts(parts, max_messages);
        let head = ring.state().head.load(Ordering::Acquire) & !ASLEEP;
        let tail = ring.state().tail.load(Ordering::Acquire) & !ASLEEP;
        if tail < head || tail - head > ring.capacity {
            return Err(LayoutError::Corrupted {
                what: "frame ring positions outside the ring",
            });
        }
        Ok(ring)
    }

    fn from_parts(parts: Parts<FrameState, Byte>, max_messages: u32) -> Self {
        Self {
            state: parts.body,
            data: parts.elems,
            capacity: parts.capacity,
            max_messages,
        }
    }

    #[inline]
    fn state(&self) -> &FrameState {
        // SAFETY: `state` points into memory that the creator of this handle
        // promised stays mapped; every field is an atomic.
        unsafe { self.state.as_ref() }
    }

    #[inline]
    fn ctl(&self) -> &Control {
        &self.state().ctl
    }

    #[inline]
    fn writers(&self) -> &WriterSide {
        &self.state().writers
    }

    #[inline]
    fn readers(&self) -> &ReaderSide {
        &self.state().readers
    }

    /// Frames in the ring (`begun - ended`) with `ended` read now, for a
    /// writer holding the lock, which remembers it in `ended_seen`.
    #[inline]
    fn count_fresh(&self) -> u32 {
        let writers = self.writers();
        // Acquire pairs with the Release store in `end_frame`.
        let ended = self.readers().ended.load(Ordering::Acquire);
        writers.ended_seen.store(ended, Ordering::Relaxed);
        writers.begun.load(Ordering::Relaxed).wrapping_sub(ended)
    }

    /// Frames in the ring for a writer holding the lock: from the `ended`
    /// it saw last while that shows room for one more, read again
    /// otherwise. Never fewer than there are.
    #[inline]
    fn count_for_writer(&self) -> u32 {
        let writers = self.writers();
        let begun = writers.begun.load(Ordering::Relaxed);
        let count = begun.wrapping_sub(writers.ended_seen.load(Ordering::Relaxed));
        if count < self.max_messages {
            return count;
        }
        self.count_fresh()
    }

    /// Bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The most messages the ring holds at once.
    pub fn max_messages(&self) -> u32 {
        self.max_messages
    }

    /// Messages in the ring, counting one being written or read (a
    /// snapshot).
    pub fn len(&self) -> usize {
        // `ended` first, with Acquire (pairs with the Release store in
        // `end_frame`): the frames it counts were begun before, so `begun`
        // read after it is at least as large.
        let ended = self.readers().ended.load(Ordering::Acquire);
        let begun = self.writers().begun.load(Ordering::Acquire);
        let count = begun.wrapping_sub(ended);
        // "Below zero" only in a ring a peer wrote garbage into.
        if count > u32::MAX / 2 {
            return 0;
        }
        count.min(self.max_messages) as usize
    }

    /// Whether the ring holds no message (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring holds as many messages as it may (a snapshot).
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_messages as usize
    }

    /// Whether the ring has been closed.
    pub fn is_closed(&self) -> bool {
        self.ctl().closed.load(Ordering::Acquire) != 0
    }

    /// Closes the ring: writers that have not begun fail, readers drain
    /// what is left and then fail instead of waiting. Wakes every sleeper.
    /// Closing twice is harmless.
    pub fn close<W: Wait>(&self, w: &W) {
        let ctl = self.ctl();
        // Release pairs with the Acquire loads of `closed` by writers and
        // readers.
        ctl.closed.store(1, Ordering::Release);
        Epochs::bump_and_wake(w, &ctl.epochs.items, u32::MAX);
        Epochs::bump_and_wake(w, &ctl.epochs.space, u32::MAX);
    }

    /// Wakes every sleeper, writers and readers, and changes nothing else:
    /// each re-checks what it waits for and, unless that changed, sleeps
    /// again. For a [`Wait`] that looks beyond the ring when it wakes (say,
    /// at whether the process on the other side still exists).
    pub fn wake_all<W: Wait>(&self, w: &W) {
        let ctl = self.ctl();
        Epochs::bump_and_wake(w, &ctl.epochs.items, u32::MAX);
        Epochs::bump_and_wake(w, &ctl.epochs.space, u32::MAX);
    }

    /// Whether a reader would find a frame, or the ring closed and drained,
    /// without taking the reader lock; if not, registers the caller to be
    /// woken when that changes (see [`Readiness`] and [Watching](self#watching)).
    ///
    /// Any frame counts, including one that another reader is in the
    /// middle of: with several readers, `Ready` is a hint that a read may
    /// lose to another reader. A ring whose positions are impossible counts
    /// as ready (a read fails at once). [`Readiness`] has an example.
    pub fn watch_read(&self) -> Readiness<'_> {
        let state = self.state();
        let ctl = self.ctl();
        loop {
            // Read the epoch first: whoever wakes us bumps it after changing
            // what we check below (Acquire pairs with the Release bump).
            let key = ctl.epochs.items.load(Ordering::Acquire);
            let head = state.head.load(Ordering::Acquire) & !ASLEEP;
            // The tail we register against, and judge by: a frame published
            // after this load fails the CAS below. Acquire pairs with the
            // writer's Release swap.
            let seen = state.tail.load(Ordering::Acquire);
            let tail = seen & !ASLEEP;
            if tail < head || tail - head >= FRAME_HEADER {
                return Readiness::Ready;
            }
            // Closed and drained, as `begin_read` sees it.
            let drained = || {
                ctl.closed.load(Ordering::Acquire) != 0
                    && !self.writers().lock.is_locked()
                    && state.tail.load(Ordering::Acquire) & !ASLEEP == head
            };
            if drained() {
                return Readiness::Ready;
            }
            // AcqRel: Release orders our epoch load before the bump of a
            // writer whose swap reads this CAS; Acquire pairs with a swap
            // that came first.
            if seen & ASLEEP == 0
                && state
                    .tail
                    .compare_exchange(seen, seen | ASLEEP, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                // The tail moved (or another sleeper set the bit): look again.
                continue;
            }
            // Once more, as in `sleep`: a close, or a writer that released
            // its lock, changes no position.
            if drained() {
                return Readiness::Ready;
            }
            return Readiness::Sleep {
                word: &ctl.epochs.items,
                expected: key,
            };
        }
    }

    /// Byte `pos`'s cell (the index is always inside the ring).
    #[cfg(loom)]
    #[inline]
    fn byte(&self, pos: u64) -> &Byte {
        let index = (pos & (self.capacity - 1)) as usize;
        // SAFETY: `index < capacity`, and `capacity` bytes lie in the
        // mapping (checked when the handle was made).
        unsafe { &*self.data.as_ptr().add(index) }
    }

    /// Copies `src` into the ring from position `pos` on, wrapping.
    ///
    /// # Safety
    /// The caller is the writer holding the writer lock, and
    /// `pos .. pos + src.len()` lies between the published tail and the
    /// released head plus the capacity: no reader looks at those bytes.
    #[inline]
    unsafe fn copy_in(&self, pos: u64, src: &[u8]) {
        #[cfg(not(loom))]
        {
            let index = (pos & (self.capacity - 1)) as usize;
            let first = src.len().min(self.capacity as usize - index);
            let base = self.data.as_ptr().cast::<u8>();
            // SAFETY: `index + first <= capacity` and `src.len() - first <=
            // index` bytes at the start: both ranges lie in the ring, which
            // nobody else touches (caller). `UnsafeCell<u8>` is a `u8`.
            unsafe {
                core::ptr::copy_nonoverlapping(src.as_ptr(), base.add(index), first);
                core::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
            }
        }
        #[cfg(loom)]
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: this byte is ours to write (caller).
            self.byte(pos + i as u64)
                .with_mut(|cell| unsafe { cell.write(b) });
        }
    }

    /// Copies ring bytes from position `pos` on into `dst`, wrapping.
    ///
    /// # Safety
    /// The caller is the reader holding the reader lock, and
    /// `pos .. pos + dst.len()` lies between the released head and the
    /// published tail: no writer changes those bytes.
    #[inline]
    unsafe fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        #[cfg(not(loom))]
        {
            let index = (pos & (self.capacity - 1)) as usize;
            let first = dst.len().min(self.capacity as usize - index);
            let base = self.data.as_ptr().cast::<u8>();
            // SAFETY: as in `copy_in`, with the reader's part of the ring.
            unsafe {
                core::ptr::copy_nonoverlapping(base.add(index), dst.as_mut_ptr(), first);
                core::ptr::copy_nonoverlapping(
                    base,
                    dst.as_mut_ptr().add(first),
                    dst.len() - first,
                );
            }
        }
        #[cfg(loom)]
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: this byte is ours to read (caller).
            *b = self.byte(pos + i as u64).with(|cell| unsafe { *cell });
        }
    }

    /// Begins a frame of `len` payload bytes: takes the writer lock, waits
    /// until the ring may hold one more message and has room for the
    /// frame's length, and writes the length. The payload follows through
    /// [`FrameWriter::write`]; [`FrameWriter::finish`] publishes the end of
    /// the frame, and dropping the writer before that cuts the frame.
    ///
    /// Waits until `deadline` (`None`: forever) for the lock and the room.
    pub fn begin_write<'a, W: Wait>(
        &'a self,
        w: &'a W,
        id: OwnerId,
        len: u64,
        deadline: Option<W::Deadline>,
    ) -> Result<FrameWriter<'a, W>, BeginWriteError> {
        if len > MAX_FRAME {
            return Err(BeginWriteError::TooLarge);
        }
        let ctl = self.ctl();
        // Acquire pairs with the Release store in `close`.
        if ctl.closed.load(Ordering::Acquire) != 0 {
            return Err(BeginWriteError::Closed);
        }
        let writers = self.writers();
        let acquired = writers
            .lock
            .lock(w, id, deadline)
            .map_err(|_| BeginWriteError::Full)?;
        if acquired == Acquired::OwnerDied {
            self.repair_writer(w);
        }
        // The previous writer's last swap happened before its unlock, which
        // happened before our lock: we see the tail it published.
        let tail = self.state().tail.load(Ordering::Relaxed) & !ASLEEP;
        // The head the last writer saw, which it read with Acquire before
        // its unlock and our lock: enough if it leaves room for the length.
        let seen = writers.head_seen.load(Ordering::Relaxed);
        let mut stale = !(seen <= tail && tail - seen <= self.capacity - FRAME_HEADER);
        let mut round = 0;
        let head = loop {
            if ctl.closed.load(Ordering::Acquire) != 0 {
                self.unlock_writer(w);
                return Err(BeginWriteError::Closed);
            }
            let head = if stale {
                // Acquire pairs with the reader's Release swap: its reads of
                // the bytes we are about to overwrite are done.
                self.state().head.load(Ordering::Acquire) & !ASLEEP
            } else {
                seen
            };
            stale = true;
            let room = self.capacity.saturating_sub(tail.wrapping_sub(head));
            // A frame's end (a higher `ended`) and a cut's acknowledgment
            // are stored with Release before the reader's swap of `head`;
            // the loads below are Acquire.
            let messages = self.count_for_writer();
            let cut_pending = ctl.aborted.load(Ordering::Acquire) & CUT != 0;
            if head > tail || tail - head > self.capacity {
                self.unlock_writer(w);
                return Err(BeginWriteError::Corrupted);
            }
            let room_ok = room >= FRAME_HEADER;
            if room_ok && messages < self.max_messages && !cut_pending {
                break head;
            }
            if round < w.spin_rounds() {
                w.relax(round);
                round += 1;
                continue;
            }
            // Room only grows while we hold the lock; the count and the cut
            // may change without moving the head (a reader ending a frame it
            // had already released), so `sleep` checks them itself.
            let max = self.max_messages;
            let woken = || {
                ctl.closed.load(Ordering::Acquire) != 0
                    || room_ok
                        && self.count_fresh() < max
                        && ctl.aborted.load(Ordering::Acquire) & CUT == 0
            };
            if sleep(
                w,
                false,
                &self.state().head,
                &ctl.epochs.space,
                head,
                woken,
                deadline,
            )
            .is_err()
            {
                self.unlock_writer(w);
                return Err(BeginWriteError::Full);
            }
        };
        // Only writers holding the lock raise the count, so the bound holds.
        // The record first: a writer that takes over from us once we die
        // finds the frame, and tells from `begun` whether it counts.
        let begun = writers.begun.load(Ordering::Relaxed);
        writers.frame_len.store(len as u32, Ordering::Relaxed);
        writers
            .frame_begun
            .store(begun.wrapping_add(1), Ordering::Relaxed);
        writers.frame.store(tail | ACTIVE, Ordering::Relaxed);
        writers
            .begun
            .store(begun.wrapping_add(1), Ordering::Relaxed);
        // SAFETY: we hold the writer lock and `room >= FRAME_HEADER` bytes
        // after the tail are free.
        unsafe { self.copy_in(tail, &(len as u32).to_le_bytes()) };
        Ok(FrameWriter {
            ring: self,
            w,
            start: tail,
            pos: tail + FRAME_HEADER,
            published: tail,
            head,
            end: tail + FRAME_HEADER + len,
            done: false,
        })
    }

    /// Repairs what a writer that died holding the writer lock left behind,
    /// from its record (`frame`, `frame_len`, `frame_begun`, `cutting`),
    /// and marks the lock consistent. The caller holds the writer lock.
    ///
    /// A frame the dead writer published nothing of is forgotten, as if it
    /// had never begun; one it published whole stays; one it published in
    /// part is cut where its published bytes stop (or where the dead
    /// writer was cutting it), exactly as a writer that gives up cuts its
    /// frame. Every step looks at what is already done, so a repairer that
    /// dies in turn leaves a ring the next one repairs the same way.
    #[cold]
    fn repair_writer<W: Wait>(&self, w: &W) {
        let writers = self.writers();
        let ctl = self.ctl();
        let frame = writers.frame.load(Ordering::Relaxed);
        if frame & ACTIVE != 0 {
            let start = frame & !ACTIVE;
            let end = start + FRAME_HEADER + u64::from(writers.frame_len.load(Ordering::Relaxed));
            let tail = self.state().tail.load(Ordering::Acquire) & !ASLEEP;
            let cutting = writers.cutting.load(Ordering::Relaxed);
            let cut_at = cutting & !CUT;
            if cutting & CUT != 0 && cut_at > start && cut_at < end {
                // It was cutting the frame: finish the cut, unless a reader
                // has already acknowledged it (it leaves the position,
                // without `CUT`, in `aborted`).
                if ctl.aborted.load(Ordering::Acquire) != cut_at {
                    self.cut_at(w, cut_at, tail);
                }
            } else if tail == start {
                // Nothing published: take the frame back out of the count
                // if it was counted. Only writers change `begun`.
                let begun = writers.begun.load(Ordering::Relaxed);
                if begun == writers.frame_begun.load(Ordering::Relaxed) {
                    writers
                        .begun
                        .store(begun.wrapping_sub(1), Ordering::Relaxed);
                }
            } else if tail > start && tail < end {
                writers.cutting.store(tail | CUT, Ordering::Relaxed);
                self.cut_at(w, tail, tail);
            }
            // Otherwise the frame is whole (or the record is garbage, and
            // there is nothing to go by).
        }
        writers.frame.store(0, Ordering::Relaxed);
        // SAFETY: the caller holds the writer lock.
        unsafe { writers.lock.mark_consistent() };
    }

    /// Cuts the frame being written at `pos`, with the tail published at
    /// `tail`: records the cut, publishes up to `pos`, and wakes readers.
    /// The caller holds the writer lock and has written every byte up to
    /// `pos`.
    fn cut_at<W: Wait>(&self, w: &W, pos: u64, tail: u64) {
        let state = self.state();
        let ctl = self.ctl();
        // Release: a reader that sees the tail below (Acquire) sees the cut
        // too.
        ctl.aborted.store(pos | CUT, Ordering::Release);
        if tail < pos {
            // Release publishes the bytes with the position, as `publish`.
            state.tail.swap(pos, Ordering::AcqRel);
        }
        // The tail may not have moved: wake the reader (and any watchers)
        // whether or not they set the bit.
        Epochs::bump_and_wake(w, &ctl.epochs.items, u32::MAX);
    }

    /// Takes the writer lock over if its owner is gone, repairs the ring
    /// ([`Self::repair_writer`]) and releases the lock; returns whether it
    /// did. For a reader in the middle of a frame, which would otherwise
    /// wait for a dead writer forever, and for one that waits for a closed
    /// ring to drain.
    #[cold]
    fn rescue_writer<W: Wait>(&self, w: &W, id: OwnerId) -> bool {
        if !self.writers().lock.take_over_if_gone(w, id) {
            return false;
        }
        self.repair_writer(w);
        self.unlock_writer(w);
        true
    }

    /// Releases the writer lock; if the ring is closed, wakes readers that
    /// may wait for this writer to finish before they report the ring
    /// drained.
    fn unlock_writer<W: Wait>(&self, w: &W) {
        let ctl = self.ctl();
        // SAFETY: only called by the holder of the writer lock.
        unsafe { self.writers().lock.unlock(w) };
        if ctl.closed.load(Ordering::Acquire) != 0 {
            Epochs::bump_and_wake(w, &ctl.epochs.items, u32::MAX);
        }
    }

    /// Begins reading the next frame: takes the reader lock and waits for a
    /// frame, until `deadline` (`None`: forever). The payload is read
    /// through [`FrameReader::read`]; [`FrameReader::finish`] (or dropping
    /// the reader) skips what is left of it and ends the frame.
    pub fn begin_read<'a, W: Wait>(
        &'a self,
        w: &'a W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<FrameReader<'a, W>, BeginReadError> {
        let readers = self.readers();
        loop {
            let acquired = readers
                .lock
                .lock(w, id, deadline)
                .map_err(|_| BeginReadError::Empty)?;
            if acquired == Acquired::Clean {
                break;
            }
            match self.repair_reader(w, id) {
                None => break,
                // The dead reader's frame, partly released: skip the rest of
                // it (which releases the lock), then begin again.
                Some(rest) => rest
                    .skip_rest(deadline)
                    .map_err(|_| BeginReadError::Empty)?,
            }
        }
        // The previous reader's last swap happened before its unlock, which
        // happened before our lock: we see the head it released.
        let head = self.state().head.load(Ordering::Relaxed) & !ASLEEP;
        // The tail the last reader saw, which it read with Acquire before its
        // unlock and our lock: enough if it shows a frame's length.
        let seen = readers.tail_seen.load(Ordering::Relaxed);
        let tail = if seen >= head + FRAME_HEADER && seen - head <= self.capacity {
            seen
        } else {
            self.wait_frame(w, id, head, deadline)?
        };
        let mut len = [0; FRAME_HEADER as usize];
        // SAFETY: we hold the reader lock and the header's bytes lie between
        // the head and the published tail.
        unsafe { self.copy_out(head, &mut len) };
        let end = head + FRAME_HEADER + u64::from(u32::from_le_bytes(len));
        // The record, for a reader that takes over if we die in the frame.
        readers.frame_end.store(end, Ordering::Relaxed);
        readers.frame_ended.store(
            readers.ended.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        readers.frame.store(head | ACTIVE, Ordering::Relaxed);
        Ok(FrameReader {
            ring: self,
            w,
            id,
            start: head,
            pos: head + FRAME_HEADER,
            released: head,
            tail,
            end,
            state: ReadState::Reading,
        })
    }

    /// Repairs what a reader that died holding the reader lock left behind,
    /// from its record (`frame`, `frame_end`, `frame_ended`), and marks the
    /// lock consistent. The caller holds the reader lock.
    ///
    /// A frame the dead reader ended (counted in `ended`) is released up to
    /// its end, and a cut in it acknowledged. A frame it released nothing
    /// of stays in the ring, to be read again: the dead reader never
    /// returned it. A frame it released in part can only be skipped: the
    /// rest of it is returned, for the caller to skip
    /// ([`FrameReader::skip_rest`]). Every step looks at what is already
    /// done, so a repairer that dies in turn leaves a ring the next one
    /// repairs the same way.
    #[cold]
    fn repair_reader<'a, W: Wait>(&'a self, w: &'a W, id: OwnerId) -> Option<FrameReader<'a, W>> {
        let readers = self.readers();
        let state = self.state();
        let ctl = self.ctl();
        let frame = readers.frame.load(Ordering::Relaxed);
        let start = frame & !ACTIVE;
        let end = readers.frame_end.load(Ordering::Relaxed);
        let head = state.head.load(Ordering::Relaxed) & !ASLEEP;
        // A garbage record (a corrupted ring) is dropped.
        if frame & ACTIVE != 0
            && start <= head
            && head <= end
            && end - start >= FRAME_HEADER
            && end - start <= MAX_FRAME + FRAME_HEADER
        {
            let ended = readers.ended.load(Ordering::Relaxed);
            if ended == readers.frame_ended.load(Ordering::Relaxed) {
                // Ended, but maybe not released or acknowledged yet.
                if head < end {
                    self.release_to(w, end);
                }
                if ctl.aborted.load(Ordering::Acquire) == end | CUT {
                    self.acknowledge_cut(w, end);
                }
            } else if head != start {
                // The record stays, and the lock inconsistent, until the
                // skip is done: a skip that times out leaves the rest to
                // the next reader.
                return Some(FrameReader {
                    ring: self,
                    w,
                    id,
                    start,
                    pos: head,
                    released: head,
                    tail: head,
                    end,
                    state: ReadState::Reading,
                });
            }
        }
        readers.frame.store(0, Ordering::Relaxed);
        // SAFETY: the caller holds the reader lock.
        unsafe { readers.lock.mark_consistent() };
        None
    }

    /// Moves the head to `pos` (the reader holding the lock released the
    /// bytes before it) and wakes a writer waiting for space.
    fn release_to<W: Wait>(&self, w: &W, pos: u64) {
        let state = self.state();
        // AcqRel: Release orders the reads of the bytes before the writer
        // reuses them; Acquire pairs with the writer's CAS that set ASLEEP.
        let old = state.head.swap(pos, Ordering::AcqRel);
        if old & ASLEEP != 0 {
            Epochs::bump_and_wake(w, &state.ctl.epochs.space, 1);
        }
    }

    /// Acknowledges the cut at `pos` (the reader holding the lock has
    /// released the cut frame): writers may begin again. A writer waiting
    /// for it may sleep on the head, which the acknowledgment does not
    /// move, so it is woken whether or not it set its bit.
    fn acknowledge_cut<W: Wait>(&self, w: &W, pos: u64) {
        let ctl = self.ctl();
        // Release pairs with the Acquire loads of `aborted` by writers.
        ctl.aborted.store(pos, Ordering::Release);
        Epochs::bump_and_wake(w, &ctl.epochs.space, u32::MAX);
    }

    /// Waits, holding the reader lock, until the tail is a frame's length
    /// past `head`, and returns it; gives up the lock on an error.
    fn wait_frame<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        head: u64,
        deadline: Option<W::Deadline>,
    ) -> Result<u64, BeginReadError> {
        let ctl = self.ctl();
        let mut round = 0;
        loop {
            // Acquire pairs with the writer's Release swap: the bytes up to
            // the tail are written.
            let tail = self.state().tail.load(Ordering::Acquire) & !ASLEEP;
            let ready = tail.wrapping_sub(head);
            if tail < head || ready > self.capacity || (ready > 0 && ready < FRAME_HEADER) {
                self.unlock_reader(w);
                return Err(BeginReadError::Corrupted);
            }
            if ready >= FRAME_HEADER {
                return Ok(tail);
            }
            // Closed and drained: nothing published is left, and no writer
            // is in the middle of a frame (one that takes the lock now sees
            // `closed` and gives up).
            if ctl.closed.load(Ordering::Acquire) != 0 && !self.writers().lock.is_locked() {
                let tail = self.state().tail.load(Ordering::Acquire) & !ASLEEP;
                if tail == head {
                    self.unlock_reader(w);
                    return Err(BeginReadError::Closed);
                }
                continue;
            }
            if round < w.spin_rounds() {
                w.relax(round);
                round += 1;
                continue;
            }
            // Woken for a close only once no writer is in the middle of a
            // frame: a writer that gives up its lock on a closed ring wakes
            // us (`unlock_writer`). On a closed ring that writer may be dead:
            // look at it now and then.
            let drained =
                || ctl.closed.load(Ordering::Acquire) != 0 && !self.writers().lock.is_locked();
            let (until, check) = if ctl.closed.load(Ordering::Acquire) != 0 {
                w.check_deadline(deadline)
            } else {
                (deadline, false)
            };
            if sleep(
                w,
                true,
                &self.state().tail,
                &ctl.epochs.items,
                tail,
                drained,
                until,
            )
            .is_err()
            {
                if check {
                    self.rescue_writer(w, id);
                    if !deadline.is_some_and(|d| w.expired(d)) {
                        continue;
                    }
                }
                self.unlock_reader(w);
                return Err(BeginReadError::Empty);
            }
        }
    }

    fn unlock_reader<W: Wait>(&self, w: &W) {
        // SAFETY: only called by the holder of the reader lock.
        unsafe { self.readers().lock.unlock(w) };
    }
}

/// Sleeps until `word` (a position, maybe with its `ASLEEP` bit) moves away
/// from `stuck_at`, `woken` returns true, or `deadline` passes (`Err`); may
/// return early. Sets the `ASLEEP` bit so that the side that moves the word
/// wakes us. `shared`: others (watchers) may rely on the bit too, so a
/// sleep that times out leaves it set.
#[cold]
fn sleep<W: Wait>(
    w: &W,
    shared: bool,
    word: &AtomicU64,
    epoch: &AtomicU32,
    stuck_at: u64,
    woken: impl Fn() -> bool,
    deadline: Option<W::Deadline>,
) -> Result<(), TimedOut> {
    if deadline.is_some_and(|d| w.expired(d)) {
        return Err(TimedOut);
    }
    // Read the epoch first: whoever wakes us bumps it after changing what
    // we check below (Acquire pairs with the Release bump).
    let key = epoch.load(Ordering::Acquire);
    if woken() {
        return Ok(());
    }
    let seen = word.load(Ordering::Acquire);
    if seen & !ASLEEP != stuck_at {
        return Ok(());
    }
    // AcqRel: Release orders our epoch load before the other side's bump
    // (its swap reads this CAS); Acquire pairs with its swap if it came
    // first.
    if seen & ASLEEP == 0
        && word
            .compare_exchange(seen, seen | ASLEEP, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    {
        return Ok(());
    }
    // Once more: the other side may have changed what `woken` checks and
    // then swapped the word to the value it already had (a reader ending a
    // frame it already released); our CAS read that swap (Acquire), so the
    // change is visible now.
    if woken() {
        return Ok(());
    }
    w.wait(epoch, key, deadline).inspect_err(|_| {
        // A writer waiting for space is alone on `head`: take the bit back
        // (the reader may already have), so a later swap need not wake
        // anybody for us. Watchers may count on the bit in `tail`: leave it.
        if !shared {
            word.fetch_and(!ASLEEP, Ordering::Relaxed);
        }
    })
}

/// Writes one frame; see [`FrameRing::begin_write`].
///
/// Dropping it before [`finish`](Self::finish) cuts the frame (see the
/// [module docs](self)).
pub struct FrameWriter<'a, W: Wait> {
    ring: &'a FrameRing,
    w: &'a W,
    /// Position of the frame's length.
    start: u64,
    /// Next byte to write.
    pos: u64,
    /// The tail as we last published it.
    published: u64,
    /// The head as we last read it.
    head: u64,
    /// Position just past the frame.
    end: u64,
    /// Finished or cut already.
    done: bool,
}

impl<W: Wait> core::fmt::Debug for FrameWriter<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("len", &(self.end - self.start - FRAME_HEADER))
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl<'a, W: Wait> FrameWriter<'a, W> {
    /// Payload bytes still to write.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Free bytes after `pos`, re-reading the head if the cached one shows
    /// fewer than `want`.
    #[inline]
    fn free(&mut self, want: u64) -> u64 {
        let cap = self.ring.capacity;
        let free = cap - (self.pos - self.head);
        if free >= want {
            return free;
        }
        // Acquire pairs with the reader's Release swap: its reads of these
        // bytes are done.
        let head = self.ring.state().head.load(Ordering::Acquire) & !ASLEEP;
        // A garbage head (a corrupted ring) must not make us overwrite
        // bytes the reader has not released: only move forward, within
        // reason.
        if head > self.head && head <= self.pos {
            self.head = head;
        }
        cap - (self.pos - self.head)
    }

    /// Publishes the bytes written so far and wakes a sleeping reader.
    #[inline]
    fn publish(&mut self) {
        if self.pos == self.published {
            return;
        }
        let state = self.ring.state();
        // AcqRel: Release publishes the bytes with the position; Acquire
        // pairs with the reader's CAS that set ASLEEP, so its epoch read
        // happens before our bump.
        let old = state.tail.swap(self.pos, Ordering::AcqRel);
        self.published = self.pos;
        if old & ASLEEP != 0 {
            // The reader and any watchers (`watch_read`) may sleep there:
            // wake them all.
            Epochs::bump_and_wake(self.w, &state.ctl.epochs.items, u32::MAX);
        }
    }

    /// Waits for free space after publishing what we wrote.
    fn wait_space(&mut self, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        self.publish();
        let mut round = 0;
        loop {
            if self.free(1) > 0 {
                return Ok(());
            }
            if round < self.w.spin_rounds() {
                self.w.relax(round);
                round += 1;
                continue;
            }
            let state = self.ring.state();
            sleep(
                self.w,
                false,
                &state.head,
                &state.ctl.epochs.space,
                self.head,
                || false,
                deadline,
            )?;
        }
    }

    /// Writes `bytes` of the payload, waiting for space until `deadline`
    /// (`None`: forever). Publishes as it goes, so a reader can drain a
    /// frame longer than the ring.
    ///
    /// # Errors
    /// [`WriteError::Overrun`] (nothing written) if `bytes` is longer than
    /// [`Self::remaining`]; [`WriteError::TimedOut`] if the ring stayed full
    /// until the deadline (some bytes may have been written: the frame can
    /// only be cut now).
    pub fn write(&mut self, bytes: &[u8], deadline: Option<W::Deadline>) -> Result<(), WriteError> {
        if bytes.len() as u64 > self.remaining() {
            return Err(WriteError::Overrun);
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let free = self.free(rest.len() as u64);
            if free == 0 {
                self.wait_space(deadline)
                    .map_err(|_| WriteError::TimedOut)?;
                continue;
            }
            let n = free.min(rest.len() as u64) as usize;
            // SAFETY: we hold the writer lock, and the `n <= free` bytes from
            // `pos` on are free: the reader released them.
            unsafe { self.ring.copy_in(self.pos, &rest[..n]) };
            self.pos += n as u64;
            rest = &rest[n..];
            // A frame that fills a quarter of the ring is published in
            // parts, so the reader copies out while we copy in.
            if self.pos - self.published >= self.ring.capacity / 4 {
                self.publish();
            }
        }
        Ok(())
    }

    /// The free bytes of the ring right after what was written, in one
    /// contiguous piece, at most [`Self::remaining`] of them; empty when the
    /// ring is full (see [`Self::wait`]). Write into it, then
    /// [`advance`](Self::advance) by what was written.
    #[cfg(not(loom))]
    pub fn buffer(&mut self) -> &mut [u8] {
        let remaining = self.remaining();
        let free = self.free(remaining.min(self.ring.capacity)).min(remaining);
        let index = self.pos & (self.ring.capacity - 1);
        let len = free.min(self.ring.capacity - index) as usize;
        let base = self.ring.data.as_ptr().cast::<u8>();
        // SAFETY: `index + len <= capacity` bytes lie in the ring; they are
        // free (the reader released them) and only we, the writer holding
        // the lock, touch them until we publish. `UnsafeCell<u8>` is a `u8`.
        // The borrow of `self` keeps `advance` and `publish` away while the
        // slice lives.
        unsafe { core::slice::from_raw_parts_mut(base.add(index as usize), len) }
    }

    /// Counts `n` bytes written into [`Self::buffer`] as part of the
    /// payload.
    ///
    /// # Panics
    /// If `n` is more than the last buffer held (a caller bug, caught before
    /// anything unwritten could be published).
    #[cfg(not(loom))]
    pub fn advance(&mut self, n: usize) {
        let remaining = self.remaining();
        let free = self.free(0).min(remaining);
        let index = self.pos & (self.ring.capacity - 1);
        let contiguous = free.min(self.ring.capacity - index);
        assert!(
            n as u64 <= contiguous,
            "advanced past the frame writer's buffer"
        );
        self.pos += n as u64;
        if self.pos - self.published >= self.ring.capacity / 4 {
            self.publish();
        }
    }

    /// Waits until [`Self::buffer`] is not empty (publishing what was
    /// written first), until `deadline`.
    pub fn wait(&mut self, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        if self.remaining() == 0 || self.free(1) > 0 {
            return Ok(());
        }
        self.wait_space(deadline)
    }

    /// Publishes the end of the frame and releases the writer lock.
    ///
    /// # Errors
    /// If fewer payload bytes were written than the frame announced, the
    /// frame is cut instead and [`Cut`] returned.
    pub fn finish(mut self) -> Result<(), Cut> {
        if self.pos != self.end {
            self.cut();
            return Err(Cut);
        }
        self.publish();
        self.done = true;
        self.remember_head();
        self.ring.writers().frame.store(0, Ordering::Relaxed);
        self.ring.unlock_writer(self.w);
        Ok(())
    }

    /// Leaves the head we saw to the next writer (we hold the lock).
    fn remember_head(&self) {
        self.ring
            .writers()
            .head_seen
            .store(self.head, Ordering::Relaxed);
    }

    /// Cuts the frame (see the [module docs](self)) and releases the
    /// writer lock.
    fn cut(&mut self) {
        self.done = true;
        let ring = self.ring;
        self.remember_head();
        if self.pos == self.end {
            // Every byte is written: the frame is whole after all.
            self.publish();
        } else if self.published == self.start {
            // Nothing of the frame is visible, so no reader counted it:
            // forget it. Only writers wait for the count to drop, and we
            // hold their lock.
            let begun = &ring.writers().begun;
            begun.store(
                begun.load(Ordering::Relaxed).wrapping_sub(1),
                Ordering::Relaxed,
            );
        } else {
            // Recorded first, for a writer that takes over if we die now.
            ring.writers()
                .cutting
                .store(self.pos | CUT, Ordering::Relaxed);
            ring.cut_at(self.w, self.pos, self.published);
            self.published = self.pos;
        }
        ring.writers().frame.store(0, Ordering::Relaxed);
        ring.unlock_writer(self.w);
    }
}

impl<W: Wait> Drop for FrameWriter<'_, W> {
    fn drop(&mut self) {
        if !self.done {
            self.cut();
        }
    }
}

/// Where a [`FrameReader`] is in its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    /// Reading the payload.
    Reading,
    /// Its writer cut the frame; the partial payload is released.
    Cut,
    /// Ended: the head is past the frame and the lock released.
    Done,
}

/// Reads one frame; see [`FrameRing::begin_read`].
///
/// Dropping it skips what is left of the payload (waiting for the writer
/// to write it, or to cut the frame) and ends the frame.
pub struct FrameReader<'a, W: Wait> {
    ring: &'a FrameRing,
    w: &'a W,
    /// Who reads: takes the writer lock over if its writer dies.
    id: OwnerId,
    /// Position of the frame's length.
    start: u64,
    /// Next byte to read.
    pos: u64,
    /// The head as we last released it.
    released: u64,
    /// The tail as we last read it.
    tail: u64,
    /// Position just past the frame.
    end: u64,
    state: ReadState,
}

impl<W: Wait> core::fmt::Debug for FrameReader<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameReader")
            .field("remaining", &self.remaining())
            .field("state", &self.state)
            .finish()
    }
}

impl<'a, W: Wait> FrameReader<'a, W> {
    /// Payload bytes of the frame.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.end - self.start - FRAME_HEADER
    }

    /// Payload bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Published payload bytes after `pos`, re-reading the tail if the
    /// cached one shows none.
    #[inline]
    fn ready(&mut self) -> u64 {
        if self.tail <= self.pos {
            // Acquire pairs with the writer's Release swap: the bytes up to
            // the tail are written.
            let tail = self.ring.state().tail.load(Ordering::Acquire) & !ASLEEP;
            // Only forward, and never past what a ring can hold.
            if tail > self.tail && tail - self.released <= self.ring.capacity {
                self.tail = tail;
            }
        }
        self.tail.min(self.end).saturating_sub(self.pos)
    }

    /// Releases the bytes read so far to the writer.
    #[inline]
    fn release(&mut self) {
        if self.pos == self.released {
            return;
        }
        let state = self.ring.state();
        // AcqRel: Release orders our reads before the writer reuses the
        // bytes; Acquire pairs with the writer's CAS that set ASLEEP.
        let old = state.head.swap(self.pos, Ordering::AcqRel);
        self.released = self.pos;
        if old & ASLEEP != 0 {
            Epochs::bump_and_wake(self.w, &state.ctl.epochs.space, 1);
        }
    }

    /// Whether the writer cut the frame where we stand.
    fn is_cut_here(&self) -> bool {
        // Acquire pairs with the Release store in `FrameWriter::cut`.
        self.ring.ctl().aborted.load(Ordering::Acquire) == self.pos | CUT
    }

    /// Waits until more of the frame is published, after releasing what we
    /// read. `Err(Cut)` if the writer cut the frame; `Err(TimedOut)` if
    /// `deadline` passed (never without a deadline: then a failed sleep is
    /// retried).
    fn wait_data(&mut self, deadline: Option<W::Deadline>) -> Result<(), ReadError> {
        self.release();
        let mut round = 0;
        loop {
            if self.ready() > 0 {
                return Ok(());
            }
            if self.is_cut_here() {
                self.state = ReadState::Cut;
                return Err(ReadError::Cut);
            }
            // A frame is written under the writer lock: with the lock free
            // (Acquire: the last writer's publishing is visible) and still
            // no data and no cut, the frame can never be completed. Only a
            // ring whose words a peer overwrote gets here; drop the frame.
            if !self.ring.writers().lock.is_locked() {
                if self.ready() > 0 {
                    return Ok(());
                }
                self.state = ReadState::Cut;
                return Err(ReadError::Cut);
            }
            if round < self.w.spin_rounds() {
                self.w.relax(round);
                round += 1;
                continue;
            }
            let state = self.ring.state();
            // The writer finishes or cuts the frame, unless it dies first:
            // look at it now and then.
            let (until, check) = self.w.check_deadline(deadline);
            let slept = sleep(
                self.w,
                true,
                &state.tail,
                &state.ctl.epochs.items,
                self.tail,
                || self.is_cut_here(),
                until,
            );
            if slept.is_err() {
                // A dead writer's frame is cut where its bytes stop.
                if self.ring.rescue_writer(self.w, self.id) {
                    continue;
                }
                let out_of_time = match deadline {
                    None => false,
                    Some(d) => !check || self.w.expired(d),
                };
                if out_of_time {
                    // A last look: the writer may have written as the
                    // deadline passed.
                    if self.ready() > 0 {
                        return Ok(());
                    }
                    return Err(ReadError::TimedOut);
                }
            }
        }
    }

    /// Reads the next `out.len()` payload bytes (at most
    /// [`Self::remaining`]), waiting for the writer to write them.
    ///
    /// # Errors
    /// [`Cut`] if the writer cut the frame: the frame is over and the bytes
    /// read are not a message.
    ///
    /// # Panics
    /// If `out` is longer than what is left of the payload.
    pub fn read(&mut self, out: &mut [u8]) -> Result<(), Cut> {
        // Without a deadline the only error is a cut.
        self.read_until(out, None).map_err(|_| Cut)
    }

    /// As [`Self::read`], waiting for the writer until `deadline` at most
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    /// [`ReadError::Cut`] if the writer cut the frame;
    /// [`ReadError::TimedOut`] if the deadline passed first: the bytes read
    /// so far are counted (see [`Self::remaining`]), the frame is still
    /// being read, and a later call goes on from there.
    ///
    /// # Panics
    /// If `out` is longer than what is left of the payload.
    pub fn read_until(
        &mut self,
        out: &mut [u8],
        deadline: Option<W::Deadline>,
    ) -> Result<(), ReadError> {
        assert!(
            out.len() as u64 <= self.remaining(),
            "read past the end of the frame"
        );
        if self.state == ReadState::Cut {
            return Err(ReadError::Cut);
        }
        let mut at = 0;
        while at < out.len() {
            let ready = self.ready();
            if ready == 0 {
                self.wait_data(deadline)?;
                continue;
            }
            let n = ready.min((out.len() - at) as u64) as usize;
            // SAFETY: we hold the reader lock and the `n <= ready` bytes from
            // `pos` on are published and not released.
            unsafe { self.ring.copy_out(self.pos, &mut out[at..at + n]) };
            self.pos += n as u64;
            at += n;
            if self.pos - self.released >= self.ring.capacity / 4 {
                self.release();
            }
        }
        Ok(())
    }

    /// The published payload bytes after what was read, in one contiguous
    /// piece; empty when the writer has not written more yet (see
    /// [`Self::wait`]). [`consume`](Self::consume) what was used.
    #[cfg(not(loom))]
    pub fn available(&mut self) -> &[u8] {
        if self.state == ReadState::Cut {
            return &[];
        }
        let ready = self.ready();
        let index = self.pos & (self.ring.capacity - 1);
        let len = ready.min(self.ring.capacity - index) as usize;
        let base = self.ring.data.as_ptr().cast::<u8>();
        // SAFETY: `index + len <= capacity` bytes lie in the ring; they are
        // published and not released, so no writer touches them while we
        // hold the reader lock. The borrow of `self` keeps `consume` away
        // while the slice lives.
        unsafe { core::slice::from_raw_parts(base.add(index as usize), len) }
    }

    /// Counts `n` bytes of [`Self::available`] as read.
    ///
    /// # Panics
    /// If `n` is more than the last `available` held.
    #[cfg(not(loom))]
    pub fn consume(&mut self, n: usize) {
        let ready = self.tail.min(self.end).saturating_sub(self.pos);
        let index = self.pos & (self.ring.capacity - 1);
        assert!(
            n as u64 <= ready.min(self.ring.capacity - index),
            "consumed past the frame reader's available bytes"
        );
        self.pos += n as u64;
        if self.pos - self.released >= self.ring.capacity / 4 {
            self.release();
        }
    }

    /// Waits until [`Self::available`] is not empty, or the frame is read
    /// to its end. `Err(Cut)` if the writer cut the frame.
    pub fn wait(&mut self) -> Result<(), Cut> {
        // Without a deadline the only error is a cut.
        self.wait_until(None).map_err(|_| Cut)
    }

    /// As [`Self::wait`], until `deadline` at most (`None`: as long as it
    /// takes).
    ///
    /// # Errors
    /// [`ReadError::Cut`] if the writer cut the frame;
    /// [`ReadError::TimedOut`] if the deadline passed first (the frame is
    /// still being read).
    pub fn wait_until(&mut self, deadline: Option<W::Deadline>) -> Result<(), ReadError> {
        if self.state == ReadState::Cut {
            return Err(ReadError::Cut);
        }
        if self.remaining() == 0 || self.ready() > 0 {
            return Ok(());
        }
        self.wait_data(deadline)
    }

    /// Leaves the frame in the ring, unread, for the next reader, and
    /// releases the reader lock: a reader that only wanted to know whether
    /// a frame is there.
    ///
    /// # Panics
    /// If part of the payload was read already.
    pub fn unread(mut self) {
        assert!(
            self.pos == self.start + FRAME_HEADER && self.released == self.start,
            "unread a frame that was partly read"
        );
        // Nothing moved: the head is still at the frame's length, and the
        // count still counts the frame.
        self.state = ReadState::Done;
        self.ring.readers().frame.store(0, Ordering::Relaxed);
        self.ring.unlock_reader(self.w);
    }

    /// Skips what is left of the payload (waiting for the writer to write
    /// it), releases the frame and the reader lock.
    ///
    /// Returns `Err(Cut)` if the writer cut the frame.
    pub fn finish(mut self) -> Result<(), Cut> {
        self.end_frame()
    }

    fn end_frame(&mut self) -> Result<(), Cut> {
        let mut outcome = Ok(());
        while self.state == ReadState::Reading && self.pos < self.end {
            let ready = self.ready();
            if ready == 0 {
                if self.wait_data(None).is_err() {
                    break;
                }
                continue;
            }
            self.pos += ready;
        }
        let ring = self.ring;
        let readers = ring.readers();
        let cut = self.state == ReadState::Cut;
        if cut {
            outcome = Err(Cut);
            // For a reader that takes over if we die now: the frame stops
            // here.
            readers.frame_end.store(self.pos, Ordering::Relaxed);
        }
        self.state = ReadState::Done;
        // Lower the count before the head moves: a writer waiting for the
        // bound re-reads the count after it sees the head move (the swap
        // below is Release). Release pairs with the Acquire loads of
        // `ended` by writers and `len`. Only readers holding the lock
        // change `ended`.
        let ended = readers.ended.load(Ordering::Relaxed);
        readers
            .ended
            .store(ended.wrapping_add(1), Ordering::Release);
        // The next reader starts from the tail we saw.
        readers.tail_seen.store(self.tail, Ordering::Relaxed);
        // The frame's end always moves the head (a frame has at least its
        // length), so a writer waiting on the head is woken.
        ring.release_to(self.w, self.pos);
        self.released = self.pos;
        if cut {
            // Writers may begin again.
            ring.acknowledge_cut(self.w, self.pos);
        }
        readers.frame.store(0, Ordering::Relaxed);
        ring.unlock_reader(self.w);
        outcome
    }

    /// Skips the rest of a frame a dead reader released in part (see
    /// [`FrameRing::repair_reader`]), waiting for its writer until
    /// `deadline` (`None`: as long as it takes), ends it, marks the reader
    /// lock consistent and releases it. On a timeout it releases what it
    /// skipped and the lock, which stays inconsistent, with the dead
    /// reader's record: the next reader skips the rest.
    #[cold]
    fn skip_rest(mut self, deadline: Option<W::Deadline>) -> Result<(), TimedOut> {
        let ring = self.ring;
        // The dead reader saw a cut where the frame now stops: `end` is
        // the cut's position, not the frame's, and every byte before it is
        // published (the reader saw the cut there).
        if ring.ctl().aborted.load(Ordering::Acquire) == self.end | CUT {
            self.pos = self.end;
            self.state = ReadState::Cut;
        }
        while self.state == ReadState::Reading && self.pos < self.end {
            let ready = self.ready();
            if ready > 0 {
                self.pos += ready;
                continue;
            }
            match self.wait_data(deadline) {
                Ok(()) | Err(ReadError::Cut) => {}
                Err(ReadError::TimedOut) => {
                    self.release();
                    self.state = ReadState::Done;
                    ring.unlock_reader(self.w);
                    return Err(TimedOut);
                }
            }
        }
        // SAFETY: we hold the reader lock.
        unsafe { ring.readers().lock.mark_consistent() };
        let _ = self.end_frame();
        Ok(())
    }
}

impl<W: Wait> Drop for FrameReader<'_, W> {
    fn drop(&mut self) {
        if self.state != ReadState::Done {
            let _ = self.end_frame();
        }
    }
}
