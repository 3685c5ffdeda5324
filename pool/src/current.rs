//! Who this process is, who its parent is, and which children it has:
//! [`current_process`], [`parent_process`], [`active_children`],
//! [`cpu_count`], and what happens to children when this process exits.
//!
//! Each process keeps one record of itself (its name, its place in the
//! tree, whether it is a daemon) and a registry of the children it started,
//! in its [`Books`]: memory that a `fork` does not copy, so that a parent
//! pays no page fault for updating them around each child, and a child
//! starts from fresh books of its own (its name comes from
//! [`enter_child`]).
//!
//! At exit (returning from `main` or `std::process::exit`) a process that
//! started children runs Python's exit function: it logs `process shutting
//! down`, terminates its daemon children (`SIGTERM`) and waits for all of
//! them. A child started by mproc runs the same function when its closure
//! returns. Daemon children are also asked to die with their parent
//! (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), so that a parent killed with
//! `SIGKILL` does not leave them behind.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use compact_str::CompactString;
use mproc_os::pipe::{PipeReader, PipeWriter, SmallBuffer, SpillFile};
use mproc_os::process::{current_pid, parent_pid};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::process::ChildKind;

/// A process's place in the tree (see [`ChildSetup::identity`]); held
/// inline up to a depth of six.
pub(crate) type Identity = SmallVec<[u32; 6]>;

/// How a child learns who it is: sent through `fork` (a copy), or in the
/// request of a `Spawn` / `ForkServer` start.
///
/// Its strings and identity are held inline when short (default names
/// are): a forked parent drops its copy right after the `fork`, and
/// freeing heap memory then would cost it page faults (see [`Books`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChildSetup {
    /// The child's name (`Process-N` unless the builder named it).
    pub(crate) name: CompactString,
    /// Its place in the tree: `[1]` for `Process-1`, `[1, 2]` for the second
    /// child of `Process-1`.
    pub(crate) identity: Identity,
    /// Whether it is a daemon.
    pub(crate) daemon: bool,
    /// The process that asked for it (not the fork server that forked it).
    pub(crate) parent_pid: u32,
    /// That process's name.
    pub(crate) parent_name: CompactString,
    /// The level of [`log_to_stderr`](crate::log_to_stderr) in the parent,
    /// if it logs through it: a child that does not inherit the logger
    /// (`Spawn`, `ForkServer`) installs it with this level.
    pub(crate) log_level: Option<usize>,
}

/// The record of this process.
struct Me {
    pid: u32,
    name: CompactString,
    identity: Identity,
    daemon: bool,
    /// Children started so far (numbers the next default name).
    started: u32,
    parent: Option<ParentProcess>,
    /// Children started and not yet known to be reaped.
    children: Registry,
    /// Whether the exit function is registered in this process.
    exit_hook: bool,
    /// The output of a joined child, empty, for the next child forked
    /// directly (see [`keep_spare_output`]).
    spare_output: Option<(PipeReader, PipeWriter, SpillFile)>,
}

impl Me {
    fn main(pid: u32) -> Me {
        Me {
            pid,
            name: CompactString::const_new("MainProcess"),
            identity: Identity::new(),
            daemon: false,
            started: 0,
            parent: None,
            children: Registry {
                cells: 0,
                more: Vec::new(),
            },
            exit_hook: false,
            spare_output: None,
        }
    }
}

/// The children of this process started and not yet known to be reaped,
/// each holding a reference to its entry. Those whose entry is in a cell
/// of the [`Books`] are marked in a bit mask, so registering a child
/// writes nothing but the books; the others are listed on the heap.
struct Registry {
    /// Bit `i`: the entry in cell `i` is registered (and this holds one of
    /// its references).
    cells: u32,
    more: Vec<EntryRef>,
}

impl Registry {
    fn add(&mut self, entry: EntryRef) {
        match books().index_of(entry.cell) {
            Some(index) => {
                self.cells |= 1 << index;
                // Its count now belongs to the bit.
                std::mem::forget(entry);
            }
            None => self.more.push(entry),
        }
    }

