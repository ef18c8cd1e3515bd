//! Rotation and checkpoint truncation: exactly the covered files go, the
//! manifest stays consistent across a crash between the steps, and the
//! size accounting drives the rewrite trigger.

mod common;

use std::fs;

use aof::{Aof, AofError, AofPosition, FsyncPolicy};
use common::{args, cfg, flat, incr_path, load};

fn set(aof: &Aof, k: &str) {
    aof.append(0, &["SET", k, "v"]).unwrap().wait().unwrap();
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rotate_then_truncate_deletes_exactly_the_covered_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path(), FsyncPolicy::Always);
    cfg.rewrite_min_size = 100;
    let aof = Aof::open(cfg.clone()).unwrap();
    set(&aof, "a");
    let p2 = aof.rotate().wait().unwrap();
    assert_eq!(p2, AofPosition::new(2, 0));
    set(&aof, "b");
    let p3 = aof.rotate().wait().unwrap();
    assert_eq!(p3, AofPosition::new(3, 0));
    set(&aof, "c");
    set(&aof, "d");
    assert_eq!(
        fs::read_to_string(cfg.dir.join("appendonly.aof.manifest"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        [
            "file appendonly.aof.1.incr.aof seq 1 type i",
            "file appendonly.aof.2.incr.aof seq 2 type i",
            "file appendonly.aof.3.incr.aof seq 3 type i"
        ]
    );
    // From a checkpoint's position: only what follows it.
    let after: Vec<_> = flat(&load(&cfg, Some(p3)).unwrap())
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(after, [args(&["SET", "c", "v"]), args(&["SET", "d", "v"])]);
    assert!(aof.size_since_rewrite() > 0);
    assert!(
        aof.rewrite_needed(),
        "no base yet: any growth past the minimum"
    );

    assert_eq!(
        aof.truncate_before(p3, "checkpoint.7", 10_000)
            .wait()
            .unwrap(),
        2
    );
    assert_eq!(
        listing(&cfg.dir),
        ["appendonly.aof.3.incr.aof", "appendonly.aof.manifest"]
    );
    let manifest = fs::read_to_string(cfg.dir.join("appendonly.aof.manifest")).unwrap();
    let lines: Vec<_> = manifest.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "file checkpoint.7 seq 1 type b kvd-start-seq 3 kvd-start-offset 0 kvd-base-size 10000",
            "file appendonly.aof.3.incr.aof seq 3 type i"
        ]
    );
    // Redis's manifest parser: an even number of tokens, at least six.
    assert!(lines
        .iter()
        .all(|l| l.split(' ').count() % 2 == 0 && l.split(' ').count() >= 6));
    assert_eq!(aof.base_size(), 10_000);
    assert_eq!(
        aof.size_since_rewrite(),
        fs::metadata(incr_path(&cfg, 3)).unwrap().len()
    );
    assert!(!aof.rewrite_needed());

    // The whole AOF now starts at the checkpoint; older positions are gone.
    assert_eq!(flat(&load(&cfg, None).unwrap()).len(), 2);
    assert!(matches!(
        load(&cfg, Some(p2)),
        Err(AofError::PositionNotCovered { .. })
    ));
    assert!(matches!(
        load(&cfg, Some(AofPosition::new(9, 0))),
        Err(AofError::PositionPastEnd { .. })
    ));
    assert!(matches!(
        aof.truncate_before(p2, "checkpoint.8", 1).wait(),
        Err(AofError::PositionNotCovered { .. })
    ));
    assert!(matches!(
        aof.truncate_before(AofPosition::new(3, 1 << 40), "checkpoint.8", 1)
            .wait(),
        Err(AofError::PositionPastEnd { .. })
    ));
    assert!(matches!(
        aof.truncate_before(p3, "../etc", 1).wait(),
        Err(AofError::InvalidLabel(_))
    ));

    // A second checkpoint in the middle of the file: nothing to delete.
    let mid = load(&cfg, None).unwrap()[0].end;
    assert_eq!(
        aof.truncate_before(mid, "checkpoint.8", 10).wait().unwrap(),
        0
    );
    assert_eq!(
        flat(&load(&cfg, None).unwrap()),
        [(0, args(&["SET", "d", "v"]))]
    );
    aof.close().unwrap();

    // Reopen: continues in file 3 (no new file), base and sizes restored.
    let aof = Aof::open(cfg.clone()).unwrap();
    assert_eq!(aof.base_size(), 10);
    set(&aof, "e");
    aof.close().unwrap();
    assert_eq!(listing(&cfg.dir).len(), 2);
    assert_eq!(flat(&load(&cfg, None).unwrap()).len(), 2);
}

