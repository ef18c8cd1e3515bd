//! `cjson`: lua-cjson 2.1.0, as Redis vendors it (`deps/lua/src/lua_cjson.c`).
//!
//! Encoding: strings are escaped as lua-cjson escapes them (control characters,
//! `"`, `\`, `/` as `\/` and DEL as `\u007f`; other bytes pass untouched);
//! numbers are written with `%.14g` (see `encode_number_precision`), and NaN or
//! infinity is an error unless `encode_invalid_numbers` allows it; a table whose
//! keys are all positive integers is an array (holes become `null`) unless it is
//! excessively sparse (more than `ratio` times as many slots as values, past
//! `safe` slots: an error by default, see `encode_sparse_array`); any other table,
//! including the empty one, is an object whose number keys are written as
//! strings. `cjson.null` (a NULL light userdata) and `nil` are `null`.
//!
//! Decoding follows the C token by token, including its leniencies: numbers are
//! read with `strtod`, so hexadecimal, `inf`, `nan` and a leading `+` are
//! accepted while `decode_invalid_numbers` is on (the default), and the input
//! ends at its first zero byte. Errors have the C's text: "Expected value but
//! found T_END at character 1". JSON `null` decodes to `cjson.null`, numbers to
//! Lua numbers.
//!
//! Nesting is capped at 1000 levels both ways, the default of
//! `encode_max_depth`/`decode_max_depth`; a larger setting is stored and
//! reported back but does not raise the cap.

use super::{c_double_to_i32, check_integer, check_string, format_g, typename, Fail, Wrappers};
use mlua::{Lua, LuaString, MultiValue, Table, Value};
use std::sync::{Arc, Mutex, PoisonError};

/// The deepest nesting encoded or decoded, whatever the configuration says.
const HARD_MAX_DEPTH: i32 = 1000;

