//! `SharedMemory` across processes: a block created here is opened by name
//! in a `Spawn` child (a fresh program that inherited nothing) and in
//! forked children, bytes go both ways; an opener's drop or exit never
//! unlinks, the creator's drop does unless the block is kept, an unlink
//! leaves a block made again under the same name alone; every error case;
//! and, when `python3` is installed, Python's `SharedMemory` opens a block
//! made here. Every test checks that it leaves nothing in `/dev/shm`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::WATCHDOG;
use mproc::{OutOfRange, Process, SharedMemory, SharedMemoryError, StartMethod};

mproc::enable_test_support!();

/// A name for this test process and `what`, so that tests running side by
/// side (and other test runs) never share a block.
fn name(what: &str) -> String {
    format!("mproc-test-{}-{what}", std::process::id())
}

/// Whether block `name` is in `/dev/shm`.
fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Run in a `Spawn` child: opens block `name`, reads `len` bytes at 0,
/// writes them back reversed after them, and returns what it read.
fn open_read_write_back((name, len): (String, usize)) -> Vec<u8> {
    let block = SharedMemory::open(&name).expect("open by name in the child");
    assert!(!block.is_creator());
    let mut got = vec![0; len];
    block.read(0, &mut got).unwrap();
    let reversed: Vec<u8> = got.iter().rev().copied().collect();
    block.write(len, &reversed).unwrap();
    got
}

/// A `Spawn` child, which shares nothing with the parent but the name,
/// opens the block, reads what the parent wrote and writes back; its exit
/// leaves the block in place.
#[test]
fn spawned_child_opens_by_name_and_writes_back() {
    let name = name("spawn");
    let block = SharedMemory::create(&name, 4096).unwrap();
    block.write(0, b"from the parent").unwrap();
    let mut child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(open_read_write_back, (name.clone(), 15))
        .expect("spawn a child");
    assert_eq!(child.join_timeout(WATCHDOG).unwrap(), b"from the parent");
    let mut back = [0; 15];
    block.read(15, &mut back).unwrap();
    assert_eq!(&back, b"tnerap eht morf");
    // The child's handle was an opener: its drop and exit left the name.
    assert!(exists(&name));
    SharedMemory::open(&name).unwrap();
    drop(block);
    assert!(!exists(&name));
}

