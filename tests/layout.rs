//! Attaching to a region that does not hold what is asked for gives a typed
//! error, never undefined behaviour.

mod common;

use std::os::fd::OwnedFd;

use common::{join, spawn};
use mproc::mproc_core::layout::{LAYOUT_VERSION, MAGIC};
use mproc::mproc_core::{LayoutError, ObjectKind};
use mproc::{
    Array, Barrier, BoundedSemaphore, Condition, Error, Lock, PodQueue, RLock, Region, Semaphore,
    Value,
};

/// A memfd region holding a fresh `PodQueue<u64>` of 8 slots, and a second
/// mapping of the same memory (as another process would have).
fn queue_region() -> (PodQueue<u64>, Region) {
    let size = PodQueue::<u64>::region_size(8).unwrap();
    let region = Region::memfd("layout-test", size).unwrap();
    let fd: OwnedFd = region.fd().unwrap().try_clone_to_owned().unwrap();
    let queue = PodQueue::<u64>::create_in(region, 8).unwrap();
    queue.put(42);
    (queue, Region::from_fd(fd).unwrap())
}

/// Writes `value` at byte `offset` of `region`.
fn poke<T: Copy>(region: &Region, offset: usize, value: T) {
    assert!(offset + size_of::<T>() <= region.len());
    // SAFETY: in bounds (checked), and these tests are the only users of the
    // memory while they corrupt it.
    unsafe {
        region
            .as_ptr()
            .add(offset)
            .cast::<T>()
            .write_unaligned(value)
    };
}

fn layout_error(result: mproc::Result<impl Sized>) -> LayoutError {
    match result {
        Err(Error::Layout(error)) => error,
        Err(other) => panic!("expected a layout error, got {other}"),
        Ok(_) => panic!("expected a layout error, attached instead"),
    }
}

fn second_mapping(region: &Region) -> Region {
    Region::from_fd(region.fd().unwrap().try_clone_to_owned().unwrap()).unwrap()
}

#[test]
fn intact_region_attaches_and_shares() {
    let (queue, other) = queue_region();
    let attached = PodQueue::<u64>::attach(other).unwrap();
    assert_eq!(attached.capacity(), 8);
    assert_eq!(attached.try_get(), Ok(42));
    assert!(queue.is_empty(), "both handles see one queue");
}

#[test]
fn wrong_magic() {
    let (_queue, other) = queue_region();
    poke(&other, 0, 0x1234_5678_u64);
    assert_eq!(
        layout_error(PodQueue::<u64>::attach(other)),
        LayoutError::BadMagic { found: 0x1234_5678 }
    );
}

#[test]
fn wrong_version() {
    let (_queue, other) = queue_region();
    poke(&other, 8, LAYOUT_VERSION + 1);
    assert_eq!(
        layout_error(PodQueue::<u64>::attach(other)),
        LayoutError::UnsupportedVersion {
            found: LAYOUT_VERSION + 1,
            supported: LAYOUT_VERSION
        }
    );
}

