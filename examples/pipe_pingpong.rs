//! Two processes exchange words over the two ends of a duplex
//! `mproc::pipe`, and each prints what it received.
//!
//! ```text
//! cargo run --release --example pipe_pingpong
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Process, Pipe
//!
//! def consumer(conn):
//!     conn.send('Consumer Words')
//!     print('Consumer received:', conn.recv())
//!
//! def producer(conn):
//!     conn.send('Producer Words')
//!     print('Producer received:', conn.recv())
//!
//! if __name__ == '__main__':
//!     consumer_end, producer_end = Pipe()
//!     p1 = Process(target=consumer, args=(consumer_end,))
//!     p2 = Process(target=producer, args=(producer_end,))
//!     p1.start(); p2.start()
//!     p1.join(); p2.join()
//! ```
//!
//! Prints, in either order:
//!
//! ```text
//! Consumer received: Producer Words
//! Producer received: Consumer Words
//! ```

use mproc::{Connection, Process, pipe};

fn consumer(conn: &Connection<String>) {
    conn.send("Consumer Words".to_owned())
        .expect("the producer is there");
    let words = conn.recv().expect("the producer sends its words");
    println!("Consumer received: {words}");
}

fn producer(conn: &Connection<String>) {
    conn.send("Producer Words".to_owned())
        .expect("the consumer is there");
    let words = conn.recv().expect("the consumer sends its words");
    println!("Producer received: {words}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (consumer_end, producer_end) = pipe::<String>()?;
    // Each child takes its end; the parent keeps neither.
    let mut p1 = Process::spawn(move || consumer(&consumer_end))?;
    let mut p2 = Process::spawn(move || producer(&producer_end))?;
    p1.join()?;
    p2.join()?;
    Ok(())
}
