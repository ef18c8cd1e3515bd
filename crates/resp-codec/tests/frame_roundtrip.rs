//! Property tests: any frame encodes and decodes back equal, however the
//! bytes are split; replies written by `encode` decode as expected.

use proptest::prelude::*;
use resp_codec::{encode, Bytes, BytesMut, Frame, FrameDecoder, Limits, Protocol};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Simple strings cannot hold CR or LF.
fn line(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..max,
    )
    .prop_map(Bytes::from)
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        line(20).prop_map(Frame::Simple),
        bytes(20).prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes(40).prop_map(Frame::Bulk),
        Just(Frame::Null),
        Just(Frame::NullArray),
        any::<f64>()
            .prop_filter("NaN != NaN", |d| !d.is_nan())
            .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        ("-?[0-9]{1,40}").prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        (any::<[u8; 3]>(), bytes(20)).prop_map(|(format, text)| Frame::Verbatim { format, text }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            pairs.clone().prop_map(Frame::Map),
            (pairs, inner).prop_map(|(attrs, data)| Frame::Attribute {
                attrs,
                data: Box::new(data)
            }),
        ]
    })
}

fn encoded(f: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_is_identity(f in frame()) {
        let mut buf = encoded(&f);
        let mut dec = FrameDecoder::new(Limits::default());
        prop_assert_eq!(dec.decode(&mut buf), Ok(Some(f)));
        prop_assert!(buf.is_empty());
        prop_assert!(dec.is_idle());
    }

    #[test]
    fn every_split_gives_the_same_frame(f in frame()) {
        let wire = encoded(&f);
        for i in 0..=wire.len() {
            let mut dec = FrameDecoder::default();
            let mut buf = BytesMut::from(&wire[..i]);
            if i < wire.len() {
                prop_assert_eq!(dec.decode(&mut buf), Ok(None), "split at {}", i);
            }
            buf.extend_from_slice(&wire[i..]);
            prop_assert_eq!(dec.decode(&mut buf), Ok(Some(f.clone())), "split at {}", i);
        }
        // Byte by byte.
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in wire.iter() {
            prop_assert!(got.is_none());
            buf.extend_from_slice(&[b]);
            got = dec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(got, Some(f));
    }

    #[test]
    fn pipeline_of_frames_any_split(fs in prop::collection::vec(frame(), 1..6), cut in any::<prop::sample::Index>()) {
        let mut wire = BytesMut::new();
        fs.iter().for_each(|f| f.encode(&mut wire));
        let cut = cut.index(wire.len() + 1);
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(f) = dec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
            got.push(f);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(f) = dec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
            got.push(f);
        }
        prop_assert_eq!(got, fs);
    }

    #[test]
    fn resp3_reply_encoding_decodes_as_encoded(f in frame()) {
        // encode_with(Resp3) differs from encode only in writing nulls as `_`.
        let mut out = BytesMut::new();
        f.encode_with(&mut out, Protocol::Resp3);
        let back = FrameDecoder::default().decode(&mut out);
        prop_assert_eq!(back, Ok(Some(null_arrays_as_null(f))));
    }

    #[test]
    fn doubles_round_trip_exactly(d in any::<f64>()) {
        let mut out = BytesMut::new();
        encode::double(&mut out, d, Protocol::Resp3);
        let Ok(Some(Frame::Double(back))) = FrameDecoder::default().decode(&mut out) else {
            return Err(TestCaseError::fail("not a double"));
        };
        prop_assert!(back.to_bits() == d.to_bits() || (d.is_nan() && back.is_nan()), "{} -> {}", d, back);
        // RESP2: the same text as a bulk string.
        let mut out = BytesMut::new();
        encode::double(&mut out, d, Protocol::Resp2);
        let Ok(Some(Frame::Bulk(text))) = FrameDecoder::default().decode(&mut out) else {
            return Err(TestCaseError::fail("not a bulk"));
        };
        let parsed: f64 = std::str::from_utf8(&text).unwrap_or("x").parse().unwrap_or(f64::NAN);
        prop_assert!(parsed.to_bits() == d.to_bits() || (d.is_nan() && parsed.is_nan()));
    }

    #[test]
    fn integers_like_display(n in any::<i64>()) {
        let mut out = BytesMut::new();
        encode::integer(&mut out, n);
        let want = format!(":{n}\r\n");
        prop_assert_eq!(&out[..], want.as_bytes());
    }

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&input[..]);
        let mut dec = FrameDecoder::default();
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
    }
}

/// What a frame becomes after `encode_with(Resp3)` and decoding.
fn null_arrays_as_null(f: Frame) -> Frame {
    let all = |v: Vec<Frame>| v.into_iter().map(null_arrays_as_null).collect::<Vec<_>>();
    let pairs = |v: Vec<(Frame, Frame)>| {
        v.into_iter()
            .map(|(k, v)| (null_arrays_as_null(k), null_arrays_as_null(v)))
            .collect::<Vec<_>>()
    };
    match f {
        Frame::NullArray => Frame::Null,
        Frame::Array(v) => Frame::Array(all(v)),
        Frame::Set(v) => Frame::Set(all(v)),
        Frame::Push(v) => Frame::Push(all(v)),
        Frame::Map(v) => Frame::Map(pairs(v)),
        Frame::Attribute { attrs, data } => Frame::Attribute {
            attrs: pairs(attrs),
            data: Box::new(null_arrays_as_null(*data)),
        },
        // Errors with CR/LF are sanitized (like Redis) rather than blob errors.
        Frame::Error(e) => Frame::Error(
            e.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect::<Vec<u8>>()
                .into(),
        ),
        other => other,
    }
}
