//! `cmsgpack`: lua-cmsgpack 0.4.0, as Redis vendors it
//! (`deps/lua/src/lua_cmsgpack.c`).
//!
//! `pack(...)` encodes each argument and concatenates them. A number that is an
//! integer (and fits an int64) takes the smallest integer encoding, any other
//! number a float32 when that loses nothing and a float64 otherwise. A table is
//! an array when its keys are exactly 1..n, a map otherwise (in `next` order);
//! tables nested 16 deep, and values of other types (functions, userdata,
//! `cjson.null`...), are encoded as nil.
//!
//! `unpack(msg)` returns every value in `msg`; `unpack_one(msg [, offset])`
//! and `unpack_limit(msg, limit [, offset])` return the offset to continue
//! from (-1 once `msg` is consumed) and then at most one / `limit` values.
//! Offsets are 0 based byte offsets. Unknown encodings (bin, ext) are
//! "Bad data format in input.", truncated ones "Missing bytes in input.".

use super::{
    c_double_to_i64, check_integer, check_string, opt_integer, Fail, Wrappers, LUA_MAX_CSTACK,
    MAX_RESULTS,
};
use mlua::{Lua, MultiValue, Table, Value};

/// `LUACMSGPACK_MAX_NESTING`: tables this deep are encoded as nil.
const MAX_NESTING: u32 = 16;

/// `pack` refuses more arguments than this (`lua_checkstack(L, nargs)`).
const MAX_PACK_ARGS: usize = LUA_MAX_CSTACK / 2;

const TOO_MANY_VALUES: &str =
    "too many return values at once; use unpack_one or unpack_limit instead.";

// ===== Encoding =====

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

/// `mp_encode_double`: a float32 when the value survives the round trip.
fn encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f64::from(f) {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_bits().to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_bits().to_be_bytes());
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_header(buf: &mut Vec<u8>, n: u64, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 0xffff {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// `mp_encode_lua_number`: integers (that fit an int64) as integers.
fn encode_number(buf: &mut Vec<u8>, n: f64) {
    let i = c_double_to_i64(n);
    if n.is_finite() && i as f64 == n {
        encode_int(buf, i);
    } else {
        encode_double(buf, n);
    }
}

/// `table_is_an_array`: keys exactly 1..n.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let mut count: i64 = 0;
    let mut max: i64 = 0;
    for pair in t.pairs::<Value, bool>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(false),
        };
        // `IS_INT_EQUIVALENT`: a C int.
        let i = super::c_double_to_i32(n);
        if n <= 0.0 || f64::from(i) != n {
            return Ok(false);
        }
        max = max.max(i64::from(i));
        count += 1;
    }
    Ok(max == count)
}

/// `mp_encode_lua_type`.
fn encode_value(buf: &mut Vec<u8>, v: &Value, level: u32) -> Result<(), Fail> {
    match v {
        Value::String(s) => encode_bytes(buf, &s.as_bytes()),
        Value::Boolean(b) => buf.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(buf, *i),
        Value::Number(n) => encode_number(buf, *n),
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let len = t.raw_len();
                encode_header(buf, len as u64, 0x90, 0xdc, 0xdd);
                for j in 1..=len {
                    let item: Value = t.raw_get(j)?;
                    encode_value(buf, &item, level + 1)?;
                }
            } else {
                let mut len: u64 = 0;
                for pair in t.pairs::<Value, bool>() {
                    pair?;
                    len += 1;
                }
                encode_header(buf, len, 0x80, 0xde, 0xdf);
                for pair in t.pairs::<Value, Value>() {
                    let (k, item) = pair?;
                    encode_value(buf, &k, level + 1)?;
                    encode_value(buf, &item, level + 1)?;
                }
            }
        }
        _ => buf.push(0xc0),
    }
    Ok(())
}

