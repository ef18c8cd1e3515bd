//! Large pipelines, many concurrent clients, maxclients, idle timeout.
mod util;

use std::io::{Read, Write};

use kvd_suite::KvdServer;
use util::*;

#[test]
fn pipeline_of_20k_commands() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    let mut buf = Vec::new();
    for i in 0..10_000 {
        buf.extend_from_slice(&encode(&["SET", &format!("k{i}"), &format!("v{i}")]));
    }
    for i in 0..10_000 {
        buf.extend_from_slice(&encode(&["GET", &format!("k{i}")]));
    }
    c.send_bytes(&buf);
    for _ in 0..10_000 {
        assert_eq!(c.read(), ok());
    }
    for i in 0..10_000 {
        assert_eq!(c.read(), bulk(&format!("v{i}")));
    }
    // a pipeline of inline PINGs sent in small pieces
    let mut raw = s.raw();
    let pings = b"PING\r\n".repeat(10_000);
    for chunk in pings.chunks(777) {
        raw.write_all(chunk).unwrap();
    }
    let got = kvd_suite::read_at_least(&mut raw, 7 * 10_000);
    assert_eq!(got, b"+PONG\r\n".repeat(10_000));
}

#[test]
fn many_concurrent_clients() {
    let s = KvdServer::start(&[]);
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let mut con = s.conn();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let _: () = redis::cmd("SET")
                        .arg(format!("c{t}:{i}"))
                        .arg(i)
                        .query(&mut con)
                        .unwrap();
                    let _: i64 = redis::cmd("INCR").arg("shared").query(&mut con).unwrap();
                }
                let v: i64 = redis::cmd("GET")
                    .arg(format!("c{t}:49"))
                    .query(&mut con)
                    .unwrap();
                assert_eq!(v, 49);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = s.conn();
    let n: i64 = redis::cmd("GET").arg("shared").query(&mut con).unwrap();
    assert_eq!(n, 64 * 50);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 64 * 50 + 1);
}

#[test]
fn maxclients_rejects_extra_connections() {
    let s = KvdServer::start(&["--maxclients", "2"]);
    let mut a = Raw::new(&s);
    // the readiness probe of the test harness may still be connected for a moment
    assert!(eventually(20, || a
        .call(&["CLIENT", "LIST"])
        .text()
        .lines()
        .count()
        == 1));
    let mut b = Raw::new(&s);
    assert_eq!(b.call(&["PING"]), Reply::Status("PONG".into()));
    let mut c = s.raw();
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"-ERR max number of clients reached\r\n");
    drop(a);
    assert!(eventually(20, || {
        let mut d = s.raw();
        d.write_all(b"PING\r\n").unwrap();
        kvd_suite::read_at_least(&mut d, 7) == b"+PONG\r\n"
    }));
    let info = b.call(&["INFO", "stats"]).text();
    assert!(info.contains("rejected_connections:"), "{info}");
}

#[test]
fn idle_timeout_closes_clients() {
    let s = KvdServer::start(&["--timeout", "1"]);
    let mut a = Raw::new(&s);
    assert_eq!(a.call(&["PING"]), Reply::Status("PONG".into()));
    assert!(
        a.is_closed(),
        "idle client must be closed after the timeout"
    );
}

#[test]
fn output_buffer_limit_closes_client() {
    let s = KvdServer::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut a = Raw::new(&s);
    let v = "x".repeat(100_000);
    for i in 0..20 {
        assert_eq!(a.call(&["SET", &format!("big{i}"), &v]), ok());
    }
    let keys: Vec<String> = (0..20).map(|i| format!("big{i}")).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    a.send(&args);
    assert!(
        a.try_read().is_none(),
        "a 2 MB reply over a 1 MB hard limit closes the client"
    );
    let mut b = Raw::new(&s);
    assert_eq!(b.call(&["PING"]), Reply::Status("PONG".into()));
}
