//! Host memory that plugins make the host allocate, counted per plugin.
//!
//! A plugin's `memory-mib` bounds its linear memory, not what the host
//! allocates on its behalf: resource handles, `wasi:http` fields and bodies,
//! storage batch results, streams. [`HostAllocator`] is a global allocator
//! that charges every heap allocation made while an [`Account`] is entered on
//! the current thread to that account, and credits the account when the
//! allocation is freed — on whatever thread, whenever. The runtime enters a
//! plugin's account while it runs that plugin's store ([`Account::scope`]),
//! and stops the plugin when its account holds more than its budget.
//!
//! The blocks come from mimalloc, which serves the host's many small,
//! short-lived allocations faster than the C library's `malloc`.
//!
//! Every allocation carries an 8-byte header naming its account (0: none),
//! so a free always credits the account that was charged, and memory that
//! outlives the call (a handle kept in the store's table) stays counted until
//! it is freed. Memory that C libraries allocate with `malloc` (SQLite,
//! llama.cpp) and wasm linear memory (mapped by wasmtime) are not counted.
//!
//! The binary installs the allocator:
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: convergio_host_memory::HostAllocator = convergio_host_memory::HostAllocator;
//!
//! let account = convergio_host_memory::Account::new();
//! let held = {
//!     let _entered = account.enter();
//!     vec![0u8; 1 << 20]
//! };
//! assert!(account.used() >= 1 << 20);
//! drop(held);
//! assert_eq!(account.used(), 0);
//! ```
//!
//! Without it, accounts count nothing: [`installed`] tells which.
#![deny(missing_docs)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::task::{Context, Poll};

mod allocator;

pub use allocator::HostAllocator;

/// How many accounts a process can have. Accounts are never reused (an
/// allocation may outlive its account's owner); past this many, new
/// accounts count nothing.
pub const MAX_ACCOUNTS: usize = 1 << 16;

/// Bytes held by each account; index 0 is "no account".
static USED: [AtomicUsize; MAX_ACCOUNTS] = [const { AtomicUsize::new(0) }; MAX_ACCOUNTS];

/// The next account to hand out.
static NEXT: AtomicU32 = AtomicU32::new(1);

/// Whether [`HostAllocator`] is the global allocator (set by its first allocation).
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The account charged for allocations on this thread (0: none).
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

/// Whether [`HostAllocator`] is installed, so that accounts count.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The account entered on this thread (0 when none).
fn current() -> u32 {
    CURRENT.try_with(Cell::get).unwrap_or(0)
}

/// Charge or credit `bytes` to `account` (0 is no account).
fn charge(account: u32, bytes: usize) {
    if let Some(used) = USED.get(account as usize).filter(|_| account != 0) {
        used.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn credit(account: u32, bytes: usize) {
    if let Some(used) = USED.get(account as usize).filter(|_| account != 0) {
        used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What one plugin's allocations in the host are counted against. Cheap to
/// copy; all copies are the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Account(u32);

impl Account {
    /// A new account holding nothing; one that counts nothing once
    /// [`MAX_ACCOUNTS`] have been made.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if id as usize >= MAX_ACCOUNTS {
            NEXT.store(MAX_ACCOUNTS as u32, Ordering::Relaxed);
            return Self(0);
        }
        Self(id)
    }

    /// Whether this account counts (false past [`MAX_ACCOUNTS`]).
    pub fn is_counting(self) -> bool {
        self.0 != 0
    }

    /// Bytes the host holds for this account now: the allocations made while
    /// it was entered and not freed yet, with their headers.
    pub fn used(self) -> usize {
        if self.0 == 0 {
            return 0;
        }
        USED.get(self.0 as usize)
            .map_or(0, |used| used.load(Ordering::Relaxed))
    }

    /// Charge this thread's allocations to this account until the guard is
    /// dropped (then the account entered before is current again).
    pub fn enter(self) -> Entered {
        let previous = CURRENT.try_with(|c| c.replace(self.0)).unwrap_or(0);
        Entered {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }

    /// `future`, with this account entered whenever it runs.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            account: self,
            future: Box::pin(future),
        }
    }
}

/// An entered [`Account`]; dropping it restores the one entered before.
#[derive(Debug)]
#[must_use = "the account is entered only while the guard lives"]
pub struct Entered {
    previous: u32,
    /// Entering is per thread: the guard stays on its thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

/// A future that runs with an [`Account`] entered ([`Account::scope`]).
#[derive(Debug)]
pub struct Scoped<F> {
    account: Account,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.account.enter();
        self.future.as_mut().poll(cx)
    }
}