fn pack(lua: &Lua, args: &MultiValue) -> Result<Value, Fail> {
    if args.is_empty() {
        return Err(Fail::arg(0, "MessagePack pack needs input."));
    }
    let mut buf = Vec::new();
    for v in args.iter() {
        encode_value(&mut buf, v, 0)?;
    }
    Ok(Value::String(lua.create_string(&buf)?))
}

// ===== Decoding =====

/// `mp_cur`: the bytes left to decode.
#[derive(Debug)]
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    /// `mp_cur_need`.
    fn need(&self, n: usize) -> Result<(), Fail> {
        if self.left() < n {
            return Err(Fail::error("Missing bytes in input."));
        }
        Ok(())
    }

    /// `n` bytes after the type byte, as a big endian number.
    fn be(&self, n: usize) -> u64 {
        self.data[self.pos + 1..self.pos + 1 + n]
            .iter()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// A string of `len` bytes after a `header` byte long prefix.
    fn string(&mut self, lua: &Lua, header: usize, len: usize) -> Result<Value, Fail> {
        self.need(header)?;
        self.pos += header;
        self.need(len)?;
        let s = lua.create_string(&self.data[self.pos..self.pos + len])?;
        self.pos += len;
        Ok(Value::String(s))
    }
}

/// A container being filled, innermost last.
#[derive(Debug)]
struct Frame {
    map: bool,
    remaining: u64,
    next_index: i64,
    /// Stack height with the table pushed (the C's bookkeeping).
    height: usize,
    /// For maps: the key is decoded, the value is next.
    want_value: bool,
}

/// What the next item is.
enum Item {
    Value(Value),
    Container { map: bool, len: u64 },
}

/// Reads one item (a scalar, or the header of a container).
fn read_item(lua: &Lua, c: &mut Cursor<'_>) -> Result<Item, Fail> {
    let b = c.data[c.pos];
    let number = |c: &mut Cursor<'_>, size: usize, v: f64| -> Result<Item, Fail> {
        c.need(1 + size)?;
        c.pos += 1 + size;
        Ok(Item::Value(Value::Number(v)))
    };
    let header = |c: &mut Cursor<'_>, size: usize, map: bool| -> Result<Item, Fail> {
        c.need(1 + size)?;
        let len = c.be(size);
        c.pos += 1 + size;
        Ok(Item::Container { map, len })
    };
    // The fixed sizes are checked before anything is read.
    let fits = |c: &Cursor<'_>, size: usize| c.left() > size;
    match b {
        0xcc => {
            let v = if fits(c, 1) { c.be(1) as f64 } else { 0.0 };
            number(c, 1, v)
        }
        0xd0 => {
            let v = if fits(c, 1) {
                f64::from(c.be(1) as u8 as i8)
            } else {
                0.0
            };
            number(c, 1, v)
        }
        0xcd => {
            let v = if fits(c, 2) { c.be(2) as f64 } else { 0.0 };
            number(c, 2, v)
        }
        0xd1 => {
            let v = if fits(c, 2) {
                f64::from(c.be(2) as u16 as i16)
            } else {
                0.0
            };
            number(c, 2, v)
        }
        0xce => {
            let v = if fits(c, 4) { c.be(4) as f64 } else { 0.0 };
            number(c, 4, v)
        }
        0xd2 => {
            let v = if fits(c, 4) {
                f64::from(c.be(4) as u32 as i32)
            } else {
                0.0
            };
            number(c, 4, v)
        }
        // `lua_pushinteger` of the uint64: past 2^63 it comes out negative.
        0xcf | 0xd3 => {
            let v = if fits(c, 8) {
                c.be(8) as i64 as f64
            } else {
                0.0
            };
            number(c, 8, v)
        }
        0xca => {
            let v = if fits(c, 4) {
                f64::from(f32::from_bits(c.be(4) as u32))
            } else {
                0.0
            };
            number(c, 4, v)
        }
        0xcb => {
            let v = if fits(c, 8) {
                f64::from_bits(c.be(8))
            } else {
                0.0
            };
            number(c, 8, v)
        }
        0xc0 => {
            c.pos += 1;
            Ok(Item::Value(Value::Nil))
        }
        0xc2 | 0xc3 => {
            c.pos += 1;
            Ok(Item::Value(Value::Boolean(b == 0xc3)))
        }
        0xd9..=0xdb => {
            let size = match b {
                0xd9 => 1,
                0xda => 2,
                _ => 4,
            };
            c.need(1 + size)?;
            let len = c.be(size) as usize;
            c.string(lua, 1 + size, len).map(Item::Value)
        }
        0xdc => header(c, 2, false),
        0xdd => header(c, 4, false),
        0xde => header(c, 2, true),
        0xdf => header(c, 4, true),
        _ if b & 0x80 == 0 => {
            c.pos += 1;
            Ok(Item::Value(Value::Number(f64::from(b))))
        }
        _ if b & 0xe0 == 0xe0 => {
            c.pos += 1;
            Ok(Item::Value(Value::Number(f64::from(b as i8))))
        }
        _ if b & 0xe0 == 0xa0 => c.string(lua, 1, usize::from(b & 0x1f)).map(Item::Value),
        _ if b & 0xf0 == 0x90 => header(c, 0, false).map(|_| Item::Container {
            map: false,
            len: u64::from(b & 0xf),
        }),
        _ if b & 0xf0 == 0x80 => header(c, 0, true).map(|_| Item::Container {
            map: true,
            len: u64::from(b & 0xf),
        }),
        _ => Err(Fail::error("Bad data format in input.")),
    }
}

