//! A crash in the middle of the last write: the torn command (or the whole
//! open MULTI block) is cut off the file with a warning, everything before
//! it loads, and appending continues after it.

mod common;

use std::fs;

use aof::{Aof, AofConfig, AofError, FsyncPolicy};
use common::{args, capture_logs, cfg, flat, incr_path, load};

/// Writes `setup`'s commands, returns the config and the file length before
/// the last submission.
fn write(dir: &std::path::Path, last_multi: bool) -> (AofConfig, u64, u64) {
    let cfg = cfg(dir, FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    for i in 0..4 {
        aof.append(0, &["SET", &format!("k{i}"), "v"])
            .unwrap()
            .wait()
            .unwrap();
    }
    aof.sync().wait().unwrap();
    let before = fs::metadata(incr_path(&cfg, 1)).unwrap().len();
    if last_multi {
        aof.append_multi(0, &[["SET", "a", "1"], ["SET", "b", "2"]])
            .unwrap()
            .wait()
            .unwrap();
    } else {
        aof.append(0, &["SET", "last", "value\r\nwith crlf"])
            .unwrap()
            .wait()
            .unwrap();
    }
    aof.close().unwrap();
    let after = fs::metadata(incr_path(&cfg, 1)).unwrap().len();
    (cfg, before, after)
}

fn check_every_cut(last_multi: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, start, end) = write(dir.path(), last_multi);
    let path = incr_path(&cfg, 1);
    let full = fs::read(&path).unwrap();
    assert_eq!(
        flat(&load(&cfg, None).unwrap()).len(),
        if last_multi { 6 } else { 5 }
    );
    let prefix: Vec<_> = (0..4)
        .map(|i| (0, args(&["SET", &format!("k{i}"), "v"])))
        .collect();
    for cut in start + 1..end {
        fs::write(&path, &full[..cut as usize]).unwrap();
        let (records, logs) = capture_logs(|| load(&cfg, None).unwrap());
        assert_eq!(flat(&records), prefix, "cut at {cut}");
        assert!(
            logs.contains("WARN") && logs.contains("torn"),
            "cut at {cut}: no warning in {logs:?}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            start,
            "cut at {cut}: file not truncated"
        );
    }
    // After the repair, appending continues at a command boundary.
    fs::write(&path, &full[..(end - 1) as usize]).unwrap();
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "after", "crash"])
        .unwrap()
        .wait()
        .unwrap();
    aof.close().unwrap();
    let mut want = prefix.clone();
    want.push((0, args(&["SET", "after", "crash"])));
    assert_eq!(flat(&load(&cfg, None).unwrap()), want);
}

#[test]
fn torn_last_command_at_every_byte_is_truncated() {
    check_every_cut(false);
}

#[test]
fn torn_multi_block_is_dropped_whole() {
    check_every_cut(true);
}

#[test]
fn torn_tail_in_a_middle_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "a", "1"]).unwrap().wait().unwrap();
    aof.rotate().wait().unwrap();
    aof.append(0, &["SET", "b", "2"]).unwrap().wait().unwrap();
    aof.close().unwrap();
    let p1 = incr_path(&cfg, 1);
    let len = fs::metadata(&p1).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p1)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = load(&cfg, None).unwrap_err();
    assert!(
        matches!(&err, AofError::UnexpectedEof { path, .. } if *path == p1),
        "{err}"
    );
    assert!(err.to_string().contains("appendonly.aof.1.incr.aof"));
    // Nothing was cut from a middle file.
    assert_eq!(fs::metadata(&p1).unwrap().len(), len - 3);
}
