//! Shared-memory regions: the memory that mproc objects live in.
//!
//! A [`Region`] is one read/write `MAP_SHARED` mapping, unmapped on drop. It
//! comes in three flavours:
//!
//! * [`Region::memfd`]: a `memfd` whose file descriptor can be passed to
//!   another process (over a Unix socket, or inherited), which maps it with
//!   [`Region::from_fd`]; freed with the last fd and mapping, so it can
//!   never leak. The file is sealed against shrinking, so a peer cannot
//!   make our accesses fault. Every object's `new()` makes one, so that
//!   [`Token`](crate::share::Token)s can share it with any process.
//! * [`Region::anonymous`]: inherited by children created with `fork`
//!   only; the kernel frees it with its last user. No descriptor to keep
//!   open, and no way to share it with a process that was not forked.
//! * [`Region::create_named`] / [`Region::open_named`]: a POSIX shared-memory
//!   object under `/dev/shm`, for processes that share nothing but a name.
//!   The name outlives every process unless somebody unlinks it: the creating
//!   region does so on drop unless told otherwise ([`Region::keep_name`]).
//!
//! # Names left behind
//!
//! A creator killed with `SIGKILL` never drops its region, so its name
//! stays in `/dev/shm`. mproc marks a name that its creating region still
//! owns (the owner-execute bit of the object's mode: set at creation,
//! cleared by [`Region::keep_name`]), and every mproc object records its
//! creator (pid and start time) in its header. The next process that opens
//! the name ([`Region::open_named`]) or tries to create it again
//! ([`Region::create_named`]) finds a marked mproc object whose creator is
//! gone and unlinks the name ([`Region::unlink_if_stale`]): an opener still
//! gets the object (mappings outlive names, and the memory is freed with
//! the last one), a creator gets a fresh one. Names that were kept, and
//! blocks without an mproc header ([`SharedMemory`](crate::SharedMemory),
//! Python's layout), are left alone.
//!
//! Every constructor either returns a region or an error, and on error leaves
//! no mapping, file descriptor or (for `create_named`) name behind.
//!
//! # Safety
//!
//! A region hands out a raw pointer ([`Region::as_ptr`]). Other processes
//! may write the memory at any time, so it must only be accessed through
//! atomics or under a protocol that excludes concurrent writers, with types
//! valid for every bit pattern ([`mproc_core::ShmSafe`]); mproc-core's
//! objects do exactly that.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use mproc_core::LayoutError;
use mproc_core::layout::Header;
use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;

use crate::error::{Error, Result, os};

/// The mode of a named object whose creating region owns the name: the
/// owner-execute bit marks it (see [Names left behind](self#names-left-behind)).
const OWNED_MODE: Mode = Mode::RUSR.union(Mode::WUSR).union(Mode::XUSR);

/// The longest shared-memory name accepted, in bytes, not counting the
/// leading `/` (Linux allows 255 bytes for the file under `/dev/shm`; the
/// margin leaves room for prefixes a caller may add).
pub const MAX_NAME_LEN: usize = 240;

/// The longest `memfd` name accepted, in bytes (a `memfd_create` limit).
const MAX_MEMFD_NAME_LEN: usize = 249;

/// A shared-memory mapping (read/write, `MAP_SHARED`), unmapped on drop.
///
/// # Examples
///
/// ```
/// use mproc_os::shm::Region;
///
/// let region = Region::anonymous(100)?;
/// assert_eq!(region.len(), 100);
/// // Fresh regions are zeroed.
/// // SAFETY: the region is 100 bytes long and nobody else maps it yet.
/// let first = unsafe { region.as_ptr().read() };
/// assert_eq!(first, 0);
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Debug)]
pub struct Region {
    /// Start of the mapping (page aligned).
    ptr: NonNull<u8>,
    /// Bytes usable: what was asked for, or the size of the file mapped.
    len: usize,
    /// What keeps the memory alive besides the mapping.
    backing: Backing,
}

/// The object behind a [`Region`].
#[derive(Debug)]
enum Backing {
    /// Anonymous shared memory: nothing but the mapping.
    Anonymous,
    /// A memfd or another file, mapped as a whole.
    Fd(OwnedFd),
    /// A named POSIX shared-memory object.
    Named {
        /// The object, open read/write.
        fd: OwnedFd,
        /// The name, with its leading `/`.
        name: String,
        /// Whether dropping the region unlinks the name.
        owns_name: bool,
    },
}

