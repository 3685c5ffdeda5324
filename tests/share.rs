//! Sharing objects with children that were not forked from their creator:
//! every shared type travels as a `Token` in the arguments of a `Spawn`
//! child (a few through `ForkServer` and `Fork` too), the child uses it,
//! and the parent sees the effect. Then the errors: a token attached as the
//! wrong type, serialized where its descriptors cannot travel, or naming a
//! descriptor that did not come; and no descriptor left behind.
//!
//! The tests count this process's fds and share one fork server, so they
//! run one at a time ([`serial`]).

mod common;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::{Guard, WATCHDOG, join};
use mproc::share::{Share, ShareError, Token, TokenError, decode, encode};
use mproc::{
    Array, Barrier, BoundedSemaphore, Condition, Connection, Error, Event, JoinableQueue,
    LayoutError, Lock, PodQueue, Process, ProcessError, PutError, Queue, RLock, Receiver,
    RecvError, Semaphore, SendError, Sender, SimpleQueue, StartMethod, Value, pipe, pipe_simplex,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mproc::enable_test_support!();

/// Held by every test of this file: they share this process's fork server
/// and its fd table.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts `f(args)` with `method`; the child is killed when the guard drops.
fn start<A, T>(method: StartMethod, f: fn(A) -> T, args: A) -> Guard<T>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    T: Serialize + DeserializeOwned,
{
    Guard(
        Process::builder()
            .start_method(method)
            // Only `Fork` looks at it: the test harness runs threads that
            // only wait.
            .allow_threaded_fork(true)
            .spawn_fn(f, args)
            .unwrap_or_else(|error| panic!("start a child with {method:?}: {error}")),
    )
}

/// The number of open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---- Lock and RLock: held by the child, seen held by the parent ----

/// A lock and the two events of a hand-over: the child sets `held` once it
/// holds the lock and releases it once `go` is set.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct HandOver<L> {
    lock: Token<L>,
    held: Token<Event>,
    go: Token<Event>,
}

fn hold_lock(args: HandOver<Lock>) -> u32 {
    let lock = args.lock.attach().unwrap();
    let (held, go) = (args.held.attach().unwrap(), args.go.attach().unwrap());
    let guard = lock.lock();
    held.set();
    assert!(go.wait_timeout(WATCHDOG), "the parent never said go");
    drop(guard);
    std::process::id()
}

fn lock_scenario(method: StartMethod) {
    let lock = Lock::new().unwrap();
    let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
    let args = HandOver {
        lock: lock.token().unwrap(),
        held: held.token().unwrap(),
        go: go.token().unwrap(),
    };
    let mut child = start(method, hold_lock, args);
    assert!(held.wait_timeout(WATCHDOG), "the child never took the lock");
    assert!(lock.try_lock().is_none(), "the child holds the lock");
    assert_eq!(lock.owner(), Some(child.pid()));
    go.set();
    assert_eq!(join(&mut child), child.pid());
    assert!(lock.try_lock().is_some(), "the child released the lock");
}

fn hold_rlock(args: HandOver<RLock>) -> u32 {
    let lock = args.lock.attach().unwrap();
    let (held, go) = (args.held.attach().unwrap(), args.go.attach().unwrap());
    let outer = lock.lock();
    let inner = lock.lock();
    let depth = lock.count();
    held.set();
    assert!(go.wait_timeout(WATCHDOG), "the parent never said go");
    drop(inner);
    drop(outer);
    depth
}

fn rlock_scenario(method: StartMethod) {
    let lock = RLock::new().unwrap();
    let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
    let args = HandOver {
        lock: lock.token().unwrap(),
        held: held.token().unwrap(),
        go: go.token().unwrap(),
    };
    let mut child = start(method, hold_rlock, args);
    assert!(held.wait_timeout(WATCHDOG), "the child never took the lock");
    assert!(lock.try_lock().is_none(), "the child holds the lock");
    assert_eq!(lock.owner(), Some(child.pid()));
    go.set();
    assert_eq!(join(&mut child), 2, "the child held it twice");
    assert!(lock.try_lock().is_some(), "the child released the lock");
}

// ---- Semaphores, Event, Condition, Barrier ----

fn take_one_give_three(semaphore: Token<Semaphore>) -> bool {
    let semaphore = semaphore.attach().unwrap();
    let took = semaphore.try_acquire();
    semaphore.release_n(3).unwrap();
    took
}

