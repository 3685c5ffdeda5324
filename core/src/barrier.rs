//! A reusable barrier that breaks (Python's `Barrier`).
//!
//! # State words
//!
//! `state` (64 bits; every transition is one CAS on it):
//!
//! | bits   | meaning                                                          |
//! |--------|------------------------------------------------------------------|
//! | 0..16  | parties arrived in the current generation (< `parties`)          |
//! | 16     | `BROKEN`: the current generation is broken                       |
//! | 17..32 | generation number (15 bits, wrapping)                            |
//! | 32..64 | history: bit `32 + i` is the fate of the generation that ended `i + 1` generations ago (0: released, 1: broken or reset) |
//!
//! `epoch`, the word sleepers sleep on:
//!
//! | bits  | meaning                                                        |
//! |-------|----------------------------------------------------------------|
//! | 0     | `SLEEPERS`: somebody may sleep on the word                     |
//! | 1..32 | counter, bumped after every change that ends a wait            |
//!
//! `parties`: the number of parties, fixed at creation (also recorded as the
//! capacity in the header).
//!
//! A party arrives with one CAS that counts it in. The last to arrive ends
//! the generation instead: count 0, generation + 1, a 0 shifted into the
//! history; it gets the index `parties - 1`, the others their arrival order.
//! Those wait until their generation has ended and read its fate from the
//! history, so a party that wakes late still learns whether its generation
//! was released or broken, as long as fewer than 33 generations ended
//! meanwhile (later it reports the barrier broken: it cannot tell). A party
//! whose deadline passes sets `BROKEN`, as does [`RawBarrier::abort`]: every
//! waiter of the generation and every later arrival gets
//! [`BarrierWaitError::Broken`] until [`RawBarrier::reset`], which ends the
//! generation as broken (a 1 in the history), so parties still waiting in it
//! are told it broke.
//!
//! Whoever ends a wait (release, break, reset) changes `state` first, then
//! bumps `epoch` with `Release` and wakes every sleeper if `SLEEPERS` was
//! set. A waiter reads `epoch`, then `state`, and sleeps while `epoch` holds
//! what it read: if the state it read was stale, the `epoch` it read was
//! too (`Acquire` pairs with the bump), so the sleep returns at once or the
//! bump sees `SLEEPERS` and wakes it.

use core::fmt;
use core::ptr::NonNull;

use crate::TypeFingerprint;
use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin};
use crate::sync::{AtomicU32, AtomicU64, Ordering, init_u32, init_u64};
use crate::wait::Wait;

const ARRIVED_MASK: u64 = (1 << 16) - 1;
const BROKEN: u64 = 1 << 16;
const GEN_SHIFT: u32 = 17;
const GEN_MASK: u32 = (1 << 15) - 1;
const HISTORY_SHIFT: u32 = 32;
/// Generations whose fate the history remembers.
const HISTORY_LEN: u32 = 32;

const SLEEPERS: u32 = 1;
const EPOCH_ONE: u32 = 2;

/// The barrier is broken (a party timed out, or it was aborted or reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier is broken")
    }
}

impl core::error::Error for BrokenBarrier {}

/// Why a wait at a barrier with a deadline failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierWaitError {
    /// The barrier is broken: another party timed out, or it was aborted or
    /// reset.
    Broken,
    /// This party's deadline passed; it broke the barrier for the others.
    TimedOut,
}

impl fmt::Display for BarrierWaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken => f.write_str("the barrier is broken"),
            Self::TimedOut => {
                f.write_str("the wait at the barrier timed out, and broke the barrier")
            }
        }
    }
}

impl core::error::Error for BarrierWaitError {}

impl From<BrokenBarrier> for BarrierWaitError {
    fn from(_: BrokenBarrier) -> Self {
        Self::Broken
    }
}

/// Where a generation stands, as a party of it sees the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Waiting,
    Released,
    Broken,
}

fn arrived(state: u64) -> u32 {
    (state & ARRIVED_MASK) as u32
}

fn generation(state: u64) -> u32 {
    (state >> GEN_SHIFT) as u32 & GEN_MASK
}

fn history(state: u64) -> u32 {
    (state >> HISTORY_SHIFT) as u32
}

/// The state that starts the next generation after `state`'s ends, released
/// or broken.
fn next_generation(state: u64, broken: bool) -> u64 {
    let generation = generation(state).wrapping_add(1) & GEN_MASK;
    let history = (history(state) << 1) | u32::from(broken);
    (u64::from(history) << HISTORY_SHIFT) | (u64::from(generation) << GEN_SHIFT)
}

/// The fate of generation `mine` in `state`.
fn fate(state: u64, mine: u32) -> Fate {
    let current = generation(state);
    if current == mine {
        return if state & BROKEN != 0 {
            Fate::Broken
        } else {
            Fate::Waiting
        };
    }
    let ended_ago = current.wrapping_sub(mine) & GEN_MASK;
    if ended_ago <= HISTORY_LEN && (history(state) >> (ended_ago - 1)) & 1 == 0 {
        Fate::Released
    } else {
        Fate::Broken
    }
}

