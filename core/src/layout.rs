//! How objects are laid out in shared memory, and how a process checks a
//! region before trusting it.
//!
//! Every shared object starts with a 64-byte [`Header`] naming its kind, the
//! layout version, the fingerprint of the element type and the size of the
//! whole object. The creator writes the header fields first and the version
//! last, with `Release`; an opener reads the version with `Acquire` and checks
//! everything else before it touches the object ([`LayoutError`] says what was
//! wrong). Behind the header comes the object's fixed part ("body", for
//! example the head and tail of a ring) and then its elements, each at the
//! alignment its type needs:
//!
//! ```text
//! offset 0            body_offset            elems_offset             size
//! | Header (64 bytes) | pad | body (e.g. MpmcState) | pad | elements ... |
//! ```
//!
//! Everything in a region is `#[repr(C)]`, holds offsets and never pointers,
//! and every bit pattern of it is valid (all control words are atomics, all
//! payloads are [`ShmSafe`]), so a region written by a crashed or hostile
//! process can give wrong answers but never undefined behaviour.

use core::fmt;
use core::mem::{align_of, size_of};
use core::ops::Deref;
use core::ptr::NonNull;

use crate::sync::{AtomicU32, AtomicU64, Ordering, init_u32, init_u64};

/// The first eight bytes of every mproc object: `"mprocSHM"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"mprocSHM");

/// The version of the layouts in this crate. Bumped on any change to a
/// `#[repr(C)]` struct that lives in shared memory.
pub const LAYOUT_VERSION: u32 = 4;

/// Types whose values may be copied into shared memory and read back by
/// another process.
///
/// # Safety
///
/// Implementing this trait promises that the type:
///
/// * is a primitive, or `#[repr(C)]` / `#[repr(transparent)]` over
///   `ShmSafe` fields, so that every process built from the same source sees
///   the same layout;
/// * holds no pointer, reference, `Box`, file descriptor or other handle whose
///   meaning is local to one process;
/// * is valid for **every** bit pattern of its size (so not `bool`, `char`,
///   enums, `NonZero*` or references): a peer that crashed mid-write, or a
///   hostile one, must not be able to make a reader see an invalid value;
/// * is `Copy` and has no `Drop` glue.
///
/// # Examples
///
/// ```
/// use mproc_core::ShmSafe;
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// // SAFETY: repr(C), two f64 fields, no pointers; every bit pattern of two
/// // f64s is a valid Point.
/// unsafe impl ShmSafe for Point {}
/// ```
pub unsafe trait ShmSafe: Copy + Send + Sync + 'static {}

macro_rules! shm_safe_primitives {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive integer or float: no pointers, and every bit
            // pattern of its size is a valid value.
            unsafe impl ShmSafe for $t {}
        )*
    };
}

shm_safe_primitives!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of `ShmSafe` elements has no padding between them and is
// valid for every bit pattern exactly when its elements are.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// Aligns its content to 128 bytes, so that two hot words written by different
/// processes never share a cache line (adjacent-line prefetch pairs 64-byte
/// lines on x86_64, as crossbeam's `CachePadded` notes).
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct CachePadded<T>(pub T);

impl<T> Deref for CachePadded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The epoch words that sleepers of a ring wait on.
///
/// A sleeper reads an epoch, registers itself where the other side will see
/// it, and sleeps while the epoch is unchanged; the other side bumps the
/// epoch before waking it, so a wake-up between the read and the sleep is
/// never lost.
#[derive(Debug)]
#[repr(C)]
pub struct Epochs {
    /// Bumped by producers that saw sleeping consumers.
    pub(crate) items: AtomicU32,
    /// Bumped by consumers that saw sleeping producers.
    pub(crate) space: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(Epochs, [u32; 2]);

impl Epochs {
    /// Sets both epochs to 0.
    ///
    /// # Safety
    /// As for [`init_u32`]: aligned, valid, initialized, unshared.
    pub(crate) unsafe fn init(epochs: *mut Epochs) {
        // SAFETY: forwarded from the caller.
        unsafe {
            init_u32(&raw mut (*epochs).items, 0);
            init_u32(&raw mut (*epochs).space, 0);
        }
    }

