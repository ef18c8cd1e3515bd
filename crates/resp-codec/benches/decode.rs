//! Request decoding throughput, kvd's decoders against `redis-protocol` v6's
//! RESP2 decoder, on the same bytes:
//! - `pipeline16_set`: 16 `SET key:<n> <64-byte value>` requests in one buffer;
//! - `bulk_1mb`: one `SET key <1 MiB value>` request.
//!
//! Each iteration decodes a fresh copy of the input (the copy is not timed).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use resp_codec::{Bytes, BytesMut, FrameDecoder, Limits, RequestDecoder};

fn multibulk(items: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", items.len()).into_bytes();
    for it in items {
        v.extend_from_slice(format!("${}\r\n", it.len()).as_bytes());
        v.extend_from_slice(it);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn pipeline16() -> Vec<u8> {
    let value = [b'v'; 64];
    (0..16)
        .flat_map(|n| multibulk(&[b"SET", format!("key:{n}").as_bytes(), &value]))
        .collect()
}

fn bulk_1mb() -> Vec<u8> {
    multibulk(&[b"SET", b"key", &vec![b'x'; 1 << 20]])
}

fn bench_input(c: &mut Criterion, name: &str, input: &[u8], requests: usize, size: BatchSize) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(input.len() as u64));

    let mut dec = RequestDecoder::new(Limits::default());
    let mut args: Vec<Bytes> = Vec::new();
    g.bench_function("kvd_request", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut n = 0;
                while dec.decode(&mut buf, &mut args).unwrap_or(false) {
                    black_box(&args);
                    n += 1;
                }
                assert_eq!(n, requests);
            },
            size,
        )
    });

    let mut frames = FrameDecoder::new(Limits::default());
    g.bench_function("kvd_frame", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut n = 0;
                while let Ok(Some(f)) = frames.decode(&mut buf) {
                    black_box(f);
                    n += 1;
                }
                assert_eq!(n, requests);
            },
            size,
        )
    });

    g.bench_function("redis_protocol", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut n = 0;
                while let Ok(Some((f, _, _))) =
                    redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
                {
                    black_box(f);
                    n += 1;
                }
                assert_eq!(n, requests);
            },
            size,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_input(
        c,
        "pipeline16_set",
        &pipeline16(),
        16,
        BatchSize::SmallInput,
    );
    bench_input(c, "bulk_1mb", &bulk_1mb(), 1, BatchSize::LargeInput);
}

criterion_group!(decode, benches);
criterion_main!(decode);
