//! Every RESP2/RESP3 type: decoding, lossless encoding, malformed input.

use resp_codec::{Bytes, BytesMut, Frame, FrameDecoder, Limits, Protocol, ProtocolError};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Decodes one frame from `input` (whole, split everywhere, byte by byte),
/// checking it consumed everything.
fn decode(input: &[u8]) -> Result<Frame, ProtocolError> {
    let whole = decode_chunks(&[input]);
    for i in 0..=input.len() {
        assert_eq!(
            decode_chunks(&[&input[..i], &input[i..]]),
            whole,
            "split at {i}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_chunks(&bytes), whole, "byte by byte");
    whole
}

fn decode_chunks(chunks: &[&[u8]]) -> Result<Frame, ProtocolError> {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    for c in chunks {
        buf.extend_from_slice(c);
        if let Some(f) = dec.decode(&mut buf)? {
            assert!(buf.is_empty(), "left {:?}", &buf[..]);
            return Ok(f);
        }
    }
    panic!("incomplete frame");
}

fn encoded(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    out.to_vec()
}

/// `wire` decodes to `frame`, and `frame` encodes back to `wire`.
fn both_ways(wire: &[u8], frame: Frame) {
    assert_eq!(
        decode(wire),
        Ok(frame.clone()),
        "{:?}",
        String::from_utf8_lossy(wire)
    );
    assert_eq!(encoded(&frame), wire, "{frame:?}");
}

#[test]
fn resp2_scalars() {
    both_ways(b"+OK\r\n", Frame::Simple(b("OK")));
    both_ways(b"+\r\n", Frame::Simple(b("")));
    both_ways(
        b"-ERR unknown command\r\n",
        Frame::Error(b("ERR unknown command")),
    );
    both_ways(b":0\r\n", Frame::Integer(0));
    both_ways(b":-9223372036854775808\r\n", Frame::Integer(i64::MIN));
    both_ways(b":9223372036854775807\r\n", Frame::Integer(i64::MAX));
    both_ways(b"$5\r\nhello\r\n", Frame::Bulk(b("hello")));
    both_ways(b"$0\r\n\r\n", Frame::Bulk(b("")));
    both_ways(b"$4\r\na\r\nb\r\n", Frame::Bulk(b("a\r\nb")));
    both_ways(b"$-1\r\n", Frame::Null);
    both_ways(b"*-1\r\n", Frame::NullArray);
}

#[test]
fn resp2_arrays() {
    both_ways(b"*0\r\n", Frame::Array(vec![]));
    both_ways(
        b"*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n*0\r\n",
        Frame::Array(vec![
            Frame::Integer(1),
            Frame::Array(vec![Frame::Simple(b("a")), Frame::Null]),
            Frame::Array(vec![]),
        ]),
    );
}

#[test]
fn resp3_types() {
    assert_eq!(decode(b"_\r\n"), Ok(Frame::Null));
    both_ways(b",1.5\r\n", Frame::Double(1.5));
    both_ways(b",inf\r\n", Frame::Double(f64::INFINITY));
    both_ways(b",-inf\r\n", Frame::Double(f64::NEG_INFINITY));
    both_ways(b",-0\r\n", Frame::Double(-0.0));
    assert_eq!(decode(b",1e+300\r\n"), Ok(Frame::Double(1e300)));
    both_ways(b",1.0000000000000001e+300\r\n", Frame::Double(1e300));
    both_ways(b",0.10000000000000001\r\n", Frame::Double(0.1));
    assert_eq!(decode(b",10\r\n"), Ok(Frame::Double(10.0)));
    assert_eq!(decode(b",1.23e-4\r\n"), Ok(Frame::Double(1.23e-4)));
    assert!(matches!(decode_chunks(&[b",nan\r\n"]), Ok(Frame::Double(d)) if d.is_nan()));
    assert_eq!(encoded(&Frame::Double(f64::NAN)), b",nan\r\n");
    both_ways(b"#t\r\n", Frame::Boolean(true));
    both_ways(b"#f\r\n", Frame::Boolean(false));
    both_ways(
        b"(3492890328409238509324850943850943825024385\r\n",
        Frame::BigNumber(b("3492890328409238509324850943850943825024385")),
    );
    both_ways(b"(-12\r\n", Frame::BigNumber(b("-12")));
    both_ways(
        b"=15\r\ntxt:Some string\r\n",
        Frame::Verbatim {
            format: *b"txt",
            text: b("Some string"),
        },
    );
    both_ways(
        b"=4\r\nmkd:\r\n",
        Frame::Verbatim {
            format: *b"mkd",
            text: b(""),
        },
    );
    both_ways(
        b"!22\r\nSYNTAX invalid\r\nsyntax\r\n",
        Frame::Error(b("SYNTAX invalid\r\nsyntax")),
    );
    assert_eq!(decode(b"!3\r\nERR\r\n"), Ok(Frame::Error(b("ERR"))));
    both_ways(
        b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n$-1\r\n",
        Frame::Map(vec![
            (Frame::Simple(b("first")), Frame::Integer(1)),
            (Frame::Bulk(b("second")), Frame::Null),
        ]),
    )
}

#[test]
fn resp3_aggregates() {
    // Frame::Null encodes as $-1, so use only other types for exact bytes.
    both_ways(b"%0\r\n", Frame::Map(vec![]));
    both_ways(
        b"~3\r\n+a\r\n:2\r\n#f\r\n",
        Frame::Set(vec![
            Frame::Simple(b("a")),
            Frame::Integer(2),
            Frame::Boolean(false),
        ]),
    );
    both_ways(
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        Frame::Push(vec![
            Frame::Bulk(b("message")),
            Frame::Bulk(b("ch")),
            Frame::Bulk(b("hi")),
        ]),
    );
    both_ways(
        b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.5\r\n$1\r\nb\r\n,0.25\r\n*2\r\n:2039123\r\n:9543892\r\n",
        Frame::Attribute {
            attrs: vec![(
                Frame::Simple(b("key-popularity")),
                Frame::Map(vec![
                    (Frame::Bulk(b("a")), Frame::Double(0.5)),
                    (Frame::Bulk(b("b")), Frame::Double(0.25)),
                ]),
            )],
            data: Box::new(Frame::Array(vec![Frame::Integer(2039123), Frame::Integer(9543892)])),
        },
    );
    both_ways(
        b"|0\r\n+OK\r\n",
        Frame::Attribute {
            attrs: vec![],
            data: Box::new(Frame::Simple(b("OK"))),
        },
    );
}

#[test]
fn encode_with_resp2_downgrades() {
    let f = Frame::Array(vec![
        Frame::Null,
        Frame::NullArray,
        Frame::Map(vec![(Frame::Simple(b("k")), Frame::Boolean(true))]),
        Frame::Set(vec![Frame::Double(2.5)]),
        Frame::BigNumber(b("123")),
        Frame::Verbatim {
            format: *b"txt",
            text: b("hi"),
        },
        Frame::Push(vec![Frame::Boolean(false)]),
        Frame::Attribute {
            attrs: vec![(Frame::Integer(1), Frame::Integer(2))],
            data: Box::new(Frame::Integer(3)),
        },
    ]);
    let mut out = BytesMut::new();
    f.encode_with(&mut out, Protocol::Resp2);
    assert_eq!(
        &out[..],
        &b"*8\r\n$-1\r\n*-1\r\n*2\r\n+k\r\n:1\r\n*1\r\n$3\r\n2.5\r\n$3\r\n123\r\n$2\r\nhi\r\n*1\r\n:0\r\n:3\r\n"[..]
    );
    let mut out = BytesMut::new();
    Frame::Array(vec![Frame::Null, Frame::NullArray]).encode_with(&mut out, Protocol::Resp3);
    assert_eq!(&out[..], b"*2\r\n_\r\n_\r\n");
}

#[test]
fn bulk_payloads_share_the_buffer() {
    let mut buf = BytesMut::from(&b"*2\r\n$5\r\nhello\r\n=6\r\ntxt:hi\r\n"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Ok(Some(Frame::Array(items))) = FrameDecoder::default().decode(&mut buf) else {
        panic!("expected an array");
    };
    let Frame::Bulk(hello) = &items[0] else {
        panic!()
    };
    let Frame::Verbatim { text, .. } = &items[1] else {
        panic!()
    };
    assert!(range.contains(&(hello.as_ptr() as usize)));
    assert!(range.contains(&(text.as_ptr() as usize)));
}

#[test]
fn pipeline_of_frames() {
    let mut buf = BytesMut::from(&b"+OK\r\n:1\r\n*1\r\n$1\r\nx\r\n"[..]);
    let mut dec = FrameDecoder::default();
    assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::Simple(b("OK")))));
    assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::Integer(1))));
    assert_eq!(
        dec.decode(&mut buf),
        Ok(Some(Frame::Array(vec![Frame::Bulk(b("x"))])))
    );
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(dec.is_idle());
}