    /// Bumps `epoch` and wakes `count` of its sleepers.
    pub(crate) fn bump_and_wake<W: crate::Wait>(w: &W, epoch: &AtomicU32, count: u32) {
        // Release: a sleeper that sees the new epoch also sees what we wrote
        // before (it re-checks the ring after waking anyway).
        epoch.fetch_add(1, Ordering::Release);
        w.wake(epoch, count);
    }
}

/// What a shared region holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A bounded multi-producer multi-consumer ring ([`crate::mpmc`]).
    MpmcQueue = 1,
    /// A single-producer single-consumer ring ([`crate::spsc`]).
    SpscQueue = 2,
    /// A mutex ([`crate::mutex`]).
    Mutex = 3,
    /// A counting semaphore ([`crate::semaphore`]).
    Semaphore = 4,
    /// An event ([`crate::event`]).
    Event = 5,
    /// A lock-protected array of values ([`crate::cell`]).
    Cell = 6,
    /// A reentrant lock ([`crate::rlock`]).
    RLock = 7,
    /// A condition variable with its own mutex ([`crate::condition`]).
    Condition = 8,
    /// A barrier ([`crate::barrier`]).
    Barrier = 9,
    /// A semaphore that refuses to go above its bound
    /// ([`crate::semaphore::RawBoundedSemaphore`]).
    BoundedSemaphore = 10,
    /// A ring of byte frames: messages of any length ([`crate::frames`]).
    FrameRing = 11,
    /// A count of unfinished tasks ([`crate::waitgroup`]).
    WaitGroup = 12,
}

impl ObjectKind {
    /// The kind recorded as `raw`, if it is one.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::MpmcQueue,
            2 => Self::SpscQueue,
            3 => Self::Mutex,
            4 => Self::Semaphore,
            5 => Self::Event,
            6 => Self::Cell,
            7 => Self::RLock,
            8 => Self::Condition,
            9 => Self::Barrier,
            10 => Self::BoundedSemaphore,
            11 => Self::FrameRing,
            12 => Self::WaitGroup,
            _ => return None,
        })
    }
}

/// Identifies an element type across processes: its size, alignment and a
/// hash of its name (`core::any::type_name`).
///
/// Two processes built from the same source by the same compiler agree on
/// it; a process that attaches a `Queue<u32>` to a region made for
/// `Queue<u64>` does not, and gets [`LayoutError::TypeMismatch`]. Type names
/// are not guaranteed to be the same across compiler versions, so programs
/// built by different toolchains may refuse each other's regions (the safe
/// direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeFingerprint {
    /// `size_of::<T>()`.
    pub size: u64,
    /// `align_of::<T>()`.
    pub align: u32,
    /// 64-bit FNV-1a hash of `core::any::type_name::<T>()`.
    pub name_hash: u64,
}

impl TypeFingerprint {
    /// The fingerprint of `T`.
    pub fn of<T>() -> Self {
        Self {
            size: size_of::<T>() as u64,
            align: align_of::<T>() as u32,
            name_hash: fnv1a(core::any::type_name::<T>().as_bytes()),
        }
    }
}

impl fmt::Display for TypeFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {} align {} name hash {:#018x}",
            self.size, self.align, self.name_hash
        )
    }
}

/// 64-bit FNV-1a.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Who created a region: recorded in its header so that a later opener can
/// tell whether the creator is still alive (pid plus process start time, so
/// that a reused pid is not mistaken for the creator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Process id of the creator.
    pub pid: u32,
    /// Start time of the creator (clock ticks since boot, as in
    /// `/proc/<pid>/stat`), or 0 if unknown.
    pub start_time: u64,
}

