//! Graceful shutdown: SHUTDOWN and SIGTERM/SIGINT exit 0.
mod util;

use std::process::Command;
use std::time::Duration;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn shutdown_command_exits_zero() {
    let mut s = KvdServer::start(&[]);
    let mut other = Raw::new(&s);
    assert_eq!(other.call(&["PING"]), Reply::Status("PONG".into()));
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SHUTDOWN", "FOO"]), err("ERR syntax error"));
    assert_eq!(
        c.call(&["SHUTDOWN", "ABORT"]),
        err("ERR No shutdown in progress.")
    );
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.try_read().is_none(), "SHUTDOWN closes without a reply");
    let st = s.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    assert!(other.is_closed());
}

fn signal_exits_zero(sig: &str) {
    let mut s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    let st = Command::new("kill")
        .args([sig, &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let st = s.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{sig}: {st:?}");
}

#[test]
fn sigterm_exits_zero() {
    signal_exits_zero("-TERM");
}

#[test]
fn sigint_exits_zero() {
    signal_exits_zero("-INT");
}