#[test]
fn malformed_frames() {
    use ProtocolError::*;
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"?x\r\n", InvalidTypeByte(b'?')),
        (b"+a\rb\r\n", ExpectedCrlf),
        (b"+a\nb\r\n", ExpectedCrlf),
        (b"$3\r\nabcd\r\n", ExpectedCrlf),
        (b"$-2\r\n", InvalidBulkLength),
        (b"$x\r\n", InvalidBulkLength),
        (b"$536870913\r\n", InvalidBulkLength),
        (b"!-1\r\n", InvalidBulkLength),
        (b"*-2\r\n", InvalidMultibulkLength),
        (b"%-1\r\n", InvalidMultibulkLength),
        (b"*2147483648\r\n", InvalidMultibulkLength),
        (b":abc\r\n", Invalid("integer")),
        (b":\r\n", Invalid("integer")),
        (b":99999999999999999999\r\n", Invalid("integer")),
        (b",abc\r\n", Invalid("double")),
        (b",infinity\r\n", Invalid("double")),
        (b",\r\n", Invalid("double")),
        (b"#x\r\n", Invalid("boolean")),
        (b"#tt\r\n", Invalid("boolean")),
        (b"_x\r\n", Invalid("null")),
        (b"(12a\r\n", Invalid("big number")),
        (b"(\r\n", Invalid("big number")),
        (b"=3\r\nabc\r\n", Invalid("verbatim string")),
        (b"=5\r\ntxt;x\r\n", Invalid("verbatim string")),
    ];
    for (input, want) in cases {
        assert_eq!(
            decode(input),
            Err(want.clone()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        Invalid("double").to_string(),
        "Protocol error: invalid double"
    );
}

#[test]
fn nesting_depth_limit() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let mut ok = BytesMut::from(&b"*1\r\n*1\r\n*1\r\n:1\r\n"[..]);
    assert!(FrameDecoder::new(limits)
        .decode(&mut ok)
        .is_ok_and(|f| f.is_some()));
    let mut deep = BytesMut::from(&b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"[..]);
    assert_eq!(
        FrameDecoder::new(limits).decode(&mut deep),
        Err(ProtocolError::TooDeep)
    );
    // Default: 128 levels; a hostile 100k-level nest fails fast.
    let mut hostile = BytesMut::from("*1\r\n".repeat(100_000).as_bytes());
    assert_eq!(
        FrameDecoder::default().decode(&mut hostile),
        Err(ProtocolError::TooDeep)
    );
}

#[test]
fn declared_sizes_do_not_allocate() {
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::with_capacity(1024);
    buf.extend_from_slice(b"*2147483647\r\n%2147483647\r\n$400000000\r\nabc");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.capacity() <= 1024);
    assert_eq!(&buf[..], b"abc");
}

#[test]
fn line_limits() {
    let mut line = b"+".to_vec();
    line.extend(std::iter::repeat_n(b'a', 100));
    let limits = Limits {
        max_bulk_len: 50,
        max_inline_len: 10,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&line[..]);
    assert_eq!(
        FrameDecoder::new(limits).decode(&mut buf),
        Err(ProtocolError::TooBigLine)
    );
    let mut buf = BytesMut::from(&b"$1234567890123"[..]);
    assert_eq!(
        FrameDecoder::new(limits).decode(&mut buf),
        Err(ProtocolError::TooBigBulkCountString)
    );
    let mut buf = BytesMut::from(&b"*1234567890123"[..]);
    assert_eq!(
        FrameDecoder::new(limits).decode(&mut buf),
        Err(ProtocolError::TooBigMbulkCountString)
    );
}
