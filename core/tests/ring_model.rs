//! Both rings against a `VecDeque` model: random sequences of single and
//! batch pushes and pops, on random capacities, must agree value for value.
#![cfg(not(loom))]

use std::alloc::{alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::ptr::NonNull;

use mproc_core::layout::ObjectLayout;
use mproc_core::mpmc::Mpmc;
use mproc_core::spsc::Spsc;
use mproc_core::{Origin, OwnerId, PushError, Spin};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push(u64),
    Pop,
    PushSlice(Vec<u64>),
    PopSlice(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Push),
        4 => Just(Op::Pop),
        1 => prop::collection::vec(any::<u64>(), 0..40).prop_map(Op::PushSlice),
        1 => (0usize..40).prop_map(Op::PopSlice),
    ]
}

/// Zeroed, aligned memory for one object.
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

/// Pushes into the model as much as fits, as the ring must.
fn model_push(model: &mut VecDeque<u64>, capacity: usize, values: &[u64]) -> usize {
    let n = values.len().min(capacity - model.len());
    model.extend(&values[..n]);
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn mpmc_matches_vecdeque(capacity in 1usize..17, ops in prop::collection::vec(op(), 0..300)) {
        let mem = Mem::new(Mpmc::<u64>::layout(capacity as u64).unwrap());
        // SAFETY: `mem` is zeroed, aligned, outlives `ring`, used by nothing else.
        let ring = unsafe { Mpmc::<u64>::create(mem.0, mem.1.size(), capacity as u64, Origin::default()) }.unwrap();
        let me = OwnerId::new(1).unwrap();
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let got = ring.try_push(&Spin, me, v);
                    if model.len() < capacity {
                        model.push_back(v);
                        prop_assert!(got.is_ok());
                    } else {
                        prop_assert_eq!(got, Err(PushError::Full(v)));
                    }
                }
                Op::Pop => prop_assert_eq!(ring.try_pop(&Spin, me).ok(), model.pop_front()),
                Op::PushSlice(values) => {
                    prop_assert_eq!(ring.try_push_slice(&Spin, me, &values), model_push(&mut model, capacity, &values));
                }
                Op::PopSlice(n) => {
                    let mut out = vec![0; n];
                    let got = ring.try_pop_slice(&Spin, me, &mut out);
                    let want: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                }
            }
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(ring.is_full(), model.len() == capacity);
        }
        // A second handle attached to the same memory sees the same queue.
        // SAFETY: as above.
        let again = unsafe { Mpmc::<u64>::attach(mem.0, mem.1.size()) }.unwrap();
        prop_assert_eq!(again.len(), model.len());
        let mut out = vec![0; capacity];
        let n = again.try_pop_slice(&Spin, me, &mut out);
        prop_assert_eq!(&out[..n], &model.iter().copied().collect::<Vec<_>>()[..]);
    }

    #[test]
    fn spsc_matches_vecdeque(capacity in 1usize..17, ops in prop::collection::vec(op(), 0..300)) {
        let mem = Mem::new(Spsc::<u64>::layout(capacity as u64).unwrap());
        // SAFETY: `mem` is zeroed, aligned, outlives the ring, used by nothing else.
        let ring = unsafe { Spsc::<u64>::create(mem.0, mem.1.size(), capacity as u64, Origin::default()) }.unwrap();
        // SAFETY: the only producer and consumer.
        let (mut tx, mut rx) = unsafe { (ring.producer().unwrap(), ring.consumer().unwrap()) };
        let mut model = VecDeque::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(v) => {
                    let got = tx.try_push(&Spin, v);
                    if model.len() < capacity {
                        model.push_back(v);
                        prop_assert!(got.is_ok());
                    } else {
                        prop_assert_eq!(got, Err(PushError::Full(v)));
                    }
                }
                Op::Pop => prop_assert_eq!(rx.try_pop(&Spin).ok(), model.pop_front()),
                Op::PushSlice(values) => {
                    prop_assert_eq!(tx.try_push_slice(&Spin, &values), model_push(&mut model, capacity, &values));
                }
                Op::PopSlice(n) => {
                    let mut out = vec![0; n];
                    let got = rx.try_pop_slice(&Spin, &mut out);
                    let want: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                }
            }
            prop_assert_eq!(ring.len(), model.len());
            // Now and then only: these refresh the ends' cached positions,
            // and the operations must be right with stale caches too.
            if i % 7 == 6 {
                prop_assert_eq!(rx.len(), model.len());
                prop_assert_eq!(tx.free_len(), capacity - model.len());
            }
        }
    }
}

/// Every slot names the last party that claimed it, even across laps and
/// with the largest owner id.
#[test]
fn mpmc_slots_name_their_claimer() {
    let layout = Mpmc::<u64>::layout(3).unwrap();
    let mem = Mem::new(layout);
    // SAFETY: `mem` is zeroed, aligned for `layout`, outlives the ring and
    // is used by nothing else.
    let ring = unsafe { Mpmc::<u64>::create(mem.0, layout.size(), 3, Origin::default()) }.unwrap();
    let (a, b, max) = (
        OwnerId::new(7).unwrap(),
        OwnerId::new(9).unwrap(),
        OwnerId::new(OwnerId::MAX).unwrap(),
    );
    assert_eq!(ring.claimer(0), None, "a fresh slot has no claimer");
    assert_eq!(ring.claimer(3), None, "not a slot");
    ring.try_push(&Spin, a, 1).unwrap();
    assert_eq!(ring.claimer(0), Some(a));
    assert_eq!(ring.claimer(1), None);
    assert_eq!(ring.try_pop(&Spin, b), Ok(1));
    assert_eq!(ring.claimer(0), Some(b));
    for lap in 0..5u64 {
        assert_eq!(ring.try_push_slice(&Spin, max, &[lap, lap + 1, lap + 2]), 3);
        assert!((0..3).all(|i| ring.claimer(i) == Some(max)));
        let mut out = [0; 3];
        assert_eq!(ring.try_pop_slice(&Spin, a, &mut out), 3);
        assert_eq!(out, [lap, lap + 1, lap + 2]);
        assert!((0..3).all(|i| ring.claimer(i) == Some(a)));
    }
}
