//! Expiry: EXPIRE family options, TTL replies, lazy and active expiry.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn expire_options_and_ttls() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["TTL", "none"]), int(-2));
    assert_eq!(c.call(&["PTTL", "none"]), int(-2));
    assert_eq!(c.call(&["EXPIRETIME", "none"]), int(-2));
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    assert_eq!(c.call(&["TTL", "k"]), int(-1));
    assert_eq!(c.call(&["PEXPIRETIME", "k"]), int(-1));
    assert_eq!(c.call(&["EXPIRE", "none", "10"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "k", "100", "XX"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "k", "100", "NX"]), int(1));
    assert_eq!(c.call(&["EXPIRE", "k", "200", "NX"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "k", "50", "GT"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "k", "200", "GT"]), int(1));
    assert_eq!(c.call(&["EXPIRE", "k", "300", "LT"]), int(0));
    assert_eq!(c.call(&["EXPIRE", "k", "150", "LT"]), int(1));
    assert!(matches!(c.call(&["TTL", "k"]), Reply::Int(149..=150)));
    assert_eq!(c.call(&["EXPIREAT", "k", "33177117420"]), int(1));
    assert_eq!(c.call(&["EXPIRETIME", "k"]), int(33177117420));
    assert_eq!(c.call(&["PEXPIREAT", "k", "33177117420000"]), int(1));
    assert_eq!(c.call(&["PEXPIRETIME", "k"]), int(33177117420000));
    assert_eq!(c.call(&["PERSIST", "k"]), int(1));
    assert_eq!(c.call(&["PERSIST", "k"]), int(0));
    assert_eq!(
        c.call(&["EXPIRE", "k", "10", "GT"]),
        int(0),
        "GT on a key without TTL"
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "10", "LT"]),
        int(1),
        "LT on a key without TTL"
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "10", "NX", "XX"]),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "10", "GT", "LT"]),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "10", "FOO"]),
        err("ERR Unsupported option FOO")
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["EXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        c.call(&["PEXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'pexpire' command")
    );
    // a time in the past deletes the key
    assert_eq!(c.call(&["EXPIRE", "k", "-1"]), int(1));
    assert_eq!(c.call(&["EXISTS", "k"]), int(0));
}

#[test]
fn lazy_expiry_hides_keys() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    // `n` first: once `k` (set later, same TTL) is gone, `n` has expired too.
    assert_eq!(c.call(&["SET", "n", "5", "PX", "50"]), ok());
    assert_eq!(c.call(&["SET", "k", "v", "PX", "50"]), ok());
    assert!(eventually(20, || c.call(&["GET", "k"]) == nil()));
    assert_eq!(c.call(&["TTL", "k"]), int(-2));
    assert_eq!(c.call(&["EXISTS", "k"]), int(0));
    // an expired counter starts again from 0, without a TTL
    assert_eq!(c.call(&["INCR", "n"]), int(1));
    assert_eq!(c.call(&["TTL", "n"]), int(-1));
    assert_eq!(c.call(&["SET", "a", "v", "PX", "50"]), ok());
    assert!(eventually(20, || c.call(&["APPEND", "a", "x"]) == int(1)));
}

#[test]
fn active_expiry_removes_untouched_keys() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    for i in 0..100 {
        c.send(&["SET", &format!("k{i}"), "v", "PX", "30"]);
    }
    for _ in 0..100 {
        assert_eq!(c.read(), ok());
    }
    assert_eq!(c.call(&["SET", "keep", "v"]), ok());
    // no access to the keys: only the active cycle can count them as expired
    let expired = || {
        let mut c = Raw::new(&s);
        let info = c.call(&["INFO", "stats"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix("expired_keys:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        eventually(30, || expired() >= 100),
        "expired_keys = {}",
        expired()
    );
    assert_eq!(c.call(&["DBSIZE"]), int(1));
}