/// A forked child opens by name, writes and drops its handle: neither its
/// drop nor its exit unlinks the block, and a child killed while holding
/// it open does not either.
#[test]
fn openers_never_unlink() {
    let name = name("fork");
    let creator = SharedMemory::create(&name, 64).unwrap();
    let mut opener = {
        let name = name.clone();
        common::spawn(move || {
            let block = SharedMemory::open(&name).unwrap();
            block.write(0, &[1, 2, 3]).unwrap();
            drop(block);
            SharedMemory::open(&name).is_ok()
        })
    };
    assert!(common::join(&mut opener), "the child's own drop unlinked");
    assert!(exists(&name));
    let mut got = [0; 3];
    creator.read(0, &mut got).unwrap();
    assert_eq!(got, [1, 2, 3]);

    // Killed while it holds the block open.
    let parked = {
        let name = name.clone();
        common::spawn(move || {
            let _block = SharedMemory::open(&name).unwrap();
            std::thread::sleep(WATCHDOG);
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    parked.kill().unwrap();
    drop(parked);
    assert!(exists(&name));
    drop(creator);
    assert!(!exists(&name));
}

/// A copy of the creator's handle dropped in a forked child does not
/// unlink: only the creating process does. (The parent wraps its handle
/// in `ManuallyDrop` so that giving it to the child does not drop it here;
/// the parent's mapping is leaked, which a test process can afford.)
#[test]
fn creator_handle_dropped_in_a_forked_child_does_not_unlink() {
    let name = name("moved-creator");
    let creator = std::mem::ManuallyDrop::new(SharedMemory::create(&name, 16).unwrap());
    let mut child = common::spawn(move || {
        let creator = std::mem::ManuallyDrop::into_inner(creator);
        assert!(creator.is_creator());
        creator.write(0, b"child").unwrap();
        drop(creator);
    });
    common::join(&mut child);
    assert!(exists(&name));
    let block = SharedMemory::open(&name).unwrap();
    let mut got = [0; 5];
    block.read(0, &mut got).unwrap();
    assert_eq!(&got, b"child");
    block.unlink().unwrap();
    assert!(!exists(&name));
}

/// The creator's drop unlinks; after `keep` it does not, and the block
/// outlives every handle until `unlink_name`.
#[test]
fn creator_drop_unlinks_unless_kept() {
    let name = name("drop");
    let block = SharedMemory::create(&name, 10).unwrap();
    let opener = SharedMemory::open(&name).unwrap();
    drop(block);
    assert!(!exists(&name));
    assert!(matches!(
        SharedMemory::open(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
    // The opener's mapping is still valid.
    opener.write(0, b"still").unwrap();
    drop(opener);

    let mut block = SharedMemory::create(&name, 10).unwrap();
    block.write(0, b"kept").unwrap();
    block.keep();
    drop(block);
    assert!(exists(&name));
    let again = SharedMemory::open(&name).unwrap();
    let mut got = [0; 4];
    again.read(0, &mut got).unwrap();
    assert_eq!(&got, b"kept");
    drop(again);
    SharedMemory::unlink_name(&name).unwrap();
    assert!(!exists(&name));

    let unique = SharedMemory::create_unique(1).unwrap();
    let unique_name = unique.name().to_owned();
    assert!(exists(&unique_name));
    drop(unique);
    assert!(!exists(&unique_name));
}

/// After `unlink` nobody can open the block, mappings keep working, a
/// second unlink reports the name gone, and the creator's drop unlinks
/// nothing more.
#[test]
fn unlink_then_open_fails() {
    let name = name("unlink");
    let block = SharedMemory::create(&name, 8).unwrap();
    let opener = SharedMemory::open(&name).unwrap();
    opener.unlink().unwrap();
    assert!(!exists(&name));
    assert!(matches!(
        SharedMemory::open(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
    block.write(0, b"mapped").unwrap();
    let mut got = [0; 6];
    opener.read(0, &mut got).unwrap();
    assert_eq!(&got, b"mapped");
    assert!(matches!(
        block.unlink(),
        Err(SharedMemoryError::NotFound { .. })
    ));
    drop(block);
    drop(opener);
}

/// A block unlinked behind the creator's back and made again under the
/// same name: neither the old creator's drop nor an old opener's `unlink`
/// removes the new block.
#[test]
fn unlink_leaves_a_new_block_of_the_same_name_alone() {
    let name = name("replaced");
    let old = SharedMemory::create(&name, 8).unwrap();
    let old_opener = SharedMemory::open(&name).unwrap();
    SharedMemory::unlink_name(&name).unwrap();
    let new = SharedMemory::create(&name, 8).unwrap();
    new.write(0, b"new").unwrap();
    assert!(matches!(
        old_opener.unlink(),
        Err(SharedMemoryError::Replaced { .. })
    ));
    drop(old);
    drop(old_opener);
    let seen = SharedMemory::open(&name).unwrap();
    let mut got = [0; 3];
    seen.read(0, &mut got).unwrap();
    assert_eq!(&got, b"new");
    drop(seen);
    drop(new);
    assert!(!exists(&name));
}

/// Every bad input gets its typed error, and nothing is left behind.
#[test]
fn errors() {
    let too_long = "x".repeat(241);
    for bad in [
        "",
        "a/b",
        "/leading",
        "trailing/",
        ".",
        "..",
        "nul\0byte",
        &too_long,
    ] {
        assert!(
            matches!(
                SharedMemory::create(bad, 10),
                Err(SharedMemoryError::InvalidName { .. })
            ),
            "create {bad:?}"
        );
        assert!(
            matches!(
                SharedMemory::open(bad),
                Err(SharedMemoryError::InvalidName { .. })
            ),
            "open {bad:?}"
        );
        assert!(
            matches!(
                SharedMemory::unlink_name(bad),
                Err(SharedMemoryError::InvalidName { .. })
            ),
            "unlink {bad:?}"
        );
    }
    // The longest name is fine.
    let longest: String = name("long")
        .chars()
        .chain(std::iter::repeat('y'))
        .take(240)
        .collect();
    drop(SharedMemory::create(&longest, 1).unwrap());
    assert!(!exists(&longest));

    let name = name("errors");
    assert!(matches!(
        SharedMemory::create(&name, 0),
        Err(SharedMemoryError::ZeroSize)
    ));
    assert!(matches!(
        SharedMemory::create_unique(0),
        Err(SharedMemoryError::ZeroSize)
    ));
    assert!(!exists(&name));
    assert!(matches!(
        SharedMemory::open(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
    assert!(matches!(
        SharedMemory::unlink_name(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));

    // No clobbering: the existing block keeps its size and bytes.
    let block = SharedMemory::create(&name, 100).unwrap();
    block.write(0, b"mine").unwrap();
    match SharedMemory::create(&name, 5000) {
        Err(SharedMemoryError::AlreadyExists { name: taken }) => assert_eq!(taken, name),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let seen = SharedMemory::open(&name).unwrap();
    assert_eq!(seen.size(), 100);
    let mut got = [0; 4];
    seen.read(0, &mut got).unwrap();
    assert_eq!(&got, b"mine");

    // Out of range: nothing is copied either way.
    assert_eq!(block.size(), 100);
    let mut out = [7; 10];
    assert_eq!(
        block.read(95, &mut out),
        Err(OutOfRange {
            offset: 95,
            len: 10,
            size: 100
        })
    );
    assert_eq!(out, [7; 10]);
    assert!(block.write(100, &[1]).is_err());
    assert!(block.write(usize::MAX, &[1, 2]).is_err());
    assert!(block.read(usize::MAX, &mut []).is_err());
    // An empty range at the end is inside.
    block.write(100, &[]).unwrap();
    block.read(90, &mut out).unwrap();
    let errors = [
        SharedMemoryError::ZeroSize.to_string(),
        OutOfRange {
            offset: 1,
            len: 2,
            size: 2,
        }
        .to_string(),
    ];
    assert!(errors.iter().all(|message| !message.is_empty()));
    drop(seen);
    drop(block);
    assert!(!exists(&name));
}

/// Python's `SharedMemory(name=...)` opens a block made here, reads what
/// was written and writes back (skipped, with a note, without `python3`).
#[test]
fn python_opens_a_block_made_here() {
    let name = name("python");
    let block = SharedMemory::create(&name, 64).unwrap();
    block.write(0, b"from rust").unwrap();
    // Python 3.8 to 3.12 register a block an opener maps with their
    // resource tracker, which unlinks it when the opener exits; the script
    // takes it back out so that the block stays the creator's (mproc never
    // unlinks a block for an opener).
    let script = format!(
        "from multiprocessing import shared_memory, resource_tracker\n\
         m = shared_memory.SharedMemory(name={name:?})\n\
         try:\n    resource_tracker.unregister(m._name, 'shared_memory')\n\
         except Exception:\n    pass\n\
         print(bytes(m.buf[:9]).decode())\n\
         m.buf[9:12] = b'py!'\n\
         m.close()\n"
    );
    let output = match std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            println!("python3 not runnable ({error}): skipping the interop check");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("No module named") {
        println!("python3 has no multiprocessing.shared_memory: skipping ({stderr})");
        return;
    }
    assert!(output.status.success(), "python failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "from rust");
    let mut back = [0; 3];
    block.read(9, &mut back).unwrap();
    assert_eq!(&back, b"py!");
    assert!(exists(&name), "python's exit unlinked the block");
    drop(block);
    assert!(!exists(&name));
}
