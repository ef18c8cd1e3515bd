//! Reply encoder helpers, writing straight into `out`.
//!
//! RESP3-only types are downgraded under [`Protocol::Resp2`] like Redis 7
//! does: null → `$-1`, null array → `*-1`, map → flat array of 2n, set →
//! array, push → array, double → bulk string, boolean → `:1`/`:0`, big
//! number → bulk string, verbatim → bulk string of the text alone.
//!
//! Simple strings and errors must not contain `\r` or `\n`; like Redis's
//! `addReplyErrorLength` sanitizing, any such byte is written as a space.

use bytes::{BufMut, BytesMut};

use crate::Protocol;

/// Writes `<ty><n>\r\n` into `b`, returning its length (at most 23: a
/// `u64` has at most 20 digits). Lengths under 100 (most keys, values and
/// arrays) skip the general formatter.
#[inline]
fn head(ty: u8, n: u64, b: &mut [u8; 24]) -> usize {
    b[0] = ty;
    let end = if n < 10 {
        b[1] = b'0' + n as u8;
        2
    } else if n < 100 {
        b[1] = b'0' + (n / 10) as u8;
        b[2] = b'0' + (n % 10) as u8;
        3
    } else {
        let mut f = itoa::Buffer::new();
        let digits = f.format(n).as_bytes();
        b[1..1 + digits.len()].copy_from_slice(digits);
        1 + digits.len()
    };
    b[end] = b'\r';
    b[end + 1] = b'\n';
    end + 2
}

/// `<ty><n>\r\n`.
#[inline]
pub(crate) fn header(out: &mut BytesMut, ty: u8, n: u64) {
    let mut b = [0u8; 24];
    let k = head(ty, n, &mut b);
    out.extend_from_slice(&b[..k]);
}

