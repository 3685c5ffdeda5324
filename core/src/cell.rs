//! A lock-protected array of plain-old-data values in shared memory: the base
//! of `mproc::Value<T>` (one value) and `mproc::Array<T>` (several).
//!
//! ```text
//! | Header | RawMutex | pad | value 0 | value 1 | ... | value len-1 |
//! ```
//!
//! The values are read and written only while the mutex is held, through a
//! [`CellGuard`], which unlocks when dropped.

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::layout::{self, LayoutError, ObjectKind, ObjectLayout, Origin, Parts};
use crate::mutex::RawMutex;
use crate::sync::UnsafeCell;
use crate::wait::{OwnerId, TimedOut, Wait};
use crate::{ShmSafe, TypeFingerprint};

/// The largest number of values in one cell.
const MAX_LEN: u64 = 1 << 40;

/// A process-local handle to a lock-protected array of `T` in shared memory.
///
/// # Examples
///
/// ```
/// use mproc_core::{Origin, OwnerId, Spin, cell::SharedCell};
///
/// let layout = SharedCell::<f64>::layout(3).unwrap();
/// // SAFETY: the layout is not zero-sized.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout.alloc_layout()) };
/// let base = std::ptr::NonNull::new(mem).unwrap();
/// // SAFETY: `base` points to `layout.size()` zeroed bytes, aligned as the
/// // layout asks, that outlive the cell and are used by nothing else.
/// let cell = unsafe {
///     SharedCell::create(base, layout.size(), &[0.5, 1.5, 2.5], Origin::default())
/// }
/// .unwrap();
/// let me = OwnerId::new(1).unwrap();
/// let mut guard = cell.lock(&Spin, me, None).unwrap();
/// guard[0] = 3.14;
/// assert_eq!(guard[..], [3.14, 1.5, 2.5]);
/// drop(guard);
/// // SAFETY: allocated above with this layout; the cell is not used any more.
/// unsafe { std::alloc::dealloc(mem, layout.alloc_layout()) };
/// ```
pub struct SharedCell<T> {
    mutex: NonNull<RawMutex>,
    values: NonNull<UnsafeCell<T>>,
    len: u64,
    _values: PhantomData<T>,
}

impl<T> Clone for SharedCell<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedCell<T> {}

impl<T> core::fmt::Debug for SharedCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedCell")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the values are only touched while holding the mutex, and they are
// `ShmSafe` (plain data).
unsafe impl<T: ShmSafe> Send for SharedCell<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: ShmSafe> Sync for SharedCell<T> {}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(UnsafeCell<u64>, u64);

impl<T: ShmSafe> SharedCell<T> {
    /// The memory layout of a cell of `len` values.
    pub fn layout(len: u64) -> Result<ObjectLayout, LayoutError> {
        if len > MAX_LEN {
            return Err(LayoutError::BadCapacity {
                capacity: len,
                reason: "a shared array has at most 2^40 values",
            });
        }
        ObjectLayout::new::<RawMutex, UnsafeCell<T>>(len)
    }

    /// Creates a cell holding a copy of `values` at `mem`.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory (any contents), used by nobody else until this returns, and
    /// stays mapped for as long as this handle or a copy of it is used.
    pub unsafe fn create(
        mem: NonNull<u8>,
        len: usize,
        values: &[T],
        origin: Origin,
    ) -> Result<Self, LayoutError> {
        let count = values.len() as u64;
        let layout = Self::layout(count)?;
        // SAFETY: forwarded from the caller.
        let parts: Parts<RawMutex, UnsafeCell<T>> = unsafe {
            layout::create(
                mem,
                len,
                ObjectKind::Cell,
                TypeFingerprint::of::<T>(),
                count,
                layout,
                origin,
            )?
        };
        // SAFETY: `layout::create` checked that the mutex and `count` values
        // lie inside the caller's memory, which nobody else uses yet.
        unsafe {
            RawMutex::init(parts.body);
            for (i, value) in values.iter().enumerate() {
                crate::sync::init_cell(parts.elems.as_ptr().add(i), *value);
            }
            parts.publish();
        }
        Ok(Self::from_parts(parts))
    }

