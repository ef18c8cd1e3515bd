//! The `kvd` binary's command line, run through Cargo's `CARGO_BIN_EXE_kvd`.
//!
//! Besides what it checks, this file matters to the build: Cargo builds a package's
//! binaries only for that package's own integration tests, so this test is what makes
//! `cargo test --workspace` produce `target/<profile>/kvd`, which the workspace-level
//! tests in `tests/` start (see `kvd_suite::kvd_binary`).

use std::io::Write;
use std::process::{Command, Stdio};

const KVD: &str = env!("CARGO_BIN_EXE_kvd");

#[test]
fn help_prints_usage() {
    for flag in ["--help", "-h"] {
        let out = Command::new(KVD).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("Usage: kvd [/path/to/kvd.conf] [options]"),
            "{text}"
        );
    }
}

#[test]
fn config_from_stdin_is_parsed() {
    // `kvd -` reads the config file from standard input, like redis-server.
    let mut child = Command::new(KVD)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"port notanumber\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FATAL CONFIG FILE ERROR"), "{err}");
    assert!(
        err.contains("argument couldn't be parsed into an integer"),
        "{err}"
    );
}