#[test]
fn crash_between_manifest_and_delete_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    set(&aof, "a");
    let p2 = aof.rotate().wait().unwrap();
    set(&aof, "b");
    let old = fs::read(incr_path(&cfg, 1)).unwrap();
    aof.truncate_before(p2, "checkpoint.1", 1).wait().unwrap();
    aof.close().unwrap();
    // The crash happened after the manifest rename, before the delete, and
    // while a later manifest update was being written.
    fs::write(incr_path(&cfg, 1), &old).unwrap();
    fs::write(
        cfg.dir.join("temp-appendonly.aof.manifest"),
        b"file garbage seq",
    )
    .unwrap();
    // ... and a rotation that created its file but not the manifest entry.
    fs::write(incr_path(&cfg, 3), b"").unwrap();

    // The reader follows the manifest only.
    assert_eq!(
        flat(&load(&cfg, None).unwrap()),
        [(0, args(&["SET", "b", "v"]))]
    );
    let aof = Aof::open(cfg.clone()).unwrap();
    assert_eq!(
        listing(&cfg.dir),
        ["appendonly.aof.2.incr.aof", "appendonly.aof.manifest"]
    );
    set(&aof, "c");
    aof.close().unwrap();
    assert_eq!(flat(&load(&cfg, None).unwrap()).len(), 2);
}

#[test]
fn crash_before_the_manifest_rename_keeps_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    set(&aof, "a");
    let p2 = aof.rotate().wait().unwrap();
    set(&aof, "b");
    aof.close().unwrap();
    let manifest = fs::read_to_string(cfg.dir.join("appendonly.aof.manifest")).unwrap();
    // A new manifest written to the temp name but never renamed.
    fs::write(
        cfg.dir.join("temp-appendonly.aof.manifest"),
        format!("file checkpoint.1 seq 1 type b kvd-start-seq {} kvd-start-offset 0\nfile appendonly.aof.2.incr.aof seq 2 type i\n", p2.seq),
    )
    .unwrap();
    let aof = Aof::open(cfg.clone()).unwrap();
    aof.close().unwrap();
    assert_eq!(
        fs::read_to_string(cfg.dir.join("appendonly.aof.manifest")).unwrap(),
        manifest
    );
    assert_eq!(flat(&load(&cfg, None).unwrap()).len(), 2);
    // The checkpoint (if it completed) replays from its own position.
    assert_eq!(flat(&load(&cfg, Some(p2)).unwrap()).len(), 1);
}

#[test]
fn incr_files_without_a_manifest_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(dir.path(), FsyncPolicy::No);
    fs::create_dir_all(&cfg.dir).unwrap();
    fs::write(incr_path(&cfg, 4), b"*1\r\n$4\r\nPING\r\n").unwrap();
    assert!(matches!(
        Aof::open(cfg.clone()),
        Err(AofError::Manifest { .. })
    ));
    assert!(
        load(&cfg, None).unwrap().is_empty(),
        "no manifest: nothing to load"
    );

    // A crash between creating the first file and writing the first manifest.
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::cfg(dir.path(), FsyncPolicy::No);
    fs::create_dir_all(&cfg.dir).unwrap();
    fs::write(incr_path(&cfg, 1), b"").unwrap();
    let aof = Aof::open(cfg.clone()).unwrap();
    set(&aof, "a");
    aof.close().unwrap();
    assert_eq!(load(&cfg, None).unwrap().len(), 1);
}
