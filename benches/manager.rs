//! `Manager`: requests from a child process to the manager's server,
//! against Python's `multiprocessing.Manager` on the same work, in one run.
//!
//! ```text
//! cargo bench --bench manager
//! ```
//!
//! * `manager/child_dict_insert_get`: a child process sets a dict entry
//!   and reads it back (two round trips to the server) per iteration,
//!   through the local shared-memory connection.
//! * `manager/child_list_push`: a child pushes onto a list (one round
//!   trip).
//! * `manager/tcp_dict_insert_get`: the same as the first, over TCP on
//!   127.0.0.1 (what a remote client pays, at the least): the transport a
//!   socket gives, for the choice of the local one.
//!
//! When criterion is done, a table compares with Python's `Manager` on
//! the same work, measured by `benches/python/manager.py` in the same run
//! (skipped with a note without `python3`), with verdicts against the
//! target: at least 10 times Python's rate, locally.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mproc::{DictProxy, ListProxy, Manager, Process};

/// Runs `work(iters)` in a forked child and returns how long it took
/// there (the fork and the child's first connection not included).
fn in_child(iters: u64, work: impl Fn(u64) + Send + 'static) -> Duration {
    let mut child = Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || {
            work(1); // Connects, outside the measurement.
            let start = Instant::now();
            work(iters);
            start.elapsed().as_nanos() as u64
        })
        .expect("fork a child");
    Duration::from_nanos(child.join().expect("the child's time"))
}

fn insert_get(dict: &DictProxy<u64, u64>, iters: u64) {
    for n in 0..iters {
        dict.insert(n & 1023, n).unwrap();
        assert_eq!(dict.get(&(n & 1023)).unwrap(), Some(n));
    }
}

fn bench(c: &mut Criterion, manager: &Manager, remote: &Manager) {
    let mut group = c.benchmark_group("manager");
    group.throughput(Throughput::Elements(2));
    let dict = manager.dict::<u64, u64>().unwrap();
    group.bench_function("child_dict_insert_get", |b| {
        b.iter_custom(|iters| {
            let dict = dict.clone();
            in_child(iters, move |iters| insert_get(&dict, iters))
        })
    });
    let tcp = remote.dict::<u64, u64>().unwrap();
    group.bench_function("tcp_dict_insert_get", |b| b.iter(|| insert_get(&tcp, 1)));
    group.throughput(Throughput::Elements(1));
    let list: ListProxy<u64> = manager.list().unwrap();
    group.bench_function("child_list_push", |b| {
        b.iter_custom(|iters| {
            list.clear().unwrap();
            let list = list.clone();
            in_child(iters, move |iters| {
                for n in 0..iters {
                    list.push(n).unwrap();
                }
            })
        })
    });
    group.finish();
}

fn report() {
    let secs = |id: &str| common::median(id);
    let python = common::python("manager.py", "20000");
    let py = |name: &str| -> Option<f64> {
        let rows = python.as_ref().ok()?;
        rows.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    };
    // Requests per second: the insert+get iteration is two requests.
    let dict = secs("manager/child_dict_insert_get").map(|s| 2.0 / s);
    let tcp = secs("manager/tcp_dict_insert_get").map(|s| 2.0 / s);
    let push = secs("manager/child_list_push").map(|s| 1.0 / s);

    println!("\nmproc manager bench: medians of this run, requests per second from a child");
    println!("{:<48} {:>14}", "workload", "value");
    for (label, value) in [
        ("mproc dict insert + get (shared memory)", dict),
        ("mproc dict insert + get over TCP 127.0.0.1", tcp),
        (
            "Python Manager().dict() insert + get",
            py("python_manager_dict_insert_get"),
        ),
        ("mproc list push (shared memory)", push),
        (
            "Python Manager().list().append",
            py("python_manager_list_append"),
        ),
    ] {
        match value {
            Some(v) => println!("{label:<48} {:>10.1} k/s", v / 1e3),
            None => println!("{label:<48} {:>14}", "not measured"),
        }
    }
    if let Err(why) = &python {
        println!("Python: skipped: {why}");
    }
    println!(
        "\n{:<48} {:>10} {:>8} {:>8}",
        "comparison", "ratio", "target", "verdict"
    );
    for (label, pair) in [
        (
            "dict insert + get: mproc / Python",
            dict.zip(py("python_manager_dict_insert_get")),
        ),
        (
            "list push: mproc / Python",
            push.zip(py("python_manager_list_append")),
        ),
    ] {
        match pair {
            Some((a, b)) => {
                let ratio = a / b;
                let verdict = if ratio >= 10.0 { "met" } else { "MISSED" };
                println!("{label:<48} {ratio:>9.1}x {:>7}x {verdict:>8}", 10);
            }
            None => println!("{label:<48} {:>10}", "not measured"),
        }
    }
}

fn main() {
    // A fork server run again from a multi-threaded process runs this
    // binary again: `init` dispatches it.
    mproc::init();
    let manager = Manager::start().expect("start a manager");
    let remote_server = Manager::serve("127.0.0.1:0", b"bench".to_vec()).expect("serve");
    let remote =
        Manager::connect(remote_server.tcp_address().unwrap(), b"bench".to_vec()).expect("connect");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench(&mut c, &manager, &remote);
    c.final_summary();
    drop((remote, remote_server, manager));
    report();
}
