//! A creator process puts numbers on a `mproc::Queue`, a consumer process
//! doubles each one until it gets the sentinel.
//!
//! ```text
//! cargo run --release --example queue_sentinel
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Process, Queue
//!
//! sentinel = -1
//!
//! def creator(data, q):
//!     print('Creating data and putting it on the queue')
//!     for item in data:
//!         q.put(item)
//!
//! def my_consumer(q):
//!     while True:
//!         data = q.get()
//!         if data == sentinel:
//!             break
//!         print('data found to be processed: {}'.format(data))
//!         print(data * 2)
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     process_one = Process(target=creator, args=([5, 10, 13, -1], q))
//!     process_two = Process(target=my_consumer, args=(q,))
//!     process_one.start(); process_two.start()
//!     process_one.join(); process_two.join()
//! ```
//!
//! Prints:
//!
//! ```text
//! Creating data and putting it on the queue
//! data found to be processed: 5
//! 10
//! data found to be processed: 10
//! 20
//! data found to be processed: 13
//! 26
//! ```

use mproc::{Process, Queue};

const SENTINEL: i64 = -1;

fn creator(data: &[i64], queue: &Queue<i64>) {
    println!("Creating data and putting it on the queue");
    for &item in data {
        queue.put(item).expect("the queue is open");
    }
}

fn consumer(queue: &Queue<i64>) {
    loop {
        let data = queue.get().expect("the queue is open");
        if data == SENTINEL {
            break;
        }
        println!("data found to be processed: {data}");
        println!("{}", data * 2);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queue = Queue::<i64>::new(16)?;
    let mut process_one = {
        let queue = queue.clone();
        Process::spawn(move || creator(&[5, 10, 13, SENTINEL], &queue))?
    };
    let mut process_two = {
        let queue = queue.clone();
        Process::spawn(move || consumer(&queue))?
    };
    process_one.join()?;
    process_two.join()?;
    Ok(())
}
