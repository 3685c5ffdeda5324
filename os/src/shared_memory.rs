//! [`SharedMemory`]: a named block of bytes that unrelated processes open by
//! name (Python's `multiprocessing.shared_memory.SharedMemory`).
//!
//! # Names
//!
//! A block is a POSIX shared-memory object: block `"jobs"` is the file
//! `/dev/shm/jobs`, with no prefix added, so a block made here is
//! `SharedMemory(name="jobs")` in Python and the other way round. A name is
//! 1 to 240 bytes with no `/` and no NUL, and not `.` or `..`; the name of
//! a block is given back without any `/` (as Python's `.name`).
//!
//! # Who unlinks
//!
//! A name outlives every process until somebody unlinks it, and once it is
//! unlinked nobody can open the block any more (mappings that exist stay
//! valid). mproc lets the creator decide when that happens:
//!
//! * the handle returned by [`SharedMemory::create`] (or
//!   [`create_unique`](SharedMemory::create_unique)) **unlinks the name
//!   when it is dropped** in the process that created it, unless
//!   [`keep`](SharedMemory::keep) was called first. A copy of that handle
//!   inherited by a child made with `fork` never unlinks on drop: only the
//!   creating process does;
//! * a handle from [`SharedMemory::open`] **never unlinks on drop**, nor
//!   when its process exits, however it exits;
//! * any handle may unlink the name explicitly with
//!   [`unlink`](SharedMemory::unlink), like Python's `unlink()`.
//!
//! Python's resource tracker, by contrast, unlinks a block when a process
//! that merely *opened* it exits, pulling it from under the processes still
//! using it; mproc never does. An unlink, explicit or on drop, removes the
//! name only if it still names this block: a block that somebody else
//! unlinked and made again under the same name is left alone.
//!
//! # Concurrency
//!
//! Every process that opened a block may write it at any time.
//! [`read`](SharedMemory::read) and [`write`](SharedMemory::write) copy
//! bytes with relaxed atomic byte accesses, so they are sound however
//! processes and threads overlap, but a copy that overlaps a write of the
//! same bytes may see part of the old and part of the new bytes: order the
//! accesses with a [`Lock`](crate::Lock), an [`Event`](crate::Event) or a
//! message when that matters. The raw accesses
//! ([`as_ptr`](SharedMemory::as_ptr), [`as_slice`](SharedMemory::as_slice),
//! [`as_mut_slice`](SharedMemory::as_mut_slice)) are faster and leave that
//! ordering to the caller entirely.

use core::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use rustix::io::Errno;
use rustix::shm;

use crate::error::{Error, os};
use crate::shm::{MAX_NAME_LEN, Region};

/// Why a block could not be created, opened or unlinked.
///
/// # Examples
///
/// ```
/// use mproc_os::shared_memory::{SharedMemory, SharedMemoryError};
///
/// assert!(matches!(
///     SharedMemory::create("a/b", 10),
///     Err(SharedMemoryError::InvalidName { .. })
/// ));
/// assert!(matches!(
///     SharedMemory::open("mproc-doc-no-such-block"),
///     Err(SharedMemoryError::NotFound { .. })
/// ));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedMemoryError {
    /// The name is unusable (see [Names](self#names)); nothing was asked
    /// of the system.
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// `create` with a size of 0, or `open` of a block whose creator has
    /// not sized it yet.
    ZeroSize,
    /// `create`: a block of that name exists already; it is left as it
    /// was.
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// `open` or `unlink`: no block has that name (never made, or
    /// unlinked).
    NotFound {
        /// The name.
        name: String,
    },
    /// `unlink`: the name now names another block (this one was unlinked
    /// and a new one made under its name); it is left alone.
    Replaced {
        /// The name.
        name: String,
    },
    /// Another system call failed (`EACCES`, `EMFILE`, `ENOMEM`, ...).
    Os(Error),
}

impl fmt::Display for SharedMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name, reason } => {
                write!(f, "invalid shared-memory name {name:?}: {reason}")
            }
            Self::ZeroSize => f.write_str("a shared-memory block must have at least one byte"),
            Self::AlreadyExists { name } => {
                write!(f, "a shared-memory block named {name:?} exists already")
            }
            Self::NotFound { name } => write!(f, "no shared-memory block is named {name:?}"),
            Self::Replaced { name } => write!(
                f,
                "the name {name:?} now names another shared-memory block; left alone"
            ),
            Self::Os(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for SharedMemoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os(error) => Some(error),
            _ => None,
        }
    }
}

