//! String commands. Every read-modify-write command (INCR*, APPEND,
//! SETRANGE, GETSET, GETDEL, GETEX, SET with NX/XX/GET/KEEPTTL) is one
//! engine RMW call; plain SET is a blind upsert.

use bytes::Bytes;

use super::table::{Cmd, CommandSpec};
use super::{int_arg, is, CmdResult, Ctx};
use crate::keyspace::engine::Decision;
use crate::keyspace::{effect, Db, TYPE_STRING};
use crate::reply::{Out, WRONGTYPE};
use crate::util::{format_f64_human, parse_f64, parse_i64};
use hybrid_log::RecordMeta;

const TOO_BIG: &[u8] = b"ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// Runs a string command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    match spec.id {
        Cmd::Get => {
            let (mut db, out) = ctx.db_out();
            let found = db.read(&args[1], |v, m| {
                if m.value_type == TYPE_STRING {
                    out.bulk(v)
                } else {
                    out.wrong_type()
                }
            })?;
            if found.is_none() {
                out.null();
            }
        }
        Cmd::Set => {
            if let Some(a) = SetArgs::parse(ctx.out, &args[3..], "set") {
                set(ctx, &args[1], &args[2], a)?
            }
        }
        Cmd::SetNx => {
            let a = SetArgs {
                nx: true,
                ..SetArgs::default()
            };
            let (mut db, out) = ctx.db_out();
            let r = set_rmw(&mut db, &args[1], &args[2], &a)?;
            out.int(r.written as i64);
            ctx.sess.fx().rewrite = Some(effect(&[b"SET", &args[1], &args[2]]));
        }
        Cmd::SetEx | Cmd::PSetEx => {
            let (unit, name) = if spec.id == Cmd::SetEx {
                (1000, "setex")
            } else {
                (1, "psetex")
            };
            let Some(v) = int_arg(ctx.out, &args[2]) else {
                return Ok(());
            };
            let now = crate::util::now_ms();
            let Some(at) = expire_at(ctx.out, v, unit, false, now, name) else {
                return Ok(());
            };
            ctx.db().put(&args[1], &args[3], Db::string_meta(at))?;
            ctx.out.ok();
            ctx.sess.fx().rewrite = Some(pxat(&args[1], &args[3], at));
        }
        Cmd::GetSet => {
            let a = SetArgs {
                get: true,
                ..SetArgs::default()
            };
            let (mut db, out) = ctx.db_out();
            let r = set_rmw(&mut db, &args[1], &args[2], &a)?;
            reply_old(out, r.old);
            ctx.sess.fx().rewrite = Some(effect(&[b"SET", &args[1], &args[2]]));
        }
        Cmd::GetDel => {
            let (mut db, out) = ctx.db_out();
            let mut old: Option<Result<Vec<u8>, ()>> = None;
            db.update(&args[1], |o, _| match o {
                Some((v, m)) if m.value_type == TYPE_STRING => {
                    old = Some(Ok(v.to_vec()));
                    Decision::Delete
                }
                Some(_) => {
                    old = Some(Err(()));
                    Decision::Keep
                }
                None => {
                    old = None;
                    Decision::Keep
                }
            })?;
            reply_old(out, old);
            ctx.sess.fx().rewrite = Some(effect(&[b"DEL", &args[1]]));
        }
        Cmd::GetEx => getex(ctx, args)?,
        Cmd::MGet => {
            let (mut db, out) = ctx.db_out();
            out.array(args.len() - 1);
            for k in &args[1..] {
                let found = db.read(k, |v, m| {
                    if m.value_type == TYPE_STRING {
                        out.bulk(v)
                    } else {
                        out.null()
                    }
                })?;
                if found.is_none() {
                    out.null();
                }
            }
        }
        Cmd::MSet | Cmd::MSetNx => mset(ctx, spec, args)?,
        Cmd::Append => {
            let max = max_string_len(ctx);
            let (mut db, out) = ctx.db_out();
            let add = &args[2];
            let mut res: Result<usize, &[u8]> = Ok(0);
            db.update(&args[1], |o, new| match o {
                Some((_, m)) if m.value_type != TYPE_STRING => {
                    res = Err(WRONGTYPE);
                    Decision::Keep
                }
                Some((v, m)) => {
                    if v.len() + add.len() > max {
                        res = Err(TOO_BIG);
                        return Decision::Keep;
                    }
                    new.extend_from_slice(v);
                    new.extend_from_slice(add);
                    res = Ok(new.len());
                    Decision::Write(*m)
                }
                None => {
                    new.extend_from_slice(add);
                    res = Ok(new.len());
                    Decision::Write(Db::string_meta(0))
                }
            })?;
            match res {
                Ok(n) => out.int(n as i64),
                Err(e) => out.error(e),
            }
        }
        Cmd::StrLen => {
            let (mut db, out) = ctx.db_out();
            match db.read(&args[1], |v, m| (v.len(), m.value_type))? {
                Some((_, t)) if t != TYPE_STRING => out.wrong_type(),
                Some((n, _)) => out.int(n as i64),
                None => out.int(0),
            }
        }
        Cmd::GetRange => {
            let Some(start) = int_arg(ctx.out, &args[2]) else {
                return Ok(());
            };
            let Some(end) = int_arg(ctx.out, &args[3]) else {
                return Ok(());
            };
            let (mut db, out) = ctx.db_out();
            let found = db.read(&args[1], |v, m| {
                if m.value_type != TYPE_STRING {
                    return out.wrong_type();
                }
                match range(start, end, v.len()) {
                    Some((s, e)) => out.bulk(&v[s..=e]),
                    None => out.bulk(b""),
                }
            })?;
            if found.is_none() {
                out.bulk(b"");
            }
        }
        Cmd::SetRange => setrange(ctx, args)?,
        Cmd::Incr => incr_by(ctx, &args[1], 1)?,
        Cmd::Decr => incr_by(ctx, &args[1], -1)?,
        Cmd::IncrBy => {
            if let Some(n) = int_arg(ctx.out, &args[2]) {
                incr_by(ctx, &args[1], n)?;
            }
        }
        Cmd::DecrBy => {
            if let Some(n) = int_arg(ctx.out, &args[2]) {
                if n == i64::MIN {
                    ctx.out.error(b"ERR decrement would overflow");
                } else {
                    incr_by(ctx, &args[1], -n)?;
                }
            }
        }
        Cmd::IncrByFloat => incr_by_float(ctx, &args[1], &args[2])?,
        Cmd::Lcs => lcs(ctx, args)?,
        _ => unreachable!("not a string command: {}", spec.name),
    }
    Ok(())
}

