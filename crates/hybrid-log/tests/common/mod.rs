//! Shared helpers of the durability and compaction tests: a deterministic op generator and a
//! `BTreeMap` model of the store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use hybrid_log::{CopyAction, InPlace, RecordMeta, RmwOps, Session, StoreConfig, ValueMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Model: key -> (value, meta).
pub type Model = BTreeMap<Vec<u8>, (Vec<u8>, RecordMeta)>;

/// Small pages and frames so that data spills to disk; small segments; a tiny index that
/// has to grow.
pub fn small_cfg(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.page_bits = 12;
    c.memory_budget = 8 << 12;
    c.index_buckets = 8;
    c.segment_bits = 16;
    c
}

/// INCR as RMW ops (decimal ASCII).
pub struct Incr(pub i64);

impl RmwOps for Incr {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        Some((self.0.to_string().into_bytes(), RecordMeta::default()))
    }
    fn in_place(&mut self, v: &mut ValueMut<'_>, _m: &mut RecordMeta) -> InPlace {
        let n: i64 = std::str::from_utf8(v.as_slice()).unwrap().parse().unwrap();
        if v.set((n + self.0).to_string().as_bytes()) {
            InPlace::Done
        } else {
            InPlace::NeedCopy
        }
    }
    fn copy_update(
        &mut self,
        old: &[u8],
        _om: RecordMeta,
        out: &mut Vec<u8>,
        _m: &mut RecordMeta,
    ) -> CopyAction {
        let n: i64 = std::str::from_utf8(old).unwrap().parse().unwrap();
        out.extend_from_slice((n + self.0).to_string().as_bytes());
        CopyAction::Write
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Applies `n` random operations (seeded) to the session and the model: upserts of `k<i>`
/// (1..120-byte values, some already expired when `expired` is set), deletes, INCR of `c<i>`.
pub fn random_ops(
    s: &mut Session,
    model: &mut Model,
    seed: u64,
    n: usize,
    keys: u64,
    expired: bool,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..n {
        let r: u32 = rng.random_range(0..100);
        if r < 55 {
            let k = format!("k{}", rng.random_range(0..keys)).into_bytes();
            let len = rng.random_range(1..120usize);
            let b = rng.random::<u8>();
            let v = vec![b; len];
            let meta = if expired && rng.random_range(0..10) == 0 {
                RecordMeta {
                    expire_at_ms: 1,
                    value_type: 3,
                }
            } else {
                RecordMeta {
                    expire_at_ms: 0,
                    value_type: (len % 5) as u8,
                }
            };
            s.upsert(&k, &v, meta).unwrap();
            model.insert(k, (v, meta));
        } else if r < 75 {
            let k = format!("k{}", rng.random_range(0..keys)).into_bytes();
            s.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let k = format!("c{}", rng.random_range(0..keys / 4 + 1)).into_bytes();
            let d = rng.random_range(1..1000i64);
            s.rmw(&k, &mut Incr(d)).unwrap();
            let e = model
                .entry(k)
                .or_insert_with(|| (b"0".to_vec(), RecordMeta::default()));
            let n: i64 = std::str::from_utf8(&e.0).unwrap().parse().unwrap();
            e.0 = (n + d).to_string().into_bytes();
        }
    }
}

/// Whether a model entry is visible to a caller that filters expiry.
pub fn visible(meta: &RecordMeta) -> bool {
    meta.expire_at_ms == 0 || meta.expire_at_ms > now_ms()
}

/// Checks the store against the model: every key of `universe` reads as the model says
/// (expired entries count as absent), and a full scan reports exactly the visible keys.
pub fn check(s: &mut Session, model: &Model, keys: u64) {
    let mut universe: Vec<Vec<u8>> = Vec::new();
    for i in 0..keys {
        universe.push(format!("k{i}").into_bytes());
    }
    for i in 0..keys / 4 + 1 {
        universe.push(format!("c{i}").into_bytes());
    }
    for k in &universe {
        let got = s.read(k).unwrap().filter(|(_, m)| visible(m));
        let want = model.get(k).filter(|(_, m)| visible(m)).cloned();
        assert_eq!(
            got,
            want,
            "key {:?} differs from the model",
            String::from_utf8_lossy(k)
        );
    }
    let mut scanned = BTreeMap::new();
    let mut cur = 0;
    loop {
        cur = s
            .scan(cur, 100, |k, v, m| {
                if visible(&m) {
                    scanned.insert(k.to_vec(), (v.to_vec(), m));
                }
            })
            .unwrap();
        if cur == 0 {
            break;
        }
    }
    let want: Model = model
        .iter()
        .filter(|(_, (_, m))| visible(m))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        scanned.len(),
        want.len(),
        "scan reports a different key count"
    );
    assert!(scanned == want, "scan differs from the model");
}

/// Total bytes of the files in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