/// A byte range that does not lie inside the block.
///
/// # Examples
///
/// ```
/// use mproc_os::shared_memory::{OutOfRange, SharedMemory};
///
/// let block = SharedMemory::create_unique(8)?;
/// assert_eq!(
///     block.write(6, b"abc"),
///     Err(OutOfRange { offset: 6, len: 3, size: 8 })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// Where the range starts.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The size of the block.
    pub size: usize,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {} do not fit in a shared-memory block of {} bytes",
            self.len, self.offset, self.size
        )
    }
}

impl std::error::Error for OutOfRange {}

/// A named block of shared bytes (Python's `SharedMemory`).
///
/// One process creates it with a name and a size; any process that knows
/// the name opens it, related or not, and all of them see the same bytes.
/// See the [module docs](self) for names, for who unlinks the name, and for
/// concurrent access.
///
/// # Examples
///
/// ```
/// use mproc_os::shared_memory::{SharedMemory, SharedMemoryError};
///
/// let block = SharedMemory::create_unique(64)?;
/// block.write(0, b"hello")?;
///
/// // Another process would open it by its name.
/// let seen = SharedMemory::open(block.name())?;
/// let mut word = [0; 5];
/// seen.read(0, &mut word)?;
/// assert_eq!(&word, b"hello");
/// assert_eq!(seen.size(), 64);
///
/// // Dropping an opener leaves the block alone; the creator's drop
/// // unlinks it.
/// let name = block.name().to_owned();
/// drop(seen);
/// drop(block);
/// assert!(matches!(SharedMemory::open(&name), Err(SharedMemoryError::NotFound { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedMemory {
    region: Region,
    /// The name, without a `/`.
    name: String,
    /// The file behind the name when we made or opened it, so that an
    /// unlink can tell whether the name still names it.
    identity: (u64, u64),
    /// The process that created the block, if this handle did.
    creator: Option<rustix::process::Pid>,
    /// Whether dropping the handle unlinks the name: a creator's handle in
    /// its own process that has not been told to [`keep`](Self::keep) it,
    /// and that has not unlinked it already.
    unlink_on_drop: AtomicBool,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .field("creator", &self.is_creator())
            .field(
                "unlink_on_drop",
                &self.unlink_on_drop.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl SharedMemory {
    /// Creates block `name` of `size` bytes, zeroed (Python's
    /// `SharedMemory(name, create=True, size=size)`). The returned handle
    /// unlinks the name when dropped, unless [`keep`](Self::keep) is called.
    ///
    /// `shm_open(/name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW |
    /// O_CLOEXEC, 0600)`, `ftruncate`, `mmap`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::InvalidName`], [`SharedMemoryError::ZeroSize`]
    /// (both before any system call); [`SharedMemoryError::AlreadyExists`]
    /// if the name is taken (the block there is not touched);
    /// [`SharedMemoryError::Os`] otherwise. On error nothing is left
    /// behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::{SharedMemory, SharedMemoryError};
    ///
    /// let name = format!("mproc-doc-create-{}", std::process::id());
    /// let block = SharedMemory::create(&name, 4096)?;
    /// assert_eq!(block.name(), name);
    /// assert!(matches!(
    ///     SharedMemory::create(&name, 10),
    ///     Err(SharedMemoryError::AlreadyExists { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Self, SharedMemoryError> {
        check_name(name)?;
        if size == 0 {
            return Err(SharedMemoryError::ZeroSize);
        }
        let mut region = Region::create_named(name, size).map_err(|error| match error {
            Error::Os {
                call: "shm_open",
                errno: Errno::EXIST,
            } => SharedMemoryError::AlreadyExists {
                name: name.to_owned(),
            },
            error => from_error(name, error),
        })?;
        // The handle decides when the name goes, not the region.
        region.keep_name();
        let identity = match identity(&region) {
            Ok(identity) => identity,
            Err(error) => {
                // We made the name a moment ago; take it back.
                let _ = shm::unlink(full_name(name).as_str());
                return Err(SharedMemoryError::Os(error));
            }
        };
        Ok(Self {
            region,
            name: name.to_owned(),
            identity,
            creator: Some(rustix::process::getpid()),
            unlink_on_drop: AtomicBool::new(true),
        })
    }

    /// Creates a block of `size` bytes under a new unique name (Python's
    /// `SharedMemory(create=True, size=size)`), `mproc_` and 16 random hex
    /// digits; [`name`](Self::name) tells it. As [`create`](Self::create),
    /// the handle unlinks the name when dropped unless told to
    /// [`keep`](Self::keep) it.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::ZeroSize`]; [`SharedMemoryError::Os`] from the
    /// system calls (a name that happens to be taken is retried with
    /// another).
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let a = SharedMemory::create_unique(100)?;
    /// let b = SharedMemory::create_unique(100)?;
    /// assert!(a.name().starts_with("mproc_"));
    /// assert_ne!(a.name(), b.name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_unique(size: usize) -> Result<Self, SharedMemoryError> {
        if size == 0 {
            return Err(SharedMemoryError::ZeroSize);
        }
        let mut attempts = 0;
        loop {
            match Self::create(&unique_name(), size) {
                Err(SharedMemoryError::AlreadyExists { .. }) if attempts < 100 => attempts += 1,
                outcome => return outcome,
            }
        }
    }

    /// Opens the existing block `name` and maps all of it (Python's
    /// `SharedMemory(name)`). The handle never unlinks the name on drop.
    ///
    /// `shm_open(/name, O_RDWR | O_NOFOLLOW | O_CLOEXEC)`, `fstat`, `mmap`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::InvalidName`]; [`SharedMemoryError::NotFound`]
    /// if no block has that name; [`SharedMemoryError::ZeroSize`] if its
    /// creator has not sized it yet; [`SharedMemoryError::Os`] otherwise
    /// (`EACCES` for a block of another user).
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let block = SharedMemory::create_unique(10)?;
    /// let other = SharedMemory::open(block.name())?;
    /// other.write(9, &[42])?;
    /// let mut last = [0];
    /// block.read(9, &mut last)?;
    /// assert_eq!(last, [42]);
    /// assert!(!other.is_creator());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(name: &str) -> Result<Self, SharedMemoryError> {
        check_name(name)?;
        let region = Region::open_named(name).map_err(|error| from_error(name, error))?;
        let identity = identity(&region).map_err(SharedMemoryError::Os)?;
        Ok(Self {
            region,
            name: name.to_owned(),
            identity,
            creator: None,
            unlink_on_drop: AtomicBool::new(false),
        })
    }

    /// The name of the block, without any `/` (Python's `.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size of the block in bytes (when it was mapped here).
    pub fn size(&self) -> usize {
        self.region.len()
    }

    /// Whether this handle created the block (a copy inherited by a child
    /// made with `fork` counts too, though it never unlinks on drop).
    pub fn is_creator(&self) -> bool {
        self.creator.is_some()
    }

    /// Keeps the name after this handle is dropped: the block outlives the
    /// creator, and somebody must [`unlink`](Self::unlink) it (or
    /// [`unlink_name`](Self::unlink_name) it) later. Does nothing on a
    /// handle that does not unlink on drop anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let mut block = SharedMemory::create_unique(10)?;
    /// block.keep();
    /// let name = block.name().to_owned();
    /// drop(block);
    /// // Still there for anyone to open.
    /// let block = SharedMemory::open(&name)?;
    /// block.unlink()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keep(&mut self) {
        self.unlink_on_drop.store(false, Ordering::Relaxed);
    }

    /// Removes the name (Python's `unlink()`), from any handle: no process
    /// can open the block any more, while every mapping of it, this one
    /// included, stays valid until dropped. A creator's handle does not
    /// unlink again on drop.
    ///
    /// Checks first that the name still names this block: a name that was
    /// unlinked and reused for another block is left alone.
    ///
    /// `shm_open(/name, O_RDONLY | O_NOFOLLOW)` and `fstat` (the check),
    /// then `shm_unlink(/name)`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::NotFound`] if the name is gone already;
    /// [`SharedMemoryError::Replaced`] if it names another block now;
    /// [`SharedMemoryError::Os`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::{SharedMemory, SharedMemoryError};
    ///
    /// let block = SharedMemory::create_unique(10)?;
    /// block.unlink()?;
    /// assert!(matches!(SharedMemory::open(block.name()), Err(SharedMemoryError::NotFound { .. })));
    /// // The mapping is still there.
    /// block.write(0, b"ok")?;
    /// assert!(matches!(block.unlink(), Err(SharedMemoryError::NotFound { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlink(&self) -> Result<(), SharedMemoryError> {
        self.unlink_on_drop.store(false, Ordering::Relaxed);
        let name = full_name(&self.name);
        let fd = shm::open(
            name.as_str(),
            shm::OFlags::RDONLY | no_follow(),
            rustix::fs::Mode::empty(),
        )
        .map_err(|errno| from_error(&self.name, os("shm_open")(errno)))?;
        let stat =
            rustix::fs::fstat(&fd).map_err(|errno| SharedMemoryError::Os(os("fstat")(errno)))?;
        if (stat.st_dev, stat.st_ino) != self.identity {
            return Err(SharedMemoryError::Replaced {
                name: self.name.clone(),
            });
        }
        shm::unlink(name.as_str()).map_err(|errno| from_error(&self.name, os("shm_unlink")(errno)))
    }

    /// Removes the name `name` without opening the block: for a block kept
    /// past its creator ([`keep`](Self::keep)) whose handles are all gone.
    ///
    /// `shm_unlink(/name)`.
    ///
    /// # Errors
    ///
    /// [`SharedMemoryError::InvalidName`]; [`SharedMemoryError::NotFound`]
    /// if no block has that name; [`SharedMemoryError::Os`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::{SharedMemory, SharedMemoryError};
    ///
    /// let mut block = SharedMemory::create_unique(10)?;
    /// block.keep();
    /// let name = block.name().to_owned();
    /// drop(block);
    /// SharedMemory::unlink_name(&name)?;
    /// assert!(matches!(SharedMemory::unlink_name(&name), Err(SharedMemoryError::NotFound { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlink_name(name: &str) -> Result<(), SharedMemoryError> {
        check_name(name)?;
        Region::unlink_named(name).map_err(|error| from_error(name, error))
    }

    /// Copies `out.len()` bytes of the block from `offset` on into `out`.
    ///
    /// Each byte is read once with a relaxed atomic load: sound whatever
    /// other processes and threads do, but a copy that overlaps a write of
    /// the same bytes may mix old and new bytes (see the
    /// [module docs](self#concurrency)).
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] (nothing copied) if the range does not lie inside the
    /// block.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let block = SharedMemory::create_unique(4)?;
    /// let mut out = [9; 4];
    /// block.read(0, &mut out)?;
    /// assert_eq!(out, [0; 4]); // a new block is zeroed
    /// assert!(block.read(1, &mut out).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfRange> {
        let start = self.range(offset, out.len())?;
        copy_out(start, out);
        Ok(())
    }

    /// Copies `bytes` into the block from `offset` on.
    ///
    /// Each byte is written once with a relaxed atomic store: sound
    /// whatever other processes and threads do, but readers that overlap
    /// the write may see part of it (see the [module docs](self#concurrency)).
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] (nothing written) if the range does not lie inside
    /// the block.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let block = SharedMemory::create_unique(4)?;
    /// block.write(1, &[1, 2, 3])?;
    /// let mut out = [0; 4];
    /// block.read(0, &mut out)?;
    /// assert_eq!(out, [0, 1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), OutOfRange> {
        let start = self.range(offset, bytes.len())?;
        copy_in(start, bytes);
        Ok(())
    }

    /// The first byte of `offset .. offset + len`, if the range lies inside
    /// the block.
    fn range(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfRange> {
        let size = self.size();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(OutOfRange { offset, len, size });
        }
        // SAFETY: `offset <= size` (checked above), so the pointer stays
        // inside the mapping of `size` bytes, or one past its end.
        Ok(unsafe { self.region.as_ptr().as_ptr().add(offset) })
    }

    /// The first byte of the block (page aligned), valid for
    /// [`size`](Self::size) bytes while `self` lives.
    ///
    /// Reading or writing through it is `unsafe`: other processes may
    /// write the same bytes at any time, so the caller must order its
    /// accesses with theirs (a lock, an event, a message), or use atomics
    /// for every access (for example by casting an aligned address to
    /// `&AtomicU32`, which also works as a futex). The pointer must not be
    /// used after `self` is dropped (the block is unmapped here then, even
    /// if it lives on elsewhere).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let block = SharedMemory::create_unique(64)?;
    /// // SAFETY: the address is page aligned, 4 bytes lie in the block,
    /// // `block` outlives `counter`, and every process that touches these
    /// // bytes does so through atomics.
    /// let counter = unsafe { AtomicU32::from_ptr(block.as_ptr().as_ptr().cast()) };
    /// counter.fetch_add(1, Ordering::Relaxed);
    /// let mut bytes = [0; 4];
    /// block.read(0, &mut bytes)?;
    /// assert_eq!(u32::from_ne_bytes(bytes), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.region.as_ptr()
    }

    /// The whole block as a byte slice (Python's `.buf`, read-only).
    ///
    /// # Safety
    ///
    /// While the slice lives, nobody may write these bytes: no other
    /// process or thread (through any handle, `write`, or a raw pointer),
    /// which only the caller's own protocol (a lock held, a phase agreed
    /// on) can promise. A concurrent write is a data race, undefined
    /// behavior.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let block = SharedMemory::create_unique(3)?;
    /// block.write(0, b"abc")?;
    /// // SAFETY: no other process knows the block yet, and no thread
    /// // writes it while `bytes` lives.
    /// let bytes = unsafe { block.as_slice() };
    /// assert_eq!(bytes, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes, readable and initialized (a
        // shared file mapping reads zeroes where nothing was written), and
        // stays mapped while `self`, which the slice borrows, lives; the
        // caller promises nobody writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.region.as_ptr().as_ptr(), self.size()) }
    }

    /// The whole block as a mutable byte slice (Python's `.buf`).
    ///
    /// # Safety
    ///
    /// While the slice lives, nobody else may read or write these bytes:
    /// no other process or thread, through any handle or pointer. Only the
    /// caller's own protocol can promise that; a concurrent access is a
    /// data race, undefined behavior.
    ///
    /// # Examples
    ///
    /// ```
    /// use mproc_os::shared_memory::SharedMemory;
    ///
    /// let mut block = SharedMemory::create_unique(8)?;
    /// // SAFETY: no other process knows the block yet, and `&mut` keeps
    /// // this process's other accesses away while `bytes` lives.
    /// let bytes = unsafe { block.as_mut_slice() };
    /// bytes.copy_from_slice(&u64::to_le_bytes(7));
    /// let mut out = [0; 8];
    /// block.read(0, &mut out)?;
    /// assert_eq!(u64::from_le_bytes(out), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, writable too; `&mut self` excludes
        // other slices from this handle, and the caller promises nobody
        // else touches the bytes meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.region.as_ptr().as_ptr(), self.size()) }
    }
}

