//! Checkpoints and recovery: recovered state equals a `BTreeMap` model of the checkpointed
//! state (spilled to disk, deletes, overwrites, index growth), recovery is idempotent, bytes
//! past the checkpoint are discarded, a corrupt newest checkpoint falls back to the previous
//! one, a crash at every step of a checkpoint (child process aborted by the `crash_at` hook)
//! leaves the previous or the new checkpoint, and a checkpoint under concurrent writers holds
//! every write acknowledged before it began.
//!
//! Heavy figures (10M keys): `CARGO_TARGET_DIR=target-durable cargo test -p hybrid-log
//! --release --test durability -- --ignored --nocapture figures_10m`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use hybrid_log::{RecordMeta, Store, StoreConfig, CHECKPOINT_CRASH_POINTS};

const KEYS: u64 = 600;

#[test]
fn checkpoint_then_recover_equals_model_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let info = {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        assert!(store.recovered().is_none());
        let mut s = store.session();
        random_ops(&mut s, &mut model, 1, 6000, KEYS, false);
        let st = store.stats();
        assert!(st.head > st.begin, "data must have spilled to disk");
        assert!(st.index_buckets > 8, "index must have grown");
        let info = store.checkpoint(b"aof:1234".to_vec()).unwrap();
        assert_eq!(info.version, 1);
        assert_eq!(info.token, b"aof:1234");
        assert_eq!(store.last_checkpoint().unwrap(), info);
        check(&mut s, &model, KEYS);
        info
    };
    for round in 0..2 {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let r = store.recovered().expect("recovered");
        assert_eq!(r.version, 1, "round {round}");
        assert_eq!(r.token, b"aof:1234");
        assert_eq!(r.tail_address, info.tail_address);
        assert_eq!(store.stats().tail, info.tail_address);
        let mut s = store.session();
        check(&mut s, &model, KEYS);
    }
    // Keep working after recovery: more ops, a new checkpoint, recover again.
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 2, 4000, KEYS, false);
        check(&mut s, &model, KEYS);
        let i2 = store.checkpoint(b"two".to_vec()).unwrap();
        assert_eq!(i2.version, 2);
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    assert_eq!(store.recovered().unwrap().version, 2);
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn writes_after_the_checkpoint_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 3, 3000, KEYS, false);
        store.checkpoint(Vec::new()).unwrap();
        let mut after = model.clone();
        // Enough to flush many pages past the checkpoint's tail.
        random_ops(&mut s, &mut after, 4, 5000, KEYS, false);
        assert!(store.stats().flushed_until > store.last_checkpoint().unwrap().tail_address);
    }
    for _ in 0..2 {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        check(&mut s, &model, KEYS);
        // Writes after recovery overwrite the discarded region; still not checkpointed.
        let mut scratch = model.clone();
        random_ops(&mut s, &mut scratch, 5, 3000, KEYS, false);
        check(&mut s, &scratch, KEYS);
    }
}

#[test]
fn empty_store_checkpoint_and_clear_all() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        store.checkpoint(b"empty".to_vec()).unwrap();
    }
    let mut model = Model::new();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        assert_eq!(store.recovered().unwrap().records, 0);
        let mut s = store.session();
        random_ops(&mut s, &mut model, 6, 2000, KEYS, false);
        s.clear_all();
        model.clear();
        random_ops(&mut s, &mut model, 7, 500, KEYS, false);
        store.checkpoint(Vec::new()).unwrap();
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn corrupt_newest_checkpoint_falls_back_to_previous() {
    let dir = tempfile::tempdir().unwrap();
    let mut m1 = Model::new();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut m1, 8, 3000, KEYS, false);
        store.checkpoint(b"v1".to_vec()).unwrap();
        let mut m2 = m1.clone();
        random_ops(&mut s, &mut m2, 9, 3000, KEYS, false);
        store.checkpoint(b"v2".to_vec()).unwrap();
    }
    let newest = dir.path().join(format!("checkpoint.{:020}", 2));
    let mut b = std::fs::read(&newest).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&newest, &b).unwrap();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let r = store.recovered().unwrap();
        assert_eq!(
            (r.version, r.token.as_slice(), r.skipped_corrupt),
            (1, &b"v1"[..], 1)
        );
        check(&mut store.session(), &m1, KEYS);
        // New checkpoints get versions above the corrupt one.
        assert_eq!(store.checkpoint(Vec::new()).unwrap().version, 3);
    }
    let store = Store::open(small_cfg(dir.path())).unwrap();
    assert_eq!(store.recovered().unwrap().version, 3);
    check(&mut store.session(), &m1, KEYS);
}

