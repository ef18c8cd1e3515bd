//! Generic keyspace commands and logical databases.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn del_exists_type_touch() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(c.call(&["EXISTS", "a", "b", "c", "a"]), int(3));
    assert_eq!(c.call(&["TOUCH", "a", "c"]), int(1));
    assert_eq!(c.call(&["TYPE", "a"]), Reply::Status("string".into()));
    assert_eq!(c.call(&["TYPE", "zz"]), Reply::Status("none".into()));
    assert_eq!(c.call(&["DEL", "a", "c"]), int(1));
    assert_eq!(c.call(&["UNLINK", "b", "a"]), int(1));
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(
        c.call(&["DEL"]),
        err("ERR wrong number of arguments for 'del' command")
    );
}

#[test]
fn keys_scan_randomkey() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("user:{i}"), "x"]), ok());
    }
    assert_eq!(c.call(&["SET", "other", "y"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(51));
    assert_eq!(c.call(&["KEYS", "user:*"]).items().len(), 50);
    assert_eq!(c.call(&["KEYS", "user:1?"]).items().len(), 10);
    assert_eq!(c.call(&["KEYS", "o[tu]her"]).sorted_texts(), vec!["other"]);
    assert_eq!(c.call(&["KEYS", "*"]).items().len(), 51);
    // SCAN visits every key exactly once
    let mut cursor = "0".to_string();
    let mut seen = std::collections::BTreeSet::new();
    let mut rounds = 0;
    loop {
        let r = c
            .call(&["SCAN", &cursor, "MATCH", "user:*", "COUNT", "7"])
            .items();
        cursor = r[0].text();
        for k in r[1].items() {
            assert!(seen.insert(k.text()), "duplicate {k:?}");
        }
        rounds += 1;
        if cursor == "0" {
            break;
        }
        assert!(rounds < 1000);
    }
    assert_eq!(seen.len(), 50);
    let r = c
        .call(&["SCAN", "0", "COUNT", "1000", "TYPE", "string"])
        .items();
    assert_eq!(r[1].items().len(), 51);
    let r = c
        .call(&["SCAN", "0", "COUNT", "1000", "TYPE", "list"])
        .items();
    assert_eq!(r[1].items().len(), 0);
    assert_eq!(c.call(&["SCAN", "abc"]), err("ERR invalid cursor"));
    assert_eq!(
        c.call(&["SCAN", "0", "COUNT", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(c.call(&["SCAN", "0", "FOO", "1"]), err("ERR syntax error"));
    let k = c.call(&["RANDOMKEY"]).text();
    assert!(k.starts_with("user:") || k == "other");
    assert_eq!(c.call(&["FLUSHDB"]), ok());
    assert_eq!(c.call(&["RANDOMKEY"]), nil());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
}

#[test]
fn rename_copy_move() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    assert_eq!(c.call(&["EXPIRE", "a", "100"]), int(1));
    assert_eq!(c.call(&["RENAME", "a", "b"]), ok());
    assert_eq!(c.call(&["GET", "a"]), nil());
    assert_eq!(c.call(&["GET", "b"]), bulk("1"));
    assert!(
        matches!(c.call(&["TTL", "b"]), Reply::Int(99..=100)),
        "RENAME keeps the TTL"
    );
    assert_eq!(c.call(&["RENAME", "nokey", "x"]), err("ERR no such key"));
    assert_eq!(c.call(&["RENAME", "b", "b"]), ok());
    assert_eq!(c.call(&["SET", "c", "3"]), ok());
    assert_eq!(c.call(&["RENAMENX", "b", "c"]), int(0));
    assert_eq!(c.call(&["RENAMENX", "b", "d"]), int(1));
    assert_eq!(c.call(&["COPY", "d", "e"]), int(1));
    assert_eq!(c.call(&["COPY", "d", "e"]), int(0));
    assert_eq!(c.call(&["COPY", "c", "e", "REPLACE"]), int(1));
    assert_eq!(c.call(&["GET", "e"]), bulk("3"));
    assert_eq!(
        c.call(&["COPY", "e", "e"]),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(c.call(&["COPY", "e", "e", "DB", "1"]), int(1));
    assert_eq!(
        c.call(&["COPY", "e", "x", "DB", "99"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(c.call(&["COPY", "nokey", "x"]), int(0));
    assert_eq!(c.call(&["MOVE", "c", "2"]), int(1));
    assert_eq!(c.call(&["EXISTS", "c"]), int(0));
    assert_eq!(c.call(&["MOVE", "c", "2"]), int(0));
    assert_eq!(
        c.call(&["MOVE", "e", "0"]),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(
        c.call(&["MOVE", "e", "16"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(c.call(&["SELECT", "2"]), ok());
    assert_eq!(c.call(&["GET", "c"]), bulk("3"));
    assert_eq!(c.call(&["SELECT", "1"]), ok());
    assert_eq!(c.call(&["GET", "e"]), bulk("3"));
}

#[test]
fn databases_select_flush_swap() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "k", "db0"]), ok());
    assert_eq!(c.call(&["SELECT", "1"]), ok());
    assert_eq!(c.call(&["GET", "k"]), nil());
    assert_eq!(c.call(&["SET", "k", "db1"]), ok());
    assert_eq!(c.call(&["SET", "only1", "x"]), ok());
    assert_eq!(
        c.call(&["SELECT", "16"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(
        c.call(&["SELECT", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.call(&["SWAPDB", "0", "1"]), ok());
    assert_eq!(c.call(&["GET", "k"]), bulk("db0"));
    assert_eq!(c.call(&["SELECT", "0"]), ok());
    assert_eq!(c.call(&["GET", "k"]), bulk("db1"));
    assert_eq!(c.call(&["DBSIZE"]), int(2));
    assert_eq!(
        c.call(&["SWAPDB", "0", "x"]),
        err("ERR invalid second DB index")
    );
    assert_eq!(
        c.call(&["SWAPDB", "x", "0"]),
        err("ERR invalid first DB index")
    );
    assert_eq!(
        c.call(&["SWAPDB", "0", "99"]),
        err("ERR DB index is out of range")
    );
    let info = c.call(&["INFO", "keyspace"]).text();
    assert!(info.contains("db0:keys=2,expires=0,avg_ttl=0"), "{info}");
    assert!(info.contains("db1:keys=1,expires=0,avg_ttl=0"), "{info}");
    assert_eq!(c.call(&["FLUSHDB"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(c.call(&["SELECT", "1"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(1));
    assert_eq!(c.call(&["FLUSHALL", "SYNC"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(c.call(&["FLUSHALL", "NOW"]), err("ERR syntax error"));
}

#[test]
fn databases_option_limits() {
    let s = KvdServer::start(&["--databases", "2"]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SELECT", "1"]), ok());
    assert_eq!(
        c.call(&["SELECT", "2"]),
        err("ERR DB index is out of range")
    );
}

#[test]
fn dbsize_and_expires_counts_are_exact() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    for i in 0..200 {
        // overwrite the same keys with and without TTLs, growing values
        c.send(&["SET", &format!("k{}", i % 20), &"v".repeat(i)]);
        c.send(&["SET", &format!("t{}", i % 10), "x", "EX", "1000"]);
        c.send(&["APPEND", &format!("k{}", i % 20), "tail"]);
    }
    for _ in 0..600 {
        assert!(!matches!(c.read(), Reply::Error(_)));
    }
    assert_eq!(c.call(&["DBSIZE"]), int(30));
    let ks = c.call(&["INFO", "keyspace"]).text();
    assert!(ks.contains("db0:keys=30,expires=10,"), "{ks}");
    assert_eq!(c.call(&["PERSIST", "t0"]), int(1));
    assert_eq!(c.call(&["EXPIRE", "k0", "100"]), int(1));
    assert_eq!(c.call(&["DEL", "t1", "k1", "nokey"]), int(2));
    assert_eq!(c.call(&["GETDEL", "t2"]), bulk("x"));
    assert_eq!(c.call(&["RENAME", "t3", "renamed"]), ok());
    assert_eq!(c.call(&["MOVE", "t4", "1"]), int(1));
    assert_eq!(c.call(&["DBSIZE"]), int(26));
    let ks = c.call(&["INFO", "keyspace"]).text();
    assert!(ks.contains("db0:keys=26,expires=7,"), "{ks}");
    assert!(ks.contains("db1:keys=1,expires=1,"), "{ks}");
    assert_eq!(c.call(&["SET", "gone", "x", "PX", "20"]), ok());
    assert!(eventually(20, || c.call(&["DBSIZE"]) == int(26)));
    assert_eq!(c.call(&["FLUSHDB"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(0));
    assert_eq!(c.call(&["CONFIG", "SET", "loglevel", "debug"]), ok());
}
