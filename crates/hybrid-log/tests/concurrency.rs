//! Concurrency: threads share keys while pages flush, frames recycle and the index grows.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

mod common;

use common::Incr;
use hybrid_log::{RecordMeta, RmwOutcome, Store, StoreConfig};

fn open(dir: &std::path::Path, page_bits: u32, pages: u64) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.page_bits = page_bits;
    cfg.memory_budget = pages << page_bits;
    cfg.index_buckets = std::env::var("HL_BUCKETS")
        .ok()
        .map_or(8, |v| v.parse().unwrap());
    cfg.segment_bits = page_bits + 4;
    Store::open(cfg).unwrap()
}

fn val(t: usize, i: usize) -> Vec<u8> {
    let len = 8 + (t * 31 + i * 7) % 200;
    (0..len).map(|j| b'a' + ((t + i + j) % 26) as u8).collect()
}

/// Exact INCR counts on shared keys, plus per-thread upserts and read-backs, while the log
/// spills to disk (tiny budget) and the index grows (8 initial buckets).
#[test]
fn shared_counters_and_private_keys() {
    shared_counters(4, 6_000);
}

/// Heavier variant (8 threads on 2 cores: lots of preemption inside operations). Run with
/// `CARGO_TARGET_DIR=target-log cargo test -p hybrid-log --release --test concurrency -- --ignored`.
#[test]
#[ignore = "heavy: run in --release"]
fn heavy_shared_counters_and_private_keys() {
    shared_counters(8, 60_000);
}

fn shared_counters(threads: usize, iters: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 12, 6);
    const COUNTERS: usize = 13;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                barrier.wait();
                for i in 0..iters {
                    let c = format!("counter:{}", (i + t) % COUNTERS);
                    let mut p = s.pin();
                    p.rmw(c.as_bytes(), &mut Incr(1)).unwrap();
                    let k = format!("t{t}:k{i}");
                    p.upsert(
                        k.as_bytes(),
                        &val(t, i),
                        RecordMeta {
                            expire_at_ms: i as u64,
                            value_type: t as u8,
                        },
                    )
                    .unwrap();
                    drop(p);
                    if i.is_multiple_of(3) {
                        let j = (i * 7919) % (i + 1);
                        let k = format!("t{t}:k{j}");
                        let got = s.read(k.as_bytes()).unwrap();
                        assert_eq!(
                            got,
                            Some((
                                val(t, j),
                                RecordMeta {
                                    expire_at_ms: j as u64,
                                    value_type: t as u8
                                }
                            )),
                            "lost key {k}"
                        );
                    }
                    if i.is_multiple_of(97) {
                        // Overwrite with a different size to force copies.
                        let k = format!("t{t}:k{}", i / 2);
                        s.upsert(
                            k.as_bytes(),
                            &val(t, i / 2),
                            RecordMeta {
                                expire_at_ms: (i / 2) as u64,
                                value_type: t as u8,
                            },
                        )
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut s = store.session();
    let mut total = 0i64;
    for c in 0..COUNTERS {
        let (v, _) = s.read(format!("counter:{c}").as_bytes()).unwrap().unwrap();
        total += std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap();
    }
    assert_eq!(total, (threads * iters) as i64);
    for t in 0..threads {
        for i in 0..iters {
            let k = format!("t{t}:k{i}");
            assert_eq!(
                s.read(k.as_bytes()).unwrap(),
                Some((
                    val(t, i),
                    RecordMeta {
                        expire_at_ms: i as u64,
                        value_type: t as u8
                    }
                )),
                "key {k}"
            );
        }
    }
    let st = store.stats();
    assert!(st.head > st.begin, "spilled to disk: {st:?}");
    assert!(st.index_buckets > 8, "index grew: {st:?}");
}

/// A single hot counter: every thread increments it; counts must be exact.
#[test]
fn hot_counter_exact() {
    hot_counter(4, 5_000);
}

#[test]
#[ignore = "heavy: run in --release"]
fn heavy_hot_counter_exact() {
    hot_counter(8, 50_000);
}

fn hot_counter(threads: usize, iters: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 12, 4);
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                let mut created = 0;
                for i in 0..iters {
                    if s.rmw(b"hot", &mut Incr(1)).unwrap() == RmwOutcome::Created {
                        created += 1;
                    }
                    // Filler so the hot record moves through read-only and disk regions.
                    if i.is_multiple_of(2) {
                        s.upsert(
                            format!("f{t}:{i}").as_bytes(),
                            &[b'x'; 100],
                            RecordMeta::default(),
                        )
                        .unwrap();
                    }
                }
                created
            })
        })
        .collect();
    let created: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(created, 1);
    let (v, _) = store.session().read(b"hot").unwrap().unwrap();
    assert_eq!(v, (threads * iters).to_string().as_bytes());
}

/// Readers never see a torn value while writers update in place and by copy.
#[test]
fn no_torn_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 14, 8);
    let stop = Arc::new(AtomicBool::new(false));
    let mut s = store.session();
    for k in 0..8 {
        s.upsert(
            format!("k{k}").as_bytes(),
            &[b'a'; 64],
            RecordMeta::default(),
        )
        .unwrap();
    }
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let b = b'a' + (i % 26) as u8;
                    let len = if i.is_multiple_of(5) {
                        64 + (i % 7) * 40
                    } else {
                        64
                    };
                    s.upsert(
                        format!("k{}", (i + w) % 8).as_bytes(),
                        &vec![b; len],
                        RecordMeta::default(),
                    )
                    .unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                for i in 0..40_000 {
                    s.read_with(format!("k{}", i % 8).as_bytes(), |v, _| {
                        assert!(v.iter().all(|&c| c == v[0]), "torn value");
                    })
                    .unwrap()
                    .unwrap();
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
}

/// Keys that exist for the whole scan are reported while other threads write.
#[test]
fn scan_under_writes_reports_stable_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 13, 6);
    let mut s = store.session();
    const STABLE: usize = 2000;
    for i in 0..STABLE {
        s.upsert(
            format!("stable:{i}").as_bytes(),
            format!("v{i}").as_bytes(),
            RecordMeta::default(),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = store.session();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Churn: new keys, deletes, and rewrites of stable keys (same value).
                s.upsert(
                    format!("churn:{i}").as_bytes(),
                    &[b'c'; 50],
                    RecordMeta::default(),
                )
                .unwrap();
                if i.is_multiple_of(2) {
                    s.delete(format!("churn:{}", i / 2).as_bytes()).unwrap();
                }
                let j = i % STABLE;
                let pad = if i.is_multiple_of(3) {
                    "-longer-value-forces-copy"
                } else {
                    ""
                };
                s.upsert(
                    format!("stable:{j}").as_bytes(),
                    format!("v{j}{pad}").as_bytes(),
                    RecordMeta::default(),
                )
                .unwrap();
                i += 1;
            }
        })
    };
    for _round in 0..3 {
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        loop {
            cursor = s
                .scan(cursor, 100, |k, _v, _m| {
                    seen.insert(k.to_vec());
                })
                .unwrap();
            if cursor == 0 {
                break;
            }
        }
        for i in 0..STABLE {
            if !seen.contains(format!("stable:{i}").as_bytes()) {
                let r = s.read(format!("stable:{i}").as_bytes()).unwrap();
                panic!(
                    "stable:{i} missing from scan; read gives {r:?}; stats {:?}",
                    store.stats()
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
