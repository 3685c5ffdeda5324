//! [`JoinableQueue`]: a [`Queue`] that counts unfinished tasks (Python's
//! `multiprocessing.JoinableQueue`), and [`SimpleQueue`], the plain one
//! (Python's `multiprocessing.SimpleQueue`).

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::TimedOut;
use mproc_core::waitgroup::RawWaitGroup;
pub use mproc_core::waitgroup::TooManyDone;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::futex::{Deadline, Futex};
use crate::object::{Mapping, deadline, shareable};
use crate::process::origin;
use crate::queue::{GetError, PutError, Queue, now};
use crate::share::{Sealed, Share, Token, attach_region, region_fd};
use crate::shm::Region;

/// A [`Queue`] that counts unfinished tasks: every `put` adds one, every
/// [`task_done`](Self::task_done) ends one, and [`join`](Self::join) waits
/// until none is left.
///
/// A consumer calls `task_done` once per message it got, after handling
/// it; a producer calls `join` to wait until everything it put has been
/// handled. Calling `task_done` more often than messages were put is an
/// error ([`TooManyDone`]) that changes nothing, as Python's `ValueError`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::joinable::JoinableQueue;
///
/// let queue = JoinableQueue::<String>::new(8)?;
/// queue.put("job".to_owned())?;
/// assert_eq!(queue.unfinished(), 1);
/// assert!(queue.join_timeout(Duration::from_millis(10)).is_err());
/// let job = queue.get()?;
/// queue.task_done()?;
/// queue.join(); // returns at once: nothing unfinished
/// assert!(queue.task_done().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
    tasks: NonNull<RawWaitGroup>,
    region: Mapping,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            tasks: self.tasks,
            region: self.region.clone(),
        }
    }
}

// SAFETY: `tasks` points into `region`, which the handle keeps mapped; the
// counter is only used through its atomic operations, made for sharing.
// The queue handle is `Send` and `Sync` itself.
unsafe impl<T> Send for JoinableQueue<T> {}
// SAFETY: as for `Send`.
unsafe impl<T> Sync for JoinableQueue<T> {}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished", &self.tasks().count())
            .finish()
    }
}

impl<T> JoinableQueue<T> {
    fn tasks(&self) -> &RawWaitGroup {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.tasks.as_ref() }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// A joinable queue of at most `maxsize` messages with the default
    /// buffer ([`Queue::DEFAULT_BUFFER`]), in two new shared regions (the
    /// queue's and the task counter's, sealed memfds): children made with
    /// `fork` inherit them, and [`Share::token`] shares them with any other
    /// process.
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::from_queue(Queue::new(maxsize)?)
    }

    /// A joinable queue of at most `maxsize` messages with a buffer of at
    /// least `buffer` bytes.
    pub fn with_buffer(maxsize: usize, buffer: usize) -> Result<Self> {
        Self::from_queue(Queue::with_buffer(maxsize, buffer)?)
    }

    fn from_queue(queue: Queue<T>) -> Result<Self> {
        let region = shareable("JoinableQueue", Ok(RawWaitGroup::object_layout()))?;
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let tasks = unsafe { RawWaitGroup::create(region.as_ptr(), region.len(), origin())? };
        Ok(Self {
            queue,
            tasks: NonNull::from(tasks),
            region: Arc::new(region),
        })
    }

    /// Attaches to the queue in `queue` and the task counter in `tasks`,
    /// after checking their headers.
    fn attach(queue: Region, tasks: Region) -> Result<Self> {
        let queue = Queue::attach(queue)?;
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let counter = unsafe { RawWaitGroup::attach(tasks.as_ptr(), tasks.len())? };
        Ok(Self {
            queue,
            tasks: NonNull::from(counter),
            region: Arc::new(tasks),
        })
    }

    /// The queue underneath, for reading its state (`len`, `maxsize`, ...).
    /// Puts made through it directly are not counted as tasks.
    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    fn put_until(&self, value: T, deadline: Option<Deadline>) -> Result<(), PutError<T>> {
        // Counted before it is visible, so a consumer's `task_done` never
        // finds the count short.
        if self.tasks().add(1).is_err() {
            return Err(PutError::Full(value));
        }
        self.queue.put_until(value, deadline).inspect_err(|_| {
            // Not put: take the task back (it was ours, so it is there).
            let _ = self.tasks().done(&Futex);
        })
    }

    /// Puts `value` as a new task, waiting for room as long as it takes
    /// (see [`Queue::put`]).
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, None)
    }

    /// Puts `value` as a new task, waiting for room at most `timeout`.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(value, deadline(timeout))
    }

    /// Puts `value` as a new task if there is room now.
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_until(value, now())
    }

    /// Gets the oldest message, waiting as long as it takes (see
    /// [`Queue::get`]); call [`task_done`](Self::task_done) once it is
    /// handled.
    pub fn get(&self) -> Result<T, GetError> {
        self.queue.get_until(None)
    }

    /// Gets the oldest message, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.queue.get_until(deadline(timeout))
    }

    /// Gets the oldest message if there is one now.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.queue.get_until(now())
    }

    /// Marks one task handled; when none is left, wakes every `join`.
    ///
    /// # Errors
    /// [`TooManyDone`] (nothing changes) if every task was already marked.
    pub fn task_done(&self) -> Result<(), TooManyDone> {
        self.tasks().done(&Futex)
    }

    /// Tasks put and not yet marked done (a snapshot).
    pub fn unfinished(&self) -> usize {
        self.tasks().count() as usize
    }

    /// Waits until every task put has been marked done.
    pub fn join(&self) {
        // Without a deadline the wait only returns once the count is zero.
        let _ = self.tasks().wait(&Futex, None);
    }

    /// Waits at most `timeout` until every task put has been marked done.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        self.tasks().wait(&Futex, deadline(timeout))
    }

    /// Messages in the queue (a snapshot).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the queue holds no message (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close();
    }
}