    /// The reference bit `index` holds, taken out of the registry.
    fn take_cell(&mut self, index: usize) -> EntryRef {
        self.cells &= !(1 << index);
        EntryRef {
            cell: books().cell(index),
            pid: current_pid(),
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> + Clone {
        let books = books();
        (0..CELLS)
            .filter(|index| self.cells & 1 << index != 0)
            // SAFETY: a registered cell holds a live entry as long as the
            // registry keeps its reference, which `&self` guarantees.
            .map(move |index| unsafe { &books.cell(index).as_ref().entry })
            .chain(self.more.iter().filter_map(EntryRef::get))
    }

    /// Drops the children for which `keep` is false.
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let books = books();
        for index in 0..CELLS {
            // SAFETY: as in `entries`.
            if self.cells & 1 << index != 0 && !keep(unsafe { &books.cell(index).as_ref().entry }) {
                drop(self.take_cell(index));
            }
        }
        self.more.retain(|entry| entry.get().is_some_and(&mut keep));
    }

    /// Takes every child out of the registry.
    fn take_all(&mut self) -> Vec<EntryRef> {
        let mut all: Vec<EntryRef> = (0..CELLS)
            .filter(|index| self.cells & 1 << index != 0)
            .collect::<Vec<_>>()
            .into_iter()
            .map(|index| self.take_cell(index))
            .collect();
        all.append(&mut self.more);
        all
    }
}

/// How many children's entries the books hold; more live children than
/// this get theirs from the heap.
const CELLS: usize = 32;

/// This process's books: its record and the entries of its children, in
/// memory that a `fork` does not copy (`MADV_WIPEONFORK`).
///
/// A parent updates them right after every `fork` (the new child's entry,
/// the registry) and again at the join. In ordinary memory each page that
/// the fork left shared with the child would cost the parent a page fault
/// and a copy on its first write; these pages are not shared, so the
/// parent writes them for free, and a child finds them zeroed and opens
/// books of its own ([`Books::open`]). Heap memory is avoided on the same
/// path for the same reason: an allocation or a free writes the
/// allocator's pages.
///
/// A child's copies of its parent's handles (say, a `Process` moved into
/// a forked closure) refer to cells it does not have: [`EntryRef`] checks
/// the process it belongs to before each use. The parent's descriptors
/// stay open in the child, unused, as with any `fork`; they are
/// close-on-exec.
#[repr(C)]
struct Books {
    /// The pid these books were opened for: 0 in memory just mapped or
    /// wiped by a fork; [`OPENING`] `| pid` while that process opens them.
    owner: AtomicU32,
    /// This process's record; initialized once `owner` is this pid.
    me: UnsafeCell<MaybeUninit<Mutex<Me>>>,
    /// Bit `i` set: `cells[i]` holds an entry.
    used: AtomicU32,
    cells: [UnsafeCell<MaybeUninit<EntryCell>>; CELLS],
}

const _: () = assert!(CELLS <= u32::BITS as usize);

// SAFETY: `me` is a `Mutex` once initialized (and only the opening thread
// touches it before), and a cell is used by the one `EntryCell` that took
// its bit in `used`.
unsafe impl Sync for Books {}

/// Marks `owner` while a thread opens the books (pids are below 2^22).
const OPENING: u32 = 1 << 31;

/// The books of this process (see [`Books`]), mapped on first use; a forked
/// child inherits the address and finds the memory zeroed.
static BOOKS: AtomicPtr<Books> = AtomicPtr::new(ptr::null_mut());

/// This process's books, opened.
fn books() -> &'static Books {
    let mut books = BOOKS.load(Ordering::Acquire);
    if books.is_null() {
        books = map_books();
    }
    // SAFETY: `BOOKS` only holds zero-initialized memory for a `Books`
    // (valid as all zeroes: atomics and `MaybeUninit`s), never freed.
    let books = unsafe { &*books };
    let pid = current_pid();
    if books.owner.load(Ordering::Acquire) != pid {
        books.open(pid);
    }
    books
}

