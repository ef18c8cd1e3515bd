//! Generic keyspace commands: DEL, UNLINK, EXISTS, TOUCH, TYPE, the EXPIRE
//! and TTL families, PERSIST, KEYS, SCAN, RANDOMKEY, RENAME(NX), COPY,
//! MOVE, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.

use bytes::Bytes;

use super::table::{Cmd, CommandSpec};
use super::{db_arg, int_arg, is, lossy, CmdResult, Ctx};
use crate::glob;
use crate::keyspace::engine::Decision;
use crate::keyspace::{alive, effect, TYPE_STRING};

/// Name of a value type (`TYPE`, `SCAN ... TYPE`).
pub fn type_name(t: u8) -> &'static str {
    match t {
        TYPE_STRING => "string",
        1 => "list",
        2 => "set",
        3 => "zset",
        4 => "hash",
        5 => "stream",
        _ => "none",
    }
}

/// Runs a keyspace command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    match spec.id {
        Cmd::Del | Cmd::Unlink => {
            let (mut db, out) = ctx.db_out();
            let mut n = 0;
            for k in &args[1..] {
                n += db.del(k)? as i64;
            }
            out.int(n);
        }
        Cmd::Exists | Cmd::Touch => {
            let (mut db, out) = ctx.db_out();
            let mut n = 0;
            for k in &args[1..] {
                n += db.read(k, |_, _| ())?.is_some() as i64;
            }
            out.int(n);
        }
        Cmd::Type => {
            let (mut db, out) = ctx.db_out();
            let t = db.peek(&args[1], |_, m| m.value_type)?;
            out.simple(t.map_or("none", type_name).as_bytes());
        }
        Cmd::Expire => expire(ctx, args, 1000, false, "expire")?,
        Cmd::PExpire => expire(ctx, args, 1, false, "pexpire")?,
        Cmd::ExpireAt => expire(ctx, args, 1000, true, "expireat")?,
        Cmd::PExpireAt => expire(ctx, args, 1, true, "pexpireat")?,
        Cmd::Ttl | Cmd::PTtl | Cmd::ExpireTime | Cmd::PExpireTime => {
            let (mut db, out) = ctx.db_out();
            let now = db.now.get();
            match db.peek(&args[1], |_, m| m.expire_at_ms)? {
                None => out.int(-2),
                Some(0) => out.int(-1),
                Some(at) => out.int(match spec.id {
                    Cmd::Ttl => ((at.saturating_sub(now) + 500) / 1000) as i64,
                    Cmd::PTtl => at.saturating_sub(now) as i64,
                    Cmd::ExpireTime => (at / 1000) as i64,
                    _ => at as i64,
                }),
            }
        }
        Cmd::Persist => {
            let (mut db, out) = ctx.db_out();
            let mut removed = false;
            db.update(&args[1], |o, new| match o {
                Some((v, m)) if m.expire_at_ms != 0 => {
                    removed = true;
                    new.extend_from_slice(v);
                    let mut meta = *m;
                    meta.expire_at_ms = 0;
                    Decision::Write(meta)
                }
                _ => {
                    removed = false;
                    Decision::Keep
                }
            })?;
            out.int(removed as i64);
        }
        Cmd::Keys => {
            let (mut db, out) = ctx.db_out();
            let pat = &args[1];
            let all = &pat[..] == b"*";
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor = 0;
            loop {
                cursor = db.scan(cursor, 4096, |k, _, _| {
                    if all || glob::matches(pat, k, false) {
                        keys.push(k.to_vec());
                    }
                })?;
                if cursor == 0 {
                    break;
                }
            }
            out.array(keys.len());
            for k in &keys {
                out.bulk(k);
            }
        }
        Cmd::Scan => scan(ctx, args)?,
        Cmd::RandomKey => {
            let (mut db, out) = ctx.db_out();
            let mut pick: Option<Vec<u8>> = None;
            let mut seen = 0u64;
            let mut cursor = 0;
            loop {
                cursor = db.scan(cursor, 4096, |k, _, _| {
                    seen += 1;
                    if rand::random_range(0..seen) == 0 {
                        pick = Some(k.to_vec());
                    }
                })?;
                if cursor == 0 {
                    break;
                }
            }
            match pick {
                Some(k) => out.bulk(&k),
                None => out.null(),
            }
        }
        Cmd::Rename | Cmd::RenameNx => rename(ctx, args, spec.id == Cmd::RenameNx)?,
        Cmd::Copy => copy(ctx, args)?,
        Cmd::Move => {
            let Some(dst) = db_arg(ctx, &args[2]) else {
                return Ok(());
            };
            if dst == ctx.conn.db {
                ctx.out
                    .error(b"ERR source and destination objects are the same");
                return Ok(());
            }
            let n = transfer(ctx, &args[1], dst, &args[1], false, true)?;
            ctx.out.int(n as i64);
        }
        Cmd::DbSize => {
            let (mut db, out) = ctx.db_out();
            out.int(db.count().0 as i64);
        }
        Cmd::FlushDb | Cmd::FlushAll => {
            if args.len() > 2
                || (args.len() == 2 && !is(&args[1], "async") && !is(&args[1], "sync"))
            {
                ctx.out.syntax_error();
                return Ok(());
            }
            if spec.id == Cmd::FlushDb {
                ctx.db().flush()?;
            } else {
                for d in 0..ctx.shared.keyspace.databases() {
                    ctx.db().with_db(d).flush()?;
                }
            }
            ctx.out.ok();
        }
        Cmd::SwapDb => {
            let n = ctx.shared.keyspace.databases() as i64;
            let Some(a) = crate::util::parse_i64(&args[1]) else {
                ctx.out.error(b"ERR invalid first DB index");
                return Ok(());
            };
            let Some(b) = crate::util::parse_i64(&args[2]) else {
                ctx.out.error(b"ERR invalid second DB index");
                return Ok(());
            };
            if a < 0 || a >= n || b < 0 || b >= n {
                ctx.out.error(b"ERR DB index is out of range");
                return Ok(());
            }
            ctx.shared.keyspace.swap(a as usize, b as usize);
            ctx.sess.fx().changes += 1; // logged as itself
            ctx.out.ok();
        }
        _ => unreachable!("not a keyspace command: {}", spec.name),
    }
    Ok(())
}