/// A `cjson` table's configuration (`json_config_t`).
#[derive(Debug, Clone, Copy)]
struct Config {
    encode_sparse_convert: i32,
    encode_sparse_ratio: i32,
    encode_sparse_safe: i32,
    encode_max_depth: i32,
    /// 0 off, 1 on, 2 encode as `null`.
    encode_invalid_numbers: i32,
    encode_number_precision: i32,
    encode_keep_buffer: i32,
    decode_invalid_numbers: i32,
    decode_max_depth: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            encode_sparse_convert: 0,
            encode_sparse_ratio: 2,
            encode_sparse_safe: 10,
            encode_max_depth: 1000,
            encode_invalid_numbers: 0,
            encode_number_precision: 14,
            encode_keep_buffer: 1,
            decode_invalid_numbers: 1,
            decode_max_depth: 1000,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

fn current(cfg: &Shared) -> Config {
    *cfg.lock().unwrap_or_else(PoisonError::into_inner)
}

// ===== Configuration =====

/// `json_arg_init`: at most `n` arguments.
fn arg_init(args: &MultiValue, n: usize) -> Result<(), Fail> {
    if args.len() > n {
        return Err(Fail::arg(n as i64 + 1, "found too many arguments"));
    }
    Ok(())
}

fn is_given(args: &MultiValue, narg: usize) -> bool {
    !matches!(args.get(narg - 1), None | Some(Value::Nil))
}

/// `json_integer_option`.
fn integer_option(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Result<Value, Fail> {
    if is_given(args, narg) {
        // `int value = luaL_checkinteger(...)`: the low 32 bits.
        let value = check_integer(lua, args, narg)? as i32;
        if !(min <= value && value <= max) {
            // The C always blames argument 1.
            return Err(Fail::arg(
                1,
                format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = value;
    }
    Ok(Value::Integer(i64::from(*setting)))
}

/// `json_enum_option`; `options` of `None` means off/on.
fn enum_option(
    lua: &Lua,
    args: &MultiValue,
    narg: usize,
    setting: &mut i32,
    options: Option<&[&str]>,
) -> Result<Value, Fail> {
    let options = options.unwrap_or(&["off", "on"]);
    if is_given(args, narg) {
        if let Some(Value::Boolean(b)) = args.get(narg - 1) {
            *setting = i32::from(*b);
        } else {
            let name = check_string(lua, args, narg)?;
            let name = name.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &name[..]) {
                Some(i) => *setting = i as i32,
                None => {
                    let mut msg = b"invalid option '".to_vec();
                    msg.extend_from_slice(&name);
                    msg.push(b'\'');
                    return Err(Fail::arg(narg as i64, msg));
                }
            }
        }
    }
    if *setting == 0 || *setting == 1 {
        Ok(Value::Boolean(*setting != 0))
    } else {
        let name = options.get(*setting as usize).copied().unwrap_or("");
        Ok(Value::String(lua.create_string(name)?))
    }
}

// ===== Encoding =====

/// `char2escape`: how each byte is written inside a JSON string.
fn escape(b: u8) -> Option<&'static [u8]> {
    const CONTROL: [&[u8]; 32] = [
        b"\\u0000", b"\\u0001", b"\\u0002", b"\\u0003", b"\\u0004", b"\\u0005", b"\\u0006",
        b"\\u0007", b"\\b", b"\\t", b"\\n", b"\\u000b", b"\\f", b"\\r", b"\\u000e", b"\\u000f",
        b"\\u0010", b"\\u0011", b"\\u0012", b"\\u0013", b"\\u0014", b"\\u0015", b"\\u0016",
        b"\\u0017", b"\\u0018", b"\\u0019", b"\\u001a", b"\\u001b", b"\\u001c", b"\\u001d",
        b"\\u001e", b"\\u001f",
    ];
    match b {
        0..=31 => Some(CONTROL[b as usize]),
        b'"' => Some(b"\\\""),
        b'/' => Some(b"\\/"),
        b'\\' => Some(b"\\\\"),
        127 => Some(b"\\u007f"),
        _ => None,
    }
}

#[derive(Debug)]
struct Encoder {
    cfg: Config,
    max_depth: i32,
    out: Vec<u8>,
}

impl Encoder {
    fn string(&mut self, s: &[u8]) {
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &b in s {
            match escape(b) {
                Some(e) => self.out.extend_from_slice(e),
                None => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }

    /// `json_append_number`.
    fn number(&mut self, n: f64) -> Result<(), Fail> {
        match self.cfg.encode_invalid_numbers {
            0 => {
                if !n.is_finite() {
                    return Err(Fail::error(
                        "Cannot serialise number: must not be NaN or Inf",
                    ));
                }
            }
            1 => {
                if n.is_nan() {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
            }
            _ => {
                if !n.is_finite() {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        format_g(&mut self.out, n, self.cfg.encode_number_precision as usize);
        Ok(())
    }

    /// `json_append_data` for `root`. Iterative: the tables being written
    /// are kept in `open`, innermost last, so deep nesting needs no stack.
    fn run(&mut self, lua: &Lua, root: &Value) -> Result<(), Fail> {
        let mut open: Vec<Writing> = Vec::new();
        let mut next = Some(root.clone());
        loop {
            match next.take() {
                Some(Value::Table(table)) => {
                    let depth = open.len() as i32 + 1;
                    if depth > self.max_depth {
                        return Err(nesting_error(depth));
                    }
                    let len = self.array_length(&table)?;
                    if len > 0 {
                        self.out.push(b'[');
                        open.push(Writing::Array {
                            table,
                            len,
                            done: 0,
                        });
                    } else {
                        self.out.push(b'{');
                        let (keys, len) = collect_keys(lua, &table)?;
                        open.push(Writing::Object {
                            table,
                            keys,
                            len,
                            done: 0,
                        });
                    }
                }
                Some(scalar) => self.scalar(&scalar)?,
                None => {}
            }
            // The next value of the innermost table, or its end.
            match open.last_mut() {
                None => return Ok(()),
                Some(Writing::Array { table, len, done }) => {
                    if *done == *len {
                        self.out.push(b']');
                        open.pop();
                        continue;
                    }
                    if *done > 0 {
                        self.out.push(b',');
                    }
                    *done += 1;
                    next = Some(table.raw_get(*done)?);
                }
                Some(Writing::Object {
                    table,
                    keys,
                    len,
                    done,
                }) => {
                    if *done == *len {
                        self.out.push(b'}');
                        open.pop();
                        continue;
                    }
                    if *done > 0 {
                        self.out.push(b',');
                    }
                    *done += 1;
                    let key: Value = keys.raw_get(*done)?;
                    self.key(&key)?;
                    next = Some(table.raw_get(key)?);
                }
            }
        }
    }

    fn scalar(&mut self, v: &Value) -> Result<(), Fail> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(i) => self.number(*i as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            other => {
                return Err(Fail::error(format!(
                    "Cannot serialise {}: type not supported",
                    typename(other)
                )))
            }
        }
        Ok(())
    }

    /// `lua_array_length`: the array size, or -1 for an object.
    fn array_length(&self, t: &Table) -> Result<i32, Fail> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in t.pairs::<Value, bool>() {
            let (k, _) = pair?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(-1),
            };
            if k == 0.0 || k.floor() != k || k < 1.0 {
                return Ok(-1);
            }
            if k > f64::from(max) {
                max = c_double_to_i32(k);
            }
            items = items.wrapping_add(1);
        }
        let cfg = &self.cfg;
        if cfg.encode_sparse_ratio > 0
            && max > items.wrapping_mul(cfg.encode_sparse_ratio)
            && max > cfg.encode_sparse_safe
        {
            if cfg.encode_sparse_convert == 0 {
                return Err(Fail::error(
                    "Cannot serialise table: excessively sparse array",
                ));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    /// An object key and its colon.
    fn key(&mut self, k: &Value) -> Result<(), Fail> {
        match k {
            Value::Integer(i) => {
                self.out.push(b'"');
                self.number(*i as f64)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::Number(n) => {
                self.out.push(b'"');
                self.number(*n)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            other => {
                return Err(Fail::error(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    typename(other)
                )))
            }
        }
        Ok(())
    }
}

fn nesting_error(depth: i32) -> Fail {
    Fail::error(format!("Cannot serialise, excessive nesting ({depth})"))
}

/// A table being written.
#[derive(Debug)]
enum Writing {
    Array {
        table: Table,
        len: i32,
        done: i32,
    },
    /// The keys are collected first, in `next` order, into a Lua table (a
    /// Rust vector would take an `mlua` reference per string key).
    Object {
        table: Table,
        keys: Table,
        len: i64,
        done: i64,
    },
}

/// The keys of `t` in `next` order, in a sequence, and how many.
fn collect_keys(lua: &Lua, t: &Table) -> Result<(Table, i64), Fail> {
    let keys = lua.create_table()?;
    let mut n: i64 = 0;
    for pair in t.pairs::<Value, bool>() {
        let (k, _) = pair?;
        n += 1;
        keys.raw_set(n, k)?;
    }
    Ok((keys, n))
}

fn encode(lua: &Lua, cfg: &Shared, args: &MultiValue) -> Result<Value, Fail> {
    if args.len() != 1 {
        return Err(Fail::arg(1, "expected 1 argument"));
    }
    let cfg = current(cfg);
    let mut enc = Encoder {
        cfg,
        max_depth: cfg.encode_max_depth.min(HARD_MAX_DEPTH),
        out: Vec::new(),
    };
    enc.run(lua, &args[0])?;
    Ok(Value::String(lua.create_string(&enc.out)?))
}

// ===== Decoding =====

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    /// A token that could not be read, with why.
    Error(&'static str),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str => "T_STRING",
            Kind::Number => "T_NUMBER",
            Kind::Boolean => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error(why) => why,
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Where the token starts (or where reading it failed), 0 based.
    index: usize,
    number: f64,
    boolean: bool,
}

#[derive(Debug)]
struct Parser<'a> {
    data: &'a [u8],
    ptr: usize,
    decode_invalid_numbers: bool,
    max_depth: i32,
    depth: i32,
    /// The text of the last string token.
    text: Vec<u8>,
}

impl Parser<'_> {
    /// The byte at `i`; the input is a C string, so past its end is a zero.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn token(&self, kind: Kind, index: usize) -> Token {
        Token {
            kind,
            index,
            number: 0.0,
            boolean: false,
        }
    }

    /// `json_next_token`.
    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        let start = self.ptr;
        let ch = self.at(start);
        let single = match ch {
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b',' => Some(Kind::Comma),
            b':' => Some(Kind::Colon),
            _ => None,
        };
        if let Some(kind) = single {
            self.ptr += 1;
            return self.token(kind, start);
        }
        match ch {
            0 => self.token(Kind::End, start),
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.decode_invalid_numbers && self.is_invalid_number() {
                    return self.token(Kind::Error("invalid number"), start);
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let rest = &self.data[start..];
                if rest.starts_with(b"true") {
                    self.ptr += 4;
                    let mut t = self.token(Kind::Boolean, start);
                    t.boolean = true;
                    t
                } else if rest.starts_with(b"false") {
                    self.ptr += 5;
                    self.token(Kind::Boolean, start)
                } else if rest.starts_with(b"null") {
                    self.ptr += 4;
                    self.token(Kind::Null, start)
                } else if self.decode_invalid_numbers && self.is_invalid_number() {
                    self.number_token()
                } else {
                    self.token(Kind::Error("invalid token"), start)
                }
            }
            _ => self.token(Kind::Error("invalid token"), start),
        }
    }

    /// `json_is_invalid_number`: what strict JSON forbids but `strtod` takes.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let ch2 = self.at(p + 1);
            return (ch2 | 0x20) == b'x' || ch2.is_ascii_digit();
        }
        // `*p <= '9'` with a signed char: bytes from 0x80 count as digits.
        if self.at(p) <= b'9' || self.at(p) >= 0x80 {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).to_ascii_lowercase() == w[i]);
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Token {
        let start = self.ptr;
        match strtod(self.data, start) {
            Some((value, end)) => {
                self.ptr = end;
                let mut t = self.token(Kind::Number, start);
                t.number = value;
                t
            }
            None => self.token(Kind::Error("invalid number"), start),
        }
    }

    /// `json_next_string_token`; the text goes to `self.text`.
    fn string_token(&mut self) -> Token {
        let start = self.ptr;
        self.ptr += 1;
        self.text.clear();
        loop {
            let mut ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.token(Kind::Error("unexpected end of string"), self.ptr);
            }
            if ch == b'\\' {
                ch = match self.at(self.ptr + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        return self.token(Kind::Error("invalid unicode escape code"), self.ptr);
                    }
                    _ => return self.token(Kind::Error("invalid escape code"), self.ptr),
                };
                self.ptr += 1;
            }
            self.text.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        self.token(Kind::Str, start)
    }

    /// `decode_hex4` at `i`, or `None`.
    fn hex4(&self, i: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, k| {
            let d = char::from(self.at(i + k)).to_digit(16)?;
            Some((acc << 4) | d)
        })
    }

    /// `json_append_unicode_escape` with `self.ptr` on the backslash.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut codepoint) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut escape_len = 6;
        if codepoint & 0xF800 == 0xD800 {
            // A low surrogate first, or no second escape, is an error.
            if codepoint & 0x400 != 0 {
                return false;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            codepoint = (((codepoint & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            escape_len = 12;
        }
        push_utf8(&mut self.text, codepoint);
        self.ptr += escape_len;
        true
    }

    fn error(&self, expected: &str, token: &Token) -> Fail {
        Fail::error(format!(
            "Expected {expected} but found {} at character {}",
            token.kind.name(),
            token.index + 1
        ))
    }

    fn descend(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth <= self.max_depth {
            return Ok(());
        }
        Err(Fail::error(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.ptr
        )))
    }

    /// After an object's `{` or a `,`: reads `"key" :`, the key kept as the
    /// object's pending key.
    fn object_key(&mut self, lua: &Lua, token: &Token) -> Result<LuaString, Fail> {
        if token.kind != Kind::Str {
            return Err(self.error("object key string", token));
        }
        let key = lua.create_string(&self.text)?;
        let colon = self.next_token();
        if colon.kind != Kind::Colon {
            return Err(self.error("colon", &colon));
        }
        Ok(key)
    }

    /// `json_process_value` and the object and array contexts, without
    /// recursion: the open containers are kept in `open`, innermost last.
    fn value(&mut self, lua: &Lua, first: Token) -> Result<Value, Fail> {
        let mut open: Vec<Open> = Vec::new();
        let mut token = first;
        loop {
            let mut value = match token.kind {
                Kind::Str => Value::String(lua.create_string(&self.text)?),
                Kind::Number => Value::Number(token.number),
                Kind::Boolean => Value::Boolean(token.boolean),
                Kind::Null => Value::NULL,
                Kind::ObjBegin => {
                    self.descend()?;
                    let table = lua.create_table()?;
                    let next = self.next_token();
                    if next.kind == Kind::ObjEnd {
                        self.depth -= 1;
                        Value::Table(table)
                    } else {
                        let key = self.object_key(lua, &next)?;
                        open.push(Open::Object { table, key });
                        token = self.next_token();
                        continue;
                    }
                }
                Kind::ArrBegin => {
                    self.descend()?;
                    let table = lua.create_table()?;
                    let next = self.next_token();
                    if next.kind == Kind::ArrEnd {
                        self.depth -= 1;
                        Value::Table(table)
                    } else {
                        open.push(Open::Array { table, index: 1 });
                        token = next;
                        continue;
                    }
                }
                _ => return Err(self.error("value", &token)),
            };
            // Store the value in its container; a closing bracket makes the
            // container the value for the one outside it.
            loop {
                match open.last_mut() {
                    None => return Ok(value),
                    Some(Open::Array { table, index }) => {
                        table.raw_set(*index, value)?;
                        let next = self.next_token();
                        if next.kind == Kind::ArrEnd {
                            self.depth -= 1;
                            value = Value::Table(table.clone());
                            open.pop();
                            continue;
                        }
                        if next.kind != Kind::Comma {
                            return Err(self.error("comma or array end", &next));
                        }
                        *index += 1;
                        token = self.next_token();
                        break;
                    }
                    Some(Open::Object { table, key }) => {
                        table.raw_set(key.clone(), value)?;
                        let next = self.next_token();
                        if next.kind == Kind::ObjEnd {
                            self.depth -= 1;
                            value = Value::Table(table.clone());
                            open.pop();
                            continue;
                        }
                        if next.kind != Kind::Comma {
                            return Err(self.error("comma or object end", &next));
                        }
                        let next = self.next_token();
                        *key = self.object_key(lua, &next)?;
                        token = self.next_token();
                        break;
                    }
                }
            }
        }
    }
}

/// A JSON container being filled.
#[derive(Debug)]
enum Open {
    Array { table: Table, index: i64 },
    Object { table: Table, key: LuaString },
}

/// Appends `codepoint` (at most 0x10FFFF here) as UTF-8.
fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    if cp <= 0x7F {
        out.push(cp as u8);
    } else if cp <= 0x7FF {
        out.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
    } else if cp <= 0xFFFF {
        out.extend_from_slice(&[
            (cp >> 12) as u8 | 0xE0,
            ((cp >> 6) & 0x3F) as u8 | 0x80,
            (cp & 0x3F) as u8 | 0x80,
        ]);
    } else {
        out.extend_from_slice(&[
            (cp >> 18) as u8 | 0xF0,
            ((cp >> 12) & 0x3F) as u8 | 0x80,
            ((cp >> 6) & 0x3F) as u8 | 0x80,
            (cp & 0x3F) as u8 | 0x80,
        ]);
    }
}

/// C's `strtod` on the bytes at `start` (ending at a zero byte or the end):
/// the value and where it stopped, or `None` when nothing was read.
///
/// Takes what glibc takes: an optional sign, then `inf`/`infinity`,
/// `nan`/`nan(...)` (any case), a hexadecimal number `0x...[p...]`, or a
/// decimal one.
pub(crate) fn strtod(data: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut p = start;
    let negative = match at(p) {
        b'-' => {
            p += 1;
            true
        }
        b'+' => {
            p += 1;
            false
        }
        _ => false,
    };
    let signed = |x: f64| if negative { -x } else { x };
    let word = |p: usize, w: &[u8]| (0..w.len()).all(|i| at(p + i).to_ascii_lowercase() == w[i]);
    if word(p, b"inf") {
        let end = if word(p + 3, b"inity") { p + 8 } else { p + 3 };
        return Some((signed(f64::INFINITY), end));
    }
    if word(p, b"nan") {
        let mut end = p + 3;
        if at(end) == b'(' {
            let mut q = end + 1;
            while at(q).is_ascii_alphanumeric() || at(q) == b'_' {
                q += 1;
            }
            if at(q) == b')' {
                end = q + 1;
            }
        }
        return Some((signed(f64::NAN), end));
    }
    if at(p) == b'0' && (at(p + 1) | 0x20) == b'x' {
        if let Some((value, end)) = hex_float(data, p + 2) {
            return Some((signed(value), end));
        }
        // "0x" with no digits: just the zero.
        return Some((signed(0.0), p + 1));
    }
    let digits_from = |mut q: usize| {
        while at(q).is_ascii_digit() {
            q += 1;
        }
        q
    };
    let int_end = digits_from(p);
    let mut end = int_end;
    let mut any = int_end > p;
    if at(end) == b'.' {
        let frac_end = digits_from(end + 1);
        any |= frac_end > end + 1;
        end = frac_end;
    }
    if !any {
        return None;
    }
    if at(end) | 0x20 == b'e' {
        let mut q = end + 1;
        if matches!(at(q), b'+' | b'-') {
            q += 1;
        }
        let exp_end = digits_from(q);
        if exp_end > q {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(&data[start..end]).ok()?;
    let text = text.strip_prefix('+').unwrap_or(text);
    text.parse::<f64>().ok().map(|v| (v, end))
}

/// The hexadecimal digits (and `p` exponent) of a `0x` number starting at `p`.
fn hex_float(data: &[u8], mut p: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let digit = |b: u8| char::from(b).to_digit(16);
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut any = false;
    let mut take = |d: u32, fraction: bool, exp: &mut i64| {
        any = true;
        if mantissa >> 60 == 0 {
            mantissa = (mantissa << 4) | u64::from(d);
            if fraction {
                *exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !fraction {
                *exp += 4;
            }
        }
    };
    while let Some(d) = digit(at(p)) {
        take(d, false, &mut exp);
        p += 1;
    }
    if at(p) == b'.' {
        let mut q = p + 1;
        while let Some(d) = digit(at(q)) {
            take(d, true, &mut exp);
            q += 1;
        }
        if any {
            p = q;
        }
    }
    if !any {
        return None;
    }
    if at(p) | 0x20 == b'p' {
        let mut q = p + 1;
        let neg = match at(q) {
            b'-' => {
                q += 1;
                true
            }
            b'+' => {
                q += 1;
                false
            }
            _ => false,
        };
        let digits_start = q;
        let mut e: i64 = 0;
        while at(q).is_ascii_digit() {
            e = (e * 10 + i64::from(at(q) - b'0')).min(100_000);
            q += 1;
        }
        if q > digits_start {
            exp += if neg { -e } else { e };
            p = q;
        }
    }
    if sticky {
        mantissa |= 1;
    }
    let mut value = mantissa as f64;
    // Scale by 2^exp in steps that stay exact.
    let mut e = exp;
    while e > 0 {
        let step = e.min(1000);
        value *= 2f64.powi(step as i32);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        value /= 2f64.powi(step as i32);
        e += step;
    }
    Some((value, p))
}

fn decode(lua: &Lua, cfg: &Shared, args: &MultiValue) -> Result<Value, Fail> {
    if args.len() != 1 {
        return Err(Fail::arg(1, "expected 1 argument"));
    }
    let cfg = current(cfg);
    let input = check_string(lua, args, 1)?;
    let data = input.as_bytes();
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(Fail::error("JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut parser = Parser {
        data: &data,
        ptr: 0,
        decode_invalid_numbers: cfg.decode_invalid_numbers != 0,
        max_depth: cfg.decode_max_depth.min(HARD_MAX_DEPTH),
        depth: 0,
        text: Vec::new(),
    };
    let token = parser.next_token();
    let value = parser.value(lua, token)?;
    let token = parser.next_token();
    if token.kind != Kind::End {
        return Err(parser.error("the end", &token));
    }
    Ok(value)
}

// ===== The module =====

/// A `cjson` table with its own configuration (`lua_cjson_new`).
fn build(lua: &Lua, wrap: &Wrappers) -> mlua::Result<Table> {
    let cfg: Shared = Arc::new(Mutex::new(Config::default()));
    let t = lua.create_table()?;

    let c = cfg.clone();
    t.set(
        "encode",
        wrap.one(lua, "encode", move |lua, args| encode(lua, &c, args))?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        wrap.one(lua, "decode", move |lua, args| decode(lua, &c, args))?,
    )?;

    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        wrap.many(lua, "encode_sparse_array", move |lua, args| {
            arg_init(args, 3)?;
            let mut guard = c.lock().unwrap_or_else(PoisonError::into_inner);
            let cfg = &mut *guard;
            let convert = enum_option(lua, args, 1, &mut cfg.encode_sparse_convert, None)?;
            let ratio = integer_option(lua, args, 2, &mut cfg.encode_sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, args, 3, &mut cfg.encode_sparse_safe, 0, i32::MAX)?;
            drop(guard);
            let out = lua.create_sequence_from([convert, ratio, safe])?;
            Ok((3, out))
        })?,
    )?;

    let int_setting = |name: &'static str,
                       field: fn(&mut Config) -> &mut i32,
                       min: i32,
                       max: i32|
     -> mlua::Result<mlua::Function> {
        let c = cfg.clone();
        wrap.one(lua, name, move |lua, args| {
            arg_init(args, 1)?;
            let mut guard = c.lock().unwrap_or_else(PoisonError::into_inner);
            integer_option(lua, args, 1, field(&mut guard), min, max)
        })
    };
    t.set(
        "encode_max_depth",
        int_setting("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX)?,
    )?;
    t.set(
        "decode_max_depth",
        int_setting("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX)?,
    )?;
    t.set(
        "encode_number_precision",
        int_setting(
            "encode_number_precision",
            |c| &mut c.encode_number_precision,
            1,
            14,
        )?,
    )?;

    let enum_setting = |name: &'static str,
                        field: fn(&mut Config) -> &mut i32,
                        options: Option<&'static [&'static str]>|
     -> mlua::Result<mlua::Function> {
        let c = cfg.clone();
        wrap.one(lua, name, move |lua, args| {
            arg_init(args, 1)?;
            let mut guard = c.lock().unwrap_or_else(PoisonError::into_inner);
            enum_option(lua, args, 1, field(&mut guard), options)
        })
    };
    t.set(
        "encode_keep_buffer",
        enum_setting("encode_keep_buffer", |c| &mut c.encode_keep_buffer, None)?,
    )?;
    t.set(
        "encode_invalid_numbers",
        enum_setting(
            "encode_invalid_numbers",
            |c| &mut c.encode_invalid_numbers,
            Some(&["off", "on", "null"]),
        )?,
    )?;
    t.set(
        "decode_invalid_numbers",
        enum_setting(
            "decode_invalid_numbers",
            |c| &mut c.decode_invalid_numbers,
            None,
        )?,
    )?;

    t.set(
        "new",
        wrap.one(lua, "new", |lua, _| {
            let wrap = Wrappers::from_registry(lua)?;
            Ok(Value::Table(build(lua, &wrap)?))
        })?,
    )?;
    t.set("null", Value::NULL)?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// The `cjson` table.
pub(super) fn open(lua: &Lua, wrap: &Wrappers) -> mlua::Result<Table> {
    build(lua, wrap)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{error, eval, lua, pcall_message};
    use super::strtod;
    use mlua::Lua;

    fn enc(lua: &Lua, expr: &str) -> String {
        eval::<String>(lua, &format!("return cjson.encode({expr})"))
    }

    #[test]
    fn encode_basics() {
        let lua = lua();
        assert_eq!(enc(&lua, "{1,2,3}"), "[1,2,3]");
        assert_eq!(enc(&lua, "{}"), "{}");
        assert_eq!(enc(&lua, "'a/b\"c\\\\d'"), r#""a\/b\"c\\d""#);
        let bytes: mlua::LuaString = eval(
            &lua,
            "return cjson.encode('\\0\\1\\8\\9\\10\\12\\13\\31\\127\\128')",
        );
        assert_eq!(
            &bytes.as_bytes()[..],
            b"\"\\u0000\\u0001\\b\\t\\n\\f\\r\\u001f\\u007f\x80\""
        );
        assert_eq!(enc(&lua, "true"), "true");
        assert_eq!(enc(&lua, "false"), "false");
        assert_eq!(enc(&lua, "nil"), "null");
        assert_eq!(enc(&lua, "cjson.null"), "null");
        assert_eq!(enc(&lua, "0.1"), "0.1");
        assert_eq!(enc(&lua, "-0"), "-0");
        assert_eq!(enc(&lua, "1e15"), "1e+15");
        assert_eq!(enc(&lua, "1/3"), "0.33333333333333");
        assert_eq!(enc(&lua, "2^53"), "9.007199254741e+15");
        assert_eq!(enc(&lua, "{[1]='a', [3]='c'}"), r#"["a",null,"c"]"#);
        assert_eq!(enc(&lua, "{{}, {{}}}"), "[{},[{}]]");
        assert_eq!(enc(&lua, "{a={b={c=1}}}"), r#"{"a":{"b":{"c":1}}}"#);
        assert_eq!(enc(&lua, "{[1.5]=1}"), r#"{"1.5":1}"#);
        assert_eq!(enc(&lua, "{[0]=1}"), r#"{"0":1}"#);
        assert_eq!(enc(&lua, "{[-1]=1}"), r#"{"-1":1}"#);
        let one_of: String = enc(&lua, "{one='one', [1]='one'}");
        assert!(
            one_of == r#"{"1":"one","one":"one"}"# || one_of == r#"{"one":"one","1":"one"}"#,
            "{one_of}"
        );
    }

    #[test]
    fn encode_sparse_arrays() {
        let lua = lua();
        // Up to `safe` (10) slots are always an array.
        assert_eq!(
            enc(&lua, "{[10]=1}"),
            "[null,null,null,null,null,null,null,null,null,1]"
        );
        assert_eq!(
            error(&lua, "local x = cjson.encode({[11]=1})"),
            "user_script:1: Cannot serialise table: excessively sparse array"
        );
        // Within the ratio.
        assert_eq!(
            enc(&lua, "{[1]=1,[2]=2,[3]=3,[4]=4,[5]=5,[6]=6,[12]=12}"),
            "[1,2,3,4,5,6,null,null,null,null,null,12]"
        );
        let (conv, ratio, safe): (bool, i64, i64) =
            eval(&lua, "return cjson.encode_sparse_array(true)");
        assert_eq!((conv, ratio, safe), (true, 2, 10));
        assert_eq!(enc(&lua, "{[11]=1}"), r#"{"11":1}"#);
        let (conv, ratio, safe): (bool, i64, i64) =
            eval(&lua, "return cjson.encode_sparse_array(false, 0, 3)");
        assert_eq!((conv, ratio, safe), (false, 0, 3));
        assert_eq!(enc(&lua, "{[5]=1}"), "[null,null,null,null,1]");
        assert_eq!(
            error(&lua, "cjson.encode_sparse_array(false, -1)"),
            "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)"
        );
        assert_eq!(
            error(&lua, "cjson.encode_sparse_array(1, 2, 3, 4)"),
            "user_script:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)"
        );
    }

    #[test]
    fn encode_errors() {
        let lua = lua();
        let cases = [
            (
                "cjson.encode(print)",
                "Cannot serialise function: type not supported",
            ),
            (
                "cjson.encode({f=print})",
                "Cannot serialise function: type not supported",
            ),
            (
                "cjson.encode(coroutine.create(function() end))",
                "Cannot serialise thread: type not supported",
            ),
            (
                "cjson.encode({[true]=1})",
                "Cannot serialise boolean: table key must be a number or string",
            ),
            (
                "cjson.encode({[-1/0]=1})",
                "Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode(0/0)",
                "Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode()",
                "bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "cjson.encode(1, 2)",
                "bad argument #1 to 'encode' (expected 1 argument)",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(
                error(&lua, &format!("local x = {code}")),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
        // Invalid numbers when allowed.
        let out: String = eval(
            &lua,
            "cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0})",
        );
        assert_eq!(out, "[inf,-inf,nan]");
        let (setting, out): (String, String) = eval(
            &lua,
            "local s = cjson.encode_invalid_numbers('null') return s, cjson.encode({1/0, 2})",
        );
        assert_eq!((setting.as_str(), out.as_str()), ("null", "[null,2]"));
        assert_eq!(
            error(&lua, "cjson.encode_invalid_numbers('maybe')"),
            "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'maybe')"
        );
    }

    #[test]
    fn encode_depth() {
        let lua = lua();
        assert_eq!(
            error(&lua, "local t = {} t[1] = t local x = cjson.encode(t)"),
            "user_script:1: Cannot serialise, excessive nesting (1001)"
        );
        let out: String = eval(
            &lua,
            "local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end
             return cjson.encode(t)",
        );
        assert_eq!(
            out,
            format!("{}{}", "[".repeat(999), "{}".to_string() + &"]".repeat(999))
        );
        // Objects nest as deep.
        let n: i64 = eval(
            &lua,
            "local t = {} local c = t for i = 1, 999 do c.a = {} c = c.a end
             return #cjson.encode(t)",
        );
        assert_eq!(n, 999 * 6 + 2);
        let depth: i64 = eval(&lua, "return cjson.encode_max_depth(2)");
        assert_eq!(depth, 2);
        assert_eq!(enc(&lua, "{{1}}"), "[[1]]");
        assert_eq!(
            error(&lua, "local x = cjson.encode({{{1}}})"),
            "user_script:1: Cannot serialise, excessive nesting (3)"
        );
        // A larger setting is kept, the cap stays at 1000.
        let depth: i64 = eval(&lua, "return cjson.encode_max_depth(5000)");
        assert_eq!(depth, 5000);
        assert_eq!(
            error(&lua, "local t = {} t[1] = t local x = cjson.encode(t)"),
            "user_script:1: Cannot serialise, excessive nesting (1001)"
        );
    }

    #[test]
    fn encode_precision() {
        let lua = lua();
        assert_eq!(
            eval::<i64>(&lua, "return cjson.encode_number_precision(3)"),
            3
        );
        assert_eq!(enc(&lua, "3.14159"), "3.14");
        assert_eq!(enc(&lua, "{[3.14159]=1}"), r#"{"3.14":1}"#);
        assert_eq!(
            error(&lua, "cjson.encode_number_precision(15)"),
            "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"
        );
        assert_eq!(
            error(&lua, "cjson.encode_number_precision('x')"),
            "user_script:1: bad argument #1 to 'encode_number_precision' (number expected, got string)"
        );
    }

    #[test]
    fn decode_basics() {
        let lua = lua();
        // "EVAL - JSON numeric decoding"
        let s: String = eval(
            &lua,
            r#"return table.concat(cjson.decode("[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]"), " ")"#,
        );
        assert_eq!(s, "0 -5000 -1 0.0003 1023.2 0");
        // "EVAL - JSON string decoding"
        let (a, b): (String, String) = eval(
            &lua,
            r#"local d = cjson.decode('{"keya": "a", "keyb": "b"}') return d.keya, d.keyb"#,
        );
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
        let ok: bool = eval(
            &lua,
            r#"local t = cjson.decode('{"a":null,"b":[true,false,null],"c":{}}')
               return t.a == cjson.null and t.b[1] == true and t.b[2] == false
                  and t.b[3] == cjson.null and next(t.c) == nil and type(t.a) == 'userdata'"#,
        );
        assert!(ok);
        let s: String = eval(
            &lua,
            r#"return cjson.decode('"\\u00e9\\u20ac\\ud83d\\ude00 \\/\\"\\\\\\b\\f\\n\\r\\t"')"#,
        );
        assert_eq!(s, "é€😀 /\"\\\u{8}\u{c}\n\r\t");
        assert_eq!(eval::<f64>(&lua, "return cjson.decode(' 42 ')"), 42.0);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode(42)"), 42.0);
        assert_eq!(
            error(&lua, "local x = cjson.decode('\"a\\0b\"')"),
            "user_script:1: Expected value but found unexpected end of string at character 3"
        );
        // The input ends at a zero byte.
        assert_eq!(
            eval::<i64>(&lua, "return #cjson.decode('[1,2]\\0garbage')"),
            2
        );
        // strtod's leniencies.
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('0x10')"), 16.0);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('+5')"), 5.0);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('012')"), 12.0);
        assert_eq!(
            eval::<f64>(&lua, "return cjson.decode('Infinity')"),
            f64::INFINITY
        );
        assert_eq!(
            eval::<f64>(&lua, "return cjson.decode('-inf')"),
            f64::NEG_INFINITY
        );
        assert!(eval::<f64>(&lua, "return cjson.decode('nan')").is_nan());
        assert!(eval::<f64>(&lua, "return cjson.decode('NaN')").is_nan());
        let (n, t): (i64, String) = eval(
            &lua,
            "local t = cjson.decode('[1,[2,[3,{}]]]') return #t, type(t[2][2][2])",
        );
        assert_eq!((n, t.as_str()), (2, "table"));
    }

    #[test]
    fn decode_errors() {
        let lua = lua();
        let cases = [
            ("''", "Expected value but found T_END at character 1"),
            (
                "'[1'",
                "Expected comma or array end but found T_END at character 3",
            ),
            (
                "'{\"a\" 1}'",
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                "'{1:2}'",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            (
                "'{\"a\":1 \"b\"}'",
                "Expected comma or object end but found T_STRING at character 8",
            ),
            (
                "'[1] x'",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "'[1] 2'",
                "Expected the end but found T_NUMBER at character 5",
            ),
            ("']'", "Expected value but found T_ARR_END at character 1"),
            (
                "'nul'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "'@'",
                "Expected value but found invalid token at character 1",
            ),
            (
                "'-'",
                "Expected value but found invalid number at character 1",
            ),
            (
                "'\"abc'",
                "Expected value but found unexpected end of string at character 5",
            ),
            (
                "'\"a\\\\qb\"'",
                "Expected value but found invalid escape code at character 3",
            ),
            (
                "'\"\\\\u12g4\"'",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "'\"\\\\udc00\"'",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "'\"\\\\ud800x\"'",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            ("'\\0a'", "JSON parser does not support UTF-16 or UTF-32"),
            ("'a\\0'", "JSON parser does not support UTF-16 or UTF-32"),
            (
                "{}",
                "bad argument #1 to 'decode' (string expected, got table)",
            ),
            ("", "bad argument #1 to 'decode' (expected 1 argument)"),
            (
                "'1', '2'",
                "bad argument #1 to 'decode' (expected 1 argument)",
            ),
        ];
        for (arg, want) in cases {
            let code = format!("local x = cjson.decode({arg})");
            assert_eq!(
                error(&lua, &code),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
        // Strict numbers.
        let off: bool = eval(&lua, "return cjson.decode_invalid_numbers(false)");
        assert!(!off);
        for bad in [
            "'+1'",
            "'0x10'",
            "'01'",
            "'-01'",
            "'inf'",
            "'nan'",
            "'-Infinity'",
        ] {
            let code = format!("local x = cjson.decode({bad})");
            let msg = error(&lua, &code);
            assert!(
                msg.contains("invalid number") || msg.contains("invalid token"),
                "{code}: {msg}"
            );
        }
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('-0.5e1')"), -5.0);
        assert_eq!(eval::<f64>(&lua, "return cjson.decode('0')"), 0.0);
    }

    #[test]
    fn decode_depth() {
        let lua = lua();
        let kind: String = eval(
            &lua,
            "return type(cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)))",
        );
        assert_eq!(kind, "table");
        assert_eq!(
            error(
                &lua,
                r#"local x = cjson.decode(string.rep('{"a":', 1001) .. '1' .. string.rep('}', 1001))"#
            ),
            "user_script:1: Found too many nested data structures (1001) at character 5001"
        );
        eval::<()>(&lua, "cjson.decode_max_depth(1)");
        let msg = pcall_message(
            &lua,
            r#"return cjson.decode('{"obj": {"array": [1,2,3,4]}}')"#,
        );
        assert_eq!(
            msg,
            "Found too many nested data structures (2) at character 9"
        );
    }

    #[test]
    fn redis_json_smoke_test() {
        let lua = lua();
        let out: String = eval(
            &lua,
            r#"
            local some_map = {
                s1="Some string",
                n1=100,
                a1={"Some","String","Array"},
                nil1=nil,
                b1=true,
                b2=false}
            local encoded = cjson.encode(some_map)
            local decoded = cjson.decode(encoded)
            assert(table.concat(some_map) == table.concat(decoded))

            cjson.encode_keep_buffer(false)
            encoded = cjson.encode(some_map)
            decoded = cjson.decode(encoded)
            assert(table.concat(some_map) == table.concat(decoded))

            -- Table with numeric keys
            local table1 = {one="one", [1]="one"}
            encoded = cjson.encode(table1)
            decoded = cjson.decode(encoded)
            assert(decoded["one"] == table1["one"])
            assert(decoded["1"] == table1[1])

            -- Array
            local array1 = {[1]="one", [2]="two", [3]="three"}
            encoded = cjson.encode(array1)
            decoded = cjson.decode(encoded)
            assert(table.concat(array1) == table.concat(decoded))

            -- Invalid keys
            local invalid_map = {}
            invalid_map[false] = "false"
            local ok, encoded = pcall(cjson.encode, invalid_map)
            assert(ok == false)

            -- Max depth
            cjson.encode_max_depth(1)
            ok, encoded = pcall(cjson.encode, some_map)
            assert(ok == false)

            cjson.decode_max_depth(1)
            ok, decoded = pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}')
            assert(ok == false)

            return "test finished"
            "#,
        );
        assert_eq!(out, "test finished");
    }

    #[test]
    fn round_trip_and_new() {
        let lua = lua();
        let ok: bool = eval(
            &lua,
            r#"
            local v = {name = "x\1\127/é", list = {1, 2.5, -3e-7, "4", {true}}, nested = {a = {b = {}}}}
            local d = cjson.decode(cjson.encode(v))
            return d.name == v.name and d.list[2] == 2.5 and d.list[3] == -3e-7
               and d.list[4] == "4" and d.list[5][1] == true and next(d.nested.a.b) == nil
            "#,
        );
        assert!(ok);
        // `new` gives an independent configuration.
        let (a, b): (String, String) = eval(
            &lua,
            "local j = cjson.new() j.encode_number_precision(2)
             return j.encode(3.14159), cjson.encode(3.14159)",
        );
        assert_eq!((a.as_str(), b.as_str()), ("3.1", "3.14159"));
        let (name, version): (String, String) = eval(&lua, "return cjson._NAME, cjson._VERSION");
        assert_eq!((name.as_str(), version.as_str()), ("cjson", "2.1.0"));
        let settings: (bool, bool, bool) = eval(
            &lua,
            "return cjson.encode_keep_buffer(), cjson.encode_invalid_numbers(), cjson.decode_invalid_numbers()",
        );
        assert_eq!(settings, (true, false, true));
    }

    #[test]
    fn strtod_like_c() {
        let p = |s: &str| strtod(s.as_bytes(), 0);
        assert_eq!(p("1.5x"), Some((1.5, 3)));
        assert_eq!(p("1."), Some((1.0, 2)));
        assert_eq!(p("1e"), Some((1.0, 1)));
        assert_eq!(p("1e+"), Some((1.0, 1)));
        assert_eq!(p("1E+2"), Some((100.0, 4)));
        assert_eq!(p("-.5"), Some((-0.5, 3)));
        assert_eq!(p("0x1F"), Some((31.0, 4)));
        assert_eq!(p("0x1.8p1"), Some((3.0, 7)));
        assert_eq!(p("0x.8"), Some((0.5, 4)));
        assert_eq!(p("0xg"), Some((0.0, 1)));
        assert_eq!(p("infinity"), Some((f64::INFINITY, 8)));
        assert_eq!(p("-INFx"), Some((f64::NEG_INFINITY, 4)));
        assert_eq!(p("nan(123)").map(|(_, e)| e), Some(8));
        assert_eq!(p("nan(12").map(|(_, e)| e), Some(3));
        assert_eq!(p("1e400"), Some((f64::INFINITY, 5)));
        assert_eq!(p("-"), None);
        assert_eq!(p("."), None);
        assert_eq!(p("abc"), None);
        assert_eq!(
            p("123456789012345678901234567890"),
            Some((1.2345678901234568e29, 30))
        );
    }
}
