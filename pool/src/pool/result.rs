//! The results of a [`Pool`]'s jobs: [`AsyncResult`], [`Callbacks`],
//! [`IMap`], and the sinks that gather the chunks of a job.

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use std::collections::TryReserveError;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire::{ItemError, ResultReader, Runner, TaskFrame, decode_items};
use super::{ChunkOutcome, Pool, PoolError, Shared, Sink};

/// What runs once a job is done (callbacks, then the result made ready),
/// outside the pool's lock.
pub(crate) type Completion = Box<dyn FnOnce() + Send>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error of an item that has no value, from worker `pid`.
fn item_error(error: ItemError, pid: u32) -> PoolError {
    match error {
        ItemError::Panicked(message) => PoolError::Panicked { pid, message },
        ItemError::BadArgs(reason) => PoolError::Codec {
            reason: format!("the arguments do not decode in worker {pid}: {reason}"),
        },
        ItemError::BadResult(reason) => PoolError::Codec {
            reason: format!("the result does not serialize in worker {pid}: {reason}"),
        },
        ItemError::Undecodable(reason) => PoolError::Codec {
            reason: format!("the result from worker {pid} does not decode: {reason}"),
        },
    }
}

/// Where the result of one job lands.
pub(crate) struct ResultCell<R> {
    value: Mutex<Option<Result<R, PoolError>>>,
    /// Set (Release) once `value` holds the result; read with Acquire.
    ready: AtomicBool,
    /// Whether the result is a value (set before `ready`).
    ok: AtomicBool,
}

impl<R> ResultCell<R> {
    pub(crate) fn new() -> Self {
        Self {
            value: Mutex::new(None),
            ready: AtomicBool::new(false),
            ok: AtomicBool::new(false),
        }
    }

    fn set(&self, result: Result<R, PoolError>) {
        self.ok.store(result.is_ok(), Ordering::Relaxed);
        *lock(&self.value) = Some(result);
        // Release pairs with the Acquire loads in `is_ready`.
        self.ready.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Functions run with a job's result (`on_success`) or error (`on_error`)
/// once it is done, before the result counts as ready (Python's
/// `callback` and `error_callback`). They run on whichever thread drives
/// the pool at that moment (see the [pool docs](Pool#how-work-moves)), outside its
/// lock, so they may submit more work; they should be quick.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use mproc_pool::{Callbacks, Pool, PoolError, StartMethod};
///
/// fn parse(text: String) -> u32 {
///     text.parse().expect("not a number")
/// }
///
/// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
/// let errors = Arc::new(Mutex::new(Vec::new()));
/// let callbacks = {
///     let errors = errors.clone();
///     Callbacks::new()
///         .on_success(|n: &u32| println!("parsed {n}"))
///         .on_error(move |error: &PoolError| errors.lock().unwrap().push(error.to_string()))
/// };
/// let result = pool.apply_async_with(parse, "x".to_owned(), callbacks)?;
/// assert!(result.get().is_err());
/// assert!(errors.lock().unwrap()[0].contains("not a number"));
/// # Ok::<(), PoolError>(())
/// ```
#[must_use]
pub struct Callbacks<R> {
    on_success: Option<OnSuccess<R>>,
    on_error: Option<OnError>,
}

type OnSuccess<R> = Box<dyn FnOnce(&R) + Send>;
type OnError = Box<dyn FnOnce(&PoolError) + Send>;

/// Where a job's result goes: its cell, and the callbacks to run first.
type Target<R> = (Arc<ResultCell<R>>, Callbacks<R>);

impl<R> Default for Callbacks<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> fmt::Debug for Callbacks<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_success", &self.on_success.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<R> Callbacks<R> {
    /// No callbacks.
    pub fn new() -> Self {
        Self {
            on_success: None,
            on_error: None,
        }
    }

    /// Runs `f` with the result when the job succeeds.
    pub fn on_success(mut self, f: impl FnOnce(&R) + Send + 'static) -> Self {
        self.on_success = Some(Box::new(f));
        self
    }

    /// Runs `f` with the error when the job fails.
    pub fn on_error(mut self, f: impl FnOnce(&PoolError) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }
}

/// The completion that runs `callbacks` with `result`, then puts it in
/// `cell`.
fn completion<R: Send + 'static>(
    cell: Arc<ResultCell<R>>,
    callbacks: Callbacks<R>,
    result: Result<R, PoolError>,
) -> Completion {
    Box::new(move || {
        let Callbacks {
            on_success,
            on_error,
        } = callbacks;
        // The result counts as ready even if a callback panics (the panic
        // goes on to the driving thread once every completion ran).
        struct SetOnDrop<R> {
            cell: Arc<ResultCell<R>>,
            result: Option<Result<R, PoolError>>,
        }
        impl<R> Drop for SetOnDrop<R> {
            fn drop(&mut self) {
                if let Some(result) = self.result.take() {
                    self.cell.set(result);
                }
            }
        }
        let guard = SetOnDrop {
            cell,
            result: Some(result),
        };
        match &guard.result {
            Some(Ok(value)) => {
                if let Some(f) = on_success {
                    f(value);
                }
            }
            Some(Err(error)) => {
                if let Some(f) = on_error {
                    f(error);
                }
            }
            None => {}
        }
        drop(guard);
    })
}

