//! `Store` (shared handle), `Session` (per task) and `Pinned` (a session under one epoch pin).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_epoch::Guard;

use crate::address::{Geometry, ADDRESS_BITS, INVALID_ADDRESS};
use crate::checkpoint::{self, CheckpointInfo, Durable, Meta, RecoveryInfo};
use crate::compaction::CompactionState;
use crate::epoch::EpochHandle;
use crate::index::{BucketLocks, Index};
use crate::log::{Log, LogStart};
use crate::record::{prev_of, INVALID};
use crate::segment::Segments;
use crate::StoreError;

/// Store configuration. Build with [`StoreConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the segment and checkpoint files (created if missing). Recovered if it
    /// holds a checkpoint; otherwise old segment files are deleted.
    pub dir: PathBuf,
    /// Bytes of memory for the in-memory log (frames = budget >> page_bits, at least 2).
    pub memory_budget: u64,
    /// log2 of the page size (default 22 = 4 MiB; 12..=26). Also the maximum record size.
    /// (The tail word keeps a 32-bit page offset that concurrent allocations may push past the
    /// page end, hence the 64 MiB cap.)
    pub page_bits: u32,
    /// Initial number of hash-index buckets (rounded by the index).
    pub index_buckets: usize,
    /// Fraction of the in-memory frames that form the mutable region (default 0.9).
    pub mutable_fraction: f64,
    /// log2 of the segment file size (default 30 = 1 GiB; at least `page_bits`). Compaction
    /// reclaims disk space by deleting whole segments. A recovered store keeps the page and
    /// segment size of its checkpoint (with a warning if these fields differ).
    pub segment_bits: u32,
    /// Run compaction on a background thread owned by the store (default `false`).
    pub compaction_enabled: bool,
    /// Background compaction runs when the log (`tail - begin`) exceeds this many bytes
    /// (default 1 GiB) ...
    pub compaction_min_bytes: u64,
    /// ... and `compaction_factor` times the live-data estimate of the previous compaction
    /// (bytes it copied plus the log above its range; default 2.0).
    pub compaction_factor: f64,
    /// How often the background compaction thread checks its trigger (default 1 s).
    pub compaction_interval: std::time::Duration,
    /// Compaction keeps expired records (copies them like live ones) instead of dropping
    /// them (default `false`). A caller that keeps its own exact key counts and deletes
    /// expired keys itself (kvd's expiry) sets this, so no key disappears behind its back.
    pub compaction_keeps_expired: bool,
    /// Two-tier store (default `false`): a cold tier on disk (cold log + on-disk cold
    /// index, `cold.rs`) below the hot log, so that memory holds the working set only.
    /// Records that fall out of the hot log's last `tier_hot_bytes` move to the cold tier;
    /// reads and updates of a key absent from the hot tier look it up there. A directory
    /// checkpointed in two-tier mode must be reopened in two-tier mode.
    pub tiered: bool,
    /// Two-tier: migrate when the hot log (`tail - begin`) exceeds this many bytes
    /// (0 = the memory budget).
    pub tier_hot_bytes: u64,
    /// Two-tier: log2 of the cold index's slot count (8 bytes each, on disk; default 24,
    /// at most 28: recovery builds the index in memory once).
    /// Aim for about one slot per cold key: a read walks its slot's chain on disk.
    pub cold_index_bits: u32,
    /// Two-tier: copy one in this many cold read hits back to the hot tier (0 = never;
    /// default 4), so often-read cold keys become hot.
    pub cold_promote_every: u32,
    /// Two-tier: compact the cold log when it exceeds this many bytes (default 64 MiB) and
    /// `compaction_factor` times its live-data estimate.
    pub cold_compaction_min_bytes: u64,
    /// Two-tier: how often the migration thread checks the hot log (default 5 ms).
    pub tier_interval: std::time::Duration,
    /// The index doubles on a background thread once it has this many buckets (default
    /// 2^16); a smaller one doubles on the writing thread. Doubling walks every in-memory
    /// record chain (FASTER's split), tens of milliseconds per million keys, which must not
    /// stall the thread that happened to cross the load limit.
    pub index_grow_background_from: usize,
    /// Test hook: name of a checkpoint step (`CHECKPOINT_CRASH_POINTS`) at which the process
    /// aborts.
    #[doc(hidden)]
    pub crash_at: Option<String>,
}

