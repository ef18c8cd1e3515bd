//! `--appendonly yes --appendfsync always`: every acknowledged write
//! survives a SIGKILL. Several clients write (SET, INCR, APPEND, EXPIRE,
//! MSET, MULTI/EXEC) and record each acknowledged reply; the server is
//! killed mid-load and restarted on the same directory.
mod util;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kvd_suite::KvdServer;
use util::*;

const CLIENTS: usize = 4;
/// Upper bound of rounds per client (the kill normally comes first).
const ROUNDS: usize = 400;

/// Sends a command; None once the server is gone.
fn try_call(c: &mut Raw, w: &mut std::net::TcpStream, args: &[&str]) -> Option<Reply> {
    w.write_all(&encode(args)).ok()?;
    c.try_read()
}

#[derive(Debug, Default)]
struct Acked {
    sets: Vec<String>,
    expires: Vec<String>,
    msets: Vec<(String, String)>,
    incr_acked: i64,
    incr_sent: i64,
    append_acked: usize,
    append_sent: usize,
    multi_acked: i64,
    multi_sent: i64,
}

fn client(s: &KvdServer, id: usize, progress: Arc<AtomicU64>) -> Acked {
    let mut c = Raw::new(s);
    let mut w = c.writer();
    let mut a = Acked::default();
    let (ctr, app, ta, tb) = (
        format!("ctr{id}"),
        format!("app{id}"),
        format!("ta{id}"),
        format!("tb{id}"),
    );
    for i in 0..ROUNDS {
        let k = format!("s{id}_{i}");
        match try_call(&mut c, &mut w, &["SET", &k, &k]) {
            Some(r) if r == ok() => a.sets.push(k),
            _ => break,
        }
        a.incr_sent += 1;
        match try_call(&mut c, &mut w, &["INCR", &ctr]) {
            Some(Reply::Int(n)) => {
                assert_eq!(n, a.incr_acked + 1);
                a.incr_acked = n;
            }
            _ => break,
        }
        a.append_sent += 1;
        match try_call(&mut c, &mut w, &["APPEND", &app, "x"]) {
            Some(Reply::Int(n)) => a.append_acked = n as usize,
            _ => break,
        }
        let e = format!("e{id}_{i}");
        if try_call(&mut c, &mut w, &["SET", &e, "v"]) != Some(ok()) {
            break;
        }
        match try_call(&mut c, &mut w, &["EXPIRE", &e, "100000"]) {
            Some(r) if r == int(1) => a.expires.push(e),
            _ => break,
        }
        let (m1, m2) = (format!("m{id}_{i}_a"), format!("m{id}_{i}_b"));
        match try_call(&mut c, &mut w, &["MSET", &m1, "1", &m2, "2"]) {
            Some(r) if r == ok() => a.msets.push((m1, m2)),
            _ => break,
        }
        // MULTI/EXEC pipelined in one write.
        a.multi_sent += 1;
        let mut buf = encode(&["MULTI"]);
        buf.extend(encode(&["INCR", &ta]));
        buf.extend(encode(&["INCR", &tb]));
        buf.extend(encode(&["EXEC"]));
        if w.write_all(&buf).is_err() {
            break;
        }
        let replies: Vec<Option<Reply>> = (0..4).map(|_| c.try_read()).collect();
        match &replies[3] {
            Some(Reply::Array(Some(v))) if v.len() == 2 => a.multi_acked += 1,
            _ => break,
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    a
}

fn int_of(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap().parse().unwrap(),
        Reply::Bulk(None) => 0,
        other => panic!("expected a number, got {other:?}"),
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    load_kill_check(false);
}

/// The same while checkpoints (BGREWRITEAOF, BGSAVE) rotate and truncate
/// the AOF under the load: the exact cut means no INCR is applied twice
/// (counters stay within [acknowledged, sent]) and none is lost.
#[test]
fn acknowledged_writes_survive_sigkill_during_rewrites() {
    load_kill_check(true);
}

fn load_kill_check(rewrites: bool) {
    let s = KvdServer::start(kvd_suite::AOF_ALWAYS);
    let progress = Arc::new(AtomicU64::new(0));
    let acked: Vec<Acked> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (p, srv) = (progress.clone(), &s);
                scope.spawn(move || client(srv, id, p))
            })
            .collect();
        // Kill -9 in the middle of the load (bounded wait), optionally
        // with checkpoints running all along.
        let mut admin = Raw::new(&s);
        let mut admin_w = admin.writer();
        let mut spins = 0;
        let mut rewrites_done = 0;
        while progress.load(Ordering::Relaxed) < (CLIENTS * 60) as u64 && spins < 6000 {
            if rewrites {
                let cmd: &[&str] = if spins % 2 == 0 {
                    &["BGREWRITEAOF"]
                } else {
                    &["BGSAVE"]
                };
                if let Some(Reply::Status(_)) = try_call(&mut admin, &mut admin_w, cmd) {
                    rewrites_done += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            spins += 1;
        }
        if rewrites {
            assert!(rewrites_done > 0);
        }
        let pid = s.pid();
        // SIGKILL without taking `s` mutably while clients borrow it.
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: usize = acked.iter().map(|a| a.sets.len()).sum();
    assert!(total > 0, "no write was acknowledged before the kill");
    let s = s.restart();
    let mut c = Raw::new(&s);
    for (id, a) in acked.iter().enumerate() {
        for k in &a.sets {
            assert_eq!(c.call(&["GET", k]), bulk(k), "acknowledged SET {k} lost");
        }
        for k in &a.expires {
            let ttl = int_of(c.call(&["TTL", k]));
            assert!(ttl > 0 && ttl <= 100000, "EXPIRE of {k} lost: ttl {ttl}");
        }
        for (m1, m2) in &a.msets {
            assert_eq!(
                c.call(&["MGET", m1, m2]),
                bulks(&["1", "2"]),
                "MSET {m1} lost"
            );
        }
        let n = int_of(c.call(&["GET", &format!("ctr{id}")]));
        assert!(
            n >= a.incr_acked && n <= a.incr_sent,
            "client {id}: counter {n} not in [{}, {}]",
            a.incr_acked,
            a.incr_sent
        );
        let len = int_of(c.call(&["STRLEN", &format!("app{id}")])) as usize;
        assert!(len >= a.append_acked && len <= a.append_sent);
        let ta = int_of(c.call(&["GET", &format!("ta{id}")]));
        let tb = int_of(c.call(&["GET", &format!("tb{id}")]));
        assert_eq!(ta, tb, "client {id}: a MULTI/EXEC block is half applied");
        assert!(ta >= a.multi_acked && ta <= a.multi_sent);
    }
}

/// A pipelined bulk load (like `redis-cli --pipe`) under `always`: requests
/// already readable join the batch before its fsync. Every reply is `+OK`,
/// in order, and every acknowledged key survives a SIGKILL.
#[test]
fn pipelined_load_is_acknowledged_in_order_and_survives_sigkill() {
    // 10k SETs: ~400 KB of requests, 50 KB of replies (within the
    // loopback socket buffers, so writing all before reading cannot stall).
    const N: usize = 10_000;
    let s = KvdServer::start(kvd_suite::AOF_ALWAYS);
    let mut c = Raw::new(&s);
    let mut load = Vec::new();
    for i in 0..N {
        let k = format!("bulk:{i:06}");
        load.extend_from_slice(&encode(&["SET", &k, &k]));
    }
    // INCR at the end: its reply proves the SETs before it were answered
    // in order (one reply per request, nothing skipped).
    load.extend_from_slice(&encode(&["INCR", "bulk:count"]));
    c.send_bytes(&load);
    for i in 0..N {
        assert_eq!(c.read(), ok(), "reply {i}");
    }
    assert_eq!(c.read(), int(1));
    drop(c);
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["DBSIZE"]), int(N as i64 + 1));
    for i in (0..N).step_by(997) {
        let k = format!("bulk:{i:06}");
        assert_eq!(c.call(&["GET", &k]), bulk(&k));
    }
}