/// A barrier for a fixed number of parties, in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::Spin;
/// use mproc_core::barrier::{BarrierWaitError, RawBarrier};
///
/// let mut words = [0u64; 2];
/// // SAFETY: `words` is 16 aligned bytes used only through `barrier`.
/// let barrier = unsafe { RawBarrier::init(std::ptr::NonNull::from(&mut words).cast(), 2) };
/// let indexes = std::thread::scope(|s| {
///     let other = s.spawn(|| barrier.wait(&Spin, None));
///     let mine = barrier.wait(&Spin, None);
///     [mine, other.join().unwrap()]
/// });
/// assert!(indexes == [Ok(0), Ok(1)] || indexes == [Ok(1), Ok(0)]);
/// barrier.abort(&Spin);
/// assert_eq!(barrier.wait(&Spin, None), Err(BarrierWaitError::Broken));
/// barrier.reset(&Spin);
/// assert!(!barrier.is_broken());
/// ```
#[derive(Debug)]
#[repr(C)]
pub struct RawBarrier {
    state: AtomicU64,
    epoch: AtomicU32,
    parties: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(RawBarrier, [u64; 2]);
#[cfg(not(loom))]
static_assertions::assert_eq_align!(RawBarrier, u64);

impl RawBarrier {
    /// The most parties a barrier can have: 2^16 - 1.
    pub const MAX_PARTIES: u32 = ARRIVED_MASK as u32;

    /// Makes a barrier for `parties` (clamped to `1..=MAX_PARTIES`) out of
    /// the 16 bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned to 8, valid for reads and writes of 16 initialized
    /// bytes for `'a`, and used by nobody else until this returns.
    pub unsafe fn init<'a>(ptr: NonNull<RawBarrier>, parties: u32) -> &'a RawBarrier {
        let p = ptr.as_ptr();
        // SAFETY: forwarded from the caller; the fields lie inside `*p`.
        unsafe {
            init_u64(&raw mut (*p).state, 0);
            init_u32(&raw mut (*p).epoch, 0);
            init_u32(&raw mut (*p).parties, parties.clamp(1, Self::MAX_PARTIES));
            ptr.as_ref()
        }
    }

    /// The layout of a barrier object (header + barrier).
    pub fn object_layout() -> ObjectLayout {
        match ObjectLayout::new::<RawBarrier, ()>(0) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a header and a barrier always fit"),
        }
    }

    fn check_parties(parties: u64) -> Result<ObjectLayout, LayoutError> {
        if parties == 0 || parties > u64::from(Self::MAX_PARTIES) {
            return Err(LayoutError::BadCapacity {
                capacity: parties,
                reason: "a barrier has 1 to 2^16 - 1 parties",
            });
        }
        Ok(Self::object_layout())
    }