/// A job of one item ([`Pool::apply_async`]).
pub(crate) struct ApplySink<R> {
    target: Option<Target<R>>,
}

impl<R> ApplySink<R> {
    pub(crate) fn new(cell: Arc<ResultCell<R>>, callbacks: Callbacks<R>) -> Self {
        Self {
            target: Some((cell, callbacks)),
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Sink for ApplySink<R> {
    fn chunk(&mut self, _: usize, _: usize, outcome: ChunkOutcome<'_>) -> Option<Completion> {
        let (cell, callbacks) = self.target.take()?;
        let mut result = Err(PoolError::Codec {
            reason: "the worker sent no result".to_owned(),
        });
        match outcome {
            ChunkOutcome::Results { payload, pid } => decode_items(payload, 1, |item| {
                result = item.map_err(|error| item_error(error, pid));
            }),
            ChunkOutcome::Failed(error) => result = Err(error),
        }
        Some(completion(cell, callbacks, result))
    }

    fn abandon(&mut self, error: PoolError) -> Option<Completion> {
        let (cell, callbacks) = self.target.take()?;
        Some(completion(cell, callbacks, Err(error)))
    }
}

/// A job of many items in chunks ([`Pool::map_async`]): the results,
/// decoded straight into their places in the output, and the first error
/// by item position.
pub(crate) struct MapSink<R> {
    target: Option<Target<Vec<R>>>,
    slots: Slots<R>,
    remaining: usize,
    error: Option<(usize, PoolError)>,
}

impl<R: Send + 'static> MapSink<R> {
    /// A job of `items` items in chunks of `chunksize`.
    ///
    /// # Errors
    /// [`PoolError::Invalid`] if a vector of `items` results cannot be
    /// allocated.
    pub(crate) fn new(
        cell: Arc<ResultCell<Vec<R>>>,
        callbacks: Callbacks<Vec<R>>,
        items: usize,
        chunksize: usize,
    ) -> Result<Self, PoolError> {
        let slots = Slots::new(items, chunksize).map_err(|error| PoolError::Invalid {
            reason: format!("no room for the results of {items} items: {error}"),
        })?;
        Ok(Self {
            target: Some((cell, callbacks)),
            remaining: slots.chunks(),
            slots,
            error: None,
        })
    }

    /// The completion of a job of no items.
    pub(crate) fn empty(&mut self) -> Option<Completion> {
        let (cell, callbacks) = self.target.take()?;
        Some(completion(cell, callbacks, Ok(Vec::new())))
    }

    fn record(&mut self, position: usize, error: PoolError) {
        if self
            .error
            .as_ref()
            .is_none_or(|(first, _)| position < *first)
        {
            self.error = Some((position, error));
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Sink for MapSink<R> {
    fn chunk(&mut self, start: usize, _: usize, outcome: ChunkOutcome<'_>) -> Option<Completion> {
        let index = start / self.slots.chunksize;
        if !self.slots.pending(index) {
            return None;
        }
        match outcome {
            ChunkOutcome::Results { payload, pid } => {
                let mut items = ResultReader::new(payload, self.slots.range(index).len());
                let mut failure = None;
                let filled = self.slots.fill(index, || match items.next::<R>() {
                    Ok(Ok(value)) => Some(value),
                    Ok(Err(error)) => {
                        failure = Some(item_error(error, pid));
                        None
                    }
                    Err(error) => {
                        failure = Some(item_error(ItemError::Undecodable(error.to_string()), pid));
                        None
                    }
                });
                if let Err(done) = filled {
                    let error = failure.unwrap_or_else(|| PoolError::Codec {
                        reason: format!("worker {pid} sent too few results"),
                    });
                    self.record(start + done, error);
                }
            }
            ChunkOutcome::Failed(error) => {
                self.slots.skip(index);
                self.record(start, error);
            }
        }
        self.remaining -= 1;
        if self.remaining > 0 {
            return None;
        }
        let (cell, callbacks) = self.target.take()?;
        let slots = std::mem::replace(&mut self.slots, Slots::empty());
        let result = match (self.error.take(), slots.into_vec()) {
            (None, Some(all)) => Ok(all),
            (Some((_, error)), _) => Err(error),
            (None, None) => Err(PoolError::Codec {
                reason: "a chunk of the map has no results".to_owned(),
            }),
        };
        Some(completion(cell, callbacks, result))
    }

    fn abandon(&mut self, error: PoolError) -> Option<Completion> {
        let (cell, callbacks) = self.target.take()?;
        Some(completion(cell, callbacks, Err(error)))
    }
}

/// The output of a map, `len` values in chunks of `chunksize`, filled
/// chunk by chunk in any order, in the spare capacity of the vector that
/// becomes the result once every chunk is filled.
///
/// Invariant: the slots of a chunk (of `values`' spare capacity) are
/// initialized exactly when its `state` is [`ChunkState::Filled`];
/// `values.len()` stays 0 until [`Slots::into_vec`].
struct Slots<R> {
    values: Vec<R>,
    len: usize,
    chunksize: usize,
    state: Vec<ChunkState>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Pending,
    Filled,
    Failed,
}

impl<R> Slots<R> {
    fn new(len: usize, chunksize: usize) -> Result<Self, TryReserveError> {
        let chunksize = chunksize.max(1);
        let mut values = Vec::new();
        values.try_reserve_exact(len)?;
        let mut state = Vec::new();
        state.try_reserve_exact(len.div_ceil(chunksize))?;
        state.resize(len.div_ceil(chunksize), ChunkState::Pending);
        Ok(Self {
            values,
            len,
            chunksize,
            state,
        })
    }

    /// Slots of no values.
    fn empty() -> Self {
        Self {
            values: Vec::new(),
            len: 0,
            chunksize: 1,
            state: Vec::new(),
        }
    }

    fn chunks(&self) -> usize {
        self.state.len()
    }

    /// Whether chunk `index` exists and is neither filled nor failed.
    fn pending(&self, index: usize) -> bool {
        self.state.get(index) == Some(&ChunkState::Pending)
    }

    /// The slots of chunk `index`.
    fn range(&self, index: usize) -> core::ops::Range<usize> {
        let start = index * self.chunksize;
        start..(start + self.chunksize).min(self.len)
    }

    /// Fills pending chunk `index` with the values `next` gives, in
    /// order. If `next` runs out first, the values written are dropped,
    /// the chunk counts as failed, and the error holds how many there
    /// were.
    #[inline]
    fn fill(&mut self, index: usize, mut next: impl FnMut() -> Option<R>) -> Result<(), usize> {
        if !self.pending(index) {
            return Err(0);
        }
        let range = self.range(index);
        /// Drops what was written if the chunk is not completed (`next`
        /// ran out, or panicked).
        struct Partial<'a, R> {
            slots: &'a mut [MaybeUninit<R>],
            written: usize,
        }
        impl<R> Drop for Partial<'_, R> {
            fn drop(&mut self) {
                for slot in &mut self.slots[..self.written] {
                    // SAFETY: the first `written` slots were written by
                    // `fill` below, and are dropped only here, once.
                    unsafe { slot.assume_init_drop() };
                }
            }
        }
        let mut partial = Partial {
            slots: &mut self.values.spare_capacity_mut()[range],
            written: 0,
        };
        while let Some(slot) = partial.slots.get_mut(partial.written) {
            match next() {
                Some(value) => {
                    slot.write(value);
                    partial.written += 1;
                }
                None => {
                    let written = partial.written;
                    drop(partial);
                    self.state[index] = ChunkState::Failed;
                    return Err(written);
                }
            }
        }
        // Every slot of the chunk is written: they are the chunk's now.
        core::mem::forget(partial);
        self.state[index] = ChunkState::Filled;
        Ok(())
    }

    /// Marks pending chunk `index` failed: it gets no values.
    fn skip(&mut self, index: usize) {
        if self.pending(index) {
            self.state[index] = ChunkState::Failed;
        }
    }

    /// The values, if every chunk is filled.
    fn into_vec(mut self) -> Option<Vec<R>> {
        if self.state.iter().any(|state| *state != ChunkState::Filled) {
            return None;
        }
        self.state.clear();
        let mut values = core::mem::take(&mut self.values);
        // SAFETY: every chunk is filled, so the first `len` slots (all
        // the chunks' slots, within the capacity asked for in `new`) are
        // initialized; `state` is cleared, so `Drop` does not drop them.
        unsafe { values.set_len(self.len) };
        Some(values)
    }
}

impl<R> Drop for Slots<R> {
    fn drop(&mut self) {
        for index in 0..self.state.len() {
            if self.state[index] == ChunkState::Filled {
                let range = self.range(index);
                for slot in &mut self.values.spare_capacity_mut()[range] {
                    // SAFETY: the slots of a filled chunk are initialized
                    // (the invariant), and dropped only here.
                    unsafe { slot.assume_init_drop() };
                }
            }
        }
    }
}

/// A pending result of a [`Pool`] job (Python's `AsyncResult`).
///
/// Waiting on it drives the pool (see the [pool docs](Pool#how-work-moves)): a thread
/// in `get` or `wait` collects whatever the workers finished, not only
/// this result.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_pool::{Pool, PoolError, StartMethod};
///
/// let pool = Pool::builder().processes(1).start_method(StartMethod::Fork).build()?;
/// let mut nap = pool.apply_async(|ms: u64| std::thread::sleep(Duration::from_millis(ms)), 200)?;
/// assert_eq!(nap.get_timeout(Duration::from_millis(1)), Err(PoolError::Timeout));
/// assert_eq!(nap.get_timeout(Duration::from_secs(60)), Ok(()));
/// assert_eq!(nap.get_timeout(Duration::ZERO), Err(PoolError::AlreadyTaken));
/// # Ok::<(), PoolError>(())
/// ```
pub struct AsyncResult<R> {
    shared: Arc<Shared>,
    cell: Arc<ResultCell<R>>,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.cell.is_ready())
            .finish_non_exhaustive()
    }
}

impl<R> AsyncResult<R> {
    pub(crate) fn new(shared: Arc<Shared>, cell: Arc<ResultCell<R>>) -> Self {
        Self { shared, cell }
    }

