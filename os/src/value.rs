//! [`Value`] and [`Array`]: plain-old-data values in shared memory, each
//! with its lock (Python's `multiprocessing.Value` and `Array`).

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use mproc_core::cell::{CellGuard, SharedCell};
use mproc_core::{ShmSafe, TimedOut};

use crate::error::Result;
use crate::futex::Futex;
use crate::object::{Mapping, deadline, shareable};
use crate::process::{origin, owner_id};
use crate::shm::Region;

/// An index past the end of an [`Array`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// The index asked for.
    pub index: usize,
    /// The length of the array.
    pub len: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "index {} is out of bounds for an array of length {}",
            self.index, self.len
        )
    }
}

impl std::error::Error for OutOfBounds {}

/// The cell and region common to [`Value`] and [`Array`].
struct Shared<T: ShmSafe> {
    cell: SharedCell<T>,
    region: Mapping,
}

impl<T: ShmSafe> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell,
            region: self.region.clone(),
        }
    }
}

impl<T: ShmSafe> Shared<T> {
    fn create_in(region: Region, values: &[T]) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives, and nobody uses it before this returns.
        let cell = unsafe { SharedCell::create(region.as_ptr(), region.len(), values, origin())? };
        Ok(Self {
            cell,
            region: Arc::new(region),
        })
    }

    fn attach(region: Region) -> Result<Self> {
        // SAFETY: the region is mapped read/write for `len` bytes as long as
        // `self.region` lives.
        let cell = unsafe { SharedCell::attach(region.as_ptr(), region.len())? };
        Ok(Self {
            cell,
            region: Arc::new(region),
        })
    }

    fn lock(&self) -> CellGuard<'_, T, Futex> {
        loop {
            // Without a deadline the lock only returns once it is taken.
            if let Ok(guard) = self.cell.lock(&Futex, owner_id(), None) {
                return guard;
            }
        }
    }

    fn lock_timeout(&self, timeout: Duration) -> Result<CellGuard<'_, T, Futex>, TimedOut> {
        self.cell.lock(&Futex, owner_id(), deadline(timeout))
    }

    fn try_lock(&self) -> Option<CellGuard<'_, T, Futex>> {
        self.cell.try_lock(&Futex, owner_id())
    }
}

/// One plain-old-data value in shared memory, with its lock.
///
/// `get` and `set` each take the lock for one copy; [`Value::lock`] holds it
/// across a read-modify-write, as Python's `with v.get_lock(): v.value += 1`.
///
/// A process killed while it holds the lock does not block the others: the
/// next locker takes the lock over (see [`Lock`](crate::Lock)) and its guard
/// reports it ([`ValueGuard::owner_died`]) until one marks the value
/// consistent. `get` and `set` take the lock over too, without telling.
///
/// # Examples
///
/// ```
/// use mproc_os::value::Value;
///
/// let counter = Value::new(0u64)?;
/// *counter.lock() += 1;
/// counter.set(counter.get() * 10);
/// assert_eq!(counter.get(), 10);
/// # Ok::<(), mproc_os::Error>(())
/// ```
pub struct Value<T: ShmSafe> {
    shared: Shared<T>,
}

impl<T: ShmSafe> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Value").field(&self.get()).finish()
    }
}

impl<T: ShmSafe> Value<T> {
    /// A value holding `value` in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(value: T) -> Result<Self> {
        Self::create_in(shareable("Value", SharedCell::<T>::layout(1))?, value)
    }

    /// The bytes a region needs to hold a `Value<T>`.
    pub fn region_size() -> Result<usize> {
        Ok(SharedCell::<T>::layout(1)?.size())
    }

    /// Creates a value holding `value` at the start of `region`.
    pub fn create_in(region: Region, value: T) -> Result<Self> {
        Ok(Self {
            shared: Shared::create_in(region, &[value])?,
        })
    }

    /// Attaches to a value that another process created in `region`, after
    /// checking its header and element type.
    pub fn attach(region: Region) -> Result<Self> {
        let shared = Shared::<T>::attach(region)?;
        if shared.cell.len() != 1 {
            return Err(mproc_core::LayoutError::BadCapacity {
                capacity: shared.cell.len() as u64,
                reason: "a Value holds exactly one element (this region holds an Array)",
            }
            .into());
        }
        Ok(Self { shared })
    }

    /// The region the value lives in.
    pub fn region(&self) -> &Region {
        &self.shared.region
    }

    /// A copy of the value (takes the lock for the copy).
    pub fn get(&self) -> T {
        *self.lock()
    }

    /// Replaces the value (takes the lock for the write).
    pub fn set(&self, value: T) {
        *self.lock() = value;
    }

    /// Locks the value for a read-modify-write, waiting as long as it takes.
    pub fn lock(&self) -> ValueGuard<'_, T> {
        ValueGuard::new(self.shared.lock())
    }

    /// Locks the value, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ValueGuard<'_, T>, TimedOut> {
        Ok(ValueGuard::new(self.shared.lock_timeout(timeout)?))
    }

    /// Locks the value if nobody holds its lock.
    pub fn try_lock(&self) -> Option<ValueGuard<'_, T>> {
        self.shared.try_lock().map(ValueGuard::new)
    }
}

