//! Malformed and oversized requests: Redis's exact error texts, and limits
//! checked before anything is allocated.

use resp_codec::{BytesMut, Limits, ProtocolError, RequestDecoder};

fn decode_all(dec: &mut RequestDecoder, input: &[u8]) -> Result<usize, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut args = Vec::new();
    let mut n = 0;
    while dec.decode(&mut buf, &mut args)? {
        n += 1;
    }
    Ok(n)
}

fn err(input: &[u8]) -> String {
    let r = decode_all(&mut RequestDecoder::default(), input);
    // Byte by byte gives the same error.
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut bytewise = Ok(0);
    'feed: for &b in input {
        buf.extend_from_slice(&[b]);
        loop {
            match dec.decode(&mut buf, &mut args) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    bytewise = Err(e);
                    break 'feed;
                }
            }
        }
    }
    let e = r.expect_err("expected a protocol error");
    assert_eq!(bytewise, Err(e.clone()), "byte-by-byte outcome differs");
    e.to_string()
}

#[test]
fn invalid_multibulk_length() {
    for input in [
        &b"*abc\r\n"[..],
        b"*\r\n",
        b"*+1\r\n",
        b"*01\r\n",
        b"*-0\r\n",
        b"* 1\r\n",
        b"*2147483648\r\n",
        b"*99999999999999999999\r\n",
    ] {
        assert_eq!(
            err(input),
            "Protocol error: invalid multibulk length",
            "{input:?}"
        );
    }
}

#[test]
fn max_multibulk_count_is_accepted_without_allocating_for_it() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"*2147483647\r\n$1\r\na\r\n"[..]);
    let mut args = Vec::new();
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    assert!(args.capacity() <= 256, "reserved {}", args.capacity());
}

#[test]
fn expected_dollar() {
    assert_eq!(
        err(b"*1\r\n:3\r\nabc\r\n"),
        "Protocol error: expected '$', got ':'"
    );
    assert_eq!(
        err(b"*2\r\n$1\r\na\r\nPING\r\n"),
        "Protocol error: expected '$', got 'P'"
    );
    assert_eq!(err(b"*1\r\n\r\n"), "Protocol error: expected '$', got '\r'");
}

#[test]
fn invalid_bulk_length() {
    for input in [
        &b"*1\r\n$-1\r\n"[..],
        b"*1\r\n$abc\r\n",
        b"*1\r\n$\r\n",
        b"*1\r\n$01\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$9223372036854775808\r\n",
    ] {
        assert_eq!(
            err(input),
            "Protocol error: invalid bulk length",
            "{input:?}"
        );
    }
}

#[test]
fn too_big_inline_request() {
    let mut line = vec![b'a'; 64 * 1024];
    // Exactly the limit without a newline is still waiting for more.
    assert_eq!(decode_all(&mut RequestDecoder::default(), &line), Ok(0));
    line.push(b'a');
    assert_eq!(err(&line), "Protocol error: too big inline request");
    // Also when the newline has already arrived behind the limit.
    line.extend_from_slice(b"\r\n");
    assert_eq!(
        decode_all(&mut RequestDecoder::default(), &line).map_err(|e| e.to_string()),
        Err("Protocol error: too big inline request".to_string())
    );
    // A line of exactly the limit is fine.
    let mut ok = vec![b'a'; 64 * 1024];
    ok.extend_from_slice(b"\n");
    assert_eq!(decode_all(&mut RequestDecoder::default(), &ok), Ok(1));
}

#[test]
fn too_big_mbulk_count_string() {
    let mut input = b"*".to_vec();
    input.extend(std::iter::repeat_n(b'1', 64 * 1024));
    assert_eq!(err(&input), "Protocol error: too big mbulk count string");
}

#[test]
fn too_big_bulk_count_string() {
    let mut input = b"*1\r\n$".to_vec();
    input.extend(std::iter::repeat_n(b'1', 64 * 1024));
    assert_eq!(err(&input), "Protocol error: too big bulk count string");
}

#[test]
fn unbalanced_quotes_text() {
    assert_eq!(
        err(b"set \"a\r\n"),
        "Protocol error: unbalanced quotes in request"
    );
}

#[test]
fn unauthenticated_limits() {
    let mut dec = RequestDecoder::default();
    dec.set_unauthenticated(true);
    assert_eq!(
        decode_all(&mut dec, b"*11\r\n").map_err(|e| e.to_string()),
        Err("Protocol error: unauthenticated multibulk length".to_string())
    );
    let mut dec = RequestDecoder::default();
    dec.set_unauthenticated(true);
    assert_eq!(
        decode_all(&mut dec, b"*1\r\n$16385\r\n").map_err(|e| e.to_string()),
        Err("Protocol error: unauthenticated bulk length".to_string())
    );
    // At the limits, and after authenticating, requests go through.
    let mut dec = RequestDecoder::default();
    dec.set_unauthenticated(true);
    let mut big = b"*10\r\n$16384\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 16384));
    big.extend_from_slice(b"\r\n");
    for _ in 0..9 {
        big.extend_from_slice(b"$1\r\na\r\n");
    }
    assert_eq!(decode_all(&mut dec, &big), Ok(1));
    dec.set_unauthenticated(false);
    assert_eq!(decode_all(&mut dec, b"*11\r\n"), Ok(0));
    // An invalid count is reported as invalid, before the auth check.
    let mut dec = RequestDecoder::default();
    dec.set_unauthenticated(true);
    assert_eq!(
        decode_all(&mut dec, b"*2147483648\r\n"),
        Err(ProtocolError::InvalidMultibulkLength)
    );
}

#[test]
fn declared_400mb_bulk_costs_a_few_bytes() {
    let mut dec = RequestDecoder::default();
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(b"*2000000000\r\n$400000000\r\nabc");
    let mut args = Vec::new();
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    assert_eq!(&buf[..], b"abc");
    assert!(buf.capacity() <= 4096, "buffer grew to {}", buf.capacity());
    assert!(args.capacity() <= 256);
    // More bytes keep arriving without the decoder asking for room.
    buf.extend_from_slice(&[b'x'; 1000]);
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    assert!(buf.capacity() <= 4096, "buffer grew to {}", buf.capacity());
}

#[test]
fn error_display_has_no_err_prefix() {
    let all = [
        ProtocolError::InvalidBulkLength,
        ProtocolError::InvalidMultibulkLength,
        ProtocolError::TooBigInlineRequest,
        ProtocolError::TooBigMbulkCountString,
        ProtocolError::TooBigBulkCountString,
        ProtocolError::UnbalancedQuotes,
        ProtocolError::ExpectedDollar(b'x'),
        ProtocolError::UnauthenticatedMultibulkLength,
        ProtocolError::UnauthenticatedBulkLength,
    ];
    for e in all {
        assert!(e.to_string().starts_with("Protocol error: "), "{e}");
    }
    let _ = Limits::default();
}
