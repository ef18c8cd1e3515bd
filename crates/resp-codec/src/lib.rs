//! RESP2/RESP3 codec for kvd: an incremental decoder for client requests,
//! a generic frame decoder, and a reply encoder writing straight into a
//! [`BytesMut`].
//!
//! What it is:
//! - [`RequestDecoder`] turns the bytes a client sends into argument vectors,
//!   exactly like Redis 7's `processMultibulkBuffer` (`*N\r\n$len\r\n...`)
//!   and `processInlineBuffer` (`PING\r\n` typed into telnet, with
//!   `sdssplitargs` quoting), with Redis's error texts and limits
//!   (`proto-max-bulk-len`, multibulk count, 64 KiB lines, and optionally the
//!   pre-authentication limits).
//! - [`FrameDecoder`] decodes any RESP2/RESP3 value into a [`Frame`] (for
//!   clients, tests and tools), with a nesting-depth limit.
//! - [`encode`] writes replies; RESP3-only types are downgraded under RESP2
//!   like Redis does. [`Frame::encode`] writes a whole frame.
//!
//! Both decoders are resumable: "need more bytes" is an ordinary outcome, the
//! bytes already parsed are consumed from the buffer and the partial state
//! (the arguments so far, the stack of open aggregates, the pending bulk
//! length) is kept in the decoder, so a partial request is never re-parsed
//! from its start when more bytes arrive: decoding stays linear in the bytes
//! received however they are split. Bulk payloads are handed out as [`Bytes`] sharing the
//! read buffer (no copy). Every length the peer sends is checked before
//! anything is allocated for it, and no allocation is sized by it: a client
//! declaring a 400 MB bulk and sending 3 bytes costs a few bytes.
//!
//! What it is not: it does no I/O, knows no commands (arity and the like are
//! the server's), and does not support RESP3 streamed strings or aggregates
//! (`$?`, `*?`), which Redis never sends. See the resp-codec section of
//! `ARCHITECTURE.md` in the design documents.
//!
//! ```
//! use resp_codec::{encode, Bytes, BytesMut, Frame, FrameDecoder, Limits, Protocol, RequestDecoder};
//!
//! // A pipeline, arriving in two reads.
//! let mut dec = RequestDecoder::new(Limits::default());
//! let mut args = Vec::new();
//! let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel"[..]);
//! assert_eq!(dec.decode(&mut buf, &mut args), Ok(false)); // need more bytes
//! buf.extend_from_slice(b"lo\r\nPING\r\n");
//! assert_eq!(dec.decode(&mut buf, &mut args), Ok(true));
//! assert_eq!(args, [&b"SET"[..], b"k", b"hello"]);
//! assert_eq!(dec.decode(&mut buf, &mut args), Ok(true)); // inline command
//! assert_eq!(args, [Bytes::from_static(b"PING")]);
//! assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
//!
//! // Replies.
//! let mut out = BytesMut::new();
//! encode::map_len(&mut out, 1, Protocol::Resp2); // a flat array under RESP2
//! encode::bulk(&mut out, b"pi");
//! encode::double(&mut out, 3.5, Protocol::Resp2);
//! assert_eq!(&out[..], b"*2\r\n$2\r\npi\r\n$3\r\n3.5\r\n");
//!
//! // Errors carry Redis's text.
//! let mut buf = BytesMut::from(&b"*1\r\n$-5\r\n"[..]);
//! let err = dec.decode(&mut buf, &mut args).unwrap_err();
//! assert_eq!(err.to_string(), "Protocol error: invalid bulk length");
//!
//! // Any RESP3 value.
//! let mut frames = FrameDecoder::new(Limits::default());
//! let mut buf = BytesMut::from(&b"%1\r\n+key\r\n,1.5\r\n"[..]);
//! let map = Frame::Map(vec![(Frame::Simple("key".into()), Frame::Double(1.5))]);
//! assert_eq!(frames.decode(&mut buf), Ok(Some(map)));
//! ```
#![forbid(unsafe_code)]

pub use bytes::{Bytes, BytesMut};

pub mod encode;
mod error;
mod frame;
mod request;
mod scan;

pub use error::ProtocolError;
pub use frame::{Frame, FrameDecoder};
pub use request::RequestDecoder;

/// Which protocol a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, the default.
    Resp2,
    /// RESP3.
    Resp3,
}

/// Limits checked before anything is allocated for what the peer declared.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk string accepted (`proto-max-bulk-len`, default 512 MB).
    pub max_bulk_len: usize,
    /// Largest multibulk / aggregate count (default `i32::MAX`, like Redis).
    pub max_multibulk_len: usize,
    /// Longest inline request or header line without its terminator
    /// (default 64 KiB, Redis's `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
    /// Deepest aggregate nesting in a [`Frame`] (default 128; requests are
    /// flat and ignore it).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as usize,
            max_inline_len: 64 * 1024,
            max_depth: 128,
        }
    }
}
