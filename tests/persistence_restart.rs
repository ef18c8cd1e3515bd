//! Persistence through engine checkpoints: SAVE, BGSAVE, LASTSAVE,
//! SHUTDOWN [SAVE|NOSAVE], save points, MISCONF, and what a restart on the
//! same directory recovers (after a clean exit or a SIGKILL).
mod util;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvd_suite::KvdServer;
use util::*;

fn info_field(c: &mut Raw, section: &str, field: &str) -> String {
    let text = c.call(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {text}"))
        .trim()
        .to_string()
}

fn int_of(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn wait_bgsave_done(c: &mut Raw) {
    assert!(
        eventually(60, || info_field(
            c,
            "persistence",
            "rdb_bgsave_in_progress"
        ) == "0"),
        "BGSAVE did not finish"
    );
}

#[test]
fn shutdown_saves_and_restart_restores_everything() {
    let mut s = KvdServer::start(&[]); // default save points: SHUTDOWN saves
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "s", "hello"]), ok());
    for _ in 0..5 {
        c.call(&["INCR", "n"]);
    }
    assert_eq!(c.call(&["SET", "t", "ttl"]), ok());
    assert_eq!(c.call(&["EXPIRE", "t", "100000"]), int(1));
    assert_eq!(c.call(&["SET", "px", "v", "PX", "50000000"]), ok());
    assert_eq!(c.call(&["SET", "gone", "1"]), ok());
    assert_eq!(c.call(&["DEL", "gone"]), int(1));
    assert_eq!(c.call(&["SELECT", "3"]), ok());
    assert_eq!(c.call(&["MSET", "d3a", "x", "d3b", "y"]), ok());
    assert_eq!(c.call(&["SELECT", "0"]), ok());
    // Logical 0 <-> 3: db 0 now holds d3a, d3b; db 3 holds s, n, t, px.
    assert_eq!(c.call(&["SWAPDB", "0", "3"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(2));
    assert_eq!(c.call(&["SET", "after_swap", "z"]), ok()); // in logical 0
    assert!(c
        .call(&["INFO", "persistence"])
        .text()
        .contains("rdb_changes_since_last_save:"));
    c.send(&["SHUTDOWN"]);
    assert!(c.try_read().is_none());
    assert!(s.wait_exit(Duration::from_secs(60)).success());

    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["DBSIZE"]), int(3));
    assert_eq!(c.call(&["GET", "d3a"]), bulk("x"));
    assert_eq!(c.call(&["GET", "d3b"]), bulk("y"));
    assert_eq!(c.call(&["GET", "after_swap"]), bulk("z"));
    assert_eq!(c.call(&["GET", "s"]), nil());
    assert_eq!(c.call(&["SELECT", "3"]), ok());
    assert_eq!(c.call(&["DBSIZE"]), int(4));
    assert_eq!(c.call(&["GET", "s"]), bulk("hello"));
    assert_eq!(c.call(&["GET", "n"]), bulk("5"));
    assert_eq!(c.call(&["INCR", "n"]), int(6));
    let ttl = int_of(c.call(&["TTL", "t"]));
    assert!((99_000..=100_000).contains(&ttl), "ttl {ttl}");
    let pttl = int_of(c.call(&["PTTL", "px"]));
    assert!((49_000_000..=50_000_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(c.call(&["TTL", "s"]), int(-1));
    assert_eq!(c.call(&["EXISTS", "gone"]), int(0));
    let ks = c.call(&["INFO", "keyspace"]).text();
    assert!(ks.contains("db0:keys=3,expires=0"), "{ks}");
    assert!(ks.contains("db3:keys=4,expires=2"), "{ks}");
    // SWAPDB keeps working on the restored table.
    assert_eq!(c.call(&["SWAPDB", "0", "3"]), ok());
    assert_eq!(c.call(&["GET", "d3a"]), bulk("x"));
}

#[test]
fn save_then_sigkill_restores_the_saved_state_only() {
    let mut s = KvdServer::start(&["--save", ""]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    assert_eq!(c.call(&["SET", "gone", "1"]), ok());
    assert_eq!(c.call(&["SAVE"]), ok());
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
        "0"
    );
    assert_ne!(
        info_field(&mut c, "persistence", "kvd_last_checkpoint_version"),
        "0"
    );
    assert_eq!(c.call(&["SET", "b", "2"]), ok());
    assert_eq!(c.call(&["SET", "a", "3"]), ok());
    assert_eq!(c.call(&["DEL", "gone"]), int(1));
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
        "3"
    );
    s.kill();
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "a"]), bulk("1"));
    assert_eq!(c.call(&["GET", "b"]), nil());
    assert_eq!(c.call(&["GET", "gone"]), bulk("1"));
    assert_eq!(c.call(&["DBSIZE"]), int(2));
}

