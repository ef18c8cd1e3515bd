//! Client request decoding: Redis's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c), made resumable.

use bytes::{Buf, Bytes, BytesMut};

use crate::scan::{find_byte, string2ll};
use crate::{Limits, ProtocolError};

/// Redis's fixed limits before authentication (networking.c).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;

/// At most this many argument slots are reserved up front, whatever count the
/// peer declared; more grow the vector as arguments actually arrive.
const MAX_PREALLOC_ARGS: usize = 256;

/// Requests with more arguments always take the general path.
const FAST_PATH_MAX_ARGS: usize = 1024;

/// Where a request stands between two calls to [`RequestDecoder::decode`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests: the next byte starts a new one.
    #[default]
    Idle,
    /// Inside a multibulk request: `remaining` arguments to go; `bulk_len` is
    /// the length of the next one once its `$<len>` line has been consumed.
    Multibulk {
        remaining: usize,
        bulk_len: Option<usize>,
    },
}

/// Decodes client requests (multibulk or inline) into argv.
///
/// The decoder consumes from the read buffer as it goes: headers and complete
/// arguments leave `buf` as soon as they are parsed, and the request's
/// arguments so far stay inside the decoder, so a request split over many
/// reads is never re-parsed from its start. A request that is already whole
/// in the buffer (the common case) is split off in one piece by a fast path. Arguments are `Bytes` that share the read
/// buffer's memory (no copy), except for inline requests, whose arguments are
/// unescaped into fresh buffers. Because they share it, an argument kept
/// alive keeps the whole read buffer's allocation alive: copy what outlives
/// the request (a stored value) instead of keeping the `Bytes`.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    limits: Limits,
    unauthenticated: bool,
    state: State,
    /// Bytes at the front of `buf` already searched for the line terminator.
    scanned: usize,
    /// Arguments of the request in progress.
    args: Vec<Bytes>,
    /// Argument spans found by the fast path (reused, at most
    /// `FAST_PATH_MAX_ARGS` long).
    spans: Vec<(usize, usize)>,
}

