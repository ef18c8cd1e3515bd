//! Crash injection for the two-tier store (decision 008), in the style of `durability.rs`:
//! a child process (this test binary re-run with env vars) opens the store with the
//! `crash_at` hook and aborts at a two-tier step (`TIER_CRASH_POINTS`: during a migration or
//! a cold compaction) or at a checkpoint step (`CHECKPOINT_CRASH_POINTS`) of a checkpoint
//! taken after migrations moved the cold tail past the previous checkpoint's mark; the
//! parent reopens the directory and checks the recovered state against a model, then keeps
//! using the store across another checkpoint and recovery. Also: cold records written after
//! the last checkpoint are not read back after a restart.
//!
//! The stores migrate only on explicit `migrate` / `compact_cold` calls (the background
//! thread's interval is an hour), so every run does the same work.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hybrid_log::{RecordMeta, Session, Store, StoreConfig, CHECKPOINT_CRASH_POINTS};
use hybrid_log::{TierStats, TIER_CRASH_POINTS};

const KEYS: u64 = 600;
/// Operations per `random_ops` batch.
const OPS: usize = 1500;

const CHILD_MODE: &str = "HLOG_TIER_CRASH_MODE";
const CHILD_STEP: &str = "HLOG_TIER_CRASH_STEP";
const CHILD_DIR: &str = "HLOG_TIER_CRASH_DIR";
/// The child leaves the cold tail of checkpoint `A` in this file of the store directory
/// (the store ignores it).
const COLD_A_FILE: &str = "test-cold-tail-at-A";

/// Like `tiered_cfg` of `tiered.rs`, with the background thread idle (explicit passes only).
fn cfg(dir: &Path, crash_at: Option<&str>) -> StoreConfig {
    let mut c = small_cfg(dir);
    c.tiered = true;
    c.cold_index_bits = 10;
    c.tier_hot_bytes = 8 << 12;
    c.cold_compaction_min_bytes = 64 << 10;
    c.tier_interval = Duration::from_secs(3600);
    c.compaction_keeps_expired = false;
    c.crash_at = crash_at.map(str::to_string);
    c
}

fn tier(store: &Store) -> TierStats {
    store.tier_stats().expect("two-tier store")
}

/// Phase A: ops, migration, updates of cold keys, migration and cold compaction, then ops
/// that stay hot. Leaves data in both tiers.
fn phase_a(store: &Store, s: &mut Session, model: &mut Model) {
    random_ops(s, model, 31, OPS, KEYS, true);
    store.migrate(u64::MAX).unwrap();
    random_ops(s, model, 32, OPS, KEYS, true);
    store.migrate(u64::MAX).unwrap();
    assert!(store.compact_cold(u64::MAX).unwrap() > 0);
    random_ops(s, model, 33, OPS, KEYS, true);
}

/// The models after phase A and after phase A + the ops of phase B (seeds 41..=43), from the
/// same seeded ops on a scratch store (the model does not depend on the store).
fn models() -> (Model, Model) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(small_cfg(d.path())).unwrap();
    let mut s = store.session();
    let mut a = Model::new();
    for seed in 31..=33 {
        random_ops(&mut s, &mut a, seed, OPS, KEYS, true);
    }
    let mut b = a.clone();
    for seed in 41..=43 {
        random_ops(&mut s, &mut b, seed, OPS, KEYS, true);
    }
    (a, b)
}

/// A fresh store in `dir` after phase A and checkpoint `A`; returns the cold tail at `A`.
fn checkpoint_a(dir: &Path, model: &mut Model) -> u64 {
    let store = Store::open(cfg(dir, None)).unwrap();
    let mut s = store.session();
    phase_a(&store, &mut s, model);
    store.checkpoint(b"A".to_vec()).unwrap();
    let t = tier(&store);
    assert!(
        t.cold_tail > t.cold_begin && t.migrated_records > 0 && t.cold_compactions > 0,
        "phase A populated the cold tier: {t:?}"
    );
    t.cold_tail
}

