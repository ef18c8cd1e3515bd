//! The submission path: many threads appending to the shared inbox, tickets
//! resolved by the acknowledged stream position (blocking and async),
//! control requests ordered exactly against the writes around them, and
//! `MULTI` blocks encoded as their commands come.

mod common;

use std::sync::{Arc, Barrier};

use aof::{Aof, AofError, Batch, Entry, FsyncPolicy};
use common::{args, block_on, cfg, flat, incr_path, load};

/// Threads submit concurrently, half of them awaiting their tickets, half
/// blocking on them, while another thread rotates the file: every command
/// is acknowledged, read back exactly once, in each thread's order, and
/// the commands after a rotation's position are the ones submitted after
/// the rotation was requested.
fn concurrent_submitters(policy: FsyncPolicy) {
    const THREADS: usize = 6;
    const PER: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), policy);
    let aof = Aof::open(cfg.clone()).unwrap();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (aof, start) = (aof.clone(), start.clone());
        handles.push(std::thread::spawn(move || {
            start.wait();
            let mut b = Batch::new();
            for i in 0..PER {
                let key = format!("t{t}");
                let val = i.to_string();
                // Databases vary, so SELECTs are interleaved between
                // submitters' commands.
                b.command((t % 3) as u32, &["RPUSH", key.as_str(), val.as_str()]);
                let ticket = aof.submit(&mut b).unwrap();
                assert!(b.is_empty(), "submit empties the batch");
                if t % 2 == 0 {
                    block_on(ticket.wait_async()).unwrap();
                } else {
                    ticket.wait().unwrap();
                }
            }
        }));
    }
    start.wait();
    // A rotation in the middle of the load, and a marker written right
    // after it by this thread.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let rotated = aof.rotate();
    aof.append(9, &["SET", "marker", "after-rotation"])
        .unwrap()
        .wait()
        .unwrap();
    let pos = rotated.wait().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    let stats = aof.stats();
    assert_eq!(stats.submissions, (THREADS * PER + 1) as u64);
    assert_eq!(stats.commands, (THREADS * PER + 1) as u64);
    aof.close().unwrap();

    let all = flat(&load(&cfg, None).unwrap());
    assert_eq!(all.len(), THREADS * PER + 1);
    for t in 0..THREADS {
        let key = format!("t{t}");
        let mine: Vec<_> = all
            .iter()
            .filter(|(_, a)| a.get(1).map(Vec::as_slice) == Some(key.as_bytes()))
            .collect();
        assert_eq!(mine.len(), PER, "thread {t}");
        for (i, (db, a)) in mine.iter().enumerate() {
            assert_eq!(*db, (t % 3) as u32, "thread {t} command {i}: database");
            assert_eq!(a[2], i.to_string().into_bytes(), "thread {t}: order");
        }
    }
    // The marker was submitted after the rotation: it is in the new file.
    let after = flat(&load(&cfg, Some(pos)).unwrap());
    assert!(
        after.contains(&(9, args(&["SET", "marker", "after-rotation"]))),
        "the marker follows the rotation's position"
    );
    assert!(after.len() < all.len());
}

#[test]
fn concurrent_submitters_always() {
    concurrent_submitters(FsyncPolicy::Always);
}

#[test]
fn concurrent_submitters_everysec() {
    concurrent_submitters(FsyncPolicy::EverySec);
}

#[test]
fn concurrent_submitters_no() {
    concurrent_submitters(FsyncPolicy::No);
}

/// A ticket resolves after the write (`try_wait` sees it), and one taken
/// before the handle is dropped resolves once the writer has written it.
#[test]
fn tickets_resolve_after_the_write_and_survive_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::EverySec);
    let aof = Aof::open(cfg.clone()).unwrap();
    let t = aof.append(0, &["SET", "a", "1"]).unwrap();
    aof.sync().wait().unwrap();
    // Written and synced: resolved.
    assert!(matches!(t.try_wait(), Ok(Ok(()))));
    let pending = aof.append(0, &["SET", "b", "2"]).unwrap();
    drop(aof); // the writer writes what was queued, then stops
    pending.wait().unwrap();
    let all = flat(&load(&cfg, None).unwrap());
    assert_eq!(
        all,
        vec![(0, args(&["SET", "a", "1"])), (0, args(&["SET", "b", "2"]))]
    );
}

