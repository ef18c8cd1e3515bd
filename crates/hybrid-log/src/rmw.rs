//! Read-modify-write (FASTER's InternalRMW): in place in the mutable region, otherwise copy
//! the latest value to the tail. The new record commits with the index CAS; before each CAS
//! the chain above the version we read is checked for a newer record of the key.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::address::INVALID_ADDRESS;
use crate::read::{disk_find, locate_pinned, walk_memory, DiskWalk, Located, Walk};
use crate::record::{
    record_size, value_capacity, ExclusiveRecord, RecordMeta, INVALID, SEALED, TOMBSTONE,
};
use crate::store::Pinned;
use crate::tier::ColdLookup;
use crate::{CopyAction, InPlace, RmwOps, RmwOutcome, Store, StoreError};

/// What phase one decided.
enum Plan {
    Done(RmwOutcome),
    /// Call `initial` (no live record); `base` is the address of the key's first record
    /// (a tombstone) or INVALID.
    Initial {
        base: u64,
    },
    /// Append the value in `scratch.out` (or a tombstone) replacing the live record at `base`.
    Copy {
        base: u64,
        meta: RecordMeta,
        tombstone: bool,
    },
    /// The latest record is sealed by another thread's copy-update: wait and restart.
    Wait,
    /// Continue the walk on disk.
    Disk(u64),
    /// A concurrent change was seen: restart.
    Restart,
}

pub(crate) enum Commit {
    Done,
    Conflict,
}

fn copy_from<F: RmwOps>(
    ops: &mut F,
    old: &[u8],
    old_meta: RecordMeta,
    out: &mut Vec<u8>,
) -> (CopyAction, RecordMeta) {
    out.clear();
    let mut meta = old_meta;
    let a = ops.copy_update(old, old_meta, out, &mut meta);
    (a, meta)
}

