//! Commands: the table ([`table`]), the dispatcher ([`execute`]) and one
//! module per family, each parsing its arguments into a typed struct and
//! applying it.
//!
//! [`execute`] follows Redis's `processCommand` order: unknown command,
//! arity, authentication, MULTI queueing, then the handler.

pub mod connection;
pub mod keyspace;
pub mod server;
pub mod strings;
pub mod table;
pub mod transactions;

use bytes::Bytes;
use hybrid_log::StoreError;

use crate::conn::ConnState;
use crate::keyspace::{Db, Sess};
use crate::reply::Out;
use crate::server::Shared;
use table::{flag, Cmd, CommandSpec};

/// What a handler may fail with: engine errors become `-ERR <text>`.
pub type CmdResult = Result<(), StoreError>;

/// Everything a command handler can reach.
#[derive(Debug)]
pub struct Ctx<'a, 's> {
    /// Server state.
    pub shared: &'a Shared,
    /// This connection's state.
    pub conn: &'a mut ConnState,
    /// Pinned engine session of the batch.
    pub sess: &'a mut Sess<'s>,
    /// Reply buffer.
    pub out: &'a mut Out,
}

impl<'a, 's> Ctx<'a, 's> {
    /// The selected db and the reply buffer, borrowed together.
    pub fn db_out(&mut self) -> (Db<'_, 's>, &mut Out) {
        (
            Db::new(
                &self.shared.keyspace,
                self.sess,
                self.shared.stats.shard(self.conn.handle.id),
                self.conn.db,
            ),
            self.out,
        )
    }

    /// The selected db.
    pub fn db(&mut self) -> Db<'_, 's> {
        self.db_out().0
    }
}

/// Lossy UTF-8 of an argument (for error texts).
pub fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Redis's unknown-command text.
fn unknown_command(args: &[Bytes]) -> String {
    let mut list = String::new();
    for a in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        let s = lossy(a);
        let s: String = s.chars().take(room).collect();
        list.push('\'');
        list.push_str(&s);
        list.push_str("' ");
    }
    let name: String = lossy(&args[0]).chars().take(128).collect();
    let msg = format!("ERR unknown command '{name}', with args beginning with: {list}");
    msg.replace(['\r', '\n'], " ")
}

/// Executes one request (argv) with Redis's checks.
pub fn execute(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let Some(spec) = table::lookup(&args[0]) else {
        ctx.out.error(unknown_command(args).as_bytes());
        ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
        return;
    };
    if !spec.arity_ok(args.len()) {
        ctx.out.wrong_args(spec.name);
        ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
        return;
    }
    if !ctx.conn.authed && !spec.has(flag::NO_AUTH) {
        ctx.out.error(b"NOAUTH Authentication required.");
        ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
        return;
    }
    let idx = (spec as *const CommandSpec as usize - table::COMMANDS.as_ptr() as usize)
        / std::mem::size_of::<CommandSpec>();
    ctx.conn
        .handle
        .last_cmd
        .store(idx as u16 + 1, std::sync::atomic::Ordering::Relaxed);
    if ctx.conn.multi.is_some()
        && !matches!(
            spec.id,
            Cmd::Exec | Cmd::Discard | Cmd::Multi | Cmd::Watch | Cmd::Quit | Cmd::Reset
        )
    {
        if spec.has(flag::NO_MULTI) {
            ctx.out
                .error(b"ERR Command not allowed inside a transaction");
            ctx.conn.multi_dirty = true;
            return;
        }
        // Subcommand arity is checked at queue time too, like Redis.
        if let Some(err) = subcommand_arity_error(spec, args) {
            ctx.out.error(err.as_bytes());
            ctx.conn.multi_dirty = true;
            return;
        }
        if let Some(q) = ctx.conn.multi.as_mut() {
            q.push(args.to_vec());
            ctx.conn
                .handle
                .multi
                .store(q.len() as i64, std::sync::atomic::Ordering::Relaxed);
        }
        ctx.out.simple(b"QUEUED");
        return;
    }
    run(ctx, spec, args);
}

/// Arity error text for a container's subcommand, if any.
fn subcommand_arity_error(spec: &CommandSpec, args: &[Bytes]) -> Option<String> {
    if spec.subcommands.is_empty() || args.len() < 2 {
        return None;
    }
    let sub = table::lookup_sub(spec, &args[1])?;
    if table::arity_ok(sub.arity, args.len()) {
        None
    } else {
        Some(format!(
            "ERR wrong number of arguments for '{}|{}' command",
            spec.name, sub.name
        ))
    }
}

