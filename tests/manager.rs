//! `Manager` across real processes: every proxy and verb, proxies in
//! children of every start method, wrong types and wrong keys, malformed
//! and oversized frames, a client killed while it holds a lock, 16
//! processes counting under a manager lock, shutdown, a server that is
//! killed, and a manager dropped at the end of a scope.
//!
//! Every wait has a deadline ([`WATCHDOG`]) or a timeout, so a hang fails
//! the test instead of stalling CI.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{WATCHDOG, join, spawn};
use mproc::manager::wire::{self, Answer, Fault, Kind, Op, Reply, Request};
use mproc::{
    ArrayProxy, DictProxy, ListProxy, LockProxy, Manager, ManagerError, Process, StartMethod,
    ValueProxy,
};

mproc::enable_test_support!();

fn manager() -> Manager {
    Manager::start().expect("start a manager")
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

/// Whether process `pid` exists (zombies included).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn dict_verbs() {
    let manager = manager();
    let dict = manager.dict::<String, i64>().unwrap();
    assert!(dict.is_empty().unwrap());
    assert_eq!(dict.insert("a".into(), 1).unwrap(), None);
    assert_eq!(dict.insert("a".into(), 2).unwrap(), Some(1));
    assert_eq!(dict.get(&"a".into()).unwrap(), Some(2));
    assert_eq!(dict.get(&"zz".into()).unwrap(), None);
    assert!(dict.contains_key(&"a".into()).unwrap());
    dict.update([("b".to_owned(), 3), ("c".to_owned(), 4)])
        .unwrap();
    assert_eq!(dict.len().unwrap(), 3);
    let mut keys = dict.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
    let mut values = dict.values().unwrap();
    values.sort();
    assert_eq!(values, [2, 3, 4]);
    let mut items = dict.items().unwrap();
    items.sort();
    assert_eq!(items, [("a".into(), 2), ("b".into(), 3), ("c".into(), 4)]);
    assert_eq!(dict.get_or_insert("a".into(), 9).unwrap(), 2);
    assert_eq!(dict.get_or_insert("d".into(), 9).unwrap(), 9);
    assert_eq!(dict.remove(&"d".into()).unwrap(), Some(9));
    assert_eq!(dict.remove(&"d".into()).unwrap(), None);
    dict.clear().unwrap();
    assert_eq!(dict.len().unwrap(), 0);
}

