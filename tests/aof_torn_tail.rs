//! A damaged AOF at startup: a torn last command (crash mid-write) is cut
//! with a warning and the prefix loads; a flipped byte inside the file is
//! a startup error naming the file and the offset, unless
//! `aof-load-truncated yes` (the default) allows cutting the last file
//! there (the `aof` crate's semantics).
mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvd_suite::{aof_data_len, free_port, kvd_binary, KvdServer};
use util::*;

const AOF: &[&str] = kvd_suite::AOF_ALWAYS;

fn last_incr(dir: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    v.sort();
    v.pop().expect("an incremental AOF file")
}

fn info_field(c: &mut Raw, field: &str) -> String {
    let text = c.call(&["INFO", "persistence"]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO: {text}"))
        .trim()
        .to_string()
}

/// Writes k0..k9 and kills the server; returns its directory.
fn ten_keys_then_kill() -> tempfile::TempDir {
    let s = KvdServer::start(AOF);
    let mut c = Raw::new(&s);
    for i in 0..10 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "value"]), ok());
    }
    s.into_dir()
}

/// Runs kvd expecting it to fail at startup; returns its stderr.
fn startup_failure(dir: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(kvd_binary())
        .arg("--port")
        .arg(free_port().to_string())
        .arg("--dir")
        .arg(dir)
        .args(AOF)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvd");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(!st.success(), "kvd started on a corrupt AOF");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kvd did not fail on a corrupt AOF");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn torn_tail_is_cut_and_the_prefix_loads() {
    let dir = ten_keys_then_kill();
    let f = last_incr(dir.path());
    let len = aof_data_len(&std::fs::read(&f).unwrap()) as u64;
    // Cut the last command (SET k9 value) in its middle (and the zeros).
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(len - 7).unwrap();
    drop(file);
    let s = KvdServer::start_in(dir, AOF);
    let mut c = Raw::new(&s);
    for i in 0..9 {
        assert_eq!(c.call(&["GET", &format!("k{i}")]), bulk("value"));
    }
    assert_eq!(c.call(&["GET", "k9"]), nil());
    assert_ne!(info_field(&mut c, "kvd_aof_load_truncated_bytes"), "0");
    // New writes append after the repaired tail and replay.
    assert_eq!(c.call(&["SET", "k9", "again"]), ok());
    let s = s.restart();
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["GET", "k9"]), bulk("again"));
    assert_eq!(c.call(&["DBSIZE"]), int(10));
}

#[test]
fn flipped_byte_in_the_middle_fails_naming_file_and_offset() {
    let dir = ten_keys_then_kill();
    let f = last_incr(dir.path());
    let mut bytes = std::fs::read(&f).unwrap();
    // The `*` starting the 5th SET: a byte that cannot be there.
    let starts: Vec<usize> = bytes
        .windows(8)
        .enumerate()
        .filter(|(_, w)| w == b"*3\r\n$3\r\n")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 10);
    let off = starts[4];
    bytes[off] = b'X';
    std::fs::write(&f, &bytes).unwrap();
    let err = startup_failure(dir.path(), &["--aof-load-truncated", "no"]);
    let name = f.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name), "error does not name the file: {err}");
    assert!(
        err.contains(&format!("offset {off}")),
        "error does not name offset {off}: {err}"
    );
    // aof-load-truncated yes: the last file is cut at the corrupt command.
    let s = KvdServer::start_in(dir, &[AOF, &["--aof-load-truncated", "yes"]].concat());
    let mut c = Raw::new(&s);
    for i in 0..4 {
        assert_eq!(c.call(&["GET", &format!("k{i}")]), bulk("value"));
    }
    assert_eq!(c.call(&["DBSIZE"]), int(4));
}

#[test]
fn corruption_in_an_earlier_file_fails_even_with_aof_load_truncated() {
    let dir = ten_keys_then_kill();
    let first = last_incr(dir.path());
    let aofdir = dir.path().join("appendonlydir");
    // A second incremental file after it, as a rotation leaves it.
    std::fs::write(
        aofdir.join("appendonly.aof.2.incr.aof"),
        [encode(&["SELECT", "0"]), encode(&["SET", "k10", "value"])].concat(),
    )
    .unwrap();
    let manifest = aofdir.join("appendonly.aof.manifest");
    let mut m = std::fs::read_to_string(&manifest).unwrap();
    m.push_str("file appendonly.aof.2.incr.aof seq 2 type i\n");
    std::fs::write(&manifest, m).unwrap();
    // Both files load while intact.
    let s = KvdServer::start_in(dir, AOF);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["DBSIZE"]), int(11));
    let dir = s.into_dir();
    // A flipped structural byte in the first (not the last) file.
    let mut bytes = std::fs::read(&first).unwrap();
    let half = aof_data_len(&bytes) / 2;
    let off = half + bytes[half..].iter().position(|&b| b == b'*').unwrap();
    bytes[off] = b'X';
    std::fs::write(&first, &bytes).unwrap();
    let err = startup_failure(dir.path(), &["--aof-load-truncated", "yes"]);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name), "error does not name the file: {err}");
    assert!(
        err.contains(&format!("offset {off}")),
        "no offset {off}: {err}"
    );
}
