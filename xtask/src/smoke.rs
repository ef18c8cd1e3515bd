//! `cargo xtask smoke`: the real `kvd` binary checked with the real Redis tools.
use anyhow::{bail, ensure, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server when dropped, so a failed check never leaves it running.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(bin: Option<PathBuf>) -> Result<()> {
    for tool in ["redis-cli", "redis-benchmark"] {
        Command::new(tool)
            .arg("--version")
            .output()
            .with_context(|| format!("{tool} not found: apt-get install -y redis-tools"))?;
    }
    let bin = match bin {
        Some(b) => b,
        None => {
            crate::run(crate::cargo().args(["build", "-p", "kvd"]))?;
            crate::target_dir().join("debug/kvd")
        }
    };
    ensure!(bin.exists(), "kvd binary {} does not exist", bin.display());

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("kvd-smoke-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let _server = Server { child, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "kvd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let cli = |args: &[&str]| -> Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()?;
        ensure!(out.status.success(), "redis-cli {args:?} failed");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    expect(cli(&["PING"])?, "PONG")?;
    expect(cli(&["SET", "smoke:key", "hello world"])?, "OK")?;
    expect(cli(&["GET", "smoke:key"])?, "hello world")?;
    expect(cli(&["INCRBY", "smoke:n", "41"])?, "41")?;
    expect(cli(&["INCR", "smoke:n"])?, "42")?;
    expect(
        cli(&["GET"])?,
        "ERR wrong number of arguments for 'get' command",
    )?;
    expect(cli(&["EVAL", "return 'hello'", "0"])?, "hello")?;
    expect(
        cli(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", "smoke:n"])?,
        "43",
    )?;

    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-n",
            "20000",
            "-c",
            "20",
            "-t",
            "set,get,incr",
            "-q",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    ensure!(out.status.success(), "redis-benchmark failed");
    for t in ["SET", "GET", "INCR"] {
        ensure!(
            text.lines()
                .any(|l| l.contains(&format!("{t}: ")) && l.contains("requests per second")),
            "redis-benchmark printed no {t} result"
        );
    }
    expect(cli(&["GET", "smoke:key"])?, "hello world")?;
    eprintln!("xtask smoke: ok (port {port})");
    Ok(())
}

fn expect(got: String, want: &str) -> Result<()> {
    if got != want {
        bail!("expected {want:?}, got {got:?}");
    }
    Ok(())
}
