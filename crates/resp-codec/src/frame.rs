//! Generic RESP2/RESP3 values and their resumable decoder.

use bytes::{Buf, Bytes, BytesMut};

use crate::scan::{find_byte, string2ll};
use crate::{encode, Limits, Protocol, ProtocolError};

/// Any RESP2/RESP3 value (for clients, replies, tests).
///
/// [`Frame::encode`] is lossless: what it writes decodes to an equal frame
/// (NaN doubles aside, as NaN != NaN).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+<line>`.
    Simple(Bytes),
    /// `-<line>`, or a RESP3 blob error `!<len>`.
    Error(Bytes),
    /// `:<n>`.
    Integer(i64),
    /// `$<len>`.
    Bulk(Bytes),
    /// RESP3 `_` and RESP2 `$-1`.
    Null,
    /// RESP2 `*-1`.
    NullArray,
    /// `*<n>`.
    Array(Vec<Frame>),
    /// RESP3 `%<n>`: pairs in wire order.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~<n>`.
    Set(Vec<Frame>),
    /// RESP3 `,<double>`.
    Double(f64),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `(<digits>`: the digits, as sent (an optional `-`, then ASCII digits).
    BigNumber(Bytes),
    /// RESP3 `=<len>`: `<format>:<text>`.
    Verbatim {
        /// The 3-byte format, such as `txt` or `mkd`.
        format: [u8; 3],
        /// The text after `format:`.
        text: Bytes,
    },
    /// RESP3 `><n>`: an out-of-band message.
    Push(Vec<Frame>),
    /// RESP3 `|<n>`: attributes, then the value they describe.
    Attribute {
        /// The attribute map's pairs.
        attrs: Vec<(Frame, Frame)>,
        /// The frame that followed the attribute map.
        data: Box<Frame>,
    },
}

impl Frame {
    /// Writes this frame into `out`, losslessly: RESP3 types as RESP3,
    /// [`Frame::Null`] as `$-1` (which every RESP3 client also reads),
    /// [`Frame::NullArray`] as `*-1`, and an error containing `\r` or `\n` as
    /// a RESP3 blob error.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => encode::simple(out, s),
            Frame::Error(e) => {
                if e.iter().any(|&b| b == b'\r' || b == b'\n') {
                    encode::header(out, b'!', e.len() as u64);
                    out.extend_from_slice(e);
                    out.extend_from_slice(b"\r\n");
                } else {
                    encode::error(out, e);
                }
            }
            Frame::Integer(n) => encode::integer(out, *n),
            Frame::Bulk(b) => encode::bulk(out, b),
            Frame::Null => encode::null(out, Protocol::Resp2),
            Frame::NullArray => encode::null_array(out, Protocol::Resp2),
            Frame::Array(items) => {
                encode::array_len(out, items.len());
                items.iter().for_each(|f| f.encode(out));
            }
            Frame::Map(pairs) => {
                encode::map_len(out, pairs.len(), Protocol::Resp3);
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Frame::Set(items) => {
                encode::set_len(out, items.len(), Protocol::Resp3);
                items.iter().for_each(|f| f.encode(out));
            }
            Frame::Double(d) => encode::double(out, *d, Protocol::Resp3),
            Frame::Boolean(b) => encode::boolean(out, *b, Protocol::Resp3),
            Frame::BigNumber(n) => encode::big_number(out, n, Protocol::Resp3),
            Frame::Verbatim { format, text } => {
                encode::verbatim(out, format, text, Protocol::Resp3)
            }
            Frame::Push(items) => {
                encode::push_len(out, items.len(), Protocol::Resp3);
                items.iter().for_each(|f| f.encode(out));
            }
            Frame::Attribute { attrs, data } => {
                encode::header(out, b'|', attrs.len() as u64);
                for (k, v) in attrs {
                    k.encode(out);
                    v.encode(out);
                }
                data.encode(out);
            }
        }
    }

    /// Writes this frame as a server replies to a client speaking `proto`:
    /// under RESP2 the RESP3-only types are downgraded like Redis does (see
    /// [`encode`](crate::encode)) and attributes are dropped (only their data
    /// is written); under RESP3 both nulls are `_`.
    pub fn encode_with(&self, out: &mut BytesMut, proto: Protocol) {
        match self {
            Frame::Null => encode::null(out, proto),
            Frame::NullArray => encode::null_array(out, proto),
            Frame::Error(e) => encode::error(out, e),
            Frame::Array(items) => {
                encode::array_len(out, items.len());
                items.iter().for_each(|f| f.encode_with(out, proto));
            }
            Frame::Map(pairs) => {
                encode::map_len(out, pairs.len(), proto);
                for (k, v) in pairs {
                    k.encode_with(out, proto);
                    v.encode_with(out, proto);
                }
            }
            Frame::Set(items) => {
                encode::set_len(out, items.len(), proto);
                items.iter().for_each(|f| f.encode_with(out, proto));
            }
            Frame::Push(items) => {
                encode::push_len(out, items.len(), proto);
                items.iter().for_each(|f| f.encode_with(out, proto));
            }
            Frame::Double(d) => encode::double(out, *d, proto),
            Frame::Boolean(b) => encode::boolean(out, *b, proto),
            Frame::BigNumber(n) => encode::big_number(out, n, proto),
            Frame::Verbatim { format, text } => encode::verbatim(out, format, text, proto),
            Frame::Attribute { attrs, data } => {
                if proto == Protocol::Resp3 {
                    encode::header(out, b'|', attrs.len() as u64);
                    for (k, v) in attrs {
                        k.encode_with(out, proto);
                        v.encode_with(out, proto);
                    }
                }
                data.encode_with(out, proto);
            }
            Frame::Simple(_) | Frame::Integer(_) | Frame::Bulk(_) => self.encode(out),
        }
    }
}