#[test]
fn only_corrupt_checkpoints_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        store.checkpoint(Vec::new()).unwrap();
    }
    let p = dir.path().join(format!("checkpoint.{:020}", 1));
    std::fs::write(&p, b"garbage").unwrap();
    assert!(Store::open(small_cfg(dir.path())).is_err());
}

// ---- crash injection -------------------------------------------------------------------

const CHILD_STEP: &str = "HLOG_TEST_CRASH_STEP";
const CHILD_DIR: &str = "HLOG_TEST_CRASH_DIR";

fn crash_cfg(dir: &std::path::Path, crash_at: Option<&str>) -> StoreConfig {
    let mut c = small_cfg(dir);
    c.crash_at = crash_at.map(str::to_string);
    c
}

/// Child mode of `crash_at_every_checkpoint_step` (does nothing in a normal test run):
/// phase A, checkpoint 1, reopen with the crash hook, phase B, checkpoint 2 -> abort.
#[test]
fn crash_child() {
    let (Ok(step), Ok(dir)) = (std::env::var(CHILD_STEP), std::env::var(CHILD_DIR)) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut model = Model::new();
    {
        let store = Store::open(crash_cfg(&dir, None)).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 11, 3000, KEYS, false);
        store.checkpoint(b"A".to_vec()).unwrap();
    }
    let store = Store::open(crash_cfg(&dir, Some(&step))).unwrap();
    let mut s = store.session();
    random_ops(&mut s, &mut model, 12, 3000, KEYS, false);
    let _ = store.checkpoint(b"B".to_vec());
    panic!("the crash hook at {step:?} did not fire");
}

#[test]
fn crash_at_every_checkpoint_step() {
    if std::env::var(CHILD_STEP).is_ok() {
        return;
    }
    let mut model_a = Model::new();
    let model_b = {
        // The models come from the same seeded ops on a scratch store.
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(small_cfg(d.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model_a, 11, 3000, KEYS, false);
        let mut m = model_a.clone();
        random_ops(&mut s, &mut m, 12, 3000, KEYS, false);
        m
    };
    let exe = std::env::current_exe().unwrap();
    let publish = CHECKPOINT_CRASH_POINTS
        .iter()
        .position(|s| *s == "renamed")
        .unwrap();
    for (i, step) in CHECKPOINT_CRASH_POINTS.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let out = std::process::Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_STEP, step)
            .env(CHILD_DIR, dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("crash_at"),
            "child for {step:?} did not abort at the hook: {:?}\n{stderr}",
            out.status
        );
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let r = store.recovered().unwrap();
        let (want, token, version) = if i >= publish {
            (&model_b, &b"B"[..], 2)
        } else {
            (&model_a, &b"A"[..], 1)
        };
        assert_eq!(
            (r.version, r.token.as_slice()),
            (version, token),
            "step {step:?}"
        );
        let mut s = store.session();
        check(&mut s, want, KEYS);
        // The store keeps working: another checkpoint and recovery.
        let mut m = want.clone();
        random_ops(&mut s, &mut m, 13, 500, KEYS, false);
        let v = store.checkpoint(Vec::new()).unwrap().version;
        assert_eq!(v, version + 1);
        drop(s);
        drop(store);
        let store = Store::open(small_cfg(dir.path())).unwrap();
        check(&mut store.session(), &m, KEYS);
        eprintln!("crash at {step:?}: ok ({} ms)", t0.elapsed().as_millis());
    }
}

// ---- concurrent writers --------------------------------------------------------------