// SAFETY: a `Region` is a pointer to memory shared with other processes plus
// owned handles (fds, a `String`); moving it to another thread changes
// nothing about who may access that memory. The mapping stays valid until
// the region is dropped, wherever that happens.
unsafe impl Send for Region {}

// SAFETY: `&Region` only gives out the address, the length, a borrowed fd and
// the name; it never reads or writes the memory itself. Every user of the
// memory goes through atomics or a protocol that already has to cope with
// other *processes* writing concurrently, so other threads are no different.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes of anonymous shared memory (rounded up to whole pages
    /// by the kernel), zeroed.
    ///
    /// The mapping is inherited by children created with `fork`, which then
    /// share it with the parent; the kernel frees it when its last user
    /// unmaps it or exits.
    ///
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
    /// -1, 0)`.
    ///
    /// # Errors
    ///
    /// [`Error::Layout`] with [`LayoutError::TooSmall`] if `len` is 0;
    /// [`Error::Os`] from `mmap` (`ENOMEM`, ...).
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn anonymous(len: usize) -> Result<Region> {
        check_len(len)?;
        // SAFETY: a null hint lets the kernel choose the address, so no
        // existing memory is replaced.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(os("mmap"))?;
        Ok(Region {
            ptr: mapped(ptr)?,
            len,
            backing: Backing::Anonymous,
        })
    }

    /// Creates a `memfd` of `len` bytes and maps it.
    ///
    /// The file descriptor is close-on-exec; [`fd`](Region::fd) lends it out
    /// so that it can be passed to another process, which maps it with
    /// [`Region::from_fd`]. The file is sealed against shrinking
    /// (`F_SEAL_SHRINK`, then `F_SEAL_SEAL`), so no holder of the fd can
    /// truncate it under another's mapping. `name` only labels the file (it
    /// shows in `/proc/<pid>/fd` as `memfd:<name>`); it need not be unique.
    ///
    /// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`,
    /// `ftruncate(fd, len)`, `fcntl(fd, F_ADD_SEALS, ...)`, then
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if `name` has a NUL byte or is longer than 249
    /// bytes; [`Error::Layout`] if `len` is 0; [`Error::Os`] from any of the
    /// calls.
    ///
    /// # References
    ///  - [Linux `memfd_create`]
    ///  - [Linux `ftruncate`]
    ///  - [Linux `fcntl`]
    ///  - [Linux `mmap`]
    ///
    /// [Linux `memfd_create`]: https://man7.org/linux/man-pages/man2/memfd_create.2.html
    /// [Linux `ftruncate`]: https://man7.org/linux/man-pages/man2/ftruncate.2.html
    /// [Linux `fcntl`]: https://man7.org/linux/man-pages/man2/fcntl.2.html
    /// [Linux `mmap`]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn memfd(name: &str, len: usize) -> Result<Region> {
        if name.len() > MAX_MEMFD_NAME_LEN {
            return Err(invalid_name(name, "longer than 249 bytes"));
        }
        if name.contains('\0') {
            return Err(invalid_name(name, "contains a NUL byte"));
        }
        check_len(len)?;
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(os("memfd_create"))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(os("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::SEAL)
            .map_err(os("fcntl"))?;
        let ptr = map_fd(&fd, len)?;
        Ok(Region {
            ptr,
            len,
            backing: Backing::Fd(fd),
        })
    }

    /// Maps the whole of an existing memfd or shared-memory file, read/write.
    ///
    /// The length is the file's size when it is mapped. The region keeps `fd`
    /// open for as long as it lives.
    ///
    /// `fstat(fd)`, then `mmap(NULL, size, PROT_READ | PROT_WRITE,
    /// MAP_SHARED, fd, 0)`.
    ///
    /// # Errors
    ///
    /// [`Error::Layout`] if the file is empty; [`Error::Os`] from `fstat` or
    /// `mmap` (`EACCES` if `fd` is not open read/write, `ENODEV` if it cannot
    /// be mapped, ...).
    ///
    /// # References
    ///  - [Linux `fstat`]
    ///  - [Linux `mmap`]
    ///
    /// [Linux `fstat`]: https://man7.org/linux/man-pages/man2/fstat.2.html
    /// [Linux `mmap`]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn from_fd(fd: OwnedFd) -> Result<Region> {
        let len = file_len(&fd)?;
        let ptr = map_fd(&fd, len)?;
        Ok(Region {
            ptr,
            len,
            backing: Backing::Fd(fd),
        })
    }

    /// Creates the POSIX shared-memory object `name`, sizes it to `len` bytes
    /// and maps it.
    ///
    /// `name` may be given with or without its leading `/` (`"jobs"` and
    /// `"/jobs"` are the same object). The object is created with mode
    /// `0o600` (less the umask) and must not exist yet. The returned region
    /// owns the name: dropping it unlinks the name (mappings elsewhere stay
    /// valid) unless [`keep_name`](Region::keep_name) was called.
    ///
    /// `shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC,
    /// 0600)`, `ftruncate(fd, len)`, then `mmap(NULL, len, PROT_READ |
    /// PROT_WRITE, MAP_SHARED, fd, 0)`. If a later step fails the name is
    /// unlinked again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (before any system call) if `name` is not
    /// `1..=240` bytes after the optional leading `/`, contains `/` or NUL,
    /// or is `.` or `..`; [`Error::Layout`] if `len` is 0; [`Error::Os`]
    /// with `call: "shm_open"` and `errno: EEXIST` if the name exists, or
    /// another errno from `shm_open`, `ftruncate` or `mmap`.
    ///
    /// # References
    ///  - [Linux `shm_open`]
    ///  - [Linux `ftruncate`]
    ///  - [Linux `mmap`]
    ///
    /// [Linux `shm_open`]: https://man7.org/linux/man-pages/man3/shm_open.3.html
    /// [Linux `ftruncate`]: https://man7.org/linux/man-pages/man2/ftruncate.2.html
    /// [Linux `mmap`]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn create_named(name: &str, len: usize) -> Result<Region> {
        let short = name;
        let name = shm_name(name)?;
        check_len(len)?;
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR | no_follow();
        let create = || shm::open(name.as_str(), flags, OWNED_MODE).map_err(os("shm_open"));
        let fd = match create() {
            // A name left behind by a dead creator is taken back, once.
            Err(Error::Os {
                errno: rustix::io::Errno::EXIST,
                ..
            }) if Self::unlink_if_stale(short)? => create()?,
            other => other?,
        };
        let ptr = match rustix::fs::ftruncate(&fd, len as u64)
            .map_err(os("ftruncate"))
            .and_then(|()| map_fd(&fd, len))
        {
            Ok(ptr) => ptr,
            Err(err) => {
                // We created the name a moment ago; take it back. `fd` is
                // closed when it goes out of scope.
                let _ = shm::unlink(name.as_str());
                return Err(err);
            }
        };
        Ok(Region {
            ptr,
            len,
            backing: Backing::Named {
                fd,
                name,
                owns_name: true,
            },
        })
    }

    /// Opens the existing POSIX shared-memory object `name` and maps the
    /// whole of it, read/write.
    ///
    /// The length is the object's size when it is mapped. The region does
    /// not own the name: dropping it leaves the name in place.
    ///
    /// `shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0)`, `fstat(fd)`,
    /// then `mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] as for [`create_named`](Region::create_named);
    /// [`Error::Os`] with `call: "shm_open"` and `errno: ENOENT` if there is
    /// no such object, or another errno from `shm_open`, `fstat` or `mmap`;
    /// [`Error::Layout`] if the object is empty (its creator has not sized
    /// it yet).
    ///
    /// # References
    ///  - [Linux `shm_open`]
    ///  - [Linux `fstat`]
    ///  - [Linux `mmap`]
    ///
    /// [Linux `shm_open`]: https://man7.org/linux/man-pages/man3/shm_open.3.html
    /// [Linux `fstat`]: https://man7.org/linux/man-pages/man2/fstat.2.html
    /// [Linux `mmap`]: https://man7.org/linux/man-pages/man2/mmap.2.html
    pub fn open_named(name: &str) -> Result<Region> {
        let name = shm_name(name)?;
        let flags = shm::OFlags::RDWR | no_follow();
        let fd = shm::open(name.as_str(), flags, Mode::empty()).map_err(os("shm_open"))?;
        let len = file_len(&fd)?;
        let ptr = map_fd(&fd, len)?;
        let region = Region {
            ptr,
            len,
            backing: Backing::Named {
                fd,
                name,
                owns_name: false,
            },
        };
        // A name whose creator died without unlinking it: the object is
        // still ours to use, the name goes (see the module docs).
        if let Backing::Named { name, .. } = &region.backing
            && region.is_stale()
        {
            let _ = shm::unlink(name.as_str());
        }
        Ok(region)
    }

    /// Unlinks the POSIX shared-memory name `name` if it was left behind:
    /// it holds an mproc object whose creating region still owned the name
    /// (never [kept](Region::keep_name)) and whose creator is gone (no such
    /// process, a zombie, or another process with its pid; see
    /// [`owner_gone`](crate::process::owner_gone)). Returns whether it did.
    /// Names that were kept, objects without a readable mproc header, and
    /// names of live creators are left alone.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`]; [`Error::Os`] from `shm_open`, `fstat` or
    /// `mmap` (but not `ENOENT`: a missing name is not stale).
    pub fn unlink_if_stale(name: &str) -> Result<bool> {
        let region = match Self::open_named_plain(name) {
            Ok(region) => region,
            Err(Error::Os {
                errno: rustix::io::Errno::NOENT,
                ..
            }) => return Ok(false),
            Err(error) => return Err(error),
        };
        if !region.is_stale() {
            return Ok(false);
        }
        match shm::unlink(shm_name(name)?.as_str()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(true),
            Err(errno) => Err(os("shm_unlink")(errno)),
        }
    }

    /// `open_named` without the stale check.
    fn open_named_plain(name: &str) -> Result<Region> {
        let name = shm_name(name)?;
        let fd = shm::open(
            name.as_str(),
            shm::OFlags::RDWR | no_follow(),
            Mode::empty(),
        )
        .map_err(os("shm_open"))?;
        let len = file_len(&fd)?;
        let ptr = map_fd(&fd, len)?;
        Ok(Region {
            ptr,
            len,
            backing: Backing::Named {
                fd,
                name,
                owns_name: false,
            },
        })
    }

    /// Whether this named region holds an mproc object, marked as owned by
    /// its creating region, whose creator is gone.
    fn is_stale(&self) -> bool {
        let Backing::Named { fd, .. } = &self.backing else {
            return false;
        };
        let owned = rustix::fs::fstat(fd)
            .is_ok_and(|stat| Mode::from_raw_mode(stat.st_mode).contains(Mode::XUSR));
        if !owned || self.len < size_of::<Header>() {
            return false;
        }
        // SAFETY: the mapping is page aligned and at least a header long
        // (checked), initialized (a mapped file), and every bit pattern is
        // a valid `Header` (all its fields are atomics). Read as is, not
        // through `Header::read`: a creator killed while it was writing the
        // header (version still 0) has written its origin first.
        let header = unsafe { self.ptr.cast::<Header>().as_ref() };
        if header.magic() != mproc_core::layout::MAGIC {
            return false;
        }
        let origin = header.origin();
        let start = Some(origin.start_time as u32).filter(|&start| start != 0);
        origin.pid != 0 && crate::process::owner_gone(origin.pid, start)
    }

    /// Removes the POSIX shared-memory name `name`.
    ///
    /// Existing mappings (and open fds) stay valid; the memory is freed when
    /// the last of them goes.
    ///
    /// `shm_unlink(name)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] as for [`create_named`](Region::create_named);
    /// [`Error::Os`] with `call: "shm_unlink"` (`ENOENT` if there is no such
    /// name).
    ///
    /// # References
    ///  - [Linux]
    ///
    /// [Linux]: https://man7.org/linux/man-pages/man3/shm_unlink.3.html
    pub fn unlink_named(name: &str) -> Result<()> {
        let name = shm_name(name)?;
        shm::unlink(name.as_str()).map_err(os("shm_unlink"))
    }

    /// Stops this region from unlinking its name on drop, so the object
    /// outlives it; somebody must then call [`unlink_named`](Region::unlink_named).
    ///
    /// Does nothing for regions without a name or that do not own theirs.
    pub fn keep_name(&mut self) {
        if let Backing::Named { owns_name, fd, .. } = &mut self.backing {
            if *owns_name {
                // No longer marked as owned by us: a kept name is never
                // taken for one left behind (see the module docs). If this
                // fails the name stays marked, and may be unlinked once we
                // are gone.
                let _ = rustix::fs::fchmod(&*fd, Mode::RUSR | Mode::WUSR);
            }
            *owns_name = false;
        }
    }

    /// The start of the mapping (page aligned).
    #[inline]
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The bytes usable from [`as_ptr`](Region::as_ptr): the length asked
    /// for, or the size of the file when it was mapped.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes (never true: empty regions are
    /// refused).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file descriptor behind a memfd, fd-based or named region; `None`
    /// for an anonymous one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Anonymous => None,
            Backing::Fd(fd) | Backing::Named { fd, .. } => Some(fd.as_fd()),
        }
    }

    /// The name of a named region, with its leading `/` (`"/jobs"`); `None`
    /// for other regions.
    pub fn name(&self) -> Option<&str> {
        match &self.backing {
            Backing::Named { name, .. } => Some(name),
            Backing::Anonymous | Backing::Fd(_) => None,
        }
    }
}