impl Pinned<'_> {
    /// Read-modify-write of `key` through `ops` (see [`RmwOps`]).
    pub fn rmw<F: RmwOps>(&mut self, key: &[u8], ops: &mut F) -> Result<RmwOutcome, StoreError> {
        let hash = Store::hash(key);
        let log = &*self.inner.log;
        let max_value = log.geo.page_size as usize;
        let mut waits = 0u32;
        // Chain position to continue the walk from after a stretch on disk (None: the entry).
        let mut from: Option<u64> = None;
        let mut h0 = INVALID_ADDRESS;
        let mut gen0 = 0;
        loop {
            let plan = {
                let g = &self.guard;
                let start = match from.take() {
                    Some(a) => a,
                    None => {
                        gen0 = self.inner.sweeps.load(SeqCst);
                        h0 = self
                            .inner
                            .index
                            .find(hash, g)
                            .map_or(INVALID_ADDRESS, |e| e.address());
                        h0
                    }
                };
                match walk_memory(log, start, key, INVALID_ADDRESS, g) {
                    Walk::Absent | Walk::Stopped => Plan::Initial {
                        base: INVALID_ADDRESS,
                    },
                    Walk::Disk(a) => Plan::Disk(a),
                    Walk::Memory(r) => {
                        let a = r.address();
                        if r.header() & TOMBSTONE != 0 {
                            Plan::Initial { base: a }
                        } else if a >= log.read_only() {
                            let mut x = r.lock_exclusive();
                            let h = x.header();
                            if h & SEALED != 0 {
                                Plan::Wait
                            } else if h & (TOMBSTONE | INVALID) != 0 {
                                Plan::Restart
                            } else {
                                let (mut v, mut meta) = x.value_mut();
                                let old_meta = meta;
                                match ops.in_place(&mut v, &mut meta) {
                                    InPlace::Done => {
                                        if meta != old_meta {
                                            x.set_meta(meta);
                                        }
                                        Plan::Done(RmwOutcome::Updated)
                                    }
                                    InPlace::NoChange => Plan::Done(RmwOutcome::Unchanged),
                                    InPlace::Delete => {
                                        x.set_flags(TOMBSTONE);
                                        Plan::Done(RmwOutcome::Deleted)
                                    }
                                    InPlace::NeedCopy => copy_locked(
                                        &mut x,
                                        a,
                                        ops,
                                        &mut self.scratch.out,
                                        key.len(),
                                        max_value,
                                    )?,
                                }
                            }
                        } else if a >= log.safe_read_only() {
                            // Fuzzy region: a thread that saw the old read_only may still
                            // update in place; exclude it with the lock and a seal.
                            let mut x = r.lock_exclusive();
                            let h = x.header();
                            if h & SEALED != 0 {
                                Plan::Wait
                            } else if h & (TOMBSTONE | INVALID) != 0 {
                                // Deleted in place meanwhile: walk again.
                                Plan::Restart
                            } else {
                                copy_locked(
                                    &mut x,
                                    a,
                                    ops,
                                    &mut self.scratch.out,
                                    key.len(),
                                    max_value,
                                )?
                            }
                        } else {
                            let out = &mut self.scratch.out;
                            let (action, meta) = r
                                .read(false, |old, old_meta, _| copy_from(ops, old, old_meta, out));
                            plan_of_copy(action, a, meta)
                        }
                    }
                }
            };
            let plan = match plan {
                Plan::Disk(start) => {
                    let buf = &mut self.scratch.io;
                    let hit = self
                        .guard
                        .repin_after(|| disk_find(log, start, key, INVALID_ADDRESS, buf))?;
                    match hit {
                        DiskWalk::Memory(b) => {
                            from = Some(b);
                            continue;
                        }
                        DiskWalk::Absent | DiskWalk::Stopped | DiskWalk::Cut => Plan::Initial {
                            base: INVALID_ADDRESS,
                        },
                        DiskWalk::Found(h) if h.prefix.header & TOMBSTONE != 0 => {
                            Plan::Initial { base: h.addr }
                        }
                        DiskWalk::Found(h) => {
                            let (action, meta) = copy_from(
                                ops,
                                h.value(&self.scratch.io),
                                h.prefix.meta,
                                &mut self.scratch.out,
                            );
                            plan_of_copy(action, h.addr, meta)
                        }
                    }
                }
                p => p,
            };
            // Not in the hot tier of a two-tier store: the cold tier's record (if any) is
            // the one to update.
            let plan = match plan {
                Plan::Initial {
                    base: INVALID_ADDRESS,
                } if self.inner.cold.is_some() => match self.cold_lookup(hash, key)? {
                    Some(ColdLookup::Live(h)) => {
                        let (action, meta) = copy_from(
                            ops,
                            h.value(&self.scratch.io),
                            h.prefix.meta,
                            &mut self.scratch.out,
                        );
                        plan_of_copy(action, INVALID_ADDRESS, meta)
                    }
                    _ => Plan::Initial {
                        base: INVALID_ADDRESS,
                    },
                },
                p => p,
            };
            match plan {
                Plan::Done(o) => return Ok(o),
                Plan::Restart => continue,
                Plan::Wait => {
                    log.check_failed()?;
                    waits += 1;
                    self.guard.repin();
                    if waits > 16 {
                        std::thread::yield_now();
                    }
                    continue;
                }
                Plan::Disk(_) => unreachable!("resolved above"),
                Plan::Initial { base } => {
                    let Some((value, meta)) = ops.initial() else {
                        return Ok(RmwOutcome::NotFound);
                    };
                    match self.append_checked(hash, key, &value, meta, 0, (h0, gen0), base)? {
                        Commit::Done => return Ok(RmwOutcome::Created),
                        Commit::Conflict => continue,
                    }
                }
                Plan::Copy {
                    base,
                    meta,
                    tombstone,
                } => {
                    let value = std::mem::take(&mut self.scratch.out);
                    let flags = if tombstone { TOMBSTONE } else { 0 };
                    let v: &[u8] = if tombstone { &[] } else { &value };
                    let r = self.append_checked(hash, key, v, meta, flags, (h0, gen0), base);
                    self.scratch.out = value;
                    match r? {
                        Commit::Done => {
                            return Ok(if tombstone {
                                RmwOutcome::Deleted
                            } else {
                                RmwOutcome::Updated
                            })
                        }
                        Commit::Conflict => continue,
                    }
                }
            }
        }
    }

    /// Appends a record replacing the key's record at `base` (INVALID: none) and commits it
    /// with the index CAS, provided no newer record of the key was installed above `h0`.
    /// `gen0` is `Inner::sweeps` read before `h0`: when a two-tier migration freed index
    /// entries since, the chain from the entry may no longer lead to `h0` (an entry can
    /// vanish and come back holding records that were installed and migrated meanwhile),
    /// so the append is abandoned and the caller starts over.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_checked(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        flags: u64,
        (h0, gen0): (u64, u64),
        base: u64,
    ) -> Result<Commit, StoreError> {
        let log = &*self.inner.log;
        let cap = value_capacity(
            key.len(),
            value.len(),
            flags & TOMBSTONE != 0,
            log.geo.page_size as usize,
        );
        let size = record_size(key.len(), cap);
        let addr = log.allocate(size, &mut self.guard)?;
        let g = &self.guard;
        let rec = log.write_new(addr, INVALID_ADDRESS, flags, key, value, cap, meta, g);
        let mut verified = h0;
        loop {
            let entry = self.inner.index.find_or_create(hash, g);
            let cur = entry.address();
            if cur > addr || self.inner.sweeps.load(SeqCst) != gen0 {
                // Never link to a higher address (chains stay in decreasing address order,
                // which recovery relies on), nor commit after a sweep that may have freed
                // and re-created the entry: give this record up and start over.
                rec.mark_invalid();
                log.records_appended.fetch_add(1, Relaxed);
                return Ok(Commit::Conflict);
            }
            if cur != verified {
                // Something was installed in this chain since we read: is it our key?
                // Disk reads here stay pinned (rare: the new chain part already fell to
                // disk): the orphan-to-be must not be flushed before it is marked invalid.
                let first = match locate_pinned(log, cur, key, verified, g, &mut self.scratch.io2)?
                {
                    Located::At(a) => Some(a),
                    // Nothing new above what we verified.
                    Located::Stopped => Some(base),
                    // Records above what we verified fell below `begin` meanwhile (a
                    // two-tier store migrated them: the key may have been among them, and
                    // what we based our update on may be stale): start over.
                    Located::Cut => None,
                    // The chain no longer holds the key at all (e.g. the index was cleared).
                    Located::Absent => Some(INVALID_ADDRESS),
                };
                if first != Some(base) {
                    rec.mark_invalid();
                    log.records_appended.fetch_add(1, Relaxed);
                    return Ok(Commit::Conflict);
                }
                verified = cur;
            }
            rec.set_prev(cur);
            if entry.cas(cur, addr).is_ok() {
                break;
            }
        }
        self.inner.appended(&self.guard);
        Ok(Commit::Done)
    }
}