    /// Creates a barrier object for `parties` at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`, used by nobody else until this returns.
    pub unsafe fn create<'a>(
        mem: NonNull<u8>,
        len: usize,
        parties: u32,
        origin: Origin,
    ) -> Result<&'a RawBarrier, LayoutError> {
        let layout = Self::check_parties(parties.into())?;
        // SAFETY: forwarded from the caller.
        unsafe {
            let parts = layout::create::<RawBarrier, ()>(
                mem,
                len,
                ObjectKind::Barrier,
                TypeFingerprint::of::<()>(),
                parties.into(),
                layout,
                origin,
            )?;
            let barrier = Self::init(parts.body, parties);
            parts.publish();
            Ok(barrier)
        }
    }

    /// Attaches to a barrier object at `mem`, after checking its header.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory for `'a`.
    pub unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a RawBarrier, LayoutError> {
        // SAFETY: forwarded from the caller.
        let barrier = unsafe {
            let parts = layout::attach::<RawBarrier, ()>(
                mem,
                len,
                ObjectKind::Barrier,
                TypeFingerprint::of::<()>(),
                Self::check_parties,
            )?;
            if u64::from(parts.body.as_ref().parties()) != parts.capacity {
                return Err(LayoutError::Corrupted {
                    what: "the barrier's parties differ from its header's",
                });
            }
            parts.body.as_ref()
        };
        Ok(barrier)
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation (a snapshot; 0 when
    /// broken, as in Python).
    pub fn n_waiting(&self) -> u32 {
        let state = self.state.load(Ordering::Relaxed);
        if state & BROKEN != 0 {
            0
        } else {
            arrived(state)
        }
    }

    /// Whether the barrier is broken (a snapshot).
    pub fn is_broken(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BROKEN != 0
    }

    /// Waits until all parties have arrived, or the barrier breaks, or
    /// `deadline` passes (`None`: never).
    ///
    /// Returns this party's index in `0..parties`: arrival order, so the
    /// last to arrive, the one that releases the others, gets
    /// `parties - 1`. A party whose deadline passes breaks the barrier
    /// ([`BarrierWaitError::TimedOut`]) and the others get
    /// [`BarrierWaitError::Broken`], as does every wait until
    /// [`reset`](Self::reset).
    pub fn wait<W: Wait>(
        &self,
        w: &W,
        deadline: Option<W::Deadline>,
    ) -> Result<u32, BarrierWaitError> {
        // A corrupted count can only make a region misbehave, not overflow.
        let parties = self.parties().clamp(1, Self::MAX_PARTIES);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & BROKEN != 0 {
                return Err(BarrierWaitError::Broken);
            }
            let index = arrived(state);
            if index + 1 >= parties {
                // The last to arrive: release the others. AcqRel: acquire
                // what every party wrote before arriving (their counting CAS
                // released it), release it all to the waiters.
                match self.state.compare_exchange_weak(
                    state,
                    next_generation(state, false),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.bump_epoch(w);
                        return Ok(index.min(parties - 1));
                    }
                    Err(now) => state = now,
                }
                continue;
            }
            // Release: what we wrote before arriving goes to the releaser.
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.wait_for_end(w, generation(state), index, deadline),
                Err(now) => state = now,
            }
        }
    }

    /// After arriving as `index` of `generation`: waits for the generation
    /// to end.
    fn wait_for_end<W: Wait>(
        &self,
        w: &W,
        generation: u32,
        index: u32,
        deadline: Option<W::Deadline>,
    ) -> Result<u32, BarrierWaitError> {
        let outcome = |state| match fate(state, generation) {
            Fate::Waiting => None,
            Fate::Released => Some(Ok(index)),
            Fate::Broken => Some(Err(BarrierWaitError::Broken)),
        };
        // No spinning for a call whose deadline has already passed.
        let spins = match deadline {
            Some(d) if w.expired(d) => 0,
            _ => w.spin_rounds(),
        };
        for round in 0..spins {
            // Acquire pairs with the Release of whoever ended the generation.
            if let Some(outcome) = outcome(self.state.load(Ordering::Acquire)) {
                return outcome;
            }
            w.relax(round);
        }
        loop {
            // Acquire pairs with the Release bump: a bumped epoch comes with
            // the state change before it (see the module docs).
            let epoch = self.epoch.load(Ordering::Acquire);
            if let Some(outcome) = outcome(self.state.load(Ordering::Acquire)) {
                return outcome;
            }
            if epoch & SLEEPERS == 0
                && self
                    .epoch
                    .compare_exchange_weak(
                        epoch,
                        epoch | SLEEPERS,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            if w.wait(&self.epoch, epoch | SLEEPERS, deadline).is_err() {
                return self.break_after_timeout(w, generation, index);
            }
        }
    }

    /// Our deadline passed: break the generation, unless it ended meanwhile.
    #[cold]
    fn break_after_timeout<W: Wait>(
        &self,
        w: &W,
        generation: u32,
        index: u32,
    ) -> Result<u32, BarrierWaitError> {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            match fate(state, generation) {
                Fate::Released => return Ok(index),
                Fate::Broken => return Err(BarrierWaitError::Broken),
                Fate::Waiting => {}
            }
            match self.state.compare_exchange_weak(
                state,
                state | BROKEN,
                // Acquire on failure: a release we find must come with what
                // it released.
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.bump_epoch(w);
                    return Err(BarrierWaitError::TimedOut);
                }
                Err(now) => state = now,
            }
        }
    }

    /// Breaks the barrier: every party waiting and every later wait gets
    /// [`BarrierWaitError::Broken`] until [`reset`](Self::reset) (Python's
    /// `abort`).
    pub fn abort<W: Wait>(&self, w: &W) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & BROKEN != 0 {
                return;
            }
            match self.state.compare_exchange_weak(
                state,
                state | BROKEN,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        self.bump_epoch(w);
    }

    /// Starts a new generation with nobody arrived and the barrier not
    /// broken; parties still waiting in the old one get
    /// [`BarrierWaitError::Broken`] (Python's `reset`).
    pub fn reset<W: Wait>(&self, w: &W) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & (BROKEN | ARRIVED_MASK) == 0 {
                // Nobody arrived and not broken: already as good as new.
                return;
            }
            match self.state.compare_exchange_weak(
                state,
                next_generation(state, true),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        self.bump_epoch(w);
    }

    /// After a change that ends waits: bump `epoch`, clearing `SLEEPERS`,
    /// and wake everybody if it was set.
    fn bump_epoch<W: Wait>(&self, w: &W) {
        let mut epoch = self.epoch.load(Ordering::Relaxed);
        loop {
            // Release pairs with the Acquire load of `epoch` by the waiters.
            match self.epoch.compare_exchange_weak(
                epoch,
                epoch.wrapping_add(EPOCH_ONE) & !SLEEPERS,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => epoch = now,
            }
        }
        if epoch & SLEEPERS != 0 {
            self.wake_all(w);
        }
    }

    #[cold]
    fn wake_all<W: Wait>(&self, w: &W) {
        w.wake(&self.epoch, u32::MAX);
    }
}
