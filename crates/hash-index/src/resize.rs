//! Online doubling.
//!
//! `grow` (serialised by the index's resize mutex) builds a table of twice
//! the size, links it as the old table's successor, then migrates the old
//! buckets chunk by chunk (256 buckets per chunk). For each chunk the
//! migrator publishes `IN_PROGRESS`, then for every bucket of the chunk:
//!
//! 1. seals the main bucket: sets `SEALED` (no overflow bucket can be
//!    appended, no latch taken, from then on) and captures its latch bits,
//!    which are copied into both new buckets before the chunk is published
//!    (holders then release there; see `latch.rs`). Nothing here waits for a
//!    latch holder;
//! 2. walks the chain; seals each overflow bucket's word, and CASes every
//!    slot to `slot | MOVED` — waiting while a slot is tentative (its
//!    inserter will finalise or clear it without waiting for anybody);
//! 3. copies each moved entry whose address is valid to the new table:
//!    into buckets `i` and `i + old_len` (a key of old bucket `i` can land in
//!    either; the log's chain walk compares full keys, so a copy in the other
//!    half is harmless), or, with a splitter from `grow_with`, into the half
//!    or halves the splitter names. Entries still at `INVALID_ADDRESS` are
//!    dropped: `find_or_create_entry` recreates them.
//!
//! and then publishes `DONE`. Other threads: while a hash's chunk is
//! `NOT_STARTED` they work in the old table (if they meet a moved slot or a
//! sealed word they restart); while `IN_PROGRESS` they wait (spin, then
//! yield); once `DONE` they work in the new table, whose buckets of that chunk
//! nobody touched before. A CAS on an old entry after step 2 fails because
//! of the `MOVED` bit and reports [`CasError::Moved`](crate::CasError::Moved);
//! one before step 2 is seen by the migrator. When all chunks are done the
//! new table becomes the root and the old one is retired through the epoch
//! guard (it stays reachable, fully moved, for stale readers until then).

use crate::entry::{address, is_moved, is_tentative, tag, MOVED, SEALED};
use crate::find_tag::chain;
use crate::latch;
use crate::sync::{Backoff, Ordering};
use crate::table::{Table, DONE, IN_PROGRESS};

/// Log-assisted split: `(address, split_bit) -> (low_address, high_address)`.
pub(crate) type Splitter<'a> = &'a mut dyn FnMut(u64, u64) -> (u64, u64);

pub(crate) fn migrate_chunk(
    old: &Table,
    new: &Table,
    chunk: usize,
    split: &mut Option<Splitter<'_>>,
) {
    old.set_chunk_state(chunk, IN_PROGRESS);
    let mut moved = Vec::new();
    for idx in old.chunk_buckets(chunk) {
        moved.clear();
        let latch_bits = seal_and_move(old, idx, &mut moved);
        copy_entries(old.len(), new, idx, &moved, split);
        if latch_bits != 0 {
            for target in [idx, idx + old.len()] {
                new.bucket(target)
                    .overflow
                    .fetch_or(latch_bits, Ordering::SeqCst);
            }
        }
    }
    old.set_chunk_state(chunk, DONE);
}

/// Steps 1 and 2: seal the chain and mark every slot moved; collects the
/// moved words that had a valid address and returns the main bucket's latch
/// bits.
pub(crate) fn seal_and_move(old: &Table, idx: usize, out: &mut Vec<u64>) -> u64 {
    let latch_bits = latch::seal(&old.bucket(idx).overflow);
    let mut backoff = Backoff::new();
    for (n, b) in chain(old, idx).enumerate() {
        if n > 0 {
            b.overflow.fetch_or(SEALED, Ordering::SeqCst);
        }
        for slot in &b.entries {
            loop {
                let v = slot.load(Ordering::SeqCst);
                debug_assert!(!is_moved(v), "slot migrated twice");
                if is_tentative(v) {
                    backoff.snooze();
                    continue;
                }
                if slot
                    .compare_exchange(v, v | MOVED, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    if address(v) != 0 {
                        out.push(v);
                    }
                    break;
                }
            }
        }
    }
    latch_bits
}

/// Step 3.
fn copy_entries(
    old_len: usize,
    new: &Table,
    idx: usize,
    moved: &[u64],
    split: &mut Option<Splitter<'_>>,
) {
    for &v in moved {
        let addr = address(v);
        match split {
            Some(f) => {
                let (lo, hi) = f(addr, old_len as u64);
                for (target, a) in [(idx, lo), (idx + old_len, hi)] {
                    if a != 0 {
                        assert!(
                            a <= crate::entry::ADDRESS_MASK,
                            "splitter returned a non-address"
                        );
                        new.insert_unshared(target, tag(v) | a);
                        new.count_entry(target);
                    }
                }
            }
            None => {
                new.insert_unshared(idx, tag(v) | addr);
                new.insert_unshared(idx + old_len, tag(v) | addr);
                // One logical entry: `should_grow` must not stay true after a
                // duplicating grow.
                new.count_entry(idx);
            }
        }
    }
}
