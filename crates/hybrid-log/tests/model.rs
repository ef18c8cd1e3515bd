//! Single-thread model test: random operations against a `BTreeMap`, with tiny pages and a
//! budget of a few pages so most data spills to disk, and a tiny initial index.

use std::collections::{BTreeMap, BTreeSet};

use hybrid_log::{
    CopyAction, InPlace, RecordMeta, RmwOps, RmwOutcome, Store, StoreConfig, ValueMut,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// APPEND: creates or appends.
struct Append<'a>(&'a [u8]);
impl RmwOps for Append<'_> {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        Some((
            self.0.to_vec(),
            RecordMeta {
                expire_at_ms: 0,
                value_type: 1,
            },
        ))
    }
    fn in_place(&mut self, v: &mut ValueMut<'_>, _m: &mut RecordMeta) -> InPlace {
        if v.extend_from_slice(self.0) {
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
        out.extend_from_slice(old);
        out.extend_from_slice(self.0);
        CopyAction::Write
    }
}

/// SETRANGE on existing keys only (NotFound otherwise); zero-pads.
struct SetRange<'a>(usize, &'a [u8]);
impl RmwOps for SetRange<'_> {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        None
    }
    fn in_place(&mut self, v: &mut ValueMut<'_>, _m: &mut RecordMeta) -> InPlace {
        if v.write_at(self.0, self.1) {
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
        out.extend_from_slice(old);
        if out.len() < self.0 + self.1.len() {
            out.resize(self.0 + self.1.len(), 0);
        }
        out[self.0..self.0 + self.1.len()].copy_from_slice(self.1);
        CopyAction::Write
    }
}

/// SET NX with GET: returns the old value if it existed.
struct SetNxGet<'a> {
    value: &'a [u8],
    old: Option<Vec<u8>>,
}
impl RmwOps for SetNxGet<'_> {
    fn initial(&mut self) -> Option<(Vec<u8>, RecordMeta)> {
        self.old = None;
        Some((
            self.value.to_vec(),
            RecordMeta {
                expire_at_ms: 7,
                value_type: 2,
            },
        ))
    }
    fn in_place(&mut self, v: &mut ValueMut<'_>, _m: &mut RecordMeta) -> InPlace {
        self.old = Some(v.to_vec());
        InPlace::NoChange
    }
    fn copy_update(
        &mut self,
        old: &[u8],
        _om: RecordMeta,
        _o: &mut Vec<u8>,
        _m: &mut RecordMeta,
    ) -> CopyAction {
        self.old = Some(old.to_vec());
        CopyAction::NoChange
    }
}

fn value_for(rng: &mut StdRng, big: bool) -> Vec<u8> {
    let len = if big {
        rng.random_range(200..1500)
    } else {
        rng.random_range(0..120)
    };
    (0..len).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

fn open(dir: &std::path::Path, page_bits: u32, pages: u64) -> Store {
    let mut cfg = StoreConfig::new(dir);
    cfg.page_bits = page_bits;
    cfg.memory_budget = pages << page_bits;
    cfg.index_buckets = 8;
    cfg.segment_bits = page_bits + 3; // several segment files
    Store::open(cfg).unwrap()
}

fn run_model(seed: u64, page_bits: u32, pages: u64, ops: usize, keys: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), page_bits, pages);
    run_ops(&store, "key", seed, ops, keys);
    let st = store.stats();
    assert!(
        st.begin <= st.head && st.head <= st.safe_read_only && st.safe_read_only <= st.read_only
    );
    assert!(st.read_only <= st.tail);
    if pages < 64 {
        assert!(st.head > st.begin, "data must have spilled to disk: {st:?}");
    }
    if keys > 1000 {
        assert!(st.index_buckets > 8, "index must have grown: {st:?}");
    }
}