/// After `close`, submitting, syncing and rotating are refused; a batch
/// refused keeps nothing for the next submit.
#[test]
fn after_close_everything_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let aof = Aof::open(cfg(dir.path(), FsyncPolicy::Always)).unwrap();
    let clone = aof.clone();
    aof.close().unwrap();
    let mut b = Batch::new();
    b.command(0, &["SET", "k", "v"]);
    assert!(matches!(clone.submit(&mut b), Err(AofError::Closed)));
    assert!(b.is_empty());
    assert!(matches!(clone.sync().wait(), Err(AofError::Closed)));
    assert!(matches!(clone.rotate().wait(), Err(AofError::Closed)));
    assert!(matches!(clone.close(), Err(AofError::Closed)));
}

/// A `MULTI` block encoded command by command: `MULTI` comes with the first
/// command, `SELECT`s go inside, an empty block writes nothing, a block of
/// one command is written as that command, and commands before the block
/// stay outside it.
#[test]
fn multi_blocks_are_encoded_as_commands_come() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();

    let mut b = Batch::new();
    b.begin_multi();
    b.end_multi();
    assert!(b.is_empty(), "an empty block adds nothing");
    b.command(0, &["SET", "before", "1"]);
    b.begin_multi();
    b.command(2, &["INCR", "n"]);
    b.command(4, &["DEL", "x"]);
    b.end_multi();
    assert_eq!(b.commands(), 3);
    aof.submit(&mut b).unwrap().wait().unwrap();
    // The buffer is reused: the next batch does not repeat the last one.
    b.command(1, &["SET", "after", "2"]);
    aof.submit(&mut b).unwrap().wait().unwrap();
    // One command in another db, between two blocks of two.
    b.multi(&[(0, ["SET", "a", "1"]), (0, ["SET", "b", "2"])]);
    b.begin_multi();
    b.command(3, &["DEL", "only"]);
    b.end_multi();
    b.multi(&[(3, ["SET", "c", "1"]), (0, ["SET", "d", "2"])]);
    assert_eq!(b.commands(), 5);
    aof.submit(&mut b).unwrap().wait().unwrap();
    aof.close().unwrap();

    let records = load(&cfg, None).unwrap();
    assert_eq!(records.len(), 6, "{records:?}");
    let names = |e: &Entry| match e {
        Entry::Multi(cmds) => cmds.iter().map(|c| (c.db, c.args[1].to_vec())).collect(),
        Entry::Command(c) => vec![(c.db, c.args[1].to_vec())],
    };
    assert!(matches!(&records[3].entry, Entry::Multi(_)));
    assert_eq!(
        names(&records[3].entry),
        [(0, b"a".to_vec()), (0, b"b".to_vec())]
    );
    assert!(matches!(&records[4].entry, Entry::Command(c) if c.db == 3));
    assert_eq!(names(&records[4].entry), [(3, b"only".to_vec())]);
    assert!(matches!(&records[5].entry, Entry::Multi(_)));
    assert_eq!(
        names(&records[5].entry),
        [(3, b"c".to_vec()), (0, b"d".to_vec())]
    );
    // In the file, the lone command sits between the first block's EXEC and
    // the next MULTI: SELECT 3 and DEL only, unwrapped.
    let file = std::fs::read(incr_path(&cfg, 1)).unwrap();
    let lone = b"EXEC\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$4\r\nonly\r\n*1\r\n$5\r\nMULTI\r\n";
    assert!(
        file.windows(lone.len()).any(|w| w == lone),
        "{}",
        String::from_utf8_lossy(&file)
    );
    assert!(matches!(&records[0].entry, Entry::Command(c) if c.db == 0));
    match &records[1].entry {
        Entry::Multi(cmds) => {
            let got: Vec<_> = cmds.iter().map(|c| (c.db, c.args[0].to_vec())).collect();
            assert_eq!(got, vec![(2, b"INCR".to_vec()), (4, b"DEL".to_vec())]);
        }
        other => panic!("expected a MULTI block, got {other:?}"),
    }
    assert!(matches!(&records[2].entry, Entry::Command(c) if c.db == 1));
}

#[test]
#[should_panic(expected = "do not nest")]
fn multi_blocks_do_not_nest() {
    let mut b = Batch::new();
    b.begin_multi();
    b.begin_multi();
}

#[test]
#[should_panic(expected = "open MULTI block")]
fn a_batch_with_an_open_block_is_not_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let aof = Aof::open(cfg(dir.path(), FsyncPolicy::No)).unwrap();
    let mut b = Batch::new();
    b.begin_multi();
    b.command(0, &["SET", "k", "v"]);
    let _ = aof.submit(&mut b);
}
