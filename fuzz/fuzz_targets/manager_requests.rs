//! The manager server's request decoder and dispatcher against whatever
//! bytes a client may send: frames of random bytes (and, from the seed
//! corpus the fuzzer grows, well-formed requests with random fields)
//! against one object of every kind, from two clients taking turns. Every
//! frame gets a reply that decodes, or nothing for a transport-level
//! request; never a panic, a hang (nothing waits) or an allocation that a
//! length field asks for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mproc_pool::manager::fuzz_requests(data);
});
