//! Malformed and oversized input is answered like Redis (protocol error,
//! then close) and the server stays up.
mod util;

use std::io::Write;

use kvd_suite::KvdServer;
use util::*;

fn proto_err(s: &KvdServer, input: &[u8], expect: &str) {
    let mut c = Raw::new(s);
    c.send_bytes(input);
    assert_eq!(
        c.read(),
        err(expect),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    assert!(
        c.is_closed(),
        "connection must close after a protocol error"
    );
}

#[test]
fn malformed_frames() {
    let s = KvdServer::start(&[]);
    proto_err(
        &s,
        b"*1\r\n$abc\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    proto_err(
        &s,
        b"*1\r\n$-5\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    proto_err(
        &s,
        b"*abc\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    proto_err(
        &s,
        b"*99999999999\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    proto_err(
        &s,
        b"*2\r\n+foo\r\n",
        "ERR Protocol error: expected '$', got '+'",
    );
    proto_err(
        &s,
        b"SET \"a\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    );
    proto_err(
        &s,
        b"*1\r\n$600000000\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    // commands before the bad frame in the same packet still run
    let mut c = Raw::new(&s);
    c.send_bytes(b"PING\r\n*1\r\n$x\r\n");
    assert_eq!(c.read(), Reply::Status("PONG".into()));
    assert_eq!(c.read(), err("ERR Protocol error: invalid bulk length"));
    assert!(c.is_closed());
    let mut ok_client = Raw::new(&s);
    assert_eq!(ok_client.call(&["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn oversized_requests() {
    let s = KvdServer::start(&["--proto-max-bulk-len", "1mb"]);
    proto_err(
        &s,
        b"*2\r\n$3\r\nGET\r\n$2000000\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    // an inline request without newline beyond 64 KB
    let mut c = Raw::new(&s);
    c.send_bytes(&vec![b'a'; 70 * 1024]);
    assert_eq!(c.read(), err("ERR Protocol error: too big inline request"));
    assert!(c.is_closed());
    // a bulk at the limit is fine
    let mut c = Raw::new(&s);
    let v = "z".repeat(1024 * 1024);
    assert_eq!(c.call(&["SET", "k", &v]), ok());
    assert_eq!(c.call(&["STRLEN", "k"]), int(1024 * 1024));
}

#[test]
fn garbage_and_half_frames_do_not_hurt_others() {
    let s = KvdServer::start(&[]);
    // random bytes
    let mut seed = 0x1234_5678_u64;
    for _ in 0..20 {
        let mut raw = s.raw();
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let _ = raw.write_all(&bytes);
    }
    // half a frame, then hang up
    for _ in 0..20 {
        let mut raw = s.raw();
        let _ = raw.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk");
    }
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    assert_eq!(c.call(&["GET", "k"]), bulk("v"));
}

#[test]
fn connection_flood() {
    let s = KvdServer::start(&[]);
    let mut conns: Vec<_> = (0..300).map(|_| s.raw()).collect();
    for c in conns.iter_mut() {
        c.write_all(b"PING\r\n").unwrap();
    }
    for c in conns.iter_mut() {
        assert_eq!(kvd_suite::read_at_least(c, 7), b"+PONG\r\n");
    }
    drop(conns);
    // connect-and-drop storm
    for _ in 0..500 {
        let _ = s.raw();
    }
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn query_buffer_limit_closes_client() {
    let s = KvdServer::start(&["--client-query-buffer-limit", "1mb"]);
    let mut c = Raw::new(&s);
    c.send_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n");
    let mut w = c.writer();
    let chunk = vec![b'x'; 64 * 1024];
    // 2.9 MB of a 3 MB bulk: the server closes past 1 MB (writes may fail then)
    let write_failed = (0..46).any(|_| w.write_all(&chunk).is_err());
    assert!(
        write_failed || c.try_read().is_none(),
        "the client must be closed"
    );
    let mut d = Raw::new(&s);
    assert_eq!(d.call(&["EXISTS", "k"]), int(0));
}

#[test]
fn forged_scan_cursors_are_rejected() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("key{i}"), "v"]), ok());
    }
    // SCAN cursors are log addresses: a forged one must not reach the engine
    for cur in [
        "1",
        "3",
        "13",
        "77",
        "4097",
        "123456",
        "18446744073709551615",
    ] {
        assert_eq!(
            c.call(&["SCAN", cur, "COUNT", "5"]),
            err("ERR invalid cursor"),
            "{cur}"
        );
    }
    // real cursors keep working, also from another connection
    let first = c.call(&["SCAN", "0", "COUNT", "5"]).items();
    let next = first[0].text();
    assert_ne!(next, "0");
    let mut d = Raw::new(&s);
    assert_eq!(d.call(&["SCAN", &next, "COUNT", "5"]).items().len(), 2);
    assert_eq!(c.call(&["PING"]), Reply::Status("PONG".into()));
}