/// Random operations on the keys with `prefix` (owned by this caller) against a model.
fn run_ops(store: &Store, prefix: &str, seed: u64, ops: usize, keys: usize) {
    let mut s = store.session();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<Vec<u8>, (Vec<u8>, RecordMeta)> = BTreeMap::new();
    let key_of = |i: usize| format!("{prefix}:{i}:{}", "x".repeat(i % 23)).into_bytes();
    let big_ok = true;
    for step in 0..ops {
        let k = key_of(rng.random_range(0..keys));
        match rng.random_range(0..100) {
            0..=29 => {
                let big = big_ok && rng.random_range(0..20) == 0;
                let v = value_for(&mut rng, big);
                let meta = RecordMeta {
                    expire_at_ms: rng.random_range(0..3),
                    value_type: rng.random_range(0..4),
                };
                s.upsert(&k, &v, meta).unwrap();
                model.insert(k, (v, meta));
            }
            30..=54 => {
                let got = s.read(&k).unwrap();
                assert_eq!(
                    got.as_ref(),
                    model.get(&k),
                    "read mismatch at step {step} for {:?}",
                    String::from_utf8_lossy(&k)
                );
            }
            55..=64 => {
                let existed = s.delete_existing(&k).unwrap();
                assert_eq!(existed, model.remove(&k).is_some(), "delete at step {step}");
            }
            65..=79 => {
                let add = value_for(&mut rng, false);
                let add = &add[..add.len().min(rng.random_range(1..10))];
                let out = s.rmw(&k, &mut Append(add)).unwrap();
                match model.get_mut(&k) {
                    Some((v, _)) => {
                        assert_eq!(out, RmwOutcome::Updated);
                        v.extend_from_slice(add);
                    }
                    None => {
                        assert_eq!(out, RmwOutcome::Created);
                        model.insert(
                            k,
                            (
                                add.to_vec(),
                                RecordMeta {
                                    expire_at_ms: 0,
                                    value_type: 1,
                                },
                            ),
                        );
                    }
                }
            }
            80..=89 => {
                let off = rng.random_range(0..40);
                let bytes = value_for(&mut rng, false);
                let bytes = &bytes[..bytes.len().min(8)];
                let out = s.rmw(&k, &mut SetRange(off, bytes)).unwrap();
                match model.get_mut(&k) {
                    Some((v, _)) => {
                        assert_eq!(out, RmwOutcome::Updated);
                        if v.len() < off + bytes.len() {
                            v.resize(off + bytes.len(), 0);
                        }
                        v[off..off + bytes.len()].copy_from_slice(bytes);
                    }
                    None => assert_eq!(out, RmwOutcome::NotFound),
                }
            }
            _ => {
                let nv = value_for(&mut rng, false);
                let mut ops = SetNxGet {
                    value: &nv,
                    old: None,
                };
                let out = s.rmw(&k, &mut ops).unwrap();
                match model.get(&k) {
                    Some((v, _)) => {
                        assert_eq!(out, RmwOutcome::Unchanged);
                        assert_eq!(ops.old.as_ref(), Some(v));
                    }
                    None => {
                        assert_eq!(out, RmwOutcome::Created);
                        assert_eq!(ops.old, None);
                        model.insert(
                            k,
                            (
                                nv.clone(),
                                RecordMeta {
                                    expire_at_ms: 7,
                                    value_type: 2,
                                },
                            ),
                        );
                    }
                }
            }
        }
        if step % 5000 == 4999 {
            check_all(&mut s, &model, keys, &key_of);
            check_scan(&mut s, &model, rng.random_range(1..50), prefix);
        }
    }
    check_all(&mut s, &model, keys, &key_of);
    check_scan(&mut s, &model, 10, prefix);
}

fn check_all(
    s: &mut hybrid_log::Session,
    model: &BTreeMap<Vec<u8>, (Vec<u8>, RecordMeta)>,
    keys: usize,
    key_of: &dyn Fn(usize) -> Vec<u8>,
) {
    for i in 0..keys {
        let k = key_of(i);
        assert_eq!(
            s.read(&k).unwrap().as_ref(),
            model.get(&k),
            "final read of {:?}",
            String::from_utf8_lossy(&k)
        );
    }
}

fn check_scan(
    s: &mut hybrid_log::Session,
    model: &BTreeMap<Vec<u8>, (Vec<u8>, RecordMeta)>,
    count: usize,
    prefix: &str,
) {
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    let mut calls = 0;
    loop {
        cursor = s
            .scan(cursor, count, |k, v, m| {
                if !k.starts_with(prefix.as_bytes()) || k.get(prefix.len()) != Some(&b':') {
                    return; // another thread's keys
                }
                assert_eq!(
                    model.get(k),
                    Some(&(v.to_vec(), m)),
                    "scan value of {:?}",
                    String::from_utf8_lossy(k)
                );
                assert!(
                    seen.insert(k.to_vec()),
                    "single-threaded scan reports a key once"
                );
            })
            .unwrap();
        calls += 1;
        if cursor == 0 {
            break;
        }
        assert!(calls < 10_000_000);
    }
    assert_eq!(seen.len(), model.len(), "scan must report every live key");
}

#[test]
fn model_tiny_pages_spill_to_disk() {
    run_model(1, 12, 4, 30_000, 400);
}

#[test]
fn model_two_frames() {
    run_model(2, 12, 2, 15_000, 200);
}

#[test]
fn model_larger_pages_index_growth() {
    run_model(3, 16, 6, 40_000, 3000);
}

#[test]
fn model_mostly_in_memory() {
    run_model(4, 16, 64, 20_000, 500);
}

/// Four threads, each with its own keys and model, on one store with tiny pages: the log,
/// index and flush are shared, so chains mix keys of all threads.
#[test]
fn concurrent_models() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 12, 5);
    let hs: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || run_ops(&store, &format!("t{t}"), 100 + t, 12_000, 300))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let st = store.stats();
    assert!(st.head > st.begin && st.index_buckets > 8, "{st:?}");
}
