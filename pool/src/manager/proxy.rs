//! Typed proxies to the objects a manager's server keeps.

use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ManagerError;
use super::client::{self, Address};
use super::protocol::{Answer, Kind, NumKind, Op, Request};

/// What every proxy holds: where the server is, the key, and which object
/// of which type.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) fingerprint: u64,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the authkey.
        f.debug_struct("Proxy")
            .field("kind", &self.kind.name())
            .field("id", &self.id)
            .field("address", &self.address)
            .finish()
    }
}

impl Handle {
    fn call(&self, op: Op) -> Result<Answer, ManagerError> {
        client::call(
            &self.address,
            &self.authkey,
            &Request::Call {
                id: self.id,
                kind: self.kind,
                fingerprint: self.fingerprint,
                op,
            },
        )
    }
}

fn unexpected(answer: Answer) -> ManagerError {
    ManagerError::Protocol(format!("unexpected answer {answer:?}"))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ManagerError> {
    Ok(postcard::to_allocvec(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManagerError> {
    Ok(postcard::from_bytes(bytes)?)
}

fn millis(timeout: Duration) -> Option<u64> {
    Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
}

impl Handle {
    fn unit(&self, op: Op) -> Result<(), ManagerError> {
        match self.call(op)? {
            Answer::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn boolean(&self, op: Op) -> Result<bool, ManagerError> {
        match self.call(op)? {
            Answer::Bool(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    fn count(&self, op: Op) -> Result<u64, ManagerError> {
        match self.call(op)? {
            Answer::Count(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    fn value<T: DeserializeOwned>(&self, op: Op) -> Result<T, ManagerError> {
        match self.call(op)? {
            Answer::Bytes(bytes) => decode(&bytes),
            other => Err(unexpected(other)),
        }
    }

    fn maybe<T: DeserializeOwned>(&self, op: Op) -> Result<Option<T>, ManagerError> {
        match self.call(op)? {
            Answer::Maybe(Some(bytes)) => decode(&bytes).map(Some),
            Answer::Maybe(None) => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    fn many<T: DeserializeOwned>(&self, op: Op) -> Result<Vec<T>, ManagerError> {
        match self.call(op)? {
            Answer::Many(items) => items.iter().map(|item| decode(item)).collect(),
            other => Err(unexpected(other)),
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A proxy to an object kept by a manager's server: what
/// [`Manager::register`](super::Manager::register) names and
/// [`Manager::lookup`](super::Manager::lookup) finds.
pub trait Proxy: sealed::Sealed + Sized {
    #[doc(hidden)]
    const KIND: Kind;
    #[doc(hidden)]
    fn fingerprint() -> u64;
    #[doc(hidden)]
    fn handle(&self) -> &Handle;
    #[doc(hidden)]
    fn from_handle(handle: Handle) -> Self;
}

/// The fingerprint of proxy type `P`: a hash of its full name, element
/// types included.
fn fingerprint_of<P>() -> u64 {
    // 64-bit FNV-1a.
    core::any::type_name::<P>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

macro_rules! proxy {
    ($(#[$doc:meta])* $name:ident $(<$($param:ident),*>)?, $kind:ident) => {
        $(#[$doc])*
        #[derive(Serialize)]
        #[serde(transparent)]
        pub struct $name $(<$($param),*>)? {
            handle: Handle,
            #[serde(skip)]
            _types: PhantomData<fn() -> ($($($param,)*)?)>,
        }

        /// A proxy read from bytes asks for the object as *its* type: the
        /// server compares that with the object's, so a proxy read as
        /// another type fails on first use, not with garbage.
        impl<'de, $($($param: 'static),*)?> Deserialize<'de> for $name $(<$($param),*>)? {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let mut handle = Handle::deserialize(deserializer)?;
                handle.kind = <Self as Proxy>::KIND;
                handle.fingerprint = <Self as Proxy>::fingerprint();
                Ok(<Self as Proxy>::from_handle(handle))
            }
        }

        impl $(<$($param),*>)? Clone for $name $(<$($param),*>)? {
            fn clone(&self) -> Self {
                Self {
                    handle: self.handle.clone(),
                    _types: PhantomData,
                }
            }
        }

        impl $(<$($param),*>)? fmt::Debug for $name $(<$($param),*>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.handle.fmt(f)
            }
        }

        impl $(<$($param),*>)? sealed::Sealed for $name $(<$($param),*>)? {}

        impl $(<$($param: 'static),*>)? Proxy for $name $(<$($param),*>)? {
            const KIND: Kind = Kind::$kind;

            fn fingerprint() -> u64 {
                fingerprint_of::<Self>()
            }

            fn handle(&self) -> &Handle {
                &self.handle
            }

            fn from_handle(handle: Handle) -> Self {
                Self {
                    handle,
                    _types: PhantomData,
                }
            }
        }
    };
}

proxy!(
    /// A dictionary kept by a manager (Python's `DictProxy`): keys and
    /// values are any serde types; keys are compared by their encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let scores = manager.dict::<String, u32>()?;
    /// scores.insert("ada".into(), 3)?;
    /// let mut child = mproc_pool::Process::spawn({
    ///     let scores = scores.clone();
    ///     move || scores.insert("bob".into(), 5).unwrap()
    /// })?;
    /// child.join()?;
    /// assert_eq!(scores.get(&"bob".into())?, Some(5));
    /// assert_eq!(scores.len()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    DictProxy<K, V>,
    Dict
);

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    /// The value of `key`, if there is one.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached or the value does
    /// not decode (as for every verb).
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        self.handle.maybe(Op::DictGet(encode(key)?))
    }

    /// Sets `key` to `value`; returns the value it replaced.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, ManagerError> {
        self.handle
            .maybe(Op::DictInsert(encode(&key)?, encode(&value)?))
    }

    /// Removes `key`; returns its value.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        self.handle.maybe(Op::DictRemove(encode(key)?))
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn contains_key(&self, key: &K) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::DictContains(encode(key)?))
    }

    /// The number of entries.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.handle.count(Op::Len)? as usize)
    }

    /// Whether there is no entry.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// The keys, in no particular order.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        self.handle.many(Op::DictKeys)
    }

    /// The values, in no particular order.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn values(&self) -> Result<Vec<V>, ManagerError> {
        self.handle.many(Op::DictValues)
    }

    /// The entries, in no particular order: a snapshot.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        match self.handle.call(Op::DictItems)? {
            Answer::Pairs(pairs) => pairs
                .iter()
                .map(|(key, value)| Ok((decode(key)?, decode(value)?)))
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// Inserts every entry of `entries`, in one request.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn update(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<(), ManagerError> {
        let pairs = entries
            .into_iter()
            .map(|(key, value)| Ok((encode(&key)?, encode(&value)?)))
            .collect::<Result<_, ManagerError>>()?;
        self.handle.unit(Op::DictUpdate(pairs))
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Clear)
    }

    /// The value of `key`, after setting it to `default` if it had none
    /// (Python's `setdefault`), in one step.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn get_or_insert(&self, key: K, default: V) -> Result<V, ManagerError> {
        self.handle
            .value(Op::DictGetOrInsert(encode(&key)?, encode(&default)?))
    }
}

proxy!(
    /// A list kept by a manager (Python's `ListProxy`).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let list = manager.list::<String>()?;
    /// list.push("a".into())?;
    /// list.extend(["b".into(), "c".into()])?;
    /// assert_eq!(list.pop()?, Some("c".to_owned()));
    /// assert_eq!(list.to_vec()?, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ListProxy<T>,
    List
);

impl<T: Serialize + DeserializeOwned + 'static> ListProxy<T> {
    /// Appends `item`.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached or a value does
    /// not decode (as for every verb).
    pub fn push(&self, item: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::Push(encode(&item)?))
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn pop(&self) -> Result<Option<T>, ManagerError> {
        self.handle.maybe(Op::Pop)
    }

    /// The item at `index`.
    ///
    /// # Errors
    /// [`ManagerError::IndexOutOfRange`], or as [`Self::push`].
    pub fn get(&self, index: usize) -> Result<T, ManagerError> {
        self.handle.value(Op::Get(index as u64))
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    /// [`ManagerError::IndexOutOfRange`], or as [`Self::push`].
    pub fn set(&self, index: usize, item: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::Set(index as u64, encode(&item)?))
    }

    /// The number of items.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.handle.count(Op::Len)? as usize)
    }

    /// Whether there is no item.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// Appends every item of `items`, in one request.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        let items = items
            .into_iter()
            .map(|item| encode(&item))
            .collect::<Result<_, _>>()?;
        self.handle.unit(Op::Extend(items))
    }

    /// Inserts `item` before `index` (at the end if `index` is past it, as
    /// Python does).
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn insert(&self, index: usize, item: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::Insert(index as u64, encode(&item)?))
    }

    /// Removes and returns the item at `index`.
    ///
    /// # Errors
    /// [`ManagerError::IndexOutOfRange`], or as [`Self::push`].
    pub fn remove(&self, index: usize) -> Result<T, ManagerError> {
        self.handle.value(Op::RemoveAt(index as u64))
    }

    /// Removes every item.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Clear)
    }

    /// Every item, in order: a snapshot.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn to_vec(&self) -> Result<Vec<T>, ManagerError> {
        self.handle.many(Op::Snapshot)
    }

    /// An iterator over a snapshot of the items.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>, ManagerError> {
        Ok(self.to_vec()?.into_iter())
    }
}

