//! `struct`: Roberto Ierusalimschy's lua-struct 0.2, as Redis vendors it
//! (`deps/lua/src/lua_struct.c`, with Redis' overflow fixes).
//!
//! Formats (read left to right, one option per value):
//!
//! * `>` big endian, `<` little endian (the default is the machine's: little),
//!   `![n]` maximum alignment `n` (a power of 2; default 8), ` ` ignored;
//! * `b`/`B` signed/unsigned char, `h`/`H` short (2), `l`/`L` long (8),
//!   `T` size_t (8), `i[n]`/`I[n]` an integer of `n` bytes (default 4, at most
//!   32), `f` float, `d` double, `x` one byte of padding;
//! * `s` a zero terminated string, `c[n]` `n` chars (default 1): packing `c0`
//!   takes the whole string, unpacking `c0` takes the length from the value
//!   read just before.
//!
//! The sizes are the x86-64 ones Redis is built with. There is no `j`/`J`
//! (those are Lua 5.3 `string.pack` options): like the C, `pack` and `unpack`
//! reject them as invalid options and `size` ignores them.

use super::{
    check_integer, check_number, check_string, to_number, Fail, Wrappers, LUA_MAX_CSTACK,
    MAX_RESULTS,
};
use mlua::{Lua, MultiValue, Table, Value};

/// `sizeof(long)`, `sizeof(size_t)` on x86-64.
const LONG: usize = 8;
/// `sizeof(int)`.
const INT: usize = 4;
/// `MAXINTSIZE`: the widest `i`/`I`.
const MAX_INT_SIZE: i32 = 32;
/// `MAXALIGN`: what `!` means without a number (the alignment of a double).
const MAX_ALIGN: i32 = 8;

/// The endianness and alignment in force.
#[derive(Debug)]
struct Header {
    big: bool,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header {
            big: false,
            align: 1,
        }
    }
}

