//! The libraries Redis scripts use: `cjson`, `cmsgpack`, `bit`, `struct`.
//!
//! Each is a Rust port of the C library Redis 7 vendors (lua-cjson 2.1.0,
//! lua-cmsgpack 0.4.0, LuaBitOp 1.0.2, lua-struct 0.2 with Redis' fixes), with
//! the same results, the same error messages and the same limits, as the C has
//! them on a 64 bit little endian build.
//!
//! # How errors are raised
//!
//! A C library function raises its errors as Lua strings, with the position of
//! its caller in front (`luaL_error`), and `pcall(cjson.decode, s)` hands the
//! script that string. A Rust callback cannot raise a string: `mlua` turns every
//! error a callback returns into a userdata. So every library function a script
//! sees is a small Lua function (chunk [`WRAPPER_CHUNK`]) around the Rust one:
//! the Rust side returns `true, results` or `false, message, level`, and the Lua
//! side calls `error(message, level)`. Level 2 names the wrapper's caller, which
//! is what `luaL_where(L, 1)` names from inside a C function, so the message is
//! the C's to the byte: `user_script:1: Expected value but ...` when the script
//! called the function, no position when `pcall` (or any C function) did.
//!
//! Two differences remain, both from the wrapper being a Lua function rather
//! than a C one:
//!
//! * when a script *tail calls* a library function (`return cjson.decode(s)`),
//!   Lua drops the script's frame, so the message has no position in front,
//!   where Redis has `user_script:1:`;
//! * the debug information of the frame that raised the error is the wrapper's
//!   (source [`WRAPPER_CHUNK`]); an error handler that reports where a script
//!   failed should skip frames with that source.
//!
//! "bad argument #n to 'f'" names the function the way `luaL_argerror` does:
//! from the caller's call site (`'d'` for `local d = cjson.decode; d({})`,
//! `'?'` when called from C such as `pcall`, "calling 'f' on bad self" for a
//! method call), and the library's own name when the call was a tail call.
//!
//! # Limits
//!
//! Lua 5.1 caps a C function's stack at 8000 slots, and the C libraries run into
//! that cap on huge inputs; the ports report the same errors where the C would
//! (`stack overflow (...)`). Results are handed back through `unpack`, which
//! stops at 7997 values, so the few functions that return many values
//! (`cmsgpack.unpack*`, `struct.unpack`) fail with their C message a couple of
//! values earlier than the C does. JSON nesting is capped at 1000 levels even
//! when `cjson.encode_max_depth` / `cjson.decode_max_depth` allow more, so that
//! the recursion stays within a small thread stack and a bounded number of
//! `mlua` references.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use mlua::{Function, Lua, MaybeSend, MultiValue, Table, Value};

/// The chunk name of the Lua wrappers around the Rust library functions.
const WRAPPER_CHUNK: &str = "=[libs]";

/// The named registry slot holding the wrapper factories (for `cjson.new`).
const WRAPPERS_KEY: &str = "lua-engine.libs.wrappers";

/// The Lua side of every library function; see the module documentation.
const WRAPPERS: &str = r#"
local raise, spread, count = ...
local function one(raw)
  return function(...)
    local ok, a, b = raw(...)
    if ok then return a end
    raise(a, b)
  end
end
local function many(raw)
  return function(...)
    local ok, a, b = raw(...)
    if ok then return spread(b, 1, a) end
    raise(a, b)
  end
end
local function capped(raw, limit, over)
  return function(...)
    local ok, a, b
    if count('#', ...) > limit then
      ok, a, b = over()
    else
      ok, a, b = raw(...)
    end
    if ok then return a end
    raise(a, b)
  end
end
return { one = one, many = many, capped = capped }
"#;

/// The most values a library function hands back (what `unpack` can return).
pub(crate) const MAX_RESULTS: usize = 7997;

/// `LUAI_MAXCSTACK`: the most slots a C function may use on the Lua stack.
pub(crate) const LUA_MAX_CSTACK: usize = 8000;

/// Creates the global tables `bit`, `cjson`, `cmsgpack` and `struct`.
pub fn open_all(lua: &Lua) -> mlua::Result<()> {
    let wrap = Wrappers::load(lua)?;
    let globals = lua.globals();
    globals.set("bit", bit::open(lua, &wrap)?)?;
    globals.set("cjson", cjson::open(lua, &wrap)?)?;
    globals.set("cmsgpack", cmsgpack::open(lua, &wrap)?)?;
    globals.set("struct", structlib::open(lua, &wrap)?)?;
    Ok(())
}

