//! Loom models of the frame ring. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mproc-core --release --test loom_frames`.
#![cfg(loom)]

mod loom_support;

use loom::sync::Arc;
use loom::thread;
use loom_support::{Mem, id, model, origin};
use mproc_core::TypeFingerprint;
use mproc_core::frames::{BeginReadError, Cut, FrameRing, ReadError};
use mproc_core::model::{MayTimeOut, ModelWait};

struct Shared {
    mem: Mem,
    w: ModelWait,
}

impl Shared {
    fn new(capacity: u64, max_messages: u32) -> Arc<Self> {
        Self::with_wait(capacity, max_messages, ModelWait::new())
    }

    /// A ring whose owners may die ([`ModelWait::with_deaths`]).
    fn with_deaths(capacity: u64, max_messages: u32) -> Arc<Self> {
        Self::with_wait(capacity, max_messages, ModelWait::with_deaths())
    }

    fn with_wait(capacity: u64, max_messages: u32, w: ModelWait) -> Arc<Self> {
        let mem = Mem::new(FrameRing::layout(capacity).unwrap());
        // SAFETY: `mem` is zeroed, aligned for the layout, and lives as long
        // as `Shared`.
        unsafe {
            FrameRing::create(
                mem.ptr(),
                mem.len(),
                capacity,
                max_messages,
                TypeFingerprint::of::<u8>(),
                origin(),
            )
        }
        .unwrap();
        Arc::new(Self { mem, w })
    }

    fn ring(&self) -> FrameRing {
        // SAFETY: created in `new` in memory that `self` owns.
        unsafe { FrameRing::attach(self.mem.ptr(), self.mem.len(), TypeFingerprint::of::<u8>()) }
            .unwrap()
    }

    /// Writes one whole frame, waiting as long as it takes.
    fn send(&self, owner: u32, bytes: &[u8]) {
        let ring = self.ring();
        let mut writer = ring
            .begin_write(&self.w, id(owner), bytes.len() as u64, None)
            .unwrap();
        writer.write(bytes, None).unwrap();
        writer.finish().unwrap();
    }

    /// A thread that writes `long` and then `short`, as owner 1.
    fn long_then_short(
        shared: &Arc<Self>,
        long: &[u8],
        short: &'static [u8],
    ) -> thread::JoinHandle<()> {
        let (shared, long) = (shared.clone(), long.to_vec());
        thread::spawn(move || {
            shared.send(1, &long);
            shared.send(1, short);
        })
    }

    /// Reads one frame, waiting as long as it takes.
    fn recv(&self, owner: u32) -> Result<Vec<u8>, Cut> {
        let ring = self.ring();
        let mut reader = ring.begin_read(&self.w, id(owner), None).unwrap();
        let mut out = vec![0; reader.len() as usize];
        let read = reader.read(&mut out);
        let finished = reader.finish();
        read.and(finished).map(|()| out)
    }
}

/// A frame longer than the ring streams through it, and the next frame
/// follows it intact.
#[test]
fn frame_longer_than_ring() {
    model(|| {
        let shared = Shared::new(16, 4);
        let long: Vec<u8> = (0..20).collect();
        let writer = Shared::long_then_short(&shared, &long, &[7, 8]);
        assert_eq!(shared.recv(2).unwrap(), long);
        assert_eq!(shared.recv(2).unwrap(), [7, 8]);
        writer.join().unwrap();
        assert!(shared.ring().is_empty());
    });
}

/// Two writers: each frame arrives whole, never interleaved with the
/// other.
#[test]
fn two_writers_do_not_interleave() {
    model(|| {
        let shared = Shared::new(16, 4);
        let writers: Vec<_> = (1..=2u8)
            .map(|n| {
                let shared = shared.clone();
                thread::spawn(move || shared.send(u32::from(n), &[n; 6]))
            })
            .collect();
        let mut got = vec![shared.recv(3).unwrap(), shared.recv(3).unwrap()];
        for writer in writers {
            writer.join().unwrap();
        }
        got.sort();
        assert_eq!(got, [vec![1; 6], vec![2; 6]]);
    });
}

/// With room for one message, the second waits for the first to be read.
#[test]
fn message_bound() {
    model(|| {
        let shared = Shared::new(16, 1);
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.send(1, &[1]);
                shared.send(1, &[2]);
            })
        };
        assert_eq!(shared.recv(2).unwrap(), [1]);
        assert_eq!(shared.recv(2).unwrap(), [2]);
        writer.join().unwrap();
    });
}

