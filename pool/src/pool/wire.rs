//! What travels between a [`Pool`](super::Pool) and its workers, and the
//! worker's loop.
//!
//! Each worker has one duplex [`Connection`] to the pool, used with
//! `send_bytes` / `recv_bytes` only. Requests and replies alternate: the
//! pool sends a frame only to a worker that holds no task, so a worker
//! never has to read while it writes, nor the pool the other way round.
//!
//! | pool → worker | bytes |
//! |---|---|
//! | task | [`TASK`], the runner's code offset (`u64` LE), the function's code offset (`u64` LE), the item count (`u32` LE), then each item's arguments, encoded ([`codec`]) one after the other |
//! | stop | [`STOP`] |
//!
//! | worker → pool | bytes |
//! |---|---|
//! | results | [`RESULTS`], then the items of the task in order, as runs: [`DONE`], a count (`u32` LE, at least 1) and that many encoded results; or, for one item that has no value, [`PANICKED`], [`BAD_ARGS`] or [`BAD_RESULT`] and a message (an encoded `str`) |
//! | initializer failed | [`INIT_FAILED`], then the panic message (UTF-8); the worker then exits |
//!
//! Code offsets are taken from one function of the program
//! ([`crate::entry::code_offset`]): a worker runs the very program file of
//! its pool (checked when it starts, for `ForkServer` and `Spawn`; a copy
//! of the same process image, for `Fork`), so the same offset is the same
//! function there.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mproc_os::Connection;
use mproc_os::share::Token;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, Decoder};
use crate::entry::{code_address, code_offset};
use crate::process::panic_message;

/// One worker's connection to its pool: frames of bytes.
pub(super) type Link = Connection<Vec<u8>>;

/// First byte of a task frame.
pub(super) const TASK: u8 = 1;
/// First byte (and all) of a stop frame.
pub(super) const STOP: u8 = 2;
/// First byte of a results frame.
pub(super) const RESULTS: u8 = 1;
/// First byte of an initializer-failed frame.
pub(super) const INIT_FAILED: u8 = 2;

/// The largest results buffer a worker keeps between tasks.
const KEEP: usize = 16 << 20;

/// Bytes of a task frame before its items.
const TASK_HEADER: usize = 1 + 8 + 8 + 4;

/// Runs the items of a task: decodes `count` arguments from `payload`,
/// calls the function on each and appends one tagged result per argument
/// to `out`.
///
/// # Safety
/// `func` is what the runner expects: for [`run_fn::<A, R>`], the address
/// of a `fn(A) -> R` in this process; [`run_star`] ignores it.
pub(super) type Runner = unsafe fn(func: usize, payload: &[u8], count: u32, out: &mut Vec<u8>);

/// Tag of a run of items whose function returned: their count (`u32`
/// LE) and their encoded results follow.
pub(super) const DONE: u8 = 0;
/// Tag of an item whose function panicked: the message follows.
pub(super) const PANICKED: u8 = 1;
/// Tag of an item whose arguments did not decode in the worker: the
/// reason follows.
pub(super) const BAD_ARGS: u8 = 2;
/// Tag of an item whose result did not encode in the worker: the reason
/// follows.
pub(super) const BAD_RESULT: u8 = 3;

/// A task frame under construction: the header, then items appended one
/// by one.
pub(super) struct TaskFrame {
    bytes: Vec<u8>,
    count: u32,
}

