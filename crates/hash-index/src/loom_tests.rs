//! loom models of the entry protocol. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p hash-index --release --lib loom`.

use std::sync::Arc;

use loom::thread;

use crate::entry::{address, is_live, is_moved, tag, tag_of, HASH_TAG_SHIFT};
use crate::find_tag::{chain, find, find_or_create};
use crate::latch::BucketLocks;
use crate::resize::migrate_chunk;
use crate::sync::{AtomicU64, Ordering};
use crate::table::Table;
use crate::{CasError, EntryRef};

const H: u64 = (5 << HASH_TAG_SHIFT) | 1;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn live_with_tag(t: &Table, idx: usize, want: u64) -> usize {
    chain(t, idx)
        .flat_map(|b| b.entries.iter())
        .filter(|s| {
            let v = s.load(Ordering::Relaxed);
            is_live(v) && tag(v) == want
        })
        .count()
}

fn entry(slot: &AtomicU64, hash: u64) -> EntryRef<'_> {
    EntryRef {
        slot,
        tag: tag_of(hash),
    }
}

/// Two threads creating the same tag end with exactly one live entry, and
/// both get it.
#[test]
fn loom_two_phase_insert_same_tag() {
    model(|| {
        let t = Arc::new(Table::new(1, 0));
        let t2 = Arc::clone(&t);
        let a = thread::spawn(move || find_or_create(&t2, H).0 as *const AtomicU64 as usize);
        let b = find_or_create(&t, H).0 as *const AtomicU64 as usize;
        let a = a.join().unwrap();
        assert_eq!(a, b);
        assert_eq!(live_with_tag(&t, 0, tag_of(H)), 1);
    });
}

/// The Dekker case of the protocol: a third party's tentative entry (being
/// cleared) makes the two inserters pick different slots without seeing
/// each other's phase-1 write; the SeqCst fence between phase 1 and phase 2
/// is what makes one of them see the other.
#[test]
fn loom_two_phase_insert_different_slots() {
    model(|| {
        let t = Arc::new(Table::new(1, 0));
        let ghost = tag_of(9 << HASH_TAG_SHIFT) | crate::entry::TENTATIVE;
        t.bucket(0).entries[0].store(ghost, Ordering::Relaxed);
        let (t2, t3) = (Arc::clone(&t), Arc::clone(&t));
        let c = thread::spawn(move || t3.bucket(0).entries[0].store(0, Ordering::Release));
        let a = thread::spawn(move || find_or_create(&t2, H).0 as *const AtomicU64 as usize);
        let b = find_or_create(&t, H).0 as *const AtomicU64 as usize;
        c.join().unwrap();
        assert_eq!(a.join().unwrap(), b);
        assert_eq!(live_with_tag(&t, 0, tag_of(H)), 1);
    });
}

/// Same, when the only free slot is contended and the loser must append an
/// overflow bucket.
#[test]
fn loom_two_phase_insert_with_overflow_append() {
    model(|| {
        let t = Arc::new(Table::new(1, 0));
        for (i, s) in t.bucket(0).entries.iter().take(6).enumerate() {
            s.store(
                tag_of((100 + i as u64) << HASH_TAG_SHIFT),
                Ordering::Relaxed,
            );
        }
        let t2 = Arc::clone(&t);
        let a = thread::spawn(move || find_or_create(&t2, H).0 as *const AtomicU64 as usize);
        let b = find_or_create(&t, H).0 as *const AtomicU64 as usize;
        assert_eq!(a.join().unwrap(), b);
        assert_eq!(live_with_tag(&t, 0, tag_of(H)), 1);
    });
}

