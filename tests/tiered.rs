//! Two-tier store (issue 10, decision 008) through the real binary: with `--tiered yes` and
//! a 16 MB hot budget, most keys move to the cold tier; they stay readable, updatable and
//! deletable, DBSIZE and SCAN agree, INFO reports both tiers, and everything comes back
//! after a checkpoint + AOF restart and after a SIGKILL in the middle of migration.

use std::time::{Duration, Instant};

use kvd_suite::{info_u64, KvdServer, AOF_ALWAYS};

const HOT: &[&str] = &["--tiered", "yes", "--maxmemory", "16mb"];

fn scan_count(c: &mut redis::Connection) -> u64 {
    let mut keys = std::collections::HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(c)
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys.len() as u64;
        }
    }
}

fn value(i: u64) -> String {
    format!("{i:0>100}")
}

/// Writes `n` keys `k<i>` with 100-byte values in pipelines of 1000.
fn load(c: &mut redis::Connection, from: u64, n: u64) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for &i in chunk {
            p.cmd("SET").arg(format!("k{i}")).arg(value(i)).ignore();
        }
        p.query::<()>(c).unwrap();
    }
}

fn wait_migrated(c: &mut redis::Connection, at_least: u64) {
    let t0 = Instant::now();
    while info_u64(c, "tier_migrated_records") < at_least {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no migration after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every key of `0..n` reads as expected: counters `n<i>` (i < 1000) hold `i + 1` after
/// one INCRBY, keys below `deleted` are gone, the rest hold their value.
fn check_all(c: &mut redis::Connection, n: u64, deleted: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(c).unwrap();
        for (&i, v) in chunk.iter().zip(got) {
            if i < deleted {
                assert_eq!(v, None, "k{i} was deleted");
            } else {
                assert_eq!(v.as_deref(), Some(value(i).as_str()), "k{i}");
            }
        }
    }
    for i in (0..1000).step_by(97) {
        let v: i64 = redis::cmd("GET").arg(format!("n{i}")).query(c).unwrap();
        assert_eq!(v, i as i64 + 1, "counter n{i}");
    }
}

#[test]
fn keys_move_cold_and_stay_readable_updatable_and_durable() {
    const N: u64 = 200_000;
    let mut args = HOT.to_vec();
    args.extend([
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ]);
    let kvd = KvdServer::start(&args);
    let mut c = kvd.conn();
    // Counters first, so that they are among the first to go cold.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("n{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    load(&mut c, 0, N);
    wait_migrated(&mut c, 30_000);
    // Updates of cold keys: INCRBY (RMW from the cold tier), DEL.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("INCRBY").arg(format!("n{i}")).arg(1).ignore();
    }
    for i in 0..2000 {
        p.cmd("DEL").arg(format!("k{i}")).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    check_all(&mut c, N, 2000);
    let keys = N - 2000 + 1000;
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, keys);
    assert_eq!(scan_count(&mut c), keys);
    let hot = info_u64(&mut c, "tier_hot_keys");
    let cold = info_u64(&mut c, "tier_cold_keys");
    // The 16 MB hot tier holds ~110k of these records: the rest is cold.
    assert!(hot < keys * 2 / 3, "hot keys {hot} of {keys}");
    assert!(cold > keys / 3, "cold keys {cold} of {keys}");
    assert!(info_u64(&mut c, "tier_cold_hits") > 0);
    assert_eq!(info_u64(&mut c, "tier_enabled"), 1);
    // A checkpoint, more writes (only in the AOF), then a restart.
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    load(&mut c, N, 20_000);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut c)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // everysec
    drop(c);
    let kvd = kvd.restart();
    let mut c = kvd.conn();
    check_all(&mut c, N + 20_000, 2000);
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, keys + 20_000 + 1);
    // FLUSHALL empties both tiers, also across a restart.
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("k5000").query(&mut c).unwrap();
    assert_eq!(v, None);
    assert_eq!(scan_count(&mut c), 0);
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    drop(c);
    let kvd = kvd.restart();
    let mut c = kvd.conn();
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, 0);
    let v: Option<String> = redis::cmd("GET").arg("k7").query(&mut c).unwrap();
    assert_eq!(v, None);
}

#[test]
fn sigkill_during_migration_loses_no_acknowledged_write() {
    let mut args = HOT.to_vec();
    args.extend_from_slice(AOF_ALWAYS);
    let kvd = KvdServer::start(&args);
    let mut c = kvd.conn();
    load(&mut c, 0, 150_000);
    wait_migrated(&mut c, 1);
    // Counters updated while migration runs, then a SIGKILL mid-stream.
    let mut acked = 0u64;
    let writer = kvd.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let filler = std::thread::spawn(move || {
        let mut c = writer.get_connection().unwrap();
        let mut i = 150_000u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut p = redis::pipe();
            for j in i..i + 500 {
                p.cmd("SET").arg(format!("k{j}")).arg(value(j)).ignore();
            }
            if p.query::<()>(&mut c).is_err() {
                break;
            }
            i += 500;
        }
        i
    });
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let _: i64 = redis::cmd("INCR").arg("counter").query(&mut c).unwrap();
        acked += 1;
    }
    let migrated = info_u64(&mut c, "tier_migrated_records");
    let mut kvd = kvd;
    kvd.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = filler.join().unwrap();
    let kvd = kvd.restart();
    let mut c = kvd.conn();
    let v: u64 = redis::cmd("GET").arg("counter").query(&mut c).unwrap();
    assert_eq!(v, acked, "the counter holds every acknowledged INCR");
    // Every acknowledged filler batch is there (`written` stops before an unacknowledged one).
    check_all_prefix(&mut c, written);
    assert!(migrated > 0);
}

fn check_all_prefix(c: &mut redis::Connection, n: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(c).unwrap();
        for (&i, v) in chunk.iter().zip(got) {
            assert_eq!(v.as_deref(), Some(value(i).as_str()), "k{i}");
        }
    }
}