/// A format string being read, as the C reads its `const char *`.
#[derive(Debug)]
struct Format<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Format<'a> {
    /// The format up to its first zero byte, where the C string ends.
    fn new(bytes: &'a [u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Format {
            text: &bytes[..end],
            at: 0,
        }
    }

    fn next_option(&mut self) -> Option<u8> {
        let opt = *self.text.get(self.at)?;
        self.at += 1;
        Some(opt)
    }

    /// `getnum`: the decimal number at the cursor, or `default`.
    fn number(&mut self, default: i32) -> Result<i32, Fail> {
        let digit = |f: &Self| f.text.get(f.at).copied().filter(u8::is_ascii_digit);
        if digit(self).is_none() {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while let Some(d) = digit(self) {
            let d = i32::from(d - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(Fail::error("integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a)
    }
}

/// `optsize`: the size of option `opt`, reading its number if it has one.
fn optsize(opt: u8, fmt: &mut Format<'_>) -> Result<usize, Fail> {
    Ok(match opt {
        b'B' | b'b' | b'x' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' => LONG,
        b'f' => 4,
        b'd' => 8,
        // `getnum` returns an int, which the C converts to size_t.
        b'c' => fmt.number(1)? as usize,
        b'i' | b'I' => {
            let size = fmt.number(INT as i32)?;
            if size > MAX_INT_SIZE {
                return Err(Fail::error(format!(
                    "integral size {size} is larger than limit of {MAX_INT_SIZE}"
                )));
            }
            size as usize
        }
        _ => 0,
    })
}

/// `gettoalign`: padding needed before an option of `size` at `len`.
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & size.wrapping_sub(1))) & size.wrapping_sub(1)
}

/// `controloptions`: the options that set endianness and alignment.
fn controloptions(opt: u8, fmt: &mut Format<'_>, h: &mut Header) -> Result<(), Fail> {
    match opt {
        b' ' => {}
        b'>' => h.big = true,
        b'<' => h.big = false,
        b'!' => {
            let a = fmt.number(MAX_ALIGN)?;
            if a <= 0 || a & (a - 1) != 0 {
                return Err(Fail::error(format!("alignment {a} is not a power of 2")));
            }
            h.align = a as usize;
        }
        _ => {
            let mut msg = b"invalid format option '".to_vec();
            msg.push(opt);
            msg.push(b'\'');
            return Err(Fail::arg(1, msg));
        }
    }
    Ok(())
}

/// `putinteger`: `n` as `size` bytes. The value is an unsigned long, so past
/// eight bytes the rest are zeros (even for negative numbers), as in the C.
fn putinteger(out: &mut Vec<u8>, n: f64, big: bool, size: usize) {
    let mut value = if n < 0.0 {
        // `(unsigned long)(long)n`; x86-64 gives LONG_MIN when out of range.
        super::c_double_to_i64(n) as u64
    } else if n.is_nan() {
        1 << 63
    } else if n >= 18_446_744_073_709_551_616.0 {
        0
    } else {
        n as u64
    };
    let at = out.len();
    out.resize(at + size, 0);
    for i in 0..size {
        let byte = (value & 0xff) as u8;
        let slot = if big { at + size - 1 - i } else { at + i };
        out[slot] = byte;
        value >>= 8;
    }
}

/// `getinteger`: `size` bytes as a number.
fn getinteger(data: &[u8], big: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    for i in 0..size {
        let byte = if big { data[i] } else { data[size - 1 - i] };
        l = (l << 8) | u64::from(byte);
    }
    if !signed {
        return l as f64;
    }
    // The shift count wraps modulo 64 as it does on x86-64 (size 0 and sizes
    // past eight bytes).
    let mask = (!0u64).wrapping_shl((size * 8).wrapping_sub(1) as u32);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn pack(lua: &Lua, args: &MultiValue) -> Result<Value, Fail> {
    let fmt_string = check_string(lua, args, 1)?;
    let fmt_bytes = fmt_string.as_bytes();
    let mut fmt = Format::new(&fmt_bytes);
    let mut h = Header::new();
    let mut arg = 2;
    let mut total = 0usize;
    let mut out = Vec::new();
    // The C pushes a nil after the arguments before it starts, so the first
    // missing argument reads as a nil rather than as no value.
    let with_nil = {
        let mut v = args.clone();
        v.push_back(Value::Nil);
        v
    };
    while let Some(opt) = fmt.next_option() {
        let mut size = optsize(opt, &mut fmt)?;
        let pad = gettoalign(total, &h, opt, size);
        total += pad;
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, &with_nil, arg)?;
                arg += 1;
                putinteger(&mut out, n, h.big, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(lua, &with_nil, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.big {
                    f.to_be_bytes()
                } else {
                    f.to_le_bytes()
                });
            }
            b'd' => {
                let d = check_number(lua, &with_nil, arg)?;
                arg += 1;
                out.extend_from_slice(&if h.big {
                    d.to_be_bytes()
                } else {
                    d.to_le_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, &with_nil, arg)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C complains about `arg` after incrementing it.
                    return Err(Fail::arg(arg as i64, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => controloptions(opt, &mut fmt, &mut h)?,
        }
        total += size;
    }
    Ok(Value::String(lua.create_string(&out)?))
}

fn unpack(lua: &Lua, args: &MultiValue) -> Result<(usize, Table), Fail> {
    let fmt_string = check_string(lua, args, 1)?;
    let data_string = check_string(lua, args, 2)?;
    let data = data_string.as_bytes();
    let ld = data.len();
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => check_integer(lua, args, 3)?,
    };
    // The offset is a size_t in the C: a negative one is a huge one, which the
    // length check below turns away.
    let mut pos = start as u64;
    if pos == 0 {
        return Err(Fail::arg(3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let ld64 = ld as u64;
    let fmt_bytes = fmt_string.as_bytes();
    let mut fmt = Format::new(&fmt_bytes);
    let mut h = Header::new();
    let results = lua.create_table()?;
    let mut n = 0usize;
    // The values read so far, for `c0` (the C looks at the top of its stack).
    let mut last: Option<Value> = None;
    while let Some(opt) = fmt.next_option() {
        let mut size = optsize(opt, &mut fmt)? as u64;
        pos = pos.wrapping_add(gettoalign(pos as usize, &h, opt, size as usize) as u64);
        if size > ld64 || pos > ld64 - size {
            return Err(Fail::arg(2, "data string too short"));
        }
        // `luaL_checkstack(L, 2, ...)`: the arguments, the results so far and
        // room for one more and the position. The results come back through
        // `unpack`, which stops at MAX_RESULTS.
        if args.len() + n + 2 > LUA_MAX_CSTACK || n + 2 > MAX_RESULTS {
            return Err(Fail::stack_overflow("too many results"));
        }
        let at = pos as usize;
        let value = match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                Some(Value::Number(getinteger(
                    &data[at..],
                    h.big,
                    signed,
                    size as usize,
                )))
            }
            b'x' => None,
            b'f' => {
                let raw = [data[at], data[at + 1], data[at + 2], data[at + 3]];
                let f = if h.big {
                    f32::from_be_bytes(raw)
                } else {
                    f32::from_le_bytes(raw)
                };
                Some(Value::Number(f64::from(f)))
            }
            b'd' => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&data[at..at + 8]);
                let d = if h.big {
                    f64::from_be_bytes(raw)
                } else {
                    f64::from_le_bytes(raw)
                };
                Some(Value::Number(d))
            }
            b'c' => {
                if size == 0 {
                    let len = match &last {
                        Some(v) if n > 0 => to_number(lua, v),
                        _ => None,
                    };
                    let Some(len) = len else {
                        return Err(Fail::error("format 'c0' needs a previous size"));
                    };
                    // The previous value is replaced by the string.
                    n -= 1;
                    results.raw_set(n + 1, Value::Nil)?;
                    // `(size_t)d`: a negative length is a huge one.
                    size = if len < 0.0 {
                        super::c_double_to_i64(len) as u64
                    } else {
                        len as u64
                    };
                    if size > ld64 || pos > ld64 - size {
                        return Err(Fail::arg(2, "data string too short"));
                    }
                }
                let end = at + size as usize;
                Some(Value::String(lua.create_string(&data[at..end])?))
            }
            b's' => {
                let Some(len) = data[at..].iter().position(|&b| b == 0) else {
                    return Err(Fail::error("unfinished string in data"));
                };
                size = len as u64 + 1;
                Some(Value::String(lua.create_string(&data[at..at + len])?))
            }
            _ => {
                controloptions(opt, &mut fmt, &mut h)?;
                None
            }
        };
        if let Some(v) = value {
            n += 1;
            results.raw_set(n, v.clone())?;
            last = Some(v);
        }
        pos = pos.wrapping_add(size);
    }
    // `lua_pushinteger(L, pos + 1)`: size_t back to a signed integer.
    n += 1;
    results.raw_set(n, pos.wrapping_add(1) as i64 as f64)?;
    Ok((n, results))
}

fn size(lua: &Lua, args: &MultiValue) -> Result<Value, Fail> {
    let fmt_string = check_string(lua, args, 1)?;
    let fmt_bytes = fmt_string.as_bytes();
    let mut fmt = Format::new(&fmt_bytes);
    let mut h = Header::new();
    let mut pos = 0usize;
    while let Some(opt) = fmt.next_option() {
        let size = optsize(opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(Fail::arg(1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(Fail::arg(1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &mut fmt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(Value::Number(pos as i64 as f64))
}

/// The `struct` table.
pub(super) fn open(lua: &Lua, wrap: &Wrappers) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", wrap.one(lua, "pack", pack)?)?;
    t.set("unpack", wrap.many(lua, "unpack", unpack)?)?;
    t.set("size", wrap.one(lua, "size", size)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{error, eval, hex, lua};
    use mlua::Lua;

    fn packed(lua: &Lua, code: &str) -> String {
        hex(&eval::<mlua::LuaString>(lua, code).as_bytes())
    }

    #[test]
    fn pack_integers() {
        let lua = lua();
        assert_eq!(packed(&lua, "return struct.pack('>I2', 258)"), "0102");
        assert_eq!(packed(&lua, "return struct.pack('<I2', 258)"), "0201");
        assert_eq!(packed(&lua, "return struct.pack('<i4', -2)"), "feffffff");
        assert_eq!(packed(&lua, "return struct.pack('>i4', -2)"), "fffffffe");
        assert_eq!(packed(&lua, "return struct.pack('b', 300)"), "2c");
        assert_eq!(packed(&lua, "return struct.pack('B', -1)"), "ff");
        assert_eq!(packed(&lua, "return struct.pack('h', 1)"), "0100");
        assert_eq!(
            packed(&lua, "return struct.pack('>l', 1)"),
            "0000000000000001"
        );
        assert_eq!(
            packed(&lua, "return struct.pack('T', 1)"),
            "0100000000000000"
        );
        assert_eq!(packed(&lua, "return struct.pack('i', 1)"), "01000000");
        assert_eq!(
            packed(&lua, "return struct.pack('>i3', 0x010203)"),
            "010203"
        );
        assert_eq!(packed(&lua, "return struct.pack('i0', 5)"), "");
        // Past eight bytes an unsigned long has run out: zeros, even for -1.
        assert_eq!(
            packed(&lua, "return struct.pack('<i10', -1)"),
            "ffffffffffffffff0000"
        );
        // Numbers given as strings are numbers.
        assert_eq!(packed(&lua, "return struct.pack('>I2', '258')"), "0102");
    }

    #[test]
    fn pack_floats_strings_and_padding() {
        let lua = lua();
        assert_eq!(
            packed(&lua, "return struct.pack('>d', 1.5)"),
            "3ff8000000000000"
        );
        assert_eq!(
            packed(&lua, "return struct.pack('<d', 1.5)"),
            "000000000000f83f"
        );
        assert_eq!(packed(&lua, "return struct.pack('>f', 1.5)"), "3fc00000");
        assert_eq!(packed(&lua, "return struct.pack('s', 'ab')"), "616200");
        assert_eq!(packed(&lua, "return struct.pack('c2', 'abcd')"), "6162");
        assert_eq!(packed(&lua, "return struct.pack('c0', 'abcd')"), "61626364");
        assert_eq!(packed(&lua, "return struct.pack('c', 'xyz')"), "78");
        assert_eq!(packed(&lua, "return struct.pack('bxb', 1, 2)"), "010002");
        assert_eq!(
            packed(&lua, "return struct.pack(' > b < h', 1, 2)"),
            "010200"
        );
        // Alignment only once asked for.
        assert_eq!(
            packed(&lua, "return struct.pack('bi4', 1, 2)"),
            "0102000000"
        );
        assert_eq!(
            packed(&lua, "return struct.pack('!bi4', 1, 2)"),
            "0100000002000000"
        );
        assert_eq!(
            packed(&lua, "return struct.pack('!2bi4', 1, 2)"),
            "010002000000"
        );
        assert_eq!(
            packed(&lua, "return struct.pack('!bc2', 1, 'ab')"),
            "016162"
        );
        // The format ends at a zero byte.
        assert_eq!(packed(&lua, "return struct.pack('b\\0b', 1, 2)"), "01");
    }

    #[test]
    fn unpack_values_and_position() {
        let lua = lua();
        let (v, next): (f64, i64) = eval(&lua, "return struct.unpack('>I2', '\\1\\2')");
        assert_eq!((v, next), (258.0, 3));
        let (v, next): (f64, i64) =
            eval(&lua, "return struct.unpack('<i4', '\\254\\255\\255\\255')");
        assert_eq!((v, next), (-2.0, 5));
        let (v, next): (String, i64) = eval(&lua, "return struct.unpack('c2', 'abcd')");
        assert_eq!((v.as_str(), next), ("ab", 3));
        let (v, next): (String, i64) = eval(&lua, "return struct.unpack('bc0', '\\3abcd')");
        assert_eq!((v.as_str(), next), ("abc", 5));
        let (v, next): (String, i64) = eval(&lua, "return struct.unpack('sc0', '2\\0abcd')");
        assert_eq!((v.as_str(), next), ("ab", 5));
        let (a, b, next): (String, f64, i64) =
            eval(&lua, "return struct.unpack('s>h', 'hi\\0\\1\\2')");
        assert_eq!((a.as_str(), b, next), ("hi", 258.0, 6));
        let (v, next): (f64, i64) = eval(&lua, "return struct.unpack('b', 'xyz', 2)");
        assert_eq!((v, next), (121.0, 3));
        let (a, b, next): (f64, f64, i64) = eval(
            &lua,
            "return struct.unpack('!bi4', struct.pack('!bi4', 1, -7))",
        );
        assert_eq!((a, b, next), (1.0, -7.0, 9));
    }

    #[test]
    fn round_trips() {
        let lua = lua();
        eval::<()>(
            &lua,
            r#"
            local fmt = '<bBhHlLTi2I3i8fdsc3x!4i4'
            local s = struct.pack(fmt, -5, 250, -300, 65000, -2^40, 2^40, 123456, -2, 70000,
                                  -9007199254740992, 0.5, -1.25, 'zero', 'abc', 77)
            local r = {struct.unpack(fmt, s)}
            assert(#r == 16, #r)
            local want = {-5, 250, -300, 65000, -2^40, 2^40, 123456, -2, 70000,
                          -9007199254740992, 0.5, -1.25, 'zero', 'abc', 77}
            for i = 1, #want do assert(r[i] == want[i], i .. ': ' .. tostring(r[i])) end
            assert(r[16] == #s + 1, r[16])
            assert(struct.size('<bBhHlLTi2I3i8fd') == 1+1+2+2+8+8+8+2+3+8+4+8)
            local be = struct.pack('>d>f>i8', math.pi, 0.25, -1)
            local a, b, c = struct.unpack('>d>f>i8', be)
            assert(a == math.pi and b == 0.25 and c == -1)
            "#,
        );
    }

    #[test]
    fn size() {
        let lua = lua();
        assert_eq!(eval::<i64>(&lua, "return struct.size('>i4I2')"), 6);
        assert_eq!(eval::<i64>(&lua, "return struct.size('bi4')"), 5);
        assert_eq!(eval::<i64>(&lua, "return struct.size('!bi4')"), 8);
        assert_eq!(eval::<i64>(&lua, "return struct.size('!bd')"), 16);
        assert_eq!(eval::<i64>(&lua, "return struct.size('c10')"), 10);
        // Unknown letters have no size; like the C, size() does not mind.
        assert_eq!(eval::<i64>(&lua, "return struct.size('jA')"), 0);
        assert_eq!(
            error(&lua, "local x = struct.size('s')"),
            "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)"
        );
        assert_eq!(
            error(&lua, "local x = struct.size('bc0')"),
            "user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)"
        );
        assert_eq!(
            error(&lua, "local x = struct.size('#')"),
            "user_script:1: bad argument #1 to 'size' (invalid format option '#')"
        );
    }

    #[test]
    fn errors() {
        let lua = lua();
        let cases = [
            (
                "struct.pack('ii', 1)",
                "bad argument #3 to 'pack' (number expected, got nil)",
            ),
            (
                "struct.pack('q')",
                "bad argument #1 to 'pack' (invalid format option 'q')",
            ),
            (
                "struct.pack('j', 1)",
                "bad argument #1 to 'pack' (invalid format option 'j')",
            ),
            (
                "struct.pack('c5', 'ab')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.pack('s')",
                "bad argument #2 to 'pack' (string expected, got nil)",
            ),
            (
                "struct.pack()",
                "bad argument #1 to 'pack' (string expected, got no value)",
            ),
            (
                "struct.pack('i33', 1)",
                "integral size 33 is larger than limit of 32",
            ),
            ("struct.pack('i99999999999', 1)", "integral size overflow"),
            ("struct.pack('!3i', 1)", "alignment 3 is not a power of 2"),
            ("struct.pack('!0i', 1)", "alignment 0 is not a power of 2"),
            (
                "struct.unpack('c0', '\\3abc')",
                "format 'c0' needs a previous size",
            ),
            (
                "struct.unpack('sc0', 'x\\0abc')",
                "format 'c0' needs a previous size",
            ),
            (
                "struct.unpack('i4', 'abc')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('bc0', '\\9abc')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'abc', 0)",
                "bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "struct.unpack('b', 'abc', -1)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'abc', 'x')",
                "bad argument #3 to 'unpack' (number expected, got string)",
            ),
            ("struct.unpack('s', 'abc')", "unfinished string in data"),
            (
                "struct.unpack('b')",
                "bad argument #2 to 'unpack' (string expected, got no value)",
            ),
            (
                "struct.unpack('#', 'abc')",
                "bad argument #1 to 'unpack' (invalid format option '#')",
            ),
        ];
        for (code, want) in cases {
            assert_eq!(
                error(&lua, &format!("local x = {code}")),
                format!("user_script:1: {want}"),
                "{code}"
            );
        }
    }

    #[test]
    fn odd_offsets_and_empty_formats() {
        let lua = lua();
        assert_eq!(eval::<i64>(&lua, "return struct.unpack('', 'abc', -5)"), -5);
        assert_eq!(eval::<i64>(&lua, "return struct.unpack('', 'abc')"), 1);
        assert_eq!(eval::<i64>(&lua, "return struct.unpack('x', 'abc', 3)"), 4);
        assert_eq!(
            error(&lua, "local x = struct.unpack('x', 'abc', 4)"),
            "user_script:1: bad argument #2 to 'unpack' (data string too short)"
        );
    }

    #[test]
    fn result_count_limit() {
        let lua = lua();
        let n: i64 = eval(
            &lua,
            "return select('#', struct.unpack(string.rep('c1', 7996), string.rep('x', 9000)))",
        );
        assert_eq!(n, 7997);
        assert_eq!(
            error(
                &lua,
                "local n = select('#', struct.unpack(string.rep('c1', 7998), string.rep('x', 9000)))"
            ),
            "user_script:1: stack overflow (too many results)"
        );
        // Values that take no space.
        let n: i64 = eval(
            &lua,
            "return select('#', struct.unpack(string.rep('b', 100), string.rep('x', 100)))",
        );
        assert_eq!(n, 101);
    }
}
