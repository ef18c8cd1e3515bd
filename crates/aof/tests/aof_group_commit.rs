//! `always`: concurrent submitters share fsyncs and every acknowledged entry
//! is in the file. `everysec`/`no`: submitters are released after the write,
//! before any fsync, and a clean close leaves everything in the file.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aof::{Aof, FsyncPolicy};
use common::{cfg, flat, load};

#[test]
fn always_group_commits_concurrent_submitters() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let aof = aof.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let key = format!("t{t}:{i}");
                    aof.append(t % 4, &["SET", key.as_str(), "v"])
                        .unwrap()
                        .wait()
                        .unwrap();
                    // Acknowledged only now, after the batch's fsync.
                    acked.lock().unwrap().insert((t % 4, key));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = aof.stats();
    drop(aof); // no explicit close: what was acknowledged is already synced
    assert_eq!(stats.submissions, 16 * 60);
    assert!(
        stats.batches < stats.submissions,
        "no batch held more than one entry: {stats:?}"
    );
    assert!(stats.fsyncs < stats.submissions, "{stats:?}");
    assert_eq!(stats.fsyncs, stats.batches, "always: one fsync per batch");

    let found: HashSet<(u32, String)> = flat(&load(&cfg, None).unwrap())
        .into_iter()
        .map(|(db, a)| (db, String::from_utf8(a[1].clone()).unwrap()))
        .collect();
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), 16 * 60);
    assert!(acked.is_subset(&found));
    eprintln!(
        "always: {} entries, {} batches, {} fsyncs (avg batch {:.1})",
        stats.submissions,
        stats.batches,
        stats.fsyncs,
        stats.submissions as f64 / stats.batches as f64
    );
}

/// After a concurrent burst the writer gathers each batch until as many
/// submitters as last time came back or a quiet gap passes: a submitter
/// left alone is released by the gap, never held for good.
#[test]
fn always_releases_a_lone_submitter_after_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let burst: Vec<_> = (0..8)
        .map(|t| {
            let aof = aof.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..20 {
                    let key = format!("b{t}:{i}");
                    aof.append(0, &["SET", key.as_str(), "v"])
                        .unwrap()
                        .wait()
                        .unwrap();
                }
            })
        })
        .collect();
    for t in burst {
        t.join().unwrap();
    }
    for i in 0..30 {
        let key = format!("lone:{i}");
        aof.append(0, &["SET", key.as_str(), "v"])
            .unwrap()
            .wait()
            .unwrap();
    }
    let stats = aof.stats();
    assert_eq!(stats.submissions, 8 * 20 + 30);
    assert_eq!(stats.fsyncs, stats.batches, "always: one fsync per batch");
    drop(aof);
    let keys: HashSet<String> = flat(&load(&cfg, None).unwrap())
        .into_iter()
        .map(|(_, a)| String::from_utf8(a[1].clone()).unwrap())
        .collect();
    assert_eq!(keys.len(), 8 * 20 + 30);
    assert!((0..30).all(|i| keys.contains(&format!("lone:{i}"))));
}

#[test]
fn no_releases_without_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    for i in 0..200 {
        aof.append(0, &["INCR", &format!("k{i}")])
            .unwrap()
            .wait()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    let stats = aof.stats();
    assert_eq!(stats.fsyncs, 0, "`no` never fsyncs on its own: {stats:?}");
    assert_eq!(stats.batches, 200);
    aof.sync().wait().unwrap();
    assert_eq!(aof.stats().fsyncs, 1);
    aof.close().unwrap();
    assert_eq!(load(&cfg, None).unwrap().len(), 200);
}

#[test]
fn everysec_releases_before_fsync_and_syncs_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::EverySec);
    let opened = Instant::now();
    let aof = Aof::open(cfg.clone()).unwrap();
    for i in 0..200 {
        aof.append(0, &["INCR", &format!("k{i}")])
            .unwrap()
            .wait()
            .unwrap();
    }
    if opened.elapsed() < Duration::from_millis(900) {
        // All 200 were released, and none of them waited for an fsync.
        assert_eq!(aof.stats().fsyncs, 0, "{:?}", aof.stats());
    }
    // The timer fsyncs unsynced data about a second after the last fsync.
    let deadline = Instant::now() + Duration::from_secs(3);
    while aof.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "everysec never fsynced");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(aof.stats().fsyncs, 1);
    // Nothing unsynced: the timer stays quiet.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(aof.stats().fsyncs, 1);
    aof.append(0, &["INCR", "last"]).unwrap().wait().unwrap();
    aof.close().unwrap();
    assert_eq!(load(&cfg, None).unwrap().len(), 201);
}
