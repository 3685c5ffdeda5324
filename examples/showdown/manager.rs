//! `Manager`: a child process's requests to the manager's server, a dict
//! insert + get and a list push, against Python's `Manager`.
//!
//! The manager is started once per case (at its first measurement); each
//! measurement forks a child that connects with one request, then times
//! its own requests, as `benches/manager.rs` does: neither the fork nor
//! the connection is in the measurement.

use std::time::{Duration, Instant};

use mproc::{DictProxy, ListProxy, Manager, Process};

use crate::case::{Case, Sample, Unit, Workload};

/// The keys the dict workload cycles through.
const KEYS: u64 = 1024;

pub fn workloads() -> [Workload; 2] {
    [
        Workload::new(
            "manager/dict_roundtrip",
            "manager dict insert + get, from a child",
            Unit::Latency,
        ),
        Workload::new(
            "manager/list_push",
            "manager list push, from a child",
            Unit::Rate,
        ),
    ]
}

/// Runs `work(n)` in a forked child and returns the time it took there,
/// after a first `work(1)` that connects to the server.
fn in_child(n: u64, work: impl Fn(u64) + Send + 'static) -> Sample {
    let mut child = Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || {
            work(1);
            let start = Instant::now();
            work(n);
            start.elapsed().as_nanos() as u64
        })
        .expect("fork a child");
    let nanos = child.join().expect("the child's time");
    Sample {
        ops: n,
        elapsed: Duration::from_nanos(nanos),
    }
}

fn insert_get(dict: &DictProxy<u64, u64>, n: u64) {
    for i in 0..n {
        dict.insert(i % KEYS, i).expect("insert");
        assert_eq!(dict.get(&(i % KEYS)).expect("get"), Some(i));
    }
}

fn push(list: &ListProxy<u64>, n: u64) {
    for i in 0..n {
        list.push(i).expect("push");
    }
}

/// The manager and one proxy of a case, made at its first measurement.
struct Served<P> {
    _manager: Manager,
    proxy: P,
}

impl<P> Served<P> {
    fn start(make: impl FnOnce(&Manager) -> P) -> Self {
        let manager = Manager::start().expect("start a manager");
        let proxy = make(&manager);
        Self {
            _manager: manager,
            proxy,
        }
    }
}

pub fn cases() -> Vec<Case> {
    let [dict, list] = workloads();
    let mut dict_served: Option<Served<DictProxy<u64, u64>>> = None;
    let mut list_served: Option<Served<ListProxy<u64>>> = None;
    vec![
        Case::new(&dict, "mproc Manager", true, move |n| {
            let served = dict_served
                .get_or_insert_with(|| Served::start(|m| m.dict().expect("a managed dict")));
            let dict = served.proxy.clone();
            in_child(n, move |n| insert_get(&dict, n))
        }),
        Case::new(&list, "mproc Manager", true, move |n| {
            let served = list_served
                .get_or_insert_with(|| Served::start(|m| m.list().expect("a managed list")));
            served.proxy.clear().expect("clear");
            let list = served.proxy.clone();
            in_child(n, move |n| push(&list, n))
        }),
    ]
}