impl Drop for SharedMemory {
    /// A creator's handle, in the process that created the block, unlinks
    /// the name unless it was kept or unlinked already (and only if the
    /// name still names this block); the mapping is unmapped in every
    /// case. Errors are ignored: there is nobody left to tell.
    fn drop(&mut self) {
        let created_here = self.creator == Some(rustix::process::getpid());
        if created_here && self.unlink_on_drop.load(Ordering::Relaxed) {
            let _ = self.unlink();
        }
    }
}

/// Checks a block name: what [`Region`] refuses, and any `/` (so that
/// [`SharedMemory::name`] is the file name under `/dev/shm`).
fn check_name(name: &str) -> Result<(), SharedMemoryError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it contains '/'")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 240 bytes")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SharedMemoryError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The name as `shm_open` takes it.
fn full_name(name: &str) -> String {
    format!("/{name}")
}

/// The typed error for `error` from an operation on block `name`.
fn from_error(name: &str, error: Error) -> SharedMemoryError {
    match error {
        Error::InvalidName { name, reason } => SharedMemoryError::InvalidName { name, reason },
        Error::Layout(_) => SharedMemoryError::ZeroSize,
        Error::Os {
            errno: Errno::NOENT,
            ..
        } => SharedMemoryError::NotFound {
            name: name.to_owned(),
        },
        error => SharedMemoryError::Os(error),
    }
}

