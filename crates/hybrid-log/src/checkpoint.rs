//! Fold-over checkpoints: the metadata file format, the publish protocol and
//! [`Store::checkpoint`]. See `docs/decisions/002-checkpoint-format.md`.
//!
//! A checkpoint is "the log below `tail`, on disk and fsynced" plus a small metadata file
//! naming `begin`, `tail`, the geometry and the caller's token. The index is not saved:
//! recovery rebuilds it by scanning `[begin, tail)` (`recovery.rs`).
//!
//! Protocol (one checkpoint at a time, under `Durable::state`):
//! 1. read `begin`, then the `tail` T; shift `read_only` to T and wait (re-pinning) until
//!    `safe_read_only >= T`: every thread that could still update a record below T in place,
//!    or had allocated below T, has unpinned, so the bytes below T are final;
//! 2. wait until the flush thread wrote every whole page below T, write the partial page
//!    `[page_start(T), T)` ourselves, fsync the segment files;
//! 3. write `checkpoint.tmp`, fsync it, rename it to `checkpoint.<version>` (the publish
//!    point), fsync the directory;
//! 4. delete checkpoints older than the previous one, and segment files entirely below the
//!    lowest `begin` still needed (kept checkpoints and the live log).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::epoch::wait_until;
use crate::segment::sync_dir;
use crate::store::Inner;
use crate::{Store, StoreError};

const MAGIC: &[u8; 8] = b"KVDCKPT1";
/// Format 2 adds the cold tier's mark (two-tier stores); format 1 files still load.
const FORMAT: u32 = 2;
const TMP_NAME: &str = "checkpoint.tmp";
const PREFIX: &str = "checkpoint.";
/// Checkpoints kept on disk: the newest and the one before it (fallback if the newest's
/// metadata turns out unreadable).
const KEPT: usize = 2;

/// Names of the steps at which the test-only `StoreConfig::crash_at` hook aborts the process
/// during a checkpoint, in protocol order. `renamed` is the first step after the publish
/// point.
#[doc(hidden)]
pub const CHECKPOINT_CRASH_POINTS: &[&str] = &[
    "start",
    "folded",
    "flushed",
    "synced",
    "meta-partial",
    "meta-written",
    "meta-synced",
    "renamed",
    "dir-synced",
    "cleaned",
];

/// What a completed checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Monotonically increasing checkpoint version (1 for the first checkpoint of a directory).
    pub version: u64,
    /// The log below this address is in the checkpoint.
    pub tail_address: u64,
    /// The log from this address is in the checkpoint.
    pub begin_address: u64,
    /// On-disk size of the checkpoint: log bytes `[begin, tail)` plus the metadata file.
    pub bytes: u64,
    /// Wall time the checkpoint took (for recovery: not set, zero).
    pub duration: Duration,
    /// The caller's token (e.g. the AOF offset the checkpoint covers).
    pub token: Vec<u8>,
}

/// What [`Store::open`] recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Version of the checkpoint recovered.
    pub version: u64,
    /// Valid records scanned (and indexed) from `[begin, tail)`.
    pub records: u64,
    /// Log bytes scanned.
    pub bytes: u64,
    /// Wall time of the recovery.
    pub duration: Duration,
    /// The token passed to [`Store::checkpoint`].
    pub token: Vec<u8>,
    /// The checkpoint's begin address.
    pub begin_address: u64,
    /// The checkpoint's tail address (the recovered log continues from here).
    pub tail_address: u64,
    /// Newer checkpoints that were unreadable and skipped (renamed `*.corrupt`).
    pub skipped_corrupt: u32,
}

