//! Log compaction: copy the live records of `[begin, until)` to the tail, move `begin` to
//! `until`, delete whole segment files that no kept checkpoint needs.
//!
//! * `until` is clamped to `flushed_until`, so the range is read sequentially from disk
//!   (unpinned) and holds only immutable records.
//! * A record is live if it is the first record of its key's chain (walking from the index
//!   entry down to it finds no newer record of the key), is not a tombstone, not invalid and
//!   not expired (`expire_at_ms != 0 && expire_at_ms <= now`; with
//!   `StoreConfig::compaction_keeps_expired`, expired records count as live). Everything
//!   else is dropped.
//! * A live record is copied with the RMW commit protocol (FASTER's "copy to tail if not
//!   newer"): the copy commits with the index CAS only if no newer record of the key was
//!   installed since the liveness check; otherwise the copy is marked invalid and the newer
//!   write wins.
//! * Dropping a tombstone is safe: chains are in decreasing address order, so every older
//!   record of its key lies below the tombstone, hence below `until`, and becomes unreachable
//!   when `begin` moves (readers stop at `begin`; recovery scans from `begin`).
//! * Readers never wait for compaction: it pins only per record, and disk walks re-validate
//!   against `begin` (a chain cut by `begin` moving means "retry from the index").
//! * [`Store::evict`] is the same pass with a per-record choice: a record to evict is not
//!   copied; its key gets a tombstone under the same "only if still the latest" commit
//!   (the building block of cache mode, decision 007).

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::address::INVALID_ADDRESS;
use crate::read::{disk_find, walk_memory, DiskWalk, Walk};
use crate::record::{PREFIX_SIZE, TOMBSTONE};
use crate::recovery::scan_disk;
use crate::store::{Inner, Pinned};
use crate::{RecordMeta, Store, StoreError};

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// `begin` before.
    pub begin_before: u64,
    /// `begin` after (the address compaction stopped at, at least the requested `until` or
    /// `flushed_until`, whichever is lower, rounded up to a record boundary).
    pub begin_after: u64,
    /// Records scanned in `[begin_before, begin_after)`.
    pub records_scanned: u64,
    /// Live records copied to the tail.
    pub records_copied: u64,
    /// Records dropped (tombstones, overwritten, invalid, expired, or overwritten during the
    /// copy).
    pub records_dropped: u64,
    /// Of the dropped records: expired ones.
    pub records_expired: u64,
    /// Latest records deleted by an eviction pass ([`Store::evict`]): a tombstone
    /// replaced each (counted apart from `records_dropped`).
    pub records_evicted: u64,
    /// Bytes copied to the tail.
    pub bytes_copied: u64,
    /// Segment files deleted right away (others go after the next checkpoints).
    pub segments_deleted: u64,
    /// Bytes of the deleted segment files.
    pub bytes_deleted: u64,
    /// Wall time.
    pub duration: Duration,
}

/// Compaction state of a store.
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// One compaction at a time.
    pub lock: Mutex<()>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
    /// Over-estimate of the live bytes at the last compaction: bytes copied plus the log
    /// above the compacted range when it started.
    live_estimate: AtomicU64,
}

pub(crate) enum Copy {
    Copied,
    Dead,
}

/// An eviction pass's choice per live record (key, meta).
pub type Decide<'a> = dyn FnMut(&[u8], &RecordMeta) -> Eviction + 'a;

/// Called with (key, value, meta) of every key an eviction pass deleted.
pub type OnEvict<'a> = dyn FnMut(&[u8], &[u8], &RecordMeta) + 'a;

/// What an eviction pass ([`Store::evict`]) does with a live record of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Copy it to the tail, as compaction does.
    Keep,
    /// Delete the key (if this record is still its latest).
    Evict,
}