fn expire(
    ctx: &mut Ctx<'_, '_>,
    args: &[Bytes],
    unit: i64,
    absolute: bool,
    name: &str,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &args[3..] {
        if is(o, "nx") {
            nx = true;
        } else if is(o, "xx") {
            xx = true;
        } else if is(o, "gt") {
            gt = true;
        } else if is(o, "lt") {
            lt = true;
        } else {
            ctx.out
                .error(format!("ERR Unsupported option {}", lossy(o)).as_bytes());
            return Ok(());
        }
    }
    if nx && (xx || gt || lt) {
        ctx.out
            .error(b"ERR NX and XX, GT or LT options at the same time are not compatible");
        return Ok(());
    }
    if gt && lt {
        ctx.out
            .error(b"ERR GT and LT options at the same time are not compatible");
        return Ok(());
    }
    let Some(mut when) = int_arg(ctx.out, &args[2]) else {
        return Ok(());
    };
    let invalid = format!("ERR invalid expire time in '{name}' command");
    if unit == 1000 {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            ctx.out.error(invalid.as_bytes());
            return Ok(());
        }
        when *= 1000;
    }
    let (mut db, out) = ctx.db_out();
    let base = if absolute { 0 } else { db.now.get() as i64 };
    if when > i64::MAX - base {
        out.error(invalid.as_bytes());
        return Ok(());
    }
    when += base;
    let now = db.now.get() as i64;
    let mut applied = false;
    db.update(&args[1], |o, new| {
        applied = false;
        let Some((v, m)) = o else {
            return Decision::Keep;
        };
        let cur = m.expire_at_ms;
        if (nx && cur != 0)
            || (xx && cur == 0)
            || (gt && (cur == 0 || when <= cur as i64))
            || (lt && cur != 0 && when >= cur as i64)
        {
            return Decision::Keep;
        }
        applied = true;
        if when <= now {
            return Decision::Delete;
        }
        new.extend_from_slice(v);
        let mut meta = *m;
        meta.expire_at_ms = when as u64;
        Decision::Write(meta)
    })?;
    out.int(applied as i64);
    // The effect: the absolute time, or DEL when it is already past.
    ctx.sess.fx().rewrite = Some(if when <= now {
        effect(&[b"DEL", &args[1]])
    } else {
        effect(&[b"PEXPIREAT", &args[1], when.to_string().as_bytes()])
    });
    Ok(())
}