#[test]
fn list_and_array_verbs() {
    let manager = manager();
    let list = manager.list::<String>().unwrap();
    list.push("a".into()).unwrap();
    list.extend(["b".into(), "c".into()]).unwrap();
    list.insert(0, "z".into()).unwrap();
    list.insert(100, "end".into()).unwrap();
    assert_eq!(list.to_vec().unwrap(), ["z", "a", "b", "c", "end"]);
    assert_eq!(list.get(1).unwrap(), "a");
    list.set(1, "A".into()).unwrap();
    assert_eq!(list.remove(0).unwrap(), "z");
    assert_eq!(list.pop().unwrap(), Some("end".into()));
    assert_eq!(list.len().unwrap(), 3);
    assert_eq!(list.iter().unwrap().collect::<Vec<_>>(), ["A", "b", "c"]);
    assert!(matches!(
        list.get(3),
        Err(ManagerError::IndexOutOfRange { index: 3, len: 3 })
    ));
    assert!(matches!(
        list.set(7, "x".into()),
        Err(ManagerError::IndexOutOfRange { .. })
    ));
    list.clear().unwrap();
    assert_eq!(list.pop().unwrap(), None);
    assert!(list.is_empty().unwrap());

    let array = manager.array(0..10u32).unwrap();
    assert_eq!(array.len().unwrap(), 10);
    array.set(0, 5).unwrap();
    assert_eq!(array.get(0).unwrap(), 5);
    assert_eq!(array.to_vec().unwrap(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(matches!(
        array.get(10),
        Err(ManagerError::IndexOutOfRange { index: 10, len: 10 })
    ));
}

#[test]
fn value_and_namespace_verbs() {
    let manager = manager();
    let value = manager.value(1.5f64).unwrap();
    assert_eq!(value.get().unwrap(), 1.5);
    value.set(2.5).unwrap();
    assert_eq!(value.add(1.0).unwrap(), 3.5);
    assert_eq!(value.replace(2.0).unwrap(), 3.5);
    assert_eq!(value.compare_and_swap(&2.0, 7.0).unwrap(), Ok(2.0));
    assert_eq!(value.compare_and_swap(&2.0, 8.0).unwrap(), Err(7.0));

    let small = manager.value(250u8).unwrap();
    assert_eq!(small.add(5).unwrap(), 255);
    assert!(matches!(small.add(1), Err(ManagerError::Overflow)));
    assert_eq!(small.get().unwrap(), 255);

    let text = manager.value("x".to_owned()).unwrap();
    assert_eq!(text.replace("y".into()).unwrap(), "x");

    let ns = manager.namespace().unwrap();
    assert_eq!(ns.get::<u32>("missing").unwrap(), None);
    ns.set("n", 3u32).unwrap();
    ns.set("name", "ada".to_owned()).unwrap();
    ns.set("pair", (1u8, vec![2u16])).unwrap();
    assert_eq!(ns.get::<u32>("n").unwrap(), Some(3));
    assert_eq!(
        ns.get::<(u8, Vec<u16>)>("pair").unwrap(),
        Some((1, vec![2]))
    );
    assert!(matches!(ns.get::<u64>("n"), Err(ManagerError::FieldType(name)) if name == "n"));
    assert_eq!(ns.names().unwrap(), ["n", "name", "pair"]);
    assert!(ns.remove("n").unwrap());
    assert!(!ns.remove("n").unwrap());
}

#[test]
fn lock_rlock_and_semaphore_verbs() {
    let manager = manager();
    let lock = manager.lock().unwrap();
    {
        let _guard = lock.lock().unwrap();
        // This thread's connection holds it: another process cannot take it.
        let mut child = spawn({
            let lock = lock.clone();
            move || lock.acquire_timeout(Duration::from_millis(50)).unwrap()
        });
        assert!(!join(&mut child));
    }
    assert!(lock.try_acquire().unwrap());
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(ManagerError::NotOwner)));
    // A timeout past what a clock holds waits as long as it takes.
    assert!(lock.acquire_timeout(Duration::MAX).unwrap());
    lock.release().unwrap();
    let guard = lock.lock_timeout(Duration::from_secs(5)).unwrap();
    assert!(guard.is_some());
    drop(guard);

    let rlock = manager.rlock().unwrap();
    rlock.acquire().unwrap();
    assert!(rlock.try_acquire().unwrap());
    rlock.release().unwrap();
    let mut child = spawn({
        let rlock = rlock.clone();
        move || rlock.try_acquire().unwrap()
    });
    assert!(!join(&mut child), "still held once");
    rlock.release().unwrap();
    assert!(matches!(rlock.release(), Err(ManagerError::NotOwner)));
    let mut child = spawn({
        let rlock = rlock.clone();
        move || rlock.try_acquire().unwrap()
    });
    assert!(join(&mut child));

    let semaphore = manager.semaphore(2).unwrap();
    assert!(semaphore.try_acquire().unwrap());
    semaphore.acquire().unwrap();
    assert!(!semaphore.try_acquire().unwrap());
    assert!(
        !semaphore
            .acquire_timeout(Duration::from_millis(20))
            .unwrap()
    );
    semaphore.release().unwrap();
    assert_eq!(semaphore.value().unwrap(), 1);
}

