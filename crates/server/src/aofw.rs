//! The AOF wiring (issue 6): what kvd logs, when, and how it is replayed.
//! The `aof` crate writes and reads the files; this module and the
//! connection loop decide the rest.
//!
//! # Exact cut
//! The AOF holds the writes after the newest checkpoint, and replay applies
//! them on top of it, so every write must be either in the checkpoint and
//! in the AOF files it covers, or in neither:
//! - every batch of commands holds the write gate
//!   ([`crate::keyspace::Keyspace::gate`], a `ShardedLock`) shared from
//!   before it pins the engine until its effects are submitted to the AOF
//!   (once per batch, [`aof::Aof::submit`]);
//! - a checkpoint takes the gate exclusively and, at its cut
//!   (`Store::checkpoint_with`), enqueues [`aof::Aof::rotate`], releases
//!   the gate, waits for the rotation and stores the new file's start in
//!   its token (`docs/decisions/003-server-checkpoint-token.md`); once the
//!   checkpoint is durable, [`aof::Aof::truncate_before`] deletes the
//!   files it covers ([`crate::persist::save`]).
//!
//! # Order per key
//! Connections run in parallel, so two writes of one key could reach the
//! AOF in the other order than the store applied them. With the AOF on, a
//! single-key write takes its key's stripe ([`crate::keylock`])
//! exclusively (one CAS) and the batch keeps its stripes until its effects
//! are submitted; multi-key writes and EXEC keep theirs the same way. A
//! batch that must wait for a stripe first submits what it has and
//! releases its stripes (no deadlock: nobody waits while holding). Lazy
//! expiry deletes a key only if it can take the stripe (else the key just
//! reads as absent), active expiry likewise; FLUSHDB, FLUSHALL and SWAPDB
//! run under the gate exclusively.
//!
//! # Effects, not commands
//! A write is logged only if it changed something (Redis's `dirty`,
//! counted in [`crate::keyspace::Effects::changes`]), as its effect, so
//! replay does not depend on the clock: relative expiries become `PXAT` /
//! `PEXPIREAT` (or `DEL` when already past), `INCRBYFLOAT` a `SET …
//! KEEPTTL`, `GETSET`/`GETDEL`/`GETEX`/`SETNX`/`SETEX` their `SET`/`DEL`/
//! `PEXPIREAT`/`PERSIST`, `MSETNX`/`RENAMENX` `MSET`/`RENAME`; keys removed
//! by expiry a `DEL`; EXEC one `MULTI … EXEC` block (of two writes or more;
//! one write is logged bare, as in Redis 7). The rest is logged
//! as itself.
//!
//! # Durability
//! Under `appendfsync always` a connection writes a batch's replies only
//! after the batch's ticket resolved (gate, stripes and pin released
//! first); the writer thread batches every connection's submissions into
//! one write and one fsync. A failed ticket closes the connection without
//! replies; later writes get the crate's `MISCONF` error.
//!
//! # Replay
//! [`replay`] runs the AOF after the checkpoint's position through the
//! normal command path (an internal client without a socket) with expiry
//! off (Redis's `loading`): a key whose absolute expiry passed meanwhile
//! is written, then expires as usual once the server runs.

use std::sync::atomic::Ordering;
use std::time::Instant;

use aof::{AofConfig, AofPosition, AofReader, Entry};

use crate::cmd::{self, Ctx};
use crate::conn::ConnState;
use crate::keyspace::{Effects, Sess};
use crate::reply::Out;
use crate::server::{ClientHandle, Shared};

/// What a replay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    /// Entries (commands or MULTI blocks).
    pub records: u64,
    /// Commands executed.
    pub commands: u64,
    /// Commands that replied an error.
    pub errors: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Bytes cut from a torn (or, with `aof-load-truncated`, corrupt) tail.
    pub truncated: u64,
}

/// Replays the AOF after `after` into the store. Runs on a runtime worker
/// (some commands use `block_in_place`) before the server accepts clients.
pub fn replay(
    shared: &Shared,
    cfg: &AofConfig,
    after: Option<AofPosition>,
) -> Result<Replayed, aof::AofError> {
    let mut reader = AofReader::open(cfg, after)?;
    let total = reader.progress().bytes_total;
    let handle = ClientHandle::internal(0, "aof-loader");
    let mut state = ConnState::new(handle, true);
    let mut session = shared.keyspace.session();
    let (mut keybuf, mut scratch) = (Vec::new(), Vec::new());
    let mut fx = Effects::default();
    let mut out = Out::new();
    let mut r = Replayed::default();
    let started = Instant::now();
    let mut last_log = Instant::now();
    shared.keyspace.loading.store(true, Ordering::Release);
    let result = (|| {
        while let Some(rec) = reader.next() {
            let rec = rec?;
            let cmds = match rec.entry {
                Entry::Command(c) => vec![c],
                Entry::Multi(v) => v,
            };
            // One pin per entry: a MULTI block is applied as a whole.
            let mut sess = Sess::new(&mut session, &mut keybuf, &mut scratch, &mut fx);
            for c in &cmds {
                r.commands += 1;
                if c.db as usize >= shared.keyspace.databases() || c.args.is_empty() {
                    r.errors += 1;
                    tracing::warn!(
                        "AOF replay at {}: database {} is out of range",
                        rec.start,
                        c.db
                    );
                    continue;
                }
                state.db = c.db as usize;
                let errors = out.errors;
                let mut ctx = Ctx {
                    shared,
                    conn: &mut state,
                    sess: &mut sess,
                    out: &mut out,
                };
                cmd::execute(&mut ctx, &c.args);
                if out.errors > errors {
                    r.errors += 1;
                    if r.errors <= 10 {
                        tracing::warn!(
                            "AOF replay at {}: {} replied {}",
                            rec.start,
                            String::from_utf8_lossy(&c.args[0]),
                            String::from_utf8_lossy(&out.buf).trim_end()
                        );
                    }
                }
                out.buf.clear();
            }
            drop(sess);
            r.records += 1;
            if last_log.elapsed().as_secs() >= 1 {
                last_log = Instant::now();
                let p = reader.progress();
                tracing::info!(
                    "Loading the AOF: {} of {} bytes, {} commands ({:.1}s)",
                    p.bytes_read,
                    total,
                    r.commands,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    })();
    shared.keyspace.loading.store(false, Ordering::Release);
    result?;
    let p = reader.progress();
    r.bytes = p.bytes_read;
    r.truncated = p.truncated_bytes;
    let persist = &shared.persist;
    persist
        .aof_loaded_commands
        .store(r.commands, Ordering::Relaxed);
    persist.aof_load_errors.store(r.errors, Ordering::Relaxed);
    persist
        .aof_truncated_bytes
        .store(r.truncated, Ordering::Relaxed);
    Ok(r)
}
