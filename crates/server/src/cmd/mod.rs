//! Commands: the table ([`table`]), the dispatcher ([`execute`]) and one
//! module per family, each parsing its arguments into a typed struct and
//! applying it.
//!
//! [`execute`] follows Redis's `processCommand` order: unknown command,
//! arity, authentication, MULTI queueing, then the handler.

pub mod connection;
pub mod keyspace;
pub mod scripting;
pub mod server;
pub mod strings;
pub mod table;
pub mod transactions;

use bytes::Bytes;
use hybrid_log::StoreError;

use crate::conn::ConnState;
use crate::keylock;
use crate::keyspace::{Db, Sess};
use crate::persist;
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

/// Resolves `args[1]` as a subcommand of the container command `spec`
/// (CLIENT, CONFIG, COMMAND). Replies Redis's unknown-subcommand or arity
/// error and returns None when there is no such subcommand or the argument
/// count is wrong for it.
pub fn subcommand(
    out: &mut Out,
    spec: &table::CommandSpec,
    args: &[Bytes],
) -> Option<&'static table::SubSpec> {
    let Some(sub) = table::lookup_sub(spec, &args[1]) else {
        out.error(
            format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                lossy(&args[1]).chars().take(128).collect::<String>(),
                spec.name.to_ascii_uppercase()
            )
            .as_bytes(),
        );
        return None;
    };
    if !table::arity_ok(sub.arity, args.len()) {
        out.wrong_args(&format!("{}|{}", spec.name, sub.name));
        return None;
    }
    Some(sub)
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
    execute_spec(ctx, table::lookup(&args[0]), args);
}

