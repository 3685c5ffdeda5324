//! [`wait`]: block until at least one of several connections and queues is
//! ready to be read (Python's `multiprocessing.connection.wait`).
//!
//! # What "ready" means
//!
//! An object is ready when its next `recv` / `get` would not block:
//!
//! * a [`Connection`] or [`Receiver`]: a message is there, or the other end
//!   is gone (every process holding it dropped it or exited), so `recv`
//!   returns [`RecvError::Disconnected`](crate::RecvError::Disconnected)
//!   at once: Python's `wait` reports a connection at EOF as ready too;
//! * a [`Queue`], [`JoinableQueue`] or [`SimpleQueue`]: a message is
//!   there, or the queue is closed and drained, so `get` returns
//!   [`GetError::Closed`](crate::GetError::Closed) at once;
//! * a [`PodQueue`]: a value is there (it cannot be closed).
//!
//! Readiness is a snapshot. When several processes or threads read from the
//! same object, another may take the message between `wait` and your
//! `recv`: use `try_recv` / `try_get` (or a timeout) there, as you would
//! after Python's `wait` with several readers.
//!
//! # How it waits
//!
//! Messages travel through shared-memory rings, and a reader that finds
//! its ring empty sleeps on a futex word that writers bump when they see a
//! sleeper. `wait` registers with every object the same way a reader does
//! ([`mproc_core::Readiness`]), without taking any reader lock, and then
//! sleeps on all the words at once with `futex_waitv` (Linux 5.16): the
//! first message, close or drop wakes it, with no polling and no lost
//! wake-up. The protocol, per object: read the word, check readiness,
//! register as a sleeper (so the next writer issues a wake-up), check
//! again, and sleep on the value read first.
//!
//! Some changes wake nobody, so `wait` also looks again after sleep slices
//! (1 ms, doubling up to 64 ms), as a connection's own `recv` does:
//!
//! * a connection's peer that exits or is killed without dropping its end
//!   (its socket hangs up; nothing touches the futex);
//! * objects beyond the 128 distinct futex words `futex_waitv` takes at
//!   once: the first 128 wake `wait` at once, the rest are seen within a
//!   slice;
//! * kernels without `futex_waitv` (`ENOSYS`, before 5.16): `wait` then
//!   sleeps on the first object's word with `FUTEX_WAIT` and looks at the
//!   others between slices.
//!
//! A producer caught between claiming a [`PodQueue`] slot and filling it
//! wakes nobody either; `wait` backs off briefly (spin, yield, short
//! sleeps) until it has filled it.
//!
//! [`Connection`]: crate::Connection
//! [`Receiver`]: crate::Receiver
//! [`Queue`]: crate::Queue
//! [`JoinableQueue`]: crate::JoinableQueue
//! [`SimpleQueue`]: crate::SimpleQueue
//! [`PodQueue`]: crate::PodQueue

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mproc_core::Wait;
use mproc_core::sync::AtomicU32;
use rustix::io::Errno;
use rustix::thread::futex;
use rustix::time::ClockId;

use crate::futex::{Deadline, Futex};

/// The most futex words one `futex_waitv` call takes (`FUTEX_WAITV_MAX`).
pub const MAX_KERNEL_WORDS: usize = 128;

/// The first sleep slice between two looks at what wakes nobody.
const FIRST_SLICE: Duration = Duration::from_millis(1);
/// The longest slice: how late such a change is noticed, at most.
const LAST_SLICE: Duration = Duration::from_millis(64);

/// Set once `futex_waitv` returned `ENOSYS`: this kernel does not have it.
static NO_WAITV: AtomicBool = AtomicBool::new(false);

pub(crate) mod sealed {
    use mproc_core::Readiness;
    use mproc_core::sync::AtomicU32;

    /// What one look at a waitable object found.
    #[derive(Clone, Copy, Debug)]
    pub enum Look<'a> {
        /// A read would not block.
        Ready,
        /// Registered: sleep while `*word == expected`. `recheck`: some
        /// change (a peer's exit) wakes nobody, so look again now and then.
        Sleep {
            word: &'a AtomicU32,
            expected: u32,
            recheck: bool,
        },
        /// A party is in the middle of an operation that wakes nobody:
        /// back off and look again.
        Busy,
    }

    impl<'a> From<Readiness<'a>> for Look<'a> {
        fn from(readiness: Readiness<'a>) -> Self {
            match readiness {
                Readiness::Ready => Look::Ready,
                Readiness::Sleep { word, expected } => Look::Sleep {
                    word,
                    expected,
                    recheck: false,
                },
                Readiness::Busy => Look::Busy,
            }
        }
    }

    /// The one method of [`Waitable`](super::Waitable), out of reach of
    /// other crates: the protocol behind it is mproc's own.
    pub trait Sealed {
        /// Looks at the object, registering for a wake-up if it is not
        /// ready.
        fn look(&self) -> Look<'_>;
    }
}