/// `lua_settable` on a fresh table: nil and NaN keys are errors.
fn set(t: &Table, key: Value, value: Value) -> Result<(), Fail> {
    match &key {
        Value::Nil => return Err(Fail::Plain(b"table index is nil".to_vec())),
        Value::Number(n) if n.is_nan() => return Err(Fail::Plain(b"table index is NaN".to_vec())),
        _ => {}
    }
    t.raw_set(key, value)?;
    Ok(())
}

/// `mp_decode_to_lua_type`: one complete value, decoded at stack height
/// `height`. Iterative, keeping the tables of the enclosing containers in a
/// Lua table, so neither the Rust stack nor the number of `mlua` references
/// grows with the nesting.
fn decode_value(lua: &Lua, c: &mut Cursor<'_>, height: usize) -> Result<Value, Fail> {
    let mut height = height;
    let mut frames: Vec<Frame> = Vec::new();
    // The innermost container and, for a map, its pending key; the enclosing
    // ones are parked in `parked` at 2*depth-1 and 2*depth.
    let mut table: Option<Table> = None;
    let mut key = Value::Nil;
    let mut parked: Option<Table> = None;
    loop {
        c.need(1)?;
        if height + 1 > LUA_MAX_CSTACK {
            return Err(Fail::stack_overflow(TOO_MANY_VALUES));
        }
        let mut value = match read_item(lua, c)? {
            Item::Value(v) => v,
            Item::Container { map, len } => {
                let t = lua.create_table()?;
                let table_height = height + 1;
                if !map && table_height + 1 > LUA_MAX_CSTACK {
                    return Err(Fail::stack_overflow("in function mp_decode_to_lua_array"));
                }
                if len == 0 {
                    Value::Table(t)
                } else {
                    if let Some(outer) = table.take() {
                        let store = match &parked {
                            Some(p) => p.clone(),
                            None => {
                                let p = lua.create_table()?;
                                parked = Some(p.clone());
                                p
                            }
                        };
                        let depth = frames.len() as i64;
                        store.raw_set(2 * depth - 1, outer)?;
                        store.raw_set(2 * depth, std::mem::replace(&mut key, Value::Nil))?;
                    }
                    table = Some(t);
                    frames.push(Frame {
                        map,
                        remaining: len,
                        next_index: 1,
                        height: table_height,
                        want_value: false,
                    });
                    // An array pushes the index before each value.
                    height = if map { table_height } else { table_height + 1 };
                    continue;
                }
            }
        };
        // Put the value where it belongs, closing the containers it completes.
        loop {
            let Some(frame) = frames.last_mut() else {
                return Ok(value);
            };
            let Some(t) = &table else {
                return Ok(value);
            };
            if !frame.map {
                t.raw_set(frame.next_index, value)?;
                frame.next_index += 1;
                frame.remaining -= 1;
                height = frame.height + 1;
            } else if !frame.want_value {
                key = value;
                frame.want_value = true;
                height = frame.height + 1;
                break;
            } else {
                set(t, std::mem::replace(&mut key, Value::Nil), value)?;
                frame.want_value = false;
                frame.remaining -= 1;
                height = frame.height;
            }
            if frame.remaining > 0 {
                break;
            }
            // The container is complete: it is the value for the one outside.
            frames.pop();
            let done = table
                .take()
                .ok_or_else(|| Fail::Plain(b"cmsgpack: no table to close".to_vec()))?;
            value = Value::Table(done);
            if let (Some(store), false) = (&parked, frames.is_empty()) {
                let depth = frames.len() as i64;
                table = Some(store.raw_get(2 * depth - 1)?);
                key = store.raw_get(2 * depth)?;
                store.raw_set(2 * depth - 1, Value::Nil)?;
                store.raw_set(2 * depth, Value::Nil)?;
            }
        }
    }
}