impl StoreConfig {
    /// Defaults: 256 MiB budget, 4 MiB pages, 64 Ki buckets, 0.9 mutable, 1 GiB segments.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        StoreConfig {
            dir: dir.as_ref().to_path_buf(),
            memory_budget: 256 << 20,
            page_bits: 22,
            index_buckets: 1 << 16,
            index_grow_background_from: 1 << 16,
            mutable_fraction: 0.9,
            segment_bits: 30,
            compaction_enabled: false,
            compaction_min_bytes: 1 << 30,
            compaction_factor: 2.0,
            compaction_interval: std::time::Duration::from_secs(1),
            compaction_keeps_expired: false,
            tiered: false,
            tier_hot_bytes: 0,
            cold_index_bits: 24,
            cold_promote_every: 4,
            cold_compaction_min_bytes: 64 << 20,
            tier_interval: std::time::Duration::from_millis(5),
            crash_at: None,
        }
    }
}

/// Point-in-time statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Lowest valid log address.
    pub begin: u64,
    /// Lowest in-memory address.
    pub head: u64,
    /// Below this, in-memory records are immutable.
    pub safe_read_only: u64,
    /// Start of the mutable region.
    pub read_only: u64,
    /// Next address to allocate.
    pub tail: u64,
    /// Everything below is written to segment files.
    pub flushed_until: u64,
    /// Bytes of log frames (fixed at open).
    pub log_memory_bytes: u64,
    /// Bytes of the hash index.
    pub index_memory_bytes: u64,
    /// Bytes in segment files.
    pub disk_bytes: u64,
    /// Records appended at the tail (new records, copies, tombstones, orphans included).
    pub records_appended: u64,
    /// Pages written to disk.
    pub pages_flushed: u64,
    /// Page turns that had to wait for a free frame.
    pub page_turn_waits: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Number of in-memory page frames.
    pub frames: u64,
    /// Main buckets of the hash index.
    pub index_buckets: u64,
}

pub(crate) struct Inner {
    pub log: Arc<Log>,
    pub index: Arc<Index>,
    /// Set while a thread grows the index (others skip growing meanwhile).
    growing: Arc<std::sync::atomic::AtomicBool>,
    flusher: Option<JoinHandle<()>>,
    pub dir: PathBuf,
    pub cfg: StoreConfig,
    pub durable: Durable,
    pub compaction: CompactionState,
    /// Scan cursors handed out (see `cursors.rs`).
    pub cursors: crate::cursors::IssuedCursors,
    /// Reads copy records below `read_only` to the tail (cache mode's second chance).
    pub copy_reads: std::sync::atomic::AtomicBool,
    /// The cold tier of a two-tier store.
    pub cold: Option<crate::cold::Cold>,
    /// Two-tier: bumped before each sweep that frees hot index entries (`tier.rs`) and
    /// before a clear.
    pub sweeps: std::sync::atomic::AtomicU64,
    /// Two-tier: held by a checkpoint from before it reads `begin` until its barrier, and by
    /// migration around moving `begin` and sweeping the index: a sweep must not free an
    /// entry whose chain a checkpoint still covers while a new entry of the same group is
    /// installed below the checkpoint's tail (recovery rebuilds one chain per group).
    pub tier_cut: std::sync::Mutex<()>,
    /// The exclusive lock on `<dir>/LOCK`, released when the store (and its threads) are
    /// gone: a background thread may still finish a round after the last handle dropped,
    /// and a new `open` of the directory must not run beside it.
    _dir_lock: std::fs::File,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("log", &self.log.geo)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.log.shutdown.store(true, SeqCst);
        if let Some(h) = self
            .compaction
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.thread().unpark();
            // The compaction thread may itself drop the last handle: never join oneself.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        if let Some(h) = self.flusher.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Inner {
    /// Counts an appended record and, every 256 appends, grows the index if it is loaded
    /// enough (`should_grow` takes a mutex, so it is not asked on every write). The extra
    /// bound (fewer buckets than a quarter of the records ever written) keeps a miscounting
    /// index from growing without end.
    pub fn appended(&self, guard: &Guard) {
        let n = self.log.records_appended.fetch_add(1, Relaxed) + 1;
        let due = n.is_multiple_of(256) && (self.index.buckets() as u64) * 4 < n;
        if !due || !self.index.should_grow() || self.growing.swap(true, SeqCst) {
            return;
        }
        if self.index.buckets() >= self.cfg.index_grow_background_from {
            let (index, log, growing) =
                (self.index.clone(), self.log.clone(), self.growing.clone());
            let spawned = std::thread::Builder::new()
                .name("kvd-index-grow".into())
                .spawn(move || {
                    let handle = log.collector.register();
                    let guard = handle.pin();
                    if index.should_grow() && !log.shutdown.load(SeqCst) {
                        grow(&index, &log, &guard);
                    }
                    growing.store(false, SeqCst);
                });
            if spawned.is_ok() {
                return;
            }
        }
        // A small index (or no thread to be had): grow here.
        if self.index.should_grow() {
            grow(&self.index, &self.log, guard);
        }
        self.growing.store(false, SeqCst);
    }
}