/// Numbers a manager's server can add to a [`ValueProxy`] in one step.
pub trait Number: Serialize + DeserializeOwned + sealed::Sealed + 'static {
    #[doc(hidden)]
    const KIND: NumKind;
}

macro_rules! number {
    ($($ty:ty => $kind:ident),*) => {$(
        impl sealed::Sealed for $ty {}
        impl Number for $ty {
            const KIND: NumKind = NumKind::$kind;
        }
    )*};
}

number!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128, isize => Isize,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128, usize => Usize,
    f32 => F32, f64 => F64);

proxy!(
    /// One value kept by a manager (Python's `Value` proxy). A closure
    /// cannot run in the server, so read-modify-write comes as the
    /// operations a server can do alone: [`replace`](Self::replace),
    /// [`compare_and_swap`](Self::compare_and_swap) and, for numbers,
    /// [`add`](Self::add).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let hits = manager.value(0u64)?;
    /// assert_eq!(hits.add(5)?, 5);
    /// assert_eq!(hits.compare_and_swap(&5, 7)?, Ok(5));
    /// assert_eq!(hits.compare_and_swap(&5, 9)?, Err(7));
    /// assert_eq!(hits.replace(1)?, 7);
    /// assert_eq!(hits.get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ValueProxy<T>,
    Value
);