/// The books of a process that has just started: as [`books`], but
/// claiming them at once (see [`enter_child`]).
fn open_books() -> &'static Books {
    let mut books = BOOKS.load(Ordering::Acquire);
    if books.is_null() {
        books = map_books();
    }
    // SAFETY: as in `books`.
    let books = unsafe { &*books };
    let pid = current_pid();
    // Wiped books read 0: claim them with the first access.
    if books
        .owner
        .compare_exchange(0, OPENING | pid, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        // SAFETY: as in `open`: the books were not this process's, and no
        // other thread of it uses them until `owner` says they are.
        unsafe { books.start(pid) };
    } else {
        books.open(pid);
    }
    books
}

#[cold]
fn map_books() -> *mut Books {
    let fresh: *mut Books = match mproc_os::process::map_wiped_on_fork(size_of::<Books>()) {
        // Page-aligned, so aligned for `Books`.
        Ok(memory) => memory.as_ptr().cast(),
        // No wiped memory (a kernel before 4.14, or no memory for a
        // mapping): zeroed heap memory instead. A child then inherits a
        // copy, which `open` starts afresh all the same; only the parent
        // pays again for the pages it writes after each fork.
        Err(_) => {
            let layout = std::alloc::Layout::new::<Books>();
            // SAFETY: `Books` is not zero-sized.
            let memory = unsafe { std::alloc::alloc_zeroed(layout) };
            if memory.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            memory.cast()
        }
    };
    match BOOKS.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        // Another thread mapped them first: ours stays unused (once).
        Err(theirs) => theirs,
    }
}

impl Books {
    /// Makes these the books of process `pid`: a fresh record, no entries.
    /// What was there (zeroes, or without wiped memory a parent's books
    /// copied by the fork) is overwritten, not dropped: it belongs to the
    /// parent.
    fn open(&self, pid: u32) {
        loop {
            let owner = self.owner.load(Ordering::Acquire);
            if owner == pid {
                return;
            }
            if owner == OPENING | pid {
                // Another thread of this process is opening them.
                std::hint::spin_loop();
                continue;
            }
            if self
                .owner
                .compare_exchange(owner, OPENING | pid, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: `owner` was not this pid, so no thread of this
                // process has used `me` yet (others wait in this loop), and
                // now it says we open them.
                unsafe { self.start(pid) };
                return;
            }
        }
    }

    /// Writes a fresh record and frees every cell, then marks the books
    /// open for `pid`.
    ///
    /// # Safety
    /// `owner` is `OPENING | pid`, set by the caller.
    unsafe fn start(&self, pid: u32) {
        // SAFETY: no other thread uses `me` while `owner` says we open the
        // books, and a `MaybeUninit` may be overwritten whatever it holds.
        unsafe { (*self.me.get()).write(Mutex::new(Me::main(pid))) };
        self.used.store(0, Ordering::Relaxed);
        self.owner.store(pid, Ordering::Release);
    }

    /// Cell `index`.
    fn cell(&self, index: usize) -> NonNull<EntryCell> {
        NonNull::from(&self.cells[index]).cast()
    }

    /// The index of `cell` if it is one of these books' cells (not on the
    /// heap).
    fn index_of(&self, cell: NonNull<EntryCell>) -> Option<usize> {
        let first = self.cells.as_ptr() as usize;
        let offset = (cell.as_ptr() as usize).checked_sub(first)?;
        let index = offset / size_of::<EntryCell>();
        (index < CELLS).then_some(index)
    }

    /// Takes a free cell, if any.
    fn take_cell(&self) -> Option<NonNull<EntryCell>> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let free = (!used).trailing_zeros() as usize;
            if free >= CELLS {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used | 1 << free,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.cell(free)),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back a cell (its entry dropped), or frees one from the heap.
    ///
    /// # Safety
    /// `cell` came from [`take_cell`](Books::take_cell) of these books or
    /// from [`EntryRef::new`]'s heap allocation, holds no live entry, and
    /// is not used again.
    unsafe fn release(&self, cell: NonNull<EntryCell>) {
        match self.index_of(cell) {
            Some(index) => {
                self.used.fetch_and(!(1 << index), Ordering::Release);
            }
            None => {
                // SAFETY: per the contract, a heap allocation of a
                // `MaybeUninit<EntryCell>` made by `Box`, now unused.
                drop(unsafe { Box::from_raw(cell.as_ptr().cast::<MaybeUninit<EntryCell>>()) });
            }
        }
    }
}

