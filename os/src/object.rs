//! What every process-shared type has in common: a region that stays mapped
//! while any handle to the object lives, and the conversion of timeouts.

use std::sync::Arc;
use std::time::Duration;

use mproc_core::LayoutError;
use mproc_core::layout::ObjectLayout;

use crate::error::Result;
use crate::futex::Deadline;
use crate::shm::Region;

/// The region an object lives in, shared by all handles of this process.
pub(crate) type Mapping = Arc<Region>;

/// A fresh region for an object of `layout`: a sealed memfd labelled
/// `mproc:<name>`, inherited by children made with `fork` and passable to
/// any process as a [`Token`](crate::share::Token); freed by the kernel
/// with its last descriptor and mapping.
pub(crate) fn shareable(name: &str, layout: Result<ObjectLayout, LayoutError>) -> Result<Region> {
    let size = layout?.size();
    Region::memfd(&format!("mproc:{name}"), size)
}

/// A fresh anonymous region for an object of `layout`: inherited by
/// children made with `fork`, freed by the kernel with its last user. No
/// descriptor, so no token.
pub(crate) fn anonymous(layout: Result<ObjectLayout, LayoutError>) -> Result<Region> {
    Region::anonymous(layout?.size())
}

/// The deadline `timeout` from now; `None` ("never") when it cannot be
/// represented (`Duration::MAX`).
#[inline]
pub(crate) fn deadline(timeout: Duration) -> Option<Deadline> {
    Deadline::after(timeout)
}
