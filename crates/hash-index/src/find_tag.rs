//! Find and find-or-create of a tag's entry slot, FASTER's two-phase insert,
//! and table resolution during a resize.
//!
//! Works on [`Table`]s only (no epoch), so the protocol can be model-checked
//! with loom; [`crate::HashIndex`] adds the epoch-protected root.

use crate::bucket::Bucket;
use crate::entry::{is_moved, is_tentative, tag, tag_of, TENTATIVE};
use crate::sync::{fence, AtomicU64, Backoff, Ordering};
use crate::table::{Table, DONE, IN_PROGRESS, NOT_STARTED};

/// The table and bucket that currently own `hash`, starting from `t`
/// (possibly a stale root): follows resize successors whose chunk for the
/// hash is migrated, waits while it is being migrated.
pub(crate) fn locate(mut t: &Table, hash: u64) -> (&Table, usize) {
    let mut backoff = Backoff::new();
    loop {
        let idx = t.bucket_index(hash);
        let Some(next) = t.next.get() else {
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

/// Iterator over a bucket chain (main bucket, then overflow buckets).
pub(crate) struct Chain<'t> {
    table: &'t Table,
    cur: Option<&'t Bucket>,
}

impl<'t> Iterator for Chain<'t> {
    type Item = &'t Bucket;
    fn next(&mut self) -> Option<&'t Bucket> {
        let b = self.cur?;
        self.cur = self.table.next_in_chain(b);
        Some(b)
    }
}

pub(crate) fn chain(table: &Table, idx: usize) -> Chain<'_> {
    Chain {
        table,
        cur: Some(table.bucket(idx)),
    }
}

enum Scan<'t> {
    Found(&'t AtomicU64),
    /// Not found; a free slot (if any) and the last bucket of the chain.
    Missing(Option<&'t AtomicU64>, &'t Bucket),
    /// A slot was moved by a resize: re-locate.
    Moved,
}

fn scan<'t>(t: &'t Table, idx: usize, want: u64) -> Scan<'t> {
    let mut free = None;
    let mut last = t.bucket(idx);
    for b in chain(t, idx) {
        last = b;
        for slot in &b.entries {
            let v = slot.load(Ordering::SeqCst);
            if v == 0 {
                free = free.or(Some(slot));
            } else if is_moved(v) {
                return Scan::Moved;
            } else if !is_tentative(v) && tag(v) == want {
                return Scan::Found(slot);
            }
        }
    }
    Scan::Missing(free, last)
}

/// The live slot for `hash`'s tag, if any.
pub(crate) fn find(root: &Table, hash: u64) -> Option<(&AtomicU64, &Table, usize)> {
    let want = tag_of(hash);
    loop {
        let (t, idx) = locate(root, hash);
        match scan(t, idx, want) {
            Scan::Found(slot) => return Some((slot, t, idx)),
            Scan::Missing(..) => return None,
            Scan::Moved => continue,
        }
    }
}

