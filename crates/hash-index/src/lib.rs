//! Concurrent hash index of kvd's storage engine, after Microsoft FASTER.
//!
//! Maps a 64-bit key hash to one 48-bit hybrid-log address. It is **not** a
//! key-value map: all keys that share a bucket and a 14-bit tag (taken from
//! the hash's top bits) share one entry, and the hybrid log resolves them by
//! walking its records' previous-address chains and comparing full keys.
//!
//! # API (stable; the hybrid log codes against it)
//!
//! ```text
//! pub const ADDRESS_BITS: u32 = 48;  pub const INVALID_ADDRESS: u64 = 0;
//! IndexConfig { initial_buckets: usize }            // power of two; Default = 1 << 16
//! HashIndex::new(cfg)                               // epoch guards from crossbeam_epoch::pin()
//! HashIndex::with_collector(cfg, collector)         // guards from collector.register().pin()
//! index.collector() -> &Collector
//! index.find_entry(hash, &guard) -> Option<EntryRef<'g>>
//! index.find_or_create_entry(hash, &guard) -> EntryRef<'g>
//! index.grow(&guard)                                // doubles; copies entries to both halves
//! index.grow_with(&guard, |address, split_bit| (low_address, high_address))
//! index.grow_if_needed(&guard) -> bool              // should_grow() + grow(), race-free
//! index.should_grow() -> bool; index.bucket_count(); index.entry_count(); index.memory_bytes()
//! index.lock_buckets(&hashes, exclusive) -> BucketLocks<'_>   // sorted, deduped, RAII
//! index.lock_bucket(hash, exclusive) -> BucketLocks<'_>
//! index.for_each_entry(&guard, |partial_hash, address| ..)
//! index.clear(&guard)
//! EntryRef: address(), is_moved(), compare_exchange(current, new) -> Result<(), CasError>
//! CasError::{Changed(u64), Moved}
//! ```
//!
//! Every `Guard` passed in must be pinned on the index's collector (asserted):
//! retired tables are freed through it, so a guard of another collector would
//! not protect them. The hybrid log should build the index with
//! [`HashIndex::with_collector`] on its own `Collector`.
//!
//! # Example
//!
//! ```
//! use hash_index::{CasError, HashIndex, IndexConfig, INVALID_ADDRESS};
//!
//! let index = HashIndex::new(IndexConfig { initial_buckets: 1024 });
//! let guard = crossbeam_epoch::pin();
//! let hash = 0x9E37_79B9_7F4A_7C15_u64;
//! assert!(index.find_entry(hash, &guard).is_none());
//!
//! // Publish a new record at log address 4096 (the commit point is the CAS).
//! let entry = index.find_or_create_entry(hash, &guard);
//! assert_eq!(entry.address(), INVALID_ADDRESS);
//! entry.compare_exchange(INVALID_ADDRESS, 4096).unwrap();
//! assert_eq!(entry.compare_exchange(0, 8192), Err(CasError::Changed(4096)));
//!
//! index.grow(&guard);
//! // `entry` points into the retired table now: its CAS fails with `Moved`,
//! // and the caller re-finds the entry.
//! assert_eq!(entry.compare_exchange(4096, 8192), Err(CasError::Moved));
//! let entry = index.find_entry(hash, &guard).unwrap();
//! assert_eq!(entry.address(), 4096);
//! assert_eq!(index.bucket_count(), 2048);
//!
//! // Multi-key operations latch buckets (always in a global order).
//! let locks = index.lock_buckets(&[hash, 42, hash], true);
//! assert_eq!(locks.len(), 2);
//! ```
//!
//! # Layout
//!
//! A table is an array of 64-byte buckets: 7 entry slots (`AtomicU64`:
//! 48-bit address, 14-bit tag, tentative bit, moved bit) and an overflow word
//! (overflow bucket id, latch shared count and exclusive bit, sealed bit); see
//! `entry.rs`. Arrays of 2 MiB or more are anonymous mappings with
//! `MADV_HUGEPAGE` on Linux (`bucket_array.rs`): lookups touch random
//! buckets, so 4 KiB pages would add a TLB miss to most of them. Overflow
//! buckets come from a per-table page allocator (`overflow.rs`) and are freed
//! only with their table. `unsafe` lives in `root.rs` (epoch root, successor
//! link), `overflow.rs` and `bucket_array.rs`.
//!
//! # Concurrency protocol
//!
//! * **Readers** ([`HashIndex::find_entry`]) scan the bucket chain for a
//!   non-tentative entry with their tag; no locks, no writes.
//! * **Two-phase insert** ([`HashIndex::find_or_create_entry`], `find_tag.rs`):
//!   CAS a free slot from 0 to `tag|TENTATIVE`; SeqCst fence; rescan the chain
//!   for any other entry with the same tag (tentative or not). Found: clear
//!   ours, back off, retry (and then find theirs). Not found: clear the
//!   tentative bit. Racing inserters of one tag cannot both miss each other,
//!   so a tag has at most one live entry per bucket chain.
//! * **Updates** are a CAS on the entry word, tag included, so they fail on
//!   any concurrent change, and with [`CasError::Moved`] after a resize moved
//!   the entry.
//! * **Growth** (`resize.rs`): the new table is linked from the old one and
//!   the old buckets are migrated 256 at a time: each old bucket is sealed
//!   (latch taken for good), each slot CASed to `MOVED` (waiting out tentative
//!   ones), and valid entries copied to the new table. Operations on a chunk
//!   not yet started use the old table (restarting if they meet `MOVED`),
//!   wait while it is in progress, and use the new table once it is done.
//!   The old table is retired through the caller's epoch guard. Without a
//!   splitter an entry is copied to both new buckets its keys may hash to
//!   (correct, since the log compares full keys, but both copies stay); with
//!   [`HashIndex::grow_with`] the log tells which address belongs to which
//!   half, as FASTER does.
//! * **Latches** (`latch.rs`): shared count + exclusive bit in the main
//!   bucket's overflow word. Lock sets are sorted and deduplicated, then
//!   acquired in one global order (bit-reversed bucket index, i.e. the
//!   bucket's hash interval, then table generation), spinning with backoff,
//!   then yielding. A resize never waits for latch holders (the grower may
//!   hold latches itself, or be pinned on an epoch a holder waits for): it
//!   seals the old bucket and copies its latch bits into both new buckets;
//!   holders release there. A locker that meets a sealed bucket drops all its
//!   latches and retries on the new table. Single-key index operations ignore
//!   latches. [`HashIndex::clear`] does not carry latches over: don't clear
//!   while latches are held.
//!
//! # Model checking
//!
//! The insert protocol and CAS-vs-migration are checked with loom:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target-loom \
//!     cargo test -p hash-index --release --lib loom
//! ```
//!
//! Whole-index growth under load is covered by the stress tests in
//! `tests/stress.rs` (heavier variants: `cargo test -p hash-index --release
//! -- --ignored`).