fn semaphore_scenario(method: StartMethod) {
    let semaphore = Semaphore::new(1).unwrap();
    let mut child = start(method, take_one_give_three, semaphore.token().unwrap());
    assert!(join(&mut child), "the child took the permit");
    assert_eq!(semaphore.value(), 3);
}

fn overflow_bounded(semaphore: Token<BoundedSemaphore>) -> (bool, bool) {
    let semaphore = semaphore.attach().unwrap();
    semaphore.acquire();
    let first = semaphore.release().is_ok();
    let second = semaphore.release().is_err();
    (first, second)
}

fn bounded_semaphore_scenario(method: StartMethod) {
    let semaphore = BoundedSemaphore::new(2).unwrap();
    let mut child = start(method, overflow_bounded, semaphore.token().unwrap());
    assert_eq!(
        join(&mut child),
        (true, true),
        "release above the bound fails"
    );
    assert_eq!(semaphore.value(), 2);
}

fn set_event(event: Token<Event>) {
    event.attach().unwrap().set();
}

fn event_scenario(method: StartMethod) {
    let event = Event::new().unwrap();
    let mut child = start(method, set_event, event.token().unwrap());
    assert!(event.wait_timeout(WATCHDOG), "the child set the event");
    join(&mut child);
}

fn notify((cond, ready): (Token<Condition>, Token<Value<u32>>)) {
    let (cond, ready) = (cond.attach().unwrap(), ready.attach().unwrap());
    let guard = cond.lock();
    ready.set(1);
    drop(guard);
    cond.notify_all();
}

fn condition_scenario(method: StartMethod) {
    let cond = Condition::new().unwrap();
    let ready = Value::new(0u32).unwrap();
    let mut guard = cond.lock();
    let mut child = start(
        method,
        notify,
        (cond.token().unwrap(), ready.token().unwrap()),
    );
    // The child needs the lock to change the state: it waits until this
    // wait releases it.
    assert!(cond.wait_for_timeout(&mut guard, WATCHDOG, || ready.get() == 1));
    drop(guard);
    join(&mut child);
}

fn meet(barrier: Token<Barrier>) -> u32 {
    barrier.attach().unwrap().wait_timeout(WATCHDOG).unwrap()
}

fn barrier_scenario(method: StartMethod) {
    let barrier = Barrier::new(2).unwrap();
    let mut child = start(method, meet, barrier.token().unwrap());
    let mine = barrier.wait_timeout(WATCHDOG).unwrap();
    let theirs = join(&mut child);
    assert_eq!(BTreeSet::from([mine, theirs]), BTreeSet::from([0, 1]));
}

// ---- Value and Array ----

fn add_41(value: Token<Value<u64>>) {
    *value.attach().unwrap().lock() += 41;
}

fn value_scenario(method: StartMethod) {
    let value = Value::new(1u64).unwrap();
    let mut child = start(method, add_41, value.token().unwrap());
    join(&mut child);
    assert_eq!(value.get(), 42);
}

fn squares(array: Token<Array<u32>>) -> usize {
    let array = array.attach().unwrap();
    let mut guard = array.lock();
    for (i, slot) in guard.iter_mut().enumerate() {
        *slot = (i * i) as u32;
    }
    guard.len()
}

fn array_scenario(method: StartMethod) {
    let array = Array::new(&[0u32; 6]).unwrap();
    let mut child = start(method, squares, array.token().unwrap());
    assert_eq!(join(&mut child), 6);
    assert_eq!(array.to_vec(), [0, 1, 4, 9, 16, 25]);
}

// ---- Queues: both directions ----

fn shout(queues: Queues<Queue<String>>) {
    let (inbox, outbox) = (queues.0.attach().unwrap(), queues.1.attach().unwrap());
    while let Ok(text) = inbox.get_timeout(WATCHDOG) {
        outbox.put(text.to_uppercase()).unwrap();
    }
}

fn queue_scenario(method: StartMethod) {
    let (to_child, from_child) = (Queue::new(4).unwrap(), Queue::new(4).unwrap());
    let mut child = start(
        method,
        shout,
        (to_child.token().unwrap(), from_child.token().unwrap()),
    );
    for word in ["ping", "pong"] {
        to_child.put(word.to_owned()).unwrap();
        assert_eq!(
            from_child.get_timeout(WATCHDOG).unwrap(),
            word.to_uppercase()
        );
    }
    // A message longer than the buffer streams through.
    let long = "x".repeat(1 << 20);
    to_child.put(long.clone()).unwrap();
    assert_eq!(
        from_child.get_timeout(WATCHDOG).unwrap(),
        long.to_uppercase()
    );
    to_child.close();
    join(&mut child);
}