fn scan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let cursor = match std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // Cursors are engine log addresses: only ones this server handed
        // out are accepted (an arbitrary address is not a record boundary).
        Some(c) if ctx.shared.keyspace.cursor_ok(c) => c,
        _ => {
            ctx.out.error(b"ERR invalid cursor");
            return Ok(());
        }
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count: usize = 10;
    let mut typ: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            ctx.out.syntax_error();
            return Ok(());
        }
        let (o, v) = (&args[i], &args[i + 1]);
        if is(o, "match") {
            pattern = (&v[..] != b"*").then_some(&v[..]);
        } else if is(o, "count") {
            let Some(n) = int_arg(ctx.out, v) else {
                return Ok(());
            };
            if n < 1 {
                ctx.out.syntax_error();
                return Ok(());
            }
            count = n.min(1 << 20) as usize;
        } else if is(o, "type") {
            typ = Some(&v[..]);
        } else {
            ctx.out.syntax_error();
            return Ok(());
        }
        i += 2;
    }
    let (mut db, out) = ctx.db_out();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let next = db.scan(cursor, count, |k, _, m| {
        if pattern.is_some_and(|p| !glob::matches(p, k, false)) {
            return;
        }
        if typ.is_some_and(|t| !t.eq_ignore_ascii_case(type_name(m.value_type).as_bytes())) {
            return;
        }
        keys.push(k.to_vec());
    })?;
    db.keyspace().issue_cursor(next);
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(keys.len());
    for k in &keys {
        out.bulk(k);
    }
    Ok(())
}

fn rename(ctx: &mut Ctx<'_, '_>, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    // The connection holds the latches of both keys (cmd::lock_plan).
    let (mut db, out) = ctx.db_out();
    let Some((value, meta)) = db.get(src)? else {
        out.error(b"ERR no such key");
        return Ok(());
    };
    if src == dst {
        if nx {
            out.int(0);
        } else {
            out.ok();
        }
        return Ok(());
    }
    if nx && db.exists(dst)? {
        out.int(0);
        return Ok(());
    }
    db.put(dst, &value, meta)?;
    db.del(src)?;
    if nx {
        out.int(1);
        ctx.sess.fx().rewrite = Some(effect(&[b"RENAME", src, dst]));
    } else {
        out.ok();
    }
    Ok(())
}

/// Copies (or moves) `src` of the current db to `dst` in db `dst_db`.
/// Returns 1 if done, 0 if the source is missing or the target exists.
fn transfer(
    ctx: &mut Ctx<'_, '_>,
    src: &[u8],
    dst_db: usize,
    dst: &[u8],
    replace: bool,
    remove_src: bool,
) -> Result<u8, hybrid_log::StoreError> {
    // The connection holds the latches of both keys (cmd::lock_plan).
    let mut db = ctx.db();
    let Some((value, meta)) = db.get(src)? else {
        return Ok(0);
    };
    let now = db.now.get();
    let mut target = db.with_db(dst_db);
    if !replace && target.exists(dst)? {
        return Ok(0);
    }
    if !alive(&meta, now) {
        return Ok(0);
    }
    target.put(dst, &value, meta)?;
    if remove_src {
        db.del(src)?;
    }
    Ok(1)
}

fn copy(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let mut dst_db = ctx.conn.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            let Some(d) = db_arg(ctx, &args[i + 1]) else {
                return Ok(());
            };
            dst_db = d;
            i += 1;
        } else {
            ctx.out.syntax_error();
            return Ok(());
        }
        i += 1;
    }
    if dst_db == ctx.conn.db && args[1] == args[2] {
        ctx.out
            .error(b"ERR source and destination objects are the same");
        return Ok(());
    }
    let n = transfer(ctx, &args[1], dst_db, &args[2], replace, false)?;
    ctx.out.int(n as i64);
    Ok(())
}