mod bucket;
mod bucket_array;
mod entry;
mod find_tag;
mod latch;
mod overflow;
mod resize;
mod root;
mod sync;
mod table;

#[cfg(all(test, loom))]
mod loom_tests;

use std::sync::{Arc, Mutex};

use crossbeam_epoch::{Collector, Guard};

pub use entry::{ADDRESS_BITS, INVALID_ADDRESS};
pub use latch::BucketLocks;

use entry::{address, is_live, is_moved, partial_hash, tag, ADDRESS_MASK};
use root::Root;
use sync::{AtomicU64, Backoff, Ordering};
use table::{Table, DONE, IN_PROGRESS, NOT_STARTED};

/// Entries per main bucket above which [`HashIndex::should_grow`] says yes
/// (of 7 slots; beyond it a noticeable share of buckets overflows).
const GROW_LOAD_PER_BUCKET: usize = 4;

/// Index configuration.
#[derive(Debug, Clone, Copy)]
pub struct IndexConfig {
    /// Number of main buckets (power of two). Each holds 7 entries.
    pub initial_buckets: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            initial_buckets: 1 << 16,
        }
    }
}

/// Why [`EntryRef::compare_exchange`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasError {
    /// The entry holds another address (the current one).
    Changed(u64),
    /// A resize moved the entry to the new table: find it again.
    Moved,
}

impl std::fmt::Display for CasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CasError::Changed(a) => write!(f, "index entry changed (now {a:#x})"),
            CasError::Moved => write!(f, "index entry moved by a resize; find it again"),
        }
    }
}

impl std::error::Error for CasError {}

