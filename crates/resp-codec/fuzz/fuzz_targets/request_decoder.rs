//! RequestDecoder: never panics; feeding the input in pieces gives the same
//! requests and the same error as feeding it whole; decoded requests
//! re-encoded as multibulk decode to the same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resp_codec::{Bytes, BytesMut, Limits, ProtocolError, RequestDecoder};

type Outcome = (Vec<Vec<Bytes>>, Option<ProtocolError>);

fn run(limits: Limits, unauth: bool, chunks: &[&[u8]]) -> Outcome {
    let mut dec = RequestDecoder::new(limits);
    dec.set_unauthenticated(unauth);
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match dec.decode(&mut buf, &mut args) {
                Ok(true) => out.push(args.clone()),
                Ok(false) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    // Small limits half of the time, so the limit paths are reached.
    let limits = if ctl & 1 == 1 {
        Limits {
            max_bulk_len: 64,
            max_multibulk_len: 16,
            max_inline_len: 32,
            max_depth: 8,
        }
    } else {
        Limits::default()
    };
    let unauth = ctl & 2 == 2;
    let whole = run(limits, unauth, &[input]);

    // Two split points derived from the control byte and the length.
    let a = (ctl as usize >> 2) % (input.len() + 1);
    let b = a + (input.len() - a) / 2;
    let split = run(limits, unauth, &[&input[..a], &input[a..b], &input[b..]]);
    assert_eq!(whole, split, "split at {a},{b}");
    if input.len() <= 256 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(whole, run(limits, unauth, &bytes), "byte by byte");
    }

    // Re-encode every request as multibulk: same arguments back.
    let mut wire = Vec::new();
    for req in &whole.0 {
        assert!(!req.is_empty(), "empty requests are skipped");
        wire.extend_from_slice(format!("*{}\r\n", req.len()).as_bytes());
        for a in req {
            wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            wire.extend_from_slice(a);
            wire.extend_from_slice(b"\r\n");
        }
    }
    let again = run(Limits::default(), false, &[&wire]);
    assert_eq!(again, (whole.0, None));
});