impl<T: Serialize + DeserializeOwned + 'static> ValueProxy<T> {
    /// The value.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached or the value does
    /// not decode (as for every verb).
    pub fn get(&self) -> Result<T, ManagerError> {
        self.handle.value(Op::Load)
    }

    /// Sets the value.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn set(&self, value: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::Store(encode(&value)?))
    }

    /// Sets the value and returns the one it replaced, in one step.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn replace(&self, value: T) -> Result<T, ManagerError> {
        self.handle.value(Op::Swap(encode(&value)?))
    }

    /// Sets the value to `new` if it is `current` (as encoded: equal
    /// values of one type encode alike), in one step. `Ok(previous)` if it
    /// was replaced, `Err(actual)` with the value found otherwise (as
    /// `AtomicU64::compare_exchange`).
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn compare_and_swap(&self, current: &T, new: T) -> Result<Result<T, T>, ManagerError> {
        let current_bytes = encode(current)?;
        match self.handle.call(Op::CompareAndSwap {
            current: current_bytes.clone(),
            new: encode(&new)?,
        })? {
            Answer::Maybe(None) => Ok(Ok(decode(&current_bytes)?)),
            Answer::Maybe(Some(actual)) => Ok(Err(decode(&actual)?)),
            other => Err(unexpected(other)),
        }
    }
}