/// A handle on one index entry, valid while the guard it came from is pinned.
#[derive(Clone, Copy)]
pub struct EntryRef<'g> {
    slot: &'g AtomicU64,
    tag: u64,
}

impl EntryRef<'_> {
    /// The entry's current address (re-reads the atomic, Acquire).
    #[inline]
    pub fn address(&self) -> u64 {
        let w = self.slot.load(Ordering::Acquire);
        // The slot may have been freed by `remove_below` and reused by another tag.
        if tag(w) == self.tag {
            address(w)
        } else {
            INVALID_ADDRESS
        }
    }

    /// True once a resize has moved this entry (its address is then frozen).
    pub fn is_moved(&self) -> bool {
        is_moved(self.slot.load(Ordering::Acquire))
    }

    /// Replace `current` by `new` (AcqRel). The record at `new` must be fully
    /// written before: this CAS is its commit point.
    #[inline]
    pub fn compare_exchange(&self, current: u64, new: u64) -> Result<(), CasError> {
        assert!(
            current <= ADDRESS_MASK && new <= ADDRESS_MASK,
            "hash-index: addresses are {ADDRESS_BITS} bits ({current:#x} -> {new:#x})"
        );
        match self.slot.compare_exchange(
            self.tag | current,
            self.tag | new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(actual) if is_moved(actual) => Err(CasError::Moved),
            Err(actual) => Err(CasError::Changed(address(actual))),
        }
    }
}

impl std::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.slot.load(Ordering::Relaxed);
        f.debug_struct("EntryRef")
            .field("tag", &(self.tag >> entry::TAG_SHIFT))
            .field("address", &format_args!("{:#x}", address(w)))
            .field("moved", &is_moved(w))
            .finish()
    }
}

/// The concurrent hash index. `Send + Sync`; share it by reference or `Arc`.
pub struct HashIndex {
    root: Root,
    /// Mirror of the root for [`HashIndex::lock_buckets`], which takes no
    /// epoch guard (a latch set may be held for long).
    current: Mutex<Arc<Table>>,
    resize: Mutex<()>,
    /// Bucket count of the current table, readable without a lock.
    buckets: std::sync::atomic::AtomicUsize,
    initial_buckets: usize,
    collector: Collector,
}

impl HashIndex {
    /// An index protected by crossbeam's default collector: pass guards from
    /// `crossbeam_epoch::pin()`.
    pub fn new(cfg: IndexConfig) -> Self {
        Self::with_collector(cfg, crossbeam_epoch::default_collector().clone())
    }

    /// An index whose retired tables are reclaimed by `collector`: pass
    /// guards pinned on it (`collector.register()` per thread, then `pin()`).
    pub fn with_collector(cfg: IndexConfig, collector: Collector) -> Self {
        assert!(
            cfg.initial_buckets.is_power_of_two(),
            "hash-index: initial_buckets must be a power of two, got {}",
            cfg.initial_buckets
        );
        let table = Arc::new(Table::new(cfg.initial_buckets, 0));
        Self {
            root: Root::new(Arc::clone(&table)),
            current: Mutex::new(table),
            resize: Mutex::new(()),
            buckets: std::sync::atomic::AtomicUsize::new(cfg.initial_buckets),
            initial_buckets: cfg.initial_buckets,
            collector,
        }
    }

    /// The collector guards must come from.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    #[inline]
    fn check(&self, guard: &Guard) {
        assert!(
            guard.collector() == Some(&self.collector),
            "hash-index: the guard is not pinned on this index's collector \
             (build the index with HashIndex::with_collector(cfg, your_collector))"
        );
    }

    #[inline]
    fn table<'g>(&'g self, guard: &'g Guard) -> &'g Table {
        self.check(guard);
        self.root.load(guard)
    }

    fn current_arc(&self) -> Arc<Table> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Entry for `hash`'s tag if one exists (non-tentative). The handle is
    /// valid while `guard` is pinned. Its address may be `INVALID_ADDRESS`
    /// (created, no record published yet).
    #[inline]
    pub fn find_entry<'g>(&'g self, hash: u64, guard: &'g Guard) -> Option<EntryRef<'g>> {
        find_tag::find(self.table(guard), hash).map(|(slot, _, _)| EntryRef {
            slot,
            tag: entry::tag_of(hash),
        })
    }