/// The metadata file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub version: u64,
    pub begin: u64,
    pub tail: u64,
    pub cleared_at: u64,
    pub page_bits: u32,
    pub segment_bits: u32,
    pub index_buckets: u64,
    pub created_unix_ms: u64,
    pub token: Vec<u8>,
    /// The cold tier at the cut (two-tier stores only).
    pub cold: Option<crate::cold::ColdMark>,
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// `MAGIC | payload length u32 | payload | FNV-1a-64 of everything before`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(64 + self.token.len());
        p.extend_from_slice(&FORMAT.to_le_bytes());
        for v in [self.version, self.begin, self.tail, self.cleared_at] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&self.page_bits.to_le_bytes());
        p.extend_from_slice(&self.segment_bits.to_le_bytes());
        p.extend_from_slice(&self.index_buckets.to_le_bytes());
        p.extend_from_slice(&self.created_unix_ms.to_le_bytes());
        p.extend_from_slice(&(self.token.len() as u32).to_le_bytes());
        p.extend_from_slice(&self.token);
        match &self.cold {
            None => p.push(0),
            Some(c) => {
                p.push(1);
                for v in [c.begin, c.tail, c.cleared_at] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                p.extend_from_slice(&c.index_bits.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(p.len() + 20);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&p);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Meta, &'static str> {
        if b.len() < 20 || &b[..8] != MAGIC {
            return Err("bad magic or too short");
        }
        let len = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) as usize;
        if b.len() != 12 + len + 8 {
            return Err("length mismatch (torn write?)");
        }
        let sum = u64::from_le_bytes(b[12 + len..].try_into().expect("8 bytes"));
        if fnv1a(&b[..12 + len]) != sum {
            return Err("checksum mismatch");
        }
        let mut r = Reader(&b[12..12 + len]);
        let format = r.u32()?;
        if format != 1 && format != FORMAT {
            return Err("unknown format version");
        }
        let mut m = Meta {
            version: r.u64()?,
            begin: r.u64()?,
            tail: r.u64()?,
            cleared_at: r.u64()?,
            page_bits: r.u32()?,
            segment_bits: r.u32()?,
            index_buckets: r.u64()?,
            created_unix_ms: r.u64()?,
            token: {
                let n = r.u32()? as usize;
                r.bytes(n)?.to_vec()
            },
            cold: None,
        };
        if format >= 2 && r.bytes(1)?[0] == 1 {
            m.cold = Some(crate::cold::ColdMark {
                begin: r.u64()?,
                tail: r.u64()?,
                cleared_at: r.u64()?,
                index_bits: r.u32()?,
            });
        }
        if m.begin > m.tail || !(12..=26).contains(&m.page_bits) || m.segment_bits < m.page_bits {
            return Err("inconsistent fields");
        }
        Ok(m)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated payload");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8")))
    }
}

pub(crate) fn checkpoint_path(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{version:020}"))
}

/// Published checkpoint files of `dir` as (version, path), newest first. Removes a leftover
/// temporary file (a checkpoint that crashed before its publish point).
pub(crate) fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == TMP_NAME {
            tracing::warn!(path = %entry.path().display(), "removing unfinished checkpoint file");
            std::fs::remove_file(entry.path())?;
            continue;
        }
        if let Some(num) = name.strip_prefix(PREFIX) {
            if num.len() == 20 && num.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(v) = num.parse() {
                    out.push((v, entry.path()));
                }
            }
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Highest version among `checkpoint.N.corrupt` files (so new versions stay above them).
pub(crate) fn max_corrupt_version(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(PREFIX)?
                .strip_suffix(".corrupt")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

pub(crate) fn load(path: &Path) -> Result<Meta, String> {
    let b = std::fs::read(path).map_err(|e| e.to_string())?;
    Meta::decode(&b).map_err(str::to_string)
}

/// A published checkpoint still on disk.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub version: u64,
    pub begin: u64,
    /// The cold tier's `begin` at the cut (two-tier stores; `u64::MAX` otherwise).
    pub cold_begin: u64,
    pub path: PathBuf,
}

/// Checkpoint state of a store (under `Durable::state`, held for a whole checkpoint).
#[derive(Debug, Default)]
pub(crate) struct CkptState {
    pub next_version: u64,
    /// Oldest first.
    pub kept: Vec<Kept>,
    pub last: Option<CheckpointInfo>,
}

/// Durability part of the store.
#[derive(Debug, Default)]
pub(crate) struct Durable {
    pub state: std::sync::Mutex<CkptState>,
    pub recovered: Option<RecoveryInfo>,
    pub crash_at: Option<String>,
}

