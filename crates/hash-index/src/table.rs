//! One generation of the hash table: the main bucket array, its overflow
//! allocator, an approximate entry counter, and the resize state (successor
//! link + per-chunk migration states).

use crossbeam_utils::CachePadded;

use crate::bucket::Bucket;
use crate::bucket_array::BucketArray;
use crate::entry::{ID_MASK, SEALED};
use crate::overflow::OverflowAllocator;
use crate::root::NextLink;
use crate::sync::{AtomicU8, AtomicUsize, Ordering};

/// Buckets per migration chunk (log2).
#[cfg(not(loom))]
pub(crate) const CHUNK_SHIFT: u32 = 8;
#[cfg(loom)]
pub(crate) const CHUNK_SHIFT: u32 = 0;

#[cfg(not(loom))]
const COUNTER_STRIPES: usize = 8;
#[cfg(loom)]
const COUNTER_STRIPES: usize = 1;

pub(crate) const NOT_STARTED: u8 = 0;
pub(crate) const IN_PROGRESS: u8 = 1;
pub(crate) const DONE: u8 = 2;

pub(crate) struct Table {
    buckets: BucketArray,
    mask: u64,
    generation: u64,
    pub(crate) overflow: OverflowAllocator,
    counters: Box<[CachePadded<AtomicUsize>]>,
    pub(crate) next: NextLink,
    chunks: Box<[AtomicU8]>,
    chunk_shift: u32,
}

impl Table {
    pub(crate) fn new(len: usize, generation: u64) -> Self {
        assert!(
            len.is_power_of_two(),
            "hash-index: bucket count must be a power of two"
        );
        assert!(len <= 1 << 40, "hash-index: bucket count too large");
        let chunk_shift = CHUNK_SHIFT.min(len.trailing_zeros());
        Self {
            buckets: BucketArray::new(len),
            mask: len as u64 - 1,
            generation,
            overflow: OverflowAllocator::new(),
            counters: (0..COUNTER_STRIPES)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            next: NextLink::new(),
            chunks: (0..len >> chunk_shift)
                .map(|_| AtomicU8::new(NOT_STARTED))
                .collect(),
            chunk_shift,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.buckets.as_slice().len()
    }

    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    #[inline]
    pub(crate) fn bucket_index(&self, hash: u64) -> usize {
        (hash & self.mask) as usize
    }

    #[inline]
    pub(crate) fn bucket(&self, idx: usize) -> &Bucket {
        &self.buckets.as_slice()[idx]
    }

    /// The overflow bucket chained after `b`, if any.
    #[inline]
    pub(crate) fn next_in_chain(&self, b: &Bucket) -> Option<&Bucket> {
        let id = b.overflow.load(Ordering::Acquire) & ID_MASK;
        (id != 0).then(|| self.overflow.get(id as u32))
    }

    #[inline]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    #[inline]
    pub(crate) fn chunk_of(&self, idx: usize) -> usize {
        idx >> self.chunk_shift
    }

    pub(crate) fn chunk_buckets(&self, chunk: usize) -> std::ops::Range<usize> {
        (chunk << self.chunk_shift)..((chunk + 1) << self.chunk_shift)
    }

    #[inline]
    pub(crate) fn chunk_state(&self, chunk: usize) -> u8 {
        self.chunks[chunk].load(Ordering::Acquire)
    }

    pub(crate) fn set_chunk_state(&self, chunk: usize, state: u8) {
        self.chunks[chunk].store(state, Ordering::Release);
    }

    /// Record one more entry in bucket `idx` (approximate under concurrency).
    #[inline]
    pub(crate) fn count_entry(&self, idx: usize) {
        self.counters[idx % COUNTER_STRIPES].fetch_add(1, Ordering::Relaxed);
    }

    /// Record one entry fewer in bucket `idx` (the entry was removed).
    #[inline]
    pub(crate) fn uncount_entry(&self, idx: usize) {
        let _ = self.counters[idx % COUNTER_STRIPES].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| Some(n.saturating_sub(1)),
        );
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.buckets.bytes()
            + self.overflow.memory_bytes()
            + self.chunks.len()
            + self.counters.len() * std::mem::size_of::<CachePadded<AtomicUsize>>()
    }

    /// Append a fresh overflow bucket after `last` (the chain's last bucket).
    /// `None` if `last` got a successor meanwhile or the chain was sealed by a
    /// resize; the caller rescans.
    pub(crate) fn append_overflow(&self, last: &Bucket) -> Option<&Bucket> {
        let mut word = last.overflow.load(Ordering::Acquire);
        if word & (SEALED | ID_MASK) != 0 {
            return None;
        }
        let id = self.overflow.alloc();
        loop {
            if word & (SEALED | ID_MASK) != 0 {
                self.overflow.recycle(id);
                return None;
            }
            // Latch bits may change concurrently; keep them.
            match last.overflow.compare_exchange(
                word,
                word | u64::from(id),
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(self.overflow.get(id)),
                Err(w) => word = w,
            }
        }
    }

    /// Single-writer insert used by migration into a table whose target
    /// buckets nobody else can reach yet.
    pub(crate) fn insert_unshared(&self, idx: usize, word: u64) {
        let mut b = self.bucket(idx);
        loop {
            for slot in &b.entries {
                if slot.load(Ordering::Relaxed) == 0 {
                    slot.store(word, Ordering::Release);
                    return;
                }
            }
            b = match self.next_in_chain(b) {
                Some(nb) => nb,
                None => self
                    .append_overflow(b)
                    .expect("hash-index: migration target bucket changed under the migrator"),
            };
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("buckets", &self.len())
            .field("generation", &self.generation)
            .field("entries", &self.entry_count())
            .field("resizing", &self.next.get().is_some())
            .finish()
    }
}