    /// Entry for `hash`'s tag, created (address `INVALID_ADDRESS`) with the
    /// two-phase insert if absent.
    #[inline]
    pub fn find_or_create_entry<'g>(&'g self, hash: u64, guard: &'g Guard) -> EntryRef<'g> {
        let (slot, _, _) = find_tag::find_or_create(self.table(guard), hash);
        EntryRef {
            slot,
            tag: entry::tag_of(hash),
        }
    }

    /// Double the table. Safe concurrently with every other operation (they
    /// wait only for the 256-bucket chunk being migrated). Entries are copied
    /// to both halves; prefer [`HashIndex::grow_with`] when the log can split.
    pub fn grow(&self, guard: &Guard) {
        self.grow_impl(guard, None);
    }

    /// Double the table, asking `split(address, split_bit)` for each entry
    /// which part of its record chain belongs to the low half (keys with
    /// `hash & split_bit == 0`) and which to the high half: return the newest
    /// address in the chain for each half, or `INVALID_ADDRESS` if that half
    /// has no key there. When unsure (records on disk), return
    /// `(address, address)`. Called on the growing thread only, with entries
    /// frozen (no concurrent CAS can succeed on them). It must not call this
    /// index (an operation on a bucket being migrated would wait for itself).
    pub fn grow_with(&self, guard: &Guard, mut split: impl FnMut(u64, u64) -> (u64, u64)) {
        self.grow_impl(guard, Some(&mut split));
    }

    /// `should_grow()` then `grow()`, under the resize lock, so concurrent
    /// callers double only once. Returns whether it grew.
    pub fn grow_if_needed(&self, guard: &Guard) -> bool {
        self.check(guard);
        let lock = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        if !self.should_grow() {
            return false;
        }
        self.grow_locked(guard, None, lock);
        true
    }

    fn grow_impl(&self, guard: &Guard, split: Option<resize::Splitter<'_>>) {
        self.check(guard);
        let lock = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        self.grow_locked(guard, split, lock);
    }

    fn grow_locked(
        &self,
        guard: &Guard,
        mut split: Option<resize::Splitter<'_>>,
        _lock: std::sync::MutexGuard<'_, ()>,
    ) {
        let old = self.current_arc();
        let new = Arc::new(Table::new(old.len() * 2, old.generation() + 1));
        old.next.set(Arc::clone(&new));
        for chunk in 0..old.chunk_count() {
            resize::migrate_chunk(&old, &new, chunk, &mut split);
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&new);
        self.buckets
            .store(new.len(), std::sync::atomic::Ordering::Release);
        self.root.swap(new, guard);
    }

    /// True when the table holds more than 4 entries per main bucket on
    /// average (approximate; entries copied to both halves by a plain
    /// [`HashIndex::grow`] count once).
    pub fn should_grow(&self) -> bool {
        let t = self.current_arc();
        t.entry_count() > t.len() * GROW_LOAD_PER_BUCKET
    }

    /// Number of main buckets (lock-free read).
    pub fn bucket_count(&self) -> usize {
        self.buckets.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Approximate number of entries (see [`HashIndex::should_grow`]).
    pub fn entry_count(&self) -> usize {
        self.current_arc().entry_count()
    }

    /// Bytes held by the current table (main buckets + overflow pages), plus
    /// the new table while a resize is running.
    pub fn memory_bytes(&self) -> usize {
        let t = self.current_arc();
        t.memory_bytes() + t.next.get().map_or(0, Table::memory_bytes)
    }

    /// Latch the buckets of `hashes` (sorted and deduplicated; shared or
    /// exclusive) until the returned guard drops. Blocks (spin, then yield)
    /// while a conflicting latch is held. Latches are only for multi-key
    /// atomicity between latch users: single-key index operations ignore them.
    pub fn lock_buckets(&self, hashes: &[u64], exclusive: bool) -> BucketLocks<'_> {
        BucketLocks::acquire(|| self.current_arc(), hashes, exclusive)
    }