fn plan_of_copy(action: CopyAction, base: u64, meta: RecordMeta) -> Plan {
    match action {
        CopyAction::Write => Plan::Copy {
            base,
            meta,
            tombstone: false,
        },
        CopyAction::Delete => Plan::Copy {
            base,
            meta,
            tombstone: true,
        },
        CopyAction::NoChange => Plan::Done(RmwOutcome::Unchanged),
    }
}

/// Copy-update under the record's exclusive lock; seals the record if a new version will be
/// appended, so in-place updaters stay off it.
fn copy_locked<F: RmwOps>(
    x: &mut ExclusiveRecord<'_>,
    base: u64,
    ops: &mut F,
    out: &mut Vec<u8>,
    key_len: usize,
    max_record: usize,
) -> Result<Plan, StoreError> {
    let (old, old_meta) = x.value_and_meta();
    let (action, meta) = copy_from(ops, old, old_meta, out);
    if action == CopyAction::Write {
        let size = record_size(
            key_len,
            value_capacity(key_len, out.len(), false, max_record),
        );
        if size > max_record {
            return Err(StoreError::RecordTooLarge {
                size,
                max: max_record,
            });
        }
    }
    if action != CopyAction::NoChange {
        x.set_flags(SEALED);
    }
    Ok(plan_of_copy(action, base, meta))
}