#[test]
fn checkpoint_under_concurrent_writes_holds_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 3;
    let mut cfg = small_cfg(dir.path());
    cfg.memory_budget = 16 << 12;
    let acked_before;
    let info;
    {
        let store = Store::open(cfg.clone()).unwrap();
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                let acked = acked.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut s = store.session();
                    let mut j = 0u64;
                    while !stop.load(Relaxed) || j < 2000 {
                        j += 1;
                        // A fresh key per write, then the thread's counter (in place mostly).
                        s.upsert(
                            format!("t{t}:{j}").as_bytes(),
                            &j.to_le_bytes(),
                            RecordMeta::default(),
                        )
                        .unwrap();
                        s.rmw(format!("ctr{t}").as_bytes(), &mut Incr(1)).unwrap();
                        acked[t].store(j, Release);
                    }
                    j
                })
            })
            .collect();
        while acked.iter().any(|a| a.load(Acquire) < 500) {
            std::thread::yield_now();
        }
        acked_before = acked.iter().map(|a| a.load(Acquire)).collect::<Vec<_>>();
        info = store.checkpoint(b"mid".to_vec()).unwrap();
        eprintln!(
            "checkpoint under load: {:?}, {} bytes",
            info.duration, info.bytes
        );
        stop.store(true, Relaxed);
        for h in handles {
            h.join().unwrap();
        }
    }
    let store = Store::open(cfg).unwrap();
    assert_eq!(store.recovered().unwrap().tail_address, info.tail_address);
    let mut s = store.session();
    for (t, &acked) in acked_before.iter().enumerate() {
        // The per-thread keys form a prefix 1..=n with n >= acked before the checkpoint.
        let mut n = 0;
        while s
            .read(format!("t{t}:{}", n + 1).as_bytes())
            .unwrap()
            .is_some()
        {
            n += 1;
        }
        assert!(
            n >= acked,
            "thread {t}: recovered {n} < acknowledged {acked}"
        );
        for j in n + 1..n + 50 {
            assert!(
                s.read(format!("t{t}:{j}").as_bytes()).unwrap().is_none(),
                "thread {t}: hole before key {j}"
            );
        }
        let (c, _) = s.read(format!("ctr{t}").as_bytes()).unwrap().unwrap();
        let c: u64 = std::str::from_utf8(&c).unwrap().parse().unwrap();
        assert!(
            c >= acked_before[t],
            "thread {t}: counter {c} went backwards"
        );
    }
}

// ---- figures ---------------------------------------------------------------------------

/// Checkpoint time/size and recovery time for 10M keys (8-16 byte keys and values).
#[test]
#[ignore = "heavy: 10M keys, run in --release (see module docs)"]
fn figures_10m() {
    let n: u64 = std::env::var("HLOG_FIGURES_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir =
        tempfile::tempdir_in(std::env::var("HLOG_FIGURES_DIR").unwrap_or("/tmp".into())).unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.memory_budget = 256 << 20;
    cfg.index_buckets = 1 << 16;
    let key = |i: u64| format!("key:{:0w$}", i, w = 4 + (i % 9) as usize);
    let val = |i: u64| format!("v{:0w$}", i, w = 7 + (i % 9) as usize);
    {
        let store = Store::open(cfg.clone()).unwrap();
        let mut s = store.session();
        let t0 = Instant::now();
        {
            let mut p = s.pin();
            for i in 0..n {
                p.upsert(key(i).as_bytes(), val(i).as_bytes(), RecordMeta::default())
                    .unwrap();
                if i % 1024 == 0 {
                    p.refresh();
                }
            }
        }
        let load = t0.elapsed();
        let info = store.checkpoint(b"figures".to_vec()).unwrap();
        println!(
            "load {n} keys: {:.2} s; checkpoint v{}: {:.3} s, {:.1} MiB (log {:#x}..{:#x}), dir {:.1} MiB",
            load.as_secs_f64(),
            info.version,
            info.duration.as_secs_f64(),
            info.bytes as f64 / (1 << 20) as f64,
            info.begin_address,
            info.tail_address,
            dir_bytes(dir.path()) as f64 / (1 << 20) as f64
        );
        // A second checkpoint right after (nothing new to flush).
        let info2 = store.checkpoint(Vec::new()).unwrap();
        println!("idle checkpoint: {:.3} s", info2.duration.as_secs_f64());
    }
    let t0 = Instant::now();
    let store = Store::open(cfg).unwrap();
    let r = store.recovered().unwrap();
    println!(
        "recovery: {} records in {:.2} s = {:.2} M records/s (open total {:.2} s)",
        r.records,
        r.duration.as_secs_f64(),
        r.records as f64 / r.duration.as_secs_f64() / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let mut s = store.session();
    for i in (0..n).step_by((n / 1000).max(1) as usize) {
        assert_eq!(
            s.read(key(i).as_bytes()).unwrap().unwrap().0,
            val(i).as_bytes()
        );
    }
}

#[test]
fn racing_upserts_of_the_same_keys_recover_to_the_last_installed_value() {
    // Blind upserts of a few hot keys from several threads: the value each key holds in
    // memory at the checkpoint must be the recovered one (recovery relies on chains being
    // in decreasing address order, see `recovery.rs`).
    const THREADS: usize = 4;
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut s = store.session();
                    for j in 0..3000u64 {
                        let k = format!("hot{}", (j + round) % 8);
                        let v = format!("{t}:{j}");
                        s.upsert(k.as_bytes(), v.as_bytes(), RecordMeta::default())
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut s = store.session();
        let before: Vec<_> = (0..8)
            .map(|i| s.read(format!("hot{i}").as_bytes()).unwrap().unwrap().0)
            .collect();
        store.checkpoint(Vec::new()).unwrap();
        drop(s);
        drop(store);
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        for (i, want) in before.iter().enumerate() {
            assert_eq!(
                &s.read(format!("hot{i}").as_bytes()).unwrap().unwrap().0,
                want,
                "round {round} key hot{i}"
            );
        }
    }
}

#[test]
fn recovery_uses_the_checkpoint_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let store = Store::open(small_cfg(dir.path())).unwrap();
        let mut s = store.session();
        random_ops(&mut s, &mut model, 21, 2000, KEYS, false);
        store.checkpoint(Vec::new()).unwrap();
    }
    let mut cfg = small_cfg(dir.path());
    cfg.page_bits = 14;
    cfg.segment_bits = 18;
    cfg.memory_budget = 8 << 14;
    let store = Store::open(cfg).unwrap();
    assert_eq!(store.stats().page_size, 1 << 12);
    check(&mut store.session(), &model, KEYS);
}