/// Why a library function failed, in the shape the Lua wrapper raises it.
#[derive(Debug)]
pub(crate) enum Fail {
    /// `luaL_error`: the message, with the caller's position in front.
    Error(Vec<u8>),
    /// `luaL_argerror`: "bad argument #n to 'f' (message)", with position.
    Arg(i64, Vec<u8>),
    /// An error raised as is, without a position (a Lua runtime error such as
    /// "table index is nil", or a message that already has one).
    Plain(Vec<u8>),
    /// Anything else `mlua` reported (memory errors and the like), passed on.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        match e {
            mlua::Error::RuntimeError(msg) => Fail::Plain(msg.into_bytes()),
            other => Fail::Lua(other),
        }
    }
}

impl Fail {
    /// `luaL_error` with a message.
    pub(crate) fn error(msg: impl Into<Vec<u8>>) -> Self {
        Fail::Error(msg.into())
    }

    /// `luaL_argerror` with a message.
    pub(crate) fn arg(narg: i64, msg: impl Into<Vec<u8>>) -> Self {
        Fail::Arg(narg, msg.into())
    }

    /// `luaL_typerror`: "<expected> expected, got <type of argument narg>".
    pub(crate) fn type_error(narg: usize, expected: &str, args: &MultiValue) -> Self {
        let got = args.get(narg.wrapping_sub(1)).map_or("no value", typename);
        Fail::Arg(
            narg as i64,
            format!("{expected} expected, got {got}").into_bytes(),
        )
    }

    /// `luaL_checkstack` failing: "stack overflow (<msg>)".
    pub(crate) fn stack_overflow(msg: &str) -> Self {
        Fail::Error(format!("stack overflow ({msg})").into_bytes())
    }

    /// The values the raw function returns to its wrapper for this failure.
    fn into_return(self, lua: &Lua, name: &str) -> mlua::Result<MultiValue> {
        let (msg, level) = match self {
            Fail::Lua(e) => return Err(e),
            Fail::Error(msg) => (msg, 2),
            Fail::Plain(msg) => (msg, 0),
            Fail::Arg(narg, msg) => (arg_message(lua, name, narg, &msg), 2),
        };
        Ok(MultiValue::from_vec(vec![
            Value::Boolean(false),
            Value::String(lua.create_string(msg)?),
            Value::Integer(level),
        ]))
    }
}