#[test]
fn wrong_element_type() {
    let (_queue, other) = queue_region();
    match layout_error(PodQueue::<u32>::attach(other)) {
        LayoutError::TypeMismatch { expected, found } => {
            assert_eq!((expected.size, found.size), (4, 8));
            assert_ne!(expected.name_hash, found.name_hash);
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    // Same size and alignment, another type: the name hash tells them apart.
    let (_queue, other) = queue_region();
    assert!(matches!(
        layout_error(PodQueue::<i64>::attach(other)),
        LayoutError::TypeMismatch { .. }
    ));
}

#[test]
fn wrong_kind() {
    let (_queue, other) = queue_region();
    assert_eq!(
        layout_error(Lock::attach(second_mapping(&other))),
        LayoutError::WrongKind {
            expected: ObjectKind::Mutex,
            found: ObjectKind::MpmcQueue as u32
        }
    );
    assert!(matches!(
        layout_error(Semaphore::attach(other)),
        LayoutError::WrongKind { .. }
    ));
    let array = Array::new(&[1u64, 2, 3]).unwrap();
    let region = Region::memfd("array", Array::<u64>::region_size(3).unwrap()).unwrap();
    let fd = region.fd().unwrap().try_clone_to_owned().unwrap();
    Array::create_in(region, &array.to_vec()).unwrap();
    assert!(matches!(
        layout_error(Value::<u64>::attach(Region::from_fd(fd).unwrap())),
        LayoutError::BadCapacity { capacity: 3, .. }
    ));
}

#[test]
fn wrong_size() {
    // The header claims more bytes than its capacity implies.
    let (_queue, other) = queue_region();
    poke(&other, 16, 1_000_000u64);
    assert!(matches!(
        layout_error(PodQueue::<u64>::attach(other)),
        LayoutError::SizeMismatch {
            recorded: 1_000_000,
            ..
        }
    ));
    // The capacity claims more slots than the region holds.
    let (_queue, other) = queue_region();
    poke(&other, 24, 1_000_000u64);
    assert!(matches!(
        layout_error(PodQueue::<u64>::attach(other)),
        LayoutError::SizeMismatch { .. }
    ));
    // The region is shorter than the object.
    let full = PodQueue::<u64>::region_size(8).unwrap();
    let short = Region::memfd("short", full - 64).unwrap();
    assert!(matches!(
        layout_error(PodQueue::<u64>::create_in(short, 8)),
        LayoutError::TooSmall { .. }
    ));
    let tiny = Region::memfd("tiny", 16).unwrap();
    assert!(matches!(
        layout_error(PodQueue::<u64>::attach(tiny)),
        LayoutError::TooSmall {
            needed: 64,
            available: 16
        }
    ));
}

#[test]
fn zeroed_and_random_regions() {
    let zeroed = Region::anonymous(4096).unwrap();
    assert_eq!(
        layout_error(PodQueue::<u64>::attach(zeroed)),
        LayoutError::NotReady
    );
    // Deterministic noise (xorshift), many times over: always an error.
    let noise = Region::anonymous(4096).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..1000 {
        for offset in (0..4096).step_by(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            poke(&noise, offset, x);
        }
        if round % 2 == 1 {
            // Half the time, a valid magic and version, garbage behind them.
            poke(&noise, 0, MAGIC);
            poke(&noise, 8, LAYOUT_VERSION);
        }
        let mapping = second_mapping_of_anonymous(&noise);
        assert!(PodQueue::<u64>::attach(mapping).is_err());
    }
}

/// Anonymous regions have no fd; copy the bytes into a memfd instead.
fn second_mapping_of_anonymous(region: &Region) -> Region {
    let copy = Region::memfd("noise", region.len()).unwrap();
    // SAFETY: both regions are `len` bytes and private to this test.
    unsafe {
        std::ptr::copy_nonoverlapping(
            region.as_ptr().as_ptr(),
            copy.as_ptr().as_ptr(),
            region.len(),
        )
    };
    copy
}

/// A named region corrupted by one process is refused, with the reason,
/// by another.
#[test]
fn named_region_across_processes() {
    let name = format!("mproc-layout-test-{}", std::process::id());
    let region = Region::create_named(&name, PodQueue::<u64>::region_size(4).unwrap()).unwrap();
    let queue = PodQueue::<u64>::create_in(region, 4).unwrap();
    queue.put(7);
    let mut good = spawn({
        let name = name.clone();
        move || {
            PodQueue::<u64>::attach(Region::open_named(&name).unwrap())
                .map(|q| q.try_get().ok())
                .ok()
        }
    });
    assert_eq!(join(&mut good), Some(Some(7)));
    poke(queue.region(), 0, 0u64);
    poke(queue.region(), 8, 1u32);
    let mut bad = spawn({
        let name = name.clone();
        move || match PodQueue::<u64>::attach(Region::open_named(&name).unwrap()) {
            Err(Error::Layout(error)) => error.to_string(),
            Err(other) => format!("unexpected error: {other}"),
            Ok(_) => "attached".to_owned(),
        }
    });
    assert_eq!(
        join(&mut bad),
        LayoutError::BadMagic { found: 0 }.to_string()
    );
    drop(queue);
    assert!(
        Region::open_named(&name).is_err(),
        "the creator unlinks the name"
    );
}

/// The kinds of the reentrant lock, condition, barrier and bounded
/// semaphore are recorded and read back as themselves.
#[test]
fn sync_kinds_round_trip() {
    for kind in [
        ObjectKind::RLock,
        ObjectKind::Condition,
        ObjectKind::Barrier,
        ObjectKind::BoundedSemaphore,
    ] {
        assert_eq!(ObjectKind::from_raw(kind as u32), Some(kind));
    }
    assert_eq!(
        [
            ObjectKind::RLock,
            ObjectKind::Condition,
            ObjectKind::Barrier,
            ObjectKind::BoundedSemaphore
        ]
        .map(|kind| kind as u32),
        [7, 8, 9, 10]
    );
}

/// A reentrant lock, a condition, a barrier and a bounded semaphore each
/// attach through a second mapping of a memfd region and share their state
/// with the first; each refuses a region of another kind; a barrier or
/// bounded semaphore whose body disagrees with its header is refused as
/// corrupted.
#[test]
fn sync_kinds_attach_share_and_check() {
    let region = Region::memfd("rlock", RLock::region_size()).unwrap();
    let other = second_mapping(&region);
    let lock = RLock::create_in(region).unwrap();
    let attached = RLock::attach(other).unwrap();
    let guard = lock.lock();
    assert_eq!(attached.owner(), Some(std::process::id()));
    drop(
        attached
            .try_lock()
            .expect("the owner relocks through either mapping"),
    );
    assert_eq!(attached.count(), 1);
    drop(guard);
    assert!(!attached.is_locked());
    assert_eq!(
        layout_error(Barrier::attach(second_mapping(lock.region()))),
        LayoutError::WrongKind {
            expected: ObjectKind::Barrier,
            found: ObjectKind::RLock as u32
        }
    );

    let region = Region::memfd("condition", Condition::region_size()).unwrap();
    let other = second_mapping(&region);
    let cond = Condition::create_in(region).unwrap();
    let attached = Condition::attach(other).unwrap();
    let guard = cond.lock();
    assert!(
        attached.try_lock().is_none(),
        "one lock behind both mappings"
    );
    drop(guard);
    assert!(attached.try_lock().is_some());
    assert!(matches!(
        layout_error(RLock::attach(second_mapping(cond.region()))),
        LayoutError::WrongKind { .. }
    ));

    let region = Region::memfd("barrier", Barrier::region_size()).unwrap();
    let other = second_mapping(&region);
    let barrier = Barrier::create_in(region, 4).unwrap();
    let attached = Barrier::attach(other).unwrap();
    assert_eq!(attached.parties(), 4);
    barrier.abort();
    assert!(attached.broken());
    // The body follows the 64-byte header: state (8 bytes), epoch (4),
    // parties (4).
    let corrupt = second_mapping(barrier.region());
    poke(&corrupt, 64 + 12, 5u32);
    assert!(matches!(
        layout_error(Barrier::attach(corrupt)),
        LayoutError::Corrupted { .. }
    ));
    let corrupt = second_mapping(barrier.region());
    poke(&corrupt, 24, 0u64);
    assert!(matches!(
        layout_error(Barrier::attach(corrupt)),
        LayoutError::BadCapacity { capacity: 0, .. }
    ));
    assert!(matches!(
        Barrier::new(0),
        Err(Error::Layout(LayoutError::BadCapacity { capacity: 0, .. }))
    ));

    let region = Region::memfd("bounded", BoundedSemaphore::region_size()).unwrap();
    let other = second_mapping(&region);
    let sem = BoundedSemaphore::create_in(region, 3).unwrap();
    let attached = BoundedSemaphore::attach(other).unwrap();
    assert!(attached.try_acquire());
    assert_eq!((sem.value(), sem.bound()), (2, 3));
    assert!(matches!(
        layout_error(Semaphore::attach(second_mapping(sem.region()))),
        LayoutError::WrongKind { .. }
    ));
    // The body follows the header: count (4 bytes), bound (4).
    let corrupt = second_mapping(sem.region());
    poke(&corrupt, 64 + 4, 7u32);
    assert!(matches!(
        layout_error(BoundedSemaphore::attach(corrupt)),
        LayoutError::Corrupted { .. }
    ));
}

/// A reentrant lock whose count is at its maximum (as a hostile region may
/// claim) refuses its owner another level instead of wrapping, and gives
/// levels back as usual.
#[test]
fn rlock_count_at_max_refuses_another_level() {
    let region = Region::memfd("rlock-max", RLock::region_size()).unwrap();
    let other = second_mapping(&region);
    let lock = RLock::create_in(region).unwrap();
    // The body follows the 64-byte header: mutex word, reserved word, the
    // holder's record (pid and start stamp), then count.
    poke(&other, 64, std::process::id());
    poke(&other, 72, mproc::mproc_os::process::owner_id().pack());
    poke(&other, 80, u32::MAX);
    assert!(lock.is_owned());
    assert!(lock.try_lock().is_none());
    assert!(!lock.try_acquire());
    assert_eq!(lock.count(), u32::MAX);
    lock.release().unwrap();
    assert_eq!(lock.count(), u32::MAX - 1);
    let panicked = std::panic::catch_unwind(|| {
        let _one_more = lock.lock();
        let _too_many = lock.lock();
    });
    assert!(panicked.is_err(), "a level past u32::MAX panics");
    assert_eq!(
        lock.count(),
        u32::MAX - 1,
        "the guard taken gave its level back"
    );
}