/// Doubles the index, splitting each chain between the two halves by walking its in-memory
/// records (FASTER's split); a chain part on disk stays shared. Writers and readers go on
/// meanwhile (an operation on a bucket group being migrated waits for that group only).
fn grow(index: &Index, log: &Log, guard: &Guard) {
    index.grow_with(guard, |addr, split_bit| {
        let (mut low, mut high) = (None, None);
        let mut a = addr;
        while a != INVALID_ADDRESS && (low.is_none() || high.is_none()) {
            let Some(r) = log.record(a, guard) else {
                // On disk: unknown from here on, keep the rest shared.
                return (low.unwrap_or(a), high.unwrap_or(a));
            };
            let h = r.header();
            if h & INVALID == 0 {
                if Store::hash(r.key()) & split_bit == 0 {
                    low.get_or_insert(a);
                } else {
                    high.get_or_insert(a);
                }
            }
            a = prev_of(h);
        }
        (
            low.unwrap_or(INVALID_ADDRESS),
            high.unwrap_or(INVALID_ADDRESS),
        )
    });
}

/// Takes the exclusive lock of a store directory (`<dir>/LOCK`), waiting up to 30 s for a
/// store of this process that is shutting down; another process's store keeps it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    let t0 = std::time::Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if t0.elapsed().as_secs() < 30 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Config(format!(
                    "{} is in use by another store (LOCK is held)",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// The store: a cheap-to-clone handle (`Send + Sync`). The flush thread stops when the last