/// The 64-byte header at offset 0 of every shared object.
///
/// | offset | field           | meaning                                         |
/// |-------:|-----------------|-------------------------------------------------|
/// | 0      | `magic`         | [`MAGIC`]                                       |
/// | 8      | `version`       | [`LAYOUT_VERSION`]; 0 while the creator writes  |
/// | 12     | `kind`          | [`ObjectKind`]                                  |
/// | 16     | `total_size`    | bytes of header, body and elements              |
/// | 24     | `capacity`      | number of elements (slots, array length, ...)   |
/// | 32     | `type_size`     | [`TypeFingerprint::size`] of the element type   |
/// | 40     | `type_align`    | [`TypeFingerprint::align`]                      |
/// | 44     | `creator_pid`   | [`Origin::pid`]                                 |
/// | 48     | `type_hash`     | [`TypeFingerprint::name_hash`]                  |
/// | 56     | `creator_start` | [`Origin::start_time`]                          |
///
/// All fields are atomics, so a reader racing a writer (or reading garbage)
/// is never undefined behaviour.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    kind: AtomicU32,
    total_size: AtomicU64,
    capacity: AtomicU64,
    type_size: AtomicU64,
    type_align: AtomicU32,
    creator_pid: AtomicU32,
    type_hash: AtomicU64,
    creator_start: AtomicU64,
}

#[cfg(not(loom))]
mod header_layout {
    use super::Header;
    use core::mem::offset_of;
    use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

    assert_eq_size!(Header, [u64; 8]);
    assert_eq_align!(Header, u64);
    const_assert_eq!(offset_of!(Header, magic), 0);
    const_assert_eq!(offset_of!(Header, version), 8);
    const_assert_eq!(offset_of!(Header, kind), 12);
    const_assert_eq!(offset_of!(Header, total_size), 16);
    const_assert_eq!(offset_of!(Header, capacity), 24);
    const_assert_eq!(offset_of!(Header, type_size), 32);
    const_assert_eq!(offset_of!(Header, type_align), 40);
    const_assert_eq!(offset_of!(Header, creator_pid), 44);
    const_assert_eq!(offset_of!(Header, type_hash), 48);
    const_assert_eq!(offset_of!(Header, creator_start), 56);
}

impl Header {
    /// The object kind recorded, if it is a known one.
    pub fn kind(&self) -> Option<ObjectKind> {
        ObjectKind::from_raw(self.kind.load(Ordering::Relaxed))
    }

    /// The number of elements recorded.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// The size in bytes of the whole object recorded.
    pub fn total_size(&self) -> u64 {
        self.total_size.load(Ordering::Relaxed)
    }

    /// The element type's fingerprint recorded.
    pub fn fingerprint(&self) -> TypeFingerprint {
        TypeFingerprint {
            size: self.type_size.load(Ordering::Relaxed),
            align: self.type_align.load(Ordering::Relaxed),
            name_hash: self.type_hash.load(Ordering::Relaxed),
        }
    }

    /// The magic number recorded ([`MAGIC`] for an mproc object).
    pub fn magic(&self) -> u64 {
        self.magic.load(Ordering::Relaxed)
    }

    /// The creator recorded.
    pub fn origin(&self) -> Origin {
        Origin {
            pid: self.creator_pid.load(Ordering::Relaxed),
            start_time: self.creator_start.load(Ordering::Relaxed),
        }
    }

