//! Concurrency stress: threads CAS-increment counters stored in the address
//! field (and latch-protected counters) while another thread grows the
//! table. Bounded by operation counts; exact final values are checked.
#![cfg(not(loom))]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hash_index::{CasError, HashIndex, IndexConfig, INVALID_ADDRESS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 4;

/// Key `k` gets its own tag (k + 1), so every key owns one entry.
fn hash_of(k: u64) -> u64 {
    ((k + 1) << 50) | (fxhash::hash64(&k) & ((1 << 50) - 1))
}

fn increment(index: &HashIndex, h: u64, step: impl Fn(u64) -> u64) {
    let guard = crossbeam_epoch::pin();
    let mut e = index.find_or_create_entry(h, &guard);
    loop {
        let cur = e.address();
        match e.compare_exchange(cur, step(cur)) {
            Ok(()) => return,
            Err(CasError::Changed(_)) => {}
            Err(CasError::Moved) => e = index.find_or_create_entry(h, &guard),
        }
    }
}

/// Returns per-key increments done.
fn hammer(index: &HashIndex, keys: u64, ops: usize, grows: usize, split: bool) -> Vec<u64> {
    let totals: Vec<AtomicU64> = (0..keys).map(|_| AtomicU64::new(0)).collect();
    let progress = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (totals, progress) = (&totals, &progress);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                let mut mine = vec![0u64; keys as usize];
                for _ in 0..ops {
                    let k = rng.random_range(0..keys);
                    if split {
                        // address = count << 16 | (k + 1): the splitter can
                        // recover the key from the address.
                        increment(index, hash_of(k), |cur| ((cur >> 16) + 1) << 16 | (k + 1));
                    } else {
                        increment(index, hash_of(k), |cur| cur + 1);
                    }
                    mine[k as usize] += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                for (k, n) in mine.into_iter().enumerate() {
                    totals[k].fetch_add(n, Ordering::Relaxed);
                }
            });
        }
        s.spawn(|| {
            for i in 0..grows {
                // Spread the grows over the run (bounded by counts, not time).
                let due = (i + 1) * THREADS * ops / (grows + 2);
                while progress.load(Ordering::Relaxed) < due {
                    std::thread::yield_now();
                }
                let guard = crossbeam_epoch::pin();
                if split {
                    index.grow_with(&guard, |addr, bit| {
                        let k = (addr & 0xFFFF) - 1;
                        if hash_of(k) & bit == 0 {
                            (addr, INVALID_ADDRESS)
                        } else {
                            (INVALID_ADDRESS, addr)
                        }
                    });
                } else {
                    index.grow(&guard);
                }
                drop(guard);
                std::thread::yield_now();
            }
        });
    });
    totals.into_iter().map(AtomicU64::into_inner).collect()
}

fn check_counters(index: &HashIndex, totals: &[u64], split: bool) {
    let guard = crossbeam_epoch::pin();
    for (k, &n) in totals.iter().enumerate() {
        let got = index
            .find_entry(hash_of(k as u64), &guard)
            .map_or(0, |e| e.address());
        let got = if split { got >> 16 } else { got };
        assert_eq!(got, n, "key {k}: lost or duplicated increments");
    }
    // No (bucket, tag) pair twice.
    let mask = index.bucket_count() as u64 - 1;
    let mut seen = HashSet::new();
    let mut count = 0;
    index.for_each_entry(&guard, |p, _| {
        assert!(seen.insert((p & mask, p >> 50)), "duplicate entry");
        count += 1;
    });
    if split {
        // A real split leaves no copies: exactly one entry per touched key.
        assert_eq!(count, totals.iter().filter(|&&n| n > 0).count());
    }
}

#[test]
fn cas_counters_exact_while_growing() {
    let index = HashIndex::new(IndexConfig {
        initial_buckets: 64,
    });
    let totals = hammer(&index, 3000, 200_000, 6, false);
    assert_eq!(index.bucket_count(), 64 << 6);
    assert_eq!(totals.iter().sum::<u64>(), (THREADS * 200_000) as u64);
    check_counters(&index, &totals, false);
}

#[test]
fn cas_counters_exact_while_growing_with_split() {
    let index = HashIndex::new(IndexConfig {
        initial_buckets: 64,
    });
    let totals = hammer(&index, 3000, 50_000, 6, true);
    check_counters(&index, &totals, true);
}

#[test]
fn hot_keys_contended_while_growing() {
    // Few keys in one bucket: heavy CAS and insert contention, long chains.
    let index = HashIndex::new(IndexConfig { initial_buckets: 1 });
    let totals = hammer(&index, 40, 50_000, 4, false);
    check_counters(&index, &totals, false);
}

