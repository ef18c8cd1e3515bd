//! The connection's output buffer with the negotiated protocol: every reply
//! is encoded straight into it by `resp_codec::encode`, and the whole batch
//! leaves in one write.

use bytes::BytesMut;
use resp_codec::{encode, Protocol};

use crate::util::i64_to_bytes;

/// Redis's reply to a command on a key of another type.
pub const WRONGTYPE: &[u8] = b"WRONGTYPE Operation against a key holding the wrong kind of value";

/// Output buffer + protocol version.
#[derive(Debug)]
pub struct Out {
    /// Pending reply bytes.
    pub buf: BytesMut,
    /// RESP2 or RESP3.
    pub proto: Protocol,
    /// Error replies written since the counter was last taken.
    pub errors: u64,
}

impl Out {
    /// An empty buffer speaking RESP2.
    pub fn new() -> Out {
        Out {
            buf: BytesMut::with_capacity(4 * 1024),
            proto: Protocol::Resp2,
            errors: 0,
        }
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+<s>`.
    pub fn simple(&mut self, s: &[u8]) {
        encode::simple(&mut self.buf, s);
    }

    /// `-<s>`: `s` includes the code, e.g. `ERR syntax error`.
    pub fn error(&mut self, s: &[u8]) {
        self.errors += 1;
        encode::error(&mut self.buf, s);
    }

    /// `-<s>` from a string.
    pub fn error_str(&mut self, s: &str) {
        self.error(s.as_bytes());
    }

    /// `:<n>`.
    pub fn int(&mut self, n: i64) {
        encode::integer(&mut self.buf, n);
    }

    /// `$<len>\r\n<b>\r\n`.
    pub fn bulk(&mut self, b: &[u8]) {
        encode::bulk(&mut self.buf, b);
    }

    /// An integer as a bulk string.
    pub fn bulk_i64(&mut self, n: i64) {
        let mut tmp = [0u8; 20];
        encode::bulk(&mut self.buf, i64_to_bytes(n, &mut tmp));
    }

    /// Null bulk (`$-1` / `_`).
    pub fn null(&mut self) {
        encode::null(&mut self.buf, self.proto);
    }

    /// Null array (`*-1` / `_`).
    pub fn null_array(&mut self) {
        encode::null_array(&mut self.buf, self.proto);
    }

    /// Array header.
    pub fn array(&mut self, n: usize) {
        encode::array_len(&mut self.buf, n);
    }

    /// Map header (flat array of 2n under RESP2).
    pub fn map(&mut self, n: usize) {
        encode::map_len(&mut self.buf, n, self.proto);
    }

    /// Set header (array under RESP2).
    pub fn set(&mut self, n: usize) {
        encode::set_len(&mut self.buf, n, self.proto);
    }

    /// Double (bulk string under RESP2).
    pub fn double(&mut self, v: f64) {
        encode::double(&mut self.buf, v, self.proto);
    }

    /// Verbatim string (bulk under RESP2).
    pub fn verbatim(&mut self, fmt: &[u8; 3], text: &[u8]) {
        encode::verbatim(&mut self.buf, fmt, text, self.proto);
    }

    /// Standard error replies.
    pub fn syntax_error(&mut self) {
        self.error(b"ERR syntax error");
    }

    /// `ERR value is not an integer or out of range`.
    pub fn not_integer(&mut self) {
        self.error(b"ERR value is not an integer or out of range");
    }

    /// `WRONGTYPE ...`.
    pub fn wrong_type(&mut self) {
        self.error(WRONGTYPE);
    }

    /// Arity error for a command or `container|sub` name.
    pub fn wrong_args(&mut self, name: &str) {
        self.error(format!("ERR wrong number of arguments for '{name}' command").as_bytes());
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}