use sealed::Look;

/// An object [`wait`] can wait for: one that can be read from.
///
/// Implemented by [`Connection`](crate::Connection),
/// [`Receiver`](crate::Receiver), [`Queue`](crate::Queue),
/// [`JoinableQueue`](crate::JoinableQueue),
/// [`SimpleQueue`](crate::SimpleQueue) and [`PodQueue`](crate::PodQueue).
/// The trait is sealed: how an object registers for a wake-up is part of
/// its shared-memory protocol.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::{PodQueue, Queue, Waitable, pipe_simplex, wait};
///
/// let (rx, _tx) = pipe_simplex::<u8>()?;
/// let queues: Vec<PodQueue<u64>> = (0..3).map(|_| PodQueue::new(8)).collect::<Result<_, _>>()?;
/// let closed = Queue::<String>::new(8)?;
/// closed.close();
/// // Objects of different types side by side.
/// let mut objects: Vec<&dyn Waitable> = vec![&rx, &closed];
/// objects.extend(queues.iter().map(|q| q as &dyn Waitable));
/// queues[2].put(1);
/// assert_eq!(wait(&objects, Some(Duration::ZERO)), [1, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Waitable: sealed::Sealed {}

impl<W: sealed::Sealed + ?Sized> Waitable for W {}

impl<W: sealed::Sealed + ?Sized> sealed::Sealed for &W {
    fn look(&self) -> Look<'_> {
        (**self).look()
    }
}

/// Waits until at least one of `objects` is ready to be read, or until
/// `timeout` passes (`None`: as long as it takes), and returns the indices
/// of the ready ones, in order; empty only once the timeout has passed
/// (Python's `multiprocessing.connection.wait`).
///
/// See the [module docs](self) for what "ready" means and how the wait
/// works. A zero timeout looks once without sleeping.
///
/// # Shape
///
/// Python returns the ready objects themselves. Here the objects are
/// borrowed, of different types, so `wait` returns their positions in
/// `objects`: `wait(&[&a, &b, &queue], None)` returning `[0, 2]` says
/// that `a` and `queue` are ready. An object listed twice is reported
/// twice.
///
/// An empty `objects` returns an empty `Vec` at once, whatever the
/// timeout: nothing can become ready, and a loop that drops its objects
/// as they finish (`while !objects.is_empty() { wait(&objects, None) ... }`)
/// should end rather than sleep. (Python sleeps out the timeout, or
/// forever without one.)
///
/// `wait` cannot fail: the fallbacks in the module docs cover kernels
/// without `futex_waitv`, and any other refusal of the kernel to sleep is
/// met by looking again after a slice.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::{Queue, pipe, wait};
///
/// let (a, b) = pipe::<u32>()?;
/// let jobs = Queue::<String>::new(8)?;
/// // Nothing is ready: a wait with a timeout returns no index.
/// assert!(wait(&[&b, &jobs], Some(Duration::from_millis(10))).is_empty());
///
/// let sender = std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(20));
///     a.send(7).unwrap();
///     a // keep the end alive until joined
/// });
/// // Blocks until the message arrives: `b` (index 0) is ready.
/// assert_eq!(wait(&[&b, &jobs], None), [0]);
/// assert_eq!(b.recv(), Ok(7));
///
/// jobs.put("work".to_owned())?;
/// jobs.close();
/// assert_eq!(wait(&[&b, &jobs], Some(Duration::ZERO)), [1]);
/// let _a = sender.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Vec<usize> {
    if objects.is_empty() {
        return Vec::new();
    }
    // A timeout too long to represent waits forever, like `None`.
    let deadline = timeout.and_then(Deadline::after);
    let mut slice = FIRST_SLICE;
    let mut round = 0;
    loop {
        let mut ready = Vec::new();
        let mut words: Vec<(&AtomicU32, u32)> = Vec::new();
        let mut recheck = false;
        let mut busy = false;
        for (index, object) in objects.iter().enumerate() {
            match object.look() {
                Look::Ready => ready.push(index),
                Look::Sleep {
                    word,
                    expected,
                    recheck: again,
                } => {
                    recheck |= again;
                    // Several objects may share a word (a queue listed
                    // twice): the kernel needs it once.
                    if !words
                        .iter()
                        .any(|&(w, e)| core::ptr::eq(w, word) && e == expected)
                    {
                        words.push((word, expected));
                    }
                }
                Look::Busy => busy = true,
            }
        }
        if !ready.is_empty() {
            return ready;
        }
        // The look above was made before the deadline was checked: a
        // change up to this point has been seen.
        if deadline.is_some_and(Deadline::has_passed) {
            return ready;
        }
        if busy {
            Futex.relax(round);
            round = round.saturating_add(1);
            continue;
        }
        round = 0;
        let watched = if NO_WAITV.load(Ordering::Relaxed) {
            1
        } else {
            MAX_KERNEL_WORDS
        };
        let end = if recheck || words.len() > watched {
            next_slice(deadline, &mut slice)
        } else {
            deadline
        };
        if !sleep(&words, end) {
            // The kernel would not sleep on these words: sleep a slice,
            // then look again.
            if let Some(end) = next_slice(deadline, &mut slice) {
                // An early return (EINTR) only shortens the slice.
                let _ = rustix::thread::clock_nanosleep_absolute(
                    ClockId::Monotonic,
                    &end.as_timespec(),
                );
            }
        }
    }
}