    /// Whether the result is there (Python's `ready`); makes one
    /// non-blocking pass over the pool first.
    pub fn ready(&self) -> bool {
        let cell = &self.cell;
        self.shared.drive(Some(Instant::now()), |_| cell.is_ready())
    }

    /// `None` while the result is not there, then whether it is a value
    /// rather than an error (Python's `successful`, which raises while it
    /// is not ready).
    pub fn successful(&self) -> Option<bool> {
        self.ready().then(|| self.cell.ok.load(Ordering::Relaxed))
    }

    /// Waits until the result is there (Python's `wait()`).
    pub fn wait(&self) {
        let cell = &self.cell;
        self.shared.drive(None, |_| cell.is_ready());
    }

    /// Waits until the result is there or `timeout` passes; returns
    /// whether it is there (Python's `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let cell = &self.cell;
        let deadline = Instant::now().checked_add(timeout);
        self.shared.drive(deadline, |_| cell.is_ready())
    }

    /// Waits for the result and returns it (Python's `get()`).
    ///
    /// # Errors
    /// The task's [`PoolError`].
    pub fn get(mut self) -> Result<R, PoolError> {
        self.wait();
        self.take()
    }

    /// Waits for the result at most `timeout` and takes it (Python's
    /// `get(timeout)`).
    ///
    /// # Errors
    /// [`PoolError::Timeout`] if it is not there yet (it stays pending:
    /// ask again), [`PoolError::AlreadyTaken`] once taken, or the task's
    /// error.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<R, PoolError> {
        if self.wait_timeout(timeout) {
            self.take()
        } else {
            Err(PoolError::Timeout)
        }
    }

    fn take(&mut self) -> Result<R, PoolError> {
        lock(&self.cell.value)
            .take()
            .unwrap_or(Err(PoolError::AlreadyTaken))
    }
}