/// The record of this process (its books opened first), locked.
///
/// Never log while holding it: the logger asks for the name.
fn me() -> MutexGuard<'static, Me> {
    let books = books();
    // SAFETY: `books()` returns books opened for this process, whose `me`
    // is initialized and stays so in this process.
    let me = unsafe { (*books.me.get()).assume_init_ref() };
    me.lock().unwrap_or_else(PoisonError::into_inner)
}

fn with_me<R>(f: impl FnOnce(&mut Me) -> R) -> R {
    f(&mut me())
}

/// A child in the registry, shared with its [`Process`](crate::Process)
/// handle (if the handle still exists) through [`EntryRef`]s.
pub(crate) struct Entry {
    pub(crate) pid: u32,
    pub(crate) name: CompactString,
    pub(crate) daemon: bool,
    /// Locked while somebody waits for the child.
    tracked: Mutex<Tracked>,
}

/// A child as its waiter sees it: the handle to wait with, and what it has
/// sent so far.
pub(crate) struct Tracked {
    pub(crate) kind: ChildKind,
    /// What the child wrote to its output pipe: a result of up to 240
    /// bytes is held inline, in the books.
    pub(crate) received: SmallBuffer<240>,
}

impl Entry {
    pub(crate) fn new(pid: u32, name: CompactString, daemon: bool, kind: ChildKind) -> Entry {
        Entry {
            pid,
            name,
            daemon,
            tracked: Mutex::new(Tracked {
                kind,
                received: SmallBuffer::new(),
            }),
        }
    }

    pub(crate) fn child(&self) -> MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the child has ended (and then it is reaped). A child that
    /// somebody is waiting for right now counts as running.
    fn has_ended(&self) -> bool {
        match self.tracked.try_lock() {
            Ok(mut child) => !matches!(child.kind.try_wait(), Ok(None)),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                !matches!(poisoned.into_inner().kind.try_wait(), Ok(None))
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }
}

/// An [`Entry`] and the count of its references, in a cell of the
/// [`Books`] (or on the heap when they are full).
struct EntryCell {
    refs: AtomicU32,
    entry: Entry,
}

/// A counted reference to an [`Entry`] (an `Arc` whose memory is a cell of
/// the [`Books`]), usable only in the process that made it.
pub(crate) struct EntryRef {
    cell: NonNull<EntryCell>,
    /// The process whose books hold the cell.
    pid: u32,
}

// SAFETY: an `EntryRef` is an `Arc<Entry>`; `Entry` is `Send` and `Sync`.
unsafe impl Send for EntryRef {}
// SAFETY: as above.
unsafe impl Sync for EntryRef {}

impl EntryRef {
    pub(crate) fn new(entry: Entry) -> EntryRef {
        let books = books();
        let cell = books.take_cell().unwrap_or_else(|| {
            NonNull::from(Box::leak(Box::new(MaybeUninit::<EntryCell>::uninit()))).cast()
        });
        // SAFETY: the cell is ours alone (its bit just taken, or freshly
        // allocated) and sized and aligned for an `EntryCell`.
        unsafe {
            cell.as_ptr().write(EntryCell {
                refs: AtomicU32::new(1),
                entry,
            })
        };
        EntryRef {
            cell,
            pid: current_pid(),
        }
    }

    /// The entry, or `None` in a process that inherited this reference
    /// through a `fork` (the cell belongs to its parent's books).
    pub(crate) fn get(&self) -> Option<&Entry> {
        if self.pid != current_pid() {
            return None;
        }
        // SAFETY: in the process that made it, the cell holds the entry
        // for as long as a reference (this one) exists.
        Some(unsafe { &self.cell.as_ref().entry })
    }

