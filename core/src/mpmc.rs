//! A bounded multi-producer multi-consumer ring of plain-old-data values, laid
//! out in caller-provided shared memory.
//!
//! # Protocol
//!
//! The ring follows Dmitry Vyukov's bounded queue in the form crossbeam's
//! `ArrayQueue` uses (any capacity, no division): positions are
//! `lap | index`, where `one_lap` is the smallest power of two above the
//! capacity, and every slot carries a *stamp*:
//!
//! | slot stamp           | meaning                                              |
//! |----------------------|------------------------------------------------------|
//! | `pos`                | empty, ready for the producer of position `pos`      |
//! | `pos + 1`            | full, holding the value pushed at `pos`              |
//! | `pos + one_lap`      | emptied, ready for the producer one lap later        |
//!
//! A producer reads `tail`, checks that the slot's stamp equals it, claims the
//! position with one CAS on `tail`, writes the value and stores the stamp
//! `pos + 1` (Release). A consumer does the same on `head`, expecting
//! `pos + 1`, and stores `pos + one_lap`. Batch operations check that several
//! consecutive slots of one lap are ready and claim them with a single CAS.
//!
//! # Words
//!
//! `head` and `tail` are 64-bit words:
//!
//! | bits   | meaning                                                          |
//! |--------|------------------------------------------------------------------|
//! | 0..52  | position                                                         |
//! | 52..63 | sleepers: consumers asleep for items (`tail`), producers asleep for space (`head`) |
//! | 63     | `WATCHED` (`tail` only): a watcher waits for items                |
//!
//! A consumer that finds the ring empty registers as a sleeper with a CAS on
//! `tail` that succeeds only if `tail` still equals `head` (so nothing is
//! in flight), then sleeps on the `items` epoch word. Every producer claims
//! its position with a CAS on the same word, so it sees the sleeper count
//! without any further atomic operation or fence, and after publishing it
//! bumps the epoch and wakes that many consumers at most. Producers waiting
//! for space do the same through `head` and the `space` epoch. Hence the fast
//! path makes no syscall, and a wake-up is issued only when someone is asleep.
//! Sleepers remove themselves from the count when they wake, for any reason.
//!
//! A party that only watches for items, without popping
//! ([`Mpmc::watch_pop`]), registers with the same CAS on `tail`, setting
//! `WATCHED` instead of counting itself, and sleeps on the `items` epoch.
//! The next producer clears the bit with its claiming CAS and wakes every
//! sleeper on the epoch: watchers do not know which of them a wake-up of
//! one would reach, and a consumer must not miss its own.
//!
//! # Stamps
//!
//! A stamp is a 32-bit word: the position modulo 2^32. A lap always divides
//! 2^32, so the comparisons above hold modulo 2^32, and `head` / `tail`
//! keep 52 bits, so a party whose view is a whole 2^32 positions stale still
//! fails its CAS.
//!
//! # Claims, and a claimer that dies
//!
//! A slot's stamp shares one 64-bit word with a 32-bit *claim*:
//!
//! | bits of the claim | meaning                                            |
//! |-------------------|----------------------------------------------------|
//! | 0..30             | [`OwnerId`] of the last claimer, 0 for none        |
//! | 30                | `BUSY`: that claimer is moving the value now       |
//! | 31                | `SKIP`: the slot holds no message (a tombstone)    |
//!
//! After its CAS on `tail` or `head`, a claimer *confirms* each slot of its
//! run with a CAS on the slot word from the stamp it expects (and no
//! `BUSY`) to the same stamp with `BUSY` and its id, moves the value, and
//! publishes the next stamp (Release) with `BUSY` cleared. So a slot in
//! the middle of an operation always names the party moving it.
//!
//! A party that waits on a slot held up by a claimer (the `Busy` case)
//! wakes every [`Wait::check_deadline`] interval (10 ms in mproc-os), and
//! once more when its own deadline passes, and looks at the slot word:
//!
//! * `BUSY` with an id that [`Wait::owner_gone`] reports gone: the claimer
//!   died moving the value. A producer's slot becomes a tombstone (the next
//!   stamp, with `SKIP`): consumers take it and skip it. A consumer's slot
//!   is freed (the stamp one lap on): its message is lost, the one that
//!   consumer was moving.
//! * no `BUSY`, and the same stamp for [`STUCK_MS`] (a second): the
//!   claimer stopped between its CAS on `tail`/`head` and its confirming
//!   CAS, a window of a few instructions, and the slot does not say who it
//!   is; it is tombstoned or freed the same way. The second is measured on
//!   a clock all processes share ([`Wait::now_ms`]) from the first look of
//!   any waiter of that side, recorded in the ring (`stalled_push`,
//!   `stalled_pop`), so it adds up across calls and processes: waiters in
//!   short timed calls, one after the other, give up as one long call
//!   would. (With a [`Wait`] that has no clock, [`STUCK_CHECKS`] checks
//!   within one call.) Should the claimer be alive after all (stopped, not
//!   killed, for that long), its confirming CAS fails, so it never touches
//!   the slot: a producer pushes its value again, a consumer goes on
//!   without that message.
//!
//! Every change of a slot after a claim is a CAS from the word the party
//! examined, so a tombstone or a freeing and the claimer's own steps never
//! both happen. A `u64` slot is 16 bytes: four to a cache line, none
//! straddling two.
//!
//! # Progress
//!
//! `try_*` operations are lock-free: a CAS fails only when another party made
//! progress. They return `Full` / `Empty` rather than wait when the slot they
//! need is still being written or read by a party that claimed it earlier (a
//! claimer that stops between claim and publish holds up everyone behind it,
//! the known weakness of this ring, until a blocking waiter finds it dead,
//! see above). Blocking operations spin for [`Wait::spin_rounds`], then
//! sleep.

use core::marker::PhantomData;
use core::mem::{MaybeUninit, size_of};
use core::ptr::NonNull;

use crate::layout::{
    self, CachePadded, Epochs, LayoutError, ObjectKind, ObjectLayout, Origin, Parts,
};
use crate::sync::{
    AtomicU32, AtomicU64, Backoff, Ordering, UnsafeCell, fence, init_cell, init_u64,
};
use crate::wait::{OwnerId, Readiness, Wait};
use crate::{PopError, PushError, ShmSafe, TypeFingerprint, as_uninit};