impl Pinned<'_> {
    /// Where the first record of `key` is, from `start` down to (excluding) `stop_at`; disk
    /// reads run unpinned. `None`: reached `stop_at`.
    pub(crate) fn first_of_key(
        &mut self,
        start: u64,
        key: &[u8],
        stop_at: u64,
    ) -> Result<Option<u64>, StoreError> {
        let log = self.inner.log.clone();
        let mut from = start;
        loop {
            let disk_start = match walk_memory(&log, from, key, stop_at, &self.guard) {
                Walk::Memory(r) => return Ok(Some(r.address())),
                Walk::Absent => return Ok(Some(INVALID_ADDRESS)),
                Walk::Stopped => return Ok(None),
                Walk::Disk(a) => a,
            };
            let buf = &mut self.scratch.io;
            match self
                .guard
                .repin_after(|| disk_find(&log, disk_start, key, stop_at, buf))?
            {
                DiskWalk::Found(h) => return Ok(Some(h.addr)),
                DiskWalk::Absent | DiskWalk::Cut => return Ok(Some(INVALID_ADDRESS)),
                DiskWalk::Stopped => return Ok(None),
                DiskWalk::Memory(b) => from = b,
            }
        }
    }

    /// Copies the record of `key` at `addr` to the tail if it is still the key's latest, or
    /// with `tombstone` appends a tombstone instead (deletes the key), under the same
    /// condition.
    pub(crate) fn copy_if_latest(
        &mut self,
        key: &[u8],
        value: &[u8],
        meta: RecordMeta,
        addr: u64,
        tombstone: bool,
    ) -> Result<Copy, StoreError> {
        let (value, flags) = if tombstone {
            (&[][..], TOMBSTONE)
        } else {
            (value, 0)
        };
        let hash = Store::hash(key);
        loop {
            let gen0 = self.inner.sweeps.load(SeqCst);
            let h0 = match self.inner.index.find(hash, &self.guard) {
                None => return Ok(Copy::Dead),
                Some(e) => e.address(),
            };
            if self.first_of_key(h0, key, addr)?.is_some() {
                // A newer record of the key, or the record is no longer reachable.
                return Ok(Copy::Dead);
            }
            match self.append_checked(hash, key, value, meta, flags, (h0, gen0), addr)? {
                crate::rmw::Commit::Done => return Ok(Copy::Copied),
                crate::rmw::Commit::Conflict => continue,
            }
        }
    }
}

impl Store {
    /// Compacts the log below `until` (clamped to what is on disk; `u64::MAX` = everything
    /// flushed): copies live records to the tail, drops tombstones and overwritten, invalid
    /// and expired records, moves `begin`, and deletes segment files that neither the live
    /// log nor a kept checkpoint needs (the others go after later checkpoints).
    ///
    /// Runs concurrently with all other operations (it takes an epoch pin per record only).
    /// Blocking: from async code call it in `spawn_blocking`, with no session pinned on the
    /// calling thread.
    pub fn compact(&self, until: u64) -> Result<CompactionStats, StoreError> {
        self.evict(until, &mut |_, _| Eviction::Keep, &mut |_, _, _| {})
    }

    /// An eviction pass (cache mode): compaction of `[begin, until)` in which `decide`
    /// chooses, for each live record, between copying it to the tail ([`Eviction::Keep`])
    /// and deleting its key ([`Eviction::Evict`]). A key is deleted with a tombstone through
    /// the RMW commit protocol, only if the record is still the key's latest: a write that
    /// races with the pass either lands first (the record is no longer the latest and the
    /// key stays) or sees the tombstone (it creates the key anew). `on_evict(key, value,
    /// meta)` reports every key that was deleted, exactly once, so callers can keep
    /// counters exact. Expired records reach `decide` only with
    /// `StoreConfig::compaction_keeps_expired`.
    pub fn evict(
        &self,
        until: u64,
        decide: &mut Decide<'_>,
        on_evict: &mut OnEvict<'_>,
    ) -> Result<CompactionStats, StoreError> {
        let inner = &*self.inner;
        let _one = inner
            .compaction
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.compact_with(until, decide, on_evict)
    }

    /// [`Store::evict`] that does not wait: `Ok(None)` when a compaction or another
    /// eviction pass is running (callers holding a lock others wait for should not wait
    /// behind a long compaction).
    pub fn try_evict(
        &self,
        until: u64,
        decide: &mut Decide<'_>,
        on_evict: &mut OnEvict<'_>,
    ) -> Result<Option<CompactionStats>, StoreError> {
        let inner = &*self.inner;
        let _one = match inner.compaction.lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        self.compact_with(until, decide, on_evict).map(Some)
    }

