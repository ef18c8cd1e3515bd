//! Multibulk requests: pipelines, splits at every byte, zero-copy arguments.

use resp_codec::{Bytes, BytesMut, Limits, ProtocolError, RequestDecoder};

type Outcome = (Vec<Vec<Bytes>>, Option<ProtocolError>);

/// Decodes everything in `chunks`, fed one after the other into one buffer.
fn feed(chunks: &[&[u8]]) -> Outcome {
    let mut dec = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
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

/// Whole, split at every byte boundary, and byte by byte: same outcome.
fn assert_split_invariant(input: &[u8]) -> Outcome {
    let whole = feed(&[input]);
    for i in 0..=input.len() {
        assert_eq!(feed(&[&input[..i], &input[i..]]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed(&bytes), whole, "byte by byte");
    whole
}

fn argv(items: &[&str]) -> Vec<Bytes> {
    items
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn multibulk(items: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", items.len()).into_bytes();
    for it in items {
        v.extend_from_slice(format!("${}\r\n", it.len()).as_bytes());
        v.extend_from_slice(it);
        v.extend_from_slice(b"\r\n");
    }
    v
}

#[test]
fn single_request() {
    let (reqs, err) = assert_split_invariant(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
    assert_eq!(err, None);
    assert_eq!(reqs, vec![argv(&["SET", "key", "value"])]);
}

#[test]
fn binary_bulk_with_crlf_inside() {
    let input = multibulk(&[b"SET", b"k", b"a\r\nb\0c\r\n"]);
    let (reqs, err) = assert_split_invariant(&input);
    assert_eq!(err, None);
    assert_eq!(reqs[0][2], Bytes::from_static(b"a\r\nb\0c\r\n"));
}

#[test]
fn empty_bulk_and_empty_multibulk_skipped() {
    let (reqs, err) = assert_split_invariant(b"*0\r\n*-1\r\n*-7\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
    assert_eq!(err, None);
    assert_eq!(reqs, vec![argv(&["ECHO", ""])]);
}

#[test]
fn pipeline_of_many_requests_in_one_buffer() {
    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in 0..1000 {
        let key = format!("key:{i}");
        let val = "v".repeat(i % 70);
        input.extend_from_slice(&multibulk(&[b"SET", key.as_bytes(), val.as_bytes()]));
        want.push(argv(&["SET", &key, &val]));
        if i % 10 == 0 {
            input.extend_from_slice(b"PING\r\n");
            want.push(argv(&["PING"]));
        }
    }
    assert_eq!(feed(&[&input]), (want.clone(), None));
    let bytes: Vec<&[u8]> = input.chunks(7).collect();
    assert_eq!(feed(&bytes), (want, None));
}

#[test]
fn mixed_pipeline_split_everywhere() {
    let mut input = multibulk(&[b"GET", b"a"]);
    input.extend_from_slice(b"\r\nset b \"x y\"\n*0\r\n");
    input.extend_from_slice(&multibulk(&[b"DEL", b"a", b"b"]));
    let (reqs, err) = assert_split_invariant(&input);
    assert_eq!(err, None);
    assert_eq!(
        reqs,
        vec![
            argv(&["GET", "a"]),
            argv(&["set", "b", "x y"]),
            argv(&["DEL", "a", "b"])
        ]
    );
}

#[test]
fn arguments_share_the_read_buffer() {
    let input = multibulk(&[b"SET", b"key", &[b'x'; 4096]]);
    let mut buf = BytesMut::from(&input[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut dec = RequestDecoder::default();
    let mut args = Vec::new();
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(true));
    for a in &args {
        assert!(
            range.contains(&(a.as_ptr() as usize)),
            "argument was copied"
        );
    }
    assert!(buf.is_empty());
}

#[test]
fn partial_state_is_kept_and_buffer_consumed() {
    let mut dec = RequestDecoder::default();
    let mut args = Vec::new();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nk"[..]);
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(false));
    assert!(!dec.is_idle());
    // Header, first argument and the second one's header are consumed.
    assert_eq!(&buf[..], b"k");
    buf.extend_from_slice(b"ey\r\n");
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(true));
    assert_eq!(args, argv(&["GET", "key"]));
    assert!(dec.is_idle());
}

#[test]
fn args_is_cleared_first() {
    let mut dec = RequestDecoder::default();
    let mut args = argv(&["stale", "junk"]);
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
    assert_eq!(dec.decode(&mut buf, &mut args), Ok(true));
    assert_eq!(args, argv(&["PING"]));
}

#[test]
fn trailing_crlf_bytes_are_skipped_unchecked_like_redis() {
    // Redis skips the two bytes after a bulk and the byte after a header's
    // '\r' without looking at them.
    let (reqs, err) = assert_split_invariant(b"*1\rX$4\r\nPINGxy");
    assert_eq!(err, None);
    assert_eq!(reqs, vec![argv(&["PING"])]);
}

#[test]
fn large_bulk_arrives_in_pieces() {
    let val = vec![b'z'; 1 << 20];
    let input = multibulk(&[b"SET", b"big", &val]);
    let chunks: Vec<&[u8]> = input.chunks(16 * 1024).collect();
    let (reqs, err) = feed(&chunks);
    assert_eq!(err, None);
    assert_eq!(reqs[0][2].len(), val.len());
}

#[test]
fn requests_with_thousands_of_arguments() {
    // Above 1024 arguments requests take the general (non-fast) path.
    for n in [1023usize, 1024, 1025, 5000] {
        let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let refs: Vec<&[u8]> = items.iter().map(|s| s.as_bytes()).collect();
        let input = multibulk(&refs);
        let (reqs, err) = feed(&[&input, &input]);
        assert_eq!(err, None);
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].len(), n);
        assert_eq!(reqs[1][n - 1], Bytes::from((n - 1).to_string()));
    }
}

#[test]
fn proto_max_bulk_len_is_configurable() {
    let mut dec = RequestDecoder::new(Limits {
        max_bulk_len: 10,
        ..Limits::default()
    });
    let mut args = Vec::new();
    let mut ok = BytesMut::from(&b"*1\r\n$10\r\n0123456789\r\n"[..]);
    assert_eq!(dec.decode(&mut ok, &mut args), Ok(true));
    let mut bad = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
    assert_eq!(
        dec.decode(&mut bad, &mut args),
        Err(ProtocolError::InvalidBulkLength)
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_pipelines_any_split(
            reqs in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6), 1..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut input = Vec::new();
            for r in &reqs {
                let items: Vec<&[u8]> = r.iter().map(Vec::as_slice).collect();
                input.extend_from_slice(&multibulk(&items));
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&input[last..p]);
                last = p;
            }
            chunks.push(&input[last..]);
            let want: Vec<Vec<Bytes>> = reqs
                .iter()
                .map(|r| r.iter().map(|a| Bytes::copy_from_slice(a)).collect())
                .collect();
            prop_assert_eq!(feed(&chunks), (want, None));
        }
    }
}
