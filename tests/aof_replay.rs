//! The AOF replays to the same state: every command family's logged
//! effect (absolute TTLs, INCRBYFLOAT, SWAPDB, FLUSHDB, expired keys,
//! transactions), checkpoint + AOF together without double application,
//! and BGREWRITEAOF deleting the covered files.
mod util;

use std::collections::BTreeMap;

use kvd_suite::KvdServer;
use util::*;

const AOF: &[&str] = kvd_suite::AOF_ALWAYS;

fn int_of(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn info_field(c: &mut Raw, field: &str) -> String {
    let text = c.call(&["INFO", "persistence"]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO: {text}"))
        .trim()
        .to_string()
}

/// Every key of dbs 0..4 with its value and absolute expiry (ms).
fn snapshot(c: &mut Raw) -> BTreeMap<(u8, String), (String, i64)> {
    let mut m = BTreeMap::new();
    for db in 0..4u8 {
        assert_eq!(c.call(&["SELECT", &db.to_string()]), ok());
        for k in c.call(&["KEYS", "*"]).sorted_texts() {
            let v = c.call(&["GET", &k]).text();
            let at = int_of(c.call(&["PEXPIRETIME", &k]));
            m.insert((db, k), (v, at));
        }
    }
    assert_eq!(c.call(&["SELECT", "0"]), ok());
    m
}

fn incr_files(s: &KvdServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.dir().join("appendonlydir"))
        .expect("appendonlydir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".incr.aof"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_command_family_replays_to_the_same_state() {
    let s = KvdServer::start(AOF);
    let mut c = Raw::new(&s);
    let cmds: &[&[&str]] = &[
        &["SET", "plain", "v"],
        &["SET", "ex", "v", "EX", "1000"],
        &["SET", "px", "v", "PX", "900000"],
        &["SET", "keep", "v1", "EX", "500"],
        &["SET", "keep", "v2", "KEEPTTL"],
        &["SETEX", "setex", "700", "v"],
        &["PSETEX", "psetex", "700000", "v"],
        &["SETNX", "setnx", "first"],
        &["SETNX", "setnx", "second"],
        &["SET", "nx", "a", "NX", "GET"],
        &["GETSET", "plain", "v2"],
        &["SET", "gd", "x"],
        &["GETDEL", "gd"],
        &["SET", "ge", "x"],
        &["GETEX", "ge", "EX", "800"],
        &["SET", "gp", "x", "EX", "100"],
        &["GETEX", "gp", "PERSIST"],
        &["INCR", "n"],
        &["INCRBY", "n", "41"],
        &["DECR", "n"],
        &["DECRBY", "n", "2"],
        &["INCRBYFLOAT", "f", "1.1"],
        &["INCRBYFLOAT", "f", "2.2"],
        &["SET", "fttl", "1", "EX", "600"],
        &["INCRBYFLOAT", "fttl", "0.5"],
        &["APPEND", "ap", "hello"],
        &["APPEND", "ap", " world"],
        &["SETRANGE", "sr", "5", "xy"],
        &["MSET", "m1", "1", "m2", "2"],
        &["MSETNX", "m3", "3", "m4", "4"],
        &["MSETNX", "m1", "x", "m9", "9"],
        &["SET", "e1", "v"],
        &["EXPIRE", "e1", "1000"],
        &["SET", "e2", "v"],
        &["PEXPIRE", "e2", "1000000"],
        &["SET", "e3", "v"],
        &["EXPIREAT", "e3", "4000000000"],
        &["SET", "past", "v"],
        &["EXPIREAT", "past", "1000"],
        &["SET", "pers", "v", "EX", "100"],
        &["PERSIST", "pers"],
        &["SET", "r1", "v", "EX", "1000"],
        &["RENAME", "r1", "r2"],
        &["SET", "rn", "v"],
        &["RENAMENX", "rn", "plain"],
        &["RENAMENX", "rn", "rn2"],
        &["COPY", "plain", "copied"],
        &["COPY", "plain", "copied3", "DB", "3"],
        &["SET", "mv", "v"],
        &["MOVE", "mv", "2"],
        &["SET", "del1", "v"],
        &["DEL", "del1", "nothere"],
        &["SET", "short", "v", "PX", "30"],
        &["SELECT", "1"],
        &["SET", "in1", "one"],
        &["MULTI"],
        &["INCR", "tx"],
        &["SET", "txs", "v", "EX", "900"],
        &["SELECT", "2"],
        &["SET", "tx2", "v"],
        &["EXEC"],
        &["SELECT", "3"],
        &["SET", "gone3", "v"],
        &["FLUSHDB"],
        &["SET", "after_flush", "v"],
        &["SELECT", "0"],
        &["SWAPDB", "1", "2"],
        &["MULTI"],
        &["SET", "tx_swap", "v"],
        &["SWAPDB", "2", "3"],
        &["INCR", "tx_swap_n"],
        &["EXEC"],
    ];
    for cmd in cmds {
        let r = c.call(cmd);
        assert!(!matches!(r, Reply::Error(_)), "{cmd:?} -> {r:?}");
    }
    // The short-lived key expires (lazily: read it) before the kill.
    assert!(eventually(10, || c.call(&["GET", "short"]) == nil()));
    let before = snapshot(&mut c);
    assert_eq!(before.get(&(0, "n".into())).unwrap().0, "39");
    assert!(!before.contains_key(&(0, "past".into())));
    assert!(before.get(&(0, "fttl".into())).unwrap().1 > 0);
    let s = s.restart();
    let mut c = Raw::new(&s);
    let after = snapshot(&mut c);
    assert_eq!(before, after);
    assert_eq!(c.call(&["GET", "short"]), nil());
    assert_ne!(info_field(&mut c, "kvd_aof_loaded_commands"), "0");
    assert_eq!(info_field(&mut c, "kvd_aof_load_errors"), "0");
}

#[test]
fn checkpoint_plus_aof_never_applies_twice() {
    let s = KvdServer::start(AOF);
    let mut c = Raw::new(&s);
    for _ in 0..50 {
        c.call(&["INCR", "n"]);
        c.call(&["APPEND", "a", "x"]);
    }
    assert_eq!(incr_files(&s).len(), 1);
    assert_eq!(c.call(&["SAVE"]), ok());
    // The rotation at the cut started a new file; the covered one is gone.
    assert_eq!(
        incr_files(&s),
        vec!["appendonly.aof.2.incr.aof".to_string()]
    );
    for _ in 0..30 {
        c.call(&["INCR", "n"]);
        c.call(&["APPEND", "a", "x"]);
    }
    assert_eq!(
        c.call(&["BGSAVE"]),
        Reply::Status("Background saving started".into())
    );
    assert!(eventually(60, || info_field(
        &mut c,
        "rdb_bgsave_in_progress"
    ) == "0"));
    for _ in 0..20 {
        c.call(&["INCR", "n"]);
        c.call(&["APPEND", "a", "x"]);
    }
    let s = s.restart(); // SIGKILL, then start
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "n"]), bulk("100"));
    assert_eq!(c.call(&["STRLEN", "a"]), int(100));
    // And once more without a checkpoint in between.
    c.call(&["INCR", "n"]);
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "n"]), bulk("101"));
}