fn sum_pod((inbox, outbox): Queues<PodQueue<u64>>) {
    let (inbox, outbox) = (inbox.attach().unwrap(), outbox.attach().unwrap());
    let mut values = [0u64; 100];
    let mut got = 0;
    while got < values.len() {
        got += inbox.get_many(&mut values[got..]);
    }
    outbox.put(values.iter().sum());
}

fn pod_queue_scenario(method: StartMethod) {
    let (to_child, from_child) = (PodQueue::new(32).unwrap(), PodQueue::new(1).unwrap());
    let mut child = start(
        method,
        sum_pod,
        (to_child.token().unwrap(), from_child.token().unwrap()),
    );
    let values: Vec<u64> = (1..=100).collect();
    to_child.put_many(&values);
    assert_eq!(from_child.get_timeout(WATCHDOG).unwrap(), 5050);
    join(&mut child);
}

fn work_off(queue: Token<JoinableQueue<u32>>) -> u32 {
    let queue = queue.attach().unwrap();
    let mut sum = 0;
    for _ in 0..3 {
        sum += queue.get_timeout(WATCHDOG).unwrap();
        queue.task_done().unwrap();
    }
    sum
}

fn joinable_queue_scenario(method: StartMethod) {
    let queue = JoinableQueue::new(8).unwrap();
    for n in [1, 2, 3] {
        queue.put(n).unwrap();
    }
    let mut child = start(method, work_off, queue.token().unwrap());
    queue.join_timeout(WATCHDOG).unwrap();
    assert_eq!(queue.unfinished(), 0);
    assert_eq!(join(&mut child), 6);
}

/// Two queues: one to the child, one back.
type Queues<Q> = (Token<Q>, Token<Q>);

fn reply_simple((inbox, outbox): Queues<SimpleQueue<Vec<u8>>>) {
    let (inbox, outbox) = (inbox.attach().unwrap(), outbox.attach().unwrap());
    let mut bytes = inbox.get().unwrap();
    bytes.reverse();
    outbox.put(bytes).unwrap();
}

fn simple_queue_scenario(method: StartMethod) {
    let (to_child, from_child) = (SimpleQueue::new().unwrap(), SimpleQueue::new().unwrap());
    let mut child = start(
        method,
        reply_simple,
        (to_child.token().unwrap(), from_child.token().unwrap()),
    );
    to_child.put(vec![1, 2, 3]).unwrap();
    join(&mut child);
    assert_eq!(from_child.get().unwrap(), [3, 2, 1]);
}

// ---- Pipes: both directions, and disconnection when the child exits ----

fn echo(end: Token<Connection<String>>) -> usize {
    let end = end.attach().unwrap();
    let mut echoed = 0;
    while let Ok(text) = end.recv_timeout(WATCHDOG) {
        end.send(text.to_uppercase()).unwrap();
        echoed += 1;
        if text == "bye" {
            break;
        }
    }
    echoed
}

fn connection_scenario(method: StartMethod) {
    let (ours, theirs) = pipe::<String>().unwrap();
    let mut child = start(method, echo, theirs.token().unwrap());
    // The child holds the only other copy of its end now.
    drop(theirs);
    for word in ["hi", "bye"] {
        ours.send(word.to_owned()).unwrap();
        assert_eq!(ours.recv_timeout(WATCHDOG).unwrap(), word.to_uppercase());
    }
    assert_eq!(join(&mut child), 2);
    assert_eq!(ours.recv_timeout(WATCHDOG), Err(RecvError::Disconnected));
}

fn count_up(tx: Token<Sender<u64>>) {
    let tx = tx.attach().unwrap();
    (1..=3).for_each(|n| tx.send(n).unwrap());
}

fn add_up(rx: Token<Receiver<u64>>) -> u64 {
    let rx = rx.attach().unwrap();
    let mut sum = 0;
    loop {
        match rx.recv_timeout(WATCHDOG) {
            Ok(n) => sum += n,
            Err(RecvError::Disconnected) => return sum,
            Err(error) => panic!("receiving: {error}"),
        }
    }
}