    /// Reads and checks the header at the start of `mem`.
    ///
    /// On success the header is complete (its version was read with
    /// `Acquire`, pairing with the creator's `Release` in `Header::publish`),
    /// so everything the creator wrote before publishing is visible.
    ///
    /// # Safety
    /// `mem` is valid for reads of `len` bytes of initialized memory for the
    /// lifetime `'a`.
    pub unsafe fn read<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Header, LayoutError> {
        if !(mem.as_ptr() as usize).is_multiple_of(align_of::<Header>()) {
            return Err(LayoutError::Misaligned {
                address: mem.as_ptr() as usize,
                required: align_of::<Header>(),
            });
        }
        if len < size_of::<Header>() {
            return Err(LayoutError::TooSmall {
                needed: size_of::<Header>() as u64,
                available: len as u64,
            });
        }
        // SAFETY: aligned (checked), at least 64 readable initialized bytes
        // (checked and guaranteed by the caller), and every bit pattern is a
        // valid `Header` because all its fields are atomics.
        let header = unsafe { mem.cast::<Header>().as_ref() };
        // Acquire pairs with the Release store in `publish`.
        let version = header.version.load(Ordering::Acquire);
        let magic = header.magic.load(Ordering::Relaxed);
        if magic == 0 && version == 0 {
            return Err(LayoutError::NotReady);
        }
        if magic != MAGIC {
            return Err(LayoutError::BadMagic { found: magic });
        }
        if version == 0 {
            return Err(LayoutError::NotReady);
        }
        if version != LAYOUT_VERSION {
            return Err(LayoutError::UnsupportedVersion {
                found: version,
                supported: LAYOUT_VERSION,
            });
        }
        Ok(header)
    }

    /// Makes the object visible to openers: the creator's last write.
    fn publish(&self) {
        // Release pairs with the Acquire load in `Header::read`.
        self.version.store(LAYOUT_VERSION, Ordering::Release);
    }
}

/// Where the parts of one object lie, relative to its start.
///
/// Always a valid allocation layout: `size` rounded up to `align` fits in
/// `isize::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLayout {
    body_offset: usize,
    elems_offset: usize,
    size: usize,
    align: usize,
}

impl ObjectLayout {
    /// The layout of a header, a `B` and `count` values of `E`.
    pub fn new<B, E>(count: u64) -> Result<Self, LayoutError> {
        let too_large = LayoutError::BadCapacity {
            capacity: count,
            reason: "the object would not fit in the address space",
        };
        let align = align_of::<Header>()
            .max(align_of::<B>())
            .max(align_of::<E>());
        let body_offset = size_of::<Header>().next_multiple_of(align_of::<B>());
        let elems_offset = (body_offset + size_of::<B>()).next_multiple_of(align_of::<E>());
        let count_usize = usize::try_from(count).map_err(|_| too_large)?;
        let size = size_of::<E>()
            .checked_mul(count_usize)
            .and_then(|bytes| bytes.checked_add(elems_offset))
            .filter(|&size| size <= isize::MAX as usize - (align - 1))
            .ok_or(too_large)?;
        Ok(Self {
            body_offset,
            elems_offset,
            size,
            align,
        })
    }

    /// Bytes of the whole object.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Alignment the start of the object needs.
    pub fn align(&self) -> usize {
        self.align
    }

    /// Offset of the fixed part.
    pub fn body_offset(&self) -> usize {
        self.body_offset
    }

    /// Offset of element 0.
    pub fn elems_offset(&self) -> usize {
        self.elems_offset
    }

    /// The same size and alignment as a `core::alloc::Layout`, for callers
    /// that place an object in allocated rather than mapped memory.
    pub fn alloc_layout(&self) -> core::alloc::Layout {
        match core::alloc::Layout::from_size_align(self.size, self.align) {
            Ok(layout) => layout,
            // `new` is the only constructor: `align` is a power of two (a
            // maximum of alignments) and `size` rounded up to it fits in
            // `isize::MAX`.
            Err(_) => unreachable!("an ObjectLayout is always a valid Layout"),
        }
    }
}

