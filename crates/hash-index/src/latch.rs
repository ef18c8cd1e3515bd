//! Bucket latches: a shared count and an exclusive bit in each main bucket's
//! overflow word, for multi-key operations that must be atomic. Single-key
//! index operations never look at them.
//!
//! Resizes never wait for latch holders (a grower may itself hold latches,
//! and may be pinned on the epoch a holder waits for): sealing an old bucket
//! sets `SEALED` in one CAS and captures its latch bits, and the migrator
//! copies them into both new buckets before the chunk is published. A holder
//! whose old bucket got sealed releases in the new buckets instead
//! (recursively, if they were split again). A locker that meets a sealed
//! bucket releases all it holds and retries in the new table.
//!
//! Deadlock freedom: lock sets are sorted and deduplicated, then acquired in
//! one global order: bucket `i` of a table of `2^k` buckets owns the interval
//! of hashes whose low `k` bits are `i`; ordered by the bit-reversed index
//! (the interval's start in "reversed hash" space), then by generation. A
//! bucket's interval contains those of its descendants in grown tables, so
//! holding a bucket (and, by transfer, its descendants) and waiting only for
//! buckets further along that order can never close a cycle.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::entry::{EXCLUSIVE, SEALED, SHARED_MASK, SHARED_ONE};
use crate::sync::{AtomicU64, Backoff, Ordering};
use crate::table::{Table, DONE, IN_PROGRESS, NOT_STARTED};

/// The bucket was sealed by a resize: retry on the successor table.
#[derive(Debug)]
pub(crate) struct Sealed;

pub(crate) fn acquire(word: &AtomicU64, exclusive: bool) -> Result<(), Sealed> {
    let mut backoff = Backoff::new();
    loop {
        let w = word.load(Ordering::Acquire);
        if w & SEALED != 0 {
            return Err(Sealed);
        }
        let busy = if exclusive {
            w & (EXCLUSIVE | SHARED_MASK) != 0
        } else {
            w & EXCLUSIVE != 0 || w & SHARED_MASK == SHARED_MASK
        };
        if !busy {
            let new = if exclusive {
                w | EXCLUSIVE
            } else {
                w + SHARED_ONE
            };
            if word
                .compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(());
            }
        }
        backoff.snooze();
    }
}

/// Mark a main bucket sealed (resize); returns the latch bits it carried,
/// which the migrator hands over to the bucket's successors. Never waits.
pub(crate) fn seal(word: &AtomicU64) -> u64 {
    let prev = word.fetch_or(SEALED, Ordering::AcqRel);
    debug_assert!(prev & SEALED == 0, "bucket sealed twice");
    prev & (EXCLUSIVE | SHARED_MASK)
}

/// Release a latch held on bucket `idx` of `t`, following the transfer to
/// the successor buckets if a resize sealed it meanwhile.
pub(crate) fn release_in(t: &Table, idx: usize, exclusive: bool) {
    let word = &t.bucket(idx).overflow;
    let mut w = word.load(Ordering::Acquire);
    loop {
        if w & SEALED != 0 {
            // The migrator copies the latch bits before publishing DONE, and
            // it waits for nothing we could hold: wait for it.
            let mut backoff = Backoff::new();
            while t.chunk_state(t.chunk_of(idx)) != DONE {
                backoff.snooze();
            }
            let next = t.next.get().expect("sealed bucket without successor table");
            release_in(next, idx, exclusive);
            release_in(next, idx + t.len(), exclusive);
            return;
        }
        debug_assert!(
            if exclusive {
                w & EXCLUSIVE != 0
            } else {
                w & SHARED_MASK != 0
            },
            "released a latch that was not held"
        );
        let new = if exclusive {
            w & !EXCLUSIVE
        } else {
            w - SHARED_ONE
        };
        match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(cur) => w = cur,
        }
    }
}

/// Like `find_tag::locate`, but returns an owning handle.
fn resolve(root: &Arc<Table>, hash: u64) -> (Arc<Table>, usize) {
    let mut t = Arc::clone(root);
    let mut backoff = Backoff::new();
    loop {
        let idx = t.bucket_index(hash);
        let Some(next) = t.next.get_arc() else {
            return (t, idx);
        };
        match t.chunk_state(t.chunk_of(idx)) {
            NOT_STARTED => return (t, idx),
            IN_PROGRESS => backoff.snooze(),
            DONE => t = next,
            s => unreachable!("bad chunk state {s}"),
        }
    }
}

