//! The uncontended path of every blocking type makes no system call.
//!
//! A child process installs a seccomp filter under which the kernel kills it
//! (`SIGSYS`) at its first `futex`, `sched_yield`, `nanosleep` or
//! `clock_nanosleep`: the calls mproc makes only to sleep, wake or back off.
//! It then locks, acquires, puts, gets, sets and waits thousands of times
//! with nobody to contend with, and must exit normally. A control child
//! that must sleep (an acquire that times out) is killed, which shows the
//! filter bites.

use std::time::Duration;

use mproc::{Array, Event, Lock, PodQueue, Process, ProcessError, Semaphore, Value, spsc};

const ROUNDS: u64 = 10_000;

/// A BPF statement.
fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A BPF "jump if the accumulator equals `k`".
fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    let code = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Kills the calling process at its first call of any of `syscalls`.
fn forbid(syscalls: &[libc::c_long]) {
    let (load, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_RET | libc::BPF_K,
    );
    let nr_offset = std::mem::offset_of!(libc::seccomp_data, nr) as u32;
    let mut program = vec![stmt(load, nr_offset)];
    for &nr in syscalls {
        // Equal: fall through to the kill; otherwise skip it.
        program.push(jump_if_equal(nr as u32, 0, 1));
        program.push(stmt(ret, libc::SECCOMP_RET_KILL_PROCESS));
    }
    program.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points to `program`, which outlives
    // the call (the kernel copies the filter).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog
            ),
            0,
            "seccomp filter refused: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn forbid_sleeping() {
    forbid(&[
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
    ]);
}

#[test]
fn uncontended_operations_make_no_sleeping_system_call() {
    let lock = Lock::new().unwrap();
    let semaphore = Semaphore::new(1).unwrap();
    let queue = PodQueue::<u64>::new(64).unwrap();
    let event = Event::new().unwrap();
    let value = Value::new(0u64).unwrap();
    let array = Array::new(&[0u32; 8]).unwrap();
    let (mut tx, mut rx) = spsc::channel::<u64>(64).unwrap();

    let mut child = Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || -> u64 {
            forbid_sleeping();
            let mut sum = 0u64;
            for i in 0..ROUNDS {
                drop(lock.lock());
                drop(lock.try_lock().expect("nobody else holds the lock"));

                semaphore.acquire();
                semaphore.release().unwrap();
                assert!(semaphore.try_acquire());
                semaphore.release().unwrap();

                queue.put(i);
                sum += queue.get();
                queue.put_many(&[i, i]);
                let mut out = [0; 4];
                assert_eq!(queue.get_many(&mut out), 2);

                tx.push(i);
                sum += rx.pop();

                event.set();
                event.wait();
                event.clear();

                value.set(i);
                *value.lock() += 1;
                sum += value.get();
                array.set((i % 8) as usize, i as u32).unwrap();
            }
            sum
        })
        .unwrap();
    let expected: u64 = (0..ROUNDS).map(|i| 3 * i + 1).sum();
    assert_eq!(child.join().unwrap(), expected);
}

#[test]
fn the_filter_kills_a_process_that_sleeps() {
    let semaphore = Semaphore::new(0).unwrap();
    let mut child = Process::builder()
        .allow_threaded_fork(true)
        .spawn(move || {
            forbid_sleeping();
            // Nobody releases: this must sleep on the futex, and so dies.
            let _ = semaphore.acquire_timeout(Duration::from_millis(50));
        })
        .unwrap();
    match child.join() {
        Err(ProcessError::Signaled { signal, .. }) => assert_eq!(signal, libc::SIGSYS),
        other => panic!("expected death by SIGSYS, got {other:?}"),
    }
}