/// A writer whose deadline passes in the middle of a long frame cuts it:
/// the reader gets the whole frame or `Cut`, and the next frame intact.
#[test]
fn cut_frame() {
    model(|| {
        let shared = Shared::new(16, 4);
        let long: Vec<u8> = (0..24).collect();
        let writer = {
            let (shared, long) = (shared.clone(), long.clone());
            thread::spawn(move || {
                let ring = shared.ring();
                let whole = {
                    let mut writer = ring
                        .begin_write(&shared.w, id(1), 24, Some(MayTimeOut))
                        .unwrap();
                    writer.write(&long, Some(MayTimeOut)).is_ok() && writer.finish().is_ok()
                };
                shared.send(1, &[9]);
                whole
            })
        };
        let whole = match shared.recv(2) {
            Ok(first) => {
                assert_eq!(first, long);
                true
            }
            Err(Cut) => false,
        };
        assert_eq!(shared.recv(2).unwrap(), [9]);
        assert_eq!(writer.join().unwrap(), whole);
        assert!(shared.ring().is_empty());
    });
}

/// Closing wakes a reader waiting for a frame; what was written before the
/// close is read first.
#[test]
fn close_drains_then_fails() {
    model(|| {
        let shared = Shared::new(16, 4);
        let closer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.send(1, &[5]);
                shared.ring().close(&shared.w);
            })
        };
        assert_eq!(shared.recv(2).unwrap(), [5]);
        let ring = shared.ring();
        assert_eq!(
            ring.begin_read(&shared.w, id(2), None).unwrap_err(),
            BeginReadError::Closed
        );
        closer.join().unwrap();
        assert!(
            ring.begin_write(&shared.w, id(2), 1, None).is_err(),
            "a closed ring takes no frame"
        );
    });
}

/// A reader that times out leaves the ring consistent: the frame it missed
/// is read by the next attempt.
#[test]
fn timed_read() {
    model(|| {
        let shared = Shared::new(16, 4);
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || shared.send(1, &[3, 4]))
        };
        let ring = shared.ring();
        let got = match ring.begin_read(&shared.w, id(2), Some(MayTimeOut)) {
            Ok(mut reader) => {
                let mut out = vec![0; reader.len() as usize];
                reader.read(&mut out).unwrap();
                reader.finish().unwrap();
                out
            }
            Err(BeginReadError::Empty) => shared.recv(2).unwrap(),
            Err(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, [3, 4]);
        writer.join().unwrap();
    });
}

/// A reader that waits with a deadline in the middle of a frame longer
/// than the ring, and goes on after every timeout, reads the frame intact;
/// the frame after it follows.
#[test]
fn timed_read_in_a_frame() {
    model(|| {
        let shared = Shared::new(16, 4);
        let long: Vec<u8> = (0..24).collect();
        let writer = Shared::long_then_short(&shared, &long, &[9]);
        let ring = shared.ring();
        let mut reader = ring.begin_read(&shared.w, id(2), None).unwrap();
        let mut out = vec![0; reader.len() as usize];
        loop {
            let done = out.len() - reader.remaining() as usize;
            match reader.read_until(&mut out[done..], Some(MayTimeOut)) {
                Ok(()) => break,
                Err(ReadError::TimedOut) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        reader.finish().unwrap();
        assert_eq!(out, long);
        assert_eq!(shared.recv(2).unwrap(), [9]);
        writer.join().unwrap();
        assert!(shared.ring().is_empty());
    });
}

/// A frame left unread is read whole by the next reader, and the one after
/// it follows.
#[test]
fn unread_leaves_the_frame() {
    model(|| {
        let shared = Shared::new(16, 4);
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.send(1, &[1, 2]);
                shared.send(1, &[3]);
            })
        };
        let ring = shared.ring();
        let peeked = ring.begin_read(&shared.w, id(2), None).unwrap();
        assert_eq!(peeked.len(), 2);
        peeked.unread();
        assert_eq!(shared.recv(2).unwrap(), [1, 2]);
        assert_eq!(shared.recv(2).unwrap(), [3]);
        writer.join().unwrap();
        assert!(shared.ring().is_empty());
    });
}

