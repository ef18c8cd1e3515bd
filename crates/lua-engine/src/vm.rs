//! One sandboxed Lua 5.1 VM with the `redis` API, built once per worker.
//!
//! Sandbox (what Redis 7 scripts may use): the base library minus
//! `loadfile`, `dofile`, `load`, `print`, `setfenv`, `getfenv`, `newproxy`
//! (finalizers would run inside another script's run) and `coroutine` (a
//! coroutine would run outside the kill hook); `loadstring` refuses bytecode;
//! `table`, `string`, `math`, `os.clock` only, `cjson`, `cmsgpack`, `bit`,
//! `struct`; no `io`, `package`/`require`, `debug`. Globals are read-only:
//! `_G` is an empty proxy over a hidden table, so creating *or replacing*
//! one raises `Attempt to modify a readonly table` and reading an
//! undefined one raises `Script attempted to access nonexistent global
//! variable`. Library tables are read-only proxies, `rawset` refuses them
//! and `_G`, and their metatables are locked, so one script cannot change
//! what the next one sees.
//!
//! `pcall`/`xpcall` are wrapped: after the protected call returns they
//! re-raise a pending abort (kill, memory limit, undeclared key), so a
//! script cannot swallow one.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use resp_codec::{Frame, Protocol};

use crate::{convert, CallAbort, Calls, Reply, HOOK_EVERY};

/// Version reported as `redis.REDIS_VERSION`.
pub const REDIS_VERSION: &str = "7.0.15";
/// `redis.REDIS_VERSION_NUM`.
pub const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// Why a run stops whatever the script does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// `SCRIPT KILL` / `FUNCTION KILL`.
    Killed,
    /// The VM's memory limit.
    Memory,
    /// A call touched an undeclared key: re-run exclusively.
    Undeclared,
    /// `FUNCTION LOAD` ran past its time limit.
    LoadTimeout,
    /// An inline run (on the caller's thread) ran past its budget: it is
    /// discarded and the request goes to a worker thread.
    Budget,
}

/// The per-run context `redis.call` and the hook read (swapped in and
/// out by the worker for each run; never rebuilt by the VM).
pub struct RunCtx {
    /// The host's command context (None while a library loads).
    pub calls: Option<Rc<RefCell<dyn Calls>>>,
    /// `redis.setresp(3)` was called.
    pub resp3: bool,
    /// Writes are refused.
    pub read_only: bool,
    /// Set by SCRIPT KILL / FUNCTION KILL.
    pub kill: Arc<AtomicBool>,
    /// The pending abort, if any.
    pub abort: Option<Abort>,
    /// Line of the script that raised the last `redis.call` error.
    pub err_line: Option<usize>,
    /// A function rather than an EVAL script (for the kill message).
    pub is_function: bool,
    /// Deadline of a library load or an inline run, and the abort it
    /// raises.
    pub deadline: Option<(Instant, Abort)>,
    /// `redis.call`s so far (when to read the clock).
    pub calls_made: u32,
}

impl std::fmt::Debug for RunCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCtx")
            .field("resp3", &self.resp3)
            .field("read_only", &self.read_only)
            .field("abort", &self.abort)
            .finish()
    }
}

thread_local! {
    /// The run in progress on this worker thread.
    pub static RUN: RefCell<Option<RunCtx>> = const { RefCell::new(None) };
}

impl RunCtx {
    /// A fresh context.
    pub fn new(kill: Arc<AtomicBool>) -> Self {
        RunCtx {
            calls: None,
            resp3: false,
            read_only: false,
            kill,
            abort: None,
            err_line: None,
            is_function: false,
            deadline: None,
            calls_made: 0,
        }
    }
}

/// The error text of an abort.
pub fn abort_message(a: Abort, is_function: bool) -> &'static str {
    match (a, is_function) {
        (Abort::Killed, false) => "ERR Script killed by user with SCRIPT KILL...",
        (Abort::Killed, true) => "ERR Script killed by user with FUNCTION KILL...",
        (Abort::Memory, _) => {
            "ERR Script exceeded the Lua VM memory limit (lua-memory-limit): nothing was applied"
        }
        (Abort::Undeclared, _) => "ERR Script accessed a key it did not declare",
        (Abort::LoadTimeout, _) => "ERR FUNCTION LOAD timeout",
        (Abort::Budget, _) => "ERR Script ran past its inline budget",
    }
}

