//! Eviction passes (`Store::evict`, the building block of cache mode): against a model,
//! every key the pass reports is gone and every other key reads its latest value, also
//! after a checkpoint and recovery; with concurrent incrementers, no increment is lost or
//! counted twice across evictions (final value + evicted values = increments made).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};

use common::*;
use hybrid_log::{Eviction, RecordMeta, Store};

const KEYS: u64 = 400;

#[test]
fn evicted_keys_are_reported_and_gone_the_rest_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut total_evicted = 0;
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        for round in 0..6u64 {
            random_ops(&mut s, &mut model, 300 + round, 1500, KEYS, false);
            let mut reported: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            // Evict the even-numbered keys of the oldest half of the log, keep the rest.
            let half = store.stats().flushed_until / 2;
            let st = store
                .evict(
                    half,
                    &mut |k, _m| {
                        if k.last().is_some_and(|b| b % 2 == 0) {
                            Eviction::Evict
                        } else {
                            Eviction::Keep
                        }
                    },
                    &mut |k, v, _m| reported.push((k.to_vec(), v.to_vec())),
                )
                .unwrap();
            assert_eq!(st.records_evicted as usize, reported.len());
            total_evicted += reported.len();
            for (k, v) in reported {
                assert!(k.last().is_some_and(|b| b % 2 == 0), "kept key evicted");
                // The evicted value was the key's latest.
                let (mv, _) = model.remove(&k).expect("evicted key is in the model");
                assert_eq!(mv, v, "evicted a value that was not the latest");
            }
            check(&mut s, &model, KEYS);
            if round % 2 == 1 {
                store.checkpoint(round.to_le_bytes().to_vec()).unwrap();
            }
        }
        assert!(total_evicted > 0, "nothing was evicted");
        store.checkpoint(Vec::new()).unwrap();
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn evicting_everything_under_concurrent_increments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 2;
    // Counters are incremented every EVERY filler writes, so their records fall behind
    // the in-memory log in between and the passes find them.
    const EVERY: usize = 400;
    let mut cfg = small_cfg(dir.path());
    cfg.memory_budget = 4 << 12;
    let store = Store::open(cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    // Sum of the values of the counters at the moment they were evicted.
    let evicted_sum = Arc::new(Mutex::new(0i64));
    let evictor = {
        let (store, stop, evicted_sum, passes) = (
            store.clone(),
            stop.clone(),
            evicted_sum.clone(),
            passes.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                store
                    .evict(u64::MAX, &mut |_, _| Eviction::Evict, &mut |k, v, _| {
                        if k.starts_with(b"hot") {
                            let n: i64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                            *evicted_sum.lock().unwrap() += n;
                        }
                    })
                    .unwrap();
                let n = passes.fetch_add(1, Relaxed) + 1;
                if n % 7 == 0 {
                    store.checkpoint(Vec::new()).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let increments = Arc::new(AtomicU64::new(0));
    // Write until several passes ran and some caught a counter (bounded).
    for _round in 0..50 {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (store, increments) = (store.clone(), increments.clone());
                std::thread::spawn(move || {
                    let mut s = store.session();
                    for i in 0..2000 {
                        if i % EVERY == 0 {
                            s.rmw(format!("hot{}", (i / EVERY) % 3).as_bytes(), &mut Incr(1))
                                .unwrap();
                            increments.fetch_add(1, Relaxed);
                        }
                        // Filler so that pages fill up and fall to disk.
                        s.upsert(
                            format!("fill{t}:{}", i % 500).as_bytes(),
                            &[7; 60],
                            RecordMeta::default(),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        if passes.load(Relaxed) >= 10 && *evicted_sum.lock().unwrap() > 0 {
            break;
        }
    }
    stop.store(true, Relaxed);
    evictor.join().unwrap();
    let caught_concurrently = *evicted_sum.lock().unwrap();
    // A last, deterministic pass: push the counters' records out of memory (filler, then a
    // fold-over checkpoint flushes everything) and evict all.
    {
        let mut s = store.session();
        for i in 0..2000 {
            s.upsert(
                format!("tail{i}").as_bytes(),
                &[8; 60],
                RecordMeta::default(),
            )
            .unwrap();
        }
    }
    store.checkpoint(Vec::new()).unwrap();
    store
        .evict(u64::MAX, &mut |_, _| Eviction::Evict, &mut |k, v, _| {
            if k.starts_with(b"hot") {
                let n: i64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                *evicted_sum.lock().unwrap() += n;
            }
        })
        .unwrap();
    eprintln!("counter values caught by concurrent passes: {caught_concurrently}");
    let mut s = store.session();
    let mut live = 0i64;
    for k in 0..3 {
        if let Some((v, _)) = s.read(format!("hot{k}").as_bytes()).unwrap() {
            live += std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap();
        }
    }
    let evicted = *evicted_sum.lock().unwrap();
    let made = increments.load(Relaxed) as i64;
    assert_eq!(
        live + evicted,
        made,
        "live {live} + evicted {evicted} != {made}"
    );
    // The final pass covered every counter's record.
    assert_eq!(live, 0, "a counter survived the final pass");
    assert!(evicted > 0);
}

#[test]
fn reads_copy_to_tail_so_read_keys_survive_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_cfg(dir.path());
    cfg.memory_budget = 8 << 12;
    let store = Store::open(cfg).unwrap();
    store.set_copy_reads_to_tail(true);
    let mut s = store.session();
    for k in 0..20 {
        s.upsert(
            format!("hot{k}").as_bytes(),
            &[1; 50],
            RecordMeta::default(),
        )
        .unwrap();
    }
    let mut evicted_hot = 0;
    let mut evicted_cold = 0;
    for round in 0..40 {
        for i in 0..200 {
            s.upsert(
                format!("cold{round}:{i}").as_bytes(),
                &[2; 60],
                RecordMeta::default(),
            )
            .unwrap();
        }
        // Every hot key is read once per round: its record is copied to the tail whenever
        // it fell below read_only.
        for k in 0..20 {
            assert!(
                s.read(format!("hot{k}").as_bytes()).unwrap().is_some(),
                "hot{k} was evicted in round {round}"
            );
        }
        store
            .evict(u64::MAX, &mut |_, _| Eviction::Evict, &mut |k, _, _| {
                if k.starts_with(b"hot") {
                    evicted_hot += 1;
                } else {
                    evicted_cold += 1;
                }
            })
            .unwrap();
    }
    assert!(evicted_cold > 1000, "evicted only {evicted_cold} cold keys");
    assert_eq!(evicted_hot, 0, "read keys were evicted");
    // With the second chance off, the hot keys go too.
    store.set_copy_reads_to_tail(false);
    for round in 0..40 {
        for i in 0..200 {
            s.upsert(
                format!("late{round}:{i}").as_bytes(),
                &[3; 60],
                RecordMeta::default(),
            )
            .unwrap();
        }
        for k in 0..20 {
            let _ = s.read(format!("hot{k}").as_bytes()).unwrap();
        }
        store
            .evict(u64::MAX, &mut |_, _| Eviction::Evict, &mut |_, _, _| {})
            .unwrap();
    }
    let gone = (0..20)
        .filter(|k| s.read(format!("hot{k}").as_bytes()).unwrap().is_none())
        .count();
    assert_eq!(gone, 20, "without copies, reads do not protect keys");
}
