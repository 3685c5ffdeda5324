//! A child process changes a managed value, a managed array and a managed
//! list; the parent sees the changes through its own proxies.
//!
//! ```text
//! cargo run --release --example manager_shared
//! ```
//!
//! Ports this Python program:
//!
//! ```python
//! from multiprocessing import Process, Manager
//!
//! def f(n, a, l):
//!     n.value = 3.14
//!     a[0] = 5
//!     l.append('Hello')
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         num = manager.Value('d', 0.0)
//!         arr = manager.Array('i', range(10))
//!         lst = manager.list()
//!         p = Process(target=f, args=(num, arr, lst))
//!         p.start()
//!         p.join()
//!         print(num.value)
//!         print(arr[:])
//!         print(lst)
//! ```
//!
//! Prints:
//!
//! ```text
//! 3.14
//! [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! ["Hello"]
//! ```

use mproc::{Manager, Process};

/// The number the Python program stores (a literal, not a use of pi).
#[expect(clippy::approx_constant, reason = "the ported program's literal 3.14")]
const NUMBER: f64 = 3.14;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mproc::init();
    // The server process lives as long as `manager`: dropping it at the
    // end of `main` shuts the server down, like Python's `with`.
    let manager = Manager::start()?;
    let num = manager.value(0.0f64)?;
    let arr = manager.array(0..10i32)?;
    let lst = manager.list::<String>()?;
    let mut p = {
        let (num, arr, lst) = (num.clone(), arr.clone(), lst.clone());
        Process::spawn(move || {
            num.set(NUMBER).expect("set the value");
            arr.set(0, 5).expect("index 0 of 10");
            lst.push("Hello".to_owned()).expect("push onto the list");
        })?
    };
    p.join()?;
    let (num, arr, lst) = (num.get()?, arr.to_vec()?, lst.to_vec()?);
    println!("{num}");
    println!("{arr:?}");
    println!("{lst:?}");
    assert_eq!(num, NUMBER);
    assert_eq!(arr, [5, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(lst, ["Hello"]);
    Ok(())
}