/// Child mode (does nothing in a normal test run): phase A and checkpoint `A`, then reopen
/// with the crash hook, run phase B and trigger the step.
/// * `tier`: B1 ops, the other two-tier operation (cold compaction before a migration step,
///   a migration before the compaction step), B2 ops, then the operation that hits the hook.
/// * `checkpoint`: B1 ops, migration, B2 ops, cold compaction, B3 ops, checkpoint `B`.
#[test]
fn tier_crash_child() {
    let (Ok(mode), Ok(step), Ok(dir)) = (
        std::env::var(CHILD_MODE),
        std::env::var(CHILD_STEP),
        std::env::var(CHILD_DIR),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut model = Model::new();
    let cold_a = checkpoint_a(&dir, &mut model);
    std::fs::write(dir.join(COLD_A_FILE), cold_a.to_string()).unwrap();
    let store = Store::open(cfg(&dir, Some(&step))).unwrap();
    assert_eq!(tier(&store).cold_tail, cold_a, "recovered at A's cold mark");
    let mut s = store.session();
    match mode.as_str() {
        "tier" => {
            let compaction = step == "cold-compacted";
            random_ops(&mut s, &mut model, 41, OPS, KEYS, true);
            if compaction {
                store.migrate(u64::MAX).unwrap();
            } else {
                store.compact_cold(u64::MAX).unwrap();
            }
            random_ops(&mut s, &mut model, 42, OPS, KEYS, true);
            assert!(tier(&store).cold_tail > cold_a, "{:?}", tier(&store));
            if compaction {
                let _ = store.compact_cold(u64::MAX);
            } else {
                let _ = store.migrate(u64::MAX);
            }
        }
        "checkpoint" => {
            random_ops(&mut s, &mut model, 41, OPS, KEYS, true);
            store.migrate(u64::MAX).unwrap();
            random_ops(&mut s, &mut model, 42, OPS, KEYS, true);
            store.compact_cold(u64::MAX).unwrap();
            random_ops(&mut s, &mut model, 43, OPS, KEYS, true);
            let t = tier(&store);
            assert!(
                t.cold_tail > cold_a && t.migrated_records > 0,
                "the cold tail moved past A's mark: {t:?}"
            );
            let _ = store.checkpoint(b"B".to_vec());
        }
        m => panic!("unknown child mode {m:?}"),
    }
    panic!("the crash hook at {step:?} did not fire");
}

/// Runs `tier_crash_child` in `dir`; asserts it aborted at the hook. Returns the cold tail
/// of checkpoint `A`.
fn run_child(mode: &str, step: &str, dir: &Path) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tier_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_STEP, step)
        .env(CHILD_DIR, dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("crash_at"),
        "child {mode}/{step:?} did not abort at the hook: {:?}\n{stderr}",
        out.status
    );
    let cold_a = std::fs::read_to_string(dir.join(COLD_A_FILE)).unwrap();
    cold_a.parse().unwrap()
}

/// Reopens `dir`: must recover checkpoint `(version, token)` holding `want` (both tiers
/// read), with the cold log cut at A's mark (`cold_a`) for `A` and past it for a later
/// checkpoint; then keeps working: more ops with migration and cold compaction, a
/// checkpoint, a recovery.
fn recover_and_continue(
    dir: &Path,
    (version, token): (u64, &[u8]),
    cold_a: u64,
    want: &Model,
    what: &str,
) {
    let store = Store::open(cfg(dir, None)).unwrap();
    let r = store.recovered().expect("recovered");
    assert_eq!(
        (r.version, r.token.as_slice()),
        (version, token),
        "{what}: recovered checkpoint"
    );
    let t = tier(&store);
    assert!(t.cold_tail > t.cold_begin, "{what}: cold tier empty: {t:?}");
    if token == b"A" {
        assert_eq!(t.cold_tail, cold_a, "{what}: cold log cut at A's mark");
    } else {
        assert!(
            t.cold_tail > cold_a,
            "{what}: {t:?} vs A's cold tail {cold_a}"
        );
    }
    let mut s = store.session();
    check(&mut s, want, KEYS);
    assert!(
        tier(&store).cold_hits > 0,
        "{what}: no read reached the cold tier"
    );
    let mut m = want.clone();
    random_ops(&mut s, &mut m, 51, OPS, KEYS, true);
    store.migrate(u64::MAX).unwrap();
    store.compact_cold(u64::MAX).unwrap();
    random_ops(&mut s, &mut m, 52, OPS / 2, KEYS, true);
    check(&mut s, &m, KEYS);
    let v = store.checkpoint(b"C".to_vec()).unwrap().version;
    assert_eq!(v, version + 1, "{what}");
    drop(s);
    drop(store);
    let store = Store::open(cfg(dir, None)).unwrap();
    assert_eq!(store.recovered().unwrap().version, version + 1, "{what}");
    check(&mut store.session(), &m, KEYS);
}

#[test]
fn crash_at_every_tier_step_recovers_the_last_checkpoint() {
    if std::env::var(CHILD_MODE).is_ok() {
        return;
    }
    let (model_a, _) = models();
    for step in TIER_CRASH_POINTS {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let cold_a = run_child("tier", step, dir.path());
        recover_and_continue(dir.path(), (1, b"A"), cold_a, &model_a, step);
        eprintln!("crash at {step:?}: ok ({} ms)", t0.elapsed().as_millis());
    }
}

