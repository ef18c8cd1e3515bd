//! Persistence through engine checkpoints (Redis's RDB commands and save
//! points on top of `Store::checkpoint`).
//!
//! - A checkpoint makes everything the store holds durable (fold-over of
//!   the log, see `hybrid_log::Store::checkpoint`) plus a server token
//!   ([`CheckpointToken`]: the SWAPDB table, room for the AOF offset). At
//!   startup `Store::open` recovers the newest complete checkpoint; the
//!   server then re-applies the token and recounts keys
//!   ([`crate::keyspace::Keyspace::recount`]). Format: see
//!   `docs/decisions/003-server-checkpoint-token.md`.
//! - `SAVE` and `SHUTDOWN [SAVE]` run the checkpoint on a dedicated thread
//!   while the calling connection refreshes its epoch pin in a loop (a
//!   pinned waiter would block the checkpoint's fold-over barrier);
//!   `BGSAVE` and the save points (`save <secs> <changes> ...`, checked by
//!   the `kvd-saver` thread) run it on a background thread; the graceful
//!   shutdown runs it after the clients are closed. One at a time.
//! - Exact cut: the engine only promises per-operation atomicity for
//!   operations concurrent with a checkpoint, so the checkpoint holds the
//!   write gate ([`crate::keyspace::Keyspace::gate`]) exclusively up to
//!   its cut point (`Store::checkpoint_with`); every batch of commands
//!   holds it shared (taken unpinned by the connection) until its AOF
//!   effects are submitted. A checkpoint therefore never contains half of
//!   an EXEC, its SWAPDB table matches its data, and with the AOF on it
//!   rotates the AOF at the cut, records the new file's start in its token
//!   and, once durable, deletes the AOF files it covers (see
//!   [`crate::aofw`]). BGREWRITEAOF and `auto-aof-rewrite-*` are such a
//!   background checkpoint.
//! - A failed checkpoint sets `rdb_last_bgsave_status:err`; while save
//!   points are configured, write commands (and PING, like Redis) are then
//!   refused with `-MISCONF` until a checkpoint succeeds
//!   (`stop-writes-on-bgsave-error yes`, not configurable).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::keyspace::Sess;
use crate::server::Shared;
use crate::util::now_ms;

/// Redis's MISCONF text (RDB flavour).
pub const MISCONF: &[u8] = b"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Redis retries a failed automatic save only after this delay.
const RETRY_DELAY: Duration = Duration::from_secs(5);

const TOKEN_MAGIC: &[u8; 4] = b"KVDT";
/// Current token version.
pub const TOKEN_VERSION: u16 = 3;

/// `aof_position` of a checkpoint whose AOF rotation failed: its cut in
/// the AOF is unknown, so a restart refuses to replay the AOF after it
/// (rather than applying writes twice).
pub const AOF_CUT_FAILED: (u64, u64) = (u64::MAX, u64::MAX);

/// The server's part of a checkpoint (stored by the engine as opaque
/// bytes): `b"KVDT" | version u16 LE | bincode-2 (standard config) of this
/// struct`. A later version may add fields; the decoder dispatches on the
/// version (versions 1 and 2 are still read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointToken {
    /// Logical → physical db table (SWAPDB), one byte per logical db.
    pub db_map: Vec<u8>,
    /// Unix time (ms) when the checkpoint started.
    pub started_unix_ms: u64,
    /// The AOF position `(seq, offset)` the checkpoint covers everything
    /// before (the start of the file rotated in at its cut); None without
    /// an AOF.
    pub aof_position: Option<(u64, u64)>,
    /// Per physical db (index = the key's first byte): `(keys, keys with a
    /// TTL)` at the cut (exact: nothing writes while the gate is held), so
    /// startup need not scan the log to rebuild the counters. None in
    /// tokens older than version 3 (startup then recounts).
    pub counts: Option<Vec<(i64, i64)>>,
}

/// Token version 2 (issue 6: AOF position, no counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointTokenV2 {
    db_map: Vec<u8>,
    started_unix_ms: u64,
    aof_position: Option<(u64, u64)>,
}

