//! FASTER-style hybrid log and the key-value [`Store`] that combines it with `hash-index`.
//!
//! # What it is
//! The storage engine of kvd: variable-length byte keys and values with a small per-record
//! [`RecordMeta`] (expiry, type tag), operated through a per-thread/task [`Session`]:
//! [`read`](Session::read), [`upsert`](Session::upsert), [`rmw`](Session::rmw) (read-modify-
//! write through [`RmwOps`] callbacks: initial / in-place / copy update, so INCR, APPEND,
//! SETRANGE, SET NX/XX/GET are single engine calls), [`delete`](Session::delete) and a
//! cursor [`scan`](Session::scan). Memory is bounded by [`StoreConfig::memory_budget`]; older
//! data lives in segment files and is read back with `pread`. [`Store::checkpoint`] makes the
//! store durable, [`Store::open`] recovers it, [`Store::compact`] reclaims log space.
//!
//! With [`StoreConfig::tiered`] the store has two tiers (F2-style, decision 008): records
//! that fall out of the hot log's last `tier_hot_bytes` move to a cold log on disk whose
//! index is an on-disk slot file (`cold.rs`, `tier.rs`); reads, RMWs and deletes of keys
//! absent from the hot tier go to the cold tier, [`Store::migrate`] and
//! [`Store::compact_cold`] run on a background thread, and checkpoints cover both tiers.
//!
//! # What it is not (yet)
//! Expiry is only stored, never enforced on reads (compaction drops expired records). A record
//! must fit in one page, so values are limited to about `2^page_bits` bytes (4 MiB by
//! default, 64 MiB at most: [`StoreError::RecordTooLarge`]). Nothing is fsynced between
//! checkpoints: durability between them is the AOF's job.
//!
//! # Example
//! ```
//! use hybrid_log::{RecordMeta, Store, StoreConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let mut cfg = StoreConfig::new(dir.path());
//! cfg.memory_budget = 4 << 20;
//! cfg.page_bits = 16;
//! let store = Store::open(cfg).unwrap();
//! let mut s = store.session();
//! s.upsert(b"k", b"v1", RecordMeta::default()).unwrap();
//! assert_eq!(s.read(b"k").unwrap().unwrap().0, b"v1");
//! {
//!     let mut p = s.pin(); // one epoch pin for a batch
//!     p.upsert(b"n", b"1", RecordMeta { expire_at_ms: 0, value_type: 0 }).unwrap();
//!     assert!(p.read(b"n").unwrap().is_some());
//! }
//! s.delete(b"k").unwrap();
//! assert!(s.read(b"k").unwrap().is_none());
//! ```
//!
//! # Log, markers and record layout
//! One logical address space of 48-bit addresses `page << page_bits | offset`, with markers
//! `begin <= head <= safe_read_only <= read_only <= tail` (all monotonic):
//! `[read_only, tail)` is mutable in memory (updates in place), `[head, read_only)` is
//! read-only in memory (updates copy to the tail), `[begin, head)` is only on disk. In-memory
//! pages live in a circular buffer of `memory_budget >> page_bits` frames (one anonymous
//! mapping, advised `MADV_HUGEPAGE` on Linux). The tail is one atomic word (page, offset)
//! advanced with `fetch_add`; the thread whose allocation crosses the page end marks the rest
//! of the page unused, opens the next page (waiting for its frame if needed) and republishes
//! the tail. Record layout: see
//! [`record`] and `docs/decisions/001-record-layout.md`.
//!
//! # Epochs, flushing and reclamation
//! Each operation runs pinned on the store's own `crossbeam_epoch::Collector`.
//! * Opening page `p` moves `read_only` so that `mutable_fraction` of the frames stay mutable,
//!   and defers `safe_read_only = read_only` through the epoch: once it runs, no thread that
//!   saw the old `read_only` is still updating in place below it.
//! * The flush thread `pwrite`s every page below `safe_read_only` to its segment file, then
//!   moves `head` over flushed pages (up to the target that keeps the next frame free) and
//!   defers `evicted_until = head` through the epoch. A frame is zeroed and reused only when
//!   `evicted_until` covers its old page: every thread that could have seen the page in memory
//!   has unpinned by then.
//! * Waiters (page turn, a sealed record) re-pin in their loops so they never block the epoch
//!   they wait for. Disk reads unpin (`repin_after`) and re-validate afterwards.
//! * Concurrent in-place updates and readers synchronise on a lock in the record header
//!   (readers take it only at or above `safe_read_only`). A copy-update of a record that may
//!   still be updated in place (at or above `safe_read_only`) *seals* it under that lock first.
//!   A new record commits with the compare-and-swap of its index entry. On failure a blind
//!   upsert just re-links its record to the new chain head and retries; an RMW/delete re-checks
//!   the chain for a newer record of the key: none means re-link and retry, one means the
//!   orphan is marked invalid (before the thread can unpin, so before its page can be
//!   flushed) and the operation restarts. Callbacks may therefore run more than once; only the
//!   last call's result is applied.
//! * Hash chains are ordered by installation, not by address (a slow thread can link a record
//!   to a higher address), so walks may go memory -> disk -> memory; the disk walk hands back
//!   any address not yet flushed.
//! * Index growth: every 256 appends, if the index asks for it, one thread doubles it with
//!   FASTER's chain split (`HashIndex::grow_with`), walking in-memory records to find each
//!   half's newest record; a chain that reaches disk stays shared by both halves. From
//!   `StoreConfig::index_grow_background_from` buckets on, that thread is a background
//!   thread, not the writer that crossed the load limit.
//!
//! # Sessions and pinning
//! [`Session`] is `Send` (keep one per tokio task or thread) but not `Sync`. Each operation on
//! a `Session` pins and unpins; [`Session::pin`] returns a [`Pinned`] (not `Send`, so it cannot
//! be held across an `.await` in a spawned task) that runs a batch under one pin. Rules:
//! * Call [`Pinned::refresh`] now and then in long batches: a pinned session holds back page
//!   flushing and frame reuse for every thread.
//! * At most one session pinned per thread at a time: a write that must wait for a free frame
//!   re-pins its own session, but another pinned session on the same thread would block the
//!   epoch forever (debug builds assert this).
//! * Operations are synchronous and may block briefly: a page turn can wait for a page flush,
//!   and records below `head` are read with `pread`. From async code, keep batches short or
//!   run cold reads on a blocking thread.
//! * Single-key operations are atomic on their own; multi-key atomicity (MSET, MULTI/EXEC,
//!   scripts) comes from [`Store::lock_keys`] taken around the operations by the caller.
//!
//! # Checkpoints and recovery
//! [`Store::checkpoint`] takes a *fold-over* checkpoint (`checkpoint.rs`): read `begin`, then
//! the tail `T`; shift `read_only` to `T` and wait for `safe_read_only >= T` (every thread
//! that could still write below `T` has unpinned); wait for the flush of the pages below `T`,
//! write the partial tail page, fsync the segments; then publish a small metadata file
//! (`begin`, `T`, geometry, index size, the caller's opaque token, a checksum) by writing
//! `checkpoint.tmp`, fsync, rename to `checkpoint.<version>`, fsync the directory. The
//! newest two checkpoints are kept; segment files below the lowest `begin` still needed are
//! deleted. Format and protocol: `docs/decisions/002-checkpoint-format.md`.
//! * What is persisted: the log `[begin, T)` and the metadata. The index is not saved.
//! * Cut: every operation completed before the call is in; operations concurrent with it may
//!   or may not be (each wholly or not at all). Callers that need an exact cut (AOF offset
//!   with non-idempotent replay) hold writers off and use [`Store::checkpoint_with`], whose
//!   callback runs right after the barrier: read the offset there and release the writers
//!   (they wait one epoch, not the I/O).
//! * [`Store::open`] takes an exclusive lock on `<dir>/LOCK` (held until the store and its
//!   threads are gone; an `open` in the same process waits up to 30 s for a closing one).
//! * [`Store::open`] recovers the newest readable checkpoint (an unreadable one is renamed
//!   `*.corrupt` and the previous one used, with a warning); bytes past its `T` are truncated
//!   or deleted; the index is rebuilt by scanning `[max(begin, cleared_at), T)` sequentially
//!   (`recovery.rs`; highest address per hash-chain group wins, invalid records skipped,
//!   tombstones installed); the partial tail page is loaded back into its frame and the log
//!   continues at `T`. [`Store::recovered`] reports what was recovered. Without a checkpoint
//!   the old segments are deleted and the store starts empty.
//! * This relies on two invariants: (1) a record is installed only above a *lower* address
//!   (an upsert/RMW whose new chain head has a higher address invalidates its record and
//!   appends again), so chains are in decreasing address order and address order is
//!   installation order within a chain; (2) the rebuilt index has at least the bucket count
//!   the checkpoint recorded, so rebuilt chain groups are subsets of the original ones.
//! * [`Pinned::clear_all`] records the tail (`cleared_at`) in the next checkpoint; recovery
//!   ignores records below it. A write racing with the clear (allocated before, installed
//!   after) survives in memory but not across recovery.
//!
//! # Compaction
//! [`Store::compact`] (and the optional background thread, [`StoreConfig::compaction_enabled`])
//! reads `[begin, min(until, flushed_until))` sequentially from disk, copies each live record
//! (first of its key's chain, not a tombstone, not expired) to the tail with the RMW commit
//! protocol ("copy to tail if not newer": a concurrent write of the key always wins), then
//! moves `begin` and deletes segment files below the lowest `begin` any kept checkpoint
//! still needs. Tombstones, overwritten, invalid and expired records are dropped; dropping a
//! tombstone is safe because every older record of its key lies below it (invariant 1), so
//! below the new `begin`. Readers that find their chain cut by `begin` retry from the index
//! once (a copy may have been installed) and otherwise report the key absent.
//!
//! # Extending
//! Markers live in `log.rs` (`Log::shift_read_only_to` is the fold-over primitive), page
//! writes in `flush.rs`, file naming in `segment.rs` (`log.NNNNNN`, `segment_bits`), a cursor
//! scan in `scan.rs` and the sequential disk scan of recovery/compaction in `recovery.rs`.
//! Records carry a (still unused) checkpoint-version bit for CPR-style checkpoints and an
//! `invalid` bit that orphans set before their page can be flushed.