/// The results of an [`IMap`] that have arrived and not been yielded.
pub(crate) struct ImapBuffer<R> {
    ordered: bool,
    /// Ordered: the position of `slots[0]`.
    base: usize,
    /// Ordered: results by position from `base`, `None` while pending.
    slots: VecDeque<Option<Result<R, PoolError>>>,
    /// Unordered: results in arrival order.
    arrived: VecDeque<Result<R, PoolError>>,
}

impl<R> ImapBuffer<R> {
    pub(crate) fn new(ordered: bool) -> Self {
        Self {
            ordered,
            base: 0,
            slots: VecDeque::new(),
            arrived: VecDeque::new(),
        }
    }

    fn put(&mut self, position: usize, result: Result<R, PoolError>) {
        if !self.ordered {
            self.arrived.push_back(result);
            return;
        }
        let Some(offset) = position.checked_sub(self.base) else {
            return;
        };
        if self.slots.len() <= offset {
            self.slots.resize_with(offset + 1, || None);
        }
        self.slots[offset] = Some(result);
    }

    fn has_next(&self) -> bool {
        if self.ordered {
            matches!(self.slots.front(), Some(Some(_)))
        } else {
            !self.arrived.is_empty()
        }
    }

    fn pop(&mut self) -> Option<Result<R, PoolError>> {
        if !self.ordered {
            return self.arrived.pop_front();
        }
        if !self.has_next() {
            return None;
        }
        self.base += 1;
        self.slots.pop_front().flatten()
    }
}