/// Token version 1 (issue 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointTokenV1 {
    db_map: Vec<u8>,
    started_unix_ms: u64,
    aof_offset: Option<u64>,
}

impl CheckpointToken {
    /// Encodes with the magic and version prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + self.db_map.len());
        v.extend_from_slice(TOKEN_MAGIC);
        v.extend_from_slice(&TOKEN_VERSION.to_le_bytes());
        let body =
            bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default();
        v.extend_from_slice(&body);
        v
    }

    /// Decodes a token written by [`CheckpointToken::encode`].
    pub fn decode(b: &[u8]) -> Result<CheckpointToken, String> {
        if b.len() < 6 || &b[..4] != TOKEN_MAGIC {
            return Err("not a kvd checkpoint token".into());
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        let cfg = bincode::config::standard();
        let bad = |e: bincode::error::DecodeError| format!("bad checkpoint token: {e}");
        match version {
            1 => {
                let (t, _): (CheckpointTokenV1, _) =
                    bincode::serde::decode_from_slice(&b[6..], cfg).map_err(bad)?;
                Ok(CheckpointToken {
                    db_map: t.db_map,
                    started_unix_ms: t.started_unix_ms,
                    aof_position: None,
                    counts: None,
                })
            }
            2 => {
                let (t, _): (CheckpointTokenV2, _) =
                    bincode::serde::decode_from_slice(&b[6..], cfg).map_err(bad)?;
                Ok(CheckpointToken {
                    db_map: t.db_map,
                    started_unix_ms: t.started_unix_ms,
                    aof_position: t.aof_position,
                    counts: None,
                })
            }
            TOKEN_VERSION => Ok(bincode::serde::decode_from_slice(&b[6..], cfg)
                .map_err(bad)?
                .0),
            _ => Err(format!(
                "checkpoint token version {version} is not supported (this kvd writes {TOKEN_VERSION})"
            )),
        }
    }
}

/// Persistence state (INFO persistence, LASTSAVE, save points, MISCONF).
#[derive(Debug)]
pub struct Persistence {
    /// BGREWRITEAOF asked while a background save ran: start one after it.
    pub rewrite_scheduled: AtomicBool,
    /// The running background checkpoint is an AOF rewrite.
    rewrite_in_progress: AtomicBool,
    /// The last AOF rewrite (checkpoint + truncation) succeeded.
    rewrite_last_ok: AtomicBool,
    /// Incremental AOF files deleted by truncations.
    pub aof_files_deleted: AtomicU64,
    /// Completed AOF rewrites.
    pub aof_rewrites: AtomicU64,
    /// Commands replayed from the AOF at startup.
    pub aof_loaded_commands: AtomicU64,
    /// Replayed commands that replied an error.
    pub aof_load_errors: AtomicU64,
    /// Bytes cut from the AOF's tail at startup (torn or corrupt).
    pub aof_truncated_bytes: AtomicU64,
    /// Serializes checkpoints of this server.
    running: Mutex<()>,
    /// A background save is running.
    bg_in_progress: AtomicBool,
    bg_started_ms: AtomicU64,
    /// Unix seconds of the last successful save (LASTSAVE).
    last_save: AtomicU64,
    /// Last attempt time (ms), for the retry delay of automatic saves.
    last_try_ms: AtomicU64,
    /// The last save succeeded.
    last_ok: AtomicBool,
    /// Duration of the last background save in seconds (-1 = none yet).
    last_bg_secs: AtomicI64,
    /// Write count at the start of the last successful save.
    dirty_at_save: AtomicU64,
    /// Successful saves.
    saves: AtomicU64,
    last_version: AtomicU64,
    last_bytes: AtomicU64,
}