#[test]
fn event_condition_and_barrier_verbs() {
    let manager = manager();
    let event = manager.event().unwrap();
    assert!(!event.is_set().unwrap());
    assert!(!event.wait_timeout(Duration::from_millis(20)).unwrap());
    let mut child = spawn({
        let event = event.clone();
        move || event.wait_timeout(WATCHDOG).unwrap()
    });
    event.set().unwrap();
    assert!(join(&mut child));
    event.wait().unwrap();
    event.clear().unwrap();
    assert!(!event.is_set().unwrap());

    let cond = manager.condition().unwrap();
    let ready = manager.value(false).unwrap();
    assert!(matches!(cond.notify(1), Err(ManagerError::NotOwner)));
    assert!(matches!(cond.wait(), Err(ManagerError::NotOwner)));
    let mut child = spawn({
        let (cond, ready) = (cond.clone(), ready.clone());
        move || {
            let _guard = cond.lock().unwrap();
            while !ready.get().unwrap() {
                assert!(cond.wait_timeout(WATCHDOG).unwrap(), "notified");
            }
            "woken".to_owned()
        }
    });
    {
        // Before the child waits or while it does: either way it sees the
        // flag.
        let _guard = cond.lock().unwrap();
        ready.set(true).unwrap();
        cond.notify_all().unwrap();
    }
    assert_eq!(join(&mut child), "woken");
    {
        let _guard = cond.lock().unwrap();
        assert!(!cond.wait_timeout(Duration::from_millis(20)).unwrap());
        // The lock is held again after a wait that timed out.
        cond.notify(1).unwrap();
    }

    let barrier = manager.barrier(3).unwrap();
    assert_eq!(barrier.parties().unwrap(), 3);
    let mut children: Vec<_> = (0..2)
        .map(|_| {
            spawn({
                let barrier = barrier.clone();
                move || barrier.wait_timeout(WATCHDOG).unwrap()
            })
        })
        .collect();
    let mine = barrier.wait_timeout(WATCHDOG).unwrap();
    let mut indices: Vec<u64> = children.iter_mut().map(|child| join(child)).collect();
    indices.push(mine);
    indices.sort();
    assert_eq!(indices, [0, 1, 2]);
    // A timeout breaks it, as Python's does.
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(20)),
        Err(ManagerError::BrokenBarrier)
    ));
    assert!(barrier.broken().unwrap());
    barrier.reset().unwrap();
    assert!(!barrier.broken().unwrap());
    assert_eq!(barrier.n_waiting().unwrap(), 0);
    barrier.abort().unwrap();
    assert!(matches!(barrier.wait(), Err(ManagerError::BrokenBarrier)));
    assert!(matches!(manager.barrier(0), Err(ManagerError::Invalid(_))));
}

#[test]
fn queue_verbs() {
    let manager = manager();
    let queue = manager.queue::<Vec<u32>>(2).unwrap();
    queue.put(vec![1]).unwrap();
    queue
        .put_timeout(vec![2, 3], Duration::from_secs(1))
        .unwrap();
    assert!(matches!(queue.try_put(vec![]), Err(ManagerError::Full)));
    assert!(matches!(
        queue.put_timeout(vec![], Duration::from_millis(20)),
        Err(ManagerError::Timeout)
    ));
    assert_eq!(queue.len().unwrap(), 2);
    assert_eq!(queue.get().unwrap(), [1]);
    assert_eq!(queue.try_get().unwrap(), [2, 3]);
    assert!(matches!(queue.try_get(), Err(ManagerError::Empty)));
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(20)),
        Err(ManagerError::Timeout)
    ));
    let mut child = spawn({
        let queue = queue.clone();
        move || (0..100).for_each(|n| queue.put(vec![n]).unwrap())
    });
    let got: Vec<u32> = (0..100)
        .map(|_| queue.get_timeout(WATCHDOG).unwrap()[0])
        .collect();
    join(&mut child);
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(queue.is_empty().unwrap());
    assert!(matches!(
        manager.queue::<u8>(0),
        Err(ManagerError::Invalid(_))
    ));
}

fn child_work((value, array, list): (ValueProxy<f64>, ArrayProxy<i32>, ListProxy<String>)) -> u32 {
    value.set(2.5).unwrap();
    array.set(0, 5).unwrap();
    list.push("Hello".into()).unwrap();
    std::process::id()
}

