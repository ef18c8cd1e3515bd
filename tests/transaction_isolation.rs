//! Isolation of MULTI/EXEC (and MSET) against concurrent single-key
//! commands of other clients: no client observes a state in the middle of
//! an EXEC, and no single-key write lands inside one (Redis semantics).
//! Bounded loop counts, no timing assertions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use kvd_suite::KvdServer;

fn get_i64(c: &mut redis::Connection, k: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET").arg(k).query(c).expect("GET");
    v.unwrap_or(0)
}

/// Two clients move one unit at a time from `a` to `b` in MULTI/EXEC; two
/// readers check that `a + b` is constant, with MGET and with a read-only
/// transaction.
#[test]
fn exec_transfers_keep_the_sum_for_readers() {
    const TOTAL: i64 = 100_000;
    const MOVES: usize = 1500;
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(TOTAL)
        .arg("b")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let mut w = s.conn();
        writers.push(thread::spawn(move || {
            for _ in 0..MOVES {
                let (a, b): (i64, i64) = redis::pipe()
                    .atomic()
                    .cmd("DECR")
                    .arg("a")
                    .cmd("INCR")
                    .arg("b")
                    .query(&mut w)
                    .expect("EXEC");
                assert_eq!(a + b, TOTAL, "EXEC saw a foreign write in its middle");
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let mut rc = s.conn();
        let done = done.clone();
        readers.push(thread::spawn(move || {
            let mut checks = 0u64;
            // At least a few checks after the writers finished.
            let mut after = 0;
            while after < 5 {
                if done.load(Ordering::Acquire) {
                    after += 1;
                }
                let (a, b): (Option<i64>, Option<i64>) = if r == 0 || checks.is_multiple_of(2) {
                    redis::cmd("MGET").arg("a").arg("b").query(&mut rc).unwrap()
                } else {
                    redis::pipe()
                        .atomic()
                        .cmd("GET")
                        .arg("a")
                        .cmd("GET")
                        .arg("b")
                        .query(&mut rc)
                        .unwrap()
                };
                assert_eq!(
                    a.unwrap() + b.unwrap(),
                    TOTAL,
                    "reader saw a transfer half done"
                );
                checks += 1;
            }
            checks
        }));
    }
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().expect("reader") >= 5);
    }
    assert_eq!(get_i64(&mut c, "a"), TOTAL - 2 * MOVES as i64);
    assert_eq!(get_i64(&mut c, "b"), 2 * MOVES as i64);
}

/// EXEC (or MSET) writes `k1` then `k2` with the same increasing value; a
/// reader that reads `k1` and then `k2` with plain GETs must find `k2` at
/// least as new as `k1`: having seen the EXEC's first write, it must not
/// see the state before its second. (The other order, `k2` then `k1`,
/// cannot fail even without isolation, since `k1` is written first.)
fn ordered_pair_readers(use_mset: bool) {
    const ROUNDS: i64 = 3000;
    let s = KvdServer::start(&[]);
    let done = Arc::new(AtomicBool::new(false));
    let mut w = s.conn();
    let writer = thread::spawn(move || {
        for v in 1..=ROUNDS {
            if use_mset {
                let _: () = redis::cmd("MSET")
                    .arg("k1")
                    .arg(v)
                    .arg("k2")
                    .arg(v)
                    .query(&mut w)
                    .unwrap();
            } else {
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg("k1")
                    .arg(v)
                    .ignore()
                    .cmd("SET")
                    .arg("k2")
                    .arg(v)
                    .ignore()
                    .query(&mut w)
                    .unwrap();
            }
        }
    });
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut rc = s.conn();
        let done = done.clone();
        readers.push(thread::spawn(move || {
            let mut seen_new = 0u64;
            let mut after = 0;
            while after < 5 {
                if done.load(Ordering::Acquire) {
                    after += 1;
                }
                let v1 = get_i64(&mut rc, "k1");
                let v2 = get_i64(&mut rc, "k2");
                assert!(
                    v2 >= v1,
                    "read k1={v1} then k2={v2}: saw the middle of a transaction"
                );
                seen_new += (v1 > 0) as u64;
            }
            seen_new
        }));
    }
    writer.join().expect("writer");
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
}

#[test]
fn reader_never_sees_second_exec_write_without_first() {
    ordered_pair_readers(false);
}

#[test]
fn reader_never_sees_second_mset_write_without_first() {
    ordered_pair_readers(true);
}

/// Single-key writes of other clients never land inside an EXEC: the EXEC's
/// own GET sees exactly its own SET and INCRs.
#[test]
fn single_key_writes_never_interleave_with_exec() {
    const EXECS: usize = 1500;
    let s = KvdServer::start(&[]);
    let done = Arc::new(AtomicBool::new(false));
    let mut hammers = Vec::new();
    for i in 0..2 {
        let mut hc = s.conn();
        let done = done.clone();
        hammers.push(thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                if i == 0 {
                    let _: () = redis::cmd("SET").arg("k").arg(100).query(&mut hc).unwrap();
                } else {
                    let _: i64 = redis::cmd("INCRBY")
                        .arg("k")
                        .arg(1000)
                        .query(&mut hc)
                        .unwrap();
                }
                n += 1;
            }
            n
        }));
    }
    let mut c = s.conn();
    for _ in 0..EXECS {
        let (_, a, b, g): (String, i64, i64, String) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("k")
            .arg(0)
            .cmd("INCR")
            .arg("k")
            .cmd("INCR")
            .arg("k")
            .cmd("GET")
            .arg("k")
            .query(&mut c)
            .unwrap();
        assert_eq!(
            (a, b, g.as_str()),
            (1, 2, "2"),
            "a foreign write landed inside EXEC"
        );
    }
    done.store(true, Ordering::Release);
    for h in hammers {
        assert!(h.join().expect("hammer") > 0);
    }
}