/// The device and inode of the file behind `region`.
///
/// `fstat(fd)`.
fn identity(region: &Region) -> Result<(u64, u64), Error> {
    let fd = region.fd().ok_or(Error::Os {
        call: "fstat",
        errno: Errno::BADF,
    })?;
    let stat = rustix::fs::fstat(fd).map_err(os("fstat"))?;
    Ok((stat.st_dev, stat.st_ino))
}

/// `O_NOFOLLOW`, as glibc's `shm_open` passes it.
fn no_follow() -> shm::OFlags {
    shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits())
}

/// A name no block is likely to have: `mproc_` and 16 hex digits mixed from
/// the process id, a per-process counter, the time and the standard
/// library's per-process random hash keys.
fn unique_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    hasher.write_i64(now.tv_sec);
    hasher.write_i64(now.tv_nsec);
    format!("mproc_{:016x}", hasher.finish())
}

/// Copies `out.len()` bytes from `src` with relaxed atomic byte loads.
fn copy_out(src: *mut u8, out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        // SAFETY: `src .. src + out.len()` lies in a live mapping (checked
        // by `range`, kept alive by the caller's borrow of the handle);
        // `AtomicU8` has the size and alignment of `u8`, and every access
        // this module makes to the block is atomic, so a concurrent write
        // through `write`, in any process, is no data race.
        *byte = unsafe { AtomicU8::from_ptr(src.add(i)) }.load(Ordering::Relaxed);
    }
}

/// Copies `bytes` to `dst` with relaxed atomic byte stores.
fn copy_in(dst: *mut u8, bytes: &[u8]) {
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: as in `copy_out`: the range lies in a live mapping, and
        // the accesses are atomic.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Ordering::Relaxed);
    }
}