#[test]
fn bgsave_under_concurrent_writes_keeps_everything_acknowledged_before_it() {
    let mut s = KvdServer::start(&["--save", ""]);
    let mut c = Raw::new(&s);
    for i in 0..300 {
        c.send(&["SET", &format!("pre:{i}"), &i.to_string()]);
    }
    for _ in 0..300 {
        assert_eq!(c.read(), ok());
    }
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut w = Raw::new(&s);
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) && i < 200_000 {
                assert_eq!(w.call(&["SET", &format!("w:{i}"), &i.to_string()]), ok());
                i += 1;
                acked.store(i, Ordering::Release);
            }
        })
    };
    assert!(eventually(30, || acked.load(Ordering::Acquire) >= 200));
    let before = acked.load(Ordering::Acquire);
    assert_eq!(
        c.call(&["BGSAVE"]),
        Reply::Status("Background saving started".into())
    );
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    let total = acked.load(Ordering::Acquire);
    s.kill();
    let s = s.restart();
    let mut c = Raw::new(&s);
    for i in 0..300 {
        assert_eq!(c.call(&["GET", &format!("pre:{i}")]), bulk(&i.to_string()));
    }
    // Every key acknowledged before BGSAVE is there; the writer's keys form
    // a prefix (one sequential client: none missing below a present one).
    let mut present = 0;
    while present < total {
        match c.call(&["GET", &format!("w:{present}")]) {
            Reply::Bulk(Some(v)) => assert_eq!(v, present.to_string().into_bytes()),
            _ => break,
        }
        present += 1;
    }
    assert!(
        present >= before,
        "lost w:{present} acknowledged before BGSAVE ({before})"
    );
    for i in present..total {
        assert_eq!(
            c.call(&["EXISTS", &format!("w:{i}")]),
            int(0),
            "w:{i} after a gap"
        );
    }
    assert_eq!(int_of(c.call(&["DBSIZE"])), 300 + present as i64);
}

#[test]
fn shutdown_nosave_loses_unsaved_writes() {
    let mut s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    assert_eq!(c.call(&["SAVE"]), ok());
    assert_eq!(c.call(&["SET", "b", "2"]), ok());
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.try_read().is_none());
    assert!(s.wait_exit(Duration::from_secs(60)).success());
    let mut s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "a"]), bulk("1"));
    assert_eq!(c.call(&["GET", "b"]), nil());
    // SHUTDOWN SAVE saves even without save points.
    assert_eq!(c.call(&["CONFIG", "SET", "save", ""]), ok());
    assert_eq!(c.call(&["SET", "c", "3"]), ok());
    c.send(&["SHUTDOWN", "SAVE"]);
    assert!(c.try_read().is_none());
    assert!(s.wait_exit(Duration::from_secs(60)).success());
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "c"]), bulk("3"));
}

#[test]
fn sigterm_saves_when_save_points_are_configured() {
    let mut s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    let st = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(s.wait_exit(Duration::from_secs(60)).success());
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "k"]), bulk("v"));
}

#[test]
fn lastsave_increases_and_save_commands_reply_like_redis() {
    let s = KvdServer::start(&["--save", ""]);
    let mut c = Raw::new(&s);
    let l0 = int_of(c.call(&["LASTSAVE"]));
    assert!(eventually(10, || {
        let t = c.call(&["TIME"]).items()[0].text();
        t.parse::<i64>().unwrap() > l0
    }));
    assert_eq!(c.call(&["SET", "x", "1"]), ok());
    assert_eq!(c.call(&["SAVE"]), ok());
    let l1 = int_of(c.call(&["LASTSAVE"]));
    assert!(l1 > l0, "{l1} > {l0}");
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_save_time"),
        l1.to_string()
    );
    assert_eq!(c.call(&["BGSAVE", "FOO"]), err("ERR syntax error"));
    assert_eq!(
        c.call(&["BGSAVE", "SCHEDULE"]),
        Reply::Status("Background saving started".into())
    );
    wait_bgsave_done(&mut c);
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(
        c.call(&["SAVE"]),
        err("ERR Command not allowed inside a transaction")
    );
    assert_eq!(c.call(&["DISCARD"]), ok());
    assert_eq!(info_field(&mut c, "persistence", "loading"), "0");
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_time_sec"),
        "0"
    );
}

#[test]
fn save_point_triggers_a_background_checkpoint() {
    let mut s = KvdServer::start(&["--save", "1", "1"]);
    let mut c = Raw::new(&s);
    let l0 = int_of(c.call(&["LASTSAVE"]));
    assert_eq!(c.call(&["SET", "auto", "saved"]), ok());
    assert!(
        eventually(60, || int_of(c.call(&["LASTSAVE"])) > l0),
        "the save point did not fire"
    );
    s.kill();
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "auto"]), bulk("saved"));
}