/// Bits of a `head` / `tail` word that hold the position.
const POS_BITS: u32 = 52;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// One sleeper in a `head` / `tail` word.
const SLEEPER_ONE: u64 = 1 << POS_BITS;
/// The most sleepers a word can count; more wait by polling.
const SLEEPER_MAX: u64 = (1 << 11) - 1;
/// "A watcher waits for items" in `tail` (see [`Mpmc::watch_pop`]).
const WATCHED: u64 = 1 << 63;
/// The largest capacity: `one_lap` (at most twice the capacity) must
/// divide 2^32, the range of a stamp.
const MAX_CAPACITY: u64 = 1 << 30;

/// The stamp of position `pos`: its low 32 bits.
#[inline]
fn stamp(pos: u64) -> u32 {
    pos as u32
}

/// In a slot's claim: the claimer is moving the value now.
const BUSY: u32 = 1 << 30;
/// In a slot's claim: the slot holds no message.
const SKIP: u32 = 1 << 31;
/// The owner id in a slot's claim.
const CLAIM_ID: u32 = OwnerId::MAX;

/// Liveness checks (see [`Wait::check_deadline`]) for which a claimed slot
/// may stay unconfirmed and unchanged before a waiter gives up on its
/// claimer, with a [`Wait`] that has no clock ([`Wait::now_ms`]): a second
/// at one check every 10 ms. Counted within one blocking call.
pub const STUCK_CHECKS: u32 = 100;

/// How long (in milliseconds) a claimed slot may stay unconfirmed and
/// unchanged before the waiters behind it give up on its claimer, with a
/// [`Wait`] that has a clock ([`Wait::now_ms`]; mproc-os does): measured
/// from the first waiter that saw it so, across calls and processes.
pub const STUCK_MS: u32 = 1000;

/// A slot word: `stamp` in the low half, `claim` in the high half.
#[inline]
fn slot_word(stamp: u32, claim: u32) -> u64 {
    (u64::from(claim) << 32) | u64::from(stamp)
}

#[inline]
fn stamp_of(word: u64) -> u32 {
    word as u32
}

#[inline]
fn claim_of(word: u64) -> u32 {
    (word >> 32) as u32
}

#[inline]
fn pos(word: u64) -> u64 {
    word & POS_MASK
}

#[inline]
fn sleepers(word: u64) -> u64 {
    (word >> POS_BITS) & SLEEPER_MAX
}

/// The fixed part of a ring in shared memory.
#[derive(Debug)]
#[repr(C)]
pub struct MpmcState {
    tail: CachePadded<AtomicU64>,
    head: CachePadded<AtomicU64>,
    ctl: CachePadded<Control>,
}

/// The words producers and consumers share besides the positions, changed
/// rarely: on a sleep or wake-up, and while a slot is stalled.
#[derive(Debug)]
#[repr(C)]
struct Control {
    epochs: Epochs,
    /// The slot producers wait behind, claimed by a consumer that has not
    /// confirmed it: its stamp and when it was first seen so (see
    /// [`Mpmc::stalled_too_long`]).
    stalled_push: AtomicU64,
    /// The same for consumers: a slot claimed by a producer.
    stalled_pop: AtomicU64,
}

/// One slot of the ring.
#[derive(Debug)]
#[repr(C)]
pub struct MpmcSlot<T> {
    /// The stamp (see [Stamps](self#stamps)) and the claim (see
    /// [Claims](self#claims-and-a-claimer-that-dies)).
    word: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> MpmcSlot<T> {
    #[inline(always)]
    fn stamp(&self, order: Ordering) -> u32 {
        stamp_of(self.word.load(order))
    }

    /// Confirms our claim on the slot: from `expected` (no `BUSY`) to
    /// `expected` with `BUSY` and `id`. Returns the claim it replaced, or
    /// `None` if the stamp is no longer `expected` (a waiter gave up on us
    /// and tombstoned or freed the slot: it is not ours any more).
    #[inline(always)]
    fn confirm(&self, expected: u32, id: OwnerId) -> Option<u32> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if stamp_of(word) != expected || claim_of(word) & BUSY != 0 {
                return None;
            }
            match self.word.compare_exchange(
                word,
                slot_word(expected, BUSY | id.get()),
                // Acquire pairs with the Release store of the party that
                // published the stamp (as the claim's load did).
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(claim_of(word)),
                Err(now) => word = now,
            }
        }
    }
}

#[cfg(not(loom))]
mod pinned {
    use super::{Control, MpmcSlot, MpmcState};
    use core::mem::offset_of;
    use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

    assert_eq_size!(MpmcState, [u8; 384]);
    assert_eq_align!(MpmcState, crate::layout::CachePadded<u8>);
    const_assert_eq!(offset_of!(MpmcState, tail), 0);
    const_assert_eq!(offset_of!(MpmcState, head), 128);
    const_assert_eq!(offset_of!(MpmcState, ctl), 256);
    assert_eq_size!(Control, [u64; 3]);
    const_assert_eq!(offset_of!(Control, epochs), 0);
    const_assert_eq!(offset_of!(Control, stalled_push), 8);
    const_assert_eq!(offset_of!(Control, stalled_pop), 16);
    assert_eq_size!(MpmcSlot<u64>, [u64; 2]);
    assert_eq_align!(MpmcSlot<u64>, u64);
    assert_eq_size!(MpmcSlot<u8>, [u64; 2]);
    assert_eq_size!(MpmcSlot<[u8; 64]>, [u64; 9]);
    const_assert_eq!(offset_of!(MpmcSlot<u64>, word), 0);
    const_assert_eq!(offset_of!(MpmcSlot<u64>, value), 8);
}