    /// [`HashIndex::lock_buckets`] for one hash.
    pub fn lock_bucket(&self, hash: u64, exclusive: bool) -> BucketLocks<'_> {
        self.lock_buckets(&[hash], exclusive)
    }

    /// Visit every live entry with a valid address as `(partial_hash,
    /// address)`. `partial_hash` has the entry's tag in the top 14 bits and
    /// its bucket index in the low bits, so `find_or_create_entry(partial_hash)`
    /// on an index of the same bucket count reaches the same entry. Weakly
    /// consistent with concurrent writers; never visits a bucket twice, also
    /// across a concurrent resize.
    pub fn for_each_entry(&self, guard: &Guard, mut f: impl FnMut(u64, u64)) {
        let t = self.table(guard);
        let mut scratch = Vec::new();
        for idx in 0..t.len() {
            visit(t, idx, &mut scratch, &mut f);
        }
    }

    /// Frees every live entry whose address is valid and below `limit` (CAS to an empty
    /// slot), so that the slot can hold another tag; returns how many were freed. For a
    /// two-tier store whose records below `limit` moved to another tier: an entry below it
    /// heads a chain that lies wholly below it (chains are in decreasing address order).
    /// Entries whose address is still `INVALID_ADDRESS` (being created) are kept. Racing
    /// updates of an entry win or lose their CAS as usual (a stale [`EntryRef`] of a freed
    /// slot reads `INVALID_ADDRESS` and fails its CAS: the tag is part of the compare).
    /// Entries of a table being resized are left alone (the next call frees them).
    pub fn remove_below(&self, guard: &Guard, limit: u64) -> usize {
        let t = self.table(guard);
        if t.next.get().is_some() {
            return 0;
        }
        let mut freed = 0;
        for idx in 0..t.len() {
            for b in find_tag::chain(t, idx) {
                for slot in &b.entries {
                    let w = slot.load(Ordering::Acquire);
                    let a = address(w);
                    if is_live(w)
                        && a != INVALID_ADDRESS
                        && a < limit
                        && slot
                            .compare_exchange(w, 0, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                    {
                        t.uncount_entry(idx);
                        freed += 1;
                    }
                }
            }
        }
        freed
    }

    /// Remove every entry. The table shrinks back to `initial_buckets`.
    /// Concurrent operations are ordered before or after the clear.
    pub fn clear(&self, guard: &Guard) {
        self.check(guard);
        let _lock = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current_arc();
        let new = Arc::new(Table::new(self.initial_buckets, old.generation() + 1));
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&new);
        self.buckets
            .store(new.len(), std::sync::atomic::Ordering::Release);
        self.root.swap(new, guard);
    }
}

fn visit(t: &Table, idx: usize, scratch: &mut Vec<(u64, u64)>, f: &mut impl FnMut(u64, u64)) {
    let mut backoff = Backoff::new();
    loop {
        if let Some(next) = t.next.get() {
            match t.chunk_state(t.chunk_of(idx)) {
                DONE => {
                    visit(next, idx, scratch, f);
                    visit(next, idx + t.len(), scratch, f);
                    return;
                }
                IN_PROGRESS => {
                    backoff.snooze();
                    continue;
                }
                NOT_STARTED => {}
                s => unreachable!("bad chunk state {s}"),
            }
        }
        scratch.clear();
        let mut moved = false;
        'chain: for b in find_tag::chain(t, idx) {
            for slot in &b.entries {
                let w = slot.load(Ordering::Acquire);
                if is_moved(w) {
                    moved = true;
                    break 'chain;
                }
                if is_live(w) && address(w) != INVALID_ADDRESS {
                    scratch.push((partial_hash(w, idx), address(w)));
                }
            }
        }
        if moved {
            continue;
        }
        for &(h, a) in scratch.iter() {
            f(h, a);
        }
        return;
    }
}

