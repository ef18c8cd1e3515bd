//! Fixed-size page allocator for overflow buckets.
//!
//! Overflow buckets are named by a compact 1-based id (stored in the low 32
//! bits of the previous bucket's overflow word; 0 = none). Ids map to pages
//! of geometrically growing size — page `p` holds `BASE << p` buckets — so
//! the page directory is a fixed array of [`MAX_PAGES`] pointers and the
//! id → bucket mapping is two shifts. Pages are allocated on demand (racing
//! threads CAS the directory slot; the loser frees its page) and freed only
//! when the owning table is dropped. An id whose publication lost a race is
//! recycled through a small free list.

use crate::bucket::Bucket;
use crate::entry::ID_MASK;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering};

#[cfg(not(loom))]
const BASE_SHIFT: u32 = 6;
#[cfg(loom)]
const BASE_SHIFT: u32 = 1;
const MAX_PAGES: usize = 34;

pub(crate) struct OverflowAllocator {
    pages: [AtomicPtr<Bucket>; MAX_PAGES],
    next_id: AtomicU64,
    free: Mutex<Vec<u32>>,
    free_len: AtomicUsize,
    page_bytes: AtomicUsize,
}

#[inline]
fn locate(id: u32) -> (usize, usize) {
    debug_assert!(id != 0, "overflow id 0 means 'no overflow bucket'");
    let x = u64::from(id) - 1 + (1 << BASE_SHIFT);
    let page = (63 - x.leading_zeros() - BASE_SHIFT) as usize;
    let offset = (x - (1 << (page as u32 + BASE_SHIFT))) as usize;
    (page, offset)
}

#[inline]
fn page_len(page: usize) -> usize {
    1usize << (page as u32 + BASE_SHIFT)
}

impl OverflowAllocator {
    pub(crate) fn new() -> Self {
        Self {
            pages: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            next_id: AtomicU64::new(1),
            free: Mutex::new(Vec::new()),
            free_len: AtomicUsize::new(0),
            page_bytes: AtomicUsize::new(0),
        }
    }

    /// A fresh (all-zero) overflow bucket id. Its page exists when this returns.
    pub(crate) fn alloc(&self) -> u32 {
        if self.free_len.load(Ordering::Relaxed) > 0 {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = free.pop() {
                self.free_len.fetch_sub(1, Ordering::Relaxed);
                return id;
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        assert!(
            id <= ID_MASK,
            "hash-index: overflow bucket ids exhausted; grow the index"
        );
        let id = id as u32;
        let (page, _) = locate(id);
        if self.pages[page].load(Ordering::Acquire).is_null() {
            self.install_page(page);
        }
        id
    }

    /// Return an id that was allocated but never published (its bucket is
    /// still all zero).
    pub(crate) fn recycle(&self, id: u32) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push(id);
        self.free_len.fetch_add(1, Ordering::Relaxed);
    }

    fn install_page(&self, page: usize) {
        let len = page_len(page);
        let boxed: Box<[Bucket]> = (0..len).map(|_| Bucket::new()).collect();
        let ptr = Box::into_raw(boxed).cast::<Bucket>();
        match self.pages[page].compare_exchange(
            std::ptr::null_mut(),
            ptr,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.page_bytes
                    .fetch_add(len * std::mem::size_of::<Bucket>(), Ordering::Relaxed);
            }
            Err(_) => {
                // SAFETY: `ptr` came from `Box::into_raw` of a `[Bucket]` of
                // length `len` just above and was never shared (our CAS failed).
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
            }
        }
    }

    /// The bucket named by `id`, which must come from [`Self::alloc`] on this
    /// allocator (typically read from an overflow word with Acquire ordering).
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &Bucket {
        let (page, offset) = locate(id);
        let ptr = self.pages[page].load(Ordering::Acquire);
        assert!(
            !ptr.is_null(),
            "hash-index: overflow id {id} names a page that was never allocated"
        );
        // SAFETY: a non-null directory entry points to a live boxed slice of
        // `page_len(page)` buckets (installed by `install_page`, freed only in
        // `Drop`, which needs `&mut self`), and `offset < page_len(page)` by
        // construction of `locate`.
        unsafe { &*ptr.add(offset) }
    }

    /// Bytes of overflow pages allocated so far.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.page_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for OverflowAllocator {
    fn drop(&mut self) {
        for (page, slot) in self.pages.iter().enumerate() {
            let ptr = slot.load(Ordering::Acquire);
            if !ptr.is_null() {
                // SAFETY: non-null entries were produced by `Box::into_raw` of
                // a `[Bucket]` of length `page_len(page)` in `install_page`; we
                // have exclusive access, so nobody can still reference them.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, page_len(page)))
                });
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_distinct_slots_in_growing_pages() {
        assert_eq!(locate(1), (0, 0));
        assert_eq!(locate(64), (0, 63));
        assert_eq!(locate(65), (1, 0));
        assert_eq!(locate(64 + 128), (1, 127));
        assert_eq!(locate(64 + 128 + 1), (2, 0));
        let mut seen = std::collections::HashSet::new();
        for id in 1..5000 {
            let (p, o) = locate(id);
            assert!(o < page_len(p));
            assert!(seen.insert((p, o)));
        }
        let (p, _) = locate(u32::MAX);
        assert!(p < MAX_PAGES);
    }

    #[test]
    fn alloc_get_recycle() {
        let a = OverflowAllocator::new();
        let ids: Vec<u32> = (0..300).map(|_| a.alloc()).collect();
        assert_eq!(ids[0], 1);
        for &id in &ids {
            let b = a.get(id);
            b.overflow.store(u64::from(id), Ordering::Relaxed);
        }
        for &id in &ids {
            assert_eq!(a.get(id).overflow.load(Ordering::Relaxed), u64::from(id));
        }
        assert!(a.memory_bytes() >= 300 * 64);
        a.recycle(7);
        assert_eq!(a.alloc(), 7);
        assert_eq!(a.alloc(), 301);
    }

    #[test]
    fn concurrent_alloc_gives_unique_ids() {
        let a = OverflowAllocator::new();
        let all = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mine: Vec<u32> = (0..2000).map(|_| a.alloc()).collect();
                    for &id in &mine {
                        let _ = a.get(id);
                    }
                    all.lock().unwrap().extend(mine);
                });
            }
        });
        let mut all = all.into_inner().unwrap();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8000);
    }
}
