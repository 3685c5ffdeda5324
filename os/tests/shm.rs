//! Shared-memory regions across real processes, exact errnos, and no leaks.
//!
//! The tests of this file run one at a time (see [`serial`]) so that the fd
//! counts of the leak checks are not disturbed by a neighbour. Every name is
//! unique to this process and test, and every test removes what it created
//! under `/dev/shm`.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard};

use mproc_core::LayoutError;
use mproc_core::sync::{AtomicU32, Ordering};
use mproc_os::Error;
use mproc_os::process::{ExitStatus, Fork, current_pid, exit_now, fork};
use mproc_os::shm::Region;
use rustix::io::Errno;

/// Runs the tests of this file one after the other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A shared-memory name no other test or process uses.
fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("mproc-os-test-{}-{n}-{tag}", current_pid())
}

/// Number of open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether `/dev/shm` holds `name`.
fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Word `index` of `region` as an atomic.
fn word(region: &Region, index: usize) -> &AtomicU32 {
    assert!((index + 1) * 4 <= region.len());
    // SAFETY: in bounds (checked), 4-aligned (the mapping is page aligned),
    // initialized, alive as long as `region`; every bit pattern is a valid
    // `AtomicU32` and all accesses to it are atomic.
    unsafe { region.as_ptr().cast::<AtomicU32>().add(index).as_ref() }
}

/// The `errno` and call of an `Error::Os`.
fn os_error(err: Error) -> (&'static str, Errno) {
    match err {
        Error::Os { call, errno } => (call, errno),
        other => panic!("expected an OS error, got {other:?}"),
    }
}

fn assert_invalid_name(result: Result<impl std::fmt::Debug, Error>) {
    match result {
        Err(Error::InvalidName { .. }) => {}
        other => panic!("expected InvalidName, got {other:?}"),
    }
}

fn assert_empty_refused(result: Result<Region, Error>) {
    match result {
        Err(Error::Layout(LayoutError::TooSmall {
            needed: 1,
            available: 0,
        })) => {}
        other => panic!("expected TooSmall, got {other:?}"),
    }
}

#[test]
fn region_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Region>();
}

#[test]
fn anonymous_region_is_shared_with_a_forked_child() {
    let _serial = serial();
    let region = Region::anonymous(10_000).unwrap();
    assert_eq!(region.len(), 10_000);
    assert!(!region.is_empty());
    assert!(region.fd().is_none());
    assert!(region.name().is_none());
    assert_eq!(word(&region, 2499).load(Ordering::Relaxed), 0, "zeroed");
    // SAFETY: the child only uses atomics and `exit_now`.
    let mut child = match unsafe { fork() }.unwrap() {
        Fork::Child => {
            word(&region, 0).store(0xdead_beef, Ordering::Release);
            word(&region, 2499).store(7, Ordering::Release);
            exit_now(0)
        }
        Fork::Parent(child) => child,
    };
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(word(&region, 0).load(Ordering::Acquire), 0xdead_beef);
    assert_eq!(word(&region, 2499).load(Ordering::Acquire), 7);
}

#[test]
fn memfd_region_is_shared_through_its_fd() {
    let _serial = serial();
    let region = Region::memfd("mproc-test", 4096).unwrap();
    assert_eq!(region.len(), 4096);
    assert!(region.name().is_none());
    let fd = region.fd().unwrap();
    let dup: OwnedFd = rustix::io::fcntl_dupfd_cloexec(fd, 0).unwrap();
    // SAFETY: the child maps the fd (system calls, no allocation), uses
    // atomics and `exit_now`.
    let mut child = match unsafe { fork() }.unwrap() {
        Fork::Child => {
            let Ok(mine) = Region::from_fd(dup) else {
                exit_now(1)
            };
            if mine.len() != 4096 {
                exit_now(2);
            }
            word(&mine, 1).store(0x1234_5678, Ordering::Release);
            exit_now(0)
        }
        Fork::Parent(child) => {
            drop(dup);
            child
        }
    };
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(word(&region, 1).load(Ordering::Acquire), 0x1234_5678);

    // A second mapping in this process sees the same memory.
    let dup = rustix::io::fcntl_dupfd_cloexec(region.fd().unwrap(), 0).unwrap();
    let again = Region::from_fd(dup).unwrap();
    assert_ne!(again.as_ptr(), region.as_ptr());
    assert_eq!(word(&again, 1).load(Ordering::Acquire), 0x1234_5678);
    word(&again, 3).store(99, Ordering::Release);
    assert_eq!(word(&region, 3).load(Ordering::Acquire), 99);
}

