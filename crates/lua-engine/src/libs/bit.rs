//! `bit`: LuaBitOp 1.0.2, as Redis vendors it (`deps/lua/src/lua_bit.c`).
//!
//! Every argument is normalised to 32 bits the way LuaBitOp does it, by adding
//! 2^52 + 2^51 to the double and keeping the low word of its bits (so `1.5`
//! rounds to `2` and `2^32 + 1` wraps to `1`), and every result is a signed
//! 32 bit number. A string that reads as a number is a number; anything else is
//! "number expected".

use super::{to_number, Fail, Wrappers};
use mlua::{Lua, MultiValue, Table, Value};

/// `barg`: argument `narg` (1 based) as 32 bits.
fn barg(lua: &Lua, args: &MultiValue, narg: usize) -> Result<u32, Fail> {
    let n = args.get(narg - 1).and_then(|v| to_number(lua, v));
    let b = tobits(n.unwrap_or(0.0));
    if b == 0 && n.is_none() {
        return Err(Fail::type_error(narg, "number", args));
    }
    Ok(b)
}

/// The low 32 bits of `n + 2^52 + 2^51`, which is `n` rounded to an integer
/// modulo 2^32 for any `|n| < 2^51`.
fn tobits(n: f64) -> u32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

/// `BRET`: a result as the signed 32 bit number LuaBitOp returns.
fn ret(b: u32) -> Value {
    Value::Number(f64::from(b as i32))
}

/// The functions that fold all their arguments with one operator.
fn fold(lua: &Lua, args: &MultiValue, op: fn(u32, u32) -> u32) -> Result<Value, Fail> {
    let mut b = barg(lua, args, 1)?;
    // The C walks the arguments from the last one down to the second.
    for i in (2..=args.len()).rev() {
        b = op(b, barg(lua, args, i)?);
    }
    Ok(ret(b))
}

/// The shifts and rotations: the count is taken modulo 32.
fn shift(lua: &Lua, args: &MultiValue, op: fn(u32, u32) -> u32) -> Result<Value, Fail> {
    let b = barg(lua, args, 1)?;
    let n = barg(lua, args, 2)? & 31;
    Ok(ret(op(b, n)))
}

