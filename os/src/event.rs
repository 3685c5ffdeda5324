//! [`Event`]: a flag that processes set, clear and wait for (Python's
//! `multiprocessing.Event`).

use core::fmt;
use core::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use mproc_core::event::RawEvent;

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::origin;
use crate::shm::Region;

/// A flag that processes share: `set` wakes everybody waiting for it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mproc_os::event::Event;
///
/// let event = Event::new()?;
/// assert!(!event.wait_timeout(Duration::from_millis(10)));
/// event.set();
/// assert!(event.is_set());
/// event.wait();
/// # Ok::<(), mproc_os::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    event: NonNull<RawEvent>,
    region: Mapping,
}

// SAFETY: `event` points into `region`, which the handle keeps mapped; the
// event is only used through its atomic operations, made for sharing.
unsafe impl Send for Event {}
// SAFETY: as for `Send`.
unsafe impl Sync for Event {}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A cleared event in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new() -> Result<Self> {
        Self::create_in(shareable("Event", Ok(RawEvent::object_layout()))?)
    }

    /// The bytes a region needs to hold an event.
    pub fn region_size() -> usize {
        RawEvent::object_layout().size()
    }

    /// Creates a cleared event at the start of `region`.
    pub fn create_in(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let event = unsafe { RawEvent::create(region.as_ptr(), region.len(), origin())? };
        Ok(Self {
            event: NonNull::from(event),
            region: Arc::new(region),
        })
    }

    /// Attaches to an event that another process created in `region`, after
    /// checking its header.
    pub fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let event = unsafe { RawEvent::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            event: NonNull::from(event),
            region: Arc::new(region),
        })
    }

    /// The region the event lives in.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn raw(&self) -> &RawEvent {
        // SAFETY: points into `self.region`, mapped while `self` lives.
        unsafe { self.event.as_ref() }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.raw().set(&Futex);
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        while !self.raw().wait(&Futex, None) {}
    }

    /// Waits until the flag is set or `timeout` passes; returns whether it is
    /// set (as Python's `Event.wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw().wait(&Futex, deadline(timeout))
    }
}

crate::share::share_one_region!("Event", Event);