#[test]
fn memfd_cannot_be_shrunk() {
    let _serial = serial();
    let region = Region::memfd("mproc-test", 8192).unwrap();
    let err = rustix::fs::ftruncate(region.fd().unwrap(), 100).unwrap_err();
    assert_eq!(err, Errno::PERM);
}

#[test]
fn named_region_is_shared_by_name() {
    let _serial = serial();
    let name = unique_name("shared");
    let region = Region::create_named(&name, 4096).unwrap();
    assert_eq!(region.name(), Some(format!("/{name}").as_str()));
    assert!(region.fd().is_some());
    assert!(shm_exists(&name));
    let slash_name = format!("/{name}");
    // SAFETY: the child opens the region (glibc's malloc is usable after
    // fork, and the other tests of this file are parked on `serial`), uses
    // atomics and `exit_now`. It never drops the inherited `region`, which
    // would unlink the name.
    let mut child = match unsafe { fork() }.unwrap() {
        Fork::Child => {
            let Ok(mine) = Region::open_named(&slash_name) else {
                exit_now(1)
            };
            if mine.len() != 4096 {
                exit_now(2);
            }
            word(&mine, 0).store(31337, Ordering::Release);
            exit_now(0)
        }
        Fork::Parent(child) => child,
    };
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(word(&region, 0).load(Ordering::Acquire), 31337);

    // Both spellings name the same object.
    let opened = Region::open_named(&name).unwrap();
    assert_eq!(opened.name(), Some(slash_name.as_str()));
    assert_eq!(word(&opened, 0).load(Ordering::Acquire), 31337);
    drop(opened);
    assert!(shm_exists(&name), "an opener does not own the name");
    drop(region);
    assert!(!shm_exists(&name), "the creator unlinks the name");
}

#[test]
fn create_named_twice_is_eexist() {
    let _serial = serial();
    let name = unique_name("twice");
    let first = Region::create_named(&name, 4096).unwrap();
    let err = Region::create_named(&name, 4096).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EXIST));
    let message = err.to_string();
    assert!(message.starts_with("shm_open failed: "), "{message}");
    assert!(message.contains("exists"), "{message}");
    assert_eq!(os_error(err), ("shm_open", Errno::EXIST));
    let err = Region::create_named(&format!("/{name}"), 4096).unwrap_err();
    assert_eq!(os_error(err), ("shm_open", Errno::EXIST));
    drop(first);
    assert!(!shm_exists(&name));
}

#[test]
fn open_named_of_a_missing_name_is_enoent() {
    let _serial = serial();
    let name = unique_name("missing");
    let err = Region::open_named(&name).unwrap_err();
    assert_eq!(os_error(err), ("shm_open", Errno::NOENT));
    let err = Region::unlink_named(&name).unwrap_err();
    assert_eq!(os_error(err), ("shm_unlink", Errno::NOENT));
}

#[test]
fn dropping_the_creator_unlinks_unless_kept() {
    let _serial = serial();
    let name = unique_name("drop");
    drop(Region::create_named(&name, 100).unwrap());
    let err = Region::open_named(&name).unwrap_err();
    assert_eq!(os_error(err), ("shm_open", Errno::NOENT));

    let name = unique_name("keep");
    let mut region = Region::create_named(&name, 100).unwrap();
    word(&region, 0).store(5, Ordering::Relaxed);
    region.keep_name();
    drop(region);
    let opened = Region::open_named(&name).unwrap();
    // The file keeps the size asked for, not a whole page.
    assert_eq!(opened.len(), 100);
    assert_eq!(word(&opened, 0).load(Ordering::Relaxed), 5);
    Region::unlink_named(&name).unwrap();
    assert!(!shm_exists(&name));
    // The mapping outlives the name.
    word(&opened, 0).store(6, Ordering::Relaxed);
    assert_eq!(word(&opened, 0).load(Ordering::Relaxed), 6);
    drop(opened);
    let err = Region::open_named(&name).unwrap_err();
    assert_eq!(os_error(err), ("shm_open", Errno::NOENT));
}

#[test]
fn unlinked_creator_drops_cleanly() {
    let _serial = serial();
    let name = unique_name("unlinked");
    let region = Region::create_named(&name, 4096).unwrap();
    Region::unlink_named(&name).unwrap();
    word(&region, 0).store(1, Ordering::Relaxed);
    // Its own unlink on drop finds nothing; that is not an error.
    drop(region);
    assert!(!shm_exists(&name));
}