impl<T: Number> ValueProxy<T> {
    /// Adds `delta` in one step and returns the sum; integers are checked
    /// ([`ManagerError::Overflow`] leaves the value as it was).
    ///
    /// # Errors
    /// [`ManagerError::Overflow`], or as [`Self::get`].
    pub fn add(&self, delta: T) -> Result<T, ManagerError> {
        self.handle.value(Op::Add {
            kind: T::KIND,
            delta: encode(&delta)?,
        })
    }
}

proxy!(
    /// A fixed-length array kept by a manager (Python's `Array` proxy).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let array = manager.array(0..4)?;
    /// array.set(0, 9)?;
    /// assert_eq!(array.to_vec()?, [9, 1, 2, 3]);
    /// assert!(array.set(4, 0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ArrayProxy<T>,
    Array
);

impl<T: Serialize + DeserializeOwned + 'static> ArrayProxy<T> {
    /// The element at `index`.
    ///
    /// # Errors
    /// [`ManagerError::IndexOutOfRange`]; or [`ManagerError`] if the
    /// server cannot be reached or the element does not decode.
    pub fn get(&self, index: usize) -> Result<T, ManagerError> {
        self.handle.value(Op::Get(index as u64))
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn set(&self, index: usize, item: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::Set(index as u64, encode(&item)?))
    }

    /// The number of elements.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.handle.count(Op::Len)? as usize)
    }

    /// Whether the array has no element.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// Every element, in order: a snapshot.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn to_vec(&self) -> Result<Vec<T>, ManagerError> {
        self.handle.many(Op::Snapshot)
    }
}

proxy!(
    /// Named fields of any serde types, kept by a manager (Python's
    /// `Namespace`). Each field remembers its type: reading it as another
    /// is [`ManagerError::FieldType`].
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let ns = manager.namespace()?;
    /// ns.set("name", "ada".to_owned())?;
    /// ns.set("age", 36u32)?;
    /// assert_eq!(ns.get::<u32>("age")?, Some(36));
    /// assert!(ns.get::<String>("age").is_err());
    /// assert_eq!(ns.names()?, ["age", "name"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    NamespaceProxy,
    Namespace
);

impl NamespaceProxy {
    /// The field `name`, if it is set.
    ///
    /// # Errors
    /// [`ManagerError::FieldType`] if it holds another type; or
    /// [`ManagerError`] if the server cannot be reached.
    pub fn get<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ManagerError> {
        match self.handle.call(Op::FieldGet(name.to_owned()))? {
            Answer::Field(None) => Ok(None),
            Answer::Field(Some((fingerprint, bytes))) => {
                if fingerprint != fingerprint_of::<T>() {
                    return Err(ManagerError::FieldType(name.to_owned()));
                }
                decode(&bytes).map(Some)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Sets the field `name` (of any type, which it then keeps).
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn set<T: Serialize + 'static>(&self, name: &str, value: T) -> Result<(), ManagerError> {
        self.handle.unit(Op::FieldSet(
            name.to_owned(),
            fingerprint_of::<T>(),
            encode(&value)?,
        ))
    }

    /// Removes the field `name`; whether it was set.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn remove(&self, name: &str) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::FieldRemove(name.to_owned()))
    }

    /// The names of the fields that are set, sorted.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub fn names(&self) -> Result<Vec<String>, ManagerError> {
        match self.handle.call(Op::FieldNames)? {
            Answer::Names(names) => Ok(names),
            other => Err(unexpected(other)),
        }
    }
}

/// A lock of a manager held by this thread's connection: released when
/// dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ProxyGuard<'a> {
    handle: &'a Handle,
}

impl fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyGuard")
            .field("lock", self.handle)
            .finish()
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        // A server that is gone holds no lock any more.
        let _ = self.handle.unit(Op::Release);
    }
}