#[test]
fn bgrewriteaof_removes_covered_files_and_state_survives() {
    let s = KvdServer::start(AOF);
    let mut c = Raw::new(&s);
    for i in 0..200 {
        c.call(&["SET", &format!("k{i}"), &i.to_string()]);
        c.call(&["INCR", "n"]);
    }
    let size_before: u64 = info_field(&mut c, "aof_current_size").parse().unwrap();
    assert!(size_before > 0);
    assert_eq!(
        c.call(&["BGREWRITEAOF"]),
        Reply::Status("Background append only file rewriting started".into())
    );
    assert!(eventually(60, || info_field(
        &mut c,
        "aof_rewrite_in_progress"
    ) == "0"));
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(info_field(&mut c, "aof_rewrites"), "1");
    assert_eq!(
        incr_files(&s),
        vec!["appendonly.aof.2.incr.aof".to_string()]
    );
    assert_ne!(info_field(&mut c, "aof_base_size"), "0");
    for _ in 0..5 {
        c.call(&["INCR", "n"]);
    }
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "n"]), bulk("205"));
    assert_eq!(c.call(&["GET", "k199"]), bulk("199"));
    assert_eq!(c.call(&["DBSIZE"]), int(201));
}

#[test]
fn graceful_shutdown_syncs_the_aof() {
    let mut s = KvdServer::start(&["--appendonly", "yes", "--appendfsync", "no", "--save", ""]);
    let mut c = Raw::new(&s);
    for _ in 0..10 {
        c.call(&["INCR", "n"]);
    }
    c.send(&["SHUTDOWN"]);
    assert!(s.wait_exit(std::time::Duration::from_secs(30)).success());
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "n"]), bulk("10"));
    assert!(matches!(
        c.call(&["CONFIG", "SET", "appendonly", "no"]),
        Reply::Error(e) if e.contains("runtime")
    ));
}
