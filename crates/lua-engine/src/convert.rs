//! Conversions between RESP and Lua, as Redis 7 does them.
//!
//! Command reply → Lua ([`frame_to_lua`], what `redis.call` returns):
//! integer → number; bulk → string; null bulk / null array → `false`;
//! array → table; status → `{ok=…}`; error → `{err=…}`; RESP3 (after
//! `redis.setresp(3)`): null → `nil`, map → `{map={…}}`, set →
//! `{set={k=true}}`, double → `{double=n}`, boolean → boolean, big number
//! → `{big_number=s}`, verbatim → `{verbatim_string={format=…,string=…}}`.
//!
//! Lua → script reply ([`lua_to_reply`]): number → integer (truncated);
//! string → bulk; `true` → `:1` (RESP3 `#t`), `false` → null (RESP3 `#f`);
//! `nil` → null; table with a string `err` → error, with a string `ok` →
//! status; `double`, `big_number`, `map`, `set`, `verbatim_string` tables →
//! those types (downgraded under RESP2 as Redis does); other tables →
//! array of `t[1]`, `t[2]`, … up to the first `nil`.

use bytes::BytesMut;
use mlua::{Lua, Table, Value};
use resp_codec::{encode, Frame, Protocol};

/// Deepest table nesting converted (deeper replies an error, as Redis's
/// "reached lua stack limit").
pub const MAX_DEPTH: usize = 128;

/// A Lua number as Redis sees it: truncated toward zero.
pub fn lua_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) => Some(*n as i64),
        _ => None,
    }
}

fn lua_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A one-field table `{key = value}`: how Redis tags status, error,
/// double, map, set, big number and verbatim replies for Lua.
pub(crate) fn tagged(lua: &Lua, key: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(key, value)?;
    Ok(Value::Table(t))
}

/// Converts a command reply to the Lua value `redis.call` returns.
pub fn frame_to_lua(lua: &Lua, f: &Frame) -> mlua::Result<Value> {
    Ok(match f {
        Frame::Integer(n) => Value::Integer(*n),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Null => Value::Nil,
        Frame::NullArray => Value::Boolean(false),
        Frame::Simple(s) => tagged(lua, "ok", lua.create_string(s)?)?,
        Frame::Error(e) => tagged(lua, "err", lua.create_string(e)?)?,
        Frame::Array(items) | Frame::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, it) in items.iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, it)?)?;
            }
            Value::Table(t)
        }
        Frame::Map(pairs) => {
            let m = lua.create_table()?;
            for (k, v) in pairs {
                m.raw_set(frame_to_lua(lua, k)?, frame_to_lua(lua, v)?)?;
            }
            tagged(lua, "map", m)?
        }
        Frame::Set(items) => {
            let s = lua.create_table()?;
            for k in items {
                s.raw_set(frame_to_lua(lua, k)?, true)?;
            }
            tagged(lua, "set", s)?
        }
        Frame::Double(d) => tagged(lua, "double", *d)?,
        Frame::Boolean(b) => Value::Boolean(*b),
        Frame::BigNumber(s) => tagged(lua, "big_number", lua.create_string(s)?)?,
        Frame::Verbatim { format, text } => {
            let v = lua.create_table()?;
            v.raw_set("format", lua.create_string(format)?)?;
            v.raw_set("string", lua.create_string(text)?)?;
            tagged(lua, "verbatim_string", v)?
        }
        Frame::Attribute { data, .. } => frame_to_lua(lua, data)?,
    })
}

/// Converts a command reply produced in `proto` to Lua.
pub fn reply_to_lua(lua: &Lua, f: &Frame, proto: Protocol) -> mlua::Result<Value> {
    if proto == Protocol::Resp2 {
        frame_to_lua_resp2(lua, f)
    } else {
        frame_to_lua(lua, f)
    }
}

fn frame_to_lua_resp2(lua: &Lua, f: &Frame) -> mlua::Result<Value> {
    match f {
        Frame::Null => Ok(Value::Boolean(false)),
        Frame::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, it) in items.iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua_resp2(lua, it)?)?;
            }
            Ok(Value::Table(t))
        }
        other => frame_to_lua(lua, other),
    }
}

