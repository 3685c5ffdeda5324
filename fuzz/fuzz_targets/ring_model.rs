//! Both rings against a `VecDeque` model, driven by the fuzz input: every
//! single and batch push and pop must agree value for value.
#![no_main]

use std::alloc::{alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::ptr::NonNull;

use libfuzzer_sys::fuzz_target;
use mproc_core::layout::ObjectLayout;
use mproc_core::mpmc::Mpmc;
use mproc_core::spsc::Spsc;
use mproc_core::{Origin, OwnerId, Spin};

struct Mem(NonNull<u8>, ObjectLayout);

impl Mem {
    fn new(layout: ObjectLayout) -> Self {
        // SAFETY: object layouts are never zero-sized.
        Self(
            NonNull::new(unsafe { alloc_zeroed(layout.alloc_layout()) }).unwrap(),
            layout,
        )
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.0.as_ptr(), self.1.alloc_layout()) }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let capacity = u64::from(first % 32) + 1;
    let cap = capacity as usize;
    let me = OwnerId::new(1).unwrap();

    let mpmc_mem = Mem::new(Mpmc::<u64>::layout(capacity).unwrap());
    let spsc_mem = Mem::new(Spsc::<u64>::layout(capacity).unwrap());
    // SAFETY: zeroed, aligned memory that outlives the rings and nothing
    // else uses.
    let mpmc =
        unsafe { Mpmc::<u64>::create(mpmc_mem.0, mpmc_mem.1.size(), capacity, Origin::default()) }
            .unwrap();
    // SAFETY: as above.
    let spsc =
        unsafe { Spsc::<u64>::create(spsc_mem.0, spsc_mem.1.size(), capacity, Origin::default()) }
            .unwrap();
    // SAFETY: the only producer and consumer.
    let (mut tx, mut rx) = unsafe { (spsc.producer().unwrap(), spsc.consumer().unwrap()) };
    let mut model = VecDeque::new();
    let mut next = 0u64;

    for &op in ops {
        let n = usize::from(op >> 2) % 40;
        match op & 3 {
            0 => {
                let fits = model.len() < cap;
                assert_eq!(mpmc.try_push(&Spin, me, next).is_ok(), fits);
                assert_eq!(tx.try_push(&Spin, next).is_ok(), fits);
                if fits {
                    model.push_back(next);
                }
                next += 1;
            }
            1 => {
                let want = model.pop_front();
                assert_eq!(mpmc.try_pop(&Spin, me).ok(), want);
                assert_eq!(rx.try_pop(&Spin).ok(), want);
            }
            2 => {
                let values: Vec<u64> = (next..next + n as u64).collect();
                next += n as u64;
                let fit = n.min(cap - model.len());
                assert_eq!(mpmc.try_push_slice(&Spin, me, &values), fit);
                assert_eq!(tx.try_push_slice(&Spin, &values), fit);
                model.extend(&values[..fit]);
            }
            _ => {
                let want: Vec<u64> = model.drain(..n.min(model.len())).collect();
                let mut out = vec![0; n];
                let got = mpmc.try_pop_slice(&Spin, me, &mut out);
                assert_eq!(&out[..got], &want[..]);
                let got = rx.try_pop_slice(&Spin, &mut out);
                assert_eq!(&out[..got], &want[..]);
            }
        }
        assert_eq!(mpmc.len(), model.len());
        assert_eq!(spsc.len(), model.len());
    }
});