impl Drop for Region {
    /// `munmap(ptr, len)`, then `shm_unlink(name)` if the region owns a
    /// name. Errors are ignored: there is nobody left to tell.
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe the mapping made when the region
        // was created, which nothing else unmaps. Pointers derived from
        // `as_ptr` must not be used past the region's life (the contract of
        // every raw pointer into it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        if let Backing::Named {
            name,
            owns_name: true,
            ..
        } = &self.backing
        {
            let _ = shm::unlink(name.as_str());
        }
    }
}

/// Refuses empty regions (`mmap` would fail with `EINVAL`).
fn check_len(len: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::Layout(LayoutError::TooSmall {
            needed: 1,
            available: 0,
        }));
    }
    Ok(())
}

/// The size of the file behind `fd`, which must not be empty.
///
/// `fstat(fd)`.
fn file_len(fd: &OwnedFd) -> Result<usize> {
    let stat = rustix::fs::fstat(fd).map_err(os("fstat"))?;
    // A size beyond the address space cannot be mapped.
    let len = usize::try_from(stat.st_size).map_err(|_| Error::Os {
        call: "mmap",
        errno: rustix::io::Errno::NOMEM,
    })?;
    check_len(len)?;
    Ok(len)
}

/// Maps the first `len` bytes of `fd` shared and read/write.
///
/// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
fn map_fd(fd: &OwnedFd, len: usize) -> Result<NonNull<u8>> {
    // SAFETY: a null hint lets the kernel choose the address, so no existing
    // memory is replaced.
    let ptr = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(os("mmap"))?;
    mapped(ptr)
}