#[test]
fn latched_multi_key_updates_exact_while_growing() {
    let index = HashIndex::new(IndexConfig { initial_buckets: 4 });
    const KEYS: u64 = 64;
    const OPS: usize = 20_000;
    // Non-atomic read-modify-write under the latch: lost updates would show.
    let cells: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let progress = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (index, cells, progress) = (&index, &cells, &progress);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + t as u64);
                for _ in 0..OPS {
                    let a = rng.random_range(0..KEYS);
                    let b = rng.random_range(0..KEYS);
                    let shared = rng.random_bool(0.2);
                    let locks = index.lock_buckets(&[hash_of(a), hash_of(b)], !shared);
                    if shared {
                        let _ = cells[a as usize].load(Ordering::Relaxed);
                    } else {
                        for k in if a == b { vec![a] } else { vec![a, b] } {
                            let v = cells[k as usize].load(Ordering::Relaxed);
                            std::hint::spin_loop();
                            cells[k as usize].store(v + 1, Ordering::Relaxed);
                        }
                    }
                    drop(locks);
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        s.spawn(|| {
            for i in 0..5 {
                while progress.load(Ordering::Relaxed) < (i + 1) * THREADS * OPS / 7 {
                    std::thread::yield_now();
                }
                index.grow(&crossbeam_epoch::pin());
                std::thread::yield_now();
            }
        });
    });
    // Re-run the same random choices to compute the expected totals.
    let mut expected = vec![0u64; KEYS as usize];
    for t in 0..THREADS {
        let mut rng = StdRng::seed_from_u64(100 + t as u64);
        for _ in 0..OPS {
            let a = rng.random_range(0..KEYS);
            let b = rng.random_range(0..KEYS);
            if !rng.random_bool(0.2) {
                expected[a as usize] += 1;
                if a != b {
                    expected[b as usize] += 1;
                }
            }
        }
    }
    let got: Vec<u64> = cells.into_iter().map(AtomicU64::into_inner).collect();
    assert_eq!(got, expected);
    assert_eq!(index.bucket_count(), 4 << 5);
}

#[test]
#[ignore = "heavy; run with --release -- --ignored"]
fn cas_counters_exact_while_growing_heavy() {
    for round in 0..4 {
        let index = HashIndex::new(IndexConfig {
            initial_buckets: 256,
        });
        let split = round % 2 == 1;
        let totals = hammer(&index, 10_000, 1_000_000, 10, split);
        check_counters(&index, &totals, split);
    }
}

/// `remove_below` frees slots while writers keep moving their keys' addresses up and
/// readers look keys up: a reader never sees another key's address (a freed slot reused by
/// another tag), no CAS lands on a freed slot, and at the end every key whose last address
/// is at or above the final limit is found with exactly that address.
#[test]
fn remove_below_races_with_writers_and_readers() {
    const KEYS: u64 = 2_000;
    let index = HashIndex::new(IndexConfig {
        initial_buckets: 256,
    });
    let seq = AtomicU64::new(1);
    let limit = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let writers_done = std::sync::atomic::AtomicBool::new(false);
    let last: Vec<AtomicU64> = (0..KEYS).map(|_| AtomicU64::new(0)).collect();
    let freed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..2u64 {
            let (index, seq, last) = (&index, &seq, &last);
            writers.push(s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(t);
                for _ in 0..20_000 {
                    // Each thread owns half of the keys: one writer per key.
                    let k = rng.random_range(0..KEYS / 2) * 2 + t;
                    let h = hash_of(k);
                    let guard = crossbeam_epoch::pin();
                    loop {
                        let e = index.find_or_create_entry(h, &guard);
                        let cur = e.address();
                        assert!(
                            cur == INVALID_ADDRESS || cur & 0xffff == k,
                            "foreign address"
                        );
                        let new = (seq.fetch_add(1, Ordering::SeqCst) << 16) | k;
                        if e.compare_exchange(cur, new).is_ok() {
                            last[k as usize].store(new, Ordering::SeqCst);
                            break;
                        }
                    }
                }
            }));
        }
        {
            let (index, done) = (&index, &done);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(99);
                while !done.load(Ordering::Relaxed) {
                    let k = rng.random_range(0..KEYS);
                    let guard = crossbeam_epoch::pin();
                    if let Some(e) = index.find_entry(hash_of(k), &guard) {
                        let a = e.address();
                        assert!(a == INVALID_ADDRESS || a & 0xffff == k, "foreign address");
                    }
                }
            });
        }
        let (index, seq, limit, freed) = (&index, &seq, &limit, &freed);
        let writers_done = &writers_done;
        let sweeper = s.spawn(move || {
            // At least 100 sweeps, and sweeping until the writers are done,
            // the last one after every write: on a loaded machine the
            // sweeper may otherwise finish before the writers got going.
            let mut sweeps = 0;
            loop {
                let finished = writers_done.load(Ordering::SeqCst);
                // Trail the writers: free what is older than ~1,000 writes.
                let l = (seq.load(Ordering::SeqCst).saturating_sub(1_000)) << 16;
                limit.store(l, Ordering::SeqCst);
                let guard = crossbeam_epoch::pin();
                freed.fetch_add(index.remove_below(&guard, l), Ordering::Relaxed);
                sweeps += 1;
                if finished && sweeps >= 100 {
                    break;
                }
                std::thread::yield_now();
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        writers_done.store(true, Ordering::SeqCst);
        sweeper.join().unwrap();
        done.store(true, Ordering::Relaxed);
    });
    let guard = crossbeam_epoch::pin();
    let l = limit.load(Ordering::SeqCst);
    let mut kept = 0;
    for k in 0..KEYS {
        let want = last[k as usize].load(Ordering::SeqCst);
        let got = index.find_entry(hash_of(k), &guard).map(|e| e.address());
        if want >= l {
            assert_eq!(got, Some(want), "key {k} lost its entry");
            kept += 1;
        } else {
            assert!(
                got.is_none() || got == Some(want),
                "key {k}: {got:?} vs {want}"
            );
        }
    }
    assert!(freed.load(Ordering::Relaxed) > 0, "nothing was freed");
    assert!(kept > 0);
    // Everything below the current top can be freed; then no entry is left.
    let top = seq.load(Ordering::SeqCst) << 16;
    index.remove_below(&guard, top);
    assert_eq!(index.entry_count(), 0);
    for k in 0..KEYS {
        assert!(index.find_entry(hash_of(k), &guard).is_none());
    }
}