/// handle and session are dropped.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl Store {
    /// Opens a store in `cfg.dir` (created if missing). If the directory holds a checkpoint,
    /// the store is recovered to exactly the newest readable one (see [`Store::recovered`];
    /// an unreadable newer checkpoint is renamed `*.corrupt` with a warning and the previous
    /// one is used); log bytes past the checkpoint's tail are discarded. Otherwise old segment
    /// files are deleted and the store starts empty.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        let mut cfg = cfg;
        std::fs::create_dir_all(&cfg.dir)?;
        let dir_lock = lock_dir(&cfg.dir)?;
        // Newest readable checkpoint (and the previous readable one, kept as a fallback).
        let mut found: Vec<(Meta, PathBuf)> = Vec::new();
        let mut corrupt = 0u32;
        let mut max_version = checkpoint::max_corrupt_version(&cfg.dir);
        for (version, path) in checkpoint::list(&cfg.dir)? {
            max_version = max_version.max(version);
            if found.len() == 2 {
                // Older than the two we keep: left over from a crash before cleanup.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match checkpoint::load(&path) {
                Ok(m) if m.version == version => found.push((m, path)),
                Ok(_) | Err(_) if !found.is_empty() => {
                    // An older checkpoint is unreadable but a newer one is fine: drop it.
                    let _ = std::fs::remove_file(&path);
                }
                r => {
                    let why = r.err().unwrap_or_else(|| "version mismatch".into());
                    tracing::warn!(
                        path = %path.display(),
                        reason = %why,
                        "checkpoint metadata unreadable; falling back to the previous checkpoint"
                    );
                    let mut bad = path.clone().into_os_string();
                    bad.push(".corrupt");
                    std::fs::rename(&path, &bad)?;
                    corrupt += 1;
                }
            }
        }
        if found.is_empty() && corrupt > 0 {
            return Err(StoreError::Config(format!(
                "{} holds checkpoints but none is readable (renamed *.corrupt); move the \
                 directory away to start empty",
                cfg.dir.display()
            )));
        }
        let newest = found.first().map(|(m, _)| m.clone());
        if newest.as_ref().is_some_and(|m| m.cold.is_some()) && !cfg.tiered {
            return Err(StoreError::Config(format!(
                "{} holds a two-tier checkpoint: open it with tiered mode on",
                cfg.dir.display()
            )));
        }
        if let Some(m) = &newest {
            if m.page_bits != cfg.page_bits || m.segment_bits != cfg.segment_bits {
                tracing::warn!(
                    page_bits = m.page_bits,
                    segment_bits = m.segment_bits,
                    "recovering with the checkpoint's page/segment size, not the configured one"
                );
                cfg.page_bits = m.page_bits;
                cfg.segment_bits = m.segment_bits;
            }
        }
        if !(12..=26).contains(&cfg.page_bits) {
            return Err(StoreError::Config(format!(
                "page_bits {} not in 12..=26",
                cfg.page_bits
            )));
        }
        if cfg.segment_bits < cfg.page_bits || cfg.segment_bits >= ADDRESS_BITS {
            return Err(StoreError::Config(format!(
                "segment_bits {} must be in page_bits..48",
                cfg.segment_bits
            )));
        }
        if !(cfg.mutable_fraction > 0.0 && cfg.mutable_fraction <= 1.0) {
            return Err(StoreError::Config(format!(
                "mutable_fraction {} not in (0, 1]",
                cfg.mutable_fraction
            )));
        }
        let page_size = 1u64 << cfg.page_bits;
        let num_frames = cfg.memory_budget >> cfg.page_bits;
        if num_frames < 2 {
            return Err(StoreError::Config(format!(
                "memory_budget {} holds fewer than 2 pages of {} bytes",
                cfg.memory_budget, page_size
            )));
        }
        let mutable_pages =
            ((num_frames as f64 * cfg.mutable_fraction) as u64).clamp(1, (num_frames - 2).max(1));
        let geo = Geometry {
            page_bits: cfg.page_bits,
            page_size,
            num_frames,
            segment_bits: cfg.segment_bits,
        };
        let t0 = std::time::Instant::now();
        let (segments, start) = match &newest {
            None => (
                Segments::open_fresh(&cfg.dir, "log.", geo)?,
                LogStart::FRESH,
            ),
            Some(m) => {
                let segs = Segments::open_keep(&cfg.dir, "log.", geo);
                segs.truncate_from(m.tail)?;
                (
                    segs,
                    LogStart {
                        begin: m.begin,
                        tail: m.tail,
                        cleared_at: m.cleared_at,
                    },
                )
            }
        };
        let log = Arc::new(Log::new(geo, mutable_pages, segments, start)?);
        let buckets = newest
            .as_ref()
            .map_or(0, |m| m.index_buckets as usize)
            .max(cfg.index_buckets);
        let index = Arc::new(Index::new(buckets, log.collector.clone()));
        let mut durable = Durable {
            crash_at: cfg.crash_at.clone(),
            ..Durable::default()
        };
        {
            let st = durable.state.get_mut().unwrap_or_else(|e| e.into_inner());
            st.next_version = max_version + 1;
            if let Some(m) = &newest {
                let (records, bytes) = crate::recovery::recover(&log, &index, m)?;
                log.records_appended.store(records, Relaxed);
                let info = RecoveryInfo {
                    version: m.version,
                    records,
                    bytes,
                    duration: t0.elapsed(),
                    token: m.token.clone(),
                    begin_address: m.begin,
                    tail_address: m.tail,
                    skipped_corrupt: corrupt,
                };
                tracing::info!(
                    version = m.version,
                    records,
                    ms = info.duration.as_millis() as u64,
                    records_per_sec =
                        (records as f64 / info.duration.as_secs_f64().max(1e-9)) as u64,
                    "recovered hybrid log from checkpoint"
                );
                st.last = Some(CheckpointInfo {
                    version: m.version,
                    tail_address: m.tail,
                    begin_address: m.begin,
                    bytes: m.tail - m.begin,
                    duration: std::time::Duration::ZERO,
                    token: m.token.clone(),
                });
                for (m, path) in found.iter().rev() {
                    st.kept.push(checkpoint::Kept {
                        version: m.version,
                        begin: m.begin,
                        cold_begin: m.cold.map_or(u64::MAX, |c| c.begin),
                        path: path.clone(),
                    });
                }
                durable.recovered = Some(info);
            }
        }
        let cold = if cfg.tiered {
            if !(10..=28).contains(&cfg.cold_index_bits) {
                return Err(StoreError::Config(format!(
                    "cold_index_bits {} not in 10..=28",
                    cfg.cold_index_bits
                )));
            }
            let cgeo = Geometry {
                num_frames: 1,
                ..geo
            };
            let mark = newest.as_ref().and_then(|m| m.cold);
            // Cold chains follow the slots of the bit count they were written with.
            let bits = match mark {
                Some(m) if m.index_bits != cfg.cold_index_bits => {
                    tracing::warn!(
                        configured = cfg.cold_index_bits,
                        recovered = m.index_bits,
                        "keeping the cold index size of the checkpoint"
                    );
                    m.index_bits
                }
                _ => cfg.cold_index_bits,
            };
            Some(crate::cold::Cold::open(&cfg.dir, cgeo, bits, mark)?)
        } else {
            None
        };
        let flush_log = log.clone();
        let flusher = std::thread::Builder::new()
            .name("kvd-log-flush".into())
            .spawn(move || crate::flush::run(flush_log))?;
        let _ = log.flusher.set(flusher.thread().clone());
        let store = Store {
            inner: Arc::new(Inner {
                log,
                index,
                growing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                flusher: Some(flusher),
                dir: cfg.dir.clone(),
                cfg: cfg.clone(),
                durable,
                compaction: CompactionState::default(),
                cursors: crate::cursors::IssuedCursors::new(),
                copy_reads: std::sync::atomic::AtomicBool::new(false),
                cold,
                sweeps: std::sync::atomic::AtomicU64::new(0),
                tier_cut: std::sync::Mutex::new(()),
                _dir_lock: dir_lock,
            }),
        };
        {
            let st = store
                .inner
                .durable
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            store.inner.reclaim_segments(&st)?;
        }
        if cfg.tiered {
            crate::tier::start_background(&store)?;
        } else if cfg.compaction_enabled {
            crate::compaction::start_background(&store)?;
        }
        Ok(store)
    }

    /// A new session (one per thread or task).
    pub fn session(&self) -> Session {
        Session {
            handle: EpochHandle::new(self.inner.log.collector.register()),
            inner: self.inner.clone(),
            scratch: Scratch::default(),
        }
    }

    /// The key hash used by the index (and by [`Store::lock_keys`]).
    pub fn hash(key: &[u8]) -> u64 {
        // fxhash is fast but weak in its low bits (the index's bucket bits): finish with the
        // murmur3 64-bit mixer.
        let mut h = fxhash::hash64(key);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// Takes the index bucket latches of `keys` (in bucket order, deduplicated) for a
    /// multi-key atomic operation. Single-key operations do not take these latches; callers
    /// that need isolation take them around all their operations on these keys.
    ///
    /// The latches survive index growth (the index moves them to the new table).
    pub fn lock_keys(&self, keys: &[&[u8]], exclusive: bool) -> KeyLocks<'_> {
        let hashes: Vec<u64> = keys.iter().map(|k| Store::hash(k)).collect();
        KeyLocks {
            _locks: self.inner.index.lock(&hashes, exclusive),
        }
    }

    /// Current statistics.
    /// Second chance for cache mode: while on, a read that finds its record below
    /// `read_only` (the read-only part of memory, or on disk) copies it to the tail if it
    /// is still the key's latest, so records that are read stay out of the oldest part of
    /// the log that eviction passes ([`Store::evict`]) take.
    pub fn set_copy_reads_to_tail(&self, on: bool) {
        self.inner
            .copy_reads
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Store statistics.
    pub fn stats(&self) -> StoreStats {
        let log = &self.inner.log;
        StoreStats {
            begin: log.begin(),
            head: log.head(),
            safe_read_only: log.safe_read_only(),
            read_only: log.read_only(),
            tail: log.tail(),
            flushed_until: log.m.flushed_until.load(SeqCst),
            log_memory_bytes: log.frames.bytes(),
            index_memory_bytes: self.inner.index.memory_bytes(),
            disk_bytes: log.segments.disk_bytes(),
            records_appended: log.records_appended.load(Relaxed),
            pages_flushed: log.pages_flushed.load(Relaxed),
            page_turn_waits: log.page_turn_waits.load(Relaxed),
            page_size: log.geo.page_size,
            frames: log.geo.num_frames,
            index_buckets: self.inner.index.buckets() as u64,
        }
    }
}