/// `mp_unpack_full`.
fn unpack_full(
    lua: &Lua,
    args: &MultiValue,
    limit: i64,
    offset: i64,
) -> Result<(usize, Table), Fail> {
    let msg = check_string(lua, args, 1)?;
    let data = msg.as_bytes();
    let len = data.len();
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(Fail::error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        )));
    } else if offset as u64 > len as u64 {
        return Err(Fail::error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        )));
    }
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut c = Cursor {
        data: &data,
        pos: offset as usize,
    };
    let results = lua.create_table()?;
    // With an offset to return first, values start at index 2.
    let first = if decode_all { 1 } else { 2 };
    // The results go back through `unpack`, which stops at MAX_RESULTS.
    let cap = if decode_all {
        MAX_RESULTS
    } else {
        MAX_RESULTS - 1
    };
    let mut count: usize = 0;
    while c.left() > 0 && (count as i64) < limit {
        if count >= cap {
            return Err(Fail::stack_overflow(if decode_all {
                TOO_MANY_VALUES
            } else {
                "in function mp_unpack_full"
            }));
        }
        // The message is the only argument left on the stack.
        let value = decode_value(lua, &mut c, 1 + count)?;
        results.raw_set(first + count, value)?;
        count += 1;
    }
    if decode_all {
        return Ok((count, results));
    }
    if 1 + count + 1 > LUA_MAX_CSTACK {
        return Err(Fail::stack_overflow("in function mp_unpack_full"));
    }
    let next = if c.left() == 0 { -1 } else { c.pos as i64 };
    results.raw_set(1, next)?;
    Ok((count + 1, results))
}

fn unpack(lua: &Lua, args: &MultiValue) -> Result<(usize, Table), Fail> {
    unpack_full(lua, args, 0, 0)
}

fn unpack_one(lua: &Lua, args: &MultiValue) -> Result<(usize, Table), Fail> {
    let offset = opt_integer(lua, args, 2, 0)?;
    unpack_full(lua, args, 1, offset)
}

fn unpack_limit(lua: &Lua, args: &MultiValue) -> Result<(usize, Table), Fail> {
    let limit = check_integer(lua, args, 2)?;
    let offset = opt_integer(lua, args, 3, 0)?;
    unpack_full(lua, args, limit, offset)
}