#![warn(missing_docs)]
// `unsafe` is allowed only in `page.rs`, `record.rs` and `epoch.rs`.
#![deny(unsafe_code)]

mod address;
mod checkpoint;
mod cold;
mod compaction;
mod cursors;
mod delete;
mod epoch;
mod flush;
mod index;
mod log;
mod page;
mod read;
pub mod record;
mod recovery;
mod rmw;
mod scan;
mod segment;
mod store;
mod tier;
mod upsert;

pub use address::{FIRST_ADDRESS, INVALID_ADDRESS};
#[doc(hidden)]
pub use checkpoint::CHECKPOINT_CRASH_POINTS;
pub use checkpoint::{CheckpointInfo, RecoveryInfo};
pub use compaction::{CompactionStats, Decide, Eviction, OnEvict};
pub use record::{RecordMeta, ValueMut};
pub use store::{KeyLocks, Pinned, Session, Store, StoreConfig, StoreStats};
#[doc(hidden)]
pub use tier::TIER_CRASH_POINTS;
pub use tier::{MigrationStats, TierStats};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a segment file.
    #[error("log I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The record (prefix + key + value) does not fit in one log page.
    #[error("record of {size} bytes exceeds the log page size of {max} bytes")]
    RecordTooLarge {
        /// Record size in bytes.
        size: usize,
        /// Page size.
        max: usize,
    },
    /// The background flush failed earlier; the store accepts no more writes.
    #[error("log flush failed earlier, store is read-only: {0}")]
    FlushFailed(String),
    /// The 48-bit address space is exhausted.
    #[error("log address space exhausted")]
    LogFull,
    /// Invalid configuration.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A scan cursor that is neither 0 nor a cursor this store handed out.
    #[error("invalid scan cursor {0}")]
    InvalidCursor(u64),
    /// A record read from disk does not decode.
    #[error("corrupt record at log address {address:#x}: {reason}")]
    Corrupt {
        /// Log address of the record.
        address: u64,
        /// What was wrong.
        reason: &'static str,
    },
}

