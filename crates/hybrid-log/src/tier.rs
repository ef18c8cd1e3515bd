//! Two-tier store (decision 008): migration of the hot log's oldest records to the cold
//! tier (`cold.rs`), cold lookups for keys the hot tier does not hold, and the background
//! thread that keeps the hot log within `tier_hot_bytes`.
//!
//! * **Migration** ([`Store::migrate`]) reads `[begin, until)` of the hot log from disk (only
//!   immutable, flushed records) and, under the cold writer, appends each record that is
//!   still its key's newest in the hot tier (a tombstone too: it must shadow older cold
//!   records; without `compaction_keeps_expired` an expired record goes as a tombstone), then
//!   commits the cold log, moves the hot `begin`, and frees the hot index entries that now
//!   point below `begin` (`HashIndex::remove_below`), so the hot index only holds hot keys.
//! * **Why readers never miss a key**: the cold commit happens before `begin` moves. A hot
//!   walk that finds nothing (no entry, chain cut by `begin`) then looks in the cold tier,
//!   which already has every record below `begin`. A hot write racing with migration lands
//!   above it and shadows the migrated copy.
//! * **RMW on a cold key**: the hot RMW finds no hot record, reads the cold one (unpinned)
//!   and appends the updated value with the usual "only if nothing newer was installed
//!   since the entry we read" commit: cold records change only by migration of hot records
//!   below `begin`, which that check already orders.
//! * **FLUSHALL** (`clear_all`) holds the cold writer while it clears the hot index and
//!   sets the cold `cleared_at`, and migration checks and appends under the same writer, so
//!   no record from before the clear reaches the cold tier after it.
//! * **Checkpoints** store the cold tier's mark (begin, tail, cleared_at) read right after
//!   the hot `begin`; recovery cuts the cold log there and rebuilds the cold index.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::address::INVALID_ADDRESS;
use crate::cold::{Cold, ColdHit, Staged};
use crate::record::{RecordMeta, INVALID, PREFIX_SIZE, TOMBSTONE};
use crate::recovery::scan_disk;
use crate::store::{Inner, Pinned};
use crate::{Store, StoreError};

/// Test hook: the two-tier steps at which `StoreConfig::crash_at` aborts the process (after
/// a cold commit of a migration window; after the hot `begin` moved, before the index sweep;
/// after a cold compaction moved the cold `begin`, before its segments are deleted).
#[doc(hidden)]
pub const TIER_CRASH_POINTS: &[&str] = &["migrate-committed", "migrate-moved", "cold-compacted"];

/// What one migration pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStats {
    /// Hot `begin` before and after.
    pub begin_before: u64,
    /// Hot `begin` after.
    pub begin_after: u64,
    /// Hot records scanned.
    pub records_scanned: u64,
    /// Records appended to the cold tier (tombstones included).
    pub records_migrated: u64,
    /// Hot index entries freed.
    pub index_entries_freed: u64,
    /// Wall time.
    pub duration: Duration,
}

/// Two-tier statistics ([`Store::tier_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Hot index entries (about the number of keys with a hot record).
    pub hot_index_entries: u64,
    /// Cold log `[begin, tail)`.
    pub cold_begin: u64,
    /// Cold log tail.
    pub cold_tail: u64,
    /// Bytes of cold log files.
    pub cold_disk_bytes: u64,
    /// Logical size of the cold index file.
    pub cold_index_bytes: u64,
    /// Records appended to the cold tier (migrations and compaction copies).
    pub cold_records_appended: u64,
    /// Records migrated from the hot tier.
    pub migrated_records: u64,
    /// Migration passes.
    pub migration_passes: u64,
    /// Cold lookups and how long they took in total.
    pub cold_reads: u64,
    /// Cold lookups that found a record.
    pub cold_hits: u64,
    /// Total nanoseconds spent in cold lookups.
    pub cold_read_ns: u64,
    /// Cold records copied back to the hot tier on read.
    pub promoted: u64,
    /// Cold compactions run.
    pub cold_compactions: u64,
}

/// The result of looking a key up in the cold tier.
pub(crate) enum ColdLookup {
    /// A live record: value and meta are in `scratch.io`.
    Live(ColdHit),
    /// Absent or deleted.
    Absent,
}

