//! The one error type of this crate.

/// A protocol violation by the peer.
///
/// `Display` is the text Redis sends after `-ERR ` (for the request errors it
/// is byte-for-byte Redis 7's), so a server replies with
/// `-ERR {error}\r\n` and closes the connection, as Redis does.
/// The decoder that returned it is left in an unspecified state: drop it
/// together with the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A bulk length that does not parse, is negative (other than a RESP2 null
    /// in a frame), or exceeds [`Limits::max_bulk_len`](crate::Limits::max_bulk_len).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk (aggregate) count that does not parse or exceeds
    /// [`Limits::max_multibulk_len`](crate::Limits::max_multibulk_len).
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An inline request line longer than
    /// [`Limits::max_inline_len`](crate::Limits::max_inline_len).
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// A `*<count>` header line longer than `max_inline_len`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCountString,
    /// A `$<len>` header line longer than `max_inline_len`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCountString,
    /// An inline request with an unterminated quote, or a closing quote not
    /// followed by a space or the end of the line.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Inside a multibulk request, a line that does not start with `$`.
    /// Redis prints the byte with `%c`; for bytes above 0x7f, `Display`
    /// shows the Latin-1 character of the same value.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// More than 10 arguments before authentication (Redis's
    /// `authRequired` check), see [`RequestDecoder::set_unauthenticated`](crate::RequestDecoder::set_unauthenticated).
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A bulk over 16384 bytes before authentication.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// Frame decoder: a line other than a length header (simple string,
    /// error, integer, double, ...) longer than its limit.
    #[error("Protocol error: too big line")]
    TooBigLine,
    /// Frame decoder: a byte that starts no RESP2/RESP3 type.
    #[error("Protocol error: invalid type byte 0x{0:02x}")]
    InvalidTypeByte(u8),
    /// Frame decoder: a `\r` not followed by `\n`, a bulk not followed by
    /// `\r\n`, or a `\n` inside a simple string or error line.
    #[error("Protocol error: expected CRLF")]
    ExpectedCrlf,
    /// Frame decoder: a malformed value; the field names its type
    /// (`integer`, `double`, `boolean`, `big number`, `verbatim string`, `null`).
    #[error("Protocol error: invalid {0}")]
    Invalid(&'static str),
    /// Frame decoder: aggregates nested deeper than
    /// [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("Protocol error: nesting too deep")]
    TooDeep,
}