/// One chunk of an [`IMap`]: its results go to the shared buffer.
pub(crate) struct ImapSink<R> {
    buffer: Arc<Mutex<ImapBuffer<R>>>,
}

impl<R: DeserializeOwned + Send + 'static> Sink for ImapSink<R> {
    fn chunk(
        &mut self,
        start: usize,
        count: usize,
        outcome: ChunkOutcome<'_>,
    ) -> Option<Completion> {
        let mut buffer = lock(&self.buffer);
        match outcome {
            ChunkOutcome::Results { payload, pid } => {
                let mut position = start;
                decode_items(payload, count, |item| {
                    buffer.put(position, item.map_err(|error| item_error(error, pid)));
                    position += 1;
                });
            }
            ChunkOutcome::Failed(error) => {
                (start..start + count)
                    .for_each(|position| buffer.put(position, Err(error.clone())));
            }
        }
        Some(Box::new(|| {}))
    }

    fn abandon(&mut self, _: PoolError) -> Option<Completion> {
        // Its items failed with the chunk, or were never submitted.
        None
    }
}

/// The lazy results of [`Pool::imap`] and [`Pool::imap_unordered`]: an
/// iterator of `Result<R, PoolError>`, one per input item.
///
/// It pulls the input as results are taken, keeping at most a window of
/// `2 × processes × chunksize` items in flight. If the pool stops taking
/// tasks (closed or terminated), the next item is that error, and the
/// items in flight follow.
///
/// # Examples
///
/// ```
/// let pool = mproc_pool::Pool::builder()
///     .processes(2)
///     .start_method(mproc_pool::StartMethod::Fork)
///     .build()?;
/// let mut lengths = pool.imap(|s: String| s.len(), ["a", "bb", "ccc"].map(String::from));
/// assert_eq!(lengths.next(), Some(Ok(1)));
/// assert_eq!(lengths.collect::<Result<Vec<_>, _>>()?, [2, 3]);
/// # Ok::<(), mproc_pool::PoolError>(())
/// ```
pub struct IMap<'p, I, R> {
    pool: &'p Pool,
    runner: Runner,
    func: usize,
    input: I,
    chunksize: usize,
    window: usize,
    /// Items submitted, and yielded.
    submitted: usize,
    yielded: usize,
    input_done: bool,
    /// A submission error, yielded next.
    failure: Option<PoolError>,
    buffer: Arc<Mutex<ImapBuffer<R>>>,
    _results: PhantomData<fn() -> R>,
}

impl<I, R> fmt::Debug for IMap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("submitted", &self.submitted)
            .field("yielded", &self.yielded)
            .field("chunksize", &self.chunksize)
            .finish_non_exhaustive()
    }
}

