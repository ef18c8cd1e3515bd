//! Test support for kvd's workspace-level integration tests (`tests/*.rs`).
//!
//! Tests here use real components only: [`KvdServer::start`] runs the real
//! `kvd` binary built by `cargo test` on a free loopback port with its own
//! temporary data directory, and tests talk to it with the `redis` crate.
#![forbid(unsafe_code)]

pub mod recovery;

/// Length of an AOF file's data: up to its last non-zero byte (a killed
/// server's file ends in the zeros it preallocated under `appendfsync
/// always`).
pub fn aof_data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// kvd flags for the AOF with `appendfsync always` and no save points:
/// every acknowledged write is on disk, nothing else is.
pub const AOF_ALWAYS: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
];

/// Path of the `kvd` binary that `cargo test` built next to the test executable,
/// or `$KVD_BIN` when set.
pub fn kvd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KVD_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-exe> -> target/<profile>/kvd
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("kvd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "kvd binary not found at {} (run through `cargo test --workspace`, which builds it, or set KVD_BIN)",
        bin.display()
    );
    bin
}

/// A numeric field of the default `INFO` sections (panics if it is missing).
pub fn info_u64(c: &mut redis::Connection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").query(c).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A running `kvd` process with its own port and data directory.
///
/// Dropping it kills the process (SIGKILL) and removes the directory unless
/// it was handed over with [`KvdServer::into_dir`].
#[derive(Debug)]
pub struct KvdServer {
    child: Option<Child>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
}

impl KvdServer {
    /// Starts kvd on a free port in a fresh temporary directory.
    pub fn start(args: &[&str]) -> KvdServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, args)
    }

    /// Starts kvd with `--dir` set to `dir` (a restart reuses the same data).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> KvdServer {
        Self::launch(dir, args, None)
    }

    /// Starts kvd with a file size limit (`ulimit -f`, in 512-byte blocks):
    /// any write past it fails with EFBIG, like a full disk or quota.
    pub fn start_with_file_limit(args: &[&str], blocks: u64) -> KvdServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::launch(dir, args, Some(blocks))
    }

    fn launch(dir: tempfile::TempDir, args: &[&str], file_blocks: Option<u64>) -> KvdServer {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = match file_blocks {
                None => Command::new(kvd_binary()),
                Some(b) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("ulimit -f {b} && exec \"$0\" \"$@\""))
                        .arg(kvd_binary());
                    c
                }
            };
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--dir")
                .arg(dir.path())
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn kvd");
            match wait_ready(&mut child, port, Duration::from_secs(60)) {
                Ok(()) => {
                    // Keep draining stderr so the server never blocks on a full pipe.
                    if let Some(stderr) = child.stderr.take() {
                        std::thread::spawn(move || {
                            let mut r = BufReader::new(stderr);
                            let mut line = String::new();
                            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                                if std::env::var_os("KVD_TEST_LOG").is_some() {
                                    eprint!("[kvd:{port}] {line}");
                                }
                                line.clear();
                            }
                        });
                    }
                    return KvdServer {
                        child: Some(child),
                        port,
                        dir: Some(dir),
                        extra_args: args.iter().map(|s| s.to_string()).collect(),
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = e;
                }
            }
        }
        panic!("kvd did not start: {last_err}");
    }

    /// The loopback port kvd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    /// A `redis::Client` for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("client")
    }

    /// A new synchronous connection.
    pub fn conn(&self) -> redis::Connection {
        let c = self.client();
        c.get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect to kvd")
    }

    /// A raw TCP stream, for speaking RESP by hand.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s
    }

    /// Sends raw bytes and reads until `expect_len` bytes came back or the
    /// peer closed; returns what was read.
    pub fn raw_roundtrip(&self, bytes: &[u8], expect_len: usize) -> Vec<u8> {
        let mut s = self.raw();
        s.write_all(bytes).expect("write");
        read_at_least(&mut s, expect_len)
    }

    /// Waits for the process to exit by itself (e.g. after SHUTDOWN or a
    /// signal) and returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "kvd did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the process with SIGKILL (a crash) and keeps the data directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts on the same data directory with the same extra arguments
    /// (kills first if still running).
    pub fn restart(mut self) -> KvdServer {
        self.kill();
        let dir = self.dir.take().expect("dir");
        let args = std::mem::take(&mut self.extra_args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        KvdServer::start_in(dir, &args)
    }

    /// Stops the server and hands back its data directory.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.kill();
        self.dir.take().expect("dir")
    }
}

impl Drop for KvdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads until at least `n` bytes arrived, the peer closed, or the read timed out.
pub fn read_at_least(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < n {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
            Err(_) => break,
        }
    }
    out
}

fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("kvd exited early with {st}: {err}"));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            if s.write_all(b"PING\r\n").is_ok() {
                let got = read_at_least(&mut s, 7);
                if got.starts_with(b"+PONG") || got.starts_with(b"-NOAUTH") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("kvd not ready on port {port} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