/// Acquire, release and guards: the verbs of every manager lock.
macro_rules! acquirer {
    ($name:ident) => {
        impl $name {
            /// Waits as long as it takes for the lock.
            ///
            /// # Errors
            /// [`ManagerError`] if the server cannot be reached (a server
            /// that dies while this waits is [`ManagerError::ServerGone`],
            /// not a hang).
            pub fn acquire(&self) -> Result<(), ManagerError> {
                self.handle
                    .boolean(Op::Acquire { timeout_ms: None })
                    .map(|_| ())
            }

            /// Waits at most `timeout` for the lock; whether it was taken.
            ///
            /// # Errors
            /// As [`Self::acquire`].
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
                self.handle.boolean(Op::Acquire {
                    timeout_ms: millis(timeout),
                })
            }

            /// Takes the lock if it is free; whether it was taken.
            ///
            /// # Errors
            /// As [`Self::acquire`].
            pub fn try_acquire(&self) -> Result<bool, ManagerError> {
                self.acquire_timeout(Duration::ZERO)
            }

            /// Releases the lock, which this thread must hold.
            ///
            /// # Errors
            /// [`ManagerError::NotOwner`] if it does not, or as
            /// [`Self::acquire`].
            pub fn release(&self) -> Result<(), ManagerError> {
                self.handle.unit(Op::Release)
            }

            /// Takes the lock; the guard releases it when dropped.
            ///
            /// # Errors
            /// As [`Self::acquire`].
            pub fn lock(&self) -> Result<ProxyGuard<'_>, ManagerError> {
                self.acquire()?;
                Ok(ProxyGuard {
                    handle: &self.handle,
                })
            }

            /// Takes the lock, waiting at most `timeout`; `None` if it did
            /// not come.
            ///
            /// # Errors
            /// As [`Self::acquire`].
            pub fn lock_timeout(
                &self,
                timeout: Duration,
            ) -> Result<Option<ProxyGuard<'_>>, ManagerError> {
                Ok(self.acquire_timeout(timeout)?.then(|| ProxyGuard {
                    handle: &self.handle,
                }))
            }
        }
    };
}

proxy!(
    /// A lock kept by a manager (Python's `Lock()` of a manager). Held by
    /// a connection (a thread of a process): if its process dies, the
    /// server releases it.
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let lock = manager.lock()?;
    /// let guard = lock.lock()?;
    /// let mut child = mproc_pool::Process::spawn({
    ///     let lock = lock.clone();
    ///     move || lock.try_acquire().unwrap()
    /// })?;
    /// assert!(!child.join()?);
    /// drop(guard);
    /// assert!(lock.try_acquire()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    LockProxy,
    Lock
);
acquirer!(LockProxy);

proxy!(
    /// A reentrant lock kept by a manager (Python's `RLock()` of a
    /// manager): its holder may take it again, and must release it as
    /// many times.
    RLockProxy,
    RLock
);
acquirer!(RLockProxy);

proxy!(
    /// A semaphore kept by a manager (Python's `Semaphore(n)` of a
    /// manager).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let slots = manager.semaphore(1)?;
    /// assert!(slots.try_acquire()?);
    /// assert!(!slots.try_acquire()?);
    /// slots.release()?;
    /// assert_eq!(slots.value()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    SemaphoreProxy,
    Semaphore
);

impl SemaphoreProxy {
    /// Takes one unit, waiting as long as it takes.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn acquire(&self) -> Result<(), ManagerError> {
        self.handle
            .boolean(Op::Acquire { timeout_ms: None })
            .map(|_| ())
    }

    /// Takes one unit, waiting at most `timeout`; whether it did.
    ///
    /// # Errors
    /// As [`Self::acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::Acquire {
            timeout_ms: millis(timeout),
        })
    }

    /// Takes one unit if there is one; whether it did.
    ///
    /// # Errors
    /// As [`Self::acquire`].
    pub fn try_acquire(&self) -> Result<bool, ManagerError> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Gives one unit back.
    ///
    /// # Errors
    /// As [`Self::acquire`].
    pub fn release(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Release)
    }

    /// The units available now.
    ///
    /// # Errors
    /// As [`Self::acquire`].
    pub fn value(&self) -> Result<u64, ManagerError> {
        self.handle.count(Op::SemaphoreValue)
    }
}

