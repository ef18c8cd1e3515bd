//! MULTI … EXEC blocks from concurrent submitters are never interleaved with
//! each other or with single commands.

mod common;

use aof::{Aof, Batch, Entry, FsyncPolicy};
use common::{cfg, load};

#[test]
fn multi_blocks_are_never_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let aof = aof.clone();
            std::thread::spawn(move || {
                let tag = format!("t{t}");
                let mut tickets = Vec::new();
                for i in 0..150 {
                    let n = i.to_string();
                    let cmds = [
                        ["SET", tag.as_str(), n.as_str()],
                        ["INCR", tag.as_str(), n.as_str()],
                    ];
                    tickets.push(aof.append_multi(t, &cmds).unwrap());
                    tickets.push(aof.append(t, &["SET", tag.as_str(), "single"]).unwrap());
                    // A block spanning two databases.
                    let mut b = Batch::new();
                    b.multi(&[(t, ["DEL", tag.as_str()]), (t + 8, ["DEL", tag.as_str()])]);
                    tickets.push(aof.submit(&mut b).unwrap());
                }
                for tk in tickets {
                    tk.wait().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    aof.close().unwrap();

    let records = load(&cfg, None).unwrap();
    let mut blocks = 0;
    for r in &records {
        if let Entry::Multi(cmds) = &r.entry {
            blocks += 1;
            let tag = cmds[0].args[1].clone();
            let db = cmds[0].db;
            assert!(
                cmds.iter().all(|c| c.args[1] == tag),
                "interleaved block at {}",
                r.start
            );
            match cmds.len() {
                2 if cmds[0].args[0] == "SET" => assert!(cmds.iter().all(|c| c.db == db)),
                2 => assert_eq!(cmds[1].db, db + 8),
                n => panic!("block of {n} commands at {}", r.start),
            }
        }
    }
    assert_eq!(blocks, 8 * 150 * 2);
    assert_eq!(records.len(), 8 * 150 * 3);
}