/// Longest string APPEND / SETRANGE may build: proto-max-bulk-len, and
/// what one log record can hold (checked before building the value).
fn max_string_len(ctx: &Ctx<'_, '_>) -> usize {
    let proto = ctx.shared.config().proto_max_bulk_len as usize;
    proto.min(ctx.shared.keyspace.max_value_len())
}

/// Redis `GETRANGE` index normalisation; None = empty result.
fn range(mut start: i64, mut end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

/// `SET key value PXAT at` (or plain `SET` without expiry).
fn pxat(key: &[u8], value: &[u8], at: u64) -> Vec<Bytes> {
    if at == 0 {
        return effect(&[b"SET", key, value]);
    }
    effect(&[b"SET", key, value, b"PXAT", at.to_string().as_bytes()])
}

fn reply_old(out: &mut Out, old: Option<Result<Vec<u8>, ()>>) {
    match old {
        Some(Ok(v)) => out.bulk(&v),
        Some(Err(())) => out.wrong_type(),
        None => out.null(),
    }
}

/// Computes an absolute expiry in ms, replying Redis's error on bad input.
pub fn expire_at(
    out: &mut Out,
    v: i64,
    unit_ms: i64,
    absolute: bool,
    now: u64,
    cmd: &str,
) -> Option<u64> {
    let invalid = |out: &mut Out| {
        out.error(format!("ERR invalid expire time in '{cmd}' command").as_bytes());
        None
    };
    if v <= 0 {
        return invalid(out);
    }
    let Some(ms) = v.checked_mul(unit_ms) else {
        return invalid(out);
    };
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(now as i64)
    };
    match at {
        Some(at) if at > 0 => Some(at as u64),
        _ => invalid(out),
    }
}

