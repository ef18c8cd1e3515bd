//! Compaction: random ops interleaved with compactions and checkpoints against a model (no
//! live key lost, no deleted key resurrected, expired keys dropped), concurrent writers (a
//! hot counter incremented by every thread never loses an increment to a compaction copy),
//! and bounded disk space under overwrites.
//!
//! Bounded-space figures (100k keys x 50 overwrites): `CARGO_TARGET_DIR=target-durable cargo
//! test -p hybrid-log --release --test compaction -- --ignored --nocapture`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use hybrid_log::{RecordMeta, Store};

const KEYS: u64 = 500;

#[test]
fn compaction_interleaved_with_random_ops_matches_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut total_copied = 0;
    let mut total_expired = 0;
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        for round in 0..8u64 {
            random_ops(&mut s, &mut model, 100 + round, 1500, KEYS, true);
            let st = store.compact(u64::MAX).unwrap();
            assert!(st.begin_after >= st.begin_before);
            assert_eq!(st.begin_after, store.stats().begin);
            total_copied += st.records_copied;
            total_expired += st.records_expired;
            check(&mut s, &model, KEYS);
            if round % 3 == 1 {
                store.checkpoint(round.to_le_bytes().to_vec()).unwrap();
            }
        }
        assert!(total_copied > 0 && total_expired > 0);
        store.checkpoint(Vec::new()).unwrap();
        // Compaction right after a checkpoint (no flush in between), then recover.
        store.compact(u64::MAX).unwrap();
        check(&mut s, &model, KEYS);
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    let mut s = store.session();
    check(&mut s, &model, KEYS);
    // After recovery: compact everything again, checkpoint, recover.
    random_ops(&mut s, &mut model, 200, 1500, KEYS, true);
    store.compact(u64::MAX).unwrap();
    store.checkpoint(Vec::new()).unwrap();
    drop(s);
    drop(store);
    let store = Store::open(small_cfg(dir.path())).unwrap();
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn deleted_keys_never_resurrect() {
    // Every key written many times then deleted: after compaction + checkpoint + recovery
    // nothing may come back (dropped tombstones over older records below `begin`).
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        for r in 0..5u8 {
            for i in 0..300 {
                s.upsert(format!("d{i}").as_bytes(), &[r; 40], RecordMeta::default())
                    .unwrap();
            }
        }
        for i in 0..300 {
            s.delete(format!("d{i}").as_bytes()).unwrap();
        }
        // Push the tombstones to disk, then compact half of the log, then all of it.
        for i in 0..2000 {
            s.upsert(format!("f{i}").as_bytes(), &[9; 40], RecordMeta::default())
                .unwrap();
        }
        let half = store.stats().flushed_until / 2;
        store.compact(half).unwrap();
        store.checkpoint(Vec::new()).unwrap();
        store.compact(u64::MAX).unwrap();
        store.checkpoint(Vec::new()).unwrap();
        for i in 0..300 {
            assert!(s.read(format!("d{i}").as_bytes()).unwrap().is_none());
        }
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    let mut s = store.session();
    for i in 0..300 {
        assert!(
            s.read(format!("d{i}").as_bytes()).unwrap().is_none(),
            "d{i} came back"
        );
    }
    for i in 0..2000 {
        assert!(s.read(format!("f{i}").as_bytes()).unwrap().is_some());
    }
}

#[test]
fn compaction_with_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 3;
    const OPS: usize = if cfg!(debug_assertions) { 2500 } else { 40_000 };
    let mut cfg = small_cfg(dir.path());
    cfg.memory_budget = 16 << 12;
    let store = Store::open(cfg.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let store = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Relaxed) {
                store.compact(u64::MAX).unwrap();
                n += 1;
                if n % 5 == 0 {
                    store.checkpoint(Vec::new()).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                // Private keys (own model) plus a shared hot counter.
                let mut s = store.session();
                let mut model = Model::new();
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                for _ in 0..OPS {
                    let k = format!("w{t}:{}", rng.random_range(0..200)).into_bytes();
                    match rng.random_range(0..10) {
                        0..=5 => {
                            let v = vec![rng.random::<u8>(); rng.random_range(1..80)];
                            s.upsert(&k, &v, RecordMeta::default()).unwrap();
                            model.insert(k, (v, RecordMeta::default()));
                        }
                        6..=7 => {
                            s.delete(&k).unwrap();
                            model.remove(&k);
                        }
                        _ => {
                            s.rmw(b"hot", &mut Incr(1)).unwrap();
                        }
                    }
                    s.rmw(b"hot", &mut Incr(1)).unwrap();
                }
                for i in 0..200 {
                    let k = format!("w{t}:{i}").into_bytes();
                    assert_eq!(
                        s.read(&k).unwrap(),
                        model.get(&k).cloned(),
                        "thread {t} key {i}"
                    );
                }
                model
            })
        })
        .collect();
    let models: Vec<Model> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Relaxed);
    let rounds = compactor.join().unwrap();
    assert!(rounds > 0);
    let mut s = store.session();
    let hot = s.read(b"hot").unwrap().unwrap().0;
    let extra: u64 = {
        // Recount the extra increments (the `_` arm) from the same seeds.
        use rand::{Rng, SeedableRng};
        (0..THREADS)
            .map(|t| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                let mut n = 0;
                for _ in 0..OPS {
                    let _ = rng.random_range(0..200);
                    match rng.random_range(0..10) {
                        0..=5 => {
                            let _ = rng.random::<u8>();
                            let _ = rng.random_range(1..80usize);
                        }
                        6..=7 => {}
                        _ => n += 1,
                    }
                }
                n
            })
            .sum()
    };
    let want = (THREADS * OPS) as u64 + extra;
    assert_eq!(
        std::str::from_utf8(&hot).unwrap(),
        want.to_string(),
        "lost increments"
    );
    store.checkpoint(Vec::new()).unwrap();
    drop(s);
    drop(store);
    let store = Store::open(cfg).unwrap();
    let mut s = store.session();
    assert_eq!(
        s.read(b"hot").unwrap().unwrap().0,
        want.to_string().into_bytes()
    );
    for (t, model) in models.iter().enumerate() {
        for i in 0..200 {
            let k = format!("w{t}:{i}").into_bytes();
            assert_eq!(s.read(&k).unwrap(), model.get(&k).cloned());
        }
    }
}

