//! Single-threaded model test: random find / find-or-create / CAS / grow /
//! grow_with / for_each against a `HashMap` model, with few tags and few
//! buckets so that bucket chains overflow.
#![cfg(not(loom))]

use std::collections::HashMap;

use hash_index::{CasError, HashIndex, IndexConfig, INVALID_ADDRESS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (bucket bits under the current mask, tag) -> address.
type Model = HashMap<(u64, u64), u64>;

fn key(h: u64, mask: u64) -> (u64, u64) {
    (h & mask, h >> 50)
}

fn split(addr: u64, _bit: u64) -> (u64, u64) {
    if (addr / 64).is_multiple_of(2) {
        (addr, INVALID_ADDRESS)
    } else {
        (INVALID_ADDRESS, addr)
    }
}

fn run(seed: u64, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let index = HashIndex::new(IndexConfig { initial_buckets: 2 });
    let guard = crossbeam_epoch::pin();
    let mut model = Model::new();
    let mut mask = 1u64;
    for step in 0..ops {
        let tag = rng.random_range(1..=24u64);
        let h = (tag << 50) | rng.random_range(0..1024u64);
        match rng.random_range(0..100) {
            0..30 => {
                let e = index.find_or_create_entry(h, &guard);
                let want = *model.entry(key(h, mask)).or_insert(INVALID_ADDRESS);
                assert_eq!(e.address(), want, "seed {seed} step {step}");
            }
            30..55 => {
                let got = index.find_entry(h, &guard).map(|e| e.address());
                assert_eq!(
                    got,
                    model.get(&key(h, mask)).copied(),
                    "seed {seed} step {step}"
                );
            }
            55..90 => {
                let e = index.find_or_create_entry(h, &guard);
                let cur = *model.entry(key(h, mask)).or_insert(INVALID_ADDRESS);
                let new = rng.random_range(1..1u64 << 40) * 64;
                assert_eq!(
                    e.compare_exchange(cur + 64, new),
                    Err(CasError::Changed(cur))
                );
                e.compare_exchange(cur, new).unwrap();
                model.insert(key(h, mask), new);
            }
            90..95 if index.bucket_count() < 256 => {
                let e = index.find_or_create_entry(h, &guard);
                model.entry(key(h, mask)).or_insert(INVALID_ADDRESS);
                let old_len = mask + 1;
                let with_split = rng.random_bool(0.5);
                if with_split {
                    index.grow_with(&guard, split);
                } else {
                    index.grow(&guard);
                }
                if e.address() != INVALID_ADDRESS {
                    assert_eq!(e.compare_exchange(e.address(), 64), Err(CasError::Moved));
                }
                let mut next = Model::new();
                for (&(b, t), &a) in &model {
                    if a == INVALID_ADDRESS {
                        continue; // dropped by the migration, recreated on demand
                    }
                    let (lo, hi) = if with_split {
                        split(a, old_len)
                    } else {
                        (a, a)
                    };
                    if lo != INVALID_ADDRESS {
                        next.insert((b, t), lo);
                    }
                    if hi != INVALID_ADDRESS {
                        next.insert((b + old_len, t), hi);
                    }
                }
                model = next;
                mask = mask * 2 + 1;
                assert_eq!(index.bucket_count() as u64, mask + 1);
            }
            99 => {
                let mut seen = HashMap::new();
                index.for_each_entry(&guard, |p, a| {
                    assert!(
                        seen.insert(key(p, mask), a).is_none(),
                        "entry visited twice"
                    );
                });
                let live: HashMap<_, _> = model
                    .iter()
                    .filter(|(_, &a)| a != INVALID_ADDRESS)
                    .map(|(&k, &a)| (k, a))
                    .collect();
                assert_eq!(seen, live, "seed {seed} step {step}");
            }
            _ => {
                let got = index.find_entry(h, &guard).map(|e| e.address());
                assert_eq!(
                    got,
                    model.get(&key(h, mask)).copied(),
                    "seed {seed} step {step}"
                );
            }
        }
    }
}

#[test]
fn random_ops_match_hashmap_model() {
    for seed in 0..8 {
        run(seed, 4000);
    }
}

#[test]
#[ignore = "long; run with --release -- --ignored"]
fn random_ops_match_hashmap_model_long() {
    for seed in 100..300 {
        run(seed, 20_000);
    }
}
