//! Two-tier store (decision 008): a model-based check across both tiers with migration and
//! cold compaction running, checkpoints and recovery of both tiers, FLUSHALL, scans, and
//! counters updated from the cold tier by concurrent threads.

mod common;

use common::{check, random_ops, small_cfg, Incr, Model};
use hybrid_log::{Store, StoreConfig};

const KEYS: u64 = 3_000;

fn tiered_cfg(dir: &std::path::Path) -> StoreConfig {
    let mut c = small_cfg(dir);
    c.tiered = true;
    c.cold_index_bits = 10;
    c.tier_hot_bytes = 8 << 12;
    c.cold_compaction_min_bytes = 64 << 10;
    c.tier_interval = std::time::Duration::from_millis(1);
    c.compaction_keeps_expired = false;
    c
}

fn migrate_all(store: &Store) {
    // Everything that is flushed goes cold.
    store.migrate(u64::MAX).unwrap();
}

#[test]
fn explicit_migration_keeps_every_key_readable_and_scannable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiered_cfg(dir.path());
    cfg.tier_interval = std::time::Duration::from_secs(3600); // explicit passes only
    let store = Store::open(cfg).unwrap();
    let mut s = store.session();
    let mut model = Model::new();
    random_ops(&mut s, &mut model, 1, 20_000, KEYS, true);
    migrate_all(&store);
    let t = store.tier_stats().unwrap();
    assert!(t.migrated_records > 1000, "{t:?}");
    let st = store.stats();
    assert!(st.begin > 64, "the hot log's begin moved: {st:?}");
    check(&mut s, &model, KEYS);
    // Updates of cold keys (RMW, delete, upsert), then again.
    random_ops(&mut s, &mut model, 2, 20_000, KEYS, true);
    check(&mut s, &model, KEYS);
    migrate_all(&store);
    check(&mut s, &model, KEYS);
    assert!(store.compact_cold(u64::MAX).unwrap() > 0);
    check(&mut s, &model, KEYS);
    let t = store.tier_stats().unwrap();
    assert!(t.cold_reads > 0 && t.cold_hits > 0, "{t:?}");
    // The hot index holds far fewer entries than there are keys.
    assert!(
        t.hot_index_entries < model.len() as u64,
        "{t:?} vs {}",
        model.len()
    );
}

#[test]
fn background_migration_model_checkpoints_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    for round in 0..4u64 {
        let store = Store::open(tiered_cfg(dir.path())).unwrap();
        let mut s = store.session();
        check(&mut s, &model, KEYS);
        random_ops(&mut s, &mut model, 10 + round, 15_000, KEYS, true);
        check(&mut s, &model, KEYS);
        // Ops after the checkpoint are lost on reopen: apply them to a scratch model.
        store.checkpoint(format!("r{round}").into_bytes()).unwrap();
        let mut lost = model.clone();
        random_ops(&mut s, &mut lost, 100 + round, 2_000, KEYS, true);
        let t = store.tier_stats().unwrap();
        assert!(t.migration_passes > 0, "{t:?}");
    }
    let store = Store::open(tiered_cfg(dir.path())).unwrap();
    assert_eq!(store.recovered().unwrap().token, b"r3");
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn clear_all_empties_both_tiers_and_survives_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tiered_cfg(dir.path())).unwrap();
        let mut s = store.session();
        let mut model = Model::new();
        random_ops(&mut s, &mut model, 5, 10_000, KEYS, false);
        migrate_all(&store);
        s.clear_all();
        check(&mut s, &Model::new(), KEYS);
        s.upsert(b"after", b"1", Default::default()).unwrap();
        store.checkpoint(Vec::new()).unwrap();
    }
    let store = Store::open(tiered_cfg(dir.path())).unwrap();
    let mut s = store.session();
    let mut want = Model::new();
    want.insert(b"after".to_vec(), (b"1".to_vec(), Default::default()));
    check(&mut s, &want, KEYS);
}

#[test]
fn a_tiered_checkpoint_needs_tiered_mode() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tiered_cfg(dir.path())).unwrap();
        store
            .session()
            .upsert(b"k", b"v", Default::default())
            .unwrap();
        store.checkpoint(Vec::new()).unwrap();
    }
    let err = Store::open(small_cfg(dir.path())).unwrap_err();
    assert!(err.to_string().contains("two-tier"), "{err}");
}

#[test]
fn concurrent_increments_of_cold_counters_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(tiered_cfg(dir.path())).unwrap();
    const COUNTERS: u64 = 200;
    const THREADS: u64 = 4;
    const PER: u64 = 3_000;
    std::thread::scope(|sc| {
        for t in 0..THREADS {
            let store = store.clone();
            sc.spawn(move || {
                let mut s = store.session();
                for i in 0..PER {
                    let k = format!("n{}", (i * 7 + t) % COUNTERS);
                    s.rmw(k.as_bytes(), &mut Incr(1)).unwrap();
                    // Filler pushes the counters out of the hot tier.
                    let f = format!("f{t}-{i}");
                    s.upsert(f.as_bytes(), &[b'x'; 100], Default::default())
                        .unwrap();
                }
            });
        }
        let store = store.clone();
        sc.spawn(move || {
            for _ in 0..20 {
                let _ = store.compact_cold(u64::MAX).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
    });
    let mut s = store.session();
    let mut total = 0u64;
    let mut want = vec![0u64; COUNTERS as usize];
    for t in 0..THREADS {
        for i in 0..PER {
            want[((i * 7 + t) % COUNTERS) as usize] += 1;
        }
    }
    for c in 0..COUNTERS {
        let k = format!("n{c}");
        let v = s.read(k.as_bytes()).unwrap().expect("counter exists").0;
        let n = std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap();
        assert_eq!(n, want[c as usize], "counter {k}");
        total += n;
    }
    assert_eq!(total, THREADS * PER);
    let t = store.tier_stats().unwrap();
    assert!(t.migrated_records > 0 && t.cold_hits > 0, "{t:?}");
}

#[test]
fn reopening_with_another_cold_index_size_keeps_the_checkpoints_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let mut cfg = tiered_cfg(dir.path());
        cfg.cold_index_bits = 14;
        let store = Store::open(cfg).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 21, 10_000, KEYS, false);
        migrate_all(&store);
        store.checkpoint(Vec::new()).unwrap();
    }
    for bits in [10, 16] {
        let mut cfg = tiered_cfg(dir.path());
        cfg.cold_index_bits = bits;
        let store = Store::open(cfg).unwrap();
        check(&mut store.session(), &model, KEYS);
        store.compact_cold(u64::MAX).unwrap();
        check(&mut store.session(), &model, KEYS);
    }
}

#[test]
fn cold_compaction_to_a_bound_inside_a_record_keeps_the_store_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let store = Store::open(tiered_cfg(dir.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 22, 10_000, KEYS, false);
        migrate_all(&store);
        let t = store.tier_stats().unwrap();
        // 100 bytes past the cold log's begin: inside its first record.
        store.compact_cold(t.cold_begin + 100).unwrap();
        check(&mut s, &model, KEYS);
        store.checkpoint(Vec::new()).unwrap();
    }
    let store = Store::open(tiered_cfg(dir.path())).unwrap();
    check(&mut store.session(), &model, KEYS);
}
