//! Under `appendfsync always` the writer writes into zeroed space it
//! preallocated ahead of the data. Files at rest (closed, rotated) end at
//! their data; a file left by a crash ends in zeros, which the loader cuts.
//! After a power loss the last unsynced write may have holes of zeros: bad
//! bytes within 1 MiB of the end of the data of such a file are a torn
//! write, further back they are corruption.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aof::{Aof, AofConfig, AofError, FsyncPolicy};
use common::{args, cfg, flat, incr_path, load};

fn set(i: usize) -> Vec<Vec<u8>> {
    args(&["SET", &format!("key{i}"), "value"])
}

/// The whole AOF directory as it is now (the writer still running): what a
/// crash would leave behind.
fn snapshot(from: &AofConfig, to: &Path) -> AofConfig {
    let dir = to.join("appendonlydir");
    fs::create_dir_all(&dir).unwrap();
    for e in fs::read_dir(&from.dir).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    AofConfig::new(dir).fsync(from.fsync)
}

/// Opens an `always` AOF and appends `n` acknowledged SETs.
fn written(cfg: &AofConfig, n: usize) -> Aof {
    let aof = Aof::open(cfg.clone()).unwrap();
    for i in 0..n {
        aof.append(0, &["SET", &format!("key{i}"), "value"])
            .unwrap()
            .wait()
            .unwrap();
    }
    aof
}

/// What a crash of an `always` AOF after `n` acknowledged SETs leaves: the
/// copy's directory (keep it alive), its config and its incremental file.
/// The original is closed.
fn crashed_after(n: usize) -> (tempfile::TempDir, AofConfig, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = written(&cfg, n);
    let copy = snapshot(&cfg, crashed.path());
    aof.close().unwrap();
    let file = incr_path(&copy, 1);
    (crashed, copy, file)
}

/// Size of the data of the file: up to its last non-zero byte.
fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[test]
fn always_writes_into_preallocated_zeros_and_close_cuts_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = written(&cfg, 10);
    let live = fs::read(incr_path(&cfg, 1)).unwrap();
    let data = data_len(&live);
    assert!(data > 0);
    assert!(
        live.len() >= data + 512 * 1024,
        "{} bytes of data, file of {}: no zeroed space ahead",
        data,
        live.len()
    );
    assert!(live[data..].iter().all(|&b| b == 0));
    aof.close().unwrap();
    let closed = fs::read(incr_path(&cfg, 1)).unwrap();
    assert_eq!(closed, live[..data], "close cuts the zeros, keeps the data");
    let want: Vec<_> = (0..10).map(|i| (0, set(i))).collect();
    assert_eq!(flat(&load(&cfg, None).unwrap()), want);
}

#[test]
fn everysec_and_no_do_not_preallocate() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path(), policy);
        let aof = written(&cfg, 10);
        aof.sync().wait().unwrap();
        let live = fs::read(incr_path(&cfg, 1)).unwrap();
        assert_eq!(data_len(&live), live.len(), "{policy:?}");
        aof.close().unwrap();
    }
}

#[test]
fn rotation_cuts_the_old_files_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = written(&cfg, 5);
    aof.rotate().wait().unwrap();
    aof.append(0, &["SET", "after", "rotation"])
        .unwrap()
        .wait()
        .unwrap();
    let old = fs::read(incr_path(&cfg, 1)).unwrap();
    assert_eq!(
        data_len(&old),
        old.len(),
        "the rotated-away file is plain RESP"
    );
    let new = fs::read(incr_path(&cfg, 2)).unwrap();
    assert!(new.len() > data_len(&new), "the new file is preallocated");
    aof.close().unwrap();
    let mut want: Vec<_> = (0..5).map(|i| (0, set(i))).collect();
    want.push((0, args(&["SET", "after", "rotation"])));
    assert_eq!(flat(&load(&cfg, None).unwrap()), want);
}