#[inline]
fn line(out: &mut BytesMut, ty: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(ty);
    if memchr::memchr2(b'\r', b'\n', s).is_none() {
        out.extend_from_slice(s);
    } else {
        out.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// `+<s>\r\n`, e.g. `+OK\r\n`.
#[inline]
pub fn simple(out: &mut BytesMut, s: &[u8]) {
    line(out, b'+', s);
}

/// `-<msg>\r\n`; `msg` includes the error code word, e.g. `ERR syntax error`.
#[inline]
pub fn error(out: &mut BytesMut, msg: &[u8]) {
    line(out, b'-', msg);
}

/// `:<n>\r\n`.
#[inline]
pub fn integer(out: &mut BytesMut, n: i64) {
    let mut b = itoa::Buffer::new();
    let digits = b.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(b':');
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<data>\r\n`.
#[inline]
pub fn bulk(out: &mut BytesMut, data: &[u8]) {
    let mut b = [0u8; 24];
    let k = head(b'$', data.len() as u64, &mut b);
    out.reserve(k + data.len() + 2);
    out.extend_from_slice(&b[..k]);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A null reply: `$-1\r\n` (RESP2) or `_\r\n` (RESP3).
#[inline]
pub fn null(out: &mut BytesMut, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// A null array reply: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
#[inline]
pub fn null_array(out: &mut BytesMut, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// `*<n>\r\n`; the caller then writes the `n` elements.
#[inline]
pub fn array_len(out: &mut BytesMut, n: usize) {
    header(out, b'*', n as u64);
}

/// `%<n>\r\n` (RESP3) or `*<2n>\r\n` (RESP2); the caller then writes the
/// `n` key-value pairs.
#[inline]
pub fn map_len(out: &mut BytesMut, n: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => header(out, b'*', 2 * n as u64),
        Protocol::Resp3 => header(out, b'%', n as u64),
    }
}

/// `~<n>\r\n` (RESP3) or `*<n>\r\n` (RESP2).
#[inline]
pub fn set_len(out: &mut BytesMut, n: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => header(out, b'*', n as u64),
        Protocol::Resp3 => header(out, b'~', n as u64),
    }
}

/// `><n>\r\n` (RESP3) or `*<n>\r\n` (RESP2, as Redis sends pub/sub messages).
#[inline]
pub fn push_len(out: &mut BytesMut, n: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => header(out, b'*', n as u64),
        Protocol::Resp3 => header(out, b'>', n as u64),
    }
}

/// `,<d>\r\n` (RESP3) or a bulk string (RESP2), formatted like Redis 7.0's
/// `addReplyDouble`: `inf`, `-inf`, `nan`, otherwise C's `%.17g` (which
/// round-trips every `f64` exactly).
#[inline]
pub fn double(out: &mut BytesMut, d: f64, proto: Protocol) {
    let mut buf = [0u8; 32];
    let len = format_double(d, &mut buf);
    let text = &buf[..len];
    match proto {
        Protocol::Resp2 => bulk(out, text),
        Protocol::Resp3 => {
            out.reserve(len + 3);
            out.put_u8(b',');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `#t\r\n`/`#f\r\n` (RESP3) or `:1\r\n`/`:0\r\n` (RESP2).
#[inline]
pub fn boolean(out: &mut BytesMut, b: bool, proto: Protocol) {
    out.extend_from_slice(match (proto, b) {
        (Protocol::Resp3, true) => b"#t\r\n",
        (Protocol::Resp3, false) => b"#f\r\n",
        (Protocol::Resp2, true) => b":1\r\n",
        (Protocol::Resp2, false) => b":0\r\n",
    });
}

/// `(<digits>\r\n` (RESP3) or a bulk string (RESP2).
#[inline]
pub fn big_number(out: &mut BytesMut, digits: &[u8], proto: Protocol) {
    match proto {
        Protocol::Resp2 => bulk(out, digits),
        Protocol::Resp3 => line(out, b'(', digits),
    }
}

/// `=<len>\r\n<format>:<text>\r\n` (RESP3) or a bulk string of `text` (RESP2).
#[inline]
pub fn verbatim(out: &mut BytesMut, format: &[u8; 3], text: &[u8], proto: Protocol) {
    match proto {
        Protocol::Resp2 => bulk(out, text),
        Protocol::Resp3 => {
            header(out, b'=', text.len() as u64 + 4);
            out.reserve(text.len() + 6);
            out.extend_from_slice(format);
            out.put_u8(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Formats `d` like C's `printf("%.17g")` (with `inf`, `-inf`, `nan` as
/// Redis writes them) into `buf`, returning the length. No allocation.
pub(crate) fn format_double(d: f64, buf: &mut [u8; 32]) -> usize {
    use std::io::Write;

    fn put(buf: &mut [u8; 32], s: &[u8]) -> usize {
        buf[..s.len()].copy_from_slice(s);
        s.len()
    }
    if d.is_nan() {
        return put(buf, b"nan");
    }
    if d.is_infinite() {
        return put(buf, if d > 0.0 { b"inf" } else { b"-inf" });
    }
    if d == 0.0 {
        return put(buf, if d.is_sign_negative() { b"-0" } else { b"0" });
    }
    // 17 significant digits, exactly rounded: "-d.dddddddddddddddde<exp>".
    let mut sci = [0u8; 32];
    let sci_len = {
        let mut cursor = &mut sci[..];
        let before = cursor.len();
        // 1 + 1 + 16 + 1 + 1 + 3 = at most 24 bytes: cannot fail.
        let _ = write!(cursor, "{d:.16e}");
        before - cursor.len()
    };
    let sci = &sci[..sci_len];
    let (negative, sci) = match sci.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, sci),
    };
    let e_pos = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let exp: i32 = std::str::from_utf8(&sci[e_pos + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 17];
    let mut nd = 0;
    for &b in &sci[..e_pos] {
        if b.is_ascii_digit() && nd < 17 {
            digits[nd] = b;
            nd += 1;
        }
    }
    // %g strips trailing zeros.
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    let digits = &digits[..nd];
    let mut n = 0;
    let mut push = |buf: &mut [u8; 32], b: u8| {
        buf[n] = b;
        n += 1;
    };
    if negative {
        push(buf, b'-');
    }
    if !(-4..17).contains(&exp) {
        push(buf, digits[0]);
        if digits.len() > 1 {
            push(buf, b'.');
            digits[1..].iter().for_each(|&b| push(buf, b));
        }
        push(buf, b'e');
        push(buf, if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a >= 100 {
            push(buf, b'0' + (a / 100) as u8);
        }
        push(buf, b'0' + (a / 10 % 10) as u8);
        push(buf, b'0' + (a % 10) as u8);
    } else if exp < 0 {
        push(buf, b'0');
        push(buf, b'.');
        for _ in 0..(-exp - 1) {
            push(buf, b'0');
        }
        digits.iter().for_each(|&b| push(buf, b));
    } else {
        let int_len = exp as usize + 1;
        for i in 0..int_len {
            push(buf, digits.get(i).copied().unwrap_or(b'0'));
        }
        if digits.len() > int_len {
            push(buf, b'.');
            digits[int_len..].iter().for_each(|&b| push(buf, b));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g17(d: f64) -> String {
        let mut b = [0u8; 32];
        let n = format_double(d, &mut b);
        String::from_utf8(b[..n].to_vec()).unwrap_or_default()
    }

    #[test]
    fn double_like_printf_17g() {
        // Expected values are glibc's printf("%.17g").
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1.1, "1.1000000000000001"),
            (2.675, "2.6749999999999998"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1.5e17, "1.5e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1e-5, "1.0000000000000001e-05"),
            (0.5, "0.5"),
            (1e300, "1.0000000000000001e+300"),
            (5e-324, "4.9406564584124654e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (12345.678, "12345.678"),
            (2.5e-3, "0.0025000000000000001"),
        ];
        for &(d, want) in cases {
            assert_eq!(g17(d), want, "{d:e}");
        }
    }
}
