//! FrameDecoder: never panics; feeding the input in pieces gives the same
//! frames and the same error as feeding it whole; every decoded frame
//! re-encodes to bytes that decode to an equal frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resp_codec::{BytesMut, Frame, FrameDecoder, Limits, Protocol, ProtocolError};

/// Frames compared through their encoding (NaN != NaN otherwise).
type Outcome = (Vec<Vec<u8>>, Option<ProtocolError>);

fn encoded(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    f.encode(&mut out);
    out.to_vec()
}

fn run(limits: Limits, chunks: &[&[u8]]) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut dec = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn outcome(r: &(Vec<Frame>, Option<ProtocolError>)) -> Outcome {
    (r.0.iter().map(encoded).collect(), r.1.clone())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let limits = if ctl & 1 == 1 {
        Limits {
            max_bulk_len: 64,
            max_multibulk_len: 16,
            max_inline_len: 32,
            max_depth: 4,
        }
    } else {
        Limits::default()
    };
    let whole = run(limits, &[input]);
    let a = (ctl as usize >> 1) % (input.len() + 1);
    let b = a + (input.len() - a) / 2;
    let split = run(limits, &[&input[..a], &input[a..b], &input[b..]]);
    assert_eq!(outcome(&whole), outcome(&split), "split at {a},{b}");
    if input.len() <= 256 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            outcome(&whole),
            outcome(&run(limits, &bytes)),
            "byte by byte"
        );
    }

    for f in &whole.0 {
        let wire = encoded(f);
        let mut buf = BytesMut::from(&wire[..]);
        let mut dec = FrameDecoder::new(Limits::default());
        let back = dec
            .decode(&mut buf)
            .expect("re-encoded frame decodes")
            .expect("complete");
        assert!(buf.is_empty());
        assert_eq!(encoded(&back), wire);
        if !wire.windows(3).any(|w| w == b"nan") {
            assert_eq!(&back, f);
        }
        // The reply encoders never panic either.
        let mut out = BytesMut::new();
        f.encode_with(&mut out, Protocol::Resp2);
        f.encode_with(&mut out, Protocol::Resp3);
    }
});