/// Two different tags into one free slot: both end up live, once each.
#[test]
fn loom_two_tags_one_free_slot() {
    model(|| {
        let t = Arc::new(Table::new(1, 0));
        for (i, s) in t.bucket(0).entries.iter().take(6).enumerate() {
            s.store(
                tag_of((100 + i as u64) << HASH_TAG_SHIFT),
                Ordering::Relaxed,
            );
        }
        let h2 = (6 << HASH_TAG_SHIFT) | 1;
        let t2 = Arc::clone(&t);
        let a = thread::spawn(move || {
            find_or_create(&t2, h2);
        });
        find_or_create(&t, H);
        a.join().unwrap();
        assert_eq!(live_with_tag(&t, 0, tag_of(H)), 1);
        assert_eq!(live_with_tag(&t, 0, tag_of(h2)), 1);
    });
}

fn increment(root: &Table, hash: u64, by: u64) {
    loop {
        let (slot, _, _) = find_or_create(root, hash);
        let e = entry(slot, hash);
        let cur = e.address();
        match e.compare_exchange(cur, cur + by) {
            Ok(()) => return,
            Err(CasError::Moved) | Err(CasError::Changed(_)) => thread::yield_now(),
        }
    }
}

/// A CAS racing with the migration of its entry is never lost: it lands in
/// the old table before the entry is moved, or fails with `Moved` and is
/// retried on the new table.
#[test]
fn loom_cas_vs_migration() {
    model(|| {
        let old = Arc::new(Table::new(1, 0));
        let new = Arc::new(Table::new(2, 1));
        let (slot, _, _) = find_or_create(&old, H);
        entry(slot, H).compare_exchange(0, 64).unwrap();
        old.next.set(Arc::clone(&new));
        let o2 = Arc::clone(&old);
        let a = thread::spawn(move || increment(&o2, H, 8));
        migrate_chunk(&old, &new, 0, &mut None);
        a.join().unwrap();
        assert!(is_moved(slot.load(Ordering::Relaxed)));
        let (s, t, idx) = find(&old, H).expect("entry survives migration");
        assert_eq!(t.generation(), 1);
        assert_eq!(address(s.load(Ordering::Relaxed)), 72);
        assert_eq!(live_with_tag(t, idx, tag_of(H)), 1);
    });
}

/// An insert racing with migration creates exactly one entry, in the new
/// table, and its first CAS is not lost.
#[test]
fn loom_insert_vs_migration() {
    model(|| {
        let old = Arc::new(Table::new(1, 0));
        let new = Arc::new(Table::new(2, 1));
        old.next.set(Arc::clone(&new));
        let o2 = Arc::clone(&old);
        let a = thread::spawn(move || increment(&o2, H, 64));
        migrate_chunk(&old, &new, 0, &mut None);
        a.join().unwrap();
        let (s, t, idx) = find(&old, H).expect("entry exists");
        assert_eq!(t.generation(), 1);
        assert_eq!(address(s.load(Ordering::Relaxed)), 64);
        assert_eq!(live_with_tag(t, idx, tag_of(H)), 1);
        assert_eq!(live_with_tag(&old, 0, tag_of(H)), 0);
    });
}

/// A latch holder and the migrator never both own a key's bucket, and
/// nobody deadlocks: the counter protected by the latch is exact.
#[test]
fn loom_latch_vs_migration() {
    model(|| {
        let old = Arc::new(Table::new(1, 0));
        let new = Arc::new(Table::new(2, 1));
        let counter = Arc::new(AtomicU64::new(0));
        old.next.set(Arc::clone(&new));
        let (o2, c2) = (Arc::clone(&old), Arc::clone(&counter));
        let a = thread::spawn(move || {
            let _l = BucketLocks::acquire(|| Arc::clone(&o2), &[H], true);
            let v = c2.load(Ordering::Relaxed);
            c2.store(v + 1, Ordering::Relaxed);
        });
        migrate_chunk(&old, &new, 0, &mut None);
        {
            let _l = BucketLocks::acquire(|| Arc::clone(&old), &[H], true);
            let v = counter.load(Ordering::Relaxed);
            counter.store(v + 1, Ordering::Relaxed);
        }
        a.join().unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        for i in 0..2 {
            let w = new.bucket(i).overflow.load(Ordering::Relaxed);
            assert_eq!(w, 0, "latch released in both new buckets");
        }
    });
}
