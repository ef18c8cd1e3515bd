//! String commands against a real kvd: replies and error texts as Redis 7.0.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn set_get_and_options() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    assert_eq!(c.call(&["GET", "k"]), bulk("v"));
    assert_eq!(c.call(&["GET", "missing"]), nil());
    assert_eq!(c.call(&["SET", "k", "v2", "NX"]), nil());
    assert_eq!(c.call(&["SET", "k", "v2", "XX"]), ok());
    assert_eq!(c.call(&["SET", "new", "x", "XX"]), nil());
    assert_eq!(c.call(&["GET", "new"]), nil());
    assert_eq!(c.call(&["SET", "k", "v3", "GET"]), bulk("v2"));
    assert_eq!(c.call(&["SET", "nokey", "v", "GET"]), nil());
    assert_eq!(
        c.call(&["SET", "k", "v", "NX", "XX"]),
        err("ERR syntax error")
    );
    assert_eq!(
        c.call(&["SET", "k", "v", "EX", "10", "PX", "100"]),
        err("ERR syntax error")
    );
    assert_eq!(c.call(&["SET", "k", "v", "EX"]), err("ERR syntax error"));
    assert_eq!(c.call(&["SET", "k", "v", "BOGUS"]), err("ERR syntax error"));
    assert_eq!(
        c.call(&["SET", "k", "v", "EX", "0"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c.call(&["SET", "k", "v", "EX", "-5"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        c.call(&["SET", "k", "v", "EX", "abc"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.call(&["SET", "k", "v", "EX", "100"]), ok());
    let ttl = c.call(&["TTL", "k"]);
    assert!(
        matches!(ttl, Reply::Int(t) if (99..=100).contains(&t)),
        "{ttl:?}"
    );
    assert_eq!(c.call(&["SET", "k", "w", "KEEPTTL"]), ok());
    assert!(matches!(c.call(&["TTL", "k"]), Reply::Int(t) if t > 0));
    assert_eq!(c.call(&["SET", "k", "w"]), ok());
    assert_eq!(c.call(&["TTL", "k"]), int(-1));
    assert_eq!(c.call(&["SET", "k", "v", "PXAT", "99999999999999"]), ok());
    assert_eq!(c.call(&["PEXPIRETIME", "k"]), int(99999999999999));
    assert_eq!(
        c.call(&["SET", "k"]),
        err("ERR wrong number of arguments for 'set' command")
    );
    assert_eq!(
        c.call(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
}

#[test]
fn setnx_setex_getset_getdel_getex() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SETNX", "a", "1"]), int(1));
    assert_eq!(c.call(&["SETNX", "a", "2"]), int(0));
    assert_eq!(c.call(&["GET", "a"]), bulk("1"));
    assert_eq!(c.call(&["SETEX", "b", "100", "x"]), ok());
    assert!(matches!(c.call(&["TTL", "b"]), Reply::Int(99..=100)));
    assert_eq!(
        c.call(&["SETEX", "b", "0", "x"]),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(
        c.call(&["PSETEX", "b", "-1", "x"]),
        err("ERR invalid expire time in 'psetex' command")
    );
    assert_eq!(c.call(&["PSETEX", "c", "100000", "y"]), ok());
    assert!(matches!(c.call(&["PTTL", "c"]), Reply::Int(t) if t > 90000 && t <= 100000));
    assert_eq!(c.call(&["GETSET", "a", "9"]), bulk("1"));
    assert_eq!(c.call(&["GETSET", "zz", "9"]), nil());
    assert_eq!(c.call(&["GETSET", "b", "nottl"]), bulk("x"));
    assert_eq!(c.call(&["TTL", "b"]), int(-1));
    assert_eq!(c.call(&["GETDEL", "a"]), bulk("9"));
    assert_eq!(c.call(&["GETDEL", "a"]), nil());
    assert_eq!(c.call(&["EXISTS", "a"]), int(0));
    assert_eq!(c.call(&["SET", "g", "v"]), ok());
    assert_eq!(c.call(&["GETEX", "g"]), bulk("v"));
    assert_eq!(c.call(&["GETEX", "g", "EX", "100"]), bulk("v"));
    assert!(matches!(c.call(&["TTL", "g"]), Reply::Int(99..=100)));
    assert_eq!(c.call(&["GETEX", "g", "PERSIST"]), bulk("v"));
    assert_eq!(c.call(&["TTL", "g"]), int(-1));
    assert_eq!(
        c.call(&["GETEX", "g", "EX", "0"]),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(
        c.call(&["GETEX", "g", "EX", "1", "PX", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(c.call(&["GETEX", "nope", "EX", "10"]), nil());
}

#[test]
fn mget_mset_msetnx() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(
        c.call(&["MGET", "a", "b", "c"]),
        Reply::Array(Some(vec![bulk("1"), bulk("2"), nil()]))
    );
    assert_eq!(
        c.call(&["MSET", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(c.call(&["MSETNX", "a", "x", "c", "3"]), int(0));
    assert_eq!(c.call(&["EXISTS", "c"]), int(0));
    assert_eq!(c.call(&["MSETNX", "c", "3", "d", "4"]), int(1));
    assert_eq!(c.call(&["MGET", "c", "d"]), bulks(&["3", "4"]));
}

#[test]
fn append_strlen_ranges() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["APPEND", "s", "Hello"]), int(5));
    assert_eq!(c.call(&["APPEND", "s", " World"]), int(11));
    assert_eq!(c.call(&["GET", "s"]), bulk("Hello World"));
    assert_eq!(c.call(&["STRLEN", "s"]), int(11));
    assert_eq!(c.call(&["STRLEN", "none"]), int(0));
    assert_eq!(c.call(&["SET", "m", "This is a string"]), ok());
    assert_eq!(c.call(&["GETRANGE", "m", "0", "3"]), bulk("This"));
    assert_eq!(c.call(&["GETRANGE", "m", "-3", "-1"]), bulk("ing"));
    assert_eq!(
        c.call(&["GETRANGE", "m", "0", "-1"]),
        bulk("This is a string")
    );
    assert_eq!(c.call(&["GETRANGE", "m", "10", "100"]), bulk("string"));
    assert_eq!(c.call(&["GETRANGE", "m", "5", "3"]), bulk(""));
    assert_eq!(c.call(&["GETRANGE", "none", "0", "3"]), bulk(""));
    assert_eq!(c.call(&["SET", "k1", "Hello World"]), ok());
    assert_eq!(c.call(&["SETRANGE", "k1", "6", "Redis"]), int(11));
    assert_eq!(c.call(&["GET", "k1"]), bulk("Hello Redis"));
    assert_eq!(c.call(&["SETRANGE", "k2", "6", "Redis"]), int(11));
    assert_eq!(
        c.call(&["GET", "k2"]),
        Reply::Bulk(Some(b"\0\0\0\0\0\0Redis".to_vec()))
    );
    assert_eq!(c.call(&["SETRANGE", "k3", "0", ""]), int(0));
    assert_eq!(c.call(&["EXISTS", "k3"]), int(0));
    assert_eq!(
        c.call(&["SETRANGE", "k1", "-1", "x"]),
        err("ERR offset is out of range")
    );
    assert_eq!(
        c.call(&["SETRANGE", "k1", "536870911", "xx"]),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
}

#[test]
fn counters() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["INCR", "n"]), int(1));
    assert_eq!(c.call(&["INCRBY", "n", "10"]), int(11));
    assert_eq!(c.call(&["DECR", "n"]), int(10));
    assert_eq!(c.call(&["DECRBY", "n", "20"]), int(-10));
    assert_eq!(c.call(&["GET", "n"]), bulk("-10"));
    // grow past the in-place slack many times
    for _ in 0..1000 {
        c.send(&["INCR", "big"]);
    }
    for i in 1..=1000 {
        assert_eq!(c.read(), int(i));
    }
    assert_eq!(c.call(&["SET", "s", "abc"]), ok());
    assert_eq!(
        c.call(&["INCR", "s"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.call(&["SET", "s", " 1"]), ok());
    assert_eq!(
        c.call(&["INCR", "s"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["INCRBY", "n", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.call(&["SET", "max", "9223372036854775807"]), ok());
    assert_eq!(
        c.call(&["INCR", "max"]),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        c.call(&["DECRBY", "n", "-9223372036854775808"]),
        err("ERR decrement would overflow")
    );
    assert_eq!(c.call(&["SET", "f", "10.50"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
    assert_eq!(c.call(&["SET", "f", "5.0e3"]), ok());
    assert_eq!(c.call(&["INCRBYFLOAT", "f", "2.0e2"]), bulk("5200"));
    assert_eq!(
        c.call(&["INCRBYFLOAT", "f", "abc"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        c.call(&["INCRBYFLOAT", "s", "1"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(c.call(&["SET", "t", "5"]), ok());
    assert_eq!(c.call(&["EXPIRE", "t", "100"]), int(1));
    assert_eq!(c.call(&["INCR", "t"]), int(6));
    assert!(
        matches!(c.call(&["TTL", "t"]), Reply::Int(99..=100)),
        "INCR keeps the TTL"
    );
}

#[test]
fn lcs() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(
        c.call(&["MSET", "key1", "ohmytext", "key2", "mynewtext"]),
        ok()
    );
    assert_eq!(c.call(&["LCS", "key1", "key2"]), bulk("mytext"));
    assert_eq!(c.call(&["LCS", "key1", "key2", "LEN"]), int(6));
    let idx = c.call(&["LCS", "key1", "key2", "IDX"]);
    let expect = Reply::Array(Some(vec![
        bulk("matches"),
        Reply::Array(Some(vec![
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![int(4), int(7)])),
                Reply::Array(Some(vec![int(5), int(8)])),
            ])),
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![int(2), int(3)])),
                Reply::Array(Some(vec![int(0), int(1)])),
            ])),
        ])),
        bulk("len"),
        int(6),
    ]));
    assert_eq!(idx, expect);
    let idx = c.call(&[
        "LCS",
        "key1",
        "key2",
        "IDX",
        "MINMATCHLEN",
        "4",
        "WITHMATCHLEN",
    ]);
    let expect = Reply::Array(Some(vec![
        bulk("matches"),
        Reply::Array(Some(vec![Reply::Array(Some(vec![
            Reply::Array(Some(vec![int(4), int(7)])),
            Reply::Array(Some(vec![int(5), int(8)])),
            int(4),
        ]))])),
        bulk("len"),
        int(6),
    ]));
    assert_eq!(idx, expect);
    assert_eq!(
        c.call(&["LCS", "key1", "key2", "LEN", "IDX"]),
        err("ERR If you want both the length and indexes, please just use IDX.")
    );
    assert_eq!(c.call(&["LCS", "key1", "nokey"]), bulk(""));
}

#[test]
fn binary_and_large_values() {
    let s = KvdServer::start(&[]);
    let mut con = s.conn();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big[..])
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert_eq!(got, big);
    let bin = b"a\r\nb\0c".to_vec();
    let _: () = redis::cmd("SET")
        .arg(&bin[..])
        .arg(&bin[..])
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg(&bin[..]).query(&mut con).unwrap();
    assert_eq!(got, bin);
}