/// The simplest queue: `put`, `get`, `is_empty`, `close` (Python's
/// `SimpleQueue`).
///
/// A [`Queue`] bounded only by its buffer (a `put` waits while the buffer
/// is full, as Python's `SimpleQueue` waits on its pipe), without timeouts
/// or counts.
///
/// # Examples
///
/// ```
/// use mproc_os::joinable::SimpleQueue;
///
/// let queue = SimpleQueue::<(u32, String)>::new()?;
/// queue.put((1, "one".to_owned()))?;
/// assert!(!queue.is_empty());
/// assert_eq!(queue.get()?, (1, "one".to_owned()));
/// queue.close();
/// assert!(queue.get().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T>(Queue<T>);

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.0).finish()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> SimpleQueue<T> {
    /// An empty queue with the default buffer ([`Queue::DEFAULT_BUFFER`]),
    /// in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`] shares it with any other process.
    pub fn new() -> Result<Self> {
        Ok(Self(Queue::new(u32::MAX as usize)?))
    }

    /// Puts `value`, waiting while the buffer is full.
    ///
    /// # Errors
    /// [`PutError::Closed`], [`PutError::TooLarge`] or [`PutError::Encode`],
    /// with the value.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.0.put(value)
    }

    /// Gets the oldest value, waiting for one.
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and drained; [`GetError::Decode`].
    pub fn get(&self) -> Result<T, GetError> {
        self.0.get()
    }

    /// Whether the queue is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.0.close();
    }
}

impl<T> crate::wait::sealed::Sealed for JoinableQueue<T> {
    fn look(&self) -> crate::wait::sealed::Look<'_> {
        self.queue.look()
    }
}

impl<T> crate::wait::sealed::Sealed for SimpleQueue<T> {
    fn look(&self) -> crate::wait::sealed::Look<'_> {
        self.0.look()
    }
}

impl<T> Sealed for JoinableQueue<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Share for JoinableQueue<T> {
    const KIND: &'static str = "JoinableQueue";

    /// A token holding the queue's region and the task counter's.
    fn token(&self) -> Result<Token<Self>> {
        Ok(Token::new(vec![
            region_fd(self.queue.region(), Self::KIND)?,
            region_fd(&self.region, Self::KIND)?,
        ]))
    }

    fn from_token(token: Token<Self>) -> Result<Self> {
        let [queue, tasks] = token.into_fds::<2>()?;
        Self::attach(attach_region(queue)?, attach_region(tasks)?)
    }
}

impl<T> Sealed for SimpleQueue<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Share for SimpleQueue<T> {
    const KIND: &'static str = "SimpleQueue";

    fn token(&self) -> Result<Token<Self>> {
        Ok(Token::new(vec![region_fd(self.0.region(), Self::KIND)?]))
    }

    fn from_token(token: Token<Self>) -> Result<Self> {
        let [fd] = token.into_fds::<1>()?;
        Ok(Self(Queue::attach(attach_region(fd)?)?))
    }
}