impl RequestDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Turns on Redis's limits for connections that still have to
    /// authenticate: more than 10 arguments, or a bulk over 16384 bytes,
    /// is a protocol error.
    pub fn set_unauthenticated(&mut self, on: bool) {
        self.unauthenticated = on;
    }

    /// True when no request is partly decoded (no state carried over).
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Decodes the next request from `buf`.
    ///
    /// - `Ok(true)`: one complete request was put in `args` (cleared first)
    ///   and consumed from `buf`.
    /// - `Ok(false)`: more bytes are needed. The partial state is kept inside
    ///   `self`; `buf` may have been partly consumed. Call again with the same
    ///   buffer once more bytes were appended to it.
    /// - `Err`: protocol error; the connection must reply `-ERR <text>` and
    ///   close.
    ///
    /// Empty inline lines and `*0`/`*-N` headers are skipped, like Redis.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        loop {
            match self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(false);
                    };
                    if first == b'*' {
                        // `scanned == 0`: no earlier call found this request
                        // incomplete, so the fast path scans each byte once.
                        if self.scanned == 0 && self.whole_request(buf, args) {
                            return Ok(true);
                        }
                        if !self.multibulk_header(buf)? {
                            return Ok(false);
                        }
                    } else {
                        match self.inline(buf)? {
                            None => return Ok(false),
                            Some(true) => {
                                args.clear();
                                std::mem::swap(args, &mut self.args);
                                return Ok(true);
                            }
                            Some(false) => {} // empty line, skipped
                        }
                    }
                }
                State::Multibulk {
                    remaining,
                    bulk_len,
                } => {
                    if !self.multibulk_args(buf, remaining, bulk_len)? {
                        return Ok(false);
                    }
                    self.state = State::Idle;
                    args.clear();
                    std::mem::swap(args, &mut self.args);
                    return Ok(true);
                }
            }
        }
    }

    /// Finds the `\r` ending the header line at the front of `buf`, resuming
    /// the search where the previous call stopped. `Ok(None)` if the line is
    /// not complete yet (Redis also wants one byte after the `\r`, which it
    /// skips without looking at it).
    #[inline]
    fn header_line(
        &mut self,
        buf: &BytesMut,
        too_big: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        match find_byte(b'\r', buf, self.scanned) {
            None => {
                if buf.len() > self.limits.max_inline_len {
                    return Err(too_big);
                }
                self.scanned = buf.len();
                Ok(None)
            }
            // A line that long fails whether or not its end has arrived, so
            // the outcome does not depend on how the bytes were split.
            Some(cr) if cr > self.limits.max_inline_len => Err(too_big),
            Some(cr) if cr + 2 > buf.len() => {
                self.scanned = cr;
                Ok(None)
            }
            Some(cr) => {
                self.scanned = 0;
                Ok(Some(cr))
            }
        }
    }

    /// Fast path for the common case: a whole, valid multibulk request of at
    /// most `FAST_PATH_MAX_ARGS` arguments at the front of `buf`. It is
    /// split off in one piece and the arguments are slices of it. On anything
    /// else (incomplete, invalid, over a limit) it returns `false` with
    /// nothing consumed, and the general path, which knows the exact error
    /// and keeps partial state, takes over.
    #[inline]
    fn whole_request(&mut self, buf: &mut BytesMut, args: &mut Vec<Bytes>) -> bool {
        let b = &buf[..];
        let limits = &self.limits;
        let Some(cr) = find_byte(b'\r', b, 0) else {
            return false;
        };
        if cr > limits.max_inline_len || cr + 2 > b.len() {
            return false;
        }
        let count = match string2ll(&b[1..cr]) {
            Some(n) if n > 0 && n as u64 <= FAST_PATH_MAX_ARGS as u64 => n as usize,
            _ => return false,
        };
        if count > limits.max_multibulk_len
            || (self.unauthenticated && count as i64 > UNAUTH_MAX_MULTIBULK)
        {
            return false;
        }
        let mut pos = cr + 2;
        self.spans.clear();
        for _ in 0..count {
            if b.get(pos) != Some(&b'$') {
                return false;
            }
            let Some(cr) = find_byte(b'\r', b, pos) else {
                return false;
            };
            if cr - pos > limits.max_inline_len || cr + 2 > b.len() {
                return false;
            }
            let len = match string2ll(&b[pos + 1..cr]) {
                Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len as u64 => n as usize,
                _ => return false,
            };
            if self.unauthenticated && len as i64 > UNAUTH_MAX_BULK {
                return false;
            }
            let start = cr + 2;
            // Data plus the two bytes Redis skips unchecked.
            if b.len() - start < len + 2 {
                return false;
            }
            self.spans.push((start, start + len));
            pos = start + len + 2;
        }
        let req = buf.split_to(pos).freeze();
        args.clear();
        args.extend(self.spans.iter().map(|&(s, e)| req.slice(s..e)));
        true
    }

    /// `*<count>\r\n`. Returns `Ok(false)` if incomplete.
    fn multibulk_header(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        let Some(cr) = self.header_line(buf, ProtocolError::TooBigMbulkCountString)? else {
            return Ok(false);
        };
        let count = match string2ll(&buf[1..cr]) {
            Some(n) if n <= i64::try_from(self.limits.max_multibulk_len).unwrap_or(i64::MAX) => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if self.unauthenticated && count > UNAUTH_MAX_MULTIBULK {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        buf.advance(cr + 2);
        if count > 0 {
            // `count` was checked against the limit; cast is lossless.
            let count = count as usize;
            self.args.clear();
            self.args.reserve(count.min(MAX_PREALLOC_ARGS));
            self.state = State::Multibulk {
                remaining: count,
                bulk_len: None,
            };
        }
        Ok(true)
    }

    /// The `$<len>\r\n<data>\r\n` arguments. Returns `Ok(true)` once all of
    /// them are in `self.args`, `Ok(false)` if more bytes are needed (state
    /// saved).
    fn multibulk_args(
        &mut self,
        buf: &mut BytesMut,
        mut remaining: usize,
        mut bulk_len: Option<usize>,
    ) -> Result<bool, ProtocolError> {
        while remaining > 0 {
            let len = match bulk_len {
                Some(len) => len,
                None => {
                    let Some(cr) = self.header_line(buf, ProtocolError::TooBigBulkCountString)?
                    else {
                        self.state = State::Multibulk {
                            remaining,
                            bulk_len,
                        };
                        return Ok(false);
                    };
                    if buf[0] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(buf[0]));
                    }
                    let len = match string2ll(&buf[1..cr]) {
                        Some(n)
                            if n >= 0
                                && usize::try_from(n)
                                    .is_ok_and(|n| n <= self.limits.max_bulk_len) =>
                        {
                            n
                        }
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if self.unauthenticated && len > UNAUTH_MAX_BULK {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    buf.advance(cr + 2);
                    // Checked above: 0 <= len <= max_bulk_len (a usize).
                    len as usize
                }
            };
            // Data plus the trailing two bytes, which Redis skips unchecked.
            if buf.len() < len.saturating_add(2) {
                self.state = State::Multibulk {
                    remaining,
                    bulk_len: Some(len),
                };
                return Ok(false);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            self.args.push(arg);
            remaining -= 1;
            bulk_len = None;
        }
        Ok(true)
    }

    /// One inline line. `Ok(None)`: incomplete; `Ok(Some(false))`: an empty
    /// line, consumed; `Ok(Some(true))`: arguments are in `self.args`.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<bool>, ProtocolError> {
        let nl = match find_byte(b'\n', buf, self.scanned) {
            None => {
                if buf.len() > self.limits.max_inline_len {
                    return Err(ProtocolError::TooBigInlineRequest);
                }
                self.scanned = buf.len();
                return Ok(None);
            }
            Some(nl) if nl > self.limits.max_inline_len => {
                return Err(ProtocolError::TooBigInlineRequest)
            }
            Some(nl) => nl,
        };
        self.scanned = 0;
        let end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        self.args.clear();
        split_args(&buf[..end], &mut self.args)?;
        buf.advance(nl + 1);
        Ok(Some(!self.args.is_empty()))
    }
}

/// C's `isspace` in the "C" locale.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Redis's `sdssplitargs` (sds.c), exactly, including its treatment of the
/// line as a C string: a NUL byte ends the line (inside quotes it makes them
/// unbalanced).
pub(crate) fn split_args(line: &[u8], out: &mut Vec<Bytes>) -> Result<(), ProtocolError> {
    // Reading past the end yields NUL, like the C string's terminator.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while at(p) != 0 && is_c_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(());
        }
        let mut current = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = at(p);
            if in_dq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    current.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    // Only these end an unquoted token (not \v or \f, which
                    // `isspace` skips between tokens).
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        p += 1;
                        break;
                    }
                    0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => current.push(c),
                }
            }
            p += 1;
        }
        out.push(Bytes::from(current));
    }
}

#[inline]
fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}