    fn share(&self) -> EntryRef {
        if let Some(_entry) = self.get() {
            // SAFETY: the cell is live (see `get`).
            unsafe { self.cell.as_ref() }
                .refs
                .fetch_add(1, Ordering::Relaxed);
        }
        EntryRef {
            cell: self.cell,
            pid: self.pid,
        }
    }
}

impl Drop for EntryRef {
    fn drop(&mut self) {
        if self.get().is_none() {
            // A parent's reference: not ours to count.
            return;
        }
        // SAFETY: the cell is live (see `get`).
        let cell = unsafe { self.cell.as_ref() };
        if cell.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: that was the last reference: nobody uses the entry any
        // more; it is dropped once and its cell given back once.
        unsafe {
            ptr::drop_in_place(&raw mut (*self.cell.as_ptr()).entry);
            books().release(self.cell);
        }
    }
}

/// The name and identity for the next child, and the setup it starts with.
pub(crate) fn next_child(name: Option<String>, daemon: bool) -> ChildSetup {
    with_me(|me| {
        me.started += 1;
        let mut identity = me.identity.clone();
        identity.push(me.started);
        let name = match name {
            Some(name) => CompactString::from(name),
            None => default_name(&identity),
        };
        ChildSetup {
            name,
            identity,
            daemon,
            parent_pid: me.pid,
            parent_name: me.name.clone(),
            log_level: crate::logging::inherited_level().map(|level| level as usize),
        }
    })
}

/// `Process-1`, `Process-1:2`, ...: inline, without allocating, up to 24
/// bytes.
fn default_name(identity: &[u32]) -> CompactString {
    use std::fmt::Write;
    let mut name = CompactString::const_new("Process");
    for (i, number) in identity.iter().enumerate() {
        name.push(if i == 0 { '-' } else { ':' });
        // Writing to a string cannot fail.
        let _ = write!(name, "{number}");
    }
    name
}

/// Records a started child (and reaps the ones that have ended).
pub(crate) fn register(entry: &EntryRef) {
    let entry = entry.share();
    let hook = with_me(|me| {
        me.children.retain(|child| !child.has_ended());
        me.children.add(entry);
        !std::mem::replace(&mut me.exit_hook, true)
    });
    if hook && mproc_os::process::at_exit(run_exit_function).is_err() {
        log::warn!("cannot register the exit function: children are not joined at exit");
    }
}

/// Forgets a child that was reaped through its handle.
pub(crate) fn unregister(pid: u32) {
    with_me(|me| me.children.retain(|child| child.pid != pid));
}

/// Keeps the output of a child that was joined through its handle (its
/// pipe and spill file) for the next child this process forks directly: a
/// spawn-and-join loop then reuses them instead of making new ones per
/// child and closing them again (four system calls fewer per child). The
/// record holds them so that they belong to this process: a child's record
/// is a new one.
///
/// The pipe and the file are empty (the child has exited and everything it
/// sent has been read), and completion is decided by a child's exit, never
/// by end of file, so the parent's keeping the write end changes nothing
/// for the next child. Another process may hold a copy of the write end (a
/// child forked while it was kept), as of any pipe; mproc never writes
/// through such a copy. A spare it replaces is closed.
pub(crate) fn keep_spare_output(reader: PipeReader, writer: PipeWriter, spill: SpillFile) {
    let replaced = with_me(|me| me.spare_output.replace((reader, writer, spill)));
    drop(replaced);
}

/// Takes this process's spare output (see [`keep_spare_output`]).
pub(crate) fn take_spare_output() -> Option<(PipeReader, PipeWriter, SpillFile)> {
    with_me(|me| me.spare_output.take())
}

/// Becomes the child described by `setup`: run first thing in every child
/// mproc starts. `os_parent` is the process that forked us (the fork
/// server's pid for `ForkServer`).
///
/// A daemon asks the kernel for `SIGKILL` when `os_parent` dies, and exits
/// at once if it already has.
pub(crate) fn enter_child(setup: ChildSetup, os_parent: u32) {
    let ChildSetup {
        name,
        identity,
        daemon,
        parent_pid,
        parent_name,
        log_level,
    } = setup;
    // Open the books at once, without first reading them: in a forked
    // child they are wiped, and a read would map the zero page only for
    // the first write to fault again.
    let books = open_books();
    // SAFETY: `open_books` returns books opened for this process, whose
    // `me` is initialized and stays so in this process.
    let me = unsafe { (*books.me.get()).assume_init_ref() };
    let mut me = me.lock().unwrap_or_else(PoisonError::into_inner);
    // Fill in the record `open` just made, field by field: small writes,
    // where building a whole record and copying it would call `memcpy`,
    // one more page of code for this child to map.
    me.name = name;
    me.identity = identity;
    me.daemon = daemon;
    me.parent = Some(ParentProcess {
        pid: parent_pid,
        name: parent_name,
    });
    drop(me);
    if let Some(level) = log_level {
        crate::logging::install(level);
    }
    if daemon {
        let parent_alive = mproc_os::process::set_parent_death_signal(
            Some(mproc_os::process::Signal::KILL),
            os_parent,
        );
        if matches!(parent_alive, Ok(false)) {
            // Our parent is already gone: a daemon does not outlive it.
            mproc_os::process::exit_now(crate::process::EXIT_ORPHANED);
        }
    }
}

/// The name of this process: `MainProcess`, `Process-N`, or what its
/// builder named it.
pub(crate) fn name() -> CompactString {
    with_me(|me| me.name.clone())
}

/// What [`current_process`] and [`active_children`] tell about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ProcessInfo {
    /// Its name: `MainProcess` for the first process, `Process-N` (or
    /// `Process-N:M` for a child's child) unless named by its builder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it is a daemon (terminated when its parent exits).
    pub fn daemon(&self) -> bool {
        self.daemon
    }
}

