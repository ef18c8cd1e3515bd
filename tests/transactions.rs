//! MULTI / EXEC / DISCARD / WATCH with Redis semantics.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn multi_exec_queues_and_runs() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "a", "1"]), Reply::Status("QUEUED".into()));
    assert_eq!(c.call(&["INCR", "a"]), Reply::Status("QUEUED".into()));
    assert_eq!(c.call(&["GET", "a"]), Reply::Status("QUEUED".into()));
    assert_eq!(c.call(&["MULTI"]), err("ERR MULTI calls can not be nested"));
    assert_eq!(
        c.call(&["EXEC"]),
        Reply::Array(Some(vec![ok(), int(2), bulk("2")]))
    );
    assert_eq!(c.call(&["EXEC"]), err("ERR EXEC without MULTI"));
    assert_eq!(c.call(&["DISCARD"]), err("ERR DISCARD without MULTI"));
    // runtime errors do not abort the rest
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["SET", "s", "x"]);
    c.call(&["INCR", "s"]);
    c.call(&["SET", "t", "y"]);
    assert_eq!(
        c.call(&["EXEC"]),
        Reply::Array(Some(vec![
            ok(),
            err("ERR value is not an integer or out of range"),
            ok()
        ]))
    );
    // empty transaction
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["EXEC"]), Reply::Array(Some(vec![])));
}

#[test]
fn queue_errors_abort_exec() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "a", "1"]), Reply::Status("QUEUED".into()));
    assert_eq!(
        c.call(&["NOSUCH", "x"]),
        err("ERR unknown command 'NOSUCH', with args beginning with: 'x' ")
    );
    assert_eq!(
        c.call(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.call(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.call(&["GET", "a"]), nil());
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["SET", "a", "1"]);
    assert_eq!(c.call(&["DISCARD"]), ok());
    assert_eq!(c.call(&["GET", "a"]), nil());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(
        c.call(&["WATCH", "a"]),
        err("ERR WATCH inside MULTI is not allowed")
    );
    assert_eq!(
        c.call(&["SHUTDOWN"]),
        err("ERR Command not allowed inside a transaction")
    );
    assert_eq!(
        c.call(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
}

#[test]
fn watch_detects_changes() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    let mut other = Raw::new(&s);
    assert_eq!(c.call(&["SET", "w", "1"]), ok());
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(other.call(&["SET", "w", "2"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["SET", "w", "3"]);
    assert_eq!(c.call(&["EXEC"]), Reply::Array(None));
    assert_eq!(c.call(&["GET", "w"]), bulk("2"));
    // unchanged watched key: EXEC runs
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(other.call(&["GET", "w"]), bulk("2"));
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["SET", "w", "3"]);
    assert_eq!(c.call(&["EXEC"]), Reply::Array(Some(vec![ok()])));
    // UNWATCH forgets
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(c.call(&["UNWATCH"]), ok());
    assert_eq!(other.call(&["SET", "w", "4"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["GET", "w"]);
    assert_eq!(c.call(&["EXEC"]), Reply::Array(Some(vec![bulk("4")])));
    // a missing key that gets created, and FLUSHDB, both count as changes
    assert_eq!(c.call(&["WATCH", "fresh"]), ok());
    assert_eq!(other.call(&["SET", "fresh", "x"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["EXEC"]), Reply::Array(None));
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(other.call(&["FLUSHDB"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["EXEC"]), Reply::Array(None));
    // the same key name in another db is a different key
    assert_eq!(c.call(&["WATCH", "w"]), ok());
    assert_eq!(other.call(&["SELECT", "3"]), ok());
    assert_eq!(other.call(&["SET", "w", "x"]), ok());
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["EXEC"]), Reply::Array(Some(vec![])));
}

#[test]
fn exec_is_atomic_against_concurrent_transactions() {
    let s = KvdServer::start(&[]);
    let mut handles = Vec::new();
    for _ in 0..4 {
        let mut c = Raw::new(&s);
        handles.push(std::thread::spawn(move || {
            for _ in 0..100 {
                assert_eq!(c.call(&["MULTI"]), ok());
                c.call(&["INCR", "x"]);
                c.call(&["INCR", "y"]);
                let r = c.call(&["EXEC"]).items();
                assert_eq!(r.len(), 2);
            }
        }));
    }
    // an observer transaction never sees x and y apart
    let mut obs = Raw::new(&s);
    for _ in 0..100 {
        assert_eq!(obs.call(&["MULTI"]), ok());
        obs.call(&["GET", "x"]);
        obs.call(&["GET", "y"]);
        let r = obs.call(&["EXEC"]).items();
        assert_eq!(r[0], r[1], "EXEC must be isolated");
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["MGET", "x", "y"]), bulks(&["400", "400"]));
}

#[test]
fn multi_key_commands_are_atomic() {
    let s = KvdServer::start(&[]);
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let mut c = Raw::new(&s);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let v = format!("{t}-{i}");
                    assert_eq!(c.call(&["MSET", "a", &v, "b", &v, "c", &v]), ok());
                }
            })
        })
        .collect();
    let mut r = Raw::new(&s);
    for _ in 0..300 {
        let got = r.call(&["MGET", "a", "b", "c"]).items();
        assert!(
            got[0] == got[1] && got[1] == got[2],
            "MGET saw a torn MSET: {got:?}"
        );
    }
    for w in writers {
        w.join().unwrap();
    }
}