    fn compact_with(
        &self,
        until: u64,
        decide: &mut Decide<'_>,
        on_evict: &mut OnEvict<'_>,
    ) -> Result<CompactionStats, StoreError> {
        // The caller holds the compaction lock (one pass at a time).
        if self.inner.cold.is_some() {
            // Dropping a hot tombstone would uncover the key's older cold record.
            return Err(StoreError::Config(
                "a two-tier store reclaims its hot log by migration, not compaction or eviction"
                    .into(),
            ));
        }
        let t0 = Instant::now();
        let inner = &*self.inner;
        let log = inner.log.clone();
        log.check_failed()?;
        let begin = log.begin();
        let tail_at_start = log.tail();
        let flushed = log.m.flushed_until.load(SeqCst);
        let until = until.min(flushed);
        let mut stats = CompactionStats {
            begin_before: begin,
            begin_after: begin,
            ..CompactionStats::default()
        };
        if until > begin {
            let now_ms = crate::checkpoint::now_unix_ms();
            let drop_expired = !inner.cfg.compaction_keeps_expired;
            let mut session = self.session();
            let mut buf = Vec::new();
            let end = scan_disk(
                &log.segments,
                log.geo,
                begin,
                until,
                flushed,
                &mut buf,
                |addr, p, rec| {
                    stats.records_scanned += 1;
                    let expired =
                        drop_expired && p.meta.expire_at_ms != 0 && p.meta.expire_at_ms <= now_ms;
                    if p.header & (TOMBSTONE | crate::record::INVALID) != 0 || expired {
                        stats.records_dropped += 1;
                        stats.records_expired += u64::from(expired);
                        return Ok(());
                    }
                    let key = &rec[PREFIX_SIZE..PREFIX_SIZE + p.key_len];
                    let value =
                        &rec[PREFIX_SIZE + p.key_len..PREFIX_SIZE + p.key_len + p.value_len];
                    let evict = decide(key, &p.meta) == Eviction::Evict;
                    match session
                        .pin()
                        .copy_if_latest(key, value, p.meta, addr, evict)?
                    {
                        Copy::Copied if evict => {
                            stats.records_evicted += 1;
                            on_evict(key, value, &p.meta);
                        }
                        Copy::Copied => {
                            stats.records_copied += 1;
                            stats.bytes_copied += rec.len() as u64;
                        }
                        Copy::Dead => stats.records_dropped += 1,
                    }
                    Ok(())
                },
            )?;
            let end = end.min(flushed);
            log.m.begin.fetch_max(end, SeqCst);
            stats.begin_after = log.begin();
            // Segment files: only if no checkpoint is running (it reclaims when it ends).
            if let Ok(st) = inner.durable.state.try_lock() {
                let (n, b) = inner.reclaim_segments(&st)?;
                stats.segments_deleted = n;
                stats.bytes_deleted = b;
            }
        }
        // Live data at the start is at most what was copied plus everything above the
        // compacted range (appends made during the compaction are not counted).
        let above = tail_at_start.saturating_sub(stats.begin_after);
        inner
            .compaction
            .live_estimate
            .store(stats.bytes_copied + above, Relaxed);
        stats.duration = t0.elapsed();
        tracing::info!(
            begin = stats.begin_after,
            scanned = stats.records_scanned,
            copied = stats.records_copied,
            dropped = stats.records_dropped,
            evicted = stats.records_evicted,
            ms = stats.duration.as_millis() as u64,
            "log compaction done"
        );
        Ok(stats)
    }
}

impl Inner {
    /// Whether the background trigger fires: the log exceeds both the byte threshold and
    /// `compaction_factor` times its size after the last compaction.
    fn compaction_due(&self) -> bool {
        let size = self.log.tail() - self.log.begin();
        let live = self.compaction.live_estimate.load(Relaxed);
        size >= self.cfg.compaction_min_bytes
            && size as f64 >= self.cfg.compaction_factor * live as f64
            && self.log.m.flushed_until.load(SeqCst) > self.log.begin()
    }
}

/// Starts the background compaction thread (holds only a weak reference to the store).
pub(crate) fn start_background(store: &Store) -> Result<(), StoreError> {
    spawn_periodic(
        store,
        "kvd-log-compact",
        store.inner.cfg.compaction_interval,
        |inner| {
            if inner.compaction_due() {
                let store = Store { inner };
                if let Err(e) = store.compact(u64::MAX) {
                    tracing::error!(error = %e, "background log compaction failed");
                }
            }
        },
    )
}

/// Starts a store-owned background thread that runs `work` every `interval` (holding only
/// a weak reference to the store between rounds) until the store shuts down; its handle
/// goes where `Inner`'s drop joins it.
pub(crate) fn spawn_periodic(
    store: &Store,
    name: &str,
    interval: Duration,
    work: impl Fn(Arc<Inner>) + Send + 'static,
) -> Result<(), StoreError> {
    let weak: Weak<Inner> = Arc::downgrade(&store.inner);
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            std::thread::park_timeout(interval);
            let Some(inner) = weak.upgrade() else { return };
            if inner.log.shutdown.load(Acquire) {
                return;
            }
            work(inner);
        })?;
    *store
        .inner
        .compaction
        .thread
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(h);
    Ok(())
}