#[derive(Debug, Default, Clone, Copy)]
enum SetExpire {
    #[default]
    None,
    At(u64),
    KeepTtl,
}

/// Parsed `SET` options.
#[derive(Debug, Default)]
struct SetArgs {
    nx: bool,
    xx: bool,
    get: bool,
    expire: SetExpire,
}

impl SetArgs {
    fn parse(out: &mut Out, opts: &[Bytes], cmd: &str) -> Option<SetArgs> {
        let mut a = SetArgs::default();
        let mut has_expire = false;
        let mut i = 0;
        while i < opts.len() {
            let o = &opts[i];
            let next = opts.get(i + 1);
            if is(o, "nx") && !a.xx {
                a.nx = true;
            } else if is(o, "xx") && !a.nx {
                a.xx = true;
            } else if is(o, "get") {
                a.get = true;
            } else if is(o, "keepttl") && !has_expire {
                has_expire = true;
                a.expire = SetExpire::KeepTtl;
            } else if (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat"))
                && !has_expire
                && next.is_some()
            {
                has_expire = true;
                let v = int_arg(out, next?)?;
                let unit = if is(o, "ex") || is(o, "exat") {
                    1000
                } else {
                    1
                };
                let absolute = is(o, "exat") || is(o, "pxat");
                // The clock only when an expiry needs it (not per plain SET).
                let now = if absolute { 0 } else { crate::util::now_ms() };
                a.expire = SetExpire::At(expire_at(out, v, unit, absolute, now, cmd)?);
                i += 1;
            } else {
                out.syntax_error();
                return None;
            }
            i += 1;
        }
        Some(a)
    }

    fn plain(&self) -> bool {
        !self.nx && !self.xx && !self.get && !matches!(self.expire, SetExpire::KeepTtl)
    }
}

struct SetResult {
    written: bool,
    old: Option<Result<Vec<u8>, ()>>,
}

fn set_rmw(
    db: &mut Db<'_, '_>,
    key: &[u8],
    value: &[u8],
    a: &SetArgs,
) -> Result<SetResult, hybrid_log::StoreError> {
    let mut r = SetResult {
        written: false,
        old: None,
    };
    db.update(key, |o, new| {
        r.old = match o {
            Some((v, m)) if a.get => {
                if m.value_type == TYPE_STRING {
                    Some(Ok(v.to_vec()))
                } else {
                    Some(Err(()))
                }
            }
            _ => None,
        };
        r.written = false;
        if matches!(r.old, Some(Err(()))) {
            return Decision::Keep;
        }
        let exists = o.is_some();
        if (a.nx && exists) || (a.xx && !exists) {
            return Decision::Keep;
        }
        let at = match a.expire {
            SetExpire::None => 0,
            SetExpire::At(t) => t,
            SetExpire::KeepTtl => o.map_or(0, |(_, m)| m.expire_at_ms),
        };
        new.extend_from_slice(value);
        r.written = true;
        Decision::Write(Db::string_meta(at))
    })?;
    Ok(r)
}

fn set(ctx: &mut Ctx<'_, '_>, key: &[u8], value: &[u8], a: SetArgs) -> CmdResult {
    // The effect when it writes: SET with the absolute expiry (or KEEPTTL).
    // A `SET key value` without options is its own effect (`cmd::run`
    // logs the arguments), and nothing is built when nothing is logged.
    let bare = a.plain() && matches!(a.expire, SetExpire::None);
    if ctx.sess.fx().enabled && !bare {
        ctx.sess.fx().rewrite = Some(match a.expire {
            SetExpire::None => effect(&[b"SET", key, value]),
            SetExpire::At(t) => pxat(key, value, t),
            SetExpire::KeepTtl => effect(&[b"SET", key, value, b"KEEPTTL"]),
        });
    }
    let (mut db, out) = ctx.db_out();
    if a.plain() {
        let at = match a.expire {
            SetExpire::At(t) => t,
            _ => 0,
        };
        db.put(key, value, Db::string_meta(at))?;
        out.ok();
        return Ok(());
    }
    let r = set_rmw(&mut db, key, value, &a)?;
    if a.get {
        reply_old(out, r.old);
    } else if r.written {
        out.ok();
    } else {
        out.null();
    }
    Ok(())
}

fn getex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    #[derive(Clone, Copy)]
    enum Change {
        Keep,
        Persist,
        At(u64),
    }
    let mut change = Change::Keep;
    let now = crate::util::now_ms();
    let opts = &args[2..];
    let mut i = 0;
    let mut seen = false;
    while i < opts.len() {
        let o = &opts[i];
        if is(o, "persist") && !seen {
            change = Change::Persist;
        } else if (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat"))
            && !seen
            && i + 1 < opts.len()
        {
            let Some(v) = int_arg(ctx.out, &opts[i + 1]) else {
                return Ok(());
            };
            let unit = if is(o, "ex") || is(o, "exat") {
                1000
            } else {
                1
            };
            let absolute = is(o, "exat") || is(o, "pxat");
            let Some(at) = expire_at(ctx.out, v, unit, absolute, now, "getex") else {
                return Ok(());
            };
            change = Change::At(at);
            i += 1;
        } else {
            ctx.out.syntax_error();
            return Ok(());
        }
        seen = true;
        i += 1;
    }
    let (mut db, out) = ctx.db_out();
    if let Change::Keep = change {
        let found = db.read(&args[1], |v, m| {
            if m.value_type == TYPE_STRING {
                out.bulk(v)
            } else {
                out.wrong_type()
            }
        })?;
        if found.is_none() {
            out.null();
        }
        return Ok(());
    }
    let mut old: Option<Result<Vec<u8>, ()>> = None;
    db.update(&args[1], |o, new| match o {
        Some((v, m)) if m.value_type == TYPE_STRING => {
            old = Some(Ok(v.to_vec()));
            let mut meta = *m;
            meta.expire_at_ms = match change {
                Change::At(t) => t,
                _ => 0,
            };
            if meta == *m {
                return Decision::Keep;
            }
            new.extend_from_slice(v);
            Decision::Write(meta)
        }
        Some(_) => {
            old = Some(Err(()));
            Decision::Keep
        }
        None => {
            old = None;
            Decision::Keep
        }
    })?;
    reply_old(out, old);
    ctx.sess.fx().rewrite = Some(match change {
        Change::At(t) => effect(&[b"PEXPIREAT", &args[1], t.to_string().as_bytes()]),
        _ => effect(&[b"PERSIST", &args[1]]),
    });
    Ok(())
}

fn mset(ctx: &mut Ctx<'_, '_>, spec: &CommandSpec, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        ctx.out.wrong_args(spec.name);
        return Ok(());
    }
    // The connection holds the latches of every key (cmd::lock_plan).
    let (mut db, out) = ctx.db_out();
    let keys: Vec<&[u8]> = args[1..].iter().step_by(2).map(|k| &k[..]).collect();
    if spec.id == Cmd::MSetNx {
        for k in &keys {
            if db.exists(k)? {
                out.int(0);
                return Ok(());
            }
        }
    }
    for pair in args[1..].chunks(2) {
        db.put(&pair[0], &pair[1], Db::string_meta(0))?;
    }
    if spec.id == Cmd::MSetNx {
        out.int(1);
        let mut e = args.to_vec();
        e[0] = Bytes::from_static(b"MSET");
        ctx.sess.fx().rewrite = Some(e);
    } else {
        out.ok();
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let Some(offset) = int_arg(ctx.out, &args[2]) else {
        return Ok(());
    };
    if offset < 0 {
        ctx.out.error(b"ERR offset is out of range");
        return Ok(());
    }
    let offset = offset as usize;
    let max = max_string_len(ctx);
    let val = &args[3];
    let (mut db, out) = ctx.db_out();
    let mut res: Result<usize, &[u8]> = Ok(0);
    db.update(&args[1], |o, new| {
        let (cur, meta): (&[u8], _) = match o {
            Some((_, m)) if m.value_type != TYPE_STRING => {
                res = Err(WRONGTYPE);
                return Decision::Keep;
            }
            Some((v, m)) => (v, *m),
            None => (&[], Db::string_meta(0)),
        };
        if val.is_empty() {
            res = Ok(cur.len());
            return Decision::Keep;
        }
        if offset.saturating_add(val.len()) > max {
            res = Err(TOO_BIG);
            return Decision::Keep;
        }
        new.extend_from_slice(cur);
        let end = offset + val.len();
        if new.len() < end {
            new.resize(end, 0);
        }
        new[offset..end].copy_from_slice(val);
        res = Ok(new.len());
        Decision::Write(meta)
    })?;
    match res {
        Ok(n) => out.int(n as i64),
        Err(e) => out.error(e),
    }
    Ok(())
}

const NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
const NOT_FLOAT: &[u8] = b"ERR value is not a valid float";

/// The number an INCR-family command starts from: the key's value parsed
/// with `parse` and its meta, or `zero` with a fresh string meta when the
/// key is absent; `WRONGTYPE` or `not_a_number` otherwise.
fn current_number<T>(
    old: Option<(&[u8], &RecordMeta)>,
    zero: T,
    parse: impl Fn(&[u8]) -> Option<T>,
    not_a_number: &'static [u8],
) -> Result<(T, RecordMeta), &'static [u8]> {
    match old {
        Some((_, m)) if m.value_type != TYPE_STRING => Err(WRONGTYPE),
        Some((v, m)) => parse(v).map(|n| (n, *m)).ok_or(not_a_number),
        None => Ok((zero, Db::string_meta(0))),
    }
}