/// Bucket latches held for a multi-key operation; released on drop.
pub struct KeyLocks<'a> {
    _locks: BucketLocks<'a>,
}

impl std::fmt::Debug for KeyLocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLocks")
    }
}

/// Per-session scratch buffers (reused to avoid allocation per operation).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub out: Vec<u8>,
    pub io: Vec<u8>,
    pub io2: Vec<u8>,
}

/// A session: the per-thread/per-task handle for operations. `Send`, not `Sync`.
#[derive(Debug)]
pub struct Session {
    handle: EpochHandle,
    inner: Arc<Inner>,
    scratch: Scratch,
}

/// A session pinned on the store's epoch for a batch of operations. Not `Send`: drop it before
/// any `.await`. Long batches should call [`Pinned::refresh`] now and then.
pub struct Pinned<'s> {
    pub(crate) inner: &'s Inner,
    pub(crate) guard: Guard,
    pub(crate) scratch: &'s mut Scratch,
}

impl std::fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pinned")
    }
}

#[cfg(debug_assertions)]
thread_local! {
    /// Sessions pinned on this thread (debug builds): a second one would block the epoch that
    /// the first one's waits need.
    pub(crate) static PINNED_ON_THREAD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        PINNED_ON_THREAD.with(|c| c.set(c.get() - 1));
    }
}