#[test]
fn spilled_data_survives_restart() {
    // 16 MiB of in-memory log (the minimum), ~24 MiB of values.
    let mut s = KvdServer::start(&["--maxmemory", "1mb"]);
    let mut c = Raw::new(&s);
    let n = 240;
    for i in 0..n {
        let v = format!("{i:06}").repeat(100_000 / 6);
        c.send(&["SET", &format!("big:{i}"), &v]);
    }
    for _ in 0..n {
        assert_eq!(c.read(), ok());
    }
    c.send(&["SHUTDOWN"]);
    assert!(c.try_read().is_none());
    assert!(s.wait_exit(Duration::from_secs(120)).success());
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["DBSIZE"]), int(n as i64));
    for i in (0..n).step_by(7) {
        let v = format!("{i:06}").repeat(100_000 / 6);
        assert_eq!(c.call(&["GET", &format!("big:{i}")]), bulk(&v), "big:{i}");
    }
}

/// A checkpoint that cannot be written (its temporary file's name is taken
/// by a directory, an honest I/O error even as root) fails BGSAVE and SAVE;
/// with save points configured, writes and PING are refused with MISCONF
/// until a save succeeds.
#[test]
fn failed_save_refuses_writes_until_a_save_succeeds() {
    let s = KvdServer::start(&["--save", "3600", "1"]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "k", "1"]), ok());
    let blocker = s.dir().join("log").join("checkpoint.tmp");
    std::fs::create_dir_all(&blocker).unwrap();
    assert_eq!(
        c.call(&["BGSAVE"]),
        Reply::Status("Background saving started".into())
    );
    wait_bgsave_done(&mut c);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
        "err"
    );
    let misconf = c.call(&["SET", "k", "2"]);
    let Reply::Error(e) = &misconf else {
        panic!("{misconf:?}")
    };
    assert!(
        e.starts_with("MISCONF Redis is configured to save RDB snapshots"),
        "{e}"
    );
    assert!(e.ends_with("Please check the Redis logs for details about the RDB error."));
    assert!(matches!(c.call(&["PING"]), Reply::Error(e) if e.starts_with("MISCONF")));
    assert_eq!(c.call(&["GET", "k"]), bulk("1"));
    assert_eq!(c.call(&["SAVE"]), err("ERR"));
    // In MULTI: the write is refused and EXEC aborts.
    assert_eq!(c.call(&["MULTI"]), ok());
    assert!(matches!(c.call(&["INCR", "k"]), Reply::Error(e) if e.starts_with("MISCONF")));
    assert!(matches!(c.call(&["EXEC"]), Reply::Error(e) if e.starts_with("EXECABORT")));
    // Without save points, writes are accepted again (Redis rule).
    assert_eq!(c.call(&["CONFIG", "SET", "save", ""]), ok());
    assert_eq!(c.call(&["SET", "k", "2"]), ok());
    assert_eq!(c.call(&["CONFIG", "SET", "save", "3600 1"]), ok());
    assert!(matches!(c.call(&["SET", "k", "3"]), Reply::Error(e) if e.starts_with("MISCONF")));
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(c.call(&["SAVE"]), ok());
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    assert_eq!(c.call(&["SET", "k", "3"]), ok());
    assert_eq!(c.call(&["PING"]), Reply::Status("PONG".into()));
}

/// A checkpoint taken while transactions run holds each one entirely or
/// not at all: EXEC appends one byte to `a` (growing values are copied to
/// the log's tail now and then) and increments `b` (in place), so after a
/// crash and restart from the last BGSAVE, `STRLEN a == b`.
#[test]
fn checkpoint_never_holds_half_a_transaction() {
    let mut s = KvdServer::start(&["--save", ""]);
    let mut c = Raw::new(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let mut w = s.conn();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) && n < 100_000 {
                    let r: redis::RedisResult<(i64, i64)> = redis::pipe()
                        .atomic()
                        .cmd("APPEND")
                        .arg("a")
                        .arg("x")
                        .cmd("INCR")
                        .arg("b")
                        .query(&mut w);
                    match r {
                        Ok((a, b)) => assert_eq!(a, b),
                        Err(_) => break, // the server was killed
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(
            c.call(&["BGSAVE"]),
            Reply::Status("Background saving started".into())
        );
        wait_bgsave_done(&mut c);
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
            "ok"
        );
    }
    s.kill(); // while the writers still run
    stop.store(true, Ordering::Release);
    for w in writers {
        w.join().unwrap();
    }
    let s = s.restart();
    let mut c = Raw::new(&s);
    let b = c.call(&["GET", "b"]);
    assert_ne!(b, nil());
    let Reply::Int(len) = c.call(&["STRLEN", "a"]) else {
        panic!("STRLEN")
    };
    assert_eq!(
        bulk(&len.to_string()),
        b,
        "the checkpoint holds half a transaction"
    );
}
