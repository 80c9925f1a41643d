//! The kernel's memory allocator: large blocks in their own mappings, backed by transparent
//! huge pages; everything else from the system allocator (`malloc`).
//!
//! The state that grows with every order (the id table and its text, the idempotency
//! records, the open-order slab and its index) lives in a few large vectors. From `malloc`
//! each of them is faulted in 4 KiB at a time (a tenth of a page fault per order, about a
//! tenth of the time per order in profiles) and every random read of the id table costs a
//! TLB miss. Here a block of at least `BIG` bytes gets a 2 MiB-aligned mapping with
//! `MADV_HUGEPAGE`, reserved (not committed) well beyond its size so that growing it is
//! usually done in place, without copying. Where the kernel gives no huge pages this is an
//! ordinary anonymous mapping; if mapping fails, or `MAX_MAPS` blocks are already mapped,
//! the block comes from `malloc` as before. Contents and results are unaffected.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size get their own mapping.
const BIG: usize = 256 << 10;

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, Ordering};

    const HUGE: usize = 2 << 20;
    /// Address space reserved for a block: at least this, else four times its size.
    const MIN_RESERVE: usize = 64 << 20;
    pub const MAX_MAPS: usize = 64;

    const PROT_READ: i32 = 1;
    const PROT_WRITE: i32 = 2;
    const MAP_PRIVATE: i32 = 0x02;
    const MAP_ANONYMOUS: i32 = 0x20;
    const MAP_NORESERVE: i32 = 0x4000;
    const MADV_HUGEPAGE: i32 = 14;
    const MAP_FAILED: *mut u8 = !0usize as *mut u8;

    extern "C" {
        fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
        fn munmap(addr: *mut u8, len: usize) -> i32;
        fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
    }

    /// The mapped blocks: (address, reserved length); address 0 is a free entry.
    struct Maps {
        lock: AtomicBool,
        maps: UnsafeCell<[(usize, usize); MAX_MAPS]>,
    }

    // SAFETY: `maps` is only touched while `lock` is held.
    unsafe impl Sync for Maps {}

    static MAPS: Maps = Maps { lock: AtomicBool::new(false), maps: UnsafeCell::new([(0, 0); MAX_MAPS]) };

    fn with_maps<T>(f: impl FnOnce(&mut [(usize, usize); MAX_MAPS]) -> T) -> T {
        while MAPS.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held
        let out = f(unsafe { &mut *MAPS.maps.get() });
        MAPS.lock.store(false, Ordering::Release);
        out
    }

    /// A new zeroed block of at least `size` bytes, or None.
    pub unsafe fn map(size: usize) -> Option<*mut u8> {
        let reserve = size.checked_mul(4)?.max(MIN_RESERVE).checked_add(HUGE - 1)? & !(HUGE - 1);
        let raw = mmap(
            std::ptr::null_mut(),
            reserve + HUGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        );
        if raw == MAP_FAILED {
            return None;
        }
        // keep the 2 MiB-aligned part only (huge pages need aligned 2 MiB ranges)
        let start = (raw as usize + HUGE - 1) & !(HUGE - 1);
        let head = start - raw as usize;
        if head > 0 {
            munmap(raw, head);
        }
        let tail = HUGE - head;
        if tail > 0 {
            munmap((start + reserve) as *mut u8, tail);
        }
        let p = start as *mut u8;
        madvise(p, reserve, MADV_HUGEPAGE); // a hint: ignored where unsupported
        let stored = with_maps(|maps| match maps.iter_mut().find(|m| m.0 == 0) {
            Some(m) => {
                *m = (start, reserve);
                true
            }
            None => false,
        });
        if !stored {
            munmap(p, reserve);
            return None;
        }
        Some(p)
    }

    /// The reserved length of `p` if it is a mapped block.
    pub fn reserved(p: *mut u8) -> Option<usize> {
        with_maps(|maps| maps.iter().find(|m| m.0 == p as usize).map(|m| m.1))
    }

    /// Unmap `p` if it is a mapped block (true), else leave it (false).
    pub unsafe fn unmap(p: *mut u8) -> bool {
        let found = with_maps(|maps| {
            maps.iter_mut().find(|m| m.0 == p as usize).map(|m| std::mem::take(m).1)
        });
        match found {
            Some(len) => {
                munmap(p, len);
                true
            }
            None => false,
        }
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    pub unsafe fn map(_size: usize) -> Option<*mut u8> {
        None
    }
    pub fn reserved(_p: *mut u8) -> Option<usize> {
        None
    }
    pub unsafe fn unmap(_p: *mut u8) -> bool {
        false
    }
}

pub struct KernelAlloc;

/// Mappings are 2 MiB-aligned; larger alignments go to `malloc`.
const MAX_ALIGN: usize = 4096;

unsafe impl GlobalAlloc for KernelAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && layout.align() <= MAX_ALIGN {
            if let Some(p) = imp::map(layout.size()) {
                return p;
            }
        }
        System.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && layout.align() <= MAX_ALIGN {
            if let Some(p) = imp::map(layout.size()) {
                return p; // fresh anonymous memory is zero
            }
        }
        System.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // a mapped block's size never drops below BIG (see `realloc`)
        if layout.size() >= BIG && imp::unmap(ptr) {
            return;
        }
        System.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < BIG && new_size < BIG {
            return System.realloc(ptr, layout, new_size);
        }
        if layout.size() >= BIG && new_size >= BIG {
            if let Some(reserved) = imp::reserved(ptr) {
                if new_size <= reserved {
                    return ptr; // in place: the reservation covers it
                }
            }
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}
