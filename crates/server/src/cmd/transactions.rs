//! MULTI, EXEC, DISCARD, WATCH, UNWATCH with Redis's semantics.
//!
//! Queued commands were checked (existence, arity, auth) when queued; a
//! rejected one makes EXEC reply `EXECABORT`. A write to a WATCHed key
//! (including expiry, FLUSHDB, SWAPDB) makes EXEC reply a null array.
//! The connection takes the key locks of every key of every queued command
//! exclusively before EXEC runs (stripe order, see `cmd::lock_plan` and
//! [`crate::keylock`]), so EXEC is isolated from every other command on
//! those keys: multi-key ones wait for the locks, single-key writes hold
//! the key's stripe shared, single-key reads wait while it is exclusive.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::table::{self, Cmd, CommandSpec};
use super::{CmdResult, Ctx};

/// Runs a transaction command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    match spec.id {
        Cmd::Multi => {
            if ctx.conn.multi.is_some() {
                ctx.out.error(b"ERR MULTI calls can not be nested");
                return Ok(());
            }
            ctx.conn.multi = Some(Vec::new());
            ctx.conn.multi_dirty = false;
            ctx.conn.handle.multi.store(0, Ordering::Relaxed);
            ctx.out.ok();
        }
        Cmd::Discard => {
            if ctx.conn.multi.is_none() {
                ctx.out.error(b"ERR DISCARD without MULTI");
                return Ok(());
            }
            end_multi(ctx);
            ctx.out.ok();
        }
        Cmd::Watch => {
            if ctx.conn.multi.is_some() {
                ctx.out.error(b"ERR WATCH inside MULTI is not allowed");
                return Ok(());
            }
            let db = ctx.db();
            let keys: Vec<Vec<u8>> = args[1..].iter().map(|k| db.encoded(k)).collect();
            for k in keys {
                if !ctx.conn.watched.contains(&k) {
                    ctx.shared.keyspace.watches.watch(&k, &ctx.conn.watch_dirty);
                    ctx.conn.watched.push(k);
                }
            }
            ctx.out.ok();
        }
        Cmd::Unwatch => {
            let shared = ctx.shared;
            ctx.conn.unwatch_all(shared);
            ctx.out.ok();
        }
        Cmd::Exec => exec(ctx),
        _ => unreachable!("not a transaction command: {}", spec.name),
    }
    Ok(())
}

fn end_multi(ctx: &mut Ctx<'_, '_>) -> Vec<Vec<Bytes>> {
    let q = ctx.conn.multi.take().unwrap_or_default();
    ctx.conn.multi_dirty = false;
    ctx.conn.handle.multi.store(-1, Ordering::Relaxed);
    let shared = ctx.shared;
    ctx.conn.unwatch_all(shared);
    q
}

fn exec(ctx: &mut Ctx<'_, '_>) {
    if ctx.conn.multi.is_none() {
        ctx.out.error(b"ERR EXEC without MULTI");
        return;
    }
    let dirty = ctx.conn.multi_dirty;
    let watch_failed = ctx.conn.watch_dirty.load(Ordering::Acquire);
    let queue = end_multi(ctx);
    if dirty {
        ctx.out
            .error(b"EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    if watch_failed {
        ctx.out.null_array();
        return;
    }
    // The connection holds the latches of every queued command's keys
    // (cmd::lock_plan).
    ctx.out.array(queue.len());
    // With the AOF on, the effects go in as one MULTI … EXEC block (one
    // write: the bare command).
    let logging = ctx.sess.fx().enabled;
    if logging {
        ctx.sess.fx().batch.begin_multi();
    }
    for args in &queue {
        if let Some(spec) = table::lookup(&args[0]) {
            super::run(ctx, spec, args);
        }
    }
    if logging {
        ctx.sess.fx().batch.end_multi();
    }
}