#[test]
fn a_crash_leaves_zeros_that_the_next_open_cuts_and_writes_over() {
    let (_crashed, copy, file) = crashed_after(20);
    let before = fs::read(&file).unwrap();
    assert!(
        before.len() > data_len(&before),
        "the crash copy ends in zeros"
    );
    // Reopen the crashed AOF, write more, close, load everything.
    let again = Aof::open(copy.clone()).unwrap();
    let after = fs::read(&file).unwrap();
    assert_eq!(after, before[..data_len(&before)], "open cut the zeros");
    again
        .append(0, &["SET", "key20", "value"])
        .unwrap()
        .wait()
        .unwrap();
    again.close().unwrap();
    let want: Vec<_> = (0..21).map(|i| (0, set(i))).collect();
    let mut reader = aof::AofReader::open(&copy, None).unwrap();
    let got: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(flat(&got), want);
    assert_eq!(
        reader.progress().truncated_bytes,
        0,
        "zeros are not a torn tail"
    );
}

#[test]
fn a_torn_write_into_the_zeros_is_cut() {
    let (_crashed, copy, file) = crashed_after(10);
    let bytes = fs::read(&file).unwrap();
    let end = data_len(&bytes) as u64;
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    let cmd = b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$5\r\nvalue\r\n";
    // A crash mid-write: the command's first part only, then zeros.
    f.write_all_at(&cmd[..20], end).unwrap();
    let mut reader = aof::AofReader::open(&copy, None).unwrap();
    let got: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    let want: Vec<_> = (0..10).map(|i| (0, set(i))).collect();
    assert_eq!(flat(&got), want);
    assert_eq!(reader.progress().truncated_bytes, 20);
    assert_eq!(fs::metadata(&file).unwrap().len(), end);
}

/// A power loss can leave the last write with holes: sectors never written
/// read back as zeros, with written ones after them.
#[test]
fn holes_in_the_last_write_are_a_torn_write() {
    let (_crashed, copy, file) = crashed_after(10);
    let end = data_len(&fs::read(&file).unwrap()) as u64;
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    // The first 512 bytes of the lost write are a hole; after it, some of
    // its later bytes made it to disk.
    let value = "v".repeat(600);
    let cmd = format!(
        "*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n${}\r\n{value}\r\n",
        value.len()
    );
    f.write_all_at(&cmd.as_bytes()[512..], end + 512).unwrap();
    let got = load(&copy, None).unwrap();
    let want: Vec<_> = (0..10).map(|i| (0, set(i))).collect();
    assert_eq!(flat(&got), want);
    assert_eq!(fs::metadata(&file).unwrap().len(), end);
}

#[test]
fn corruption_more_than_a_torn_write_before_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    // About 1.3 MiB of data, in a few batches.
    let value = "x".repeat(1000);
    for chunk in 0..13 {
        let tickets: Vec<_> = (0..100)
            .map(|i| {
                aof.append(0, &["SET", &format!("big{chunk}:{i}"), &value])
                    .unwrap()
            })
            .collect();
        for t in tickets {
            t.wait().unwrap();
        }
    }
    let copy = snapshot(&cfg, crashed.path());
    aof.close().unwrap();
    let file = incr_path(&copy, 1);
    let bytes = fs::read(&file).unwrap();
    assert!(data_len(&bytes) > 1024 * 1024 + 100_000);
    assert!(bytes.len() > data_len(&bytes));
    // The `*` of the first command becomes `+`.
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(b"+", 0).unwrap();
    match load(&copy, None) {
        Err(AofError::Corrupt { offset, .. }) => assert_eq!(offset, 0),
        other => panic!("expected corruption at offset 0, got {other:?}"),
    }
}

/// A flipped byte is not a hole: even in the last MiB of a file that ends
/// in zeros, it is corruption (acknowledged writes follow it).
#[test]
fn a_flipped_byte_near_the_end_is_still_an_error() {
    let (_crashed, copy, file) = crashed_after(10);
    let bytes = fs::read(&file).unwrap();
    assert!(
        bytes.len() > data_len(&bytes),
        "the crash copy ends in zeros"
    );
    // The `*` of the 5th SET becomes `X`.
    let at = bytes
        .windows(8)
        .enumerate()
        .filter(|(_, w)| w == b"*3\r\n$3\r\n")
        .map(|(i, _)| i)
        .nth(4)
        .unwrap();
    let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(b"X", at as u64).unwrap();
    match load(&copy, None) {
        Err(AofError::Corrupt { offset, .. }) => assert_eq!(offset, at as u64),
        other => panic!("expected corruption at offset {at}, got {other:?}"),
    }
}
