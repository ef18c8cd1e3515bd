//! Byte-level helpers shared by the decoders: line search and Redis's
//! `string2ll`.

/// Index of the first `needle` in `hay[from..]`, as an index into `hay`.
///
/// Header lines are short (`$64\r\n`), so a plain loop over the first bytes
/// beats the setup cost of `memchr`; longer lines go to `memchr`.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8], from: usize) -> Option<usize> {
    const SHORT: usize = 24;
    let rest = hay.get(from..)?;
    let head = rest.len().min(SHORT);
    if let Some(i) = rest[..head].iter().position(|&b| b == needle) {
        return Some(from + i);
    }
    if rest.len() > SHORT {
        memchr::memchr(needle, &rest[SHORT..]).map(|i| from + SHORT + i)
    } else {
        None
    }
}

/// Redis's `string2ll` (util.c), exactly: no sign but `-`, no leading zeros,
/// no `-0`, no spaces, at most 20 bytes, no overflow.
#[inline]
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21 in Redis: lengths >= 21 are rejected.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for &b in rest {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"12"), Some(12));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"000000000000000000001",
        ] {
            assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn find_byte_short_and_long() {
        let mut v = vec![b'a'; 100];
        assert_eq!(find_byte(b'\r', &v, 0), None);
        v[3] = b'\r';
        assert_eq!(find_byte(b'\r', &v, 0), Some(3));
        assert_eq!(find_byte(b'\r', &v, 4), None);
        v[90] = b'\r';
        assert_eq!(find_byte(b'\r', &v, 4), Some(90));
        assert_eq!(find_byte(b'\r', &v, 100), None);
        assert_eq!(find_byte(b'\r', &v, 101), None);
    }
}
