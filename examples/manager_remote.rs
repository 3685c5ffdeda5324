//! One process serves a dictionary on 127.0.0.1 with an authkey; a
//! separate program (this one run again, with `client ADDRESS`) connects,
//! updates it, and exits; the server side prints the result. A client
//! with the wrong key is refused, and the server carries on.
//!
//! ```text
//! cargo run --release --example manager_remote
//! ```
//!
//! Ports this Python pair:
//!
//! ```python
//! # server.py
//! from multiprocessing.managers import BaseManager
//! scores = {}
//! class M(BaseManager): pass
//! M.register('scores', callable=lambda: scores)
//! M(address=('127.0.0.1', 50000), authkey=b'abracadabra').get_server().serve_forever()
//!
//! # client.py (another program, possibly on another host)
//! from multiprocessing.managers import BaseManager
//! class M(BaseManager): pass
//! M.register('scores')
//! m = M(address=('127.0.0.1', 50000), authkey=b'abracadabra')
//! m.connect()
//! m.scores().update({'ada': 36, 'grace': 85})
//! ```
//!
//! Prints (the port is picked by the system):
//!
//! ```text
//! serving on 127.0.0.1:PORT
//! client: updated the scores
//! wrong key: authentication failed: wrong authkey
//! scores: [("ada", 36), ("grace", 85), ("linus", 54)]
//! ```

use std::process::Command;

use mproc::{DictProxy, Manager, ManagerError};

const AUTHKEY: &[u8] = b"abracadabra";

type Scores = DictProxy<String, u32>;

/// The separate program: connects to `address` and updates the scores.
fn client(address: &str) -> Result<(), ManagerError> {
    let manager = Manager::connect(address, AUTHKEY.to_vec())?;
    let scores = manager.lookup::<Scores>("scores")?;
    scores.update([("ada".to_owned(), 36), ("grace".to_owned(), 85)])?;
    println!("client: updated the scores");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mproc::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, address] = args.as_slice()
        && command == "client"
    {
        return Ok(client(address)?);
    }

    let manager = Manager::serve("127.0.0.1:0", AUTHKEY.to_vec())?;
    let address = manager.tcp_address().expect("serving on TCP");
    println!("serving on {address}");
    let scores = manager.dict::<String, u32>()?;
    scores.insert("linus".to_owned(), 54)?;
    manager.register("scores", &scores)?;

    // The separate program: this binary, run again.
    let status = Command::new(std::env::current_exe()?)
        .args(["client", &address.to_string()])
        .status()?;
    assert!(status.success(), "the client failed: {status}");

    match Manager::connect(address, b"not the key".to_vec()) {
        Err(error @ ManagerError::Authentication) => println!("wrong key: {error}"),
        other => panic!("a wrong key was not refused: {other:?}"),
    }

    let mut items = scores.items()?;
    items.sort();
    println!("scores: {items:?}");
    assert_eq!(
        items,
        [
            ("ada".to_owned(), 36),
            ("grace".to_owned(), 85),
            ("linus".to_owned(), 54)
        ]
    );
    manager.shutdown()?;
    Ok(())
}
