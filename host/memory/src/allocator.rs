//! The global allocator: the system allocator with a header naming the
//! account each allocation is charged to.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc as Inner;
use std::sync::atomic::Ordering;

use crate::{INSTALLED, charge, credit, current};

/// Bytes in front of every allocation; the account's id is in its first
/// four. Eight, not sixteen: a block then needs only 8-byte alignment
/// (unless its layout asks for more), which every mimalloc size class
/// gives. With sixteen, blocks of the 8-byte-aligned classes (40, 56, 72
/// bytes, …) missed mimalloc's aligned fast path half of the time and
/// were allocated over-sized on its slow path.
const HEADER: usize = 8;

/// The host's global allocator: mimalloc (faster than glibc's `malloc` on
/// the host's many small, short-lived allocations: JSON values, journal
/// entries, call records), with every allocation charged
/// to the [`Account`](crate::Account) entered on the allocating thread.
/// Install it with `#[global_allocator]` in the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostAllocator;

/// The layout actually allocated for `layout` (its size, plus the header,
/// rounded to the alignment), and where the caller's bytes start in it.
fn outer(layout: Layout) -> Option<(Layout, usize)> {
    let align = layout.align().max(HEADER);
    // `align` is a power of two of at least HEADER bytes, so the caller's
    // bytes, `align` bytes in, are aligned and leave room for the header.
    let size = layout.size().checked_add(align)?;
    let outer = Layout::from_size_align(size, align).ok()?;
    Some((outer, align))
}

/// Write the header of a fresh block and charge it; `base` is non-null.
///
/// # Safety
/// `base` points to a block of `outer.size()` bytes allocated for `outer`.
unsafe fn finish(base: *mut u8, outer: Layout, offset: usize) -> *mut u8 {
    let account = current();
    // SAFETY: `offset` < `outer.size()`, so `user` is inside the block, and
    // `offset >= HEADER`, so the header's 4 bytes are inside it too; `user`
    // is aligned to at least HEADER, so the header is aligned for u32.
    unsafe {
        let user = base.add(offset);
        user.sub(HEADER).cast::<u32>().write(account);
        charge(account, outer.size());
        user
    }
}

/// The account in the header in front of `user`.
///
/// # Safety
/// `user` was returned by this allocator and not freed.
unsafe fn account_of(user: *mut u8) -> u32 {
    // SAFETY: `finish` wrote the header HEADER bytes in front of `user`.
    unsafe { user.sub(HEADER).cast::<u32>().read() }
}

// SAFETY: every block is allocated from `Inner` with a layout at least as
// large and as aligned as the caller's, and freed with that same layout.
unsafe impl GlobalAlloc for HostAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        let Some((outer, offset)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (at least HEADER).
        let base = unsafe { Inner.alloc(outer) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `base` was just allocated for `outer`.
        unsafe { finish(base, outer, offset) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size.
        let base = unsafe { Inner.alloc_zeroed(outer) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `base` was just allocated for `outer`.
        unsafe { finish(base, outer, offset) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `outer` succeeded for this layout when the block was allocated.
        let Some((outer, offset)) = outer(layout) else {
            return;
        };
        // SAFETY: `ptr` came from `alloc` with this layout, so the block
        // starts `offset` bytes before it and has a header.
        unsafe {
            credit(account_of(ptr), outer.size());
            Inner.dealloc(ptr.sub(offset), outer);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some((old, offset)) = outer(layout) else {
            return std::ptr::null_mut();
        };
        let Some(new) = Layout::from_size_align(new_size, layout.align())
            .ok()
            .and_then(outer)
        else {
            return std::ptr::null_mut();
        };
        // SAFETY: `ptr` came from this allocator with `layout`; the block
        // keeps its alignment and offset, and `Inner.realloc` copies the
        // header with the bytes. The account that was charged keeps the
        // block, whoever grows it.
        unsafe {
            let account = account_of(ptr);
            let base = Inner.realloc(ptr.sub(offset), old, new.0.size());
            if base.is_null() {
                return base;
            }
            credit(account, old.size());
            charge(account, new.0.size());
            base.add(offset)
        }
    }
}