/// The live slot for `hash`'s tag, created (address 0) if absent.
///
/// Two-phase insert: (1) CAS an empty slot from 0 to `tag | TENTATIVE`;
/// (2) after a SeqCst fence, rescan the whole chain for any *other* slot with
/// the same tag, tentative or not. If there is one (or a moved slot), clear
/// ours and start over; otherwise clear the tentative bit. Of two racing
/// inserters at least one sees the other in phase 2 (the fences order them),
/// so a tag never gets two live entries.
pub(crate) fn find_or_create(root: &Table, hash: u64) -> (&AtomicU64, &Table, usize) {
    let want = tag_of(hash);
    let mut backoff = Backoff::new();
    loop {
        let (t, idx) = locate(root, hash);
        let slot = match scan(t, idx, want) {
            Scan::Found(slot) => return (slot, t, idx),
            Scan::Moved => continue,
            Scan::Missing(Some(free), _) => free,
            Scan::Missing(None, last) => match t.append_overflow(last) {
                Some(b) => &b.entries[0],
                None => continue,
            },
        };
        // Phase 1.
        if slot
            .compare_exchange(0, want | TENTATIVE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        fence(Ordering::SeqCst);
        // Phase 2.
        if conflict(t, idx, want, slot) {
            slot.store(0, Ordering::SeqCst);
            backoff.snooze();
            continue;
        }
        slot.store(want, Ordering::SeqCst);
        t.count_entry(idx);
        return (slot, t, idx);
    }
}

/// Another slot of the chain holds `want` (tentative or not), or a slot was
/// moved by a resize.
fn conflict(t: &Table, idx: usize, want: u64, mine: &AtomicU64) -> bool {
    for b in chain(t, idx) {
        for slot in &b.entries {
            if std::ptr::eq(slot, mine) {
                continue;
            }
            let v = slot.load(Ordering::SeqCst);
            if v != 0 && (is_moved(v) || tag(v) == want) {
                return true;
            }
        }
    }
    false
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::entry::{address, is_live, HASH_TAG_SHIFT};

    fn h(tag: u64, bucket: u64) -> u64 {
        (tag << HASH_TAG_SHIFT) | bucket
    }

    #[test]
    fn create_then_find_same_slot() {
        let t = Table::new(4, 0);
        assert!(find(&t, h(5, 1)).is_none());
        let (s1, _, i1) = find_or_create(&t, h(5, 1));
        assert_eq!(i1, 1);
        let (s2, _, _) = find_or_create(&t, h(5, 1));
        assert!(std::ptr::eq(s1, s2));
        let (s3, _, _) = find(&t, h(5, 1 + 4)).unwrap();
        assert!(std::ptr::eq(s1, s3), "same bucket and tag share the entry");
        assert!(find(&t, h(6, 1)).is_none());
        assert!(find(&t, h(5, 2)).is_none());
        assert_eq!(address(s1.load(Ordering::Relaxed)), 0);
        assert!(is_live(s1.load(Ordering::Relaxed)));
        assert_eq!(t.entry_count(), 1);
    }

    #[test]
    fn overflow_chain_holds_many_tags() {
        let t = Table::new(1, 0);
        let slots: Vec<_> = (1..=40)
            .map(|tag| find_or_create(&t, h(tag, 0)).0)
            .collect();
        for (i, tag) in (1..=40).enumerate() {
            assert!(std::ptr::eq(find(&t, h(tag, 0)).unwrap().0, slots[i]));
        }
        assert_eq!(chain(&t, 0).count(), 6);
        assert_eq!(t.entry_count(), 40);
    }

    #[test]
    fn tentative_entries_are_invisible() {
        let t = Table::new(1, 0);
        t.bucket(0).entries[0].store(tag_of(h(9, 0)) | TENTATIVE, Ordering::Relaxed);
        assert!(find(&t, h(9, 0)).is_none());
    }

    #[test]
    fn concurrent_creates_of_one_tag_yield_one_entry() {
        for _ in 0..200 {
            let t = Table::new(1, 0);
            // Fill six slots so racers also contend for the overflow append.
            for tag in 100..106 {
                find_or_create(&t, h(tag, 0));
            }
            let ptrs = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        let a = find_or_create(&t, h(7, 0)).0 as *const AtomicU64 as usize;
                        let b = find_or_create(&t, h(8, 0)).0 as *const AtomicU64 as usize;
                        ptrs.lock().unwrap().push((a, b));
                    });
                }
            });
            let ptrs = ptrs.into_inner().unwrap();
            assert!(ptrs.iter().all(|p| *p == ptrs[0]));
            let live = chain(&t, 0)
                .flat_map(|b| b.entries.iter())
                .filter(|s| is_live(s.load(Ordering::Relaxed)))
                .count();
            assert_eq!(live, 8);
        }
    }
}