impl<'p, I, R> IMap<'p, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        pool: &'p Pool,
        runner: Runner,
        func: usize,
        input: I,
        chunksize: usize,
        window: usize,
        buffer: ImapBuffer<R>,
    ) -> Self {
        Self {
            pool,
            runner,
            func,
            input,
            chunksize,
            window,
            submitted: 0,
            yielded: 0,
            input_done: false,
            failure: None,
            buffer: Arc::new(Mutex::new(buffer)),
            _results: PhantomData,
        }
    }

    /// Submits chunks while the window has room.
    fn top_up(&mut self) {
        while !self.input_done && self.submitted - self.yielded < self.window {
            let mut frame = TaskFrame::new(self.runner, self.func, 0);
            let mut taken = 0;
            while taken < self.chunksize {
                let Some(item) = self.input.next() else {
                    self.input_done = true;
                    break;
                };
                if let Err(error) = frame.push(&item) {
                    self.failure = Some(PoolError::encode(error));
                    self.input_done = true;
                    break;
                }
                taken += 1;
            }
            let (frame, count) = frame.finish();
            if count == 0 {
                return;
            }
            let sink = ImapSink {
                buffer: self.buffer.clone(),
            };
            match self
                .pool
                .shared()
                .submit(vec![(frame, self.submitted, count)], Box::new(sink))
            {
                Ok(_) => self.submitted += count,
                Err(error) => {
                    self.failure.get_or_insert(error);
                    self.input_done = true;
                }
            }
        }
    }
}

impl<I, R> Iterator for IMap<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = lock(&self.buffer).pop() {
                self.yielded += 1;
                return Some(item);
            }
            if let Some(error) = self.failure.take() {
                return Some(Err(error));
            }
            self.top_up();
            if self.failure.is_some() {
                continue;
            }
            if self.input_done && self.yielded == self.submitted {
                return None;
            }
            let buffer = &self.buffer;
            self.pool.shared().drive(None, |_| lock(buffer).has_next());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Slots;

    /// Values that count how many of them are alive.
    fn counted(alive: &Arc<()>, n: usize) -> impl Iterator<Item = (usize, Arc<()>)> + '_ {
        (0..n).map(move |i| (i, alive.clone()))
    }

    #[test]
    fn slots_fill_in_any_order() {
        let alive = Arc::new(());
        let mut slots = Slots::new(10, 4).unwrap();
        assert_eq!(slots.chunks(), 3);
        let mut last = counted(&alive, 2);
        assert_eq!(slots.fill(2, || last.next()), Ok(()));
        let mut first = counted(&alive, 4);
        assert_eq!(slots.fill(0, || first.next()), Ok(()));
        assert!(!slots.pending(0));
        // A chunk is filled once.
        assert_eq!(slots.fill(0, || None), Err(0));
        let mut middle = counted(&alive, 4).map(|(i, a)| (i + 4, a));
        assert_eq!(slots.fill(1, || middle.next()), Ok(()));
        let all = slots.into_vec().expect("every chunk is filled");
        let positions: Vec<usize> = all.iter().map(|(i, _)| *i).collect();
        assert_eq!(positions, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        assert_eq!(Arc::strong_count(&alive), 11);
        drop(all);
        assert_eq!(Arc::strong_count(&alive), 1);
    }

    #[test]
    fn slots_drop_what_they_hold_and_nothing_else() {
        let alive = Arc::new(());
        let mut slots = Slots::new(9, 3).unwrap();
        let mut full = counted(&alive, 3);
        assert_eq!(slots.fill(1, || full.next()), Ok(()));
        // A chunk that runs short: what it got is dropped at once.
        let mut short = counted(&alive, 2);
        assert_eq!(slots.fill(0, || short.next()), Err(2));
        assert!(!slots.pending(0));
        assert_eq!(Arc::strong_count(&alive), 4);
        slots.skip(2);
        assert!(!slots.pending(2));
        // Not every chunk is filled: no vector, and the filled chunk's
        // values are dropped with the slots.
        assert!(slots.into_vec().is_none());
        assert_eq!(Arc::strong_count(&alive), 1);
    }

    #[test]
    fn slots_too_many_to_hold_are_an_error() {
        assert!(Slots::<u64>::new(usize::MAX, 1).is_err());
        assert!(Slots::<u64>::new(usize::MAX / 4, usize::MAX).is_err());
    }

    #[test]
    fn slots_drop_a_chunk_cut_by_a_panic() {
        let alive = Arc::new(());
        let mut slots = Slots::new(4, 4).unwrap();
        let mut values = counted(&alive, 2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = slots.fill(0, || Some(values.next().expect("only two values")));
        }));
        assert!(result.is_err());
        drop(values);
        assert_eq!(Arc::strong_count(&alive), 1);
        drop(slots);
        assert_eq!(Arc::strong_count(&alive), 1);
    }
}