/// Overwrites `keys` keys `rounds` times with `value_len`-byte values, with background
/// compaction and periodic checkpoints; prints disk use over time and returns
/// (final dir bytes, live bytes).
fn overwrite_bounded(keys: u64, rounds: u64, value_len: usize, verbose: bool) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hybrid_log::StoreConfig::new(dir.path());
    cfg.page_bits = 16;
    cfg.segment_bits = 20;
    cfg.memory_budget = 2 << 20;
    cfg.index_buckets = (keys / 4).max(16) as usize;
    cfg.compaction_enabled = true;
    cfg.compaction_min_bytes = 4 << 20;
    cfg.compaction_factor = 2.0;
    cfg.compaction_interval = std::time::Duration::from_millis(20);
    let store = Store::open(cfg).unwrap();
    let mut s = store.session();
    let key = |i: u64| format!("key:{i:08}");
    // Record size: 32-byte prefix + key + value capacity (with slack), 8-aligned.
    let rec = (32 + 12 + value_len + (value_len / 8).min(256)).div_ceil(8) as u64 * 8;
    let live = keys * rec;
    let t0 = Instant::now();
    for r in 0..rounds {
        let v = vec![r as u8; value_len];
        for i in 0..keys {
            s.upsert(key(i).as_bytes(), &v, RecordMeta::default())
                .unwrap();
        }
        if r % 5 == 4 {
            store.checkpoint(Vec::new()).unwrap();
        }
        if verbose {
            println!(
                "t={:6.2}s round {r:2}: dir {:6.1} MiB, log {:6.1} MiB (live {:.1} MiB)",
                t0.elapsed().as_secs_f64(),
                dir_bytes(dir.path()) as f64 / 1048576.0,
                (store.stats().tail - store.stats().begin) as f64 / 1048576.0,
                live as f64 / 1048576.0
            );
        }
    }
    // Final: compaction, then two checkpoints (the previous one is kept as a fallback).
    let st = store.compact(u64::MAX).unwrap();
    store.checkpoint(Vec::new()).unwrap();
    store.checkpoint(Vec::new()).unwrap();
    let final_bytes = dir_bytes(dir.path());
    if verbose {
        println!(
            "final: compaction copied {} dropped {}; dir {:.1} MiB = {:.2}x live ({:.1} MiB); {:.1} s",
            st.records_copied,
            st.records_dropped,
            final_bytes as f64 / 1048576.0,
            final_bytes as f64 / live as f64,
            live as f64 / 1048576.0,
            t0.elapsed().as_secs_f64()
        );
    }
    let last = vec![(rounds - 1) as u8; value_len];
    for i in (0..keys).step_by(97) {
        assert_eq!(s.read(key(i).as_bytes()).unwrap().unwrap().0, last);
    }
    (final_bytes, live)
}

#[test]
fn overwrites_stay_in_bounded_space_small() {
    let (bytes, live) = overwrite_bounded(20_000, 12, 100, false);
    assert!(bytes <= 3 * live, "dir {bytes} > 3 x live {live}");
}

#[test]
#[ignore = "heavy: run in --release (see module docs)"]
fn overwrites_stay_in_bounded_space() {
    let (bytes, live) = overwrite_bounded(100_000, 50, 100, true);
    assert!(bytes <= 3 * live, "dir {bytes} > 3 x live {live}");
}

/// With `compaction_keeps_expired`, compaction copies expired records like live ones, so a
/// caller that deletes expired keys itself (and counts keys exactly) never loses one to
/// compaction; without it they are dropped.
#[test]
fn compaction_can_keep_expired_records() {
    for keep in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = small_cfg(dir.path());
        cfg.compaction_keeps_expired = keep;
        let store = Store::open(cfg).unwrap();
        let mut s = store.session();
        let past = RecordMeta {
            expire_at_ms: 1_000, // 1970: long expired
            value_type: 0,
        };
        for i in 0..200u32 {
            s.upsert(format!("old:{i}").as_bytes(), b"expired value", past)
                .unwrap();
        }
        // Push the expired records out of memory so compaction reaches them.
        for i in 0..4000u32 {
            s.upsert(
                format!("fill:{i}").as_bytes(),
                &[1u8; 64],
                RecordMeta::default(),
            )
            .unwrap();
        }
        let st = store.compact(u64::MAX).unwrap();
        let found = (0..200u32)
            .filter(|i| s.read(format!("old:{i}").as_bytes()).unwrap().is_some())
            .count();
        if keep {
            assert_eq!(st.records_expired, 0);
            assert_eq!(found, 200, "expired records must survive compaction");
            let (v, meta) = s.read(b"old:7").unwrap().unwrap();
            assert_eq!((v.as_slice(), meta), (&b"expired value"[..], past));
        } else {
            assert!(st.records_expired >= 200, "{st:?}");
            assert_eq!(found, 0, "expired records must be dropped");
        }
    }
}