/// [`execute`] with the command already looked up: `spec` is
/// `table::lookup(&args[0])` (the connection looks it up once for both
/// [`lock_plan`] and this).
pub fn execute_spec(ctx: &mut Ctx<'_, '_>, spec: Option<&'static CommandSpec>, args: &[Bytes]) {
    let Some(spec) = spec else {
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
    if !ctx.shared.persist.last_ok()
        && misconf_applies(ctx, spec)
        && persist::refuse_writes(ctx.shared)
    {
        ctx.out.error(persist::MISCONF);
        ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
        if spec.id == Cmd::Exec {
            // Redis discards the transaction.
            ctx.conn.multi = None;
            ctx.conn.multi_dirty = false;
            ctx.conn
                .handle
                .multi
                .store(-1, std::sync::atomic::Ordering::Relaxed);
            let shared = ctx.shared;
            ctx.conn.unwatch_all(shared);
        }
        return;
    }
    if spec.has(flag::DENYOOM) && crate::evict::oom(ctx.shared) {
        ctx.out
            .error(b"OOM command not allowed when used memory > 'maxmemory'.");
        ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
        return;
    }
    if let Some(e) = ctx.shared.keyspace.aof.get().and_then(|a| a.failure()) {
        if misconf_applies(ctx, spec) && spec.id != Cmd::Ping {
            ctx.out.error(e.to_string().as_bytes());
            ctx.conn.multi_dirty |= ctx.conn.multi.is_some();
            return;
        }
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

/// Commands refused with MISCONF after a failed save: writes (including an
/// EXEC with queued writes) and PING, like Redis.
fn misconf_applies(ctx: &Ctx<'_, '_>, spec: &CommandSpec) -> bool {
    match spec.id {
        Cmd::Ping => true,
        Cmd::Exec => ctx.conn.multi.as_ref().is_some_and(|q| {
            q.iter()
                .any(|a| table::lookup(&a[0]).is_some_and(|s| s.has(flag::WRITE)))
        }),
        _ => spec.has(flag::WRITE),
    }
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

/// Runs a checked command (also used by EXEC for queued commands). With
/// the AOF on, a write that changed something (Redis's `dirty`) logs its
/// effect: the rewrite the handler left in [`crate::keyspace::Effects`], or
/// its arguments.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let before = ctx.sess.fx().changes;
    run_handler(ctx, spec, args);
    let db = ctx.conn.db;
    let fx = ctx.sess.fx();
    let rewrite = fx.rewrite.take();
    if fx.enabled && fx.changes != before && spec.has(flag::WRITE) && spec.id != Cmd::Exec {
        match rewrite {
            Some(a) => fx.log(db, &a),
            None => fx.log(db, args),
        }
    }
}

fn run_handler(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
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
        Cmd::Info
        | Cmd::Time
        | Cmd::Config
        | Cmd::Command
        | Cmd::Shutdown
        | Cmd::Save
        | Cmd::BgSave
        | Cmd::LastSave
        | Cmd::BgRewriteAof => server::run(ctx, spec, args),
        Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Watch | Cmd::Unwatch => {
            transactions::run(ctx, spec, args)
        }
        Cmd::Eval
        | Cmd::EvalRo
        | Cmd::EvalSha
        | Cmd::EvalShaRo
        | Cmd::FCall
        | Cmd::FCallRo
        | Cmd::Script
        | Cmd::Function => scripting::run(ctx, spec, args),
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

/// Which key locks ([`crate::keylock`]) the connection takes around one
/// request.
#[derive(Debug, PartialEq, Eq)]
pub enum LockPlan {
    /// No key, or queued inside MULTI: nothing.
    None,
    /// A single-key read: wait while the key's stripe is held exclusively.
    Read(usize),
    /// A single-key write: hold the key's stripe shared.
    Write(usize),
    /// A multi-key command or EXEC: these stripes, exclusively (`true`) or
    /// shared.
    Multi(Vec<usize>, bool),
    /// SWAPDB, FLUSHDB, FLUSHALL: the write gate
    /// ([`crate::keyspace::Keyspace::gate`]) exclusively.
    Gate,
    /// SAVE, SHUTDOWN: run without the batch's shared gate (a checkpoint
    /// takes it exclusively).
    Ungated,
}

/// The key locks a request needs, derived from the table's key positions
/// (plus the other-db keys of MOVE and COPY ... DB). Every multi-key command
/// is atomic like in Redis: writers take their stripes exclusively, readers
/// (MGET, EXISTS, LCS) shared; EXEC takes those of all its queued commands,
/// exclusively. Single-key commands get a stripe number without allocating.
/// `spec` is `table::lookup(&args[0])`.
pub fn lock_plan(
    shared: &Shared,
    conn: &ConnState,
    spec: Option<&'static CommandSpec>,
    args: &[Bytes],
) -> LockPlan {
    let Some(spec) = spec else {
        return LockPlan::None;
    };
    if !conn.authed || !spec.arity_ok(args.len()) {
        return LockPlan::None;
    }
    if conn.multi.is_some() && spec.id != Cmd::Exec {
        return LockPlan::None; // queued, not run
    }
    if spec.id == Cmd::Exec {
        let Some(queue) = conn.multi.as_ref() else {
            return LockPlan::None;
        };
        let mut out = Vec::new();
        let mut db = conn.db;
        for a in queue {
            let Some(s) = table::lookup(&a[0]) else {
                continue;
            };
            if matches!(s.id, Cmd::SwapDb | Cmd::FlushDb | Cmd::FlushAll) {
                // Whole-db commands inside EXEC: the whole EXEC runs under
                // the write gate exclusively (no stripes needed).
                return LockPlan::Gate;
            }
            if s.id == Cmd::Select {
                if let Some(d) = parse_db(shared, &a[1]) {
                    db = d;
                }
            }
            push_lock_keys(shared, s, a, db, &mut out);
        }
        return LockPlan::Multi(out, true);
    }
    if matches!(spec.id, Cmd::SwapDb | Cmd::FlushDb | Cmd::FlushAll) {
        return LockPlan::Gate;
    }
    if matches!(spec.id, Cmd::Save | Cmd::Shutdown) {
        return LockPlan::Ungated;
    }
    if spec.first_key == 0 {
        return LockPlan::None;
    }
    let cross_db = matches!(spec.id, Cmd::Move | Cmd::Copy);
    let mut positions = spec.key_positions(args.len());
    let Some(first) = positions.next() else {
        return LockPlan::None;
    };
    if !cross_db && positions.next().is_none() {
        let s = keylock::stripe(shared.keyspace.phys(conn.db), &args[first]);
        return if spec.has(flag::WRITE) {
            LockPlan::Write(s)
        } else {
            LockPlan::Read(s)
        };
    }
    let mut out = Vec::new();
    push_lock_keys(shared, spec, args, conn.db, &mut out);
    LockPlan::Multi(out, spec.has(flag::WRITE))
}

fn parse_db(shared: &Shared, b: &[u8]) -> Option<usize> {
    let d = crate::util::parse_i64(b)?;
    (d >= 0 && (d as usize) < shared.keyspace.databases()).then_some(d as usize)
}

/// Pushes the stripes of the keys `args` names (in logical db `db`,
/// plus MOVE/COPY ... DB targets) onto `out`.
pub fn push_lock_keys(
    shared: &Shared,
    spec: &CommandSpec,
    args: &[Bytes],
    db: usize,
    out: &mut Vec<usize>,
) {
    let stripe = |db: usize, k: &[u8]| keylock::stripe(shared.keyspace.phys(db), k);
    for p in spec.key_positions(args.len()) {
        out.push(stripe(db, &args[p]));
    }
    match spec.id {
        Cmd::Move => {
            if let Some(d) = parse_db(shared, &args[2]) {
                out.push(stripe(d, &args[1]));
            }
        }
        Cmd::Copy => {
            let mut i = 3;
            while i + 1 < args.len() {
                if is(&args[i], "db") {
                    if let Some(d) = parse_db(shared, &args[i + 1]) {
                        out.push(stripe(d, &args[2]));
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
