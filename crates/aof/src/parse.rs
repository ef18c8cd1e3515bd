//! A strict parser for one AOF command: `*<n>\r\n` then `n` times
//! `$<len>\r\n<bytes>\r\n`. Unlike a client-request decoder it accepts no
//! inline commands, no empty arrays and checks the `\r\n` after every bulk,
//! so a flipped byte is found where it is. Every strict prefix of a valid
//! command is reported as incomplete, never as an error: that is what makes a
//! torn tail recognisable.

/// Most argument slots reserved up front, whatever count the file declares.
const MAX_PREALLOC: usize = 1024;

/// A format error at `offset` (relative to the slice parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    pub offset: usize,
    pub reason: String,
}

/// Parses a command at the front of `buf`. `Ok(Some(len))`: a whole command
/// of `len` bytes, with its argument spans (start, end) in `spans`.
/// `Ok(None)`: `buf` is a strict prefix of a command (needs more bytes).
pub(crate) fn parse_command(
    buf: &[u8],
    max_bulk: usize,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Option<usize>, FormatError> {
    spans.clear();
    let Some((count, mut pos)) = header(buf, 0, b'*')? else {
        return Ok(None);
    };
    if count < 1 || count > i32::MAX as u64 {
        return Err(FormatError {
            offset: 1,
            reason: format!("invalid multibulk length {count}"),
        });
    }
    spans.reserve((count as usize).min(MAX_PREALLOC));
    for _ in 0..count {
        let Some((len, p)) = header(buf, pos, b'$')? else {
            return Ok(None);
        };
        if len > max_bulk as u64 {
            return Err(FormatError {
                offset: pos + 1,
                reason: format!("invalid bulk length {len}"),
            });
        }
        let len = len as usize;
        let end = p + len;
        // The payload is opaque; only its terminator can be checked.
        for (i, want) in [(end, b'\r'), (end + 1, b'\n')] {
            match buf.get(i) {
                None => return Ok(None),
                Some(&b) if b != want => {
                    return Err(FormatError {
                        offset: i,
                        reason: "expected \\r\\n after bulk string".into(),
                    })
                }
                Some(_) => {}
            }
        }
        spans.push((p, end));
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// Parses `<prefix><digits>\r\n` at `pos`: the number and the position after.
fn header(buf: &[u8], pos: usize, prefix: u8) -> Result<Option<(u64, usize)>, FormatError> {
    let bad = |offset: usize, reason: String| Err(FormatError { offset, reason });
    match buf.get(pos) {
        None => return Ok(None),
        Some(&b) if b != prefix => {
            return bad(
                pos,
                format!("expected '{}', got byte 0x{b:02x}", prefix as char),
            );
        }
        Some(_) => {}
    }
    let mut n: u64 = 0;
    let mut i = pos + 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' if i - pos <= 18 => n = n * 10 + u64::from(b - b'0'),
            b'\r' if i > pos + 1 => break,
            _ => return bad(i, format!("bad length digit 0x{b:02x}")),
        }
        i += 1;
    }
    match buf.get(i + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((n, i + 2))),
        Some(&b) => bad(i + 1, format!("expected \\n, got byte 0x{b:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_incomplete_and_flips_are_errors() {
        let cmd = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut spans = Vec::new();
        assert_eq!(parse_command(cmd, 100, &mut spans), Ok(Some(cmd.len())));
        assert_eq!(spans, [(8, 11), (17, 18), (24, 29)]);
        for cut in 0..cmd.len() {
            assert_eq!(
                parse_command(&cmd[..cut], 100, &mut spans),
                Ok(None),
                "cut {cut}"
            );
        }
        let mut bad = cmd.to_vec();
        bad[11] = b'x';
        let e = parse_command(&bad, 100, &mut spans).unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(parse_command(b"*0\r\n", 100, &mut spans).is_err());
        assert!(parse_command(b"PING\r\n", 100, &mut spans).is_err());
        assert!(parse_command(b"*1\r\n$101\r\n", 100, &mut spans).is_err());
    }
}