/// Notes a kill (or, when `read_clock`, a passed deadline) as the pending
/// abort; returns the pending abort.
fn check_stop(ctx: &mut RunCtx, read_clock: bool) -> Option<Abort> {
    if ctx.abort.is_none() {
        if ctx.kill.load(Ordering::Acquire) {
            ctx.abort = Some(Abort::Killed);
        } else if let (true, Some((at, abort))) = (read_clock, ctx.deadline) {
            if Instant::now() >= at {
                ctx.abort = Some(abort);
            }
        }
    }
    ctx.abort
}

fn pending_abort() -> Option<(Abort, bool)> {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        let ctx = r.as_mut()?;
        check_stop(ctx, true).map(|a| (a, ctx.is_function))
    })
}

/// Calls between two clock reads of `redis.call` (a passed deadline is
/// noted by the hook too, every [`HOOK_EVERY`] instructions).
const CALLS_PER_CLOCK: u32 = 16;

/// What `redis.call` checks before it runs a command: a kill or an abort
/// already noted every time; a passed deadline only every
/// [`CALLS_PER_CLOCK`] calls (a clock read costs as much as a short call).
fn noted_abort() -> Option<(Abort, bool)> {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        let ctx = r.as_mut()?;
        ctx.calls_made = ctx.calls_made.wrapping_add(1);
        let read_clock = ctx.calls_made.is_multiple_of(CALLS_PER_CLOCK);
        check_stop(ctx, read_clock).map(|a| (a, ctx.is_function))
    })
}

/// rand48 state after `srand48(0)`.
pub const RAND48_SEED: u64 = 0x330E;

fn lrand48(state: &std::cell::Cell<u64>) -> i64 {
    let x = state.get().wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & ((1 << 48) - 1);
    state.set(x);
    (x >> 17) as i64
}