proxy!(
    /// An event kept by a manager (Python's `Event()` of a manager).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let manager = mproc_pool::Manager::start()?;
    /// let ready = manager.event()?;
    /// assert!(!ready.wait_timeout(Duration::from_millis(10))?);
    /// ready.set()?;
    /// assert!(ready.is_set()?);
    /// ready.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    EventProxy,
    Event
);

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn set(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::EventSet)
    }

    /// Clears the flag.
    ///
    /// # Errors
    /// As [`Self::set`].
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::EventClear)
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    /// As [`Self::set`].
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::IsSet)
    }

    /// Waits as long as it takes for the flag.
    ///
    /// # Errors
    /// As [`Self::set`].
    pub fn wait(&self) -> Result<(), ManagerError> {
        self.handle
            .boolean(Op::Wait { timeout_ms: None })
            .map(|_| ())
    }

    /// Waits at most `timeout` for the flag; whether it is set.
    ///
    /// # Errors
    /// As [`Self::set`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::Wait {
            timeout_ms: millis(timeout),
        })
    }
}

proxy!(
    /// A condition variable with its own lock, kept by a manager (Python's
    /// `Condition()` of a manager). `wait` and `notify` need the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let manager = mproc_pool::Manager::start()?;
    /// let (cond, done) = (manager.condition()?, manager.value(false)?);
    /// let mut child = mproc_pool::Process::spawn({
    ///     let (cond, done) = (cond.clone(), done.clone());
    ///     move || {
    ///         let _guard = cond.lock().unwrap();
    ///         done.set(true).unwrap();
    ///         cond.notify_all().unwrap();
    ///     }
    /// })?;
    /// let guard = cond.lock()?;
    /// while !done.get()? {
    ///     cond.wait_timeout(Duration::from_secs(5))?;
    /// }
    /// drop(guard);
    /// child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ConditionProxy,
    Condition
);
acquirer!(ConditionProxy);

impl ConditionProxy {
    /// Releases the lock, waits to be notified, and takes the lock back.
    ///
    /// # Errors
    /// [`ManagerError::NotOwner`] without the lock; or [`ManagerError`]
    /// if the server cannot be reached.
    pub fn wait(&self) -> Result<(), ManagerError> {
        self.handle
            .boolean(Op::Wait { timeout_ms: None })
            .map(|_| ())
    }

    /// As [`Self::wait`], waiting at most `timeout` to be notified (the
    /// lock is taken back either way); whether it was notified.
    ///
    /// # Errors
    /// As [`Self::wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::Wait {
            timeout_ms: millis(timeout),
        })
    }

    /// Wakes up to `n` waiters.
    ///
    /// # Errors
    /// As [`Self::wait`].
    pub fn notify(&self, n: usize) -> Result<(), ManagerError> {
        self.handle.unit(Op::Notify(n as u64))
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    /// As [`Self::wait`].
    pub fn notify_all(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Notify(u64::MAX))
    }
}

proxy!(
    /// A barrier kept by a manager (Python's `Barrier(parties)` of a
    /// manager).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let barrier = manager.barrier(2)?;
    /// let mut child = mproc_pool::Process::spawn({
    ///     let barrier = barrier.clone();
    ///     move || barrier.wait().unwrap()
    /// })?;
    /// let mine = barrier.wait()?;
    /// let theirs = child.join()?;
    /// assert_eq!(mine + theirs, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    BarrierProxy,
    Barrier
);

impl BarrierProxy {
    /// Waits for every party; returns this one's arrival index (0 for
    /// the first).
    ///
    /// # Errors
    /// [`ManagerError::BrokenBarrier`] if the barrier is or gets broken;
    /// or [`ManagerError`] if the server cannot be reached.
    pub fn wait(&self) -> Result<u64, ManagerError> {
        self.handle.count(Op::Wait { timeout_ms: None })
    }