#[test]
fn proxies_work_in_children_of_every_start_method() {
    let manager = manager();
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let value = manager.value(0.0f64).unwrap();
        let array = manager.array(0..10).unwrap();
        let list = manager.list::<String>().unwrap();
        let mut child = Process::builder()
            .start_method(method)
            .allow_threaded_fork(true)
            .spawn_fn(child_work, (value.clone(), array.clone(), list.clone()))
            .unwrap();
        let pid = join(&mut child);
        assert_ne!(pid, std::process::id());
        assert_eq!(value.get().unwrap(), 2.5, "{method:?}");
        assert_eq!(array.to_vec().unwrap(), [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(list.to_vec().unwrap(), ["Hello"]);
    }
}

#[test]
fn a_forked_child_does_not_use_its_parent_s_connection() {
    let manager = manager();
    let lock = manager.lock().unwrap();
    // The parent's thread has a connection, and holds the lock on it.
    let _guard = lock.lock().unwrap();
    let mut child = spawn({
        let lock = lock.clone();
        // With the parent's connection it would be the owner.
        move || (lock.try_acquire().unwrap(), lock.release().is_err())
    });
    assert_eq!(join(&mut child), (false, true));
}

#[test]
fn wrong_types_are_refused() {
    let manager = manager();
    let dict = manager.dict::<String, u32>().unwrap();
    dict.insert("a".into(), 1).unwrap();
    manager.register("scores", &dict).unwrap();
    assert!(matches!(
        manager.register("scores", &dict),
        Err(ManagerError::NameTaken(_))
    ));
    let same = manager.lookup::<DictProxy<String, u32>>("scores").unwrap();
    assert_eq!(same.get(&"a".into()).unwrap(), Some(1));
    assert!(matches!(
        manager.lookup::<DictProxy<u64, u32>>("scores"),
        Err(ManagerError::WrongType { kind: "dict" })
    ));
    assert!(matches!(
        manager.lookup::<ListProxy<u32>>("scores"),
        Err(ManagerError::WrongKind {
            object: "dict",
            proxy: "list"
        })
    ));
    assert!(matches!(
        manager.lookup::<LockProxy>("nobody"),
        Err(ManagerError::UnknownName(_))
    ));
    // A proxy sent to a child that reads it as another type.
    let bytes = postcard::to_allocvec(&dict).unwrap();
    let wrong: DictProxy<String, String> = postcard::from_bytes(&bytes).unwrap();
    let error = wrong.get(&"a".into()).unwrap_err();
    assert!(matches!(error, ManagerError::WrongType { kind: "dict" }));
    assert!(error.to_string().contains("fingerprints differ"), "{error}");
    // The object is unharmed.
    assert_eq!(dict.len().unwrap(), 1);
}

/// A TCP connection that passed the handshake, speaking frames by hand.
struct Raw(TcpStream);

impl Raw {
    fn connect(manager: &Manager, key: &[u8]) -> Raw {
        let mut stream = TcpStream::connect(manager.tcp_address().unwrap()).unwrap();
        stream.set_read_timeout(Some(WATCHDOG)).unwrap();
        wire::client_handshake(&mut stream, key).unwrap();
        Raw(stream)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    fn send(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.send_raw(&frame);
    }

    fn reply(&mut self) -> Option<Reply> {
        let mut header = [0u8; 4];
        if self.0.read_exact(&mut header).is_err() {
            return None;
        }
        let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
        self.0.read_exact(&mut body).ok()?;
        Some(postcard::from_bytes(&body).unwrap())
    }

    fn request(&mut self, request: &Request) -> Option<Reply> {
        self.send(&postcard::to_allocvec(request).unwrap());
        self.reply()
    }

    /// Whether the server closed the connection.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8];
        matches!(self.0.read(&mut byte), Ok(0) | Err(_))
    }
}

#[test]
fn wrong_authkey_is_refused_and_the_server_carries_on() {
    let server = Manager::serve("127.0.0.1:0", b"right key".to_vec()).unwrap();
    let addr = server.tcp_address().unwrap();
    let counter = server.value(0u64).unwrap();
    server.register("counter", &counter).unwrap();
    let client = Manager::connect(addr, b"right key".to_vec()).unwrap();
    let remote = client.lookup::<ValueProxy<u64>>("counter").unwrap();
    assert_eq!(remote.add(1).unwrap(), 1);

    let error = Manager::connect(addr, b"wrong key".to_vec()).unwrap_err();
    assert!(matches!(error, ManagerError::Authentication), "{error}");
    // By hand: the server's challenge answered with the wrong key ends in
    // a failure message and a closed connection.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    assert!(matches!(
        wire::client_handshake(&mut stream, b"guess"),
        Err(ManagerError::Authentication)
    ));
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // Garbage instead of a handshake: closed too.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    stream.write_all(&[0xff; 64]).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);

    // The server and its clients carry on.
    assert_eq!(remote.add(1).unwrap(), 2);
    assert_eq!(counter.get().unwrap(), 2);
    let again = Manager::connect(addr, b"right key".to_vec()).unwrap();
    assert_eq!(
        again
            .lookup::<ValueProxy<u64>>("counter")
            .unwrap()
            .get()
            .unwrap(),
        2
    );
}

