//! The memory allocator for job binaries (feature `jemalloc`): jemalloc, with a faster path
//! for growing small blocks.
//!
//! A job's records are allocated on one task thread and often freed on another (records
//! handed over in memory between tasks, values that go into keyed state). jemalloc's thread
//! caches return such frees to their arena in batches, and it is the allocator Weir's
//! benchmarks run with (mimalloc and the system allocator were slower on the word count, see
//! `bench/RESULTS.md`).
//!
//! User code grows small strings and vectors all the time: `format!` starts from an empty
//! `String` and grows it argument by argument. jemalloc's `rallocx` handles that through its
//! general reallocation path, which for a small block that must move costs well over a plain
//! allocation, copy and free through the thread cache (a fifth of the word count's source
//! thread went into `rallocx` and its callees). [`JobAllocator`] grows small blocks the cheap
//! way and leaves everything else to jemalloc.
//!
//! A job binary selects it like any global allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: weir_runtime::allocator::JobAllocator = weir_runtime::allocator::JobAllocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use tikv_jemallocator::Jemalloc;

/// Blocks up to this size grow by allocate, copy and free instead of jemalloc's `rallocx`.
/// jemalloc's small size classes end at 14 KiB; above a few KiB a copy costs more than the
/// path it avoids, and large blocks can often grow in place.
const SMALL_GROWTH_MAX: usize = 4096;

/// Blocks aligned to more than this keep jemalloc's own path (which honours the alignment
/// in place when it can).
const PLAIN_ALIGN: usize = 16;

/// jemalloc, growing small blocks by allocate + copy + free (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct JobAllocator;

// SAFETY: every method forwards to `Jemalloc`, a correct `GlobalAlloc`, with the caller's
// arguments, except `realloc` for small growing blocks; that path upholds `realloc`'s contract
// as argued at the `unsafe` blocks below.
unsafe impl GlobalAlloc for JobAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { Jemalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { Jemalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `Jemalloc` (both `alloc` and
        // the small `realloc` path return `Jemalloc` blocks) with `layout`.
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_size, align) = (layout.size(), layout.align());
        // A block that grows within its size class is copied too: for blocks this small the
        // copy costs little, and the check (`nallocx`) would cost every call.
        if new_size > old_size && new_size <= SMALL_GROWTH_MAX && align <= PLAIN_ALIGN {
            // SAFETY: `align` is the caller's layout's, a power of two, and `new_size` is
            // non-zero (it exceeds `old_size`) and at most 4 KiB, so rounding it up to `align`
            // cannot overflow `isize`.
            let grown = unsafe { Layout::from_size_align_unchecked(new_size, align) };
            // SAFETY: a valid non-zero layout, as just argued.
            let new_ptr = unsafe { Jemalloc.alloc(grown) };
            if !new_ptr.is_null() {
                // SAFETY: `ptr` is valid for `old_size` bytes (caller's contract), `new_ptr`
                // for `new_size > old_size` bytes, and they are distinct live blocks. The old
                // block is then freed with the layout it was allocated with; on failure it is
                // left alone, as `realloc` requires.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, new_ptr, old_size);
                    Jemalloc.dealloc(ptr, layout);
                }
            }
            return new_ptr;
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { Jemalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `sizes[0]` bytes aligned to `align`, fills them with a pattern, resizes the
    /// block to each later size in turn and checks the pattern and the alignment every time.
    fn grow_and_check(align: usize, sizes: &[usize]) {
        let a = JobAllocator;
        let first = Layout::from_size_align(sizes[0], align).unwrap();
        // SAFETY: a non-zero layout; every pointer below is the latest live block of `layout`.
        unsafe {
            let mut ptr = a.alloc(first);
            assert!(!ptr.is_null());
            for i in 0..sizes[0] {
                *ptr.add(i) = i as u8;
            }
            let mut layout = first;
            for &next in &sizes[1..] {
                ptr = a.realloc(ptr, layout, next);
                assert!(!ptr.is_null());
                assert_eq!(ptr as usize % align, 0, "alignment kept");
                for i in 0..sizes[0].min(next) {
                    assert_eq!(*ptr.add(i), i as u8, "byte {i} after growing to {next}");
                }
                layout = Layout::from_size_align(next, align).unwrap();
            }
            a.dealloc(ptr, layout);
        }
    }

    #[test]
    fn small_blocks_grow_with_their_contents() {
        // String growth as `format!` does it: 8, 16, 41 bytes.
        grow_and_check(1, &[8, 16, 41, 100, 4096]);
        grow_and_check(8, &[8, 9, 24, 4000]);
        grow_and_check(16, &[16, 17, 33, 2048]);
    }

    #[test]
    fn large_over_aligned_and_shrinking_blocks_keep_their_contents() {
        grow_and_check(1, &[4000, 5000, 100_000]);
        grow_and_check(64, &[64, 128, 1024]);
        grow_and_check(32, &[8, 16, 64]);
        grow_and_check(1, &[1000, 10, 3]);
    }
}