/// A process-local handle to a ring in shared memory.
///
/// It holds pointers into one process's mapping and is never itself placed
/// in shared memory. Copies are cheap and all operate on the same ring.
///
/// # Examples
///
/// ```
/// use mproc_core::{Origin, OwnerId, Spin, mpmc::Mpmc};
///
/// let layout = Mpmc::<u64>::layout(4).unwrap();
/// // SAFETY: the layout is not zero-sized.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
/// let base = std::ptr::NonNull::new(mem).unwrap();
/// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
/// // layout asks, that outlive `ring` and are used by nothing else.
/// let ring = unsafe { Mpmc::<u64>::create(base, layout.size(), 4, Origin::default()) }.unwrap();
///
/// let me = OwnerId::new(1).unwrap();
/// ring.try_push(&Spin, me, 7).unwrap();
/// assert_eq!(ring.try_push_slice(&Spin, me, &[8, 9, 10, 11]), 3);
/// assert_eq!(ring.len(), 4);
/// let mut out = [0; 8];
/// assert_eq!(ring.try_pop_slice(&Spin, me, &mut out), 4);
/// assert_eq!(out[..4], [7, 8, 9, 10]);
/// assert!(ring.try_pop(&Spin, me).is_err());
/// // SAFETY: allocated above with this layout; `ring` is not used any more.
/// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
/// ```
pub struct Mpmc<T> {
    state: NonNull<MpmcState>,
    slots: NonNull<MpmcSlot<T>>,
    capacity: u64,
    one_lap: u64,
    _values: PhantomData<T>,
}

impl<T> Clone for Mpmc<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Mpmc<T> {}

impl<T> core::fmt::Debug for Mpmc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mpmc")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

// SAFETY: the handle only points into shared memory; every access to it goes
// through atomics or through slots that the stamp protocol hands to exactly
// one party at a time, and the values are `ShmSafe` (plain data).
unsafe impl<T: ShmSafe> Send for Mpmc<T> {}
// SAFETY: as for `Send`: all shared state is synchronized by the protocol.
unsafe impl<T: ShmSafe> Sync for Mpmc<T> {}

/// The outcome of trying to claim positions.
#[derive(Clone, Copy)]
enum Claim {
    /// Positions `pos .. pos + count` (one lap) are ours; `word` is the
    /// head/tail word our CAS replaced (for its sleeper count).
    Got { pos: u64, count: usize, word: u64 },
    /// Nothing to claim and nothing in flight: `word` is the word that proves
    /// it (the `tail` when empty, the `head` when full); the slot at `index`
    /// showed stamp `seen`.
    Idle { word: u64, index: u64, seen: u32 },
    /// The slot needed (at `index`, showing stamp `seen`) is still held by a
    /// party that claimed it earlier.
    Busy { index: u64, seen: u32 },
}