/// Converts one complete RESP reply, as a host encoded it, to Lua: the
/// same value [`reply_to_lua`] gives for its decoded frame, built straight
/// from the bytes for the common types (integer, bulk, status, error,
/// null, boolean and arrays of them); the others are decoded first.
pub fn resp_to_lua(lua: &Lua, buf: &[u8], proto: Protocol) -> mlua::Result<Value> {
    if let Some(r) = resp_fast(lua, buf, 0, proto, 0) {
        return r.map(|(v, _)| v);
    }
    let mut b = BytesMut::from(buf);
    match resp_codec::FrameDecoder::new(resp_codec::Limits::default()).decode(&mut b) {
        Ok(Some(f)) => reply_to_lua(lua, &f, proto),
        _ => Err(mlua::Error::runtime(
            "ERR internal error: unreadable command reply",
        )),
    }
}

/// The line starting at `at` (up to CRLF) and the index after the CRLF.
fn resp_line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.iter().position(|&c| c == b'\r')?;
    (rest.get(end + 1) == Some(&b'\n')).then(|| (&rest[..end], at + end + 2))
}

fn resp_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// One reply at `at`: the value and the index after it; None for a type
/// (or a depth) without a fast path, or bytes that do not parse.
fn resp_fast(
    lua: &Lua,
    buf: &[u8],
    at: usize,
    proto: Protocol,
    depth: usize,
) -> Option<mlua::Result<(Value, usize)>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let null = || match proto {
        Protocol::Resp2 => Value::Boolean(false),
        Protocol::Resp3 => Value::Nil,
    };
    let pair = |key: &str, text: &[u8], next: usize| -> mlua::Result<(Value, usize)> {
        Ok((tagged(lua, key, lua.create_string(text)?)?, next))
    };
    let (line, next) = resp_line(buf, at + 1)?;
    Some(match *buf.get(at)? {
        b':' => Ok((Value::Integer(resp_int(line)?), next)),
        b'$' => {
            let len = resp_int(line)?;
            if len < 0 {
                return Some(Ok((null(), next)));
            }
            let end = next.checked_add(usize::try_from(len).ok()?)?;
            let data = buf.get(next..end)?;
            if buf.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            lua.create_string(data).map(|s| (Value::String(s), end + 2))
        }
        b'+' => pair("ok", line, next),
        b'-' => pair("err", line, next),
        b'_' => Ok((null(), next)),
        b'#' => match line {
            b"t" => Ok((Value::Boolean(true), next)),
            b"f" => Ok((Value::Boolean(false), next)),
            _ => return None,
        },
        b'*' => {
            let n = resp_int(line)?;
            if n < 0 {
                return Some(Ok((Value::Boolean(false), next)));
            }
            let n = usize::try_from(n).ok()?;
            let t = match lua.create_table_with_capacity(n.min(1 << 16), 0) {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            let mut at = next;
            for i in 1..=n {
                let (v, after) = match resp_fast(lua, buf, at, proto, depth + 1)? {
                    Ok(x) => x,
                    Err(e) => return Some(Err(e)),
                };
                if let Err(e) = t.raw_set(i, v) {
                    return Some(Err(e));
                }
                at = after;
            }
            Ok((Value::Table(t), at))
        }
        _ => return None,
    })
}