impl TaskFrame {
    /// A frame for `runner` running the function at `func` (0 when the
    /// runner ignores it), with room for `capacity` bytes of items.
    pub(super) fn new(runner: Runner, func: usize, capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(TASK_HEADER + capacity);
        bytes.push(TASK);
        bytes.extend_from_slice(&(code_offset(runner as usize) as u64).to_le_bytes());
        let func = if func == 0 { 0 } else { code_offset(func) };
        bytes.extend_from_slice(&(func as u64).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        Self { bytes, count: 0 }
    }

    /// Appends one item's arguments.
    #[inline]
    pub(super) fn push<A: Serialize + ?Sized>(&mut self, args: &A) -> Result<(), CodecError> {
        codec::encode_into(&mut self.bytes, args)?;
        self.count += 1;
        Ok(())
    }

    /// The finished frame, and how many items it holds.
    pub(super) fn finish(mut self) -> (Vec<u8>, usize) {
        self.bytes[TASK_HEADER - 4..TASK_HEADER].copy_from_slice(&self.count.to_le_bytes());
        (self.bytes, self.count as usize)
    }
}

/// Decodes the `count` items of a results frame's payload, handing each to
/// `push` in order; an item that does not decode ends the walk with its
/// error for it and every item after it.
pub(super) fn decode_items<R: DeserializeOwned>(
    payload: &[u8],
    count: usize,
    mut push: impl FnMut(Result<R, ItemError>),
) {
    let mut items = ResultReader::new(payload, count);
    for done in 0..count {
        match items.next() {
            Ok(item) => push(item),
            Err(error) => {
                let reason = error.to_string();
                (done..count).for_each(|_| push(Err(ItemError::Undecodable(reason.clone()))));
                return;
            }
        }
    }
}

/// Reads the items of a results frame's payload one by one.
pub(super) struct ResultReader<'a> {
    decoder: Decoder<'a>,
    /// Items the frame may still hold.
    left: usize,
    /// Items left in the current run of results.
    run: u32,
}

impl<'a> ResultReader<'a> {
    /// A reader of the `count` items of `payload`.
    pub(super) fn new(payload: &'a [u8], count: usize) -> Self {
        Self {
            decoder: Decoder::new(payload),
            left: count,
            run: 0,
        }
    }

    /// The next item (reading past the items the frame holds is an
    /// error).
    #[inline]
    pub(super) fn next<R: DeserializeOwned>(&mut self) -> Result<Result<R, ItemError>, CodecError> {
        if self.run > 0 {
            self.run -= 1;
            return Ok(Ok(self.decoder.next()?));
        }
        self.next_run()
    }

    #[cold]
    fn next_run<R: DeserializeOwned>(&mut self) -> Result<Result<R, ItemError>, CodecError> {
        let tag = self.decoder.byte()?;
        let run = match tag {
            DONE => self.decoder.next::<u32>()?,
            _ => 1,
        };
        if run == 0 || run as usize > self.left {
            return Err(CodecError::count(run, self.left));
        }
        self.left -= run as usize;
        Ok(match tag {
            DONE => {
                self.run = run - 1;
                Ok(self.decoder.next()?)
            }
            PANICKED => Err(ItemError::Panicked(self.decoder.next()?)),
            BAD_ARGS => Err(ItemError::BadArgs(self.decoder.next()?)),
            BAD_RESULT => Err(ItemError::BadResult(self.decoder.next()?)),
            tag => return Err(CodecError::tag(tag)),
        })
    }
}

/// A results frame's payload being written: runs of results, and the
/// items that have no value between them.
struct ResultWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where the count of the open run is, and the count so far.
    run: Option<(usize, u32)>,
}

impl<'a> ResultWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, run: None }
    }

    /// Appends an item's result; if it does not encode, its failure.
    #[inline]
    fn done<R: Serialize>(&mut self, value: &R) {
        let (at, count) = match self.run {
            Some(run) => run,
            None => {
                self.out.push(DONE);
                self.out.extend_from_slice(&0u32.to_le_bytes());
                (self.out.len() - 4, 0)
            }
        };
        match codec::encode_into(self.out, value) {
            Ok(()) => self.run = Some((at, count + 1)),
            Err(error) => {
                self.run = Some((at, count));
                self.failed(BAD_RESULT, &error.to_string());
            }
        }
    }

    /// Appends an item that has no value: its tag and message.
    fn failed(&mut self, tag: u8, message: &str) {
        self.close();
        self.out.push(tag);
        // A `str` always encodes.
        let _ = codec::encode_into(self.out, message);
    }

    /// Ends the open run: writes its count, or takes its header back if
    /// it is empty.
    fn close(&mut self) {
        match self.run.take() {
            Some((at, 0)) => self.out.truncate(at - 1),
            Some((at, count)) => self.out[at..at + 4].copy_from_slice(&count.to_le_bytes()),
            None => {}
        }
    }
}

