//! Memory for the loom models: one aligned allocation per model run.

#![allow(dead_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use mproc_core::layout::ObjectLayout;
use mproc_core::{Origin, OwnerId};

/// Zeroed memory laid out for one object; freed on drop (after every thread
/// using it has been joined).
pub struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    pub fn new(layout: ObjectLayout) -> Self {
        let layout = layout.alloc_layout();
        // SAFETY: every object layout has a header, so it is not zero-sized.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        Self { ptr, layout }
    }

    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

pub fn origin() -> Origin {
    Origin::default()
}

pub fn id(n: u32) -> OwnerId {
    OwnerId::new(n).expect("valid owner id")
}

/// A model run with at most 2 preemptions (or `LOOM_MAX_PREEMPTIONS`).
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    model_bounded(2, f);
}

/// A model run with at most `max_preemptions` preemptions, or fewer if
/// `LOOM_MAX_PREEMPTIONS` says so. Models of four threads use 1: at 2 one
/// of them runs for hours on two cores.
pub fn model_bounded<F: Fn() + Sync + Send + 'static>(max_preemptions: usize, f: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(
        builder
            .preemption_bound
            .map_or(max_preemptions, |env| env.min(max_preemptions)),
    );
    builder.check(f);
}
