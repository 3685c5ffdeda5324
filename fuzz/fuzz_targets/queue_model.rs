//! The typed queue against a `VecDeque` model, driven by the fuzz input:
//! `try_put` of strings of any length (longer than the buffer too, which
//! cuts the frame), `try_get`, `close`. Every outcome and every value must
//! agree with the model, which tracks the bytes each frame takes in the
//! buffer.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use mproc_os::queue::{GetError, PutError, Queue};

const BUFFER: u64 = 64;
const MAXSIZE: usize = 4;
const FRAME_HEADER: u64 = 4;

/// A frame in the buffer: its bytes, and its message unless it was cut.
struct Frame {
    bytes: u64,
    message: Option<String>,
}

fn encoded_len(s: &str) -> u64 {
    let n = s.len() as u64;
    let varint = u64::from((64 - (n | 1).leading_zeros()).div_ceil(7));
    varint + n
}

fuzz_target!(|data: &[u8]| {
    let queue = Queue::<String>::with_buffer(MAXSIZE, BUFFER as usize).unwrap();
    assert_eq!(queue.buffer_size() as u64, BUFFER);
    let mut frames: VecDeque<Frame> = VecDeque::new();
    let mut cut_pending = false;
    let mut closed = false;
    let mut next = 0u32;
    for &op in data {
        match op % 4 {
            0 | 1 => {
                let len = usize::from(op >> 2) * 3;
                let message: String = format!("{next:08}").chars().cycle().take(len).collect();
                next += 1;
                let used: u64 = frames.iter().map(|f| f.bytes).sum();
                let free = BUFFER - used;
                let needed = FRAME_HEADER + encoded_len(&message);
                let outcome = queue.try_put(message.clone());
                if closed {
                    assert!(matches!(outcome, Err(PutError::Closed(m)) if m == message));
                } else if frames.len() >= MAXSIZE || free < FRAME_HEADER || cut_pending {
                    assert!(matches!(outcome, Err(PutError::Full(m)) if m == message));
                } else if free >= needed {
                    assert!(outcome.is_ok(), "{outcome:?}");
                    frames.push_back(Frame {
                        bytes: needed,
                        message: Some(message),
                    });
                } else {
                    // What fits is published, then the frame is cut.
                    assert!(matches!(outcome, Err(PutError::Full(m)) if m == message));
                    frames.push_back(Frame {
                        bytes: free,
                        message: None,
                    });
                    cut_pending = true;
                }
            }
            2 => {
                let expected = loop {
                    match frames.pop_front() {
                        Some(Frame {
                            message: Some(m), ..
                        }) => break Ok(m),
                        Some(Frame { message: None, .. }) => cut_pending = false,
                        None if closed => break Err(GetError::Closed),
                        None => break Err(GetError::Empty),
                    }
                };
                assert_eq!(queue.try_get(), expected);
            }
            _ => {
                queue.close();
                closed = true;
            }
        }
        assert_eq!(queue.len(), frames.len());
    }
});