/// Why one item has no value (the pool adds the worker's pid).
#[derive(Debug)]
pub(super) enum ItemError {
    Panicked(String),
    BadArgs(String),
    BadResult(String),
    Undecodable(String),
}

/// The runner of a `fn(A) -> R`.
///
/// # Safety
/// `func` is the address of a `fn(A) -> R` in this process.
pub(super) unsafe fn run_fn<A, R>(func: usize, payload: &[u8], count: u32, out: &mut Vec<u8>)
where
    A: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: `fn(A) -> R` is a pointer-sized function pointer, and the
    // caller promises `func` is the address of one.
    let f = unsafe { core::mem::transmute::<usize, fn(A) -> R>(func) };
    run_items(payload, count, out, f);
}

/// The runner of a zero-sized callable `F` taking the elements of `Args`
/// as its arguments ([`StarTask`]); `func` is not used: the runner is
/// made for `F` alone.
pub(super) fn run_star<F, Args>(_func: usize, payload: &[u8], count: u32, out: &mut Vec<u8>)
where
    F: StarTask<Args>,
    Args: DeserializeOwned,
    F::Output: Serialize,
{
    const {
        assert!(
            core::mem::size_of::<F>() == 0,
            "a pool task must be a fn item or a closure that captures nothing"
        );
    }
    // SAFETY: `F` is zero-sized (asserted above) and `Copy`: it has no
    // bytes to initialize and no destructor, and the pool that sent this
    // task held a value of it, so it is inhabited. Making one here is the
    // same as copying that value, which `Copy` allows.
    let f = unsafe { core::mem::zeroed::<F>() };
    run_items(payload, count, out, move |args: Args| f.call(args));
}

fn run_items<A, R>(payload: &[u8], count: u32, out: &mut Vec<u8>, f: impl Fn(A) -> R)
where
    A: DeserializeOwned,
    R: Serialize,
{
    out.reserve((count as usize).saturating_mul(size_of::<R>()) + 5);
    let mut results = ResultWriter::new(out);
    let mut decoder = Decoder::new(payload);
    for done in 0..count {
        let args = match decoder.next::<A>() {
            Ok(args) => args,
            Err(error) => {
                let reason = error.to_string();
                for _ in done..count {
                    results.failed(BAD_ARGS, &reason);
                }
                break;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| f(args))) {
            Ok(value) => results.done(&value),
            Err(payload) => results.failed(PANICKED, &panic_message(&*payload)),
        }
    }
    results.close();
}

/// A callable run by [`Pool::starmap`](super::Pool::starmap): a fn item or a
/// closure that captures nothing, taking the elements of the tuple `Args`
/// as its arguments (Python's `starmap` calls `f(*args)`). Implemented for
/// every such callable of 1 to 6 arguments.
///
/// Unlike the `fn(A) -> R` pointers the other verbs take, the callable
/// itself does not travel: its type does, which is why it must be
/// zero-sized (a capturing closure is refused at compile time).
///
/// # Examples
///
/// ```
/// use mproc_pool::{Pool, StartMethod};
///
/// fn add(a: u32, b: u32) -> u32 {
///     a + b
/// }
///
/// let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build()?;
/// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
/// assert_eq!(pool.starmap(|a: i8, b: i8, c: i8| a * b * c, [(1, 2, 3)])?, [6]);
/// # Ok::<(), mproc_pool::PoolError>(())
/// ```
pub trait StarTask<Args>: Copy + Send + 'static + sealed::Sealed<Args> {
    /// What the callable returns.
    type Output;

    /// Calls the callable with the elements of `args`.
    fn call(self, args: Args) -> Self::Output;
}

mod sealed {
    /// Keeps [`StarTask`](super::StarTask) to the implementations below.
    pub trait Sealed<Args> {}
}

