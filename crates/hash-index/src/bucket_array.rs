//! The main bucket array of a table.
//!
//! Large arrays (at least one 2 MiB huge page) are anonymous `mmap`s with
//! `MADV_HUGEPAGE` on Linux: lookups hit random buckets, so with 4 KiB pages
//! almost every lookup also misses the TLB. The kernel hands out zeroed
//! memory, and an all-zero [`Bucket`] is a valid empty bucket. Small arrays,
//! other platforms and loom builds use a plain boxed slice.

use crate::bucket::Bucket;

pub(crate) struct BucketArray {
    #[cfg(all(target_os = "linux", not(loom)))]
    mapped: Option<Mapped>,
    boxed: Box<[Bucket]>,
}

#[cfg(all(target_os = "linux", not(loom)))]
struct Mapped {
    ptr: std::ptr::NonNull<Bucket>,
    len: usize,
    bytes: usize,
}

// SAFETY: `Mapped` is uniquely owned memory holding `Bucket`s, which are
// `Send + Sync` (atomics only); the pointer is never aliased mutably.
#[cfg(all(target_os = "linux", not(loom)))]
unsafe impl Send for Mapped {}
// SAFETY: see `Send`; shared access only goes through `&[Bucket]`.
#[cfg(all(target_os = "linux", not(loom)))]
unsafe impl Sync for Mapped {}

#[cfg(all(target_os = "linux", not(loom)))]
const HUGE_PAGE: usize = 2 << 20;

impl BucketArray {
    pub(crate) fn new(len: usize) -> Self {
        #[cfg(all(target_os = "linux", not(loom)))]
        {
            let bytes = len * std::mem::size_of::<Bucket>();
            if bytes >= HUGE_PAGE {
                if let Some(mapped) = Mapped::new(len) {
                    return Self {
                        mapped: Some(mapped),
                        boxed: Box::new([]),
                    };
                }
            }
            Self {
                mapped: None,
                boxed: (0..len).map(|_| Bucket::new()).collect(),
            }
        }
        #[cfg(not(all(target_os = "linux", not(loom))))]
        {
            Self {
                boxed: (0..len).map(|_| Bucket::new()).collect(),
            }
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[Bucket] {
        #[cfg(all(target_os = "linux", not(loom)))]
        if let Some(m) = &self.mapped {
            // SAFETY: `m.ptr` points to `m.len` zero-initialised buckets
            // (valid: all-zero atomics) in a mapping we own until `Drop`.
            return unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) };
        }
        &self.boxed
    }

    /// Bytes reserved for the array.
    pub(crate) fn bytes(&self) -> usize {
        #[cfg(all(target_os = "linux", not(loom)))]
        if let Some(m) = &self.mapped {
            return m.bytes;
        }
        std::mem::size_of_val::<[Bucket]>(&self.boxed)
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
impl Mapped {
    fn new(len: usize) -> Option<Self> {
        let bytes = (len * std::mem::size_of::<Bucket>()).next_multiple_of(HUGE_PAGE);
        // Over-allocate one huge page so the array can start 2 MiB-aligned.
        let reserve = bytes + HUGE_PAGE;
        // SAFETY: anonymous private mapping, no file descriptor or address
        // hint; the result is checked against MAP_FAILED.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        let (head, tail) = (aligned - start, reserve - (aligned - start) - bytes);
        // SAFETY: both ranges lie inside the mapping just created and
        // outside the aligned `bytes` we keep; unmapping them is harmless.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + bytes) as *mut libc::c_void, tail);
            }
            // Advisory only: failure (e.g. THP disabled) is fine.
            libc::madvise(aligned as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
        }
        Some(Mapped {
            ptr: std::ptr::NonNull::new(aligned as *mut Bucket)?,
            len,
            bytes,
        })
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the aligned range we kept in `new`; no
        // borrow of it outlives `&mut self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.bytes);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn small_and_huge_arrays_start_empty_and_are_writable() {
        for len in [1usize, 1024, 1 << 15, (1 << 15) + 3] {
            let a = BucketArray::new(len);
            let s = a.as_slice();
            assert_eq!(s.len(), len);
            assert!(a.bytes() >= len * 64);
            for b in [&s[0], &s[len / 2], &s[len - 1]] {
                assert_eq!(b.overflow.load(Ordering::Relaxed), 0);
                assert!(b.entries.iter().all(|e| e.load(Ordering::Relaxed) == 0));
            }
            s[len - 1].entries[3].store(42, Ordering::Relaxed);
            assert_eq!(s[len - 1].entries[3].load(Ordering::Relaxed), 42);
            assert_eq!(s.as_ptr() as usize % 64, 0);
        }
    }
}