/// Replaces `math.random` / `math.randomseed` with per-VM rand48 versions
/// that follow Lua 5.1's argument rules.
fn install_random(lua: &Lua, globals: &Table, rng: &Rc<std::cell::Cell<u64>>) -> mlua::Result<()> {
    let math: Table = globals.raw_get("math")?;
    let st = rng.clone();
    math.raw_set(
        "random",
        lua.create_function(move |_, args: MultiValue| {
            const MAX: i64 = 0x7fff_ffff;
            let r = (lrand48(&st) % MAX) as f64 / MAX as f64;
            let num = |v: &Value| convert::lua_int(v);
            match args.len() {
                0 => Ok(Value::Number(r)),
                1 => {
                    let u = num(&args[0]).ok_or_else(|| {
                        mlua::Error::runtime("bad argument #1 to 'random' (number expected)")
                    })?;
                    if u < 1 {
                        return Err(mlua::Error::runtime(
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok(Value::Number((r * u as f64).floor() + 1.0))
                }
                2 => {
                    let (l, u) = match (num(&args[0]), num(&args[1])) {
                        (Some(l), Some(u)) => (l, u),
                        _ => {
                            return Err(mlua::Error::runtime(
                                "bad argument to 'random' (number expected)",
                            ))
                        }
                    };
                    if l > u {
                        return Err(mlua::Error::runtime(
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok(Value::Number((r * (u - l + 1) as f64).floor() + l as f64))
                }
                _ => Err(mlua::Error::runtime("wrong number of arguments")),
            }
        })?,
    )?;
    let st = rng.clone();
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: Value| {
            let s = convert::lua_int(&seed).unwrap_or(0) as u64;
            st.set(((s << 16) | 0x330E) & ((1 << 48) - 1));
            Ok(())
        })?,
    )?;
    Ok(())
}

/// One worker's VM and the handles the worker needs.
#[derive(Debug)]
pub struct Vm {
    /// The state.
    pub lua: Lua,
    /// The original `pcall`.
    pub raw_pcall: Function,
    /// The runs' driver: `run(f, is_function, nkeys, keys..., args...)`
    /// sets `KEYS`/`ARGV` (EVAL) and returns `pcall(f, KEYS, ARGV)`.
    pub run: Function,
    /// The table behind the globals (`_G` is an empty read-only proxy over
    /// it): where the worker sets `KEYS` and `ARGV`.
    pub globals: Table,
    /// `_G`, the environment of scripts and the `__index` of libraries'.
    pub proxy: Table,
    /// State of this VM's `math.random` (rand48, as Redis's
    /// `redisLrand48`): reset to [`RAND48_SEED`] before every run, so every
    /// run draws the same sequence (as in Redis) and one script's
    /// `math.randomseed` does not leak into the next. Per VM, unlike C's
    /// `rand()`, so parallel workers do not share it.
    pub rng: Rc<std::cell::Cell<u64>>,
    /// The real `redis` table (swapped into a library's environment once
    /// it has loaded).
    pub redis: Table,
}

/// Lua number formatting as Lua 5.1's `tostring` (`%.14g`).
pub fn fmt_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    if n == n.trunc() && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    // %.14g: 14 significant digits, trailing zeros trimmed.
    let exp = n.abs().log10().floor() as i32;
    if !(-5..14).contains(&exp) {
        let s = format!("{:.13e}", n);
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        let e: i32 = e.parse().unwrap_or(0);
        format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else {
        let decimals = (13 - exp).max(0) as usize;
        let s = format!("{:.*}", decimals, n);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// A number argument of `redis.call` as Redis 7.2 writes it
/// (`fpconv_dtoa`): the shortest digits that read back as the same double,
/// laid out as `%.17g` lays them out. Lua's own `%.14g` would lose
/// precision (`1/3`), which Redis avoids too.
pub fn fmt_arg_number(n: f64) -> String {
    if !n.is_finite() {
        return fmt_number(n);
    }
    if n == n.trunc() && n.abs() < 1e17 {
        return if n == 0.0 && n.is_sign_negative() {
            "-0".into()
        } else {
            format!("{}", n as i64)
        };
    }
    // `{:e}` gives the shortest round-trip digits: `3.333333333333333e-1`.
    let sci = format!("{n:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    if !(-4..17).contains(&exp) {
        return format!(
            "{sign}{mant}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if exp < 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// Converts `redis.call` arguments; Redis's error text on a bad one.
fn call_args(args: &MultiValue, out: &mut CallArgs) -> Result<(), &'static str> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    // One buffer for all arguments, each split off as a `Bytes` sharing it;
    // the buffer is reused by the next call once these are dropped.
    let buf = &mut out.buf;
    buf.reserve(64 * args.len());
    out.list.clear();
    for a in args {
        match a {
            Value::String(s) => buf.extend_from_slice(&s.as_bytes()),
            Value::Integer(i) => buf.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Number(n) => buf.extend_from_slice(fmt_arg_number(*n).as_bytes()),
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
        out.list.push(buf.split().freeze());
    }
    Ok(())
}

/// A `redis.call`'s arguments: reused from call to call on a thread.
#[derive(Default)]
struct CallArgs {
    buf: bytes::BytesMut,
    list: Vec<Bytes>,
}

thread_local! {
    static CALL_ARGS: RefCell<CallArgs> = RefCell::new(CallArgs::default());
}

/// The VM's memory limit (app data), for [`Unlimited`].
struct MemoryLimit(usize);

/// Lifts the VM's memory limit while Rust code (not the script) builds
/// values for it: under a limit, mlua runs every allocating API call in a
/// protected call of its own (a fresh C closure and a `lua_pcall` each),
/// which costs several times the allocation. The limit is back on drop,
/// before control returns to the script, whose next allocation past the
/// limit fails as before (a reply built meanwhile counts toward it).
pub(crate) struct Unlimited<'a> {
    lua: &'a Lua,
    limit: usize,
}

impl<'a> Unlimited<'a> {
    /// Lifts the limit of `lua` until the guard drops.
    pub(crate) fn new(lua: &'a Lua) -> Self {
        let limit = lua.app_data_ref::<MemoryLimit>().map_or(0, |l| l.0);
        if limit > 0 {
            let _ = lua.set_memory_limit(0);
        }
        Unlimited { lua, limit }
    }
}

impl Drop for Unlimited<'_> {
    fn drop(&mut self) {
        if self.limit > 0 {
            let _ = self.lua.set_memory_limit(self.limit);
        }
    }
}

/// `rawcall(protected, ...)`: runs one command through the run's
/// [`Calls`]. Returns `(reply, flag)`: flag nil = normal reply, 1 = an
/// error reply that `redis.call` raises, 2 = an abort both raise, 3 = a
/// status reply whose table the prelude builds (reply: its text, nil for
/// `OK`).
fn rawcall(lua: &Lua, (protected, args): (bool, MultiValue)) -> mlua::Result<(Value, Option<i64>)> {
    let _unlimited = Unlimited::new(lua);
    if let Some((a, f)) = noted_abort() {
        return Ok((
            Value::String(lua.create_string(abort_message(a, f))?),
            Some(2),
        ));
    }
    let mut call = CALL_ARGS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let parsed = call_args(&args, &mut call);
    drop(args);
    let r = match parsed {
        Ok(()) => run_call(lua, protected, &call.list),
        Err(msg) => {
            if !protected {
                raise_line(lua);
            }
            error_table(lua, msg.as_bytes()).map(|t| (t, (!protected).then_some(1)))
        }
    };
    call.list.clear();
    CALL_ARGS.with(|c| *c.borrow_mut() = call);
    r
}

/// `{err = msg}`.
fn error_table(lua: &Lua, msg: &[u8]) -> mlua::Result<Value> {
    convert::tagged(lua, "err", lua.create_string(msg)?)
}

/// Notes the line of the script whose `redis.call` raises an error.
fn raise_line(lua: &Lua) {
    let line = lua.inspect_stack(2, |d| d.current_line()).flatten();
    RUN.with(|r| {
        if let Some(c) = r.borrow_mut().as_mut() {
            c.err_line = line;
        }
    });
}

/// Runs one parsed call through the run's [`Calls`].
fn run_call(lua: &Lua, protected: bool, args: &[Bytes]) -> mlua::Result<(Value, Option<i64>)> {
    let (calls, resp3, read_only) = RUN.with(|r| {
        let r = r.borrow();
        match r.as_ref() {
            Some(c) => (c.calls.clone(), c.resp3, c.read_only),
            None => (None, false, false),
        }
    });
    let Some(calls) = calls else {
        let msg = b"ERR redis.call is not available while a library loads";
        return Ok((error_table(lua, msg)?, (!protected).then_some(1)));
    };
    let mut calls = calls.borrow_mut();
    let res = calls.call(args, resp3, read_only);
    match res {
        Err(CallAbort::Undeclared) => {
            RUN.with(|r| {
                if let Some(c) = r.borrow_mut().as_mut() {
                    c.abort = Some(Abort::Undeclared);
                }
            });
            Ok((
                Value::String(lua.create_string(abort_message(Abort::Undeclared, false))?),
                Some(2),
            ))
        }
        Ok(reply) => {
            let proto = if resp3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
            // A status reply comes back as its text (nil for the usual
            // `OK`) with flag 3: the prelude builds the `{ok = ...}` table
            // in Lua, which costs a fraction of building it through mlua.
            if let Some(text) = status_text(&reply) {
                let v = match text {
                    b"OK" => Value::Nil,
                    t => Value::String(lua.create_string(t)?),
                };
                return Ok((v, Some(3)));
            }
            let (v, is_err) = match reply {
                Reply::Frame(frame) => (
                    convert::reply_to_lua(lua, &frame, proto)?,
                    matches!(frame, Frame::Error(_)),
                ),
                Reply::Resp(bytes) => (
                    convert::resp_to_lua(lua, bytes, proto)?,
                    bytes.first() == Some(&b'-'),
                ),
            };
            drop(calls);
            if is_err && !protected {
                raise_line(lua);
                Ok((v, Some(1)))
            } else {
                Ok((v, None))
            }
        }
    }
}

/// The text of a reply that is one status line (`+text`).
fn status_text<'r>(reply: &'r Reply<'_>) -> Option<&'r [u8]> {
    match reply {
        Reply::Frame(Frame::Simple(s)) => Some(s),
        Reply::Frame(_) => None,
        Reply::Resp(bytes) => {
            let line = bytes.strip_prefix(b"+")?.strip_suffix(b"\r\n")?;
            (!line.contains(&b'\r')).then_some(line)
        }
    }
}

/// `abortcheck(ok, err)`: called by the `pcall` wrappers after the
/// protected call; notes a memory error as an abort and returns the
/// pending abort's message (to re-raise), or nil.
fn abortcheck(lua: &Lua, (ok, err): (bool, Value)) -> mlua::Result<Option<mlua::LuaString>> {
    if !ok {
        let oom = match &err {
            Value::String(s) => &*s.as_bytes() == b"not enough memory",
            Value::Error(e) => matches!(**e, mlua::Error::MemoryError(_)),
            _ => false,
        };
        if oom {
            RUN.with(|r| {
                if let Some(c) = r.borrow_mut().as_mut() {
                    c.abort.get_or_insert(Abort::Memory);
                }
            });
        }
    }
    match pending_abort() {
        Some((a, f)) => Ok(Some(lua.create_string(abort_message(a, f))?)),
        None => Ok(None),
    }
}

/// Installs the wrappers, the protections and the read-only proxies.
const PRELUDE: &str = r#"
local rawcall, abortcheck, loglevel = ...
local raw_pcall, raw_xpcall, raw_error, raw_rawset = pcall, xpcall, error, rawset
local raw_setmetatable, raw_type, raw_tostring = setmetatable, type, tostring
local G = _G

local function recheck(ok, ...)
  local e = abortcheck(ok, (...))
  if e then raw_error(e, 0) end
  return ok, ...
end
G.pcall = function(...) return recheck(raw_pcall(...)) end
G.xpcall = function(f, h) return recheck(raw_xpcall(f, h)) end

local redis = G.redis
redis.call = function(...)
  local r, flag = rawcall(false, ...)
  if flag then
    if flag == 3 then return {ok = r or 'OK'} end
    raw_error(r, 0)
  end
  return r
end
redis.pcall = function(...)
  local r, flag = rawcall(true, ...)
  if flag then
    if flag == 3 then return {ok = r or 'OK'} end
    if flag == 2 then raw_error(r, 0) end
  end
  return r
end
redis.error_reply = function(e)
  if raw_type(e) ~= 'string' then raw_error('wrong number or type of arguments', 2) end
  return {err = e}
end
redis.status_reply = function(s)
  if raw_type(s) ~= 'string' then raw_error('wrong number or type of arguments', 2) end
  return {ok = s}
end

local raw_loadstring = loadstring
G.loadstring = function(s, name)
  if raw_type(s) == 'string' and s:sub(1, 1) == '\27' then
    return nil, 'attempt to load a binary chunk (bytecode is not allowed)'
  end
  return raw_loadstring(s, name)
end
G.load, G.loadfile, G.dofile, G.print, G.coroutine, G.module, G.require = nil, nil, nil, nil, nil, nil, nil
G.setfenv, G.getfenv, G.newproxy, G.gcinfo = nil, nil, nil, nil
G.os = {clock = os.clock}

local readonly = {}
local function deny() raw_error('Attempt to modify a readonly table', 2) end
local function proxy(t)
  local p = raw_setmetatable({}, {__index = t, __newindex = deny, __metatable = false})
  readonly[p] = true
  return p
end
for _, name in ipairs({'string', 'table', 'math', 'os', 'redis', 'bit', 'cjson', 'cmsgpack', 'struct'}) do
  if G[name] ~= nil then G[name] = proxy(G[name]) end
end
G.rawset = function(t, k, v)
  if readonly[t] then deny() end
  return raw_rawset(t, k, v)
end
local smt = getmetatable('')
if smt then smt.__metatable = false end

-- Every global moves to a hidden table; _G stays empty, so any assignment
-- (to a new or an existing name) hits __newindex.
local real = {}
for k, v in next, G do real[k] = v end
for k in next, real do raw_rawset(G, k, nil) end
real._G = G
readonly[G] = true
raw_setmetatable(real, {
  __index = function(_, k)
    raw_error("Script attempted to access nonexistent global variable '" .. raw_tostring(k) .. "'", 2)
  end,
})
raw_setmetatable(G, {__index = real, __newindex = deny, __metatable = false})

-- The runs' driver: run(f, is_function, nkeys, keys..., args...) builds KEYS
-- and ARGV here (one call from Rust instead of one per table and element),
-- calls f(KEYS, ARGV) under the original pcall and returns its results.
-- EVAL scripts see KEYS and ARGV as globals for the run only.
local raw_select = select
local function clear(...)
  real.KEYS, real.ARGV = nil, nil -- real has no __newindex: plain sets
  return ...
end
local function run(f, is_function, nkeys, ...)
  local keys, argv = {...}, {}
  for i = nkeys + 1, raw_select('#', ...) do
    argv[i - nkeys] = keys[i]
    keys[i] = nil
  end
  if is_function then return raw_pcall(f, keys, argv) end
  real.KEYS, real.ARGV = keys, argv
  return clear(raw_pcall(f, keys, argv))
end
return real, run
"#;

impl Vm {
    /// Builds a VM: libraries, sandbox, `redis` API, hook, memory limit.
    pub fn new(memory_limit: usize) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS,
            LuaOptions::default(),
        )?;
        crate::libs::open_all(&lua)?;
        let globals = lua.globals();
        let redis = lua.create_table()?;
        redis.raw_set(
            "sha1hex",
            lua.create_function(|lua, s: mlua::LuaString| {
                lua.create_string(crate::scripts::sha1hex(&s.as_bytes()))
            })?,
        )?;
        redis.raw_set(
            "log",
            lua.create_function(|_, args: MultiValue| {
                let mut it = args.into_iter();
                let level = it.next().as_ref().and_then(convert::lua_int);
                let Some(level) = level else {
                    return Err(mlua::Error::runtime(
                        "First argument must be a number (log level).",
                    ));
                };
                let msg: Vec<String> = it
                    .map(|v| match v {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => fmt_number(n),
                        other => format!("{other:?}"),
                    })
                    .collect();
                let msg = msg.join(" ");
                match level {
                    0 => tracing::debug!(target: "lua", "{msg}"),
                    1 | 2 => tracing::info!(target: "lua", "{msg}"),
                    3 => tracing::warn!(target: "lua", "{msg}"),
                    _ => return Err(mlua::Error::runtime("Invalid debug level.")),
                }
                Ok(())
            })?,
        )?;
        redis.raw_set(
            "setresp",
            lua.create_function(|_, v: Value| {
                let n = convert::lua_int(&v);
                if n != Some(2) && n != Some(3) {
                    return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
                }
                RUN.with(|r| {
                    if let Some(c) = r.borrow_mut().as_mut() {
                        c.resp3 = n == Some(3);
                    }
                });
                Ok(())
            })?,
        )?;
        redis.raw_set(
            "set_repl",
            lua.create_function(|_, v: Value| match convert::lua_int(&v) {
                Some(0..=3) => Ok(()),
                _ => Err(mlua::Error::runtime(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                )),
            })?,
        )?;
        redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
        redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
        redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
        for (k, v) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
            ("REPL_NONE", 0),
            ("REPL_AOF", 1),
            ("REPL_SLAVE", 2),
            ("REPL_REPLICA", 2),
            ("REPL_ALL", 3),
        ] {
            redis.raw_set(k, v)?;
        }
        redis.raw_set("REDIS_VERSION", REDIS_VERSION)?;
        redis.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;
        globals.raw_set("redis", redis)?;
        let raw_pcall: Function = globals.raw_get("pcall")?;
        let prelude = lua.load(PRELUDE).set_name("=kvd_prelude").into_function()?;
        let rng = Rc::new(std::cell::Cell::new(RAND48_SEED));
        install_random(&lua, &globals, &rng)?;
        let (real, run): (Table, Function) = prelude.call((
            lua.create_function(rawcall)?,
            lua.create_function(abortcheck)?,
            Value::Nil,
        ))?;
        // The proxied redis table scripts see.
        let redis: Table = real.raw_get("redis")?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            |_lua, _debug| match pending_abort() {
                Some((a, f)) => Err(mlua::Error::runtime(abort_message(a, f))),
                None => Ok(VmState::Continue),
            },
        )?;
        if memory_limit > 0 {
            lua.set_memory_limit(memory_limit)?;
            lua.set_app_data(MemoryLimit(memory_limit));
        }
        Ok(Vm {
            lua,
            raw_pcall,
            run,
            globals: real,
            proxy: globals,
            redis,
            rng,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_like_lua() {
        assert_eq!(fmt_number(3.0), "3");
        assert_eq!(fmt_number(-2.5), "-2.5");
        assert_eq!(fmt_number(0.1), "0.1");
        assert_eq!(fmt_number(1.0 / 3.0), "0.33333333333333");
        assert_eq!(fmt_number(1e20), "1e+20");
        assert_eq!(fmt_number(1.5e-7), "1.5e-07");
        assert_eq!(fmt_number(123456.789), "123456.789");
    }

    #[test]
    fn call_arguments_keep_every_digit_like_redis() {
        for (n, text) in [
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-2.5, "-2.5"),
            (1.5, "1.5"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-1.5e-7, "-1.5e-07"),
            (1e20, "1e+20"),
            (1.25e17, "1.25e+17"),
            (12345678901234.5, "12345678901234.5"),
            (9007199254740992.0, "9007199254740992"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(fmt_arg_number(n), text, "{n:e}");
            if n.is_finite() {
                assert_eq!(
                    fmt_arg_number(n).parse::<f64>().unwrap(),
                    n,
                    "{n:e} reads back"
                );
            }
        }
    }
}
