//! How long after a process is killed with `SIGKILL` the others go on: a
//! lock's holder is killed while another thread sleeps on the lock, and a
//! process that moves a value out of a two-slot queue and back is killed
//! wherever it is. Prints the time from the kill to the waiter's success, over
//! several rounds.
//!
//! ```text
//! cargo run --release --example kill_holder
//! ```
//!
//! Python's `Lock` stays locked for ever in the first case.

use std::time::{Duration, Instant};

use mproc::{Event, Lock, PodQueue, Process};

const ROUNDS: usize = 20;

/// Sleeps until killed.
fn sleep_forever() {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn lock_takeover() -> Result<Duration, Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    let held = Event::new()?;
    let holder = Process::spawn({
        let (lock, held) = (lock.clone(), held.clone());
        move || {
            std::mem::forget(lock.lock());
            held.set();
            sleep_forever();
        }
    })?;
    held.wait();
    // Let the waiter below fall asleep on the lock first.
    let waiter = std::thread::spawn({
        let lock = lock.clone();
        move || {
            let guard = lock.lock();
            (Instant::now(), guard.owner_died())
        }
    });
    // The waiter checks the holder every 10 ms from when it started to
    // wait: kill at a random point of that period.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos()
        % 10_000_000;
    std::thread::sleep(Duration::from_millis(30) + Duration::from_nanos(u64::from(jitter)));
    let killed = Instant::now();
    holder.kill()?;
    let (taken, died) = waiter.join().map_err(|_| "the waiter panicked")?;
    assert!(died, "the waiter was not told that the holder died");
    let mut holder = holder;
    let _ = holder.join();
    Ok(taken - killed)
}

/// Takes the value and puts it back until killed.
fn juggle(queue: &PodQueue<u64>) {
    loop {
        if let Ok(v) = queue.get_timeout(Duration::from_millis(1)) {
            queue.put(v);
        }
    }
}

fn queue_slot_recovery() -> Result<Duration, Box<dyn std::error::Error>> {
    let queue = PodQueue::<u64>::new(2)?;
    let busy = Event::new()?;
    // A process that takes the value and puts it back, over and over, is
    // killed wherever it is: in a `get`, in a `put`, or in between.
    queue.put(1);
    let consumer = Process::spawn({
        let (queue, busy) = (queue.clone(), busy.clone());
        move || {
            busy.set();
            juggle(&queue);
        }
    })?;
    busy.wait();
    std::thread::sleep(Duration::from_millis(5));
    let killed = Instant::now();
    consumer.kill()?;
    let mut consumer = consumer;
    let _ = consumer.join();
    // Whatever state it died in, the queue works: at most its one value is
    // lost, so a put and a get both succeed.
    queue.put_timeout(2, Duration::from_secs(10))?;
    let _ = queue.get_timeout(Duration::from_secs(10))?;
    Ok(killed.elapsed())
}

fn table(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<40} min {:>7.2} ms   median {:>7.2} ms   max {:>7.2} ms",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mproc::init();
    let locks = (0..ROUNDS)
        .map(|_| lock_takeover())
        .collect::<Result<Vec<_>, _>>()?;
    let queues = (0..ROUNDS)
        .map(|_| queue_slot_recovery())
        .collect::<Result<Vec<_>, _>>()?;
    println!("{ROUNDS} rounds each, from SIGKILL to the waiter's success:");
    table("Lock: holder killed, waiter takes over", locks);
    table("PodQueue: juggler killed, put + get", queues);
    Ok(())
}