#[test]
fn checkpoint_with_a_write_gate_gives_an_exact_cut() {
    // Writers take a gate (shared) around each operation; the checkpoint takes it exclusively
    // and releases it in `at_cut`, whose token records each thread's acknowledged count.
    // Recovery must hold exactly those counts (per-thread counters updated in place).
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 3;
    let store = Store::open(small_cfg(dir.path())).unwrap();
    let gate = Arc::new(std::sync::RwLock::new(()));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, gate, acked, stop) =
                (store.clone(), gate.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut s = store.session();
                let mut j = 0u64;
                while !stop.load(Relaxed) {
                    let _g = gate.read().unwrap();
                    j += 1;
                    s.rmw(format!("ctr{t}").as_bytes(), &mut Incr(1)).unwrap();
                    s.upsert(format!("t{t}:{j}").as_bytes(), b"x", RecordMeta::default())
                        .unwrap();
                    acked[t].store(j, Release);
                }
            })
        })
        .collect();
    while acked.iter().any(|a| a.load(Acquire) < 300) {
        std::thread::yield_now();
    }
    let g = gate.write().unwrap();
    let info = store
        .checkpoint_with(|| {
            let counts: Vec<u8> = acked
                .iter()
                .flat_map(|a| a.load(Acquire).to_le_bytes())
                .collect();
            drop(g);
            counts
        })
        .unwrap();
    stop.store(true, Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    drop(store);
    let store = Store::open(small_cfg(dir.path())).unwrap();
    assert_eq!(store.recovered().unwrap().token, info.token);
    let mut s = store.session();
    for t in 0..THREADS {
        let want = u64::from_le_bytes(info.token[t * 8..t * 8 + 8].try_into().unwrap());
        let (c, _) = s.read(format!("ctr{t}").as_bytes()).unwrap().unwrap();
        assert_eq!(
            std::str::from_utf8(&c).unwrap(),
            want.to_string(),
            "thread {t}"
        );
        assert!(s.read(format!("t{t}:{want}").as_bytes()).unwrap().is_some());
        assert!(s
            .read(format!("t{t}:{}", want + 1).as_bytes())
            .unwrap()
            .is_none());
    }
}

/// A store handle that outlives the caller's (a background thread finishing a round) keeps
/// the directory locked: a new `open` waits for it instead of working beside it (two-tier
/// runs showed the old store's migration writing into the new store's cold index).
#[test]
fn open_waits_for_the_previous_store_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let a = Store::open(small_cfg(dir.path())).unwrap();
    a.session().upsert(b"k", b"v", Default::default()).unwrap();
    a.checkpoint(Vec::new()).unwrap();
    let held = a.clone();
    drop(a);
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let t0 = Instant::now();
    let b = Store::open(small_cfg(dir.path())).unwrap();
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(250),
        "opened beside a live store after {:?}",
        t0.elapsed()
    );
    assert_eq!(b.session().read(b"k").unwrap().unwrap().0, b"v");
    t.join().unwrap();
}