/// The end of the next sleep slice (`slice` from now, never past
/// `deadline`), doubling `slice` up to [`LAST_SLICE`] for the one after.
fn next_slice(deadline: Option<Deadline>, slice: &mut Duration) -> Option<Deadline> {
    let slice_end = Deadline::after(*slice);
    *slice = (*slice * 2).min(LAST_SLICE);
    match (deadline, slice_end) {
        (Some(at), Some(slice_end)) => Some(at.min(slice_end)),
        (at, slice_end) => at.or(slice_end),
    }
}

/// Sleeps until one of `words` no longer holds its value, a wake-up on one
/// of them, a signal, or `end`. Returns false if the kernel refused to
/// sleep (the caller then sleeps a slice itself), as it does the first time
/// it turns out to lack `futex_waitv`: `end` was chosen for a kernel that
/// watches every word.
///
/// `futex_waitv` on the first [`MAX_KERNEL_WORDS`] words (shared futexes,
/// 32-bit, absolute `CLOCK_MONOTONIC` timeout); without it (`ENOSYS`), a
/// `FUTEX_WAIT_BITSET` on the first word ([`Futex::wait`]).
///
/// # References
///  - [Linux `futex_waitv`]
///
/// [Linux `futex_waitv`]: https://www.kernel.org/doc/html/latest/userspace-api/futex2.html
fn sleep(words: &[(&AtomicU32, u32)], end: Option<Deadline>) -> bool {
    let Some(&(first, expected)) = words.first() else {
        return false;
    };
    if !NO_WAITV.load(Ordering::Relaxed) {
        let waiters: Vec<futex::Wait> = words
            .iter()
            .take(MAX_KERNEL_WORDS)
            .map(|&(word, expected)| {
                let mut waiter = futex::Wait::new();
                waiter.val = u64::from(expected);
                waiter.uaddr = futex::WaitPtr::new(word.as_core().as_ptr().cast());
                // Not FUTEX2_PRIVATE: the words are shared with other
                // processes, and so are their wakers.
                waiter.flags = futex::WaitFlags::SIZE_U32;
                waiter
            })
            .collect();
        let timeout = end.map(Deadline::as_timespec);
        match futex::waitv(
            &waiters,
            futex::WaitvFlags::empty(),
            timeout.as_ref(),
            ClockId::Monotonic,
        ) {
            // Woken, a word changed, the deadline passed, or a signal: the
            // caller looks again either way.
            Ok(_) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => return true,
            Err(Errno::NOSYS) => {
                NO_WAITV.store(true, Ordering::Relaxed);
                return false;
            }
            // Nothing else is expected for valid words; the caller copes.
            Err(_) => return false,
        }
    }
    // Without futex_waitv: sleep on the first word; the caller slices.
    let _ = Futex.wait(first, expected, end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PodQueue, Queue};

    /// The path for kernels without `futex_waitv`: `wait` sleeps on the
    /// first object's word and looks at the others between slices, and
    /// still sees each of them. (The flag is process-wide; no other test
    /// of this crate calls `wait`.)
    #[test]
    fn without_futex_waitv() {
        NO_WAITV.store(true, Ordering::Relaxed);
        let first = PodQueue::<u32>::new(2).unwrap();
        let second = Queue::<u32>::new(2).unwrap();
        let objects: [&dyn Waitable; 2] = [&first, &second];
        for target in [1, 0] {
            let putter = std::thread::spawn({
                let (first, second) = (first.clone(), second.clone());
                move || {
                    std::thread::sleep(Duration::from_millis(20));
                    if target == 0 {
                        first.put(7);
                    } else {
                        second.put(8).unwrap();
                    }
                }
            });
            assert_eq!(wait(&objects, Some(Duration::from_secs(300))), [target]);
            putter.join().unwrap();
            if target == 0 {
                assert_eq!(first.get(), 7);
            } else {
                assert_eq!(second.get(), Ok(8));
            }
        }
        assert!(wait(&objects, Some(Duration::from_millis(5))).is_empty());
        NO_WAITV.store(false, Ordering::Relaxed);
    }
}