impl Persistence {
    /// Fresh state at startup.
    pub fn new(start_ms: u64) -> Persistence {
        Persistence {
            rewrite_scheduled: AtomicBool::new(false),
            rewrite_in_progress: AtomicBool::new(false),
            rewrite_last_ok: AtomicBool::new(true),
            aof_files_deleted: AtomicU64::new(0),
            aof_rewrites: AtomicU64::new(0),
            aof_loaded_commands: AtomicU64::new(0),
            aof_load_errors: AtomicU64::new(0),
            aof_truncated_bytes: AtomicU64::new(0),
            running: Mutex::new(()),
            bg_in_progress: AtomicBool::new(false),
            bg_started_ms: AtomicU64::new(0),
            last_save: AtomicU64::new(start_ms / 1000),
            last_try_ms: AtomicU64::new(0),
            last_ok: AtomicBool::new(true),
            last_bg_secs: AtomicI64::new(-1),
            dirty_at_save: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            last_version: AtomicU64::new(0),
            last_bytes: AtomicU64::new(0),
        }
    }

    /// Unix seconds of the last successful save.
    pub fn lastsave(&self) -> u64 {
        self.last_save.load(Ordering::Acquire)
    }

    /// Did the last save succeed?
    #[inline]
    pub fn last_ok(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed)
    }

    /// Is a background save running?
    pub fn bg_in_progress(&self) -> bool {
        self.bg_in_progress.load(Ordering::Acquire)
    }

    /// Remembers the last checkpoint's version and size (also the one
    /// recovered at startup).
    pub fn note_checkpoint(&self, version: u64, bytes: u64) {
        self.last_version.store(version, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// Writes counted since the last successful save.
pub fn changes_since_save(shared: &Shared) -> u64 {
    let total = shared.stats.sum(|s| &s.dirty);
    total.saturating_sub(shared.persist.dirty_at_save.load(Ordering::Acquire))
}

/// Must writes be refused with MISCONF? (The last save failed and save
/// points are configured.) One relaxed load when all is well.
#[inline]
pub fn refuse_writes(shared: &Shared) -> bool {
    !shared.persist.last_ok() && !shared.config().save.is_empty()
}

/// Takes a checkpoint now, on the calling thread. The calling thread must
/// hold no pinned session and must not be a runtime worker (use
/// [`save_from_connection`] or a blocking thread).
pub fn save(shared: &Shared, why: &str) -> Result<hybrid_log::CheckpointInfo, String> {
    let _one = shared
        .persist
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let p = &shared.persist;
    let dirty_before = shared.stats.sum(|s| &s.dirty);
    p.last_try_ms.store(now_ms(), Ordering::Relaxed);
    let t0 = Instant::now();
    let aof = shared.keyspace.aof.get();
    let mut rotation: Option<(u64, u64)> = None;
    let mut rotation_err: Option<aof::AofError> = None;
    let r = {
        // Exclusive gate: no batch of commands is running (every batch
        // holds it shared until its AOF effects are submitted), so the cut
        // holds whole transactions, the table matches, and the AOF rotated
        // at the cut holds exactly the writes after it. The gate is
        // released at the cut (`checkpoint_with`), so writers wait for the
        // fold-over barrier only, not for the flush and fsyncs.
        let mut gate = Some(
            shared
                .keyspace
                .gate
                .write()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let started_unix_ms = now_ms();
        let r = shared.keyspace.store().checkpoint_with(|| {
            // Everything the token describes is read while the gate is still
            // held exclusively: nothing changes keys until it is released.
            let db_map = shared.keyspace.db_map();
            let counts = shared.keyspace.counts_snapshot();
            // Only enqueues: everything submitted before is before the cut.
            let ticket = aof.map(|a| a.rotate());
            drop(gate.take());
            let aof_position = ticket.map(|t| match t.wait() {
                Ok(pos) => {
                    rotation = Some((pos.seq, pos.offset));
                    (pos.seq, pos.offset)
                }
                Err(e) => {
                    rotation_err = Some(e);
                    AOF_CUT_FAILED
                }
            });
            CheckpointToken {
                db_map,
                started_unix_ms,
                aof_position,
                counts: Some(counts),
            }
            .encode()
        });
        // Released here if the checkpoint failed before its cut.
        drop(gate);
        r
    };
    let r = match (r, rotation_err) {
        (Ok(_), Some(e)) => Err(format!(
            "the AOF rotation at the checkpoint's cut failed: {e}"
        )),
        (Ok(info), None) => Ok(info),
        (Err(e), _) => Err(e.to_string()),
    };
    match r {
        Ok(info) => {
            if let (Some(aof), Some((seq, offset))) = (aof, rotation) {
                let label = format!("checkpoint.{}", info.version);
                match aof
                    .truncate_before(aof::AofPosition::new(seq, offset), &label, info.bytes)
                    .wait()
                {
                    Ok(n) => {
                        p.aof_files_deleted.fetch_add(n as u64, Ordering::Relaxed);
                        tracing::info!(
                            "AOF: checkpoint version {} covers the AOF before {seq}:{offset}; {n} incremental file(s) deleted",
                            info.version
                        );
                    }
                    Err(e) => tracing::warn!("AOF truncation after the checkpoint failed: {e}"),
                }
            }
            p.dirty_at_save.store(dirty_before, Ordering::Release);
            p.last_save.store(now_ms() / 1000, Ordering::Release);
            p.last_ok.store(true, Ordering::Release);
            p.saves.fetch_add(1, Ordering::Relaxed);
            p.note_checkpoint(info.version, info.bytes);
            tracing::info!(
                "DB saved on disk ({why}): checkpoint version {} ({} bytes) in {} ms",
                info.version,
                info.bytes,
                t0.elapsed().as_millis()
            );
            Ok(info)
        }
        Err(e) => {
            p.last_ok.store(false, Ordering::Release);
            tracing::warn!("checkpoint ({why}) failed: {e}");
            Err(e)
        }
    }
}

/// SAVE / SHUTDOWN SAVE from a connection: runs [`save`] on a dedicated
/// thread while this (pinned) connection keeps refreshing its pin, so the
/// checkpoint's epoch barrier can pass. Blocks this connection only (the
/// runtime moves the worker's other tasks away).
pub fn save_from_connection(
    shared: &Shared,
    sess: &mut Sess<'_>,
    why: &'static str,
    fail_if_bg: bool,
) -> Result<(), String> {
    if fail_if_bg && shared.persist.bg_in_progress() {
        return Err("ERR Background save already in progress".into());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("kvd-save".into())
        .spawn(move || {
            let _ = tx.send(save(&sh, why));
        })
        .map_err(|e| format!("ERR cannot start the save thread: {e}"))?;
    tokio::task::block_in_place(|| loop {
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(r) => return r.map(|_| ()).map_err(|_| "ERR".to_string()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => sess.refresh(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err("save thread panicked".into())
            }
        }
    })
}

/// Starts a background save unless one runs; false if one was running.
pub fn bgsave(shared: &Shared, why: &'static str) -> bool {
    start_bg(shared, why, false)
}

/// BGREWRITEAOF / auto-aof-rewrite: a background checkpoint that rotates
/// the AOF at its cut and deletes the incremental files it covers (every
/// checkpoint does; this one is counted as a rewrite). False if a
/// background save was running.
pub fn bgrewriteaof(shared: &Shared, why: &'static str) -> bool {
    start_bg(shared, why, true)
}

/// Is an AOF rewrite running?
pub fn rewrite_in_progress(shared: &Shared) -> bool {
    shared.persist.rewrite_in_progress.load(Ordering::Acquire)
}

fn start_bg(shared: &Shared, why: &'static str, rewrite: bool) -> bool {
    let p = &shared.persist;
    if p.bg_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    p.rewrite_in_progress.store(rewrite, Ordering::Release);
    p.bg_started_ms.store(now_ms(), Ordering::Relaxed);
    tracing::info!("Background saving started ({why})");
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("kvd-bgsave".into())
        .spawn(move || {
            let t0 = Instant::now();
            let r = save(&sh, why);
            let p = &sh.persist;
            p.last_bg_secs
                .store(t0.elapsed().as_secs() as i64, Ordering::Relaxed);
            if rewrite {
                p.rewrite_last_ok.store(r.is_ok(), Ordering::Relaxed);
                if r.is_ok() {
                    p.aof_rewrites.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("Background AOF rewrite terminated with success");
                }
            }
            p.rewrite_in_progress.store(false, Ordering::Release);
            p.bg_in_progress.store(false, Ordering::Release);
            if r.is_ok() {
                tracing::info!("Background saving terminated with success");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the background save thread: {e}");
        p.last_ok.store(false, Ordering::Release);
        p.rewrite_in_progress.store(false, Ordering::Release);
        p.bg_in_progress.store(false, Ordering::Release);
    }
    true
}

/// Starts the `kvd-saver` thread: checks the save points (`save` config,
/// read live) ten times a second and starts a background save when one
/// is due, like Redis's `serverCron`.
pub fn start_saver(shared: &Shared) {
    let sh = shared.clone();
    let r = std::thread::Builder::new()
        .name("kvd-saver".into())
        .spawn(move || {
            while !sh.shutting_down.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                if sh.persist.bg_in_progress() {
                    continue;
                }
                // BGREWRITEAOF scheduled behind a BGSAVE, or the AOF grew
                // past auto-aof-rewrite-percentage/min-size.
                let rewrite_ok = sh.persist.last_ok()
                    || now_ms().saturating_sub(sh.persist.last_try_ms.load(Ordering::Relaxed))
                        >= RETRY_DELAY.as_millis() as u64;
                if sh.persist.rewrite_scheduled.swap(false, Ordering::AcqRel) {
                    bgrewriteaof(&sh, "BGREWRITEAOF (scheduled)");
                    continue;
                }
                if rewrite_ok && sh.keyspace.aof.get().is_some_and(|a| a.rewrite_needed()) {
                    tracing::info!("Starting automatic rewriting of AOF");
                    bgrewriteaof(&sh, "auto-aof-rewrite");
                    continue;
                }
                let points = sh.config().save.clone();
                if points.is_empty() {
                    continue;
                }
                let changes = changes_since_save(&sh);
                let now = now_ms();
                let since = (now / 1000).saturating_sub(sh.persist.lastsave());
                let retry_ok = sh.persist.last_ok()
                    || now.saturating_sub(sh.persist.last_try_ms.load(Ordering::Relaxed))
                        >= RETRY_DELAY.as_millis() as u64;
                if let Some((secs, n)) = points
                    .iter()
                    .find(|&&(secs, n)| changes >= n && since >= secs)
                {
                    if retry_ok {
                        tracing::info!("{n} changes in {secs} seconds. Saving...");
                        bgsave(&sh, "save point");
                    }
                }
            }
        });
    if let Err(e) = r {
        tracing::warn!("cannot start the save point thread: {e}");
    }
}

/// The `# Persistence` fields of INFO (after `loading`/`async_loading`).
pub fn info_fields(shared: &Shared, out: &mut String) {
    use std::fmt::Write as _;
    let p = &shared.persist;
    let cur = if p.bg_in_progress() {
        (now_ms().saturating_sub(p.bg_started_ms.load(Ordering::Relaxed)) / 1000) as i64
    } else {
        -1
    };
    let _ = write!(
        out,
        "rdb_changes_since_last_save:{}\r\n\
         rdb_bgsave_in_progress:{}\r\n\
         rdb_last_save_time:{}\r\n\
         rdb_last_bgsave_status:{}\r\n\
         rdb_last_bgsave_time_sec:{}\r\n\
         rdb_current_bgsave_time_sec:{}\r\n\
         rdb_saves:{}\r\n\
         kvd_last_checkpoint_version:{}\r\n\
         kvd_last_checkpoint_bytes:{}\r\n",
        changes_since_save(shared),
        p.bg_in_progress() as u8,
        p.lastsave(),
        if p.last_ok() { "ok" } else { "err" },
        p.last_bg_secs.load(Ordering::Relaxed),
        cur,
        p.saves.load(Ordering::Relaxed),
        p.last_version.load(Ordering::Relaxed),
        p.last_bytes.load(Ordering::Relaxed),
    );
    let aof = shared.keyspace.aof.get();
    let failed = aof.is_some_and(|a| a.failure().is_some());
    let (cur, base) = aof.map_or((0, 0), |a| {
        (a.size_since_rewrite() + a.base_size(), a.base_size())
    });
    let _ = write!(
        out,
        "aof_enabled:{}\r\n\
         aof_rewrite_in_progress:{}\r\n\
         aof_rewrite_scheduled:{}\r\n\
         aof_last_rewrite_time_sec:-1\r\n\
         aof_current_rewrite_time_sec:-1\r\n\
         aof_last_bgrewrite_status:{}\r\n\
         aof_rewrites:{}\r\n\
         aof_last_write_status:{}\r\n\
         aof_last_cow_size:0\r\n",
        aof.is_some() as u8,
        rewrite_in_progress(shared) as u8,
        p.rewrite_scheduled.load(Ordering::Relaxed) as u8,
        if p.rewrite_last_ok.load(Ordering::Relaxed) {
            "ok"
        } else {
            "err"
        },
        p.aof_rewrites.load(Ordering::Relaxed),
        if failed { "err" } else { "ok" },
    );
    if let Some(a) = aof {
        let st = a.stats();
        let _ = write!(
            out,
            "aof_current_size:{cur}\r\n\
             aof_base_size:{base}\r\n\
             aof_pending_rewrite:0\r\n\
             aof_buffer_length:0\r\n\
             aof_pending_bio_fsync:0\r\n\
             aof_delayed_fsync:0\r\n\
             kvd_aof_fsync:{:?}\r\n\
             kvd_aof_commands:{}\r\n\
             kvd_aof_batches:{}\r\n\
             kvd_aof_fsyncs:{}\r\n\
             kvd_aof_files_deleted:{}\r\n\
             kvd_aof_loaded_commands:{}\r\n\
             kvd_aof_load_errors:{}\r\n\
             kvd_aof_load_truncated_bytes:{}\r\n",
            a.config().fsync,
            st.commands,
            st.batches,
            st.fsyncs,
            p.aof_files_deleted.load(Ordering::Relaxed),
            p.aof_loaded_commands.load(Ordering::Relaxed),
            p.aof_load_errors.load(Ordering::Relaxed),
            p.aof_truncated_bytes.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_rejects() {
        let t = CheckpointToken {
            db_map: vec![1, 0, 2, 3],
            started_unix_ms: 1_700_000_000_000,
            aof_position: Some((3, 42)),
            counts: Some(vec![(7, 2), (0, 0), (1, 1)]),
        };
        let b = t.encode();
        assert_eq!(&b[..4], b"KVDT");
        assert_eq!(CheckpointToken::decode(&b).unwrap(), t);
        assert!(CheckpointToken::decode(b"").is_err());
        assert!(CheckpointToken::decode(b"aof:42").is_err());
        let mut v9 = b.clone();
        v9[4] = 9;
        assert!(CheckpointToken::decode(&v9)
            .unwrap_err()
            .contains("version 9"));
        // Version 1 (no AOF position) still decodes.
        let v1 = CheckpointTokenV1 {
            db_map: vec![0, 1],
            started_unix_ms: 5,
            aof_offset: None,
        };
        let mut b1 = b"KVDT".to_vec();
        b1.extend_from_slice(&1u16.to_le_bytes());
        b1.extend(bincode::serde::encode_to_vec(&v1, bincode::config::standard()).unwrap());
        let t1 = CheckpointToken::decode(&b1).unwrap();
        assert_eq!(t1.db_map, vec![0, 1]);
        assert_eq!(t1.aof_position, None);
        assert_eq!(t1.counts, None);
        // Version 2 (AOF position, no counters) still decodes.
        let v2 = CheckpointTokenV2 {
            db_map: vec![0, 1],
            started_unix_ms: 5,
            aof_position: Some((4, 9)),
        };
        let mut b2 = b"KVDT".to_vec();
        b2.extend_from_slice(&2u16.to_le_bytes());
        b2.extend(bincode::serde::encode_to_vec(&v2, bincode::config::standard()).unwrap());
        let t2 = CheckpointToken::decode(&b2).unwrap();
        assert_eq!(t2.aof_position, Some((4, 9)));
        assert_eq!(t2.counts, None);
        assert!(CheckpointToken::decode(&b[..7]).is_err());
    }
}
