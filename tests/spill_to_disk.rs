//! More data than the memory budget: records spill to the log's disk
//! segments and are read back; multi-key commands keep working while the
//! log turns pages under load.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn data_beyond_the_memory_budget_reads_back() {
    let s = KvdServer::start(&["--maxmemory", "16mb"]);
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let mut c = Raw::new(&s);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    let v = format!("{t}:{i}:").repeat(1000);
                    c.send(&["SET", &format!("k{t}:{i}"), &v]);
                    c.send(&[
                        "MSET",
                        &format!("m{t}a"),
                        &format!("{i}"),
                        &format!("m{t}b"),
                        &format!("{i}"),
                    ]);
                    c.send(&["INCR", "counter"]);
                }
                for _ in 0..3000 {
                    let r = c.read();
                    assert!(!matches!(r, Reply::Error(_)), "{r:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "counter"]), bulk("4000"));
    for t in 0..4 {
        for i in (0..1000).step_by(37) {
            let v = format!("{t}:{i}:").repeat(1000);
            assert_eq!(c.call(&["GET", &format!("k{t}:{i}")]), bulk(&v), "k{t}:{i}");
        }
        assert_eq!(
            c.call(&["MGET", &format!("m{t}a"), &format!("m{t}b")]),
            bulks(&["999", "999"])
        );
    }
    assert_eq!(c.call(&["DBSIZE"]), int(4 * 1000 + 8 + 1));
    assert_eq!(c.call(&["KEYS", "k0:*"]).items().len(), 1000);
}