macro_rules! star_task {
    ($($arg:ident),+) => {
        impl<F, R, $($arg),+> sealed::Sealed<($($arg,)+)> for F
        where
            F: Fn($($arg),+) -> R + Copy + Send + 'static,
        {
        }

        impl<F, R, $($arg),+> StarTask<($($arg,)+)> for F
        where
            F: Fn($($arg),+) -> R + Copy + Send + 'static,
        {
            type Output = R;

            #[allow(non_snake_case)]
            fn call(self, ($($arg,)+): ($($arg,)+)) -> R {
                self($($arg),+)
            }
        }
    };
}

star_task!(A1);
star_task!(A1, A2);
star_task!(A1, A2, A3);
star_task!(A1, A2, A3, A4);
star_task!(A1, A2, A3, A4, A5);
star_task!(A1, A2, A3, A4, A5, A6);

/// The initializer a worker runs first: a `fn(I)` as a code offset, and
/// its arguments.
#[derive(Serialize, Deserialize)]
pub(super) struct InitCall<I> {
    pub(super) func: usize,
    pub(super) args: I,
}

/// What a worker is started with.
#[derive(Serialize, Deserialize)]
#[serde(bound = "I: Serialize + DeserializeOwned")]
pub(super) struct WorkerArgs<I> {
    /// The worker's end of its connection.
    pub(super) link: Token<Link>,
    /// The pool's initializer, if it has one.
    pub(super) init: Option<InitCall<I>>,
}

/// The offset to put in an [`InitCall`] for `f`.
pub(super) fn init_offset<I>(f: fn(I)) -> usize {
    code_offset(f as usize)
}

