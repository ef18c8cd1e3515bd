//! Bad bytes followed by more data: an error naming the file and the byte
//! offset, or, with `truncate_corrupt_tail`, the prefix before it.

mod common;

use std::fs;

use aof::{Aof, AofError, FsyncPolicy};
use common::{args, capture_logs, cfg, flat, incr_path, load};

/// Ten commands; returns the start offset of each.
fn write(cfg: &aof::AofConfig) -> Vec<u64> {
    let aof = Aof::open(cfg.clone()).unwrap();
    let mut starts = Vec::new();
    for i in 0..10 {
        aof.append(0, &["SET", &format!("key{i}"), "value"])
            .unwrap()
            .wait()
            .unwrap();
    }
    aof.close().unwrap();
    for r in load(cfg, None).unwrap() {
        starts.push(r.start.offset);
    }
    starts
}

#[test]
fn flipped_bytes_in_the_middle_are_errors_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let starts = write(&cfg);
    let path = incr_path(&cfg, 1);
    let good = fs::read(&path).unwrap();
    let s = starts[5] as usize;
    // `*` of the array, a digit of its count, `$` of a bulk, a bulk's `\r`,
    // the `\n` of a header: each one flipped.
    let cmd = &good[s..starts[6] as usize];
    let crlf_after_bulk = s + cmd.windows(5).position(|w| w == b"SET\r\n").unwrap() + 3;
    for (at, byte) in [
        (s, b'+'),
        (s + 1, b'x'),
        (s + 4, b'#'),
        (crlf_after_bulk, b'Z'),
        (s + 3, b'\r'),
    ] {
        let mut bad = good.clone();
        bad[at] = byte;
        fs::write(&path, &bad).unwrap();
        let err = load(&cfg, None).unwrap_err();
        match &err {
            AofError::Corrupt {
                path: p, offset, ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(*offset, at as u64, "flip at {at}: {err}");
            }
            other => panic!("flip at {at}: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("appendonly.aof.1.incr.aof") && text.contains(&format!("offset {at}")),
            "{text}"
        );
        // The file is left alone, and the writer refuses to append after it.
        assert_eq!(fs::read(&path).unwrap(), bad);
        assert!(matches!(
            Aof::open(cfg.clone()),
            Err(AofError::Corrupt { .. })
        ));
    }
}

#[test]
fn truncate_corrupt_tail_loads_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path(), FsyncPolicy::No);
    let starts = write(&cfg);
    let path = incr_path(&cfg, 1);
    let mut bad = fs::read(&path).unwrap();
    bad[starts[5] as usize + 4] = b'!';
    fs::write(&path, &bad).unwrap();
    cfg.truncate_corrupt_tail = true;
    let (records, logs) = capture_logs(|| load(&cfg, None).unwrap());
    let want: Vec<_> = (0..5)
        .map(|i| (0, args(&["SET", &format!("key{i}"), "value"])))
        .collect();
    assert_eq!(flat(&records), want);
    assert!(logs.contains("WARN") && logs.contains("corrupt"), "{logs}");
    assert_eq!(fs::metadata(&path).unwrap().len(), starts[5]);
    // And the writer continues there.
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "new", "1"]).unwrap().wait().unwrap();
    aof.close().unwrap();
    assert_eq!(load(&cfg, None).unwrap().len(), 6);
}

#[test]
fn corruption_in_a_middle_file_is_an_error_even_with_truncation_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path(), FsyncPolicy::No);
    cfg.truncate_corrupt_tail = true;
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "a", "1"]).unwrap().wait().unwrap();
    aof.append(0, &["SET", "b", "1"]).unwrap().wait().unwrap();
    aof.rotate().wait().unwrap();
    aof.append(0, &["SET", "c", "1"]).unwrap().wait().unwrap();
    aof.close().unwrap();
    let path = incr_path(&cfg, 1);
    let mut bad = fs::read(&path).unwrap();
    let n = bad.len();
    // The `*` of `SET b 1`, the file's last command (27 bytes).
    assert_eq!(&bad[n - 27..n - 23], b"*3\r\n");
    bad[n - 27] = 0;
    fs::write(&path, &bad).unwrap();
    let r = load(&cfg, None);
    assert!(
        matches!(&r, Err(AofError::Corrupt { offset, .. }) if *offset == n as u64 - 27),
        "{r:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), bad);
}

#[test]
fn semantic_corruption_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.append(0, &["SET", "x", "1"]).unwrap().wait().unwrap();
    aof.close().unwrap();
    // Raw bytes, as another tool might have written them.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(incr_path(&cfg, 1))
        .unwrap();
    std::io::Write::write_all(&mut f, b"*1\r\n$4\r\nEXEC\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    let err = load(&cfg, None).unwrap_err();
    assert!(err.to_string().contains("EXEC without MULTI"), "{err}");
}