impl std::fmt::Debug for HashIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.current_arc();
        f.debug_struct("HashIndex")
            .field("buckets", &t.len())
            .field("entries", &t.entry_count())
            .field("generation", &t.generation())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn index_is_send_sync() {
        assert_send_sync::<HashIndex>();
        assert_send_sync::<BucketLocks<'static>>();
        assert_send_sync::<EntryRef<'static>>();
    }

    #[test]
    #[should_panic(expected = "collector")]
    fn foreign_guard_is_rejected() {
        let index = HashIndex::new(IndexConfig { initial_buckets: 4 });
        let c = Collector::new();
        let h = c.register();
        let g = h.pin();
        let _ = index.find_entry(1, &g);
    }

    #[test]
    fn custom_collector() {
        let c = Collector::new();
        let index = HashIndex::with_collector(IndexConfig { initial_buckets: 4 }, c.clone());
        let h = c.register();
        let g = h.pin();
        let e = index.find_or_create_entry(77, &g);
        e.compare_exchange(0, 64).unwrap();
        index.grow(&g);
        assert_eq!(index.find_entry(77, &g).unwrap().address(), 64);
        assert!(format!("{index:?}").contains("buckets: 8"));
        assert!(format!("{e:?}").contains("moved: true"));
    }

    #[test]
    fn clear_empties_and_shrinks() {
        let index = HashIndex::new(IndexConfig { initial_buckets: 4 });
        let g = crossbeam_epoch::pin();
        for h in 0..100u64 {
            let e = index.find_or_create_entry(h << 50 | h, &g);
            e.compare_exchange(0, 64 + h).unwrap();
        }
        index.grow(&g);
        index.clear(&g);
        assert_eq!(index.bucket_count(), 4);
        let mut n = 0;
        index.for_each_entry(&g, |_, _| n += 1);
        assert_eq!(n, 0);
        assert!(index.find_entry(5 << 50 | 5, &g).is_none());
    }

    #[test]
    fn should_grow_tracks_load_and_resets_after_grow() {
        let index = HashIndex::new(IndexConfig { initial_buckets: 4 });
        let g = crossbeam_epoch::pin();
        for h in 1..=17u64 {
            index
                .find_or_create_entry(h << 50 | h, &g)
                .compare_exchange(0, 64)
                .unwrap();
        }
        assert!(index.should_grow());
        assert!(index.grow_if_needed(&g));
        assert!(!index.should_grow());
        assert!(!index.grow_if_needed(&g));
        assert_eq!(index.bucket_count(), 8);
    }

    #[test]
    fn memory_grows_with_overflow() {
        let index = HashIndex::new(IndexConfig { initial_buckets: 1 });
        let g = crossbeam_epoch::pin();
        let before = index.memory_bytes();
        for t in 1..=8u64 {
            index.find_or_create_entry(t << 50, &g);
        }
        assert!(index.memory_bytes() >= before + 64 * 64);
    }

    #[test]
    fn for_each_reports_partial_hashes_that_find_the_entry() {
        let index = HashIndex::new(IndexConfig {
            initial_buckets: 16,
        });
        let g = crossbeam_epoch::pin();
        for k in 1..200u64 {
            let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let e = index.find_or_create_entry(h, &g);
            let _ = e.compare_exchange(0, 64 * k);
        }
        let mut seen = Vec::new();
        index.for_each_entry(&g, |p, a| seen.push((p, a)));
        assert!(!seen.is_empty());
        for (p, a) in seen {
            assert_eq!(index.find_entry(p, &g).unwrap().address(), a);
        }
    }

    #[test]
    fn lock_buckets_dedups_and_excludes() {
        let index = HashIndex::new(IndexConfig { initial_buckets: 8 });
        let l = index.lock_buckets(&[1, 9, 2, 1], true);
        assert_eq!(l.len(), 2);
        assert!(l.is_exclusive());
        let shared = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _l2 = index.lock_bucket(17, false); // bucket 1
                shared.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!shared.load(std::sync::atomic::Ordering::SeqCst));
            drop(l);
        });
        assert!(shared.load(std::sync::atomic::Ordering::SeqCst));
        let a = index.lock_bucket(3, false);
        let b = index.lock_bucket(3, false);
        assert_eq!(a.len() + b.len(), 2);
        assert!(index.lock_buckets(&[], true).is_empty());
    }

    #[test]
    fn lock_held_across_grow_is_transferred() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let index = HashIndex::new(IndexConfig { initial_buckets: 4 });
        let g = crossbeam_epoch::pin();
        let l = index.lock_bucket(1, true);
        // The latch holder grows itself: must not wait for its own latch.
        index.grow(&g);
        index.grow(&g);
        assert_eq!(index.bucket_count(), 16);
        let got = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for h in [1u64, 5, 9, 13] {
                let (index, got) = (&index, &got);
                s.spawn(move || {
                    let _l = index.lock_bucket(h, false);
                    got.fetch_add(1, SeqCst);
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
            assert_eq!(got.load(SeqCst), 0, "descendant buckets inherit the latch");
            drop(l);
        });
        assert_eq!(got.load(SeqCst), 4);
        let l = index.lock_buckets(&[1, 5, 9, 13, 3], true);
        assert_eq!(l.len(), 5);
        drop(l);
        drop(g);
    }
}