#[test]
fn malformed_oversized_and_truncated_frames_do_not_hurt_the_server() {
    let server = Manager::serve("127.0.0.1:0", b"k".to_vec()).unwrap();
    let list = server.list::<u32>().unwrap();
    list.push(1).unwrap();

    let mut raw = Raw::connect(&server, b"k");
    // Bytes that are no request: an error reply, and the connection lives.
    raw.send(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
    assert!(matches!(raw.reply(), Some(Err(Fault::Malformed(_)))));
    raw.send(&[]);
    assert!(matches!(raw.reply(), Some(Err(Fault::Malformed(_)))));
    // An unknown object, and a request a list does not do.
    let call = |id, op| Request::Call {
        id,
        kind: Kind::List,
        fingerprint: 0,
        op,
    };
    assert_eq!(
        raw.request(&call(999_999, Op::Len)),
        Some(Err(Fault::UnknownObject(999_999)))
    );
    let created = raw.request(&Request::Create {
        kind: Kind::List,
        fingerprint: 0,
        init: wire::Init::Empty,
    });
    let Some(Ok(Answer::Id(id))) = created else {
        panic!("{created:?}");
    };
    assert!(matches!(
        raw.request(&call(id, Op::IsSet)),
        Some(Err(Fault::Unsupported { .. }))
    ));
    assert!(matches!(
        raw.request(&call(id, Op::Get(u64::MAX))),
        Some(Err(Fault::IndexOutOfRange { .. }))
    ));
    // A length over the limit: refused before anything is allocated, and
    // the connection closed.
    raw.send_raw(&u32::MAX.to_le_bytes());
    assert!(matches!(raw.reply(), Some(Err(Fault::TooLarge { .. }))));
    assert!(raw.closed());

    // A frame cut short by a client that goes away.
    let mut cut = Raw::connect(&server, b"k");
    cut.send_raw(&100u32.to_le_bytes());
    cut.send_raw(&[1, 2, 3]);
    drop(cut);
    // A connection that passes the handshake and leaves at once.
    drop(Raw::connect(&server, b"k"));

    // The server and its other clients are unaffected.
    list.push(2).unwrap();
    assert_eq!(list.to_vec().unwrap(), [1, 2]);
    let mut fresh = Raw::connect(&server, b"k");
    assert_eq!(
        fresh.request(&call(id, Op::Len)),
        Some(Ok(Answer::Count(0)))
    );
}

#[test]
fn a_client_killed_while_holding_a_lock_releases_it() {
    let manager = manager();
    let lock = manager.lock().unwrap();
    let held = manager.event().unwrap();
    let mut child = spawn({
        let (lock, held) = (lock.clone(), held.clone());
        move || {
            let _guard = lock.lock().unwrap();
            held.set().unwrap();
            std::thread::sleep(WATCHDOG);
        }
    });
    assert!(held.wait_timeout(WATCHDOG).unwrap());
    assert!(!lock.try_acquire().unwrap());
    kill(child.pid());
    assert!(child.join_timeout(WATCHDOG).is_err());
    assert!(
        lock.acquire_timeout(WATCHDOG).unwrap(),
        "released by the server"
    );
    lock.release().unwrap();
}

#[test]
fn sixteen_processes_increment_under_a_manager_lock() {
    const PROCESSES: usize = 16;
    const INCREMENTS: u64 = 10_000;
    let manager = manager();
    let counts = manager.dict::<String, u64>().unwrap();
    let lock = manager.lock().unwrap();
    counts.insert("n".into(), 0).unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let (counts, lock) = (counts.clone(), lock.clone());
            spawn(move || {
                let key = "n".to_owned();
                for _ in 0..INCREMENTS {
                    let _guard = lock.lock().unwrap();
                    let n = counts.get(&key).unwrap().unwrap();
                    counts.insert(key.clone(), n + 1).unwrap();
                }
            })
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    assert_eq!(
        counts.get(&"n".into()).unwrap(),
        Some(PROCESSES as u64 * INCREMENTS)
    );
    assert_eq!(PROCESSES as u64 * INCREMENTS, 160_000);
}

#[test]
fn concurrent_list_pushes_lose_nothing() {
    let manager = manager();
    let list = manager.list::<(u32, u32)>().unwrap();
    let mut children: Vec<_> = (0..8u32)
        .map(|child| {
            let list = list.clone();
            spawn(move || (0..1000).for_each(|n| list.push((child, n)).unwrap()))
        })
        .collect();
    for child in &mut children {
        join(child);
    }
    let mut items = list.to_vec().unwrap();
    assert_eq!(items.len(), 8000);
    // Each child's pushes arrive in its order.
    for child in 0..8 {
        let mine: Vec<u32> = items
            .iter()
            .filter(|(who, _)| *who == child)
            .map(|&(_, n)| n)
            .collect();
        assert_eq!(mine, (0..1000).collect::<Vec<_>>());
    }
    items.sort();
    items.dedup();
    assert_eq!(items.len(), 8000);
}

#[test]
fn shutdown_stops_the_server_and_proxies_say_so() {
    let manager = manager();
    let dict = manager.dict::<u8, u8>().unwrap();
    let pid = manager.server_pid().unwrap();
    manager.shutdown().unwrap();
    assert!(!exists(pid), "the server process is gone and reaped");
    assert!(matches!(dict.len(), Err(ManagerError::ServerGone)));
    let mut child = spawn(move || matches!(dict.len(), Err(ManagerError::ServerGone)));
    assert!(join(&mut child));
}

#[test]
fn a_killed_server_is_a_clear_error_not_a_hang() {
    let manager = manager();
    let dict = manager.dict::<u8, u8>().unwrap();
    let event = manager.event().unwrap();
    dict.insert(1, 1).unwrap();
    let started = manager.event().unwrap();
    // A child waits in the server, forever, when the server dies (or
    // finds it dead when it asks: the same error either way).
    let mut waiter = spawn({
        let (event, started) = (event.clone(), started.clone());
        move || {
            started.set().unwrap();
            match event.wait() {
                Err(ManagerError::ServerGone) => "gone".to_owned(),
                other => format!("{other:?}"),
            }
        }
    });
    assert!(started.wait_timeout(WATCHDOG).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    kill(manager.server_pid().unwrap());
    assert_eq!(join(&mut waiter), "gone");
    assert!(matches!(dict.get(&1), Err(ManagerError::ServerGone)));
    assert!(matches!(dict.get(&1), Err(ManagerError::ServerGone)));
    assert!(matches!(manager.shutdown(), Err(ManagerError::ServerGone)));
}

#[test]
fn a_manager_dropped_at_the_end_of_a_scope_shuts_down() {
    let (pid, value) = {
        let manager = manager();
        let value = manager.value(1u32).unwrap();
        assert_eq!(value.get().unwrap(), 1);
        (manager.server_pid().unwrap(), value)
    };
    assert!(!exists(pid));
    assert!(matches!(value.get(), Err(ManagerError::ServerGone)));
    // A client dropping its manager leaves the server alone.
    let server = Manager::serve("127.0.0.1:0", b"k".to_vec()).unwrap();
    let list = server.list::<u8>().unwrap();
    server.register("l", &list).unwrap();
    {
        let client = Manager::connect(server.tcp_address().unwrap(), b"k".to_vec()).unwrap();
        client
            .lookup::<ListProxy<u8>>("l")
            .unwrap()
            .push(7)
            .unwrap();
    }
    assert_eq!(list.to_vec().unwrap(), [7]);
}

#[test]
fn the_server_dies_with_its_owner() {
    let pid = mproc::Value::new(0u32).unwrap();
    let mut owner = spawn({
        let pid = pid.clone();
        move || {
            let manager = Manager::start().unwrap();
            pid.set(manager.server_pid().unwrap());
            std::thread::sleep(WATCHDOG);
        }
    });
    let deadline = std::time::Instant::now() + WATCHDOG;
    while pid.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the owner never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let server = pid.get();
    assert!(exists(server));
    kill(owner.pid());
    assert!(owner.join_timeout(WATCHDOG).is_err());
    while exists(server) {
        assert!(
            std::time::Instant::now() < deadline,
            "server {server} outlived its owner"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The fields of a proxy as it travels (see `Handle` in the manager).
#[derive(serde::Serialize, serde::Deserialize)]
struct ProxyFields {
    address: AddressFields,
    authkey: Vec<u8>,
    id: u64,
    kind: Kind,
    fingerprint: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum AddressFields {
    Local(String),
    Tcp(String),
}

#[test]
fn local_connections_authenticate_too() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};

    let manager = manager();
    let dict = manager.dict::<u8, u8>().unwrap();
    dict.insert(1, 2).unwrap();
    let mut fields: ProxyFields =
        postcard::from_bytes(&postcard::to_allocvec(&dict).unwrap()).unwrap();
    let AddressFields::Local(name) = &fields.address else {
        panic!("a local manager listens on a Unix socket");
    };
    let name = name.clone();
    fields.authkey = b"forged".to_vec();
    let forged: DictProxy<u8, u8> =
        postcard::from_bytes(&postcard::to_allocvec(&fields).unwrap()).unwrap();
    // Another process with the wrong key is refused.
    let mut child = spawn(move || matches!(forged.get(&1), Err(ManagerError::Authentication)));
    assert!(join(&mut child));
    // Garbage on the local socket: the connection is closed.
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut stream = UnixStream::connect_addr(&addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    let _ = stream.write_all(&[0xff; 300]);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // The server and the right key carry on.
    assert_eq!(dict.get(&1).unwrap(), Some(2));
    let mut child = spawn(move || dict.get(&1).unwrap());
    assert_eq!(join(&mut child), Some(2));
}

#[test]
fn serving_on_a_taken_address_is_a_start_error() {
    let first = Manager::serve("127.0.0.1:0", b"k".to_vec()).unwrap();
    let taken = first.tcp_address().unwrap();
    let error = Manager::serve(taken, b"k".to_vec()).unwrap_err();
    assert!(
        matches!(&error, ManagerError::Start(why) if why.contains("cannot listen")),
        "{error}"
    );
    // Nothing listens where nothing serves.
    drop(first);
    assert!(matches!(
        Manager::connect(taken, b"k".to_vec()),
        Err(ManagerError::ServerGone)
    ));
}
