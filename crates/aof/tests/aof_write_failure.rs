//! A real write failure fails every waiter of the batch and puts the AOF in
//! the MISCONF state: later appends are refused at once, nothing is retried.

mod common;

use std::fs::OpenOptions;
use std::process::Command;
use std::sync::Arc;

use aof::{Aof, AofError, FsyncPolicy};
use common::{cfg, load};

const ENOSPC: &str = "MISCONF Errors writing to the AOF file: No space left on device";

fn assert_misconf(r: Result<(), AofError>) {
    match r {
        Err(e) => assert_eq!(e.to_string(), ENOSPC),
        Ok(()) => panic!("a failed write was acknowledged"),
    }
}

#[test]
fn dev_full_fails_waiters_and_refuses_later_appends() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = cfg(dir.path(), policy);
        // The incremental file is opened as /dev/full: every write gets ENOSPC.
        cfg.open_hook = Some(Arc::new(|_| {
            OpenOptions::new().append(true).open("/dev/full")
        }));
        let aof = Aof::open(cfg).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let aof = aof.clone();
                std::thread::spawn(move || {
                    let mut refused = 0;
                    for i in 0..20 {
                        match aof.append(0, &["SET", &format!("{t}:{i}"), "v"]) {
                            Ok(ticket) => assert_misconf(ticket.wait()),
                            Err(e) => {
                                assert_eq!(e.to_string(), ENOSPC);
                                refused += 1;
                            }
                        }
                    }
                    refused
                })
            })
            .collect();
        let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(
            refused > 0,
            "{policy:?}: later appends must be refused at submission"
        );
        let e = aof.append(0, &["PING"]).unwrap_err();
        assert!(e.is_misconf());
        assert_eq!(e.to_string(), ENOSPC);
        assert!(aof.failure().is_some());
        assert_eq!(aof.stats().batches, 0, "no batch was written");
        assert!(aof.sync().wait().unwrap_err().is_misconf());
        assert!(aof.rotate().wait().unwrap_err().is_misconf());
        assert!(aof.close().unwrap_err().is_misconf());
    }
}

/// A FIFO accepts writes but `fdatasync` on it fails (EINVAL): a real
/// fsync failure after a successful write.
fn fifo_hook(dir: &std::path::Path) -> aof::OpenHook {
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Read-write: the open does not wait for a reader; the pipe buffer
    // (64 KiB) holds what the tests write.
    Arc::new(move |_| OpenOptions::new().read(true).write(true).open(&fifo))
}

const EINVAL: &str = "MISCONF Errors writing to the AOF file: Invalid argument";

#[test]
fn fsync_failure_under_always_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path(), FsyncPolicy::Always);
    cfg.open_hook = Some(fifo_hook(dir.path()));
    let aof = Aof::open(cfg).unwrap();
    let tickets: Vec<_> = (0..10)
        .filter_map(|i| aof.append(0, &["SET", &format!("k{i}"), "v"]).ok())
        .collect();
    assert!(!tickets.is_empty());
    for t in tickets {
        // Written, but not synced: never acknowledged.
        assert_eq!(t.wait().unwrap_err().to_string(), EINVAL);
    }
    assert!(aof.stats().batches >= 1, "the write itself succeeded");
    assert_eq!(aof.stats().fsyncs, 0);
    assert_eq!(aof.append(0, &["PING"]).unwrap_err().to_string(), EINVAL);
}

#[test]
fn fsync_failure_under_everysec_refuses_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg(dir.path(), FsyncPolicy::EverySec);
    cfg.open_hook = Some(fifo_hook(dir.path()));
    let aof = Aof::open(cfg).unwrap();
    // Released after the write, before any fsync.
    aof.append(0, &["SET", "k", "v"]).unwrap().wait().unwrap();
    // The once-a-second fsync fails: from then on, MISCONF.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while aof.failure().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the everysec fsync never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(aof.append(0, &["PING"]).unwrap_err().to_string(), EINVAL);
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A real filesystem filling up (a 64 KiB tmpfs). Needs root and mount
/// rights; skipped (with a message) without them.
#[test]
fn full_tmpfs_fails_the_aof() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _mount = Mount(mnt.clone());
    let cfg = cfg(&mnt, FsyncPolicy::Always);
    let aof = Aof::open(cfg.clone()).unwrap();
    let value = "x".repeat(1000);
    let mut acked = 0;
    let err = loop {
        match aof
            .append(0, &["SET", &format!("k{acked}"), value.as_str()])
            .unwrap()
            .wait()
        {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1000, "the tmpfs never filled up");
    };
    assert_eq!(err.to_string(), ENOSPC);
    assert_eq!(aof.append(0, &["PING"]).unwrap_err().to_string(), ENOSPC);
    drop(aof);
    // Every acknowledged write is there, and nothing torn is visible.
    assert_eq!(load(&cfg, None).unwrap().len(), acked);
}