/// Global acquisition order: the bucket's interval start in bit-reversed
/// hash space, then the table generation.
fn lock_order(t: &Table, idx: usize) -> (u64, u64) {
    ((idx as u64).reverse_bits(), t.generation())
}

/// RAII guard for a set of bucket latches (see
/// [`HashIndex::lock_buckets`](crate::HashIndex::lock_buckets)). Dropping it
/// releases them. It owns the tables it latched (not an epoch guard), so it
/// may be held for long and sent to another thread.
pub struct BucketLocks<'a> {
    held: Vec<(Arc<Table>, usize)>,
    exclusive: bool,
    _index: PhantomData<&'a ()>,
}

impl BucketLocks<'_> {
    /// Number of distinct buckets held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True if no bucket is held (empty hash set).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether the latches are exclusive.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    pub(crate) fn acquire(
        current_root: impl Fn() -> Arc<Table>,
        hashes: &[u64],
        exclusive: bool,
    ) -> Self {
        loop {
            let root = current_root();
            let mut targets: Vec<((u64, u64), usize, Arc<Table>)> = hashes
                .iter()
                .map(|&h| {
                    let (t, idx) = resolve(&root, h);
                    (lock_order(&t, idx), idx, t)
                })
                .collect();
            targets.sort_unstable_by_key(|&(k, _, _)| k);
            targets.dedup_by_key(|&mut (k, _, _)| k);
            let mut locks = BucketLocks {
                held: Vec::with_capacity(targets.len()),
                exclusive,
                _index: PhantomData,
            };
            let mut sealed = false;
            for (_, idx, t) in targets {
                if acquire(&t.bucket(idx).overflow, exclusive).is_err() {
                    sealed = true;
                    break;
                }
                locks.held.push((t, idx));
            }
            if !sealed {
                return locks;
            }
            drop(locks); // release everything, then retry on the successor
        }
    }
}

impl Drop for BucketLocks<'_> {
    fn drop(&mut self) {
        for (t, idx) in self.held.iter().rev() {
            release_in(t, *idx, self.exclusive);
        }
    }
}

impl std::fmt::Debug for BucketLocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketLocks")
            .field("exclusive", &self.exclusive)
            .field(
                "buckets",
                &self
                    .held
                    .iter()
                    .map(|(t, i)| (t.generation(), *i))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn shared_exclusive_and_sealed() {
        let t = Table::new(1, 0);
        let w = &t.bucket(0).overflow;
        w.store(5, Ordering::Relaxed); // overflow id bits must be preserved
        acquire(w, false).unwrap();
        acquire(w, false).unwrap();
        assert_eq!(w.load(Ordering::Relaxed), 5 + 2 * SHARED_ONE);
        release_in(&t, 0, false);
        release_in(&t, 0, false);
        acquire(w, true).unwrap();
        assert_eq!(w.load(Ordering::Relaxed), 5 | EXCLUSIVE);
        assert_eq!(seal(w), EXCLUSIVE, "seal hands over the held latch");
        assert!(acquire(w, false).is_err());
        assert!(acquire(w, true).is_err());
        assert_eq!(w.load(Ordering::Relaxed) & 0xFFFF_FFFF, 5);
    }

    #[test]
    fn lock_order_nests_children_in_parent_interval() {
        let (small, big) = (Table::new(4, 0), Table::new(8, 1));
        for i in 0..4 {
            let (p, _) = lock_order(&small, i);
            let width = 1u64 << 62;
            for c in [i, i + 4] {
                let (k, _) = lock_order(&big, c);
                assert!(k >= p && k - p < width);
            }
        }
    }

    #[test]
    fn exclusive_waits_for_shared() {
        let t = Table::new(1, 0);
        let w = &t.bucket(0).overflow;
        acquire(w, false).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                acquire(w, true).unwrap();
                done.store(true, Ordering::SeqCst);
                release_in(&t, 0, true);
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!done.load(Ordering::SeqCst));
            release_in(&t, 0, false);
        });
        assert!(done.load(Ordering::SeqCst));
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }
}