/// The text of `luaL_argerror(L, narg, msg)`, naming the function the way the
/// C does: from the call site of the wrapper (stack level 1 seen from the raw
/// function).
fn arg_message(lua: &Lua, canonical: &str, narg: i64, msg: &[u8]) -> Vec<u8> {
    let names = lua
        .inspect_stack(1, |d| {
            let n = d.names();
            (
                n.name.map(|s| s.into_owned()),
                n.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let (name, method) = match names {
        (Some(name), method) => (name, method),
        (None, _) => {
            // No name: either a C function called the wrapper (the C library
            // says '?' then), or the wrapper was tail called, which the C
            // function would not have been, and it would know its name.
            let tail = lua
                .inspect_stack(2, |d| d.source().what == "tail")
                .unwrap_or(false);
            let name = if tail { canonical } else { "?" };
            (name.to_string(), false)
        }
    };
    let mut narg = narg;
    let mut out = Vec::with_capacity(msg.len() + name.len() + 32);
    if method {
        narg -= 1;
        if narg == 0 {
            out.extend_from_slice(format!("calling '{name}' on bad self (").as_bytes());
            out.extend_from_slice(msg);
            out.push(b')');
            return out;
        }
    }
    out.extend_from_slice(format!("bad argument #{narg} to '{name}' (").as_bytes());
    out.extend_from_slice(msg);
    out.push(b')');
    out
}

/// The Lua wrapper factories, see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Wrappers {
    one: Function,
    many: Function,
    capped: Function,
}

impl Wrappers {
    /// Builds the factories and keeps them in the registry for `cjson.new`.
    fn load(lua: &Lua) -> mlua::Result<Self> {
        let globals = lua.globals();
        let raise: Function = globals.raw_get("error")?;
        let spread: Function = globals.raw_get("unpack")?;
        let count: Function = globals.raw_get("select")?;
        let table: Table = lua
            .load(WRAPPERS)
            .set_name(WRAPPER_CHUNK)
            .call((raise, spread, count))?;
        lua.set_named_registry_value(WRAPPERS_KEY, &table)?;
        Self::from_table(&table)
    }

    /// The factories kept by [`Wrappers::load`].
    pub(crate) fn from_registry(lua: &Lua) -> mlua::Result<Self> {
        let table: Table = lua.named_registry_value(WRAPPERS_KEY)?;
        Self::from_table(&table)
    }

    fn from_table(table: &Table) -> mlua::Result<Self> {
        Ok(Self {
            one: table.raw_get("one")?,
            many: table.raw_get("many")?,
            capped: table.raw_get("capped")?,
        })
    }

    /// A library function returning one value.
    pub(crate) fn one<F>(&self, lua: &Lua, name: &'static str, f: F) -> mlua::Result<Function>
    where
        F: Fn(&Lua, &MultiValue) -> Result<Value, Fail> + MaybeSend + 'static,
    {
        let raw = lua.create_function(move |lua, args: MultiValue| match f(lua, &args) {
            Ok(v) => Ok(MultiValue::from_vec(vec![Value::Boolean(true), v])),
            Err(fail) => fail.into_return(lua, name),
        })?;
        self.one.call(raw)
    }

    /// A library function returning `n` values, handed over in a table.
    pub(crate) fn many<F>(&self, lua: &Lua, name: &'static str, f: F) -> mlua::Result<Function>
    where
        F: Fn(&Lua, &MultiValue) -> Result<(usize, Table), Fail> + MaybeSend + 'static,
    {
        let raw = lua.create_function(move |lua, args: MultiValue| match f(lua, &args) {
            Ok((n, t)) => Ok(MultiValue::from_vec(vec![
                Value::Boolean(true),
                Value::Integer(n as i64),
                Value::Table(t),
            ])),
            Err(fail) => fail.into_return(lua, name),
        })?;
        self.many.call(raw)
    }

    /// A library function returning one value that refuses more than `limit`
    /// arguments with `over()` before they reach Rust (each string argument
    /// would otherwise take an `mlua` reference).
    pub(crate) fn capped<F>(
        &self,
        lua: &Lua,
        name: &'static str,
        limit: usize,
        over: fn() -> Fail,
        f: F,
    ) -> mlua::Result<Function>
    where
        F: Fn(&Lua, &MultiValue) -> Result<Value, Fail> + MaybeSend + 'static,
    {
        let raw = lua.create_function(move |lua, args: MultiValue| match f(lua, &args) {
            Ok(v) => Ok(MultiValue::from_vec(vec![Value::Boolean(true), v])),
            Err(fail) => fail.into_return(lua, name),
        })?;
        let over = lua.create_function(move |lua, ()| over().into_return(lua, name))?;
        self.capped.call((raw, limit, over))
    }
}

/// `lua_typename(lua_type(v))` as Lua 5.1 spells it.
pub(crate) fn typename(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `lua_tonumber`: a number, or a string that reads as one.
pub(crate) fn to_number(lua: &Lua, v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(_) => lua.coerce_number(v.clone()).ok().flatten(),
        _ => None,
    }
}

/// `luaL_checknumber` on argument `narg` (1 based).
pub(crate) fn check_number(lua: &Lua, args: &MultiValue, narg: usize) -> Result<f64, Fail> {
    args.get(narg - 1)
        .and_then(|v| to_number(lua, v))
        .ok_or_else(|| Fail::type_error(narg, "number", args))
}

/// `luaL_checkinteger` on argument `narg` (1 based): the number truncated the
/// way `(lua_Integer)d` does on x86-64.
pub(crate) fn check_integer(lua: &Lua, args: &MultiValue, narg: usize) -> Result<i64, Fail> {
    check_number(lua, args, narg).map(c_double_to_i64)
}

/// `luaL_optinteger` on argument `narg` (1 based).
pub(crate) fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    default: i64,
) -> Result<i64, Fail> {
    match args.get(narg - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => check_integer(lua, args, narg),
    }
}

/// `luaL_checklstring` on argument `narg` (1 based): a string, or a number
/// converted to one.
pub(crate) fn check_string(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
) -> Result<mlua::LuaString, Fail> {
    match args.get(narg - 1) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(v.clone())?
            .ok_or_else(|| Fail::type_error(narg, "string", args)),
        _ => Err(Fail::type_error(narg, "string", args)),
    }
}

/// `(int64_t)d` as x86-64 computes it: truncation, and `INT64_MIN` for NaN and
/// anything out of range.
pub(crate) fn c_double_to_i64(d: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// `(int)d` as x86-64 computes it: truncation, and `INT_MIN` for NaN and
/// anything out of range.
pub(crate) fn c_double_to_i32(d: f64) -> i32 {
    if d > -2_147_483_649.0 && d < 2_147_483_648.0 {
        d as i32
    } else {
        i32::MIN
    }
}

/// Appends `x` formatted as C's `printf("%.<prec>g", x)` does (glibc).
pub(crate) fn format_g(out: &mut Vec<u8>, x: f64, prec: usize) {
    if x.is_nan() {
        out.extend_from_slice(if x.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x < 0.0 { b"-inf" } else { b"inf" });
        return;
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let a = x.abs();
    if a == 0.0 {
        out.push(b'0');
        return;
    }
    let p = prec.max(1);
    let sci = format!("{:.*e}", p - 1, a);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        out.extend_from_slice(trim_fraction(mantissa).as_bytes());
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let digits = exp.unsigned_abs().to_string();
        if digits.len() < 2 {
            out.push(b'0');
        }
        out.extend_from_slice(digits.as_bytes());
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        let fixed = format!("{a:.decimals$}");
        out.extend_from_slice(trim_fraction(&fixed).as_bytes());
    }
}

/// Drops the trailing zeros of a fraction, and the point if nothing is left.
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use mlua::{FromLuaMulti, Lua};

    /// A fresh state with the libraries open.
    pub(crate) fn lua() -> Lua {
        let lua = Lua::new();
        super::open_all(&lua).expect("open_all");
        lua
    }

    /// Runs `code` as the chunk `user_script` and converts its results.
    pub(crate) fn eval<T: FromLuaMulti>(lua: &Lua, code: &str) -> T {
        match lua.load(code).set_name("=user_script").eval::<T>() {
            Ok(v) => v,
            Err(e) => panic!("script {code:?} failed: {e}"),
        }
    }

    /// Runs `code`, which must fail, and returns the Lua error message.
    pub(crate) fn error(lua: &Lua, code: &str) -> String {
        match lua.load(code).set_name("=user_script").exec() {
            Ok(()) => panic!("script {code:?} did not fail"),
            // mlua appends a traceback to errors that reach Rust.
            Err(mlua::Error::RuntimeError(msg)) => match msg.split_once("\nstack traceback:") {
                Some((head, _)) => head.to_string(),
                None => msg,
            },
            Err(e) => panic!("script {code:?} failed with a non-string error: {e:?}"),
        }
    }

    /// The message `pcall` hands a script for `code` (a function body).
    pub(crate) fn pcall_message(lua: &Lua, code: &str) -> String {
        let script = format!("local ok, e = pcall(function() {code} end) assert(not ok) return e");
        eval::<String>(lua, &script)
    }

    /// Lua bytes as a lowercase hex string.
    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{error, eval, lua};
    use super::*;

    fn g(x: f64, p: usize) -> String {
        let mut out = Vec::new();
        format_g(&mut out, x, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn format_g_matches_printf() {
        assert_eq!(g(0.0, 14), "0");
        assert_eq!(g(-0.0, 14), "-0");
        assert_eq!(g(100.0, 14), "100");
        assert_eq!(g(0.1, 14), "0.1");
        assert_eq!(g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(g(1e15, 14), "1e+15");
        assert_eq!(g(1e14, 14), "1e+14");
        assert_eq!(g(99_999_999_999_999.0, 14), "99999999999999");
        assert_eq!(g(999_999_999_999_999.0, 14), "1e+15");
        assert_eq!(g(12_345_678_901_234.0, 14), "12345678901234");
        assert_eq!(g(0.0001, 14), "0.0001");
        assert_eq!(g(0.00001, 14), "1e-05");
        assert_eq!(g(-1.5e-300, 14), "-1.5e-300");
        assert_eq!(g(1e300, 14), "1e+300");
        assert_eq!(g(f64::INFINITY, 14), "inf");
        assert_eq!(g(f64::NEG_INFINITY, 14), "-inf");
        assert_eq!(g(1.23456, 3), "1.23");
        assert_eq!(g(1234.5, 1), "1e+03");
        assert_eq!(g(0.5, 1), "0.5");
        assert_eq!(g(2.5, 1), "2");
        assert_eq!(g(1023.2, 14), "1023.2");
    }

    #[test]
    fn format_g_matches_printf_on_random_doubles() {
        // (bits, precision, what C's printf("%.<precision>g") prints)
        let cases: &[(u64, usize, &str)] = &[
            (17485029721327973432, 14, "-1.9890326613666e+244"),
            (7283207964119141687, 14, "7.761117632285e+178"),
            (890727360438182992, 14, "3.9804983586976e-249"),
            (15149836622520594227, 14, "-1.5432835417341e+88"),
            (1736392818365009963, 14, "1.3647584518758e-192"),
            (10750541312280087032, 14, "-1.3701135617873e-206"),
            (16781078052021535861, 14, "-1.7160537630466e+197"),
            (3960482443532127989, 14, "6.2946752411954e-44"),
            (1585446675937841368, 14, "1.0613447212142e-202"),
            (7713914763314685786, 14, "4.7083251603875e+207"),
            (4439448776366754703, 14, "6.3870161585136e-12"),
            (10165027665383847897, 14, "-9.9731303785687e-246"),
            (1090396360377453094, 14, "8.7797532256803e-236"),
            (10430779633273967791, 14, "-5.795503248499e-228"),
            (17477362246067780643, 14, "-5.988180159386e+243"),
            (11632994891556335705, 14, "-1.3060523885278e-147"),
            (10754394637803157173, 14, "-2.4361176994848e-206"),
            (1141153371300629929, 14, "2.2333869991502e-232"),
            (10801332806156616911, 14, "-3.5152797062667e-203"),
            (914761360679426580, 14, "1.5987381841033e-247"),
            (4078239883182463692, 14, "4.6678633181812e-36"),
            (10268654918125279152, 14, "-8.4418727921055e-239"),
            (2456641775679608523, 14, "1.9015657400797e-144"),
            (7731750658069747094, 14, "7.3704377007067e+208"),
            (9973894190648387236, 14, "-1.7163996725273e-258"),
            (10531498782278263232, 14, "-3.236719083212e-221"),
            (10334922596725336632, 14, "-2.2818334634713e-234"),
            (12580729232405932079, 14, "-3.0536383926309e-84"),
            (1901042282212365707, 14, "1.3449551894628e-181"),
            (10536861175493410705, 14, "-7.3174959760626e-221"),
            (3465608723044488519, 14, "5.2498223088143e-77"),
            (1797276903956378115, 14, "1.5450754142984e-188"),
            (13136125050165459753, 14, "-3.9536256982248e-47"),
            (10410757471710933047, 14, "-2.724912674765e-229"),
            (11418711589407294900, 14, "-6.5051418615488e-162"),
            (9157231070389319135, 14, "1.441484839556e+304"),
            (9808507260218814804, 14, "-1.4583679262759e-269"),
            (14337340360533389438, 14, "-7.9394166688077e+33"),
            (8588838448975835887, 14, "1.42551839897e+266"),
            (17034486841352872401, 14, "-1.5253157012324e+214"),
            (4602678819172646912, 14, "0.5"),
            (4609434218613702656, 14, "1.5"),
            (4612811918334230528, 14, "2.5"),
            (4532020583610935537, 14, "1e-05"),
            (4728057454355442549, 14, "123456789.12346"),
            (4921056587992461136, 14, "1e+21"),
            (1, 14, "4.9406564584125e-324"),
            (9218868437227405311, 14, "1.7976931348623e+308"),
            (4599075939470750516, 14, "0.3"),
            (4636737291354636288, 14, "100"),
            (4816244402031689728, 14, "1e+14"),
            (4801453603149578240, 14, "10000000000000"),
            (4831355200913801176, 14, "1e+15"),
            (4548686775598975835, 14, "0.00012345678901234"),
            (17485029721327973432, 3, "-1.99e+244"),
            (7283207964119141687, 3, "7.76e+178"),
            (890727360438182992, 3, "3.98e-249"),
            (15149836622520594227, 3, "-1.54e+88"),
            (1736392818365009963, 3, "1.36e-192"),
            (10750541312280087032, 3, "-1.37e-206"),
            (16781078052021535861, 3, "-1.72e+197"),
            (3960482443532127989, 3, "6.29e-44"),
            (1585446675937841368, 3, "1.06e-202"),
            (7713914763314685786, 3, "4.71e+207"),
        ];
        for &(bits, prec, want) in cases {
            assert_eq!(
                g(f64::from_bits(bits), prec),
                want,
                "{}",
                f64::from_bits(bits)
            );
        }
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_double_to_i64(1.9), 1);
        assert_eq!(c_double_to_i64(-1.9), -1);
        assert_eq!(c_double_to_i64(f64::NAN), i64::MIN);
        assert_eq!(c_double_to_i64(1e19), i64::MIN);
        assert_eq!(c_double_to_i64(i64::MIN as f64), i64::MIN);
        assert_eq!(c_double_to_i32(2_147_483_647.5), i32::MAX);
        assert_eq!(c_double_to_i32(2_147_483_648.0), i32::MIN);
        assert_eq!(c_double_to_i32(-2_147_483_648.9), i32::MIN);
    }

    #[test]
    fn globals_exist_and_are_complete() {
        let lua = lua();
        let counts: (i64, i64, i64, i64) = eval(
            &lua,
            "local function n(t) local c = 0 for _ in pairs(t) do c = c + 1 end return c end
             return n(cjson), n(cmsgpack), n(bit), n(struct)",
        );
        assert_eq!(counts, (13, 8, 12, 3));
        let kinds: String = eval(
            &lua,
            "return type(bit.band) .. type(cjson.encode) .. type(cmsgpack.pack) .. type(struct.pack)",
        );
        assert_eq!(kinds, "functionfunctionfunctionfunction");
    }

    #[test]
    fn errors_carry_the_callers_position_like_lual_error() {
        let lua = lua();
        // Called from the script: the script's position.
        assert_eq!(
            error(&lua, "local x = bit.band('x')"),
            "user_script:1: bad argument #1 to 'band' (number expected, got string)"
        );
        assert_eq!(
            error(
                &lua,
                "local a = 1\nlocal b = 2\nlocal x = cjson.decode('[1')"
            ),
            "user_script:3: Expected comma or array end but found T_END at character 3"
        );
        // Called from C (pcall): no position and no name.
        let msg: String = eval(&lua, "local ok, e = pcall(cjson.decode, '[1') return e");
        assert_eq!(
            msg,
            "Expected comma or array end but found T_END at character 3"
        );
        let msg: String = eval(&lua, "local ok, e = pcall(cjson.decode, {}) return e");
        assert_eq!(msg, "bad argument #1 to '?' (string expected, got table)");
        // The name the call site used.
        assert_eq!(
            error(&lua, "local d = cjson.decode local x = d({})"),
            "user_script:1: bad argument #1 to 'd' (string expected, got table)"
        );
        assert_eq!(
            error(&lua, "local x = cjson:decode('1')"),
            "user_script:1: calling 'decode' on bad self (expected 1 argument)"
        );
        // A tail call keeps the library's own name (the position is lost).
        assert_eq!(
            error(&lua, "return bit.band('x')"),
            "bad argument #1 to 'band' (number expected, got string)"
        );
        // Errors are strings, as the C raises them.
        let kind: String = eval(
            &lua,
            "local ok, e = pcall(cjson.encode, print) return type(e)",
        );
        assert_eq!(kind, "string");
    }

    #[test]
    fn deep_structures_need_little_stack() {
        // Nesting is handled without recursion (msgpack encoding stops at 16
        // levels), so even a small thread stack is enough at the limits.
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let lua = lua();
                let ok: bool = eval(
                    &lua,
                    "local t = {} local c = t
                     for i = 1, 999 do c.a = {1} c = c.a end
                     local d = cjson.decode(cjson.encode(t))
                     for i = 1, 999 do d = d.a end
                     local a = cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))
                     local m = cmsgpack.unpack(string.rep('\\145', 3999) .. '\\1')
                     local n = cmsgpack.unpack(string.rep('\\129\\1', 3999) .. '\\1')
                     local s = cmsgpack.pack(d, a, m, n)
                     return d[1] == 1 and #s > 0",
                );
                assert!(ok);
            })
            .expect("spawn");
        worker.join().expect("deep structures on a small stack");
    }

    #[test]
    fn libraries_survive_read_only_globals() {
        let lua = lua();
        eval::<()>(
            &lua,
            "setmetatable(_G, {__newindex = function() error('read only') end})
             error = nil; unpack = nil; select = nil",
        );
        let out: String = eval(&lua, "return cjson.encode({1, 2, 3})");
        assert_eq!(out, "[1,2,3]");
        assert_eq!(
            error(&lua, "local x = bit.tobit()"),
            "user_script:1: bad argument #1 to 'tobit' (number expected, got no value)"
        );
    }
}