impl<T: ShmSafe> Mpmc<T> {
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
                reason: "a queue has at most 2^30 slots",
            });
        }
        ObjectLayout::new::<MpmcState, MpmcSlot<T>>(capacity)
    }

    /// Creates an empty ring of `capacity` slots at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory (any contents), used by nobody else until this returns, and
    /// stays mapped for as long as this handle or a copy of it is used.
    pub unsafe fn create(
        mem: NonNull<u8>,
        len: usize,
        capacity: u64,
        origin: Origin,
    ) -> Result<Self, LayoutError> {
        let layout = Self::layout(capacity)?;
        // SAFETY: forwarded from the caller.
        let parts: Parts<MpmcState, MpmcSlot<T>> = unsafe {
            layout::create(
                mem,
                len,
                ObjectKind::MpmcQueue,
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
            init_u64(&raw mut (*state).tail.0, 0);
            init_u64(&raw mut (*state).head.0, 0);
            let ctl = &raw mut (*state).ctl.0;
            Epochs::init(&raw mut (*ctl).epochs);
            init_u64(&raw mut (*ctl).stalled_push, 0);
            init_u64(&raw mut (*ctl).stalled_pop, 0);
            for i in 0..capacity as usize {
                let slot = parts.elems.as_ptr().add(i);
                init_u64(&raw mut (*slot).word, slot_word(stamp(i as u64), 0));
                init_cell(&raw mut (*slot).value, MaybeUninit::uninit());
            }
            parts.publish();
        }
        Ok(Self::from_parts(parts))
    }

    /// Attaches to a ring that another handle created at `mem`, after checking
    /// its header, its element type and the consistency of its positions.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory, and stays mapped for as long as this handle or a copy of it is
    /// used.
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller.
        let parts = unsafe {
            layout::attach(
                mem,
                len,
                ObjectKind::MpmcQueue,
                TypeFingerprint::of::<T>(),
                Self::layout,
            )?
        };
        let ring = Self::from_parts(parts);
        let (head, tail) = (ring.head_word(), ring.tail_word());
        let in_range = |word: u64| (pos(word) & (ring.one_lap - 1)) < ring.capacity;
        if !in_range(head) || !in_range(tail) {
            return Err(LayoutError::Corrupted {
                what: "queue head or tail outside the ring",
            });
        }
        Ok(ring)
    }

    fn from_parts(parts: Parts<MpmcState, MpmcSlot<T>>) -> Self {
        Self {
            state: parts.body,
            slots: parts.elems,
            capacity: parts.capacity,
            one_lap: (parts.capacity + 1).next_power_of_two(),
            _values: PhantomData,
        }
    }

    #[inline]
    fn state(&self) -> &MpmcState {
        // SAFETY: `state` points into memory that the creator of this handle
        // promised stays mapped; every field is an atomic.
        unsafe { self.state.as_ref() }
    }

    #[inline]
    fn tail_word(&self) -> u64 {
        self.state().tail.load(Ordering::Relaxed)
    }

    #[inline]
    fn head_word(&self) -> u64 {
        self.state().head.load(Ordering::Relaxed)
    }

    /// The slot at `index`, if `index` is inside the ring (it always is
    /// unless the shared memory was corrupted).
    #[inline]
    fn slot(&self, index: u64) -> Option<&MpmcSlot<T>> {
        if index < self.capacity {
            // SAFETY: `index < capacity`, and `attach`/`create` checked that
            // `capacity` slots lie in the mapping.
            Some(unsafe { &*self.slots.as_ptr().add(index as usize) })
        } else {
            None
        }
    }

    /// The position after the run `pos .. pos + count` (which stays in one lap).
    #[inline]
    fn advance(&self, pos: u64, count: u64) -> u64 {
        let index = pos & (self.one_lap - 1);
        if index + count < self.capacity {
            pos + count
        } else {
            ((pos & !(self.one_lap - 1)) + self.one_lap) & POS_MASK
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Number of values in the ring (a snapshot: other parties may change it
    /// at once).
    pub fn len(&self) -> usize {
        loop {
            let tail = pos(self.state().tail.load(Ordering::SeqCst));
            let head = pos(self.state().head.load(Ordering::SeqCst));
            if pos(self.state().tail.load(Ordering::SeqCst)) == tail {
                let mask = self.one_lap - 1;
                let (hix, tix) = (head & mask, tail & mask);
                let len = if hix < tix {
                    tix - hix
                } else if hix > tix {
                    // Saturating: a corrupted index may lie past the
                    // capacity.
                    (self.capacity + tix).saturating_sub(hix)
                } else if tail == head {
                    0
                } else {
                    self.capacity
                };
                return len.min(self.capacity) as usize;
            }
        }
    }

    /// Whether the ring holds no value (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot holds a value (a snapshot).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity as usize
    }

    /// The owner id of the last party that claimed slot `index` (`None` if
    /// nobody has yet, or `index` is not a slot): the party to suspect when
    /// the ring stops moving at that slot.
    pub fn claimer(&self, index: usize) -> Option<OwnerId> {
        let slot = self.slot(index as u64)?;
        OwnerId::new(claim_of(slot.word.load(Ordering::Relaxed)) & CLAIM_ID)
    }

    /// Whether a pop would find a value, without popping; if not, registers
    /// the caller to be woken when one is pushed (see [`Readiness`] and the
    /// [module docs](self)).
    ///
    /// [`Readiness::Busy`] while a producer has claimed the next slot and
    /// not yet filled it (its fill makes no wake-up for a watcher that came
    /// after its claim). With several consumers, `Ready` is a hint that a
    /// pop may lose to another consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_core::{Origin, OwnerId, Readiness, Spin, mpmc::Mpmc};
    ///
    /// let layout = Mpmc::<u32>::layout(2).unwrap();
    /// // SAFETY: the layout is not zero-sized.
    /// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
    /// let base = std::ptr::NonNull::new(mem).unwrap();
    /// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
    /// // layout asks, that outlive `ring` and are used by nothing else.
    /// let ring = unsafe { Mpmc::<u32>::create(base, layout.size(), 2, Origin::default()) }.unwrap();
    ///
    /// // Empty: registered; a push changes the word and wakes the watcher.
    /// let Readiness::Sleep { word, expected } = ring.watch_pop() else { panic!() };
    /// ring.try_push(&Spin, OwnerId::new(1).unwrap(), 5).unwrap();
    /// assert_ne!(word.load(mproc_core::sync::Ordering::Relaxed), expected);
    /// assert!(matches!(ring.watch_pop(), Readiness::Ready));
    /// // SAFETY: allocated above with this layout; `ring` is not used any more.
    /// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
    /// ```
    pub fn watch_pop(&self) -> Readiness<'_> {
        let state = self.state();
        let mut backoff = Backoff::default();
        loop {
            // Read the epoch before registering: whoever sees our
            // registration bumps it after this load (Acquire pairs with the
            // Release bump in `wake_cold`).
            let key = state.ctl.epochs.items.load(Ordering::Acquire);
            let word = state.head.load(Ordering::Relaxed);
            let head = pos(word);
            let index = head & (self.one_lap - 1);
            let Some(slot) = self.slot(index) else {
                // A corrupted head: a pop fails at once.
                return Readiness::Ready;
            };
            // Acquire pairs with the producer's Release store of the stamp.
            let stamp = slot.stamp(Ordering::Acquire);
            if stamp == self::stamp(head + 1) {
                return Readiness::Ready;
            }
            if stamp != self::stamp(head) {
                // A consumer took this position since we read `head`, or one
                // a lap behind is still emptying the slot.
                if state.head.load(Ordering::Relaxed) != word {
                    backoff.spin();
                    continue;
                }
                return Readiness::Busy;
            }
            // Empty, unless a producer has claimed the slot and is writing
            // it now (as in `claim_pop`).
            fence(Ordering::SeqCst);
            let tail = state.tail.load(Ordering::Relaxed);
            if pos(tail) != head {
                return Readiness::Busy;
            }
            if tail & WATCHED != 0 {
                return Readiness::Sleep {
                    word: &state.ctl.epochs.items,
                    expected: key,
                };
            }
            // Succeeds only if nothing changed since `tail` proved the ring
            // empty with nothing in flight; every later producer must CAS
            // the same word and so sees the bit (SeqCst, as the claims).
            match state.tail.compare_exchange(
                tail,
                tail | WATCHED,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Readiness::Sleep {
                        word: &state.ctl.epochs.items,
                        expected: key,
                    };
                }
                Err(_) => backoff.spin(),
            }
        }
    }

    /// Tries to claim up to `want` positions for pushing.
    #[inline(always)]
    fn claim_push(&self, want: usize) -> Claim {
        let state = self.state();
        let mut word = state.tail.load(Ordering::Relaxed);
        let mut backoff = Backoff::default();
        loop {
            let tail = pos(word);
            let index = tail & (self.one_lap - 1);
            let Some(slot) = self.slot(index) else {
                return Claim::Busy { index, seen: 0 };
            };
            // Acquire pairs with the consumer's Release store that emptied
            // the slot, so our write cannot overtake its read.
            let stamp = slot.stamp(Ordering::Acquire);
            if stamp == self::stamp(tail) {
                let room = (want as u64).min(self.capacity - index);
                let mut count = 1;
                while count < room {
                    match self.slot(index + count) {
                        // Acquire: as above, for each slot of the batch.
                        Some(next)
                            if next.stamp(Ordering::Acquire) == self::stamp(tail + count) =>
                        {
                            count += 1
                        }
                        _ => break,
                    }
                }
                // Clears `WATCHED`: the wake-up after the fill is for them.
                let new = (word & !POS_MASK & !WATCHED) | self.advance(tail, count);
                match state.tail.compare_exchange_weak(
                    word,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Claim::Got {
                            pos: tail,
                            count: count as usize,
                            word,
                        };
                    }
                    Err(current) => {
                        word = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap as u32) == self::stamp(tail + 1) {
                // The slot still holds the value pushed one lap ago. Full,
                // unless a consumer has claimed it and is reading it now.
                fence(Ordering::SeqCst);
                let head = state.head.load(Ordering::Relaxed);
                if (pos(head) + self.one_lap) & POS_MASK == tail {
                    return Claim::Idle {
                        word: head,
                        index,
                        seen: stamp,
                    };
                }
                return Claim::Busy { index, seen: stamp };
            } else {
                // Another producer took this position: catch up with `tail`.
                backoff.spin();
                let current = state.tail.load(Ordering::Relaxed);
                if current == word {
                    // `tail` did not move: a producer one lap behind has not
                    // published yet (or the memory is corrupt).
                    return Claim::Busy { index, seen: stamp };
                }
                word = current;
            }
        }
    }

    /// Tries to claim up to `want` positions for popping.
    #[inline(always)]
    fn claim_pop(&self, want: usize) -> Claim {
        let state = self.state();
        let mut word = state.head.load(Ordering::Relaxed);
        let mut backoff = Backoff::default();
        loop {
            let head = pos(word);
            let index = head & (self.one_lap - 1);
            let Some(slot) = self.slot(index) else {
                return Claim::Busy { index, seen: 0 };
            };
            // Acquire pairs with the producer's Release store that published
            // the value.
            let stamp = slot.stamp(Ordering::Acquire);
            if stamp == self::stamp(head + 1) {
                let room = (want as u64).min(self.capacity - index);
                let mut count = 1;
                while count < room {
                    match self.slot(index + count) {
                        // Acquire: as above, for each slot of the batch.
                        Some(next)
                            if next.stamp(Ordering::Acquire) == self::stamp(head + count + 1) =>
                        {
                            count += 1
                        }
                        _ => break,
                    }
                }
                let new = (word & !POS_MASK) | self.advance(head, count);
                match state.head.compare_exchange_weak(
                    word,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Claim::Got {
                            pos: head,
                            count: count as usize,
                            word,
                        };
                    }
                    Err(current) => {
                        word = current;
                        backoff.spin();
                    }
                }
            } else if stamp == self::stamp(head) {
                // Empty, unless a producer has claimed the slot and is
                // writing it now.
                fence(Ordering::SeqCst);
                let tail = state.tail.load(Ordering::Relaxed);
                if pos(tail) == head {
                    return Claim::Idle {
                        word: tail,
                        index,
                        seen: stamp,
                    };
                }
                return Claim::Busy { index, seen: stamp };
            } else {
                backoff.spin();
                let current = state.head.load(Ordering::Relaxed);
                if current == word {
                    return Claim::Busy { index, seen: stamp };
                }
                word = current;
            }
        }
    }

    /// The slot of a claimed position `index + offset`.
    ///
    /// # Safety
    /// `index + offset < capacity`: a claim checks that its first slot is in
    /// the ring and claims at most `capacity - index` slots.
    #[inline]
    unsafe fn claimed_slot(&self, index: u64, offset: u64) -> &MpmcSlot<T> {
        debug_assert!(index + offset < self.capacity);
        // SAFETY: in range (caller), and `create`/`attach` checked that
        // `capacity` slots lie in the mapping.
        unsafe { &*self.slots.as_ptr().add((index + offset) as usize) }
    }

    /// Writes `values` into the claimed positions starting at `pos` and
    /// publishes each one; returns how many it published. Fewer than all
    /// only if a waiter gave up on us (we stopped for [`STUCK_MS`]
    /// between claim and confirm): the rest of the run is then
    /// tombstoned, and the caller pushes the rest of the values again.
    ///
    /// # Safety
    /// `pos .. pos + values.len()` were claimed by one successful
    /// `claim_push`.
    #[inline(always)]
    unsafe fn fill(&self, id: OwnerId, pos: u64, values: &[T]) -> usize {
        let index = pos & (self.one_lap - 1);
        for (offset, value) in values.iter().enumerate() {
            let at = pos + offset as u64;
            // SAFETY: a claimed position (caller).
            let slot = unsafe { self.claimed_slot(index, offset as u64) };
            if slot.confirm(stamp(at), id).is_none() {
                self.void_rest(index, pos, offset as u64 + 1, values.len() as u64);
                return offset;
            }
            // SAFETY: our CAS on `tail` and our confirmation made this
            // position ours alone until we publish it below; no reader
            // touches an unpublished slot.
            slot.value
                .with_mut(|cell| unsafe { cell.write(MaybeUninit::new(*value)) });
            // Release pairs with the consumer's Acquire load in `claim_pop`.
            slot.word
                .store(slot_word(stamp(at + 1), id.get()), Ordering::Release);
        }
        values.len()
    }

    /// Tombstones our claimed, unconfirmed positions `pos + from .. pos +
    /// to` (those a waiter has not voided already).
    #[cold]
    fn void_rest(&self, index: u64, pos: u64, from: u64, to: u64) {
        for offset in from..to {
            // SAFETY: a claimed position: `from..to` lies in the run that
            // `fill`'s caller claimed.
            let slot = unsafe { self.claimed_slot(index, offset) };
            let word = slot.word.load(Ordering::Relaxed);
            if stamp_of(word) == stamp(pos + offset) && claim_of(word) & BUSY == 0 {
                // A waiter's CAS on the same word may win; either way the
                // slot ends up a tombstone.
                let _ = slot.word.compare_exchange(
                    word,
                    slot_word(stamp(pos + offset + 1), SKIP),
                    // Release pairs with the consumer's Acquire load.
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Reads the claimed positions starting at `pos` into `out` and frees
    /// each slot; returns how many values it read, into `out[..n]`.
    /// Tombstones are freed and not counted, and so are slots a waiter
    /// freed because we stopped for [`STUCK_MS`] between claim and
    /// confirm (their messages are lost).
    ///
    /// # Safety
    /// `pos .. pos + out.len()` were claimed by one successful `claim_pop`.
    #[inline(always)]
    unsafe fn drain(&self, id: OwnerId, pos: u64, out: &mut [MaybeUninit<T>]) -> usize {
        let index = pos & (self.one_lap - 1);
        let count = out.len() as u64;
        let mut read = 0;
        for offset in 0..count {
            let at = pos + offset;
            // SAFETY: a claimed position (caller).
            let slot = unsafe { self.claimed_slot(index, offset) };
            let Some(claim) = slot.confirm(stamp(at + 1), id) else {
                continue;
            };
            if claim & SKIP == 0 {
                // SAFETY: our CAS on `head` and our confirmation made this
                // published position ours alone; the producer's write
                // happened before its Release store that our Acquire saw,
                // and `T: ShmSafe` is valid for any bytes even if a peer
                // misbehaved.
                out[read] = slot.value.with(|cell| unsafe { *cell });
                read += 1;
            }
            // Release pairs with the producer's Acquire load in `claim_push`.
            slot.word.store(
                slot_word(stamp(at + self.one_lap), id.get()),
                Ordering::Release,
            );
        }
        read
    }

    /// A waiter held up at slot `index` checks the party holding it (see
    /// [Claims](self#claims-and-a-claimer-that-dies)); tombstones or frees
    /// the slot if that party is gone. Called once per liveness check.
    #[cold]
    #[inline(never)]
    fn recover<W: Wait>(&self, w: &W, index: u64, stuck: &mut Stuck) {
        let Some(slot) = self.slot(index) else {
            return;
        };
        let word = slot.word.load(Ordering::Relaxed);
        if word != stuck.word {
            *stuck = Stuck { word, checks: 0 };
        } else {
            stuck.checks = stuck.checks.saturating_add(1);
        }
        let now = stamp_of(word);
        // A producer's slot shows the stamp of its position, which is
        // `index` modulo a lap; a consumer's shows that position + 1.
        let producers = u64::from(now) & (self.one_lap - 1) == index;
        let claim = claim_of(word);
        let gone = if claim & BUSY != 0 {
            w.owner_gone(claim & CLAIM_ID, None)
        } else {
            // Consumers wait behind a producer's slot, producers behind a
            // consumer's: each side has its record.
            let ctl = &self.state().ctl;
            let stalled = if producers {
                &ctl.stalled_pop
            } else {
                &ctl.stalled_push
            };
            match w.now_ms() {
                Some(ms) => Self::stalled_too_long(stalled, now, ms),
                None => stuck.checks >= STUCK_CHECKS,
            }
        };
        if !gone {
            return;
        }
        let next = if producers {
            slot_word(now.wrapping_add(1), SKIP)
        } else {
            slot_word(now.wrapping_sub(1).wrapping_add(self.one_lap as u32), 0)
        };
        // Release pairs with the Acquire load of the next party to claim
        // the slot. Fails if the slot moved since we looked.
        let _ = slot
            .word
            .compare_exchange(word, next, Ordering::Release, Ordering::Relaxed);
    }

    /// Whether the slot showing `stamp`, claimed and not confirmed, has
    /// been seen so for [`STUCK_MS`] by the waiters of one side, according
    /// to their shared record `stalled` (the stamp in the high half, the
    /// time it was first seen so in the low half): so the waiting adds up
    /// across calls and processes. A record older than ten times that is
    /// from another stall (or from nobody looking for long): the clock
    /// starts again.
    fn stalled_too_long(stalled: &AtomicU64, stamp: u32, now: u32) -> bool {
        let record = stalled.load(Ordering::Relaxed);
        let since = record as u32;
        let age = now.wrapping_sub(since);
        if (record >> 32) as u32 == stamp && record != 0 && age < 10 * STUCK_MS {
            return age >= STUCK_MS;
        }
        // Only a hint: a lost race with another waiter starts the same
        // clock.
        let _ = stalled.compare_exchange(
            record,
            (u64::from(stamp) << 32) | u64::from(now),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        false
    }

    /// Wakes up to `count` of the sleepers counted in `word` on `epoch`,
    /// or all of them if `word` has `WATCHED`.
    #[inline(always)]
    fn wake_sleepers<W: Wait>(w: &W, epoch: &AtomicU32, word: u64, count: usize) {
        if word & !POS_MASK != 0 {
            Self::wake_cold(w, epoch, word, count);
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_cold<W: Wait>(w: &W, epoch: &AtomicU32, word: u64, count: usize) {
        let count = if word & WATCHED != 0 {
            u32::MAX
        } else {
            sleepers(word).min(count as u64) as u32
        };
        if count != 0 {
            Epochs::bump_and_wake(w, epoch, count);
        }
    }

    /// Pushes `value` if a slot is free now.
    ///
    /// Returns [`PushError::Full`] with the value when the ring is full, or
    /// when the next slot is still being emptied by a consumer that has not
    /// finished.
    #[inline]
    pub fn try_push<W: Wait>(&self, w: &W, id: OwnerId, value: T) -> Result<(), PushError<T>> {
        match self.claim_push(1) {
            Claim::Got { pos, word, .. } => {
                // SAFETY: `pos` was claimed just now.
                let pushed = unsafe { self.fill(id, pos, core::slice::from_ref(&value)) };
                // A tombstone is a published slot too: consumers wait for it.
                Self::wake_sleepers(w, &self.state().ctl.epochs.items, word, 1);
                if pushed == 1 {
                    Ok(())
                } else {
                    Err(PushError::Full(value))
                }
            }
            Claim::Idle { .. } | Claim::Busy { .. } => Err(PushError::Full(value)),
        }
    }

    /// Pushes `value`, waiting for a free slot until `deadline` (`None`:
    /// forever). On timeout the value is handed back in [`PushError::Full`].
    #[inline(always)]
    pub fn push<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        value: T,
        deadline: Option<W::Deadline>,
    ) -> Result<(), PushError<T>> {
        let mut first = Some(self.claim_push(1));
        if let Some(Claim::Got { pos, word, .. }) = first {
            // SAFETY: `pos` was claimed just now.
            let pushed = unsafe { self.fill(id, pos, core::slice::from_ref(&value)) };
            Self::wake_sleepers(w, &self.state().ctl.epochs.items, word, 1);
            if pushed == 1 {
                return Ok(());
            }
            first = None;
        }
        let patience = deadline.map_or(Patience::Forever, Patience::Until);
        match self.push_from(w, id, core::slice::from_ref(&value), patience, first) {
            1 => Ok(()),
            _ => Err(PushError::Full(value)),
        }
    }

    /// Pushes as many of `values` as there are free slots now, in order, and
    /// returns how many it pushed.
    pub fn try_push_slice<W: Wait>(&self, w: &W, id: OwnerId, values: &[T]) -> usize {
        self.push_from(w, id, values, Patience::None, None)
    }

    /// Pushes all of `values` in order, waiting for free slots until
    /// `deadline` (`None`: forever); returns how many it pushed (all of them
    /// unless the deadline passed).
    pub fn push_slice<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        values: &[T],
        deadline: Option<W::Deadline>,
    ) -> usize {
        let patience = deadline.map_or(Patience::Forever, Patience::Until);
        self.push_from(w, id, values, patience, None)
    }

    /// The one implementation of every push: pushes a prefix of `values` and
    /// returns its length. `patience` says how long to wait for free slots;
    /// `first` is the outcome of a claim the caller already tried, if any.
    #[inline(never)]
    fn push_from<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        values: &[T],
        patience: Patience<W::Deadline>,
        mut first: Option<Claim>,
    ) -> usize {
        let state = self.state();
        let mut done = 0;
        let mut round = 0;
        let mut stuck = Stuck::default();
        while done < values.len() {
            let claim = first.take();
            match claim.unwrap_or_else(|| self.claim_push(values.len() - done)) {
                Claim::Got { pos, count, word } => {
                    // SAFETY: `pos .. pos + count` were claimed just now.
                    done += unsafe { self.fill(id, pos, &values[done..done + count]) };
                    Self::wake_sleepers(w, &state.ctl.epochs.items, word, count);
                }
                _ if matches!(patience, Patience::None) => break,
                Claim::Busy { index, seen } => {
                    if patience.expired(w) {
                        break;
                    }
                    round = self.wait_busy(w, index, seen, round, patience, &mut stuck);
                }
                Claim::Idle { word, index, seen } => {
                    if round < w.spin_rounds() && !patience.expired(w) {
                        round = self.watch(w, index, seen, round, w.spin_rounds(), patience);
                        continue;
                    }
                    // `word` is the `head` that proved the ring full.
                    let deadline = patience.deadline();
                    match self.sleep(
                        w,
                        &state.head,
                        &state.ctl.epochs.space,
                        word,
                        deadline,
                        round,
                    ) {
                        Ok(next) => round = next,
                        Err(()) => {
                            // Timed out: one last try before giving up.
                            let rest = &values[done..];
                            return done + self.push_from(w, id, rest, Patience::None, None);
                        }
                    }
                }
            }
        }
        done
    }

    /// Pops the oldest value if one is ready now.
    ///
    /// Returns [`PopError::Empty`] when the ring is empty, or when the oldest
    /// value is still being written by a producer that has not finished.
    #[inline]
    pub fn try_pop<W: Wait>(&self, w: &W, id: OwnerId) -> Result<T, PopError> {
        loop {
            match self.claim_pop(1) {
                Claim::Got { pos, word, .. } => {
                    // SAFETY: `pos` was claimed just now.
                    if let Some(value) = unsafe { self.take_one(w, id, pos, word) } {
                        return Ok(value);
                    }
                    // A tombstone: progress; look again.
                }
                Claim::Idle { .. } | Claim::Busy { .. } => return Err(PopError::Empty),
            }
        }
    }

    /// Pops the oldest value, waiting for one until `deadline` (`None`:
    /// forever).
    #[inline(always)]
    pub fn pop<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<T, PopError> {
        let mut first = Some(self.claim_pop(1));
        if let Some(Claim::Got { pos, word, .. }) = first {
            // SAFETY: `pos` was claimed just now.
            if let Some(value) = unsafe { self.take_one(w, id, pos, word) } {
                return Ok(value);
            }
            first = None;
        }
        let mut value = MaybeUninit::uninit();
        let patience = deadline.map_or(Patience::Forever, Patience::Until);
        let out = core::slice::from_mut(&mut value);
        match self.pop_into(w, id, out, patience, first) {
            // SAFETY: `pop_into` initialized the one value it reports.
            1 => Ok(unsafe { value.assume_init() }),
            _ => Err(PopError::Empty),
        }
    }

    /// Takes the value at position `pos`, claimed by a CAS that replaced
    /// `word`: the fast path of the single pops, small enough to inline.
    /// `None` if the slot held no message (a tombstone, or freed by a
    /// waiter that gave up on us).
    ///
    /// # Safety
    /// `pos` was claimed by one successful `claim_pop`.
    #[inline(always)]
    unsafe fn take_one<W: Wait>(&self, w: &W, id: OwnerId, pos: u64, word: u64) -> Option<T> {
        let mut value = MaybeUninit::uninit();
        // SAFETY: `pos` is claimed (caller).
        let read = unsafe { self.drain(id, pos, core::slice::from_mut(&mut value)) };
        Self::wake_sleepers(w, &self.state().ctl.epochs.space, word, 1);
        // SAFETY: `drain` initialized the value if it read one.
        (read == 1).then(|| unsafe { value.assume_init() })
    }

    /// Pops up to `out.len()` values that are ready now, oldest first, and
    /// returns how many it popped (into `out[..n]`).
    pub fn try_pop_slice<W: Wait>(&self, w: &W, id: OwnerId, out: &mut [T]) -> usize {
        self.pop_into(w, id, as_uninit(out), Patience::None, None)
    }

    /// Pops up to `out.len()` values, oldest first, waiting until at least one
    /// is ready or `deadline` passes (`None`: forever); returns how many it
    /// popped into `out[..n]` (0 only on timeout or when `out` is empty).
    pub fn pop_slice<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        out: &mut [T],
        deadline: Option<W::Deadline>,
    ) -> usize {
        let patience = deadline.map_or(Patience::Forever, Patience::Until);
        self.pop_into(w, id, as_uninit(out), patience, None)
    }

    /// The one implementation of every pop: fills a prefix of `out` and
    /// returns its length. `patience` says how long to wait for the first
    /// value; once one value is in, it takes only what is ready. `first` is
    /// the outcome of a claim the caller already tried, if any.
    #[inline(never)]
    fn pop_into<W: Wait>(
        &self,
        w: &W,
        id: OwnerId,
        out: &mut [MaybeUninit<T>],
        patience: Patience<W::Deadline>,
        mut first: Option<Claim>,
    ) -> usize {
        let state = self.state();
        let mut done = 0;
        let mut round = 0;
        let mut stuck = Stuck::default();
        while done < out.len() {
            let claim = first.take();
            match claim.unwrap_or_else(|| self.claim_pop(out.len() - done)) {
                Claim::Got { pos, count, word } => {
                    // SAFETY: `pos .. pos + count` were claimed just now.
                    done += unsafe { self.drain(id, pos, &mut out[done..done + count]) };
                    Self::wake_sleepers(w, &state.ctl.epochs.space, word, count);
                }
                // Have something, or may not wait: done.
                _ if done > 0 || matches!(patience, Patience::None) => break,
                Claim::Busy { index, seen } => {
                    if patience.expired(w) {
                        break;
                    }
                    round = self.wait_busy(w, index, seen, round, patience, &mut stuck);
                }
                Claim::Idle { word, index, seen } => {
                    if round < w.spin_rounds() && !patience.expired(w) {
                        round = self.watch(w, index, seen, round, w.spin_rounds(), patience);
                        continue;
                    }
                    // `word` is the `tail` that proved the ring empty.
                    let deadline = patience.deadline();
                    match self.sleep(
                        w,
                        &state.tail,
                        &state.ctl.epochs.items,
                        word,
                        deadline,
                        round,
                    ) {
                        Ok(next) => round = next,
                        Err(()) => {
                            // Timed out: one last try before giving up.
                            let rest = &mut out[done..];
                            return done + self.pop_into(w, id, rest, Patience::None, None);
                        }
                    }
                }
            }
        }
        done
    }

    /// Waits for slot `index`, held up by a party that claimed it, to move
    /// on from stamp `seen`; at every liveness check
    /// ([`Wait::check_deadline`]), and when the caller's deadline passes,
    /// looks whether that party is gone (see [`Mpmc::recover`]). Returns
    /// the round reached.
    fn wait_busy<W: Wait>(
        &self,
        w: &W,
        index: u64,
        seen: u32,
        round: u32,
        patience: Patience<W::Deadline>,
        stuck: &mut Stuck,
    ) -> u32 {
        let (until, _) = w.check_deadline(patience.deadline());
        let bounded = until.map_or(Patience::Forever, Patience::Until);
        let round = self.watch(w, index, seen, round, u32::MAX, bounded);
        // Also when the caller's own time ran out: a caller that waits in
        // short calls, one after the other, looks as often as one that
        // waits in one long call.
        if until.is_some_and(|d| w.expired(d)) {
            self.recover(w, index, stuck);
        }
        round
    }

    /// Backs off while the stamp of slot `index` still reads `seen`, from
    /// retry round `round` up to `limit` (or until the deadline), and returns
    /// the round reached.
    ///
    /// A waiting party watches only the one slot it needs: re-claiming every
    /// round would also read the other side's index word (`tail` for a
    /// consumer, `head` for a producer), pulling that cache line away from
    /// the parties that write it on every operation. The stamp changes when
    /// the slot is published or emptied, or when another party of our side
    /// took it; either way the next claim finds out which.
    #[inline]
    fn watch<W: Wait>(
        &self,
        w: &W,
        index: u64,
        seen: u32,
        mut round: u32,
        limit: u32,
        patience: Patience<W::Deadline>,
    ) -> u32 {
        loop {
            w.relax(round);
            round = round.saturating_add(1);
            let changed = self
                .slot(index)
                .is_none_or(|slot| slot.stamp(Ordering::Relaxed) != seen);
            if changed || round >= limit || patience.expired(w) {
                return round;
            }
        }
    }

    /// Registers as a sleeper in `word_ref` (which must still hold `seen`, the
    /// word that proved there is nothing to do), sleeps on `epoch`, and
    /// unregisters. `Err(())` when the deadline passed; otherwise the retry
    /// round to continue with.
    #[cold]
    fn sleep<W: Wait>(
        &self,
        w: &W,
        word_ref: &AtomicU64,
        epoch: &AtomicU32,
        seen: u64,
        deadline: Option<W::Deadline>,
        round: u32,
    ) -> Result<u32, ()> {
        if deadline.is_some_and(|d| w.expired(d)) {
            return Err(());
        }
        // Read the epoch before registering: whoever sees our registration
        // bumps the epoch after our load, so `wait` cannot miss it.
        // Acquire pairs with the Release bump in `wake_cold`.
        let key = epoch.load(Ordering::Acquire);
        if sleepers(seen) == SLEEPER_MAX {
            // No room to register: poll.
            w.relax(round);
            return Ok(round.saturating_add(1));
        }
        // The CAS succeeds only if nothing changed since `seen` proved the
        // ring empty (or full) with nothing in flight; every later claimer
        // must CAS the same word and so sees us.
        if word_ref
            .compare_exchange(
                seen,
                seen + SLEEPER_ONE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Ok(round);
        }
        let woken = w.wait(epoch, key, deadline);
        // Unregister (whoever woke us did not do it for us).
        let mut current = word_ref.load(Ordering::Relaxed);
        while sleepers(current) != 0 {
            match word_ref.compare_exchange_weak(
                current,
                current - SLEEPER_ONE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        match woken {
            Ok(()) => Ok(round),
            Err(_) => Err(()),
        }
    }
}

/// What a waiter held up at one slot saw at its last liveness check.
#[derive(Clone, Copy, Default)]
struct Stuck {
    /// The slot word.
    word: u64,
    /// Checks in a row that found it so.
    checks: u32,
}

/// How long a pop may wait for its first value.
#[derive(Clone, Copy)]
enum Patience<D> {
    None,
    Until(D),
    Forever,
}

impl<D: Copy> Patience<D> {
    fn deadline(self) -> Option<D> {
        match self {
            Patience::Until(d) => Some(d),
            Patience::None | Patience::Forever => None,
        }
    }

    fn expired<W: Wait<Deadline = D>>(self, w: &W) -> bool {
        match self {
            Patience::None => true,
            Patience::Until(d) => w.expired(d),
            Patience::Forever => false,
        }
    }
}

/// Size in bytes of one slot for `T` (for capacity planning).
pub const fn slot_size<T>() -> usize {
    size_of::<MpmcSlot<T>>()
}