/// At most this many elements are reserved for an aggregate up front.
const MAX_PREALLOC_ITEMS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

/// A partially filled aggregate: its elements in wire order (maps and
/// attributes flattened), and how many are still to come.
#[derive(Debug)]
struct Partial {
    kind: AggKind,
    remaining: usize,
    items: Vec<Frame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlobKind {
    Bulk,
    Error,
    Verbatim,
}

/// Decodes any RESP2/RESP3 frame, resumably.
///
/// Complete elements are consumed from the buffer as they are parsed and kept
/// on a stack of partially filled aggregates, so a frame split over many
/// reads is never parsed twice. Bulk payloads are `Bytes` sharing the buffer.
/// Streamed RESP3 types (`$?`, `*?`) are not supported (Redis never sends
/// them) and fail as invalid lengths.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    limits: Limits,
    stack: Vec<Partial>,
    /// A blob whose `<type><len>\r\n` header was consumed, waiting for its data.
    blob: Option<(BlobKind, usize)>,
    /// Bytes at the front of the buffer already searched for `\r`.
    scanned: usize,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// True when no frame is partly decoded.
    pub fn is_idle(&self) -> bool {
        self.stack.is_empty() && self.blob.is_none()
    }

    /// Decodes the next frame from `buf`: `Ok(Some(frame))` when one is
    /// complete (and consumed), `Ok(None)` when more bytes are needed (the
    /// partial state is kept in `self`, `buf` may have been partly consumed).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            let Some(mut frame) = self.next_element(buf)? else {
                return Ok(None);
            };
            // Deliver the element to its parent, completing aggregates upward.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some(frame));
                };
                top.items.push(frame);
                top.remaining -= 1;
                if top.remaining > 0 {
                    break;
                }
                let Some(done) = self.stack.pop() else {
                    break;
                };
                frame = finish(done.kind, done.items);
            }
        }
    }

    /// Parses the next scalar, or an aggregate header (pushed on the stack;
    /// returns the aggregate itself only if it is empty). `Ok(None)`: need
    /// more bytes, or an aggregate was opened (the caller loops).
    fn next_element(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if let Some((kind, len)) = self.blob {
                return self.blob_data(buf, kind, len);
            }
            let Some(&ty) = buf.first() else {
                return Ok(None);
            };
            let (limit, too_big) = match ty {
                b'$' | b'!' | b'=' => (
                    self.limits.max_inline_len,
                    ProtocolError::TooBigBulkCountString,
                ),
                b'*' | b'%' | b'~' | b'>' | b'|' => (
                    self.limits.max_inline_len,
                    ProtocolError::TooBigMbulkCountString,
                ),
                b'+' | b'-' | b'(' => (self.limits.max_bulk_len, ProtocolError::TooBigLine),
                b':' | b',' | b'#' | b'_' => {
                    (self.limits.max_inline_len, ProtocolError::TooBigLine)
                }
                other => return Err(ProtocolError::InvalidTypeByte(other)),
            };
            let Some(cr) = self.line(buf, limit, too_big)? else {
                return Ok(None);
            };
            let line = &buf[1..cr];
            let frame = match ty {
                b'+' | b'-' | b'(' => {
                    if ty == b'(' && !valid_big_number(line) {
                        return Err(ProtocolError::Invalid("big number"));
                    }
                    if line.contains(&b'\n') {
                        return Err(ProtocolError::ExpectedCrlf);
                    }
                    buf.advance(1);
                    let text = buf.split_to(cr - 1).freeze();
                    buf.advance(2);
                    return Ok(Some(match ty {
                        b'+' => Frame::Simple(text),
                        b'-' => Frame::Error(text),
                        _ => Frame::BigNumber(text),
                    }));
                }
                b':' => {
                    Frame::Integer(parse_integer(line).ok_or(ProtocolError::Invalid("integer"))?)
                }
                b',' => Frame::Double(parse_double(line).ok_or(ProtocolError::Invalid("double"))?),
                b'#' => match line {
                    b"t" => Frame::Boolean(true),
                    b"f" => Frame::Boolean(false),
                    _ => return Err(ProtocolError::Invalid("boolean")),
                },
                b'_' => {
                    if !line.is_empty() {
                        return Err(ProtocolError::Invalid("null"));
                    }
                    Frame::Null
                }
                b'$' | b'!' | b'=' => {
                    let len = match string2ll(line) {
                        Some(-1) if ty == b'$' => None,
                        Some(n)
                            if n >= 0
                                && usize::try_from(n)
                                    .is_ok_and(|n| n <= self.limits.max_bulk_len) =>
                        {
                            Some(n as usize)
                        }
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    buf.advance(cr + 2);
                    let Some(len) = len else {
                        return Ok(Some(Frame::Null));
                    };
                    let kind = match ty {
                        b'$' => BlobKind::Bulk,
                        b'!' => BlobKind::Error,
                        _ => {
                            if len < 4 {
                                return Err(ProtocolError::Invalid("verbatim string"));
                            }
                            BlobKind::Verbatim
                        }
                    };
                    self.blob = Some((kind, len));
                    continue;
                }
                _ => {
                    // Aggregates.
                    let max = i64::try_from(self.limits.max_multibulk_len).unwrap_or(i64::MAX);
                    let count = match string2ll(line) {
                        Some(-1) if ty == b'*' => None,
                        Some(n) if (0..=max).contains(&n) => Some(n as usize),
                        _ => return Err(ProtocolError::InvalidMultibulkLength),
                    };
                    let Some(count) = count else {
                        buf.advance(cr + 2);
                        return Ok(Some(Frame::NullArray));
                    };
                    let kind = match ty {
                        b'*' => AggKind::Array,
                        b'~' => AggKind::Set,
                        b'>' => AggKind::Push,
                        b'%' => AggKind::Map,
                        _ => AggKind::Attribute,
                    };
                    let elements = match kind {
                        AggKind::Map => count.checked_mul(2),
                        AggKind::Attribute => count.checked_mul(2).and_then(|n| n.checked_add(1)),
                        _ => Some(count),
                    }
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    buf.advance(cr + 2);
                    if elements == 0 {
                        return Ok(Some(finish(kind, Vec::new())));
                    }
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(ProtocolError::TooDeep);
                    }
                    self.stack.push(Partial {
                        kind,
                        remaining: elements,
                        items: Vec::with_capacity(elements.min(MAX_PREALLOC_ITEMS)),
                    });
                    continue;
                }
            };
            buf.advance(cr + 2);
            return Ok(Some(frame));
        }
    }

    /// The data of a blob whose header was consumed.
    fn blob_data(
        &mut self,
        buf: &mut BytesMut,
        kind: BlobKind,
        len: usize,
    ) -> Result<Option<Frame>, ProtocolError> {
        let total = len.saturating_add(2);
        if buf.len() < total {
            return Ok(None);
        }
        if &buf[len..total] != b"\r\n" {
            return Err(ProtocolError::ExpectedCrlf);
        }
        if kind == BlobKind::Verbatim && buf[3] != b':' {
            return Err(ProtocolError::Invalid("verbatim string"));
        }
        self.blob = None;
        let data = buf.split_to(len).freeze();
        buf.advance(2);
        Ok(Some(match kind {
            BlobKind::Bulk => Frame::Bulk(data),
            BlobKind::Error => Frame::Error(data),
            BlobKind::Verbatim => Frame::Verbatim {
                format: [data[0], data[1], data[2]],
                text: data.slice(4..),
            },
        }))
    }

    /// Index of the `\r` ending the line at the front of `buf`, checking the
    /// `\n` after it. `Ok(None)` if the line is not complete yet.
    fn line(
        &mut self,
        buf: &BytesMut,
        limit: usize,
        too_big: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        match find_byte(b'\r', buf, self.scanned) {
            None => {
                if buf.len() > limit {
                    return Err(too_big);
                }
                self.scanned = buf.len();
                Ok(None)
            }
            Some(cr) if cr > limit => Err(too_big),
            Some(cr) if cr + 1 >= buf.len() => {
                self.scanned = cr;
                Ok(None)
            }
            Some(cr) if buf[cr + 1] != b'\n' => Err(ProtocolError::ExpectedCrlf),
            Some(cr) => {
                self.scanned = 0;
                Ok(Some(cr))
            }
        }
    }
}

/// Builds the frame of a completed aggregate.
fn finish(kind: AggKind, mut items: Vec<Frame>) -> Frame {
    match kind {
        AggKind::Array => Frame::Array(items),
        AggKind::Set => Frame::Set(items),
        AggKind::Push => Frame::Push(items),
        AggKind::Map => Frame::Map(pairs(items)),
        AggKind::Attribute => {
            let data = items.pop().unwrap_or(Frame::Null);
            Frame::Attribute {
                attrs: pairs(items),
                data: Box::new(data),
            }
        }
    }
}

fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// An optional sign, then 1 to 19 digits, without overflow (leading zeros
/// and `+` accepted, like `strtoll`).
fn parse_integer(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_double(s: &[u8]) -> Option<f64> {
    match s {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" | b"-nan" => Some(f64::NAN),
        _ if s.first().is_some_and(|b| b.is_ascii_alphabetic()) => None,
        _ => {
            let s = std::str::from_utf8(s).ok()?;
            // Rust also accepts "infinity" and "NaN" spellings after a sign;
            // keep to digits, '.', 'e', and signs.
            if !s
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
            {
                return None;
            }
            s.parse().ok()
        }
    }
}

fn valid_big_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