fn incr_by(ctx: &mut Ctx<'_, '_>, key: &[u8], by: i64) -> CmdResult {
    let (mut db, out) = ctx.db_out();
    let mut res: Result<i64, &[u8]> = Ok(0);
    db.update(key, |o, new| {
        let (cur, meta) = match current_number(o, 0, parse_i64, NOT_INTEGER) {
            Ok(c) => c,
            Err(e) => {
                res = Err(e);
                return Decision::Keep;
            }
        };
        let Some(n) = cur.checked_add(by) else {
            res = Err(b"ERR increment or decrement would overflow");
            return Decision::Keep;
        };
        let mut tmp = [0u8; 20];
        new.extend_from_slice(crate::util::i64_to_bytes(n, &mut tmp));
        res = Ok(n);
        Decision::Write(meta)
    })?;
    match res {
        Ok(n) => out.int(n),
        Err(e) => out.error(e),
    }
    Ok(())
}

fn incr_by_float(ctx: &mut Ctx<'_, '_>, key: &[u8], by: &[u8]) -> CmdResult {
    let Some(by) = parse_f64(by) else {
        ctx.out.error(NOT_FLOAT);
        return Ok(());
    };
    let (mut db, out) = ctx.db_out();
    let mut res: Result<String, &[u8]> = Ok(String::new());
    db.update(key, |o, new| {
        let (cur, meta) = match current_number(o, 0.0, parse_f64, NOT_FLOAT) {
            Ok(c) => c,
            Err(e) => {
                res = Err(e);
                return Decision::Keep;
            }
        };
        let n = cur + by;
        if !n.is_finite() {
            res = Err(b"ERR increment would produce NaN or Infinity");
            return Decision::Keep;
        }
        let s = format_f64_human(n);
        new.extend_from_slice(s.as_bytes());
        res = Ok(s);
        Decision::Write(meta)
    })?;
    match res {
        Ok(s) => {
            out.bulk(s.as_bytes());
            ctx.sess.fx().rewrite = Some(effect(&[b"SET", key, s.as_bytes(), b"KEEPTTL"]));
        }
        Err(e) => out.error(e),
    }
    Ok(())
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
fn lcs(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: u64 = 0;
    let mut i = 3;
    while i < args.len() {
        let o = &args[i];
        if is(o, "idx") {
            getidx = true;
        } else if is(o, "len") {
            getlen = true;
        } else if is(o, "withmatchlen") {
            withmatchlen = true;
        } else if is(o, "minmatchlen") && i + 1 < args.len() {
            let Some(v) = int_arg(ctx.out, &args[i + 1]) else {
                return Ok(());
            };
            minmatchlen = v.max(0) as u64;
            i += 1;
        } else {
            ctx.out.syntax_error();
            return Ok(());
        }
        i += 1;
    }
    if getidx && getlen {
        ctx.out
            .error(b"ERR If you want both the length and indexes, please just use IDX.");
        return Ok(());
    }
    let max = ctx.shared.config().proto_max_bulk_len;
    let (mut db, out) = ctx.db_out();
    let mut vals: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (slot, k) in vals.iter_mut().zip(&args[1..3]) {
        match db.read(k, |v, m| (m.value_type == TYPE_STRING).then(|| v.to_vec()))? {
            Some(None) => {
                out.error(b"ERR The specified keys must contain string values");
                return Ok(());
            }
            Some(Some(v)) => *slot = v,
            None => {}
        }
    }
    let (a, b) = (&vals[0], &vals[1]);
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > max {
        out.error(b"ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
        return Ok(());
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let lcs_len = t[alen * w + blen] as usize;
    if getlen {
        out.int(lcs_len as i64);
        return Ok(());
    }
    let mut result = vec![0u8; lcs_len];
    let mut matches: Vec<[u64; 5]> = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, lcs_len);
    let (mut as_, mut ae, mut bs, mut be) = (alen, 0usize, 0usize, 0usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if as_ == alen {
                as_ = i - 1;
                ae = i - 1;
                bs = j - 1;
                be = j - 1;
            } else if as_ == i && bs == j {
                as_ -= 1;
                bs -= 1;
            } else {
                emit = true;
            }
            if as_ == 0 || bs == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if as_ != alen {
                emit = true;
            }
        }
        if emit {
            let mlen = (ae - as_ + 1) as u64;
            if minmatchlen == 0 || mlen >= minmatchlen {
                matches.push([as_ as u64, ae as u64, bs as u64, be as u64, mlen]);
            }
            as_ = alen;
        }
    }
    if !getidx {
        out.bulk(&result);
        return Ok(());
    }
    out.map(2);
    out.bulk(b"matches");
    out.array(matches.len());
    for m in &matches {
        out.array(2 + withmatchlen as usize);
        out.array(2);
        out.int(m[0] as i64);
        out.int(m[1] as i64);
        out.array(2);
        out.int(m[2] as i64);
        out.int(m[3] as i64);
        if withmatchlen {
            out.int(m[4] as i64);
        }
    }
    out.bulk(b"len");
    out.int(lcs_len as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn getrange_indexes() {
        assert_eq!(range(0, 3, 13), Some((0, 3)));
        assert_eq!(range(-3, -1, 13), Some((10, 12)));
        assert_eq!(range(0, -1, 13), Some((0, 12)));
        assert_eq!(range(10, 100, 13), Some((10, 12)));
        assert_eq!(range(5, 3, 13), None);
        assert_eq!(range(-1, -5, 13), None);
        assert_eq!(range(0, 0, 0), None);
    }
}
