//! Commands written come back identical (database, arguments, MULTI blocks),
//! the file is plain Redis RESP, and a reopened AOF keeps appending to its
//! last incremental file.

mod common;

use aof::{Aof, Batch, Entry, FsyncPolicy};
use common::{args, block_on, cfg, flat, incr_path, load};
use proptest::prelude::*;
use resp_codec::{BytesMut, Limits, RequestDecoder};

#[test]
fn many_commands_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    let mut expected = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..5000u32 {
        let db = i % 3;
        let cmd = args(&["SET", &format!("key:{i}"), &format!("value\r\n{i}")]);
        if i % 10 == 0 {
            let two = [cmd.clone(), args(&["INCR", "counter"])];
            tickets.push(aof.append_batch(db, &two).unwrap());
            expected.extend(two.into_iter().map(|c| (db, c)));
        } else {
            tickets.push(aof.append(db, &cmd).unwrap());
            expected.push((db, cmd));
        }
    }
    for t in tickets {
        t.wait().unwrap();
    }
    assert_eq!(aof.stats().commands, expected.len() as u64);
    aof.close().unwrap();

    let mut reader = aof::AofReader::open(&cfg, None).unwrap();
    let records: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(flat(&records), expected);
    let progress = reader.progress();
    assert_eq!((progress.files_total, progress.files_done), (1, 1));
    assert_eq!(progress.bytes_read, progress.bytes_total);
    assert_eq!(progress.records, records.len() as u64);
    assert!(
        progress.commands > expected.len() as u64,
        "SELECTs are counted"
    );
    assert_eq!(progress.truncated_bytes, 0);
    assert_eq!(reader.end(), aof::AofPosition::new(1, progress.bytes_total));
    // Positions increase (a SELECT may sit between two records).
    for w in records.windows(2) {
        assert!(w[0].start < w[0].end && w[0].end <= w[1].start);
    }

    // The file is plain RESP that a Redis request parser reads: SELECT only
    // where the database changes.
    let bytes = std::fs::read(incr_path(&cfg, 1)).unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = RequestDecoder::new(Limits::default());
    let mut argv = Vec::new();
    let (mut selects, mut others) = (0, 0);
    while dec.decode(&mut buf, &mut argv).unwrap() {
        if argv[0].eq_ignore_ascii_case(b"SELECT") {
            selects += 1;
        } else {
            others += 1;
        }
    }
    assert!(buf.is_empty());
    assert_eq!(others, expected.len());
    assert!(selects > 0 && selects <= expected.len());
    assert!(bytes.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"));
}

#[test]
fn reopen_appends_to_the_last_incr_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "a", "1"]).unwrap().wait().unwrap();
    aof.append(5, &["SET", "b", "2"]).unwrap().wait().unwrap();
    aof.close().unwrap();

    let aof = Aof::open(cfg.clone()).unwrap();
    // First write after reopening selects its database again.
    aof.append(5, &["SET", "c", "3"]).unwrap().wait().unwrap();
    drop(aof); // dropping the last handle also stops the writer, after an fsync

    let names: Vec<String> = std::fs::read_dir(&cfg.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(incr_path(&cfg, 1).exists());
    assert_eq!(
        flat(&load(&cfg, None).unwrap()),
        vec![
            (0, args(&["SET", "a", "1"])),
            (5, args(&["SET", "b", "2"])),
            (5, args(&["SET", "c", "3"]))
        ]
    );
}

#[test]
fn closed_aof_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let aof = Aof::open(cfg(dir.path(), FsyncPolicy::No)).unwrap();
    let clone = aof.clone();
    aof.close().unwrap();
    assert!(matches!(
        clone.append(0, &["PING"]),
        Err(aof::AofError::Closed)
    ));
    assert!(matches!(clone.rotate().wait(), Err(aof::AofError::Closed)));
}

#[test]
fn tickets_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    block_on(async {
        aof.append(0, &["SET", "k", "v"])
            .unwrap()
            .wait_async()
            .await
            .unwrap();
        let pos = aof.rotate().wait_async().await.unwrap();
        assert_eq!(pos, aof::AofPosition::new(2, 0));
    });
    aof.close().unwrap();
    assert_eq!(load(&cfg, None).unwrap().len(), 1);
}

#[derive(Debug, Clone)]
enum Op {
    One(u32, Vec<Vec<u8>>),
    Batch(Vec<(u32, Vec<Vec<u8>>)>),
    Multi(Vec<(u32, Vec<Vec<u8>>)>),
}

fn cmd() -> impl Strategy<Value = (u32, Vec<Vec<u8>>)> {
    let arg = prop::collection::vec(any::<u8>(), 0..24);
    (0u32..4, prop::collection::vec(arg, 1..5)).prop_map(|(db, mut a)| {
        // The reader interprets these names; keep them out of plain commands.
        for name in [&b"SELECT"[..], b"MULTI", b"EXEC"] {
            if a[0].eq_ignore_ascii_case(name) {
                a[0] = b"X".to_vec();
            }
        }
        (db, a)
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        cmd().prop_map(|(db, a)| Op::One(db, a)),
        prop::collection::vec(cmd(), 1..5).prop_map(Op::Batch),
        prop::collection::vec(cmd(), 1..5).prop_map(Op::Multi),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_sequences_round_trip(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path(), FsyncPolicy::No);
        let aof = Aof::open(cfg.clone()).unwrap();
        let mut expected = Vec::new();
        for op in &ops {
            let mut b = Batch::new();
            match op {
                Op::One(db, a) => { b.command(*db, a); }
                Op::Batch(cs) => { for (db, a) in cs { b.command(*db, a); } }
                Op::Multi(cs) => { b.multi(cs); }
            }
            aof.submit(&mut b).unwrap().wait().unwrap();
        }
        aof.close().unwrap();
        let records = load(&cfg, None).unwrap();
        let mut multis = Vec::new();
        for op in &ops {
            match op {
                Op::One(db, a) => expected.push((*db, a.clone())),
                Op::Batch(cs) => expected.extend(cs.iter().cloned()),
                // A block of one command is written as that command (Redis 7 does not
                // wrap it either).
                Op::Multi(cs) => {
                    expected.extend(cs.iter().cloned());
                    if cs.len() > 1 {
                        multis.push(cs.len());
                    }
                }
            }
        }
        prop_assert_eq!(flat(&records), expected);
        let got: Vec<usize> = records.iter().filter_map(|r| match &r.entry {
            Entry::Multi(cs) => Some(cs.len()),
            Entry::Command(_) => None,
        }).collect();
        prop_assert_eq!(got, multis);
    }
}
