//! Adapter over `hash-index`: the few calls the operations make, in one place.

use crossbeam_epoch::{Collector, Guard};
use hash_index::{CasError, EntryRef, HashIndex, IndexConfig};

pub(crate) use hash_index::BucketLocks;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'g>(EntryRef<'g>);

impl Entry<'_> {
    pub fn address(&self) -> u64 {
        self.0.address()
    }
    /// The commit point of a new record. Any failure (changed, or moved by a resize) means:
    /// find the entry again and re-check.
    pub fn cas(&self, current: u64, new: u64) -> Result<(), CasError> {
        self.0.compare_exchange(current, new)
    }
}

pub(crate) struct Index(HashIndex);

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("buckets", &self.0.bucket_count())
            .finish()
    }
}

impl Index {
    pub fn new(buckets: usize, collector: Collector) -> Index {
        let initial_buckets = buckets.max(1).next_power_of_two();
        Index(HashIndex::with_collector(
            IndexConfig { initial_buckets },
            collector,
        ))
    }
    pub fn find<'g>(&'g self, hash: u64, g: &'g Guard) -> Option<Entry<'g>> {
        self.0.find_entry(hash, g).map(Entry)
    }
    pub fn find_or_create<'g>(&'g self, hash: u64, g: &'g Guard) -> Entry<'g> {
        Entry(self.0.find_or_create_entry(hash, g))
    }
    /// Doubles the index; `split(address, split_bit)` tells which part of a chain belongs to
    /// each half (see `HashIndex::grow_with`).
    pub fn grow_with(&self, g: &Guard, split: impl FnMut(u64, u64) -> (u64, u64)) {
        self.0.grow_with(g, split)
    }
    pub fn should_grow(&self) -> bool {
        self.0.should_grow()
    }
    pub fn clear(&self, g: &Guard) {
        self.0.clear(g)
    }
    /// Frees the entries that point below `limit` (two-tier migration).
    pub fn remove_below(&self, g: &Guard, limit: u64) -> usize {
        self.0.remove_below(g, limit)
    }
    /// Approximate number of entries.
    pub fn entry_count(&self) -> u64 {
        self.0.entry_count() as u64
    }
    pub fn memory_bytes(&self) -> u64 {
        self.0.memory_bytes() as u64
    }
    pub fn buckets(&self) -> usize {
        self.0.bucket_count()
    }
    pub fn lock(&self, hashes: &[u64], exclusive: bool) -> BucketLocks<'_> {
        self.0.lock_buckets(hashes, exclusive)
    }
}