impl Durable {
    pub(crate) fn crash_point(&self, step: &str) {
        if self.crash_at.as_deref() == Some(step) {
            eprintln!("hybrid-log: crash_at {step:?}: aborting (test hook)");
            std::process::abort();
        }
    }
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    /// Deletes segment files that no kept checkpoint and not the live log need. The caller
    /// holds the checkpoint state lock.
    pub(crate) fn reclaim_segments(&self, st: &CkptState) -> Result<(u64, u64), StoreError> {
        let limit = st
            .kept
            .iter()
            .map(|k| k.begin)
            .min()
            .unwrap_or(u64::MAX)
            .min(self.log.begin());
        let (mut n, mut bytes) = self.log.segments.delete_below(limit)?;
        if let Some(cold) = &self.cold {
            let limit = st
                .kept
                .iter()
                .map(|k| k.cold_begin)
                .min()
                .unwrap_or(u64::MAX)
                .min(cold.begin.load(SeqCst));
            let (cn, cb) = cold.segments.delete_below(limit)?;
            n += cn;
            bytes += cb;
        }
        if n > 0 {
            self.log.segments.sync_dir()?;
            tracing::debug!(files = n, bytes, below = limit, "deleted old log segments");
        }
        Ok((n, bytes))
    }
}

impl Store {
    /// Takes a fold-over checkpoint and returns what it covers once it is durable.
    ///
    /// Blocking (waits for an epoch, page flushes and fsyncs); other threads keep operating
    /// meanwhile. Call it from a thread that holds no pinned session (from async code: in
    /// `spawn_blocking`, never on a runtime worker). Checkpoints are serialized.
    ///
    /// Guarantee: every operation that completed before the call is in the checkpoint;
    /// operations that start after it returns are not; operations concurrent with the call
    /// may or may not be (each one entirely or not at all). A caller that needs an exact cut
    /// (e.g. an AOF offset replayed with non-idempotent commands) uses
    /// [`Store::checkpoint_with`].
    ///
    /// `token` is stored with the checkpoint and returned by [`Store::recovered`].
    pub fn checkpoint(&self, token: Vec<u8>) -> Result<CheckpointInfo, StoreError> {
        self.checkpoint_with(move || token)
    }