impl Pinned<'_> {
    /// Looks `key` up in the cold tier (unpinned while reading). `None` for a single-tier
    /// store.
    pub(crate) fn cold_lookup(
        &mut self,
        hash: u64,
        key: &[u8],
    ) -> Result<Option<ColdLookup>, StoreError> {
        let Some(cold) = self.inner.cold.as_ref() else {
            return Ok(None);
        };
        let buf = &mut self.scratch.io;
        let hit = self.guard.repin_after(|| cold.find(hash, key, buf))?;
        Ok(Some(match hit {
            Some(h) if !h.is_tombstone() => ColdLookup::Live(h),
            _ => ColdLookup::Absent,
        }))
    }

    /// Whether the cold read hit just counted is one to copy back to the hot tier (one in
    /// `cold_promote_every`).
    pub(crate) fn promotion_due(&self) -> bool {
        let every = self.inner.cfg.cold_promote_every;
        self.inner.cold.as_ref().is_some_and(|cold| {
            every != 0
                && cold
                    .counters
                    .hits
                    .load(Relaxed)
                    .is_multiple_of(u64::from(every))
        })
    }

    /// Copies a cold record read by a lookup to the hot tier (when [`Self::promotion_due`]),
    /// unless something was installed in its chain since the entry `h0.0` was read (`h0.1`:
    /// the sweep generation read before it).
    pub(crate) fn promote(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        h0: (u64, u64),
    ) -> Result<(), StoreError> {
        let Some(cold) = self.inner.cold.as_ref() else {
            return Ok(());
        };
        if let crate::rmw::Commit::Done =
            self.append_checked(hash, key, value, meta, 0, h0, INVALID_ADDRESS)?
        {
            cold.counters.promoted.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

impl Store {
    /// Moves the hot log's records below `until` (clamped to what is flushed) to the cold
    /// tier and moves the hot `begin` there (see the module docs). Errors with
    /// [`StoreError::Config`] on a single-tier store. Blocking; runs concurrently with
    /// everything else (one compaction or migration at a time).
    pub fn migrate(&self, until: u64) -> Result<MigrationStats, StoreError> {
        let inner = &*self.inner;
        let Some(cold) = inner.cold.as_ref() else {
            return Err(StoreError::Config("not a two-tier store".into()));
        };
        let _one = inner
            .compaction
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.migrate_locked(cold, until)
    }

    fn migrate_locked(&self, cold: &Cold, until: u64) -> Result<MigrationStats, StoreError> {
        // Records per window are sorted by cold index slot (`append_batch`): bigger windows
        // share more index pages.
        const WINDOW: u64 = 4 << 20;
        let t0 = Instant::now();
        let inner = &*self.inner;
        let log = inner.log.clone();
        log.check_failed()?;
        let begin = log.begin();
        let flushed = log.m.flushed_until.load(SeqCst);
        let until = until.min(flushed);
        let mut st = MigrationStats {
            begin_before: begin,
            begin_after: begin,
            ..MigrationStats::default()
        };
        if until <= begin {
            return Ok(st);
        }
        let now_ms = crate::checkpoint::now_unix_ms();
        let keep_expired = inner.cfg.compaction_keeps_expired;
        let mut session = self.session();
        let mut buf = Vec::new();
        let mut pos = begin;
        let mut arena = Vec::new();
        let mut staged = Vec::new();
        while pos < until {
            let to = (pos + WINDOW).min(until);
            let mut w = cold.writer.lock().unwrap_or_else(|e| e.into_inner());
            let next = scan_disk(
                &log.segments,
                log.geo,
                pos,
                to,
                flushed,
                &mut buf,
                |addr, p, rec| {
                    st.records_scanned += 1;
                    if p.header & INVALID != 0 {
                        return Ok(());
                    }
                    let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                    let hash = Store::hash(key);
                    let mut pinned = session.pin();
                    let Some(h0) = pinned.inner.index.find(hash, &pinned.guard) else {
                        return Ok(()); // cleared, or already migrated
                    };
                    let h0 = h0.address();
                    if pinned.first_of_key(h0, key, addr)?.is_some() {
                        return Ok(()); // not the newest
                    }
                    drop(pinned);
                    let expired =
                        !keep_expired && p.meta.expire_at_ms != 0 && p.meta.expire_at_ms <= now_ms;
                    let tombstone = p.header & TOMBSTONE != 0 || expired;
                    let value = &rec[PREFIX_SIZE + p.key_len..][..p.value_len];
                    staged.push(Staged {
                        hash,
                        start: arena.len(),
                        key_len: key.len(),
                        value_len: if tombstone { 0 } else { value.len() },
                        meta: p.meta,
                        tombstone,
                    });
                    arena.extend_from_slice(key);
                    if !tombstone {
                        arena.extend_from_slice(value);
                    }
                    st.records_migrated += 1;
                    Ok(())
                },
            )?;
            cold.append_batch(&mut w, &arena, &mut staged)?;
            arena.clear();
            staged.clear();
            drop(w);
            inner.durable.crash_point("migrate-committed");
            if next <= pos {
                break;
            }
            pos = next;
        }
        let end = pos.min(flushed);
        // Not while a checkpoint is between reading `begin` and its barrier (`tier_cut`).
        let cut = inner.tier_cut.lock().unwrap_or_else(|e| e.into_inner());
        log.m.begin.fetch_max(end, SeqCst);
        st.begin_after = log.begin();
        inner.durable.crash_point("migrate-moved");
        {
            let handle = log.collector.register();
            let mut guard = handle.pin();
            // Before freeing: RMWs that read their entry earlier must not commit on a
            // re-created one (see `append_checked`). Their check of the generation and
            // their CAS run under one pin: wait one epoch so that every append that saw
            // the old generation has finished.
            inner.sweeps.fetch_add(1, SeqCst);
            let passed = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let p2 = passed.clone();
            crate::epoch::bump(&guard, move || p2.store(true, SeqCst));
            crate::epoch::wait_until(&mut guard, || Ok(passed.load(SeqCst)), || {})?;
            st.index_entries_freed = inner.index.remove_below(&guard, st.begin_after) as u64;
        }
        drop(cut);
        if let Ok(ck) = inner.durable.state.try_lock() {
            inner.reclaim_segments(&ck)?;
        }
        let c = &cold.counters;
        c.migrated.fetch_add(st.records_migrated, Relaxed);
        c.migration_passes.fetch_add(1, Relaxed);
        st.duration = t0.elapsed();
        tracing::debug!(
            begin = st.begin_after,
            migrated = st.records_migrated,
            freed = st.index_entries_freed,
            ms = st.duration.as_millis() as u64,
            "migrated hot records to the cold tier"
        );
        Ok(st)
    }

    /// Compacts the cold log below `until` (two-tier stores): copies the newest live
    /// record of each key to the cold tail, moves the cold `begin`, deletes the segment
    /// files no kept checkpoint needs. Returns the bytes copied. Runs concurrently with
    /// migration (they take the cold writer in turns, per window).
    pub fn compact_cold(&self, until: u64) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let Some(cold) = inner.cold.as_ref() else {
            return Err(StoreError::Config("not a two-tier store".into()));
        };
        let _one = cold.compaction.lock().unwrap_or_else(|e| e.into_inner());
        let (_, copied, _) = cold.compact(until, inner.cfg.compaction_keeps_expired)?;
        inner.durable.crash_point("cold-compacted");
        if let Ok(ck) = inner.durable.state.try_lock() {
            inner.reclaim_segments(&ck)?;
        }
        Ok(copied)
    }

    /// Two-tier statistics (`None` for a single-tier store).
    pub fn tier_stats(&self) -> Option<TierStats> {
        let inner = &*self.inner;
        let cold = inner.cold.as_ref()?;
        let c = &cold.counters;
        let (cold_disk_bytes, cold_index_bytes) = cold.disk_bytes();
        Some(TierStats {
            hot_index_entries: inner.index.entry_count(),
            cold_begin: cold.begin.load(SeqCst),
            cold_tail: cold.tail.load(SeqCst),
            cold_disk_bytes,
            cold_index_bytes,
            cold_records_appended: c.appended.load(Relaxed),
            migrated_records: c.migrated.load(Relaxed),
            migration_passes: c.migration_passes.load(Relaxed),
            cold_reads: c.reads.load(Relaxed),
            cold_hits: c.hits.load(Relaxed),
            cold_read_ns: c.read_ns.load(Relaxed),
            promoted: c.promoted.load(Relaxed),
            cold_compactions: c.compactions.load(Relaxed),
        })
    }
}

impl Store {
    /// Two-tier: whether the hot log is more than 1.5 times its limit because migration is
    /// behind (writers should slow down: the hot index holds an entry per hot key and never
    /// shrinks). Always `false` for a single-tier store.
    pub fn tier_backlogged(&self) -> bool {
        let inner = &*self.inner;
        inner.cold.is_some() && inner.log.tail() - inner.log.begin() > inner.hot_limit() / 2 * 3
    }
}

impl Inner {
    fn hot_limit(&self) -> u64 {
        if self.cfg.tier_hot_bytes > 0 {
            self.cfg.tier_hot_bytes
        } else {
            self.log.frames.bytes()
        }
    }

    /// One round of the background thread: migrate while the hot log is over its limit,
    /// then compact the cold log if it is due.
    fn tier_round(self: &Arc<Self>) -> Result<(), StoreError> {
        let store = Store {
            inner: self.clone(),
        };
        let cold = self.cold.as_ref().expect("two-tier");
        let limit = self.hot_limit();
        // At most 8 passes per round, so that cold compaction gets its turn under load.
        for _ in 0..8 {
            let (tail, begin) = (self.log.tail(), self.log.begin());
            if tail - begin <= limit || self.log.shutdown.load(Acquire) {
                break;
            }
            // Down to 7/8 of the limit, in passes of at most 8 MiB (checkpoints wait for
            // at most one pass).
            let until = (tail - limit * 7 / 8).min(begin + (8 << 20));
            let st = store.migrate(until)?;
            if st.begin_after == st.begin_before {
                break; // nothing flushed yet
            }
        }
        // Cold compaction, in slices of 32 MiB per round so that migration keeps going: a
        // pass starts when the cold log is `compaction_factor` times its live data as of
        // the last pass (at least `cold_compaction_min_bytes`) and runs to the tail it saw
        // then. With all data live each pass copies everything once, so copies stay
        // proportional to what was written.
        let c = &cold.counters;
        let (begin, tail) = (cold.begin.load(SeqCst), cold.tail.load(SeqCst));
        let mut target = c.compaction_target.load(Relaxed);
        let mut first = false;
        if target <= begin {
            let size = tail - begin;
            let live = c.live_estimate.load(Relaxed);
            let min = self.cfg.cold_compaction_min_bytes;
            if size >= min && size as f64 >= self.cfg.compaction_factor * live.max(min) as f64 {
                target = tail;
                first = true;
                c.compaction_target.store(target, Relaxed);
                c.live_estimate.store(0, Relaxed);
            }
        }
        if target > begin {
            let until = (begin + (32 << 20)).min(target);
            let copied = store.compact_cold(until)?;
            c.live_estimate.fetch_add(copied, Relaxed);
            let done = cold.begin.load(SeqCst).saturating_sub(begin).max(1);
            if first && copied * 4 > done * 3 && cold.begin.load(SeqCst) < target {
                // The first slice was over 3/4 live (e.g. distinct keys only): a whole pass
                // would mostly copy. Stop, and look again when the log has doubled.
                let size = cold.tail.load(SeqCst) - cold.begin.load(SeqCst);
                c.live_estimate.store(size, Relaxed);
                c.compaction_target.store(0, Relaxed);
            } else if cold.begin.load(SeqCst) >= target {
                // Done: live data = what was copied plus what was appended meanwhile.
                let above = cold.tail.load(SeqCst).saturating_sub(target);
                c.live_estimate.fetch_add(above, Relaxed);
                c.compaction_target.store(0, Relaxed);
            }
        }
        Ok(())
    }
}

/// Starts the two-tier background thread (holds only a weak reference to the store).
pub(crate) fn start_background(store: &Store) -> Result<(), StoreError> {
    crate::compaction::spawn_periodic(store, "kvd-tier", store.inner.cfg.tier_interval, |inner| {
        if let Err(e) = inner.tier_round() {
            tracing::error!(error = %e, "two-tier migration failed");
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}