/// Runs a checked command (also used by EXEC for queued commands).
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let r = match spec.id {
        Cmd::Ping
        | Cmd::Echo
        | Cmd::Quit
        | Cmd::Hello
        | Cmd::Auth
        | Cmd::Select
        | Cmd::Reset
        | Cmd::Client => connection::run(ctx, spec, args),
        Cmd::Get
        | Cmd::Set
        | Cmd::SetNx
        | Cmd::SetEx
        | Cmd::PSetEx
        | Cmd::GetSet
        | Cmd::GetDel
        | Cmd::GetEx
        | Cmd::MGet
        | Cmd::MSet
        | Cmd::MSetNx
        | Cmd::Append
        | Cmd::StrLen
        | Cmd::GetRange
        | Cmd::SetRange
        | Cmd::Incr
        | Cmd::Decr
        | Cmd::IncrBy
        | Cmd::DecrBy
        | Cmd::IncrByFloat
        | Cmd::Lcs => strings::run(ctx, spec, args),
        Cmd::Info | Cmd::Time | Cmd::Config | Cmd::Command | Cmd::Shutdown => {
            server::run(ctx, spec, args)
        }
        Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Watch | Cmd::Unwatch => {
            transactions::run(ctx, spec, args)
        }
        // Whole-log walks: let the runtime move this worker's other tasks
        // to another thread while this one is busy.
        Cmd::Keys | Cmd::FlushDb | Cmd::FlushAll | Cmd::RandomKey => {
            tokio::task::block_in_place(|| keyspace::run(ctx, spec, args))
        }
        _ => keyspace::run(ctx, spec, args),
    };
    if let Err(e) = r {
        ctx.out.error(format!("ERR {e}").as_bytes());
    }
}

/// Encoded keys whose bucket latches the connection must hold while the
/// command runs, and whether exclusively; None for commands that touch at
/// most one key (they rely on the engine's per-record atomicity). Derived
/// from the table's key positions (plus the other-db keys of MOVE and
/// COPY ... DB): every multi-key command is atomic like in Redis, readers
/// (MGET, EXISTS, LCS) take the latches shared; EXEC takes those of all its
/// queued commands, exclusively.
pub fn keys_to_lock(
    shared: &Shared,
    conn: &ConnState,
    args: &[Bytes],
) -> Option<(Vec<Vec<u8>>, bool)> {
    let spec = table::lookup(&args[0])?;
    if !conn.authed || !spec.arity_ok(args.len()) {
        return None;
    }
    if conn.multi.is_some() && spec.id != Cmd::Exec {
        return None; // queued, not run
    }
    let mut out = Vec::new();
    if spec.id == Cmd::Exec {
        let mut db = conn.db;
        for a in conn.multi.as_ref()? {
            let Some(s) = table::lookup(&a[0]) else {
                continue;
            };
            if s.id == Cmd::Select {
                if let Some(d) = parse_db(shared, &a[1]) {
                    db = d;
                }
            }
            push_lock_keys(shared, s, a, db, &mut out);
        }
        return Some((out, true));
    }
    if spec.first_key == 0 {
        return None;
    }
    let cross_db = matches!(spec.id, Cmd::Move | Cmd::Copy);
    if !cross_db && spec.key_positions(args.len()).nth(1).is_none() {
        return None;
    }
    push_lock_keys(shared, spec, args, conn.db, &mut out);
    Some((out, spec.has(flag::WRITE)))
}

fn parse_db(shared: &Shared, b: &[u8]) -> Option<usize> {
    let d = crate::util::parse_i64(b)?;
    (d >= 0 && (d as usize) < shared.keyspace.databases()).then_some(d as usize)
}

fn push_lock_keys(
    shared: &Shared,
    spec: &CommandSpec,
    args: &[Bytes],
    db: usize,
    out: &mut Vec<Vec<u8>>,
) {
    let enc = |db: usize, k: &[u8]| {
        let mut v = Vec::with_capacity(k.len() + 1);
        v.push(shared.keyspace.phys(db));
        v.extend_from_slice(k);
        v
    };
    for p in spec.key_positions(args.len()) {
        out.push(enc(db, &args[p]));
    }
    match spec.id {
        Cmd::Move => {
            if let Some(d) = parse_db(shared, &args[2]) {
                out.push(enc(d, &args[1]));
            }
        }
        Cmd::Copy => {
            let mut i = 3;
            while i + 1 < args.len() {
                if is(&args[i], "db") {
                    if let Some(d) = parse_db(shared, &args[i + 1]) {
                        out.push(enc(d, &args[2]));
                    }
                }
                i += 1;
            }
        }
        _ => {}
    }
}

/// Parses an integer argument or replies the standard error.
pub fn int_arg(out: &mut Out, b: &[u8]) -> Option<i64> {
    let v = crate::util::parse_i64(b);
    if v.is_none() {
        out.not_integer();
    }
    v
}

/// Parses a logical db index or replies the Redis error.
pub fn db_arg(ctx: &mut Ctx<'_, '_>, b: &[u8]) -> Option<usize> {
    let v = int_arg(ctx.out, b)?;
    if v < 0 || v as usize >= ctx.shared.keyspace.databases() {
        ctx.out.error(b"ERR DB index is out of range");
        return None;
    }
    Some(v as usize)
}

/// Case-insensitive ASCII comparison of an argument with a keyword.
#[inline]
pub fn is(arg: &[u8], kw: &str) -> bool {
    arg.eq_ignore_ascii_case(kw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_text() {
        let args: Vec<Bytes> = vec!["foo".into(), "a".into(), "b".into()];
        assert_eq!(
            unknown_command(&args),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let args: Vec<Bytes> = vec!["foo".into()];
        assert_eq!(
            unknown_command(&args),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }
}