#[test]
fn invalid_names_are_refused() {
    let _serial = serial();
    let too_long = "x".repeat(241);
    let slash_too_long = format!("/{too_long}");
    let bad = [
        "",
        "/",
        "a/b",
        "/a/b",
        "//a",
        ".",
        "..",
        "/.",
        "/..",
        "a\0b",
        too_long.as_str(),
        slash_too_long.as_str(),
    ];
    for name in bad {
        assert_invalid_name(Region::create_named(name, 4096));
        assert_invalid_name(Region::open_named(name));
        assert_invalid_name(Region::unlink_named(name));
    }
    // The error names the name.
    let err = Region::open_named("a/b").unwrap_err();
    assert!(err.to_string().contains("\"a/b\""), "{err}");

    // 240 bytes is fine, with or without the slash.
    let mut longest = unique_name("long");
    while longest.len() < 240 {
        longest.push('y');
    }
    drop(Region::create_named(&longest, 10).unwrap());
    drop(Region::create_named(&format!("/{longest}"), 10).unwrap());
    assert!(!shm_exists(&longest));

    assert_invalid_name(Region::memfd("a\0b", 4096));
    assert_invalid_name(Region::memfd(&"m".repeat(250), 4096));
    drop(Region::memfd("", 4096).unwrap());
    drop(Region::memfd("slashes/are/fine", 4096).unwrap());
}

#[test]
fn empty_regions_are_refused() {
    let _serial = serial();
    assert_empty_refused(Region::anonymous(0));
    let err = Region::anonymous(0).unwrap_err();
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.to_string().contains("needs 1"), "{err}");
    assert_empty_refused(Region::memfd("empty", 0));
    let name = unique_name("empty");
    assert_empty_refused(Region::create_named(&name, 0));
    assert!(!shm_exists(&name));
    let empty = rustix::fs::memfd_create("empty", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    assert_empty_refused(Region::from_fd(empty));
}

#[test]
fn no_fd_or_name_is_left_behind() {
    let _serial = serial();
    let before = open_fds();

    for _ in 0..20 {
        drop(Region::anonymous(4096).unwrap());
        drop(Region::memfd("leak", 4096).unwrap());
        let name = unique_name("leak");
        let region = Region::create_named(&name, 4096).unwrap();
        drop(Region::open_named(&name).unwrap());
        let dup = rustix::io::fcntl_dupfd_cloexec(region.fd().unwrap(), 0).unwrap();
        drop(Region::from_fd(dup).unwrap());
        drop(region);
        assert!(!shm_exists(&name));
    }
    assert_eq!(open_fds(), before, "after successful calls");

    // Failing calls, at every step.
    let name = unique_name("exists");
    let existing = Region::create_named(&name, 4096).unwrap();
    let with_existing = open_fds();
    assert!(Region::create_named(&name, 4096).is_err());
    assert!(Region::open_named(&unique_name("missing")).is_err());
    assert!(Region::unlink_named(&unique_name("missing")).is_err());
    assert!(Region::create_named("bad/name", 4096).is_err());
    assert!(Region::memfd("empty", 0).is_err());
    let empty = rustix::fs::memfd_create("empty", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    assert!(Region::from_fd(empty).is_err());
    // A read-only fd cannot be mapped read/write: mmap fails after fstat.
    let read_only = rustix::fs::open(
        format!("/dev/shm/{name}").as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    assert_eq!(
        os_error(Region::from_fd(read_only).unwrap_err()),
        ("mmap", Errno::ACCESS)
    );
    // Larger than the address space: ftruncate succeeds, mmap fails.
    const HUGE: usize = 1 << 50;
    assert_eq!(os_error(Region::anonymous(HUGE).unwrap_err()).0, "mmap");
    assert_eq!(os_error(Region::memfd("huge", HUGE).unwrap_err()).0, "mmap");
    let huge_name = unique_name("huge");
    assert_eq!(
        os_error(Region::create_named(&huge_name, HUGE).unwrap_err()).0,
        "mmap"
    );
    assert!(
        !shm_exists(&huge_name),
        "a failed create takes its name back"
    );
    // Too large for a file: ftruncate fails.
    let too_big_name = unique_name("too-big");
    assert_eq!(
        os_error(Region::create_named(&too_big_name, usize::MAX).unwrap_err()).0,
        "ftruncate"
    );
    assert!(!shm_exists(&too_big_name));
    assert_eq!(
        os_error(Region::memfd("too-big", usize::MAX).unwrap_err()).0,
        "ftruncate"
    );
    assert_eq!(open_fds(), with_existing, "after failing calls");

    drop(existing);
    assert!(!shm_exists(&name));
    assert_eq!(open_fds(), before);
}