fn tohex(lua: &Lua, args: &MultiValue) -> Result<Value, Fail> {
    let mut b = barg(lua, args, 1)?;
    let mut n = if args.len() < 2 {
        8
    } else {
        barg(lua, args, 2)? as i32
    };
    // Redis' fix: -INT32_MIN overflows.
    if n == i32::MIN {
        n = i32::MIN + 1;
    }
    let digits: &[u8; 16] = if n < 0 {
        n = -n;
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let n = n.min(8) as usize;
    let mut buf = [0u8; 8];
    for slot in buf[..n].iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    Ok(Value::String(lua.create_string(&buf[..n])?))
}

/// The `bit` table.
pub(super) fn open(lua: &Lua, wrap: &Wrappers) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "tobit",
        wrap.one(lua, "tobit", |lua, args| Ok(ret(barg(lua, args, 1)?)))?,
    )?;
    t.set(
        "bnot",
        wrap.one(lua, "bnot", |lua, args| Ok(ret(!barg(lua, args, 1)?)))?,
    )?;
    t.set(
        "band",
        wrap.one(lua, "band", |lua, args| fold(lua, args, |a, b| a & b))?,
    )?;
    t.set(
        "bor",
        wrap.one(lua, "bor", |lua, args| fold(lua, args, |a, b| a | b))?,
    )?;
    t.set(
        "bxor",
        wrap.one(lua, "bxor", |lua, args| fold(lua, args, |a, b| a ^ b))?,
    )?;
    t.set(
        "lshift",
        wrap.one(lua, "lshift", |lua, args| shift(lua, args, |b, n| b << n))?,
    )?;
    t.set(
        "rshift",
        wrap.one(lua, "rshift", |lua, args| shift(lua, args, |b, n| b >> n))?,
    )?;
    t.set(
        "arshift",
        wrap.one(lua, "arshift", |lua, args| {
            shift(lua, args, |b, n| ((b as i32) >> n) as u32)
        })?,
    )?;
    t.set(
        "rol",
        wrap.one(lua, "rol", |lua, args| shift(lua, args, u32::rotate_left))?,
    )?;
    t.set(
        "ror",
        wrap.one(lua, "ror", |lua, args| shift(lua, args, u32::rotate_right))?,
    )?;
    t.set(
        "bswap",
        wrap.one(lua, "bswap", |lua, args| {
            Ok(ret(barg(lua, args, 1)?.swap_bytes()))
        })?,
    )?;
    t.set("tohex", wrap.one(lua, "tohex", tohex)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{error, eval, lua};

    fn num(code: &str) -> f64 {
        eval::<f64>(&lua(), code)
    }

    fn text(code: &str) -> String {
        eval::<String>(&lua(), code)
    }

    #[test]
    fn redis_test_suite_cases() {
        let lua = lua();
        // "EVAL - Verify minimal bitop functionality"
        eval::<()>(
            &lua,
            "assert(bit.tobit(1) == 1);
             assert(bit.band(1) == 1);
             assert(bit.bxor(1,2) == 3);
             assert(bit.bor(1,2,4,8,16,32,64,128) == 255)",
        );
        // "lua bit.tohex bug"
        assert_eq!(text("return bit.tohex(65535, -2147483648)"), "0000FFFF");
    }

    #[test]
    fn normalisation() {
        assert_eq!(num("return bit.tobit(0xffffffff)"), -1.0);
        assert_eq!(num("return bit.tobit(2^32 + 1)"), 1.0);
        assert_eq!(num("return bit.tobit(1.5)"), 2.0);
        assert_eq!(num("return bit.tobit(2.5)"), 2.0);
        assert_eq!(num("return bit.tobit(-1.5)"), -2.0);
        assert_eq!(num("return bit.tobit(2^31)"), -2_147_483_648.0);
        assert_eq!(num("return bit.tobit('10')"), 10.0);
        assert_eq!(num("return bit.tobit('0x10')"), 16.0);
        assert_eq!(num("return bit.band(0xffffffff, 1)"), 1.0);
        assert_eq!(num("return bit.band(-1, 0xff)"), 255.0);
    }

    #[test]
    fn operations() {
        assert_eq!(num("return bit.band(0xff, 0x0f)"), 15.0);
        assert_eq!(num("return bit.bor(1, 2, 4)"), 7.0);
        assert_eq!(num("return bit.bxor(5, 3)"), 6.0);
        assert_eq!(num("return bit.bnot(0)"), -1.0);
        assert_eq!(num("return bit.bnot(-1)"), 0.0);
        assert_eq!(num("return bit.lshift(1, 31)"), -2_147_483_648.0);
        assert_eq!(num("return bit.lshift(1, 32)"), 1.0);
        assert_eq!(num("return bit.lshift(1, 33)"), 2.0);
        assert_eq!(num("return bit.rshift(-1, 28)"), 15.0);
        assert_eq!(num("return bit.rshift(256, 4)"), 16.0);
        assert_eq!(num("return bit.arshift(-256, 4)"), -16.0);
        assert_eq!(num("return bit.arshift(256, 4)"), 16.0);
        assert_eq!(num("return bit.rol(1, 33)"), 2.0);
        assert_eq!(num("return bit.rol(0x12345678, 0)"), 305_419_896.0);
        assert_eq!(num("return bit.ror(1, 1)"), -2_147_483_648.0);
        assert_eq!(num("return bit.ror(0x12345678, 12)"), 1_736_516_421.0);
        assert_eq!(num("return bit.bswap(0x12345678)"), 2_018_915_346.0);
        assert_eq!(num("return bit.bswap(0xff)"), -16_777_216.0);
    }

    #[test]
    fn tohex() {
        assert_eq!(text("return bit.tohex(65535)"), "0000ffff");
        assert_eq!(text("return bit.tohex(255)"), "000000ff");
        assert_eq!(text("return bit.tohex(255, -4)"), "00FF");
        assert_eq!(text("return bit.tohex(-1, 2)"), "ff");
        assert_eq!(text("return bit.tohex(-1)"), "ffffffff");
        assert_eq!(text("return bit.tohex(0x12345678, 20)"), "12345678");
        assert_eq!(text("return bit.tohex(0x12345678, 0)"), "");
        assert_eq!(text("return bit.tohex(0x1234ABCD, -8)"), "1234ABCD");
    }

    #[test]
    fn errors() {
        let lua = lua();
        assert_eq!(
            error(&lua, "local x = bit.band()"),
            "user_script:1: bad argument #1 to 'band' (number expected, got no value)"
        );
        assert_eq!(
            error(&lua, "local x = bit.bor(1, 'x', 'y')"),
            "user_script:1: bad argument #3 to 'bor' (number expected, got string)"
        );
        assert_eq!(
            error(&lua, "local x = bit.tohex(255, nil)"),
            "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"
        );
        assert_eq!(
            error(&lua, "local x = bit.lshift(1)"),
            "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)"
        );
        assert_eq!(
            error(&lua, "local x = bit.tobit({})"),
            "user_script:1: bad argument #1 to 'tobit' (number expected, got table)"
        );
    }
}
