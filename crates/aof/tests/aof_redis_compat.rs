//! The files are Redis's: `redis-check-aof` validates them and
//! `redis-server` 7 loads the directory. Skipped (with a message) when the
//! Redis tools are not installed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aof::{Aof, AofConfig, Batch, FsyncPolicy};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn write_sample(dir: &Path) {
    let aof = Aof::open(AofConfig::new(dir).fsync(FsyncPolicy::Always)).unwrap();
    aof.append(0, &["SET", "greeting", "hello\r\nworld"])
        .unwrap()
        .wait()
        .unwrap();
    aof.append_batch(3, &[&["SET", "a", "1"][..], &["INCR", "a"]])
        .unwrap()
        .wait()
        .unwrap();
    let mut b = Batch::new();
    b.multi(&[
        (0, vec!["RPUSH", "list", "x", "y"]),
        (5, vec!["SET", "db5", "v"]),
    ]);
    aof.submit(&mut b).unwrap().wait().unwrap();
    aof.close().unwrap();
}

#[test]
fn redis_check_aof_accepts_the_directory() {
    if !have("redis-check-aof") {
        eprintln!("skipped: redis-check-aof not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("appendonlydir");
    write_sample(&dir);
    for file in ["appendonly.aof.manifest", "appendonly.aof.1.incr.aof"] {
        let out = Command::new("redis-check-aof")
            .arg(dir.join(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("is valid"),
            "{file}: {text}"
        );
    }
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redis_server_loads_the_directory() {
    if !have("redis-server") || !have("redis-cli") {
        eprintln!("skipped: redis-server/redis-cli not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_sample(&tmp.path().join("appendonlydir"));
    let sock = tmp.path().join("redis.sock");
    let _server = Server(
        Command::new("redis-server")
            .arg("--dir")
            .arg(tmp.path())
            .args([
                "--appendonly",
                "yes",
                "--appenddirname",
                "appendonlydir",
                "--port",
                "0",
                "--save",
                "",
            ])
            .arg("--unixsocket")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cli = |db: &str, args: &[&str]| {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&sock)
            .args(["-n", db])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli("0", &["PING"]).trim() != "PONG" {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cli("0", &["GET", "greeting"]), "hello\r\nworld\n");
    assert_eq!(cli("3", &["GET", "a"]), "2\n");
    assert_eq!(cli("0", &["LRANGE", "list", "0", "-1"]), "x\ny\n");
    assert_eq!(cli("5", &["GET", "db5"]), "v\n");
    let _ = cli("0", &["SHUTDOWN", "NOSAVE"]);
}