fn simplex_scenario(method: StartMethod) {
    // The child sends; the parent sees it gone once it exits.
    let (rx, tx) = pipe_simplex::<u64>().unwrap();
    let mut child = start(method, count_up, tx.token().unwrap());
    drop(tx);
    let got: Vec<u64> = std::iter::from_fn(|| rx.recv_timeout(WATCHDOG).ok()).collect();
    assert_eq!(got, [1, 2, 3]);
    join(&mut child);
    assert_eq!(rx.try_recv(), Err(RecvError::Disconnected));

    // The child receives until the parent drops its end.
    let (rx, tx) = pipe_simplex::<u64>().unwrap();
    let mut child = start(method, add_up, rx.token().unwrap());
    drop(rx);
    (1..=4).for_each(|n| tx.send(n).unwrap());
    drop(tx);
    assert_eq!(join(&mut child), 10);
}

/// A scenario: a type shared with a child started this way.
type Scenario = fn(StartMethod);

/// Every scenario, by type.
const SCENARIOS: [(&str, Scenario); 15] = [
    ("Lock", lock_scenario),
    ("RLock", rlock_scenario),
    ("Semaphore", semaphore_scenario),
    ("BoundedSemaphore", bounded_semaphore_scenario),
    ("Event", event_scenario),
    ("Condition", condition_scenario),
    ("Barrier", barrier_scenario),
    ("Value", value_scenario),
    ("Array", array_scenario),
    ("Queue", queue_scenario),
    ("PodQueue", pod_queue_scenario),
    ("JoinableQueue", joinable_queue_scenario),
    ("SimpleQueue", simple_queue_scenario),
    ("Connection", connection_scenario),
    ("Sender/Receiver", simplex_scenario),
];

#[test]
fn every_type_through_spawn() {
    let _serial = serial();
    for (name, scenario) in SCENARIOS {
        eprintln!("Spawn: {name}");
        scenario(StartMethod::Spawn);
    }
}

#[test]
fn every_type_through_the_fork_server() {
    let _serial = serial();
    for (name, scenario) in SCENARIOS {
        eprintln!("ForkServer: {name}");
        scenario(StartMethod::ForkServer);
    }
}

#[test]
fn tokens_in_the_arguments_of_a_forked_child() {
    let _serial = serial();
    lock_scenario(StartMethod::Fork);
    queue_scenario(StartMethod::Fork);
    joinable_queue_scenario(StartMethod::Fork);
    // A closure that captures a token works too: the child inherits it.
    let value = Value::new(1u64).unwrap();
    let token = value.token().unwrap();
    let mut child = common::spawn(move || add_41(token));
    join(&mut child);
    assert_eq!(value.get(), 42);
}

#[test]
fn nothing_is_left_behind() {
    let _serial = serial();
    // The fork server stays once started, and a joined forked child's
    // output pipe stays for the next one: set both up before counting.
    event_scenario(StartMethod::ForkServer);
    lock_scenario(StartMethod::Fork);
    let before = open_fds();
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        for (_, scenario) in SCENARIOS {
            scenario(method);
        }
    }
    lock_scenario(StartMethod::Fork);
    assert_eq!(open_fds(), before, "fds leaked");
}

// ---- Errors ----