/// Waking every sleeper while a reader waits for a frame, and a writer
/// for space, loses nothing: both frames arrive in order.
#[test]
fn wake_all_is_harmless() {
    model(|| {
        let shared = Shared::new(16, 1);
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.send(1, &[1]);
                shared.send(1, &[2]);
            })
        };
        let waker = {
            let shared = shared.clone();
            thread::spawn(move || shared.ring().wake_all(&shared.w))
        };
        assert_eq!(shared.recv(2).unwrap(), [1]);
        assert_eq!(shared.recv(2).unwrap(), [2]);
        writer.join().unwrap();
        waker.join().unwrap();
    });
}

/// A writer dies in the middle of a frame it published in part, and no
/// other writer comes: the reader, waiting in the frame, finds the writer
/// gone, takes its lock over and cuts the frame. The ring is empty and
/// whole afterwards.
#[test]
fn dead_writer_mid_frame_is_cut_for_the_reader() {
    model(|| {
        let shared = Shared::with_deaths(16, 4);
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                let mut writer = ring.begin_write(&shared.w, id(1), 8, None).unwrap();
                // A quarter of the ring: published as it is written.
                writer.write(&[1, 2, 3, 4], None).unwrap();
                // Killed here.
                std::mem::forget(writer);
                shared.w.die(1);
            })
        };
        assert_eq!(shared.recv(2), Err(Cut));
        writer.join().unwrap();
        let ring = shared.ring();
        assert!(ring.is_empty());
        shared.send(3, &[7]);
        assert_eq!(shared.recv(2).unwrap(), [7]);
    });
}

/// A writer dies after it began a frame and before it published a byte of
/// it, in a ring that holds one message: the next writer takes its lock
/// over and takes the frame back out of the count, so its own frame fits
/// (a deadlock, which loom reports, otherwise).
#[test]
fn dead_writer_before_publishing_is_forgotten() {
    model(|| {
        let shared = Shared::with_deaths(16, 1);
        let dying = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                let writer = ring.begin_write(&shared.w, id(1), 2, None).unwrap();
                // Killed here.
                std::mem::forget(writer);
                shared.w.die(1);
            })
        };
        let writer = {
            let shared = shared.clone();
            thread::spawn(move || shared.send(3, &[5, 6]))
        };
        assert_eq!(shared.recv(2).unwrap(), [5, 6]);
        dying.join().unwrap();
        writer.join().unwrap();
        // If the dead writer began after writer 3, its frame counts until
        // the next writer repairs the ring.
        shared.send(4, &[7]);
        assert_eq!(shared.recv(2).unwrap(), [7]);
        assert!(shared.ring().is_empty());
    });
}

/// A reader dies in a frame it had released part of: the next reader
/// skips the rest of it, and the next frame arrives intact.
#[test]
fn dead_reader_mid_frame_is_skipped() {
    // A quarter of a ring of 16 is 4 bytes: reading the length and 2 bytes
    // releases them.
    assert!(!dead_reader_mid_frame(16));
}

/// A reader dies in a frame it had released nothing of: the next reader
/// reads the frame again, whole (the dead one never returned it).
#[test]
fn dead_reader_before_releasing_leaves_the_frame() {
    // A quarter of a ring of 32 is 8 bytes: the length and 2 bytes stay.
    assert!(dead_reader_mid_frame(32));
}

/// Reader 2 reads the length and 2 bytes of a frame of 8 in a ring of
/// `capacity`, and dies; reader 3 then reads what is left. Returns whether
/// reader 3 got the frame (always, or never, in every execution).
fn dead_reader_mid_frame(capacity: u64) -> bool {
    let again = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = again.clone();
    model(move || {
        let shared = Shared::with_deaths(capacity, 4);
        let long: Vec<u8> = (0..8).collect();
        let writer = Shared::long_then_short(&shared, &long, &[9]);
        let ring = shared.ring();
        let mut reader = ring.begin_read(&shared.w, id(2), None).unwrap();
        let mut part = [0; 2];
        reader.read(&mut part).unwrap();
        assert_eq!(part, [0, 1]);
        // Killed here.
        std::mem::forget(reader);
        shared.w.die(2);
        let next = shared.recv(3).unwrap();
        let read_again = next == long;
        if read_again {
            assert_eq!(shared.recv(3).unwrap(), [9]);
        } else {
            assert_eq!(next, [9]);
        }
        writer.join().unwrap();
        assert!(ring.is_empty());
        seen.lock().unwrap().push(read_again);
    });
    let again = again.lock().unwrap();
    assert!(again.iter().all(|&a| a == again[0]));
    again[0]
}