#[test]
fn crash_at_every_checkpoint_step_of_a_tiered_store() {
    if std::env::var(CHILD_MODE).is_ok() {
        return;
    }
    let (model_a, model_b) = models();
    let publish = CHECKPOINT_CRASH_POINTS
        .iter()
        .position(|s| *s == "renamed")
        .unwrap();
    for (i, step) in CHECKPOINT_CRASH_POINTS.iter().enumerate() {
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let cold_a = run_child("checkpoint", step, dir.path());
        if i >= publish {
            recover_and_continue(dir.path(), (2, b"B"), cold_a, &model_b, step);
        } else {
            recover_and_continue(dir.path(), (1, b"A"), cold_a, &model_a, step);
        }
        eprintln!("crash at {step:?}: ok ({} ms)", t0.elapsed().as_millis());
    }
}

/// Phase B of `cold_records_after_the_checkpoint_are_not_recovered`: changes every key of
/// the universe (delete or overwrite), then filler keys until all of it is flushed, then
/// migrates it all to the cold tier. Returns the model after it.
fn change_everything_and_migrate(store: &Store, s: &mut Session, model: &Model, tag: u8) -> Model {
    let mut m = model.clone();
    for i in 0..KEYS {
        let k = format!("k{i}").into_bytes();
        if i % 3 == 0 {
            s.delete(&k).unwrap();
            m.remove(&k);
        } else {
            let v = vec![tag; 1 + (i as usize % 50)];
            s.upsert(&k, &v, RecordMeta::default()).unwrap();
            m.insert(k, (v, RecordMeta::default()));
        }
    }
    for i in 0..KEYS / 4 + 1 {
        let k = format!("c{i}").into_bytes();
        if i % 2 == 0 {
            s.delete(&k).unwrap();
            m.remove(&k);
        } else {
            s.rmw(&k, &mut Incr(7)).unwrap();
            let e = m
                .entry(k)
                .or_insert_with(|| (b"0".to_vec(), RecordMeta::default()));
            let n: i64 = std::str::from_utf8(&e.0).unwrap().parse().unwrap();
            e.0 = (n + 7).to_string().into_bytes();
        }
    }
    // Filler (outside `check`'s key universe, but scanned) until the changes are on disk.
    let changed_until = store.stats().tail;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0u64;
    while store.stats().flushed_until < changed_until {
        assert!(
            Instant::now() < deadline,
            "log not flushed: {:?}",
            store.stats()
        );
        let k = format!("filler{tag}-{i}").into_bytes();
        let v = vec![b'f'; 100];
        s.upsert(&k, &v, RecordMeta::default()).unwrap();
        m.insert(k, (v, RecordMeta::default()));
        i += 1;
    }
    let st = store.migrate(u64::MAX).unwrap();
    assert!(
        st.begin_after >= changed_until && st.records_migrated > 0,
        "every change is in the cold tier: {st:?}"
    );
    m
}

#[test]
fn cold_records_after_the_checkpoint_are_not_recovered() {
    if std::env::var(CHILD_MODE).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut model_a = Model::new();
    let cold_a = checkpoint_a(dir.path(), &mut model_a);
    // Twice: after the first restart, the cold log is written again from A's mark on
    // (over the region cut at recovery) and the store is dropped again without a checkpoint.
    for round in 0..2u8 {
        {
            let store = Store::open(cfg(dir.path(), None)).unwrap();
            assert_eq!(store.recovered().unwrap().token, b"A", "round {round}");
            assert_eq!(tier(&store).cold_tail, cold_a, "round {round}");
            let mut s = store.session();
            check(&mut s, &model_a, KEYS);
            let m = change_everything_and_migrate(&store, &mut s, &model_a, b'a' + round);
            // Compact too, so that the cold `begin` moves past A's mark as well.
            store.compact_cold(u64::MAX).unwrap();
            let t = tier(&store);
            assert!(t.cold_tail > cold_a, "round {round}: {t:?}");
            check(&mut s, &m, KEYS);
        }
        let store = Store::open(cfg(dir.path(), None)).unwrap();
        let r = store.recovered().unwrap();
        assert_eq!((r.version, r.token.as_slice()), (1, &b"A"[..]));
        let mut s = store.session();
        check(&mut s, &model_a, KEYS);
        assert!(tier(&store).cold_hits > 0, "round {round}");
    }
}