/// The body of a pool worker: runs the initializer, then the tasks that
/// arrive, until a stop frame arrives or the pool is gone.
pub(super) fn worker_main<I: Serialize + DeserializeOwned>(args: WorkerArgs<I>) {
    let link = match args.link.attach() {
        Ok(link) => link,
        Err(error) => panic!("a pool worker cannot attach its connection: {error}"),
    };
    if let Some(InitCall { func, args }) = args.init {
        // SAFETY: `func` was taken by `init_offset` from a `fn(I)` in the
        // pool's process, which runs this very program (see the module
        // docs), so the same offset is that function here.
        let f = unsafe { core::mem::transmute::<usize, fn(I)>(code_address(func)) };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(args))) {
            let mut frame = vec![INIT_FAILED];
            frame.extend_from_slice(panic_message(&*payload).as_bytes());
            let _ = link.send_bytes(&frame);
            return;
        }
    }
    let mut out = Vec::new();
    loop {
        // An error: the pool is gone (or its frames are garbage): stop.
        let Ok(frame) = link.recv_bytes() else { return };
        let Some(header) = frame.get(..TASK_HEADER).filter(|h| h[0] == TASK) else {
            return;
        };
        let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let (runner, func) = (word(1) as usize, word(9) as usize);
        let count = u32::from_le_bytes(header[17..21].try_into().unwrap_or([0; 4]));
        out.clear();
        out.push(RESULTS);
        // SAFETY: the runner's offset was taken by `TaskFrame::new` from a
        // `Runner` in the pool's process, which runs this very program
        // (see the module docs), so the same offset is that runner here;
        // `func` is the offset of the function that runner was made for,
        // taken the same way (0, not used, for `run_star`).
        unsafe {
            let runner = core::mem::transmute::<usize, Runner>(code_address(runner));
            let func = if func == 0 { 0 } else { code_address(func) };
            runner(func, &frame[TASK_HEADER..], count, &mut out);
        }
        if link.send_bytes(&out).is_err() {
            return;
        }
        // Keep the buffer for the next task (chunks of a map are alike),
        // but not a huge one.
        if out.capacity() > KEEP {
            out = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Serialize, Serializer};

    use super::codec::encode_into;
    use super::{ItemError, decode_items, run_fn};

    fn square(n: u64) -> u64 {
        n * n
    }

    fn picky(n: u32) -> u32 {
        assert!(n != 2, "two is not allowed");
        n
    }

    /// Refuses to serialize.
    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot serialize this"))
        }
    }

    fn unserializable(_: u8) -> Unserializable {
        Unserializable
    }

    /// Runs `f` on a task payload as a worker does, and decodes the
    /// results as the pool does.
    fn run<A, R>(f: fn(A) -> R, payload: &[u8], count: u32) -> Vec<Result<R, ItemError>>
    where
        A: serde::de::DeserializeOwned,
        R: Serialize + serde::de::DeserializeOwned,
    {
        let mut out = Vec::new();
        // SAFETY: `f` is a `fn(A) -> R` of this process.
        unsafe { run_fn::<A, R>(f as usize, payload, count, &mut out) };
        let mut items = Vec::new();
        decode_items(&out, count as usize, |item| items.push(item));
        items
    }

    fn payload<A: Serialize>(items: &[A]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for item in items {
            encode_into(&mut bytes, item).unwrap();
        }
        bytes
    }

    #[test]
    fn a_task_runs_every_item_in_order() {
        let items: Vec<_> = run(square, &payload(&[1u64, 2, 3, u64::from(u32::MAX)]), 4)
            .into_iter()
            .map(|item| item.ok())
            .collect();
        assert_eq!(
            items,
            [Some(1), Some(4), Some(9), Some(u64::from(u32::MAX).pow(2))]
        );
    }

    #[test]
    fn a_panic_fails_its_item_only() {
        let items = run(picky, &payload(&[1u32, 2, 3]), 3);
        assert!(matches!(items[0], Ok(1)));
        assert!(matches!(&items[1], Err(ItemError::Panicked(m)) if m == "two is not allowed"));
        assert!(matches!(items[2], Ok(3)));
    }

    #[test]
    fn arguments_that_do_not_decode_fail_the_rest() {
        let mut bytes = payload(&[5u64, 6]);
        bytes.extend([1, 2, 3]);
        let items = run(square, &bytes, 4);
        assert!(matches!(items[..2], [Ok(25), Ok(36)]));
        for item in &items[2..] {
            assert!(
                matches!(item, Err(ItemError::BadArgs(reason)) if reason.contains("end early")),
                "{item:?}"
            );
        }
    }

    #[test]
    fn a_result_that_does_not_encode_is_reported() {
        let mut out = Vec::new();
        // SAFETY: `unserializable` is a `fn(u8) -> Unserializable`.
        unsafe {
            run_fn::<u8, Unserializable>(
                (unserializable as fn(u8) -> Unserializable) as usize,
                &payload(&[0u8, 1]),
                2,
                &mut out,
            )
        };
        let mut items = Vec::new();
        decode_items::<()>(&out, 2, |item| items.push(item));
        assert_eq!(items.len(), 2);
        for item in &items {
            assert!(
                matches!(item, Err(ItemError::BadResult(reason)) if reason == "cannot serialize this"),
                "{item:?}"
            );
        }
    }

    #[test]
    fn results_that_do_not_decode_are_undecodable() {
        let mut items = Vec::new();
        decode_items::<u64>(&[9, 0, 0], 2, |item| items.push(item));
        assert_eq!(items.len(), 2);
        for item in &items {
            assert!(
                matches!(item, Err(ItemError::Undecodable(reason)) if reason.contains("tag")),
                "{item:?}"
            );
        }
        let mut items = Vec::new();
        decode_items::<u64>(&[0, 1, 2], 1, |item| items.push(item));
        assert!(matches!(&items[..], [Err(ItemError::Undecodable(_))]));
        // Runs that are empty, or longer than the task.
        let mut empty_run = vec![0];
        empty_run.extend(0u32.to_le_bytes());
        let mut long_run = vec![0];
        long_run.extend(3u32.to_le_bytes());
        long_run.extend([0; 24]);
        for bytes in [empty_run, long_run] {
            let mut items = Vec::new();
            decode_items::<u64>(&bytes, 2, |item| items.push(item));
            assert!(
                matches!(&items[..], [Err(ItemError::Undecodable(a)), Err(ItemError::Undecodable(_))] if a.contains("run of")),
                "{items:?}"
            );
        }
    }
}