/// This process: its name and pid (Python's `current_process()`).
///
/// # Examples
///
/// ```
/// let me = mproc_pool::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// ```
pub fn current_process() -> ProcessInfo {
    with_me(|me| ProcessInfo {
        name: me.name.to_string(),
        pid: me.pid,
        daemon: me.daemon,
    })
}

/// The process that started this one, as [`parent_process`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentProcess {
    pid: u32,
    name: CompactString,
}

impl ParentProcess {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs.
    ///
    /// A child forked directly sees its parent's pid as its own parent pid
    /// until the parent dies; a child started through the fork server asks
    /// the kernel whether the pid still exists (a pid reused in between
    /// would count as alive).
    pub fn is_alive(&self) -> bool {
        parent_pid() == self.pid || mproc_os::process::exists(self.pid)
    }
}

/// The process that started this one, or `None` in a process mproc did not
/// start (Python's `parent_process()`).
pub fn parent_process() -> Option<ParentProcess> {
    with_me(|me| me.parent.clone())
}

/// The children of this process that are still running; those that have
/// ended since the last look are reaped (Python's `active_children()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut child = mproc_pool::Process::spawn(|| std::thread::sleep(Duration::from_millis(200)))?;
/// assert!(mproc_pool::active_children().iter().any(|c| c.pid() == child.pid()));
/// child.join()?;
/// assert!(mproc_pool::active_children().is_empty());
/// # Ok::<(), mproc_pool::ProcessError>(())
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    with_me(|me| {
        me.children.retain(|child| !child.has_ended());
        me.children
            .entries()
            .map(|child| ProcessInfo {
                name: child.name.to_string(),
                pid: child.pid,
                daemon: child.daemon,
            })
            .collect()
    })
}

/// The number of CPUs this process may run on (its affinity mask, as
/// `std::thread::available_parallelism` reports it; 1 if unknown).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How long a daemon child gets to exit after `SIGTERM` at its parent's
/// exit before it is sent `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(1);

/// Python's exit function: terminate the daemon children, then wait for
/// every child. Run when a child's closure returns, and at the exit of a
/// process that started children.
pub(crate) fn exit_function() {
    log::info!("process shutting down");
    let children = with_me(|me| me.children.take_all());
    let children = children.iter().filter_map(EntryRef::get);
    for child in children.clone().filter(|child| child.daemon) {
        log::info!("calling terminate() for daemon {}", child.name);
        let _ = child.child().kind.terminate();
    }
    for child in children {
        log::info!("calling join() for process {}", child.name);
        let kind = &mut child.child().kind;
        if child.daemon && matches!(kind.wait_timeout(DAEMON_GRACE), Ok(None)) {
            let _ = kind.kill();
        }
        let _ = kind.wait();
    }
}

extern "C" fn run_exit_function() {
    // Only in the process that registered it: a child forked by other
    // code and ending with `exit` has books of its own, without the hook.
    if with_me(|me| me.exit_hook) {
        exit_function();
    }
}