/// What [`RmwOps::in_place`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlace {
    /// The value (and possibly meta) was updated in place.
    Done,
    /// Nothing to change (e.g. SET NX on an existing key); the value must be untouched.
    NoChange,
    /// Delete the record (tombstone in place).
    Delete,
    /// The update does not fit in place; the value must be untouched. The store then calls
    /// [`RmwOps::copy_update`].
    NeedCopy,
}

/// What [`RmwOps::copy_update`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAction {
    /// Write `out` (with the updated meta) as the new value.
    Write,
    /// Keep the old record.
    NoChange,
    /// Delete the key (write a tombstone).
    Delete,
}

/// Outcome of [`Session::rmw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RmwOutcome {
    /// No live record existed; `initial` created one.
    Created,
    /// The live record was updated (in place or by copy).
    Updated,
    /// The callbacks asked for no change.
    Unchanged,
    /// The live record was deleted.
    Deleted,
    /// No live record existed and `initial` returned `None`.
    NotFound,
}

/// Callbacks of a read-modify-write. They run inside the store (the in-place one under the
/// record's exclusive lock): they must be quick and must not call the store. They may be
/// called more than once if the operation retries after a conflict; only the result of the
/// last call is applied, so record per-call results (e.g. the old value for GETSET) by
/// overwriting, not accumulating.
pub trait RmwOps {
    /// No live record for the key: return the new value and meta to create it, or `None` to
    /// leave the key absent.
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)>;
    /// Live record in the mutable region: update it in place if it fits (the length may
    /// change within [`ValueMut::capacity`]).
    fn in_place(&mut self, value: &mut ValueMut<'_>, meta: &mut RecordMeta) -> InPlace;
    /// Live record elsewhere (read-only region, disk), or in place was not possible: write the
    /// new value into `out` (cleared) and set `meta` (pre-set to `old_meta`).
    fn copy_update(
        &mut self,
        old: &[u8],
        old_meta: RecordMeta,
        out: &mut Vec<u8>,
        meta: &mut RecordMeta,
    ) -> CopyAction;
}