#[test]
fn a_token_attached_as_another_type_is_a_typed_error() {
    let _serial = serial();
    // Another kind of object: the token's name says so.
    let sent = encode(&Lock::new().unwrap().token().unwrap()).unwrap();
    let token: Token<Semaphore> = decode(&sent.bytes, sent.fds).unwrap();
    match token.attach() {
        Err(Error::Token(TokenError::WrongKind { expected, found })) => {
            assert_eq!((expected, found.as_str()), ("Semaphore", "Lock"));
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    // Another element type: the region's header says so.
    let sent = encode(&Queue::<u32>::new(1).unwrap().token().unwrap()).unwrap();
    let token: Token<Queue<u64>> = decode(&sent.bytes, sent.fds).unwrap();
    assert!(matches!(
        token.attach(),
        Err(Error::Layout(LayoutError::TypeMismatch { .. }))
    ));
    // A descriptor that is no object's region.
    let (a, _b) = pipe::<u8>().unwrap();
    let [socket, ..]: [_; 3] = {
        let sent = encode(&a.token().unwrap()).unwrap();
        sent.fds.try_into().unwrap()
    };
    let bytes = postcard::to_allocvec(&("Lock", vec![0u32])).unwrap();
    let token: Token<Lock> = decode(&bytes, vec![socket]).unwrap();
    assert!(token.attach().is_err());
    // The wrong number of descriptors.
    let sent = encode(&JoinableQueue::<u8>::new(1).unwrap().token().unwrap()).unwrap();
    let bytes = postcard::to_allocvec(&("Queue", vec![0u32, 1])).unwrap();
    let token: Token<Queue<u8>> = decode(&bytes, sent.fds).unwrap();
    assert!(matches!(
        token.attach(),
        Err(Error::Token(TokenError::WrongFdCount {
            expected: 1,
            found: 2,
            ..
        }))
    ));
}

#[test]
fn a_token_outside_a_start_frame_is_refused_clearly() {
    let _serial = serial();
    let lock = Lock::new().unwrap();
    // Through a queue: bytes only, so the token refuses.
    let queue = Queue::<Token<Lock>>::new(1).unwrap();
    match queue.put(lock.token().unwrap()) {
        Err(PutError::Encode(_, error)) => {
            let message = error.to_string();
            assert!(message.contains("cannot be written as bytes"), "{message}");
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
    // Through a pipe likewise.
    let (a, _b) = pipe::<Token<Lock>>().unwrap();
    assert!(matches!(
        a.send(lock.token().unwrap()),
        Err(SendError::Encode(..))
    ));
    // Plain postcard: an error, never a panic.
    assert!(postcard::to_allocvec(&lock.token().unwrap()).is_err());
    // Too many descriptors for one child.
    let token = lock.token().unwrap();
    let many: Vec<Token<Lock>> = (0..253).map(|_| token.try_clone().unwrap()).collect();
    let result = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(drop_tokens, many);
    match result {
        Err(ProcessError::Start { reason }) => assert!(reason.contains("limit"), "{reason}"),
        Err(error) => panic!("expected a start error, got {error}"),
        Ok(_) => panic!("expected a start error, got a child"),
    }
}

fn drop_tokens(tokens: Vec<Token<Lock>>) -> usize {
    tokens.len()
}

#[test]
fn a_bogus_descriptor_index_is_an_error() {
    let _serial = serial();
    let lock = Lock::new().unwrap();
    let before = open_fds();
    let sent = encode(&lock.token().unwrap()).unwrap();
    // The descriptor did not come.
    assert!(matches!(
        decode::<Token<Lock>>(&sent.bytes, Vec::new()),
        Err(ShareError::MissingFd {
            index: 0,
            received: 0
        })
    ));
    // An index past those that came.
    let bogus = postcard::to_allocvec(&("Lock", vec![7u32])).unwrap();
    match decode::<Token<Lock>>(&bogus, sent.fds) {
        Err(error @ ShareError::MissingFd { .. }) => {
            assert!(error.to_string().contains("file descriptor 7"), "{error}");
        }
        other => panic!("expected MissingFd, got {other:?}"),
    }
    // The descriptors that came and were not taken are closed.
    assert_eq!(open_fds(), before);
}

#[test]
fn a_child_uses_many_objects_at_once() {
    let _serial = serial();
    // 3 tokens of a connection, 2 of a joinable queue, and more: all in one
    // frame.
    let (ours, theirs) = pipe::<String>().unwrap();
    let queue = JoinableQueue::<u32>::new(4).unwrap();
    queue.put(5).unwrap();
    let tokens: Vec<Token<Lock>> = (0..10)
        .map(|_| Lock::new().unwrap().token().unwrap())
        .collect();
    let mut child = start(
        StartMethod::Spawn,
        many_objects,
        (theirs.token().unwrap(), queue.token().unwrap(), tokens),
    );
    drop(theirs);
    assert_eq!(ours.recv_timeout(WATCHDOG).unwrap(), "5 10");
    queue.join_timeout(WATCHDOG).unwrap();
    join(&mut child);
}

/// A pipe end, a joinable queue and locks.
type Many = (
    Token<Connection<String>>,
    Token<JoinableQueue<u32>>,
    Vec<Token<Lock>>,
);

fn many_objects((end, queue, locks): Many) {
    let (end, queue) = (end.attach().unwrap(), queue.attach().unwrap());
    let locks: Vec<Lock> = locks.into_iter().map(|t| t.attach().unwrap()).collect();
    let n = queue.get().unwrap();
    queue.task_done().unwrap();
    end.send(format!("{n} {}", locks.len())).unwrap();
}