/// The `cmsgpack` table.
pub(super) fn open(lua: &Lua, wrap: &Wrappers) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        wrap.capped(
            lua,
            "pack",
            MAX_PACK_ARGS,
            || Fail::arg(0, "Too many arguments for MessagePack pack."),
            pack,
        )?,
    )?;
    t.set("unpack", wrap.many(lua, "unpack", unpack)?)?;
    t.set("unpack_one", wrap.many(lua, "unpack_one", unpack_one)?)?;
    t.set(
        "unpack_limit",
        wrap.many(lua, "unpack_limit", unpack_limit)?,
    )?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Redis Ltd.")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{error, eval, hex, lua};
    use mlua::Lua;

    fn packed(lua: &Lua, args: &str) -> String {
        hex(&eval::<mlua::LuaString>(lua, &format!("return cmsgpack.pack({args})")).as_bytes())
    }

    #[test]
    fn redis_test_suite_encodings() {
        let lua = lua();
        // "EVAL - cmsgpack can pack double?"
        assert_eq!(packed(&lua, "0.1"), "cb3fb999999999999a");
        // "EVAL - cmsgpack can pack negative int64?"
        assert_eq!(packed(&lua, "-1099511627776"), "d3ffffff0000000000");
    }

    #[test]
    fn integers() {
        let lua = lua();
        let cases = [
            ("0", "00"),
            ("127", "7f"),
            ("128", "cc80"),
            ("255", "ccff"),
            ("256", "cd0100"),
            ("65535", "cdffff"),
            ("65536", "ce00010000"),
            ("4294967295", "ceffffffff"),
            ("4294967296", "cf0000000100000000"),
            ("2^53", "cf0020000000000000"),
            ("-1", "ff"),
            ("-32", "e0"),
            ("-33", "d0df"),
            ("-128", "d080"),
            ("-129", "d1ff7f"),
            ("-32768", "d18000"),
            ("-32769", "d2ffff7fff"),
            ("-2^31", "d280000000"),
            ("-2^31 - 1", "d3ffffffff7fffffff"),
            ("-2^63", "d38000000000000000"),
            ("-0", "00"),
        ];
        for (expr, want) in cases {
            assert_eq!(packed(&lua, expr), want, "{expr}");
        }
    }

    #[test]
    fn floats_strings_and_others() {
        let lua = lua();
        let cases = [
            ("0.5", "ca3f000000"),
            ("1.5", "ca3fc00000"),
            ("-0.25", "cabe800000"),
            ("1/0", "ca7f800000"),
            ("-1/0", "caff800000"),
            // 2^63 does not fit an int64: as a float32.
            ("2^63", "ca5f000000"),
            ("2^64", "ca5f800000"),
            ("1e300", "cb7e37e43c8800759c"),
            ("''", "a0"),
            ("'abc'", "a3616263"),
            ("true", "c3"),
            ("false", "c2"),
            ("nil", "c0"),
            ("print", "c0"),
            ("cjson.null", "c0"),
            ("{}", "90"),
            ("{1, 2, 3}", "93010203"),
            ("{a = 1}", "81a16101"),
            ("{[2] = 1}", "810201"),
            ("{[1.5] = 1}", "81ca3fc0000001"),
            ("{{}}", "9190"),
            ("1, 'a', true", "01a161c3"),
        ];
        for (expr, want) in cases {
            assert_eq!(packed(&lua, expr), want, "{expr}");
        }
        // Keys 1 and 3 are not 1..n: a map, in `next` order.
        let m = packed(&lua, "{[1] = 1, [3] = 3}");
        assert!(m == "8201010303" || m == "8203030101", "{m}");
        let nan = packed(&lua, "0/0");
        assert!(nan.starts_with("cb") && nan.len() == 18, "{nan}");
        // String length boundaries.
        let h = |n: usize| packed(&lua, &format!("string.rep('x', {n})"));
        assert!(h(31).starts_with("bf78"));
        assert!(h(32).starts_with("d92078"));
        assert!(h(255).starts_with("d9ff78"));
        assert!(h(256).starts_with("da010078"));
        assert!(h(65535).starts_with("daffff78"));
        assert!(h(65536).starts_with("db0001000078"));
        // Container length boundaries.
        let a = |n: usize| {
            packed(
                &lua,
                &format!(
                    "(function() local t = {{}} for i = 1, {n} do t[i] = 0 end return t end)()"
                ),
            )
        };
        assert_eq!(a(15), format!("9f{}", "00".repeat(15)));
        assert_eq!(a(16), format!("dc0010{}", "00".repeat(16)));
        assert!(a(65536).starts_with("dd00010000"));
        let m = packed(
            &lua,
            "(function() local t = {} for i = 1, 16 do t['k'..i] = 0 end return t end)()",
        );
        assert!(m.starts_with("de0010"), "{m}");
    }

    #[test]
    fn circular_references_stop_at_sixteen_levels() {
        let lua = lua();
        // "EVAL - cmsgpack can pack and unpack circular references?"
        let (h, a, b): (String, bool, bool) = eval(
            &lua,
            r#"
            local a = {x=nil,y=5}
            local b = {x=a}
            a['x'] = b
            local encoded = cmsgpack.pack(a)
            local h = ""
            for i = 1, #encoded do
                h = h .. string.format("%02x",string.byte(encoded, i))
            end
            local re = cmsgpack.unpack(encoded)
            assert(re)
            assert(re.x)
            assert(re.x.x.y == re.y)
            assert(re.x.x.x.x.y == re.y)
            assert(re.x.x.x.x.x.x.y == re.y)
            assert(re.x.x.x.x.x.x.x.x.x.x.y == re.y)
            assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.y == re.y)
            assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x)
            assert(re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x == nil)
            return h, re.x.x.x.x.x.x.x.x.y == re.y, re.y == 5
            "#,
        );
        let want = "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0";
        assert_eq!(h, want);
        assert!(a && b);
    }

    #[test]
    fn redis_smoke_test() {
        let lua = lua();
        let out: String = eval(
            &lua,
            r#"
            local str_lt_32 = string.rep("x", 30)
            local str_lt_255 = string.rep("x", 250)
            local str_lt_65535 = string.rep("x", 65530)
            local str_long = string.rep("x", 100000)
            local array_lt_15 = {1, 2, 3, 4, 5}
            local array_lt_65535 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
            local array_big = {}
            for i=1, 100000 do
                array_big[i] = i
            end
            local map_lt_15 = {a=1, b=2}
            local map_big = {}
            for i=1, 100000 do
                map_big[tostring(i)] = i
            end
            local some_map = {
                s1=str_lt_32,
                s2=str_lt_255,
                s3=str_lt_65535,
                s4=str_long,
                d1=0.1,
                i1=1,
                i2=250,
                i3=65530,
                i4=100000,
                i5=2^40,
                i6=-1,
                i7=-120,
                i8=-32000,
                i9=-1200000000,
                b1=true,
                b2=false,
                n=nil,
                a1=array_lt_15,
                a2=array_lt_65535,
                a3=array_big,
                m1=map_lt_15,
                m2=map_big,
            }

            local function assert_table_equal(t1, t2)
                for k, v in pairs(t1) do
                    if type(v) == 'table' then
                        assert_table_equal(v, t2[k])
                    else
                        assert(v == t2[k], tostring(k))
                    end
                end
                for k in pairs(t2) do assert(t1[k] ~= nil, tostring(k)) end
            end

            local encoded = cmsgpack.pack(some_map)
            local decoded = cmsgpack.unpack(encoded)
            assert_table_equal(some_map, decoded)
            local offset, decoded_one = cmsgpack.unpack_one(encoded, 0)
            assert_table_equal(some_map, decoded_one)
            assert(offset == -1)

            local encoded_multiple = cmsgpack.pack(str_lt_32, str_lt_255, str_lt_65535, str_long)
            local offset, str1, str2 = cmsgpack.unpack_limit(encoded_multiple, 2)
            assert(str1 == str_lt_32 and str2 == str_lt_255)
            local offset, str3 = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
            assert(str3 == str_lt_65535)
            local offset, str4 = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
            assert(str4 == str_long)
            assert(offset == -1)
            return "test finished"
            "#,
        );
        assert_eq!(out, "test finished");
    }

    #[test]
    fn unpack_variants() {
        let lua = lua();
        let n: i64 = eval(
            &lua,
            "return select('#', cmsgpack.unpack(cmsgpack.pack(1, nil, 'a')))",
        );
        assert_eq!(n, 3);
        let (a, b, c): (i64, Option<i64>, String) =
            eval(&lua, "return cmsgpack.unpack(cmsgpack.pack(1, nil, 'a'))");
        assert_eq!((a, b, c.as_str()), (1, None, "a"));
        assert_eq!(
            eval::<i64>(&lua, "return select('#', cmsgpack.unpack(''))"),
            0
        );
        let (off, v): (i64, i64) = eval(&lua, "return cmsgpack.unpack_one(cmsgpack.pack(7, 8))");
        assert_eq!((off, v), (1, 7));
        let (off, v): (i64, i64) = eval(&lua, "return cmsgpack.unpack_one(cmsgpack.pack(7, 8), 1)");
        assert_eq!((off, v), (-1, 8));
        let off: i64 = eval(
            &lua,
            "return cmsgpack.unpack_limit(cmsgpack.pack(7, 8), 0, 1)",
        );
        assert_eq!(off, 1);
        // A limit and an offset of zero mean everything, with no offset.
        let (a, b): (i64, i64) = eval(&lua, "return cmsgpack.unpack_limit(cmsgpack.pack(7, 8), 0)");
        assert_eq!((a, b), (7, 8));
        let (off, a, b): (i64, i64, i64) = eval(
            &lua,
            "return cmsgpack.unpack_limit(cmsgpack.pack(7, 8, 9), 2)",
        );
        assert_eq!((off, a, b), (2, 7, 8));
        let off: i64 = eval(&lua, "return cmsgpack.unpack_one(cmsgpack.pack(7), 1)");
        assert_eq!(off, -1);
        // Integers come back as numbers, uint64 past 2^63 negative (the C
        // pushes it as a signed integer).
        let v: f64 = eval(
            &lua,
            "return cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')",
        );
        assert_eq!(v, -1.0);
        let v: f64 = eval(&lua, "return cmsgpack.unpack('\\209\\255\\127')");
        assert_eq!(v, -129.0);
        let v: f64 = eval(&lua, "return cmsgpack.unpack('\\202\\63\\192\\0\\0')");
        assert_eq!(v, 1.5);
        // Round trips.
        let ok: bool = eval(
            &lua,
            r#"local v = {1, -1, 2^40, -2^40, 0.1, 1.5, 'str', true, false, {a = {b = {1, 2}}}, {}}
               local r = {cmsgpack.unpack(cmsgpack.pack(unpack(v)))}
               for i = 1, 9 do assert(r[i] == v[i], i) end
               assert(r[10].a.b[2] == 2 and next(r[11]) == nil)
               return true"#,
        );
        assert!(ok);
        let (name, version, description): (String, String, String) = eval(
            &lua,
            "return cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._DESCRIPTION",
        );
        assert_eq!(
            (name.as_str(), version.as_str(), description.as_str()),
            (
                "cmsgpack",
                "lua-cmsgpack 0.4.0",
                "MessagePack C implementation for Lua"
            )
        );
    }

    #[test]
    fn errors() {
        let lua = lua();
        let cases = [
            (
                "cmsgpack.pack()",
                "bad argument #0 to 'pack' (MessagePack pack needs input.)",
            ),
            ("cmsgpack.unpack('\\205\\1')", "Missing bytes in input."),
            ("cmsgpack.unpack('\\147\\1')", "Missing bytes in input."),
            (
                "cmsgpack.unpack('\\219\\0\\0\\0\\5abc')",
                "Missing bytes in input.",
            ),
            ("cmsgpack.unpack('\\193')", "Bad data format in input."),
            ("cmsgpack.unpack('\\196\\1a')", "Bad data format in input."),
            (
                "cmsgpack.unpack()",
                "bad argument #1 to 'unpack' (string expected, got no value)",
            ),
            (
                "cmsgpack.unpack_one('\\1', -1)",
                "Invalid request to unpack with offset of -1 and limit of 1.",
            ),
            (
                "cmsgpack.unpack_limit('\\1\\2', -2)",
                "Invalid request to unpack with offset of 0 and limit of 2.",
            ),
            (
                "cmsgpack.unpack_one('\\1', 5)",
                "Start offset 5 greater than input length 1.",
            ),
            (
                "cmsgpack.unpack_limit('\\1')",
                "bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            (
                "cmsgpack.unpack_one('\\1', 'x')",
                "bad argument #2 to 'unpack_one' (number expected, got string)",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(
                error(&lua, &format!("local x = {code}")),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
        // Raised by lua_settable in the C: no position.
        assert_eq!(
            error(&lua, "local x = cmsgpack.unpack('\\129\\192\\1')"),
            "table index is nil"
        );
        assert_eq!(
            error(
                &lua,
                "local x = cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1')"
            ),
            "table index is NaN"
        );
    }

    #[test]
    fn stack_limits_like_the_c() {
        let lua = lua();
        let kind: String = eval(
            &lua,
            "return type(cmsgpack.unpack(string.rep('\\145', 3999) .. '\\1'))",
        );
        assert_eq!(kind, "table");
        let deep: i64 = eval(
            &lua,
            "local t = cmsgpack.unpack(string.rep('\\145', 3999) .. '\\7')
             for i = 1, 3999 do t = t[1] end return t",
        );
        assert_eq!(deep, 7);
        assert_eq!(
            error(
                &lua,
                "local x = cmsgpack.unpack(string.rep('\\145', 4000) .. '\\1')"
            ),
            "user_script:1: stack overflow (in function mp_decode_to_lua_array)"
        );
        let kind: String = eval(
            &lua,
            "return type(cmsgpack.unpack(string.rep('\\129\\1', 3999) .. '\\1'))",
        );
        assert_eq!(kind, "table");
        assert_eq!(
            error(&lua, "local x = cmsgpack.unpack(string.rep('\\129\\1', 4000) .. '\\1')"),
            "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
        );
        assert_eq!(
            error(&lua, "local x = cmsgpack.unpack(string.rep('\\145', 3999))"),
            "user_script:1: Missing bytes in input."
        );
        let n: i64 = eval(
            &lua,
            "return select('#', cmsgpack.unpack(string.rep('\\1', 7997)))",
        );
        assert_eq!(n, 7997);
        assert_eq!(
            error(&lua, "local t = {cmsgpack.unpack(string.rep('\\1', 8000))}"),
            "user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
        );
        assert_eq!(
            error(
                &lua,
                "local t = {cmsgpack.unpack_limit(string.rep('\\1', 9000), 7999)}"
            ),
            "user_script:1: stack overflow (in function mp_unpack_full)"
        );
        let n: i64 = eval(
            &lua,
            "local t = {} for i=1,4000 do t[i]='s' end return #cmsgpack.pack(unpack(t))",
        );
        assert_eq!(n, 8000);
        assert_eq!(
            error(
                &lua,
                "local t = {} for i=1,4001 do t[i]='s' end local x = cmsgpack.pack(unpack(t))"
            ),
            "user_script:1: bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)"
        );
        let n: i64 = eval(
            &lua,
            "local t = {} for i=1,9000 do t['k'..i]=i end return #cmsgpack.pack(t)",
        );
        assert_eq!(n, 79514);
    }
}
