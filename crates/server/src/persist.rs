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
//!   operations concurrent with a checkpoint, so the checkpoint holds
//!   [`Persistence::gate`] exclusively up to its cut point
//!   (`Store::checkpoint_with`); multi-key writes (MSET, EXEC, ...),
//!   SWAPDB and FLUSHDB/FLUSHALL hold it shared (taken unpinned by the
//!   connection). A checkpoint therefore never contains half of an EXEC,
//!   and its SWAPDB table matches its data. Single-key writes do not take
//!   it (they are atomic on their own).
//! - A failed checkpoint sets `rdb_last_bgsave_status:err`; while save
//!   points are configured, write commands (and PING, like Redis) are then
//!   refused with `-MISCONF` until a checkpoint succeeds
//!   (`stop-writes-on-bgsave-error yes`, not configurable).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
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
pub const TOKEN_VERSION: u16 = 1;

/// The server's part of a checkpoint (stored by the engine as opaque
/// bytes): `b"KVDT" | version u16 LE | bincode-2 (standard config) of this
/// struct`. A later version may add fields; the decoder dispatches on the
/// version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointToken {
    /// Logical → physical db table (SWAPDB), one byte per logical db.
    pub db_map: Vec<u8>,
    /// Unix time (ms) when the checkpoint started.
    pub started_unix_ms: u64,
    /// AOF offset the checkpoint covers (none until the AOF exists).
    pub aof_offset: Option<u64>,
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
        if version != TOKEN_VERSION {
            return Err(format!(
                "checkpoint token version {version} is not supported (this kvd writes {TOKEN_VERSION})"
            ));
        }
        let (t, _) = bincode::serde::decode_from_slice(&b[6..], bincode::config::standard())
            .map_err(|e| format!("bad checkpoint token: {e}"))?;
        Ok(t)
    }
}

/// Persistence state (INFO persistence, LASTSAVE, save points, MISCONF).
#[derive(Debug)]
pub struct Persistence {
    /// Held exclusively by a running checkpoint, shared by multi-key
    /// writes, SWAPDB and FLUSHDB/FLUSHALL (see the module docs).
    pub gate: RwLock<()>,
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
            gate: RwLock::new(()),
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
    let r = {
        // Exclusive gate: no multi-key write, SWAPDB or FLUSH* is running,
        // so the cut holds whole transactions and the table matches. The
        // gate is released at the cut (`checkpoint_with`), so writers wait
        // for the fold-over barrier only, not for the flush and fsyncs.
        let mut gate = Some(p.gate.write().unwrap_or_else(|e| e.into_inner()));
        let token = CheckpointToken {
            db_map: shared.keyspace.db_map(),
            started_unix_ms: now_ms(),
            aof_offset: None,
        };
        let r = shared.keyspace.store().checkpoint_with(|| {
            drop(gate.take());
            token.encode()
        });
        // Released here if the checkpoint failed before its cut.
        drop(gate);
        r
    };
    match r {
        Ok(info) => {
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
            Err(e.to_string())
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
    let p = &shared.persist;
    if p.bg_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
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
            p.bg_in_progress.store(false, Ordering::Release);
            if r.is_ok() {
                tracing::info!("Background saving terminated with success");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the background save thread: {e}");
        p.last_ok.store(false, Ordering::Release);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_rejects() {
        let t = CheckpointToken {
            db_map: vec![1, 0, 2, 3],
            started_unix_ms: 1_700_000_000_000,
            aof_offset: Some(42),
        };
        let b = t.encode();
        assert_eq!(&b[..4], b"KVDT");
        assert_eq!(CheckpointToken::decode(&b).unwrap(), t);
        assert!(CheckpointToken::decode(b"").is_err());
        assert!(CheckpointToken::decode(b"aof:42").is_err());
        let mut v2 = b.clone();
        v2[4] = 2;
        assert!(CheckpointToken::decode(&v2)
            .unwrap_err()
            .contains("version 2"));
        assert!(CheckpointToken::decode(&b[..7]).is_err());
    }
}