impl Pinned<'_> {
    /// Removes every key (FLUSHALL): empties the index; the records stay in the log as
    /// garbage for compaction. Concurrent operations order before or after it (across a
    /// checkpoint and recovery, a write that allocated its record before the clear and
    /// installed it after is lost: recovery ignores records below the tail at the clear).
    pub fn clear_all(&mut self) {
        // Two-tier: under the cold writer, so no migration of an older record lands after
        // the clear (migration checks and appends under it).
        // The writer is taken unpinned (its holders may run a whole migration window).
        let cold = match self.inner.cold.as_ref() {
            Some(c) => Some((
                c,
                self.guard
                    .repin_after(|| c.writer.lock().unwrap_or_else(|e| e.into_inner())),
            )),
            None => None,
        };
        if cold.is_some() {
            // A cold read or RMW that read its entry before the clear must not commit on
            // the new, empty index (see `append_checked`).
            self.inner.sweeps.fetch_add(1, SeqCst);
        }
        self.inner.index.clear(&self.guard);
        // Recovery ignores records below this (they were cleared). Read after the clear:
        // records allocated later are installed in the new, empty index.
        let log = &self.inner.log;
        log.m.cleared_at.fetch_max(log.tail(), SeqCst);
        if let Some((c, mut w)) = cold {
            c.clear(&mut w);
        }
    }

    /// Lets the epoch advance (briefly unpins and re-pins).
    pub fn refresh(&mut self) {
        self.guard.repin();
    }
}

impl Session {
    /// Pins the epoch for a batch of operations. Operations on the session itself pin
    /// themselves; use this to pay for one pin per batch.
    pub fn pin(&mut self) -> Pinned<'_> {
        #[cfg(debug_assertions)]
        PINNED_ON_THREAD.with(|c| c.set(c.get() + 1));
        Pinned {
            inner: &self.inner,
            guard: self.handle.pin(),
            scratch: &mut self.scratch,
        }
    }

    /// The store this session belongs to.
    pub fn store(&self) -> Store {
        Store {
            inner: self.inner.clone(),
        }
    }

    /// Reads a copy of the value and meta of `key`.
    pub fn read(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, crate::RecordMeta)>, StoreError> {
        self.pin().read(key)
    }

    /// Runs `f` over the value and meta of `key`, without copying for in-memory records (under
    /// the record's shared lock: `f` must be quick and must not call the store).
    pub fn read_with<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&[u8], crate::RecordMeta) -> R,
    ) -> Result<Option<R>, StoreError> {
        self.pin().read_with(key, f)
    }

    /// Inserts or replaces `key`.
    pub fn upsert(
        &mut self,
        key: &[u8],
        value: &[u8],
        meta: crate::RecordMeta,
    ) -> Result<(), StoreError> {
        self.pin().upsert(key, value, meta)
    }

    /// Deletes `key` (no-op if absent).
    pub fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.pin().delete(key)
    }

    /// Deletes `key`; returns whether a live record existed (for DEL's count).
    pub fn delete_existing(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.pin().delete_existing(key)
    }

    /// Read-modify-write through `ops`.
    pub fn rmw<F: crate::RmwOps>(
        &mut self,
        key: &[u8],
        ops: &mut F,
    ) -> Result<crate::RmwOutcome, StoreError> {
        self.pin().rmw(key, ops)
    }

    /// Removes every key; see [`Pinned::clear_all`].
    pub fn clear_all(&mut self) {
        self.pin().clear_all()
    }

    /// Cursor scan of live keys; see [`Pinned::scan`].
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        f: impl FnMut(&[u8], &[u8], crate::RecordMeta),
    ) -> Result<u64, StoreError> {
        self.pin().scan(cursor, count, f)
    }
}
