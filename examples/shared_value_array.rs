//! A child process writes to a shared `mproc::Value<f64>` and a shared
//! `mproc::Array<i32>`; the parent sees the changes.
//!
//! ```text
//! cargo run --release --example shared_value_array
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Process, Value, Array
//!
//! def f(n, a):
//!     n.value = 3.14
//!     a[0] = 5
//!
//! if __name__ == '__main__':
//!     num = Value('d', 0.0)
//!     arr = Array('i', range(10))
//!     p = Process(target=f, args=(num, arr))
//!     p.start()
//!     p.join()
//!     print(num.value)
//!     print(arr[:])
//! ```
//!
//! Prints:
//!
//! ```text
//! 3.14
//! [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! ```

use mproc::{Array, Process, Value};

/// The number the Python program stores (a literal, not a use of pi).
#[expect(clippy::approx_constant, reason = "the ported program's literal 3.14")]
const NUMBER: f64 = 3.14;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let num = Value::new(0.0f64)?;
    let arr = Array::new(&(0..10).collect::<Vec<i32>>())?;
    let mut p = {
        let (num, arr) = (num.clone(), arr.clone());
        Process::spawn(move || {
            num.set(NUMBER);
            arr.set(0, 5).expect("index 0 of 10");
        })?
    };
    p.join()?;
    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}