    /// Like [`Store::checkpoint`], with the token produced by `at_cut`, which runs at the cut
    /// point: after the fold-over barrier (the checkpoint's content is fixed) and before the
    /// slow part (flush, fsync, publish). For an exact cut, a caller holds its writers off
    /// (e.g. takes its write gate exclusively) *before* calling this, and in `at_cut` reads
    /// its AOF offset and lets the writers go again; writers are then blocked only for one
    /// epoch, not for the I/O. Writers must take the gate before pinning (a writer pinned
    /// while it waits for the gate would block the barrier forever). `at_cut` must not call
    /// [`Store::checkpoint`] (deadlock).
    pub fn checkpoint_with(
        &self,
        at_cut: impl FnOnce() -> Vec<u8>,
    ) -> Result<CheckpointInfo, StoreError> {
        let t0 = Instant::now();
        let inner = &*self.inner;
        let log = &*inner.log;
        let d = &inner.durable;
        let mut st = d.state.lock().unwrap_or_else(|e| e.into_inner());
        log.check_failed()?;
        d.crash_point("start");
        // Read begin before the tail: compaction moves begin only after its copies are
        // installed, so [begin, tail) holds every live record either way.
        // Two-tier: no sweep of the hot index until the barrier below (`Inner::tier_cut`),
        // and the marks read under the cold writer (no FLUSHALL half-applied between them).
        let _cut = inner
            .cold
            .as_ref()
            .map(|_| inner.tier_cut.lock().unwrap_or_else(|e| e.into_inner()));
        let _w = inner
            .cold
            .as_ref()
            .map(|c| c.writer.lock().unwrap_or_else(|e| e.into_inner()));
        let begin = log.begin();
        let cleared_at = log.m.cleared_at.load(SeqCst);
        // Two-tier: read after the hot `begin`: migration commits to the cold log before
        // it moves the hot `begin`, so every record below `begin` is below the cold tail.
        let cold_mark = inner.cold.as_ref().map(|c| c.mark());
        drop(_w);
        let handle = log.collector.register();
        let (tail, index_buckets) = {
            let mut guard = handle.pin();
            let tail = log.tail();
            log.shift_read_only_to(tail, &guard);
            d.crash_point("folded");
            wait_until(
                &mut guard,
                || {
                    log.check_failed()?;
                    Ok(log.safe_read_only() >= tail)
                },
                || log.kick_flusher(),
            )?;
            // Read after the barrier: every record below the tail was installed with at most
            // this many buckets (recovery needs an index at least this fine).
            (tail, inner.index.buckets() as u64)
        };
        drop(_cut);
        let token = at_cut();
        let geo = log.geo;
        let tail_page_start = geo.page_start(geo.page(tail));
        let mut spins = 0u32;
        while log.m.flushed_until.load(SeqCst) < tail_page_start {
            log.check_failed()?;
            log.kick_flusher();
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        if log.m.flushed_until.load(SeqCst) < tail {
            let guard = handle.pin();
            crate::flush::flush_partial(log, tail, &guard)?;
        }
        d.crash_point("flushed");
        log.segments.sync_all()?;
        if let Some(cold) = &inner.cold {
            cold.segments.sync_all()?;
        }
        log.segments.sync_dir()?;
        d.crash_point("synced");

        let version = st.next_version.max(1);
        let meta = Meta {
            version,
            begin,
            tail,
            cleared_at,
            page_bits: geo.page_bits,
            segment_bits: geo.segment_bits,
            index_buckets,
            created_unix_ms: now_unix_ms(),
            token,
            cold: cold_mark,
        };
        let bytes = meta.encode();
        let dir = inner.dir.as_path();
        let tmp = dir.join(TMP_NAME);
        {
            let mut f = File::create(&tmp)?;
            if d.crash_at.as_deref() == Some("meta-partial") {
                f.write_all(&bytes[..bytes.len() / 2])?;
                f.sync_all()?;
                d.crash_point("meta-partial");
            }
            f.write_all(&bytes)?;
            d.crash_point("meta-written");
            f.sync_all()?;
        }
        d.crash_point("meta-synced");
        let path = checkpoint_path(dir, version);
        std::fs::rename(&tmp, &path)?;
        d.crash_point("renamed");
        sync_dir(dir)?;
        d.crash_point("dir-synced");

        st.next_version = version + 1;
        st.kept.push(Kept {
            version,
            begin,
            cold_begin: cold_mark.map_or(u64::MAX, |c| c.begin),
            path,
        });
        while st.kept.len() > KEPT {
            let old = st.kept.remove(0);
            if let Err(e) = std::fs::remove_file(&old.path) {
                tracing::warn!(error = %e, version = old.version, "could not remove old checkpoint");
            }
        }
        inner.reclaim_segments(&st)?;
        d.crash_point("cleaned");
        let info = CheckpointInfo {
            version,
            tail_address: tail,
            begin_address: begin,
            bytes: (tail - begin) + bytes.len() as u64,
            duration: t0.elapsed(),
            token: meta.token,
        };
        tracing::info!(
            version,
            begin,
            tail,
            ms = info.duration.as_millis() as u64,
            "checkpoint complete"
        );
        st.last = Some(info.clone());
        Ok(info)
    }

    /// The last checkpoint completed by this process, or else the one recovered at open
    /// (with a zero duration).
    pub fn last_checkpoint(&self) -> Option<CheckpointInfo> {
        self.inner
            .durable
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last
            .clone()
    }

    /// What [`Store::open`] recovered, if the directory held a checkpoint.
    pub fn recovered(&self) -> Option<RecoveryInfo> {
        self.inner.durable.recovered.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip_and_corruption() {
        let m = Meta {
            version: 7,
            begin: 64,
            tail: 12345,
            cleared_at: 0,
            page_bits: 16,
            segment_bits: 20,
            index_buckets: 1024,
            created_unix_ms: 1,
            cold: Some(crate::cold::ColdMark {
                begin: 64,
                tail: 999,
                cleared_at: 3,
                index_bits: 20,
            }),
            token: b"aof:42".to_vec(),
        };
        let b = m.encode();
        assert_eq!(Meta::decode(&b).unwrap(), m);
        assert!(Meta::decode(&b[..b.len() - 1]).is_err());
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(Meta::decode(&c).is_err(), "flip at {i} undetected");
        }
    }
}
