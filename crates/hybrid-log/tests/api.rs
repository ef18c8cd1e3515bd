//! Public API behaviour: configuration errors, limits, key locks, stats, thread-safety
//! markers, and that `open` starts from an empty log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hybrid_log::{RecordMeta, Session, Store, StoreConfig, StoreError};

fn small(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.page_bits = 12;
    cfg.memory_budget = 4 << 12;
    cfg.index_buckets = 16;
    cfg
}

#[test]
fn thread_safety_markers() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Session>();
    send_sync::<Store>();
    send_sync::<StoreConfig>();
}

#[test]
fn bad_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(dir.path());
    cfg.memory_budget = 4096; // one page
    assert!(matches!(Store::open(cfg), Err(StoreError::Config(_))));
    let mut cfg = small(dir.path());
    cfg.page_bits = 40;
    assert!(matches!(Store::open(cfg), Err(StoreError::Config(_))));
    let mut cfg = small(dir.path());
    cfg.mutable_fraction = 0.0;
    assert!(matches!(Store::open(cfg), Err(StoreError::Config(_))));
}

#[test]
fn record_larger_than_a_page_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    let big = vec![7u8; 5000];
    assert!(matches!(
        s.upsert(b"k", &big, RecordMeta::default()),
        Err(StoreError::RecordTooLarge { .. })
    ));
    // The largest value that fits still works, and the store keeps going.
    let fits = vec![7u8; 4096 - 32 - 1 - 8];
    s.upsert(b"k", &fits, RecordMeta::default()).unwrap();
    assert_eq!(s.read(b"k").unwrap().unwrap().0, fits);
    s.upsert(b"j", b"v", RecordMeta::default()).unwrap();
    assert_eq!(s.read(b"j").unwrap().unwrap().0, b"v");
}

#[test]
fn open_starts_empty_and_removes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(small(dir.path())).unwrap();
        let mut s = store.session();
        for i in 0..2000 {
            s.upsert(
                format!("k{i}").as_bytes(),
                &[1u8; 50],
                RecordMeta::default(),
            )
            .unwrap();
        }
        assert!(store.stats().disk_bytes > 0);
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().count() > 0);
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    assert!(s.read(b"k1").unwrap().is_none());
    assert_eq!(store.stats().disk_bytes, 0);
}

#[test]
fn key_locks_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let held = Arc::new(AtomicBool::new(false));
    let locks = store.lock_keys(&[b"a", b"b", b"a"], true);
    held.store(true, Ordering::SeqCst);
    let t = {
        let store = store.clone();
        let held = held.clone();
        std::thread::spawn(move || {
            let _l = store.lock_keys(&[b"b"], false);
            assert!(
                !held.load(Ordering::SeqCst),
                "shared lock granted while exclusive held"
            );
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    held.store(false, Ordering::SeqCst);
    drop(locks);
    t.join().unwrap();
}

#[test]
fn stats_and_meta_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    let meta = RecordMeta {
        expire_at_ms: 1_700_000_000_123,
        value_type: 5,
    };
    s.upsert(b"key", b"value", meta).unwrap();
    assert_eq!(s.read(b"key").unwrap(), Some((b"value".to_vec(), meta)));
    assert_eq!(
        s.read_with(b"key", |v, m| (v.len(), m.value_type)).unwrap(),
        Some((5, 5))
    );
    assert!(s.delete_existing(b"key").unwrap());
    assert!(!s.delete_existing(b"key").unwrap());
    let st = store.stats();
    assert_eq!(st.page_size, 4096);
    assert_eq!(st.frames, 4);
    assert_eq!(st.log_memory_bytes, 4 * 4096);
    assert!(st.tail > st.begin && st.records_appended >= 1);
}

#[test]
fn pinned_batch_and_session_moves_between_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    {
        let mut p = s.pin();
        for i in 0..100 {
            p.upsert(format!("k{i}").as_bytes(), b"v", RecordMeta::default())
                .unwrap();
            if i % 10 == 9 {
                p.refresh();
            }
        }
    }
    // A session is Send: use it on another thread, then back here.
    let mut s = std::thread::spawn(move || {
        assert_eq!(s.read(b"k5").unwrap().unwrap().0, b"v");
        s
    })
    .join()
    .unwrap();
    assert_eq!(s.read(b"k99").unwrap().unwrap().0, b"v");
}

