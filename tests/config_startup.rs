//! Startup options: redis-server names and semantics, config file, errors.
mod util;

use std::process::{Command, Stdio};
use std::time::Duration;

use kvd_suite::{kvd_binary, KvdServer};
use util::*;

fn startup_error(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    startup_error_in(dir.path(), args)
}

/// kvd's stderr when started with `--dir dir` and `args`, which must fail.
fn startup_error_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(kvd_binary())
        .args(["--port", "0", "--dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "kvd {args:?} must fail to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_or_bad_options_fail_startup() {
    let e = startup_error(&["--no-such-option", "1"]);
    assert!(
        e.contains("FATAL CONFIG FILE ERROR") && e.contains("no-such-option"),
        "{e}"
    );
    assert!(
        e.contains("Bad directive or wrong number of arguments"),
        "{e}"
    );
    let e = startup_error(&["--port", "abc"]);
    assert!(
        e.contains("argument couldn't be parsed into an integer"),
        "{e}"
    );
    let e = startup_error(&["--databases", "300"]);
    assert!(e.contains("databases"), "{e}");
    let e = startup_error(&["--maxmemory", "12qb"]);
    assert!(e.contains("argument must be a memory value"), "{e}");
    let e = startup_error(&["--appendfsync", "sometimes"]);
    assert!(
        e.contains("argument(s) must be one of the following: always, everysec, no"),
        "{e}"
    );
    let e = startup_error(&["stray"]);
    assert!(e.contains("stray"), "{e}");
}

#[test]
fn options_are_visible_in_config_get() {
    let s = KvdServer::start(&[
        "--maxmemory",
        "100mb",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "60",
        "1000",
        "--lua-time-limit",
        "777",
        "--maxmemory-policy",
        "allkeys-lru",
        "--loglevel",
        "warning",
    ]);
    let mut c = Raw::new(&s);
    let get = |c: &mut Raw, name: &str| c.call(&["CONFIG", "GET", name]).items()[1].text();
    assert_eq!(get(&mut c, "maxmemory"), "104857600");
    assert_eq!(get(&mut c, "appendonly"), "yes");
    assert_eq!(get(&mut c, "appendfsync"), "always");
    assert_eq!(get(&mut c, "save"), "60 1000");
    assert_eq!(get(&mut c, "busy-reply-threshold"), "777");
    assert_eq!(get(&mut c, "lua-time-limit"), "777");
    assert_eq!(get(&mut c, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(get(&mut c, "databases"), "16");
    assert_eq!(get(&mut c, "bind"), "127.0.0.1");
    let all = c.call(&["CONFIG", "GET", "max*"]).items();
    assert!(all.len() >= 6 && all.len().is_multiple_of(2));
    assert_eq!(c.call(&["CONFIG", "SET", "maxmemory", "1gb"]), ok());
    assert_eq!(get(&mut c, "maxmemory"), "1073741824");
    assert_eq!(
        c.call(&["CONFIG", "SET", "timeout", "30", "hz", "20"]),
        ok()
    );
    assert_eq!(get(&mut c, "hz"), "20");
    assert_eq!(
        c.call(&["CONFIG", "SET", "port", "1"]),
        err("ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config")
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "nosuch", "1"]),
        err("ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory", "lots"]),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value")
    );
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory"]),
        err("ERR wrong number of arguments for 'config|set' command")
    );
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), ok());
    let info = c.call(&["INFO"]).text();
    for field in [
        "redis_version:7.0.0",
        "kvd_version:",
        "used_memory:",
        "keyspace_hits:",
        "role:master",
        "# Keyspace",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
}

#[test]
fn config_file_then_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kvd.conf");
    std::fs::write(
        &conf,
        "# a comment\nrequirepass \"from file\"\nmaxmemory 10mb\ndatabases 4\n\nhz 15\n",
    )
    .unwrap();
    let port = kvd_suite::free_port();
    let data = dir.path().join("new/nested/data");
    let mut child = Command::new(kvd_binary())
        .arg(&conf)
        .args(["--port", &port.to_string(), "--hz", "25", "--dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ok_ready = eventually(60, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(ok_ready);
    std::thread::sleep(Duration::from_millis(50));
    let client = redis::Client::open(format!("redis://:from%20file@127.0.0.1:{port}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hz")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, vec!["hz", "25"], "the command line overrides the file");
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, vec!["databases", "4"]);
    assert!(data.is_dir(), "--dir is created when missing");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn logfile_gets_the_banner_and_version_flag_works() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kvd.log");
    let s = KvdServer::start(&["--logfile", log.to_str().unwrap(), "--loglevel", "notice"]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["PING"]), Reply::Status("PONG".into()));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Ready to accept connections"), "{text}");
    assert!(text.contains(&format!("port={}", s.port())), "{text}");
    let out = Command::new(kvd_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kvd v="));
}

#[test]
fn a_file_where_the_log_directory_goes_fails_startup_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log"), b"server output").unwrap();
    let e = startup_error_in(dir.path(), &[]);
    let want = format!(
        "{} exists and is not a directory",
        dir.path().join("log").display()
    );
    assert!(e.contains(&want), "{e}");
    // The file is left alone.
    assert_eq!(
        std::fs::read(dir.path().join("log")).unwrap(),
        b"server output"
    );
}

#[test]
fn port_in_use_fails_startup() {
    let s = KvdServer::start(&[]);
    let e = startup_error(&["--port", &s.port().to_string()]);
    assert!(
        e.contains(&format!(
            "Could not create server TCP listening socket 127.0.0.1:{}",
            s.port()
        )),
        "{e}"
    );
}