/// What is wrong with a region that was to hold an mproc object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The region does not start at the alignment the object needs.
    Misaligned {
        /// Address of the region.
        address: usize,
        /// Alignment required.
        required: usize,
    },
    /// The region is smaller than the object.
    TooSmall {
        /// Bytes the object needs.
        needed: u64,
        /// Bytes the region has.
        available: u64,
    },
    /// The creator has not finished writing the object (or the region is
    /// all zeroes).
    NotReady,
    /// The region does not start with [`MAGIC`]: it is not an mproc object.
    BadMagic {
        /// The first eight bytes found.
        found: u64,
    },
    /// The object was written by an mproc with another layout version.
    UnsupportedVersion {
        /// Version found in the header.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The region holds another kind of object.
    WrongKind {
        /// Kind asked for.
        expected: ObjectKind,
        /// Raw kind found in the header.
        found: u32,
    },
    /// The region holds elements of another type.
    TypeMismatch {
        /// Fingerprint of the type asked for.
        expected: TypeFingerprint,
        /// Fingerprint found in the header.
        found: TypeFingerprint,
    },
    /// The capacity asked for, or found, cannot be laid out.
    BadCapacity {
        /// The capacity.
        capacity: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The size recorded in the header is not the size its capacity implies.
    SizeMismatch {
        /// Size recorded in the header.
        recorded: u64,
        /// Size computed from the recorded capacity.
        expected: u64,
    },
    /// The object's own state is impossible (for example a ring position
    /// outside the ring).
    Corrupted {
        /// What was found wrong.
        what: &'static str,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned { address, required } => write!(
                f,
                "shared region at {address:#x} is not aligned to {required} bytes"
            ),
            Self::TooSmall { needed, available } => write!(
                f,
                "shared region has {available} bytes but the object needs {needed}"
            ),
            Self::NotReady => f.write_str("shared object is not initialized yet"),
            Self::BadMagic { found } => write!(
                f,
                "not an mproc object: magic {found:#018x}, expected {MAGIC:#018x}"
            ),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "shared object has layout version {found}, this build supports {supported}"
            ),
            Self::WrongKind { expected, found } => match ObjectKind::from_raw(*found) {
                Some(kind) => write!(f, "shared object is a {kind:?}, expected a {expected:?}"),
                None => write!(
                    f,
                    "shared object has unknown kind {found}, expected a {expected:?}"
                ),
            },
            Self::TypeMismatch { expected, found } => write!(
                f,
                "shared object holds another element type ({found}), expected {expected}"
            ),
            Self::BadCapacity { capacity, reason } => {
                write!(f, "capacity {capacity} is not possible: {reason}")
            }
            Self::SizeMismatch { recorded, expected } => write!(
                f,
                "shared object records {recorded} bytes but its capacity implies {expected}"
            ),
            Self::Corrupted { what } => write!(f, "shared object is corrupted: {what}"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// Pointers to the parts of an object in one process's mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parts<B, E> {
    pub(crate) header: NonNull<Header>,
    pub(crate) body: NonNull<B>,
    pub(crate) elems: NonNull<E>,
    pub(crate) capacity: u64,
}

/// Lays out a new object of `kind` in `mem` and writes its header, except
/// the version: the caller initializes body and elements, then calls
/// [`Parts::publish`].
///
/// # Safety
/// `mem` is valid for reads and writes of `len` bytes of initialized memory
/// (any contents) that nobody else uses until `publish`, and stays mapped for
/// as long as the returned pointers are used.
pub(crate) unsafe fn create<B, E>(
    mem: NonNull<u8>,
    len: usize,
    kind: ObjectKind,
    fingerprint: TypeFingerprint,
    capacity: u64,
    layout: ObjectLayout,
    origin: Origin,
) -> Result<Parts<B, E>, LayoutError> {
    if !(mem.as_ptr() as usize).is_multiple_of(layout.align) {
        return Err(LayoutError::Misaligned {
            address: mem.as_ptr() as usize,
            required: layout.align,
        });
    }
    if len < layout.size {
        return Err(LayoutError::TooSmall {
            needed: layout.size as u64,
            available: len as u64,
        });
    }
    let header = mem.cast::<Header>();
    let h = header.as_ptr();
    // SAFETY: `h` is aligned (checked) and the first 64 of `len >= size`
    // bytes are valid, initialized and not shared yet (caller). The version
    // is written as 0 first, so an opener racing the creation sees NotReady.
    unsafe {
        init_u32(&raw mut (*h).version, 0);
        init_u64(&raw mut (*h).magic, MAGIC);
        init_u32(&raw mut (*h).kind, kind as u32);
        init_u64(&raw mut (*h).total_size, layout.size as u64);
        init_u64(&raw mut (*h).capacity, capacity);
        init_u64(&raw mut (*h).type_size, fingerprint.size);
        init_u32(&raw mut (*h).type_align, fingerprint.align);
        init_u32(&raw mut (*h).creator_pid, origin.pid);
        init_u64(&raw mut (*h).type_hash, fingerprint.name_hash);
        init_u64(&raw mut (*h).creator_start, origin.start_time);
    }
    // SAFETY: both offsets are within `layout.size <= len` bytes of `mem`.
    let (body, elems) = unsafe {
        (
            mem.add(layout.body_offset).cast::<B>(),
            mem.add(layout.elems_offset).cast::<E>(),
        )
    };
    Ok(Parts {
        header,
        body,
        elems,
        capacity,
    })
}

/// Checks that `mem` holds a published object of `kind` whose elements have
/// `fingerprint`, and whose recorded size matches what `layout_of` computes
/// for its recorded capacity and fits in `len`.
///
/// # Safety
/// `mem` is valid for reads and writes of `len` bytes of initialized memory
/// and stays mapped for as long as the returned pointers are used.
pub(crate) unsafe fn attach<B, E>(
    mem: NonNull<u8>,
    len: usize,
    kind: ObjectKind,
    fingerprint: TypeFingerprint,
    layout_of: impl FnOnce(u64) -> Result<ObjectLayout, LayoutError>,
) -> Result<Parts<B, E>, LayoutError> {
    // SAFETY: forwarded from the caller.
    let header = unsafe { Header::read(mem, len)? };
    let found_kind = header.kind.load(Ordering::Relaxed);
    if found_kind != kind as u32 {
        return Err(LayoutError::WrongKind {
            expected: kind,
            found: found_kind,
        });
    }
    let found = header.fingerprint();
    if found != fingerprint {
        return Err(LayoutError::TypeMismatch {
            expected: fingerprint,
            found,
        });
    }
    let capacity = header.capacity();
    let layout = layout_of(capacity)?;
    let recorded = header.total_size();
    if recorded != layout.size as u64 {
        return Err(LayoutError::SizeMismatch {
            recorded,
            expected: layout.size as u64,
        });
    }
    if !(mem.as_ptr() as usize).is_multiple_of(layout.align) {
        return Err(LayoutError::Misaligned {
            address: mem.as_ptr() as usize,
            required: layout.align,
        });
    }
    if len < layout.size {
        return Err(LayoutError::TooSmall {
            needed: layout.size as u64,
            available: len as u64,
        });
    }
    // SAFETY: both offsets are within `layout.size <= len` bytes of `mem`.
    let (body, elems) = unsafe {
        (
            mem.add(layout.body_offset).cast::<B>(),
            mem.add(layout.elems_offset).cast::<E>(),
        )
    };
    Ok(Parts {
        header: mem.cast(),
        body,
        elems,
        capacity,
    })
}

impl<B, E> Parts<B, E> {
    /// Publishes a freshly created object (see [`Header::publish`]).
    ///
    /// # Safety
    /// `self.header` points to a live header written by [`create`].
    pub(crate) unsafe fn publish(&self) {
        // SAFETY: guaranteed by the caller.
        unsafe { self.header.as_ref() }.publish();
    }
}