/// The locked value of a [`Value`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: ShmSafe> {
    guard: CellGuard<'a, T, Futex>,
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmSafe> ValueGuard<'_, T> {
    /// Whether a process died holding the lock (it was taken over, see
    /// [`Lock`](crate::lock::Lock)) and no owner has
    /// [marked the data consistent](Self::mark_consistent) since: the
    /// data may be half-updated. Every later owner is told until one marks
    /// it consistent.
    pub fn owner_died(&self) -> bool {
        self.guard.owner_died()
    }

    /// Marks the data consistent again after a dead owner (the caller has
    /// checked or repaired it).
    pub fn mark_consistent(&mut self) {
        self.guard.mark_consistent();
    }
}

impl<'a, T: ShmSafe> ValueGuard<'a, T> {
    fn new(guard: CellGuard<'a, T, Futex>) -> Self {
        Self {
            guard,
            _not_send: PhantomData,
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // A `Value` always holds exactly one element (`new` makes one,
        // `attach` checks it).
        &self.guard[0]
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard[0]
    }
}

/// A fixed-length array of plain-old-data values in shared memory, with one
/// lock for all of them.
///
/// # Examples
///
/// ```
/// use mproc_os::value::Array;
///
/// let array = Array::new(&[0i32, 1, 2, 3])?;
/// array.set(0, 5)?;
/// array.lock()[1] *= 10;
/// assert_eq!(array.to_vec(), [5, 10, 2, 3]);
/// assert!(array.set(4, 0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: ShmSafe> {
    shared: Shared<T>,
}

impl<T: ShmSafe> Clone for Array<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Array").field(&self.to_vec()).finish()
    }
}

impl<T: ShmSafe> Array<T> {
    /// An array holding a copy of `values` in a new shared region (a sealed memfd): children made with `fork`
    /// inherit it, and [`Share::token`](crate::share::Share::token) shares
    /// it with any other process.
    pub fn new(values: &[T]) -> Result<Self> {
        Self::create_in(
            shareable("Array", SharedCell::<T>::layout(values.len() as u64))?,
            values,
        )
    }

    /// The bytes a region needs to hold an `Array<T>` of `len` values.
    pub fn region_size(len: usize) -> Result<usize> {
        Ok(SharedCell::<T>::layout(len as u64)?.size())
    }

    /// Creates an array holding a copy of `values` at the start of `region`.
    pub fn create_in(region: Region, values: &[T]) -> Result<Self> {
        Ok(Self {
            shared: Shared::create_in(region, values)?,
        })
    }

    /// Attaches to an array that another process created in `region`, after
    /// checking its header and element type.
    pub fn attach(region: Region) -> Result<Self> {
        Ok(Self {
            shared: Shared::attach(region)?,
        })
    }

    /// The region the array lives in.
    pub fn region(&self) -> &Region {
        &self.shared.region
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shared.cell.len()
    }

    /// Whether the array has no value.
    pub fn is_empty(&self) -> bool {
        self.shared.cell.is_empty()
    }

    /// A copy of value `index` (takes the lock for the copy).
    pub fn get(&self, index: usize) -> Result<T, OutOfBounds> {
        let len = self.len();
        self.shared
            .lock()
            .get(index)
            .ok_or(OutOfBounds { index, len })
    }

    /// Replaces value `index` (takes the lock for the write).
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        let len = self.len();
        if self.shared.lock().set(index, value) {
            Ok(())
        } else {
            Err(OutOfBounds { index, len })
        }
    }

    /// A copy of all values, taken under the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }

    /// Locks the array, waiting as long as it takes.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        ArrayGuard::new(self.shared.lock())
    }

    /// Locks the array, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ArrayGuard<'_, T>, TimedOut> {
        Ok(ArrayGuard::new(self.shared.lock_timeout(timeout)?))
    }

    /// Locks the array if nobody holds its lock.
    pub fn try_lock(&self) -> Option<ArrayGuard<'_, T>> {
        self.shared.try_lock().map(ArrayGuard::new)
    }
}

/// The locked values of an [`Array`]; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: ShmSafe> {
    guard: CellGuard<'a, T, Futex>,
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmSafe> ArrayGuard<'_, T> {
    /// Whether a process died holding the lock (it was taken over, see
    /// [`Lock`](crate::lock::Lock)) and no owner has
    /// [marked the data consistent](Self::mark_consistent) since: the
    /// data may be half-updated. Every later owner is told until one marks
    /// it consistent.
    pub fn owner_died(&self) -> bool {
        self.guard.owner_died()
    }

    /// Marks the data consistent again after a dead owner (the caller has
    /// checked or repaired it).
    pub fn mark_consistent(&mut self) {
        self.guard.mark_consistent();
    }
}

impl<'a, T: ShmSafe> ArrayGuard<'a, T> {
    fn new(guard: CellGuard<'a, T, Futex>) -> Self {
        Self {
            guard,
            _not_send: PhantomData,
        }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.guard
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.guard
    }
}

crate::share::share_one_region!("Value", Value<T>, [T: ShmSafe]);
crate::share::share_one_region!("Array", Array<T>, [T: ShmSafe]);