/// A string field of a table, if present.
fn str_field(t: &Table, k: &str) -> Option<mlua::LuaString> {
    match t.raw_get::<Value>(k).ok()? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Error text with line breaks replaced (an error reply is one line).
pub fn one_line(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

/// Encodes a script's return value as its reply.
pub fn lua_to_reply(v: &Value, out: &mut BytesMut, proto: Protocol) {
    to_reply(v, out, proto, 0)
}

fn to_reply(v: &Value, out: &mut BytesMut, proto: Protocol, depth: usize) {
    if depth > MAX_DEPTH {
        encode::error(out, b"ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => encode::bulk(out, &s.as_bytes()),
        Value::Boolean(true) => match proto {
            Protocol::Resp2 => encode::integer(out, 1),
            Protocol::Resp3 => encode::boolean(out, true, proto),
        },
        Value::Boolean(false) => match proto {
            Protocol::Resp2 => encode::null(out, proto),
            Protocol::Resp3 => encode::boolean(out, false, proto),
        },
        Value::Integer(_) | Value::Number(_) => encode::integer(out, lua_int(v).unwrap_or(0)),
        Value::Table(t) => table_reply(t, out, proto, depth),
        _ => encode::null(out, proto),
    }
}

fn table_reply(t: &Table, out: &mut BytesMut, proto: Protocol, depth: usize) {
    if let Some(e) = str_field(t, "err") {
        let msg = one_line(&e.as_bytes());
        encode::error(out, &msg);
        return;
    }
    if let Some(s) = str_field(t, "ok") {
        encode::simple(out, &one_line(&s.as_bytes()));
        return;
    }
    if let Ok(d) = t.raw_get::<Value>("double") {
        if let Some(d) = lua_f64(&d) {
            encode::double(out, d, proto);
            return;
        }
    }
    if let Some(s) = str_field(t, "big_number") {
        encode::big_number(out, &one_line(&s.as_bytes()), proto);
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        encode::map_len(out, pairs.len(), proto);
        for (k, v) in &pairs {
            to_reply(k, out, proto, depth + 1);
            to_reply(v, out, proto, depth + 1);
        }
        return;
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let keys: Vec<Value> = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| k)
            .collect();
        encode::set_len(out, keys.len(), proto);
        for k in &keys {
            to_reply(k, out, proto, depth + 1);
        }
        return;
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string") {
        if let (Some(f), Some(s)) = (str_field(&v, "format"), str_field(&v, "string")) {
            let fb = f.as_bytes();
            if fb.len() == 3 {
                let format = [fb[0], fb[1], fb[2]];
                encode::verbatim(out, &format, &s.as_bytes(), proto);
                return;
            }
        }
    }
    let mut items = Vec::new();
    let mut j = 1usize;
    loop {
        match t.raw_get::<Value>(j) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
        j += 1;
    }
    encode::array_len(out, items.len());
    for it in &items {
        to_reply(it, out, proto, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(lua: &Lua, code: &str, proto: Protocol) -> String {
        let v: Value = lua.load(code).eval().unwrap();
        let mut out = BytesMut::new();
        lua_to_reply(&v, &mut out, proto);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn lua_to_resp2_like_redis() {
        let lua = Lua::new();
        let p = Protocol::Resp2;
        assert_eq!(reply(&lua, "return 3.99", p), ":3\r\n");
        assert_eq!(reply(&lua, "return -3.99", p), ":-3\r\n");
        assert_eq!(reply(&lua, "return 'x'", p), "$1\r\nx\r\n");
        assert_eq!(reply(&lua, "return true", p), ":1\r\n");
        assert_eq!(reply(&lua, "return false", p), "$-1\r\n");
        assert_eq!(reply(&lua, "return nil", p), "$-1\r\n");
        assert_eq!(
            reply(&lua, "return {1, 'a', {2}, nil, 5}", p),
            "*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n"
        );
        assert_eq!(
            reply(&lua, "return {err='MYERR bad\\nthing'}", p),
            "-MYERR bad thing\r\n"
        );
        assert_eq!(reply(&lua, "return {ok='FINE'}", p), "+FINE\r\n");
        assert_eq!(reply(&lua, "return {double=1.5}", p), "$3\r\n1.5\r\n");
        assert_eq!(
            reply(&lua, "return {map={a=1}}", p),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(reply(&lua, "return {big_number='123'}", p), "$3\r\n123\r\n");
        assert_eq!(reply(&lua, "return {}", p), "*0\r\n");
        assert_eq!(reply(&lua, "return function() end", p), "$-1\r\n");
    }

    #[test]
    fn lua_to_resp3() {
        let lua = Lua::new();
        let p = Protocol::Resp3;
        assert_eq!(reply(&lua, "return true", p), "#t\r\n");
        assert_eq!(reply(&lua, "return false", p), "#f\r\n");
        assert_eq!(reply(&lua, "return nil", p), "_\r\n");
        assert_eq!(reply(&lua, "return {double=1.5}", p), ",1.5\r\n");
        assert_eq!(
            reply(&lua, "return {map={a=1}}", p),
            "%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(reply(&lua, "return {set={a=true}}", p), "~1\r\n$1\r\na\r\n");
        assert_eq!(
            reply(
                &lua,
                "return {verbatim_string={format='txt', string='hi'}}",
                p
            ),
            "=6\r\ntxt:hi\r\n"
        );
    }

    #[test]
    fn self_referencing_table_is_bounded() {
        let lua = Lua::new();
        let r = reply(&lua, "local t = {} t[1] = t return t", Protocol::Resp2);
        assert!(r.contains("-ERR reached lua stack limit"));
    }

    #[test]
    fn resp_to_lua_like_redis() {
        let lua = Lua::new();
        let f = Frame::Array(vec![
            Frame::Integer(7),
            Frame::Bulk(Bytes::from_static(b"v")),
            Frame::Null,
            Frame::Simple(Bytes::from_static(b"OK")),
            Frame::Error(Bytes::from_static(b"ERR x")),
            Frame::NullArray,
        ]);
        let v = reply_to_lua(&lua, &f, Protocol::Resp2).unwrap();
        lua.globals().set("r", v).unwrap();
        let ok: bool = lua
            .load(
                "return r[1] == 7 and r[2] == 'v' and r[3] == false and r[4].ok == 'OK' \
                 and r[5].err == 'ERR x' and r[6] == false",
            )
            .eval()
            .unwrap();
        assert!(ok);
        // RESP3: null is nil, doubles and maps are tagged tables.
        let f = Frame::Array(vec![
            Frame::Double(2.5),
            Frame::Map(vec![(
                Frame::Bulk(Bytes::from_static(b"k")),
                Frame::Integer(1),
            )]),
            Frame::Boolean(true),
            Frame::Set(vec![Frame::Bulk(Bytes::from_static(b"m"))]),
        ]);
        let v = reply_to_lua(&lua, &f, Protocol::Resp3).unwrap();
        lua.globals().set("r", v).unwrap();
        let ok: bool = lua
            .load("return r[1].double == 2.5 and r[2].map.k == 1 and r[3] == true and r[4].set.m == true")
            .eval()
            .unwrap();
        assert!(ok);
        let v = reply_to_lua(&lua, &Frame::Null, Protocol::Resp3).unwrap();
        assert!(matches!(v, Value::Nil));
    }
}

#[cfg(test)]
mod resp_tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// Deep equality of two Lua values (tables by content).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Table(x), Value::Table(y)) => {
                let xs: Vec<(Value, Value)> = x.pairs().map(Result::unwrap).collect();
                let n = y.pairs::<Value, Value>().count();
                xs.len() == n
                    && xs
                        .iter()
                        .all(|(k, v)| same(v, &y.raw_get::<Value>(k.clone()).unwrap()))
            }
            (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
            (Value::Integer(x), Value::Integer(y)) => x == y,
            (Value::Number(x), Value::Number(y)) => x == y,
            (Value::Boolean(x), Value::Boolean(y)) => x == y,
            (Value::Nil, Value::Nil) => true,
            _ => false,
        }
    }

    fn text() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
    }

    fn line() -> impl Strategy<Value = Bytes> {
        "[ -~]{0,12}".prop_map(Bytes::from)
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Frame::Integer),
            text().prop_map(Frame::Bulk),
            line().prop_map(Frame::Simple),
            line().prop_map(Frame::Error),
            Just(Frame::Null),
            Just(Frame::NullArray),
            any::<bool>().prop_map(Frame::Boolean),
            (-1e9f64..1e9).prop_map(Frame::Double),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Frame::Array),
                proptest::collection::vec((text().prop_map(Frame::Bulk), inner.clone()), 0..3)
                    .prop_map(Frame::Map),
                proptest::collection::vec(text().prop_map(Frame::Bulk), 0..3).prop_map(Frame::Set),
            ]
        })
    }

    proptest! {
        /// Straight from the bytes gives what decoding then converting gives.
        #[test]
        fn resp_to_lua_matches_frame_conversion(f in frame(), resp3 in any::<bool>()) {
            let lua = Lua::new();
            let proto = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
            let mut buf = BytesMut::new();
            f.encode_with(&mut buf, proto);
            let bytes = buf.clone();
            let decoded = resp_codec::FrameDecoder::new(resp_codec::Limits::default())
                .decode(&mut buf)
                .unwrap()
                .unwrap();
            let want = reply_to_lua(&lua, &decoded, proto).unwrap();
            let got = resp_to_lua(&lua, &bytes, proto).unwrap();
            prop_assert!(same(&want, &got), "{:?} in {:?}", f, proto);
        }
    }

    #[test]
    fn resp_to_lua_common_replies() {
        let lua = Lua::new();
        let p = Protocol::Resp2;
        assert!(matches!(
            resp_to_lua(&lua, b":-12\r\n", p).unwrap(),
            Value::Integer(-12)
        ));
        match resp_to_lua(&lua, b"$3\r\na\r\n\r\n", p).unwrap() {
            Value::String(s) => assert_eq!(&*s.as_bytes(), b"a\r\n"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resp_to_lua(&lua, b"$-1\r\n", p).unwrap(),
            Value::Boolean(false)
        ));
        assert!(matches!(
            resp_to_lua(&lua, b"_\r\n", Protocol::Resp3).unwrap(),
            Value::Nil
        ));
        match resp_to_lua(&lua, b"-ERR no\r\n", p).unwrap() {
            Value::Table(t) => assert_eq!(t.raw_get::<String>("err").unwrap(), "ERR no"),
            other => panic!("{other:?}"),
        }
        // A reply that does not parse is an error, never a made-up value.
        assert!(resp_to_lua(&lua, b"$5\r\nab\r\n", p).is_err());
    }
}
