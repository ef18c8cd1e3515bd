//! Rough single-process throughput numbers (not a benchmark suite; see `benches/` later).
//! `CARGO_TARGET_DIR=target-log cargo test -p hybrid-log --release --test throughput -- --ignored --nocapture`

use std::time::Instant;

mod common;

use common::Incr;
use hybrid_log::{RecordMeta, Store, StoreConfig};

#[test]
#[ignore = "timing: run in --release with --nocapture"]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.memory_budget = 256 << 20;
    let store = Store::open(cfg).unwrap();
    const N: usize = 1_000_000;
    let keys: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let value = [b'v'; 32];
    let mut s = store.session();
    let t = Instant::now();
    for k in &keys {
        s.upsert(k, &value, RecordMeta::default()).unwrap();
    }
    let insert = t.elapsed();
    let t = Instant::now();
    for k in &keys {
        s.upsert(k, &value, RecordMeta::default()).unwrap();
    }
    let update = t.elapsed();
    let t = Instant::now();
    for k in &keys {
        s.read_with(k, |v, _| v.len()).unwrap().unwrap();
    }
    let read = t.elapsed();
    let t = Instant::now();
    let counters: Vec<Vec<u8>> = (0..1000).map(|i| format!("ctr:{i}").into_bytes()).collect();
    for k in counters.iter().cycle().take(N) {
        s.rmw(k, &mut Incr(1)).unwrap();
    }
    let incr = t.elapsed();
    let t = Instant::now();
    {
        let mut p = s.pin();
        for (i, k) in keys.iter().enumerate() {
            p.read_with(k, |v, _| v.len()).unwrap().unwrap();
            if i % 64 == 63 {
                p.refresh();
            }
        }
    }
    let read_pinned = t.elapsed();
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|h| {
            let store = store.clone();
            let keys: Vec<Vec<u8>> = keys.iter().skip(h).step_by(2).cloned().collect();
            std::thread::spawn(move || {
                let mut s = store.session();
                for k in &keys {
                    s.upsert(k, &[b'w'; 32], RecordMeta::default()).unwrap();
                    s.read_with(k, |v, _| v.len()).unwrap().unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let two = t.elapsed();
    let mops = |d: std::time::Duration, n: usize| n as f64 / d.as_secs_f64() / 1e6;
    eprintln!(
        "1M ops each, Mops/s: insert {:.2}, update-in-place {:.2}, read {:.2}, read (batch pinned) {:.2}, \
         incr {:.2}, 2 threads upsert+read {:.2}; stats {:?}",
        mops(insert, N),
        mops(update, N),
        mops(read, N),
        mops(read_pinned, N),
        mops(incr, N),
        mops(two, 2 * N),
        store.stats()
    );
}
