//! A global allocator for components whose calls make many small, short-lived
//! allocations (JSON values, strings, records).
//!
//! [`SmallBlocks`] keeps one free list per size class (16-byte steps up to
//! [`SMALL_MAX`] bytes): a small allocation pops a block from its class's
//! list, or cuts one from the current 64 KiB chunk; a free pushes the block
//! back on its list. Both are a few instructions, where the default
//! allocator (dlmalloc) or a general-purpose one searches bins, splits and
//! coalesces. Larger or over-aligned blocks go to the system allocator.
//!
//! The price: a block freed stays in its class, so memory a component once
//! used for many blocks of one size is kept for blocks of that size (it is
//! not returned to the system or reused for other sizes). That suits a
//! component whose working set per call is bounded, such as the
//! orchestrator; one that builds a large structure of one size once and
//! then works with other sizes should keep the default allocator.
//!
//! Install it in a component without wasm threads:
//!
//! ```ignore
//! #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
//! #[global_allocator]
//! static ALLOCATOR: convergio_sdk::alloc::SmallBlocks = convergio_sdk::alloc::SmallBlocks::new();
//! ```
//!
//! It is for single-threaded guests only: it has no lock, and the module
//! exists only on wasm without threads.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Blocks of up to this many bytes come from the free lists.
pub const SMALL_MAX: usize = 1024;
/// The size classes' step, and the alignment every small block has.
const STEP: usize = 16;
const CLASSES: usize = SMALL_MAX / STEP;
/// Small blocks are cut from chunks of this size.
const CHUNK: usize = 64 * 1024;

/// The allocator; see the module's documentation.
#[derive(Debug)]
pub struct SmallBlocks {
    state: UnsafeCell<State>,
}

#[derive(Debug)]
struct State {
    /// The first free block of each class; a free block holds the next.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    bump: *mut u8,
    end: *mut u8,
}

// SAFETY: the module is compiled only for wasm without threads, where no
// two calls can reach the state at once (and for its tests, where each
// allocator is used by one thread).
unsafe impl Sync for SmallBlocks {}

impl SmallBlocks {
    /// An allocator holding nothing yet.
    pub const fn new() -> Self {
        Self {
            state: UnsafeCell::new(State {
                free: [null_mut(); CLASSES],
                bump: null_mut(),
                end: null_mut(),
            }),
        }
    }
}

impl Default for SmallBlocks {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of a layout served from the free lists, if it is one.
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= SMALL_MAX && layout.align() <= STEP)
        .then(|| layout.size().saturating_sub(1) / STEP)
}

impl State {
    /// A block of class `c`.
    ///
    /// # Safety
    /// Only one call at a time (the allocator's contract on this target).
    unsafe fn take(&mut self, c: usize) -> *mut u8 {
        let head = self.free[c];
        if !head.is_null() {
            // SAFETY: a free block of this class holds the next free block
            // in its first bytes (it is at least STEP bytes and aligned).
            self.free[c] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = (c + 1) * STEP;
        if (self.end as usize) - (self.bump as usize) < size {
            // SAFETY: CHUNK is non-zero and STEP a power of two.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, STEP)) };
            if chunk.is_null() {
                return chunk;
            }
            // The old chunk's rest (less than SMALL_MAX bytes) is left unused.
            self.bump = chunk;
            // SAFETY: the chunk is CHUNK bytes long.
            self.end = unsafe { chunk.add(CHUNK) };
        }
        let block = self.bump;
        // SAFETY: at least `size` bytes are left in the chunk.
        self.bump = unsafe { block.add(size) };
        block
    }

    /// Put a block of class `c` back.
    ///
    /// # Safety
    /// `block` came from `take(c)` and is not used any more.
    unsafe fn give(&mut self, c: usize, block: *mut u8) {
        // SAFETY: the block is at least STEP bytes, aligned for a pointer.
        unsafe { block.cast::<*mut u8>().write(self.free[c]) };
        self.free[c] = block;
    }
}

// SAFETY: small blocks are STEP-aligned and at least as large as their
// layout's size (their class's size), and each is handed out once until it
// is freed; everything else is the system allocator's.
unsafe impl GlobalAlloc for SmallBlocks {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            // SAFETY: no threads on this target: one call at a time.
            Some(c) => unsafe { (*self.state.get()).take(c) },
            // SAFETY: the caller's layout, as the system allocator takes it.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: `ptr` was allocated with this layout, so from this class.
            Some(c) => unsafe { (*self.state.get()).give(c, ptr) },
            // SAFETY: allocated by the system allocator with this layout.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `realloc`'s contract: the alignment with `new_size` is a
        // valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            (Some(old), Some(c)) if old == c => ptr,
            // SAFETY: both blocks are the system allocator's.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a fresh block for `new`, the old one's bytes that
                // fit copied into it, then the old one freed.
                unsafe {
                    let fresh = self.alloc(new);
                    if !fresh.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    fresh
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_reused_by_class() {
        let alloc = SmallBlocks::new();
        let small = Layout::from_size_align(24, 8).unwrap_or(Layout::new::<u64>());
        // SAFETY: each block is used within its layout and freed once.
        unsafe {
            let a = alloc.alloc(small);
            let b = alloc.alloc(small);
            assert!(!a.is_null() && !b.is_null());
            assert_ne!(a, b);
            assert_eq!(a as usize % STEP, 0);
            a.write_bytes(0xaa, 24);
            b.write_bytes(0xbb, 24);
            assert_eq!(a.read(), 0xaa);
            alloc.dealloc(a, small);
            // The freed block is the next of its class.
            assert_eq!(alloc.alloc(small), a);
            // Growing within the class keeps the block; past it moves the bytes.
            let same = alloc.realloc(b, small, 30);
            assert_eq!(same, b);
            let grown = alloc.realloc(b, Layout::from_size_align_unchecked(30, 8), 4000);
            assert_ne!(grown, b);
            assert_eq!(grown.read(), 0xbb);
            assert_eq!(grown.add(23).read(), 0xbb);
            alloc.dealloc(grown, Layout::from_size_align_unchecked(4000, 8));
            alloc.dealloc(a, small);
        }
    }

    #[test]
    fn many_blocks_of_every_small_size_span_chunks() {
        let alloc = SmallBlocks::new();
        let mut held = Vec::new();
        // SAFETY: each block is written within its size and freed once.
        unsafe {
            for round in 0..3 {
                for size in 1..=SMALL_MAX {
                    let layout = Layout::from_size_align_unchecked(size, 1);
                    let p = alloc.alloc(layout);
                    assert!(!p.is_null());
                    p.write_bytes((size % 251) as u8, size);
                    held.push((p, layout));
                }
                for (p, layout) in &held {
                    let size = layout.size();
                    assert_eq!(p.read(), (size % 251) as u8, "round {round}");
                    assert_eq!(p.add(size - 1).read(), (size % 251) as u8);
                }
                for (p, layout) in held.drain(..) {
                    alloc.dealloc(p, layout);
                }
            }
        }
    }
}