    /// As [`Self::wait`], at most `timeout`: a timeout breaks the barrier
    /// (as Python's does).
    ///
    /// # Errors
    /// As [`Self::wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64, ManagerError> {
        self.handle.count(Op::Wait {
            timeout_ms: millis(timeout),
        })
    }

    /// Breaks the barrier: waiters and later callers get
    /// [`ManagerError::BrokenBarrier`].
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn abort(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Abort)
    }

    /// Makes the barrier whole and empty again; its waiters get
    /// [`ManagerError::BrokenBarrier`].
    ///
    /// # Errors
    /// As [`Self::abort`].
    pub fn reset(&self) -> Result<(), ManagerError> {
        self.handle.unit(Op::Reset)
    }

    /// The parties it waits for.
    ///
    /// # Errors
    /// As [`Self::abort`].
    pub fn parties(&self) -> Result<u64, ManagerError> {
        self.handle.count(Op::Parties)
    }

    /// The parties waiting now.
    ///
    /// # Errors
    /// As [`Self::abort`].
    pub fn n_waiting(&self) -> Result<u64, ManagerError> {
        self.handle.count(Op::NWaiting)
    }

    /// Whether it is broken.
    ///
    /// # Errors
    /// As [`Self::abort`].
    pub fn broken(&self) -> Result<bool, ManagerError> {
        self.handle.boolean(Op::Broken)
    }
}

proxy!(
    /// A bounded queue kept by a manager (Python's `Queue(maxsize)` of a
    /// manager).
    ///
    /// # Examples
    ///
    /// ```
    /// let manager = mproc_pool::Manager::start()?;
    /// let queue = manager.queue::<String>(1)?;
    /// queue.put("job".into())?;
    /// assert!(matches!(queue.try_put("more".into()), Err(mproc_pool::ManagerError::Full)));
    /// assert_eq!(queue.get()?, "job");
    /// assert!(matches!(queue.try_get(), Err(mproc_pool::ManagerError::Empty)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    QueueProxy<T>,
    Queue
);

impl<T: Serialize + DeserializeOwned + 'static> QueueProxy<T> {
    /// Appends `item`, waiting as long as it takes for room.
    ///
    /// # Errors
    /// [`ManagerError`] if the server cannot be reached.
    pub fn put(&self, item: T) -> Result<(), ManagerError> {
        self.put_with(item, None)
    }

    /// Appends `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`ManagerError::Timeout`], or as [`Self::put`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), ManagerError> {
        self.put_with(item, millis(timeout))
    }

    /// Appends `item` if there is room.
    ///
    /// # Errors
    /// [`ManagerError::Full`], or as [`Self::put`].
    pub fn try_put(&self, item: T) -> Result<(), ManagerError> {
        self.put_with(item, Some(0))
    }

    fn put_with(&self, item: T, timeout_ms: Option<u64>) -> Result<(), ManagerError> {
        self.handle.unit(Op::Put {
            item: encode(&item)?,
            timeout_ms,
        })
    }

    /// Takes the first item, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Self::put`].
    pub fn get(&self) -> Result<T, ManagerError> {
        self.handle.value(Op::Take { timeout_ms: None })
    }

    /// Takes the first item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`ManagerError::Timeout`], or as [`Self::put`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, ManagerError> {
        self.handle.value(Op::Take {
            timeout_ms: millis(timeout),
        })
    }

    /// Takes the first item if there is one.
    ///
    /// # Errors
    /// [`ManagerError::Empty`], or as [`Self::put`].
    pub fn try_get(&self) -> Result<T, ManagerError> {
        self.handle.value(Op::Take {
            timeout_ms: Some(0),
        })
    }

    /// The number of items.
    ///
    /// # Errors
    /// As [`Self::put`].
    pub fn len(&self) -> Result<usize, ManagerError> {
        Ok(self.handle.count(Op::Len)? as usize)
    }

    /// Whether there is no item.
    ///
    /// # Errors
    /// As [`Self::put`].
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }
}