    /// Attaches to a cell that another handle created at `mem`, after
    /// checking its header and element type.
    ///
    /// # Safety
    /// `mem` is valid for reads and writes of `len` bytes of initialized
    /// memory, and stays mapped for as long as this handle or a copy of it is
    /// used.
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller.
        let parts = unsafe {
            layout::attach(
                mem,
                len,
                ObjectKind::Cell,
                TypeFingerprint::of::<T>(),
                Self::layout,
            )?
        };
        Ok(Self::from_parts(parts))
    }

    fn from_parts(parts: Parts<RawMutex, UnsafeCell<T>>) -> Self {
        Self {
            mutex: parts.body,
            values: parts.elems,
            len: parts.capacity,
            _values: PhantomData,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the cell holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mutex guarding the values.
    pub fn mutex(&self) -> &RawMutex {
        // SAFETY: the creator of this handle promised the memory stays mapped.
        unsafe { self.mutex.as_ref() }
    }

    /// Locks the values, waiting until `deadline` (`None`: forever). An
    /// owner that died holding the lock is detected and the lock taken over
    /// ([`RawMutex::lock`]); the guard then tells
    /// ([`CellGuard::owner_died`]).
    pub fn lock<'a, W: Wait>(
        &'a self,
        w: &'a W,
        id: OwnerId,
        deadline: Option<W::Deadline>,
    ) -> Result<CellGuard<'a, T, W>, TimedOut> {
        self.mutex().lock(w, id, deadline)?;
        Ok(CellGuard { cell: self, w })
    }

    /// Locks the values if nobody holds them.
    pub fn try_lock<'a, W: Wait>(&'a self, w: &'a W, id: OwnerId) -> Option<CellGuard<'a, T, W>> {
        self.mutex()
            .try_lock(id)
            .then_some(CellGuard { cell: self, w })
    }

    fn value(&self, index: usize) -> Option<&UnsafeCell<T>> {
        if (index as u64) < self.len {
            // SAFETY: in range; `create`/`attach` checked that `len` values
            // lie in the mapping.
            Some(unsafe { &*self.values.as_ptr().add(index) })
        } else {
            None
        }
    }
}

/// Access to the values of a [`SharedCell`] while its mutex is held; unlocks
/// on drop.
pub struct CellGuard<'a, T: ShmSafe, W: Wait> {
    cell: &'a SharedCell<T>,
    w: &'a W,
}

impl<T: ShmSafe + core::fmt::Debug, W: Wait> core::fmt::Debug for CellGuard<'_, T, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut list = f.debug_list();
        for i in 0..self.cell.len() {
            list.entry(&self.get(i));
        }
        list.finish()
    }
}

impl<T: ShmSafe, W: Wait> CellGuard<'_, T, W> {
    /// Whether an owner died holding the lock and no owner has
    /// [marked the values consistent](Self::mark_consistent) since: they may
    /// be half-updated (see [`crate::mutex`]).
    pub fn owner_died(&self) -> bool {
        self.cell.mutex().is_inconsistent()
    }

    /// Marks the values consistent after a dead owner (the caller has
    /// checked or repaired them): later owners see
    /// [`owner_died`](Self::owner_died) false.
    pub fn mark_consistent(&mut self) {
        // SAFETY: the guard holds the mutex.
        unsafe { self.cell.mutex().mark_consistent() };
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.cell.len()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.cell.is_empty()
    }

    /// A copy of value `index`, if it exists.
    pub fn get(&self, index: usize) -> Option<T> {
        // SAFETY: the guard holds the mutex, so nobody writes concurrently.
        self.cell
            .value(index)
            .map(|value| value.with(|ptr| unsafe { *ptr }))
    }

    /// Sets value `index`; returns `false` (and changes nothing) if it does
    /// not exist.
    pub fn set(&mut self, index: usize, value: T) -> bool {
        match self.cell.value(index) {
            Some(cell) => {
                // SAFETY: the guard holds the mutex: nobody else reads or
                // writes the values.
                cell.with_mut(|ptr| unsafe { ptr.write(value) });
                true
            }
            None => false,
        }
    }
}

#[cfg(not(loom))]
impl<T: ShmSafe, W: Wait> core::ops::Deref for CellGuard<'_, T, W> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the guard holds the mutex; `UnsafeCell<T>` has the layout
        // of `T` outside loom, and the `len` values are in the mapping.
        unsafe {
            core::slice::from_raw_parts(self.cell.values.as_ptr().cast::<T>(), self.cell.len())
        }
    }
}

#[cfg(not(loom))]
impl<T: ShmSafe, W: Wait> core::ops::DerefMut for CellGuard<'_, T, W> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and the guard is borrowed mutably, so this
        // is the only reference into the values.
        unsafe {
            core::slice::from_raw_parts_mut(self.cell.values.as_ptr().cast::<T>(), self.cell.len())
        }
    }
}

impl<T: ShmSafe, W: Wait> Drop for CellGuard<'_, T, W> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its mutex is held.
        unsafe { self.cell.mutex().unlock(self.w) };
    }
}