/// Multi-key lock holders keep writing while other threads make the index grow: no deadlock
/// between bucket latches and the resize, and the index still grows.
#[test]
fn key_locks_during_index_growth() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(dir.path());
    cfg.index_buckets = 8;
    cfg.memory_budget = 16 << 12;
    let store = Store::open(cfg).unwrap();
    let hs: Vec<_> = (0..3)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                for i in 0..6000u32 {
                    if t == 0 {
                        let (a, b) = (format!("a{}", i % 50), format!("b{}", i % 50));
                        let _l = store.lock_keys(&[a.as_bytes(), b.as_bytes()], true);
                        s.upsert(a.as_bytes(), &i.to_le_bytes(), RecordMeta::default())
                            .unwrap();
                        s.upsert(b.as_bytes(), &i.to_le_bytes(), RecordMeta::default())
                            .unwrap();
                    } else {
                        s.upsert(
                            format!("t{t}:{i}").as_bytes(),
                            b"value",
                            RecordMeta::default(),
                        )
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(store.stats().index_buckets > 8);
}

#[test]
fn clear_all_removes_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    for i in 0..500 {
        s.upsert(format!("k{i}").as_bytes(), b"v", RecordMeta::default())
            .unwrap();
    }
    s.clear_all();
    assert!(s.read(b"k1").unwrap().is_none());
    let mut n = 0;
    let mut cursor = 0;
    loop {
        cursor = s.scan(cursor, 50, |_, _, _| n += 1).unwrap();
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(n, 0);
    s.upsert(b"k1", b"again", RecordMeta::default()).unwrap();
    assert_eq!(s.read(b"k1").unwrap().unwrap().0, b"again");
}

/// A scan cursor that the store did not hand out (a client typing `SCAN 77`) is refused
/// instead of being read as a record boundary; cursors the store returned keep working.
#[test]
fn forged_scan_cursors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(small(dir.path())).unwrap();
    let mut s = store.session();
    // 16 pages' worth through a 4-page budget: the scan crosses disk and memory.
    let n = 2000u32;
    for i in 0..n {
        let key = format!("key:{i}");
        s.upsert(key.as_bytes(), &[7u8; 24], RecordMeta::default())
            .unwrap();
    }
    let tail = store.stats().tail;
    let mut refused = 0u64;
    for forged in (1..tail).step_by(3) {
        match s.scan(forged, 10, |_, _, _| {
            panic!("a forged cursor must not visit records")
        }) {
            Err(StoreError::InvalidCursor(c)) => {
                assert_eq!(c, forged);
                refused += 1;
            }
            other => panic!("forged cursor {forged} was accepted: {other:?}"),
        }
    }
    assert!(refused > 1000, "too few cursors tried: {refused}");

    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    loop {
        cursor = s
            .scan(cursor, 50, |k, _, _| {
                seen.insert(k.to_vec());
            })
            .unwrap();
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), n as usize);
}

/// The index doubles on a background thread (`index_grow_background_from`) while writers
/// insert and overwrite and readers check: no key is lost or misread during or after
/// the doublings, and the index ends up grown.
#[test]
fn background_index_growth_keeps_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(dir.path());
    cfg.index_buckets = 8;
    cfg.index_grow_background_from = 8;
    cfg.memory_budget = 64 << 20;
    let store = Store::open(cfg).unwrap();
    const PER: u32 = 20_000;
    let writers: Vec<_> = (0..2u32)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut s = store.session();
                for i in 0..PER {
                    let k = format!("w{t}:{i}");
                    s.upsert(k.as_bytes(), &i.to_le_bytes(), RecordMeta::default())
                        .unwrap();
                    // Overwrite an earlier key and read back a recent one: both must be
                    // found whatever the index is doing.
                    if i >= 100 {
                        let j = i - 100;
                        let old = format!("w{t}:{j}");
                        s.upsert(
                            old.as_bytes(),
                            &(j + 1).to_le_bytes(),
                            RecordMeta::default(),
                        )
                        .unwrap();
                        let back = s.read(old.as_bytes()).unwrap().expect("key lost").0;
                        assert_eq!(back, (j + 1).to_le_bytes(), "{old}");
                    }
                }
            })
        })
        .collect();
    for h in writers {
        h.join().unwrap();
    }
    // The last doubling may still be running: wait for it (bounded), then check all.
    let t0 = std::time::Instant::now();
    while store.stats().index_buckets * 4 < 2 * PER as u64 && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        store.stats().index_buckets >= 1 << 12,
        "{:?}",
        store.stats()
    );
    let mut s = store.session();
    for t in 0..2u32 {
        for i in 0..PER {
            let k = format!("w{t}:{i}");
            let want = if i + 100 < PER { i + 1 } else { i };
            let got = s.read(k.as_bytes()).unwrap().expect("key lost").0;
            assert_eq!(got, want.to_le_bytes(), "{k}");
        }
    }
}