/// The address a successful `mmap` returned.
fn mapped(ptr: *mut core::ffi::c_void) -> Result<NonNull<u8>> {
    // Without MAP_FIXED the kernel never places a mapping at address 0.
    NonNull::new(ptr.cast()).ok_or(Error::Os {
        call: "mmap",
        errno: rustix::io::Errno::NOMEM,
    })
}

/// `O_NOFOLLOW`, as glibc's `shm_open` passes it: a symlink planted under
/// `/dev/shm` is refused rather than followed.
fn no_follow() -> shm::OFlags {
    shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits())
}

/// Checks a shared-memory name and returns it with its leading `/`.
fn shm_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let refused = if bare.is_empty() {
        Some("it is empty")
    } else if bare.len() > MAX_NAME_LEN {
        Some("longer than 240 bytes")
    } else if bare.contains('/') {
        Some("contains '/' after the leading one")
    } else if bare.contains('\0') {
        Some("contains a NUL byte")
    } else if bare == "." || bare == ".." {
        Some("'.' and '..' are not names")
    } else {
        None
    };
    match refused {
        Some(reason) => Err(invalid_name(name, reason)),
        None => Ok(format!("/{bare}")),
    }
}

/// An [`Error::InvalidName`] for `name`.
fn invalid_name(name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: name.to_owned(),
        reason,
    }
}
