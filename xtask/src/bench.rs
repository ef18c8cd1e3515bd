//! `cargo xtask bench`: the same redis-benchmark matrix against kvd and
//! redis-server, per persistence mode.
//!
//! For every mode and repetition, each server is started in turn (order
//! A B, then B A, ... so machine drift cancels) on a free loopback port with
//! a fresh data directory and the mode's options, a keyspace of `--keys`
//! keys (`key:%012d`, 64-byte values: the keys `-r` makes redis-benchmark
//! hit) is preloaded over one pipelined connection, and every matrix row
//! runs as one single-threaded `redis-benchmark --csv` invocation. What a
//! server cannot serve is found out at run time and reported as
//! `n/a (<server>: <reason>)`: a mode whose AOF is not on after
//! `--appendonly yes` (`INFO persistence` `aof_enabled`), a row whose
//! command, sent once before the run, gets an error reply. Medians over the
//! repetitions are printed as a Markdown table per mode and written to
//! `bench-results/` (git-ignored).
//!
//! A second table per mode gives each server's CPU time per request (user +
//! system of the whole process, children it reaped included, from
//! `/proc/<pid>/stat`) and how busy the client was (its CPU time over wall
//! time). Where the client is near 100 %, ops/s measure the client and the
//! CPU column is what tells the servers apart.
use crate::flags::{BenchOpts, Mode};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Value size of the preload and of every SET/MSET row.
const VALUE_SIZE: usize = 64;
/// The GET + arithmetic + SET script of the EVAL and EVALSHA rows.
const SCRIPT: &str = "local v = tonumber(redis.call('GET', KEYS[1])) or 0 \
                      redis.call('SET', KEYS[1], v + 1) return v + 1";
/// Placeholder for the script's SHA1 in the EVALSHA row's arguments.
const SHA: &str = "<sha>";
/// Commands per pipelined write of the preload.
const PRELOAD_BATCH: u64 = 1000;
/// The longest one redis-benchmark run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Server {
    Kvd,
    Redis,
}

impl Server {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Server::Kvd => "kvd",
            Server::Redis => "redis",
        }
    }
}

/// One line of the matrix.
#[derive(Debug)]
struct Row {
    name: String,
    /// redis-benchmark arguments after `-h -p --csv` ([`SHA`] is replaced).
    args: Vec<String>,
    /// Sent once before the run: an error reply means "can't serve this".
    probe: Vec<String>,
    /// The probe's expected bulk reply, if it matters.
    expect: Option<&'static str>,
    /// Needs `SCRIPT LOAD` of [`SCRIPT`] first.
    needs_sha: bool,
}

fn row(name: String, args: Vec<String>, probe: Vec<String>) -> Row {
    Row {
        name,
        args,
        probe,
        expect: None,
        needs_sha: false,
    }
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The matrix for the given sizes (single-threaded client everywhere).
fn matrix(requests: u64, keys: u64) -> Vec<Row> {
    let n = requests.to_string();
    let n_pipe = (requests * 5).to_string();
    let n_fixed = requests.min(100_000).to_string();
    let r = keys.to_string();
    let d = VALUE_SIZE.to_string();
    let value = "x".repeat(VALUE_SIZE);
    let k0 = "key:000000000000";
    let base = |t: &str| sv(&["-c", "50", "-n", &n, "-r", &r, "-d", &d, "-t", t]);
    let pipe = |t: &str| {
        sv(&[
            "-c", "50", "-P", "16", "-n", &n_pipe, "-r", &r, "-d", &d, "-t", t,
        ])
    };
    let script = |cmd: &str, body: &str| {
        sv(&[
            "-c",
            "50",
            "-n",
            &n,
            "-r",
            &r,
            cmd,
            body,
            "1",
            "key:__rand_int__",
        ])
    };
    let set_probe = sv(&["SET", k0, &value]);
    let get_probe = sv(&["GET", k0]);
    let mut mset_probe = sv(&["MSET"]);
    for _ in 0..10 {
        mset_probe.extend(sv(&["key:{tag}:000000000000", &value]));
    }
    vec![
        row("SET".into(), base("set"), set_probe.clone()),
        row("GET".into(), base("get"), get_probe.clone()),
        row("SET -P 16".into(), pipe("set"), set_probe.clone()),
        row("GET -P 16".into(), pipe("get"), get_probe),
        row(
            "INCR".into(),
            base("incr"),
            sv(&["INCR", "counter:000000000000"]),
        ),
        row("MSET (10 keys)".into(), base("mset"), mset_probe),
        Row {
            expect: Some("hello"),
            ..row(
                "EVAL return 'hello'".into(),
                sv(&["-c", "50", "-n", &n, "eval", "return 'hello'", "0"]),
                sv(&["EVAL", "return 'hello'", "0"]),
            )
        },
        row(
            "EVAL GET+arith+SET".into(),
            script("eval", SCRIPT),
            sv(&["EVAL", SCRIPT, "1", k0]),
        ),
        Row {
            needs_sha: true,
            ..row(
                "EVALSHA GET+arith+SET".into(),
                script("evalsha", SHA),
                sv(&["EVALSHA", SHA, "1", k0]),
            )
        },
        row(
            format!("SET -c 100 -n {n_fixed} -r 100000"),
            sv(&[
                "-c", "100", "-n", &n_fixed, "-r", "100000", "-d", &d, "-t", "set",
            ]),
            set_probe,
        ),
    ]
}

/// One measurement of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// CPU spent during the run (None where /proc can't tell).
    pub cpu: Option<Cpu>,
}

/// CPU time of one run, from `/proc`: what tells the servers apart on rows
/// where the single-threaded client, not the server, sets the pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// Server process CPU (user + system, all threads, and children it
    /// reaped during the run, as Redis's AOF-rewrite child) per request, µs.
    pub server_us: f64,
    /// redis-benchmark's CPU time over its wall time: near 1.0, the client's
    /// one thread is saturated and ops/s measure it, not the server.
    pub client_busy: f64,
}

/// What one server did with one row in one repetition.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Sample),
    /// The server can't serve it (detected at run time).
    Na(String),
    /// Something went wrong while it should have worked.
    Err(String),
}

/// Everything one server run produced.
#[derive(Debug)]
struct ServerRun {
    outcomes: Vec<Outcome>,
    preload_secs: Option<f64>,
    notes: Vec<String>,
}

/// Parses `redis-benchmark --csv` output of one test (Redis 7 columns:
/// `test,rps,avg_latency_ms,min_latency_ms,p50_latency_ms,p95_latency_ms,
/// p99_latency_ms,max_latency_ms`), located by header name.
pub fn parse_csv(out: &str) -> Result<Sample> {
    let mut lines = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .map(split_csv);
    let header = lines
        .find(|h| h.iter().any(|f| f == "test"))
        .context("no CSV header (\"test\",\"rps\",...) in redis-benchmark output")?;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("redis-benchmark CSV has no {name:?} column: {header:?}"))
    };
    let (rps, p50, p99) = (col("rps")?, col("p50_latency_ms")?, col("p99_latency_ms")?);
    let data: Vec<Vec<String>> = lines.collect();
    ensure!(
        data.len() == 1,
        "expected one CSV result line, got {}: {data:?}",
        data.len()
    );
    let num = |i: usize| -> Result<f64> {
        let f = data[0]
            .get(i)
            .with_context(|| format!("short CSV line {:?}", data[0]))?;
        f.parse()
            .with_context(|| format!("bad number {f:?} in {:?}", data[0]))
    };
    Ok(Sample {
        rps: num(rps)?,
        p50: num(p50)?,
        p99: num(p99)?,
        cpu: None,
    })
}

/// Splits one CSV line with `"quoted"` fields (`""` is a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The first "Error from server" line of redis-benchmark's stderr, else its
/// last non-empty line.
fn benchmark_error(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.starts_with("Error from server"))
        .or(lines.last())
        .map(|l| l.to_string())
}

/// A server error reply shortened for a table cell:
/// `ERR unknown command 'EVAL', with args beginning with: ...` becomes
/// `ERR unknown command 'EVAL'`.
pub fn short_error(e: &str) -> String {
    let e = e.split(", with args").next().unwrap_or(e).trim();
    if e.chars().count() > 70 {
        format!("{}...", e.chars().take(67).collect::<String>())
    } else {
        e.to_string()
    }
}

// ---- a minimal RESP2 client (probes, preload, INFO; also used by `tiered.rs`) ----

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

pub(crate) struct Conn {
    pub(crate) r: BufReader<TcpStream>,
    pub(crate) w: TcpStream,
}

impl Conn {
    pub(crate) fn open(port: u16) -> Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        s.set_write_timeout(Some(Duration::from_secs(120)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    pub(crate) fn cmd<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Reply> {
        let mut buf = Vec::new();
        encode(&mut buf, args);
        self.w.write_all(&buf)?;
        self.read()
    }

    fn line(&mut self) -> Result<String> {
        let mut l = String::new();
        ensure!(self.r.read_line(&mut l)? > 0, "connection closed");
        ensure!(l.ends_with("\r\n"), "bad RESP line {l:?}");
        l.truncate(l.len() - 2);
        Ok(l)
    }

    pub(crate) fn read(&mut self) -> Result<Reply> {
        let l = self.line()?;
        let (t, rest) = l.split_at(1.min(l.len()));
        let int = || -> Result<i64> { rest.parse().with_context(|| format!("bad RESP {l:?}")) };
        Ok(match t {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(int()?),
            "$" => match int()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut b = vec![0; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            },
            "*" => match int()? {
                n if n < 0 => Reply::Array(None),
                n => Reply::Array(Some((0..n).map(|_| self.read()).collect::<Result<_>>()?)),
            },
            _ => bail!("unexpected RESP reply {l:?}"),
        })
    }
}

pub(crate) fn encode<S: AsRef<[u8]>>(buf: &mut Vec<u8>, args: &[S]) {
    let _ = write!(buf, "*{}\r\n", args.len());
    for a in args {
        let a = a.as_ref();
        let _ = write!(buf, "${}\r\n", a.len());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Writes `key:%012d` = 64 x's for every key in `0..keys`, pipelined.
fn preload(port: u16, keys: u64) -> Result<()> {
    let mut c = Conn::open(port)?;
    let value = vec![b'x'; VALUE_SIZE];
    let mut buf = Vec::new();
    let mut i = 0;
    while i < keys {
        let end = (i + PRELOAD_BATCH).min(keys);
        buf.clear();
        for k in i..end {
            encode(
                &mut buf,
                &[&b"SET"[..], format!("key:{k:012}").as_bytes(), &value],
            );
        }
        c.w.write_all(&buf)?;
        for _ in i..end {
            match c.read()? {
                Reply::Simple(s) if s == "OK" => {}
                other => bail!("preload: SET replied {other:?}"),
            }
        }
        i = end;
    }
    match c.cmd(&["DBSIZE"])? {
        Reply::Int(n) if n as u64 >= keys => Ok(()),
        other => bail!("preload: DBSIZE replied {other:?} after {keys} SETs"),
    }
}

// ---- servers ----

/// A running server: killed, and its directory removed, when dropped.
pub(crate) struct Running {
    pub(crate) child: Child,
    /// Holds `data/` (its `--dir`) and `server.log`.
    pub(crate) root: PathBuf,
    pub(crate) port: u16,
}

impl Running {
    /// The server's stdout and stderr.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Its `--dir`.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The last `n` non-empty lines of its log, joined with " / ".
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let log = read_log(&self.log_path());
        let mut tail: Vec<&str> = log
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(n)
            .collect();
        if tail.is_empty() {
            return "(empty log)".into();
        }
        tail.reverse();
        tail.join(" / ")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `server` (kvd is `kvd_bin`) on a free loopback port with a fresh
/// `root/data` as `--dir` (`root` is emptied first) and `args` after the
/// common options; its output goes to `root/server.log`.
pub(crate) fn start_server(
    server: Server,
    kvd_bin: &Path,
    root: PathBuf,
    args: &[&str],
) -> Result<Running> {
    let port = free_port()?;
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let log = std::fs::File::create(root.join("server.log"))?;
    let mut cmd = match server {
        Server::Kvd => Command::new(kvd_bin),
        Server::Redis => {
            let mut c = Command::new("redis-server");
            c.args(["--daemonize", "no", "--logfile", ""]);
            c
        }
    };
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(&data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    match cmd.spawn() {
        Ok(child) => Ok(Running { child, root, port }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&root);
            Err(e).with_context(|| format!("starting {cmd:?}"))
        }
    }
}

/// Waits (up to 60 s) until the server answers PING; `Some(status)` if it
/// exited first.
pub(crate) fn wait_ready(srv: &mut Running, name: &str) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = srv.child.try_wait()? {
            return Ok(Some(st));
        }
        if let Ok(Reply::Simple(p)) = Conn::open(srv.port).and_then(|mut c| c.cmd(&["PING"])) {
            if p == "PONG" {
                return Ok(None);
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{name} did not answer PING on port {} within 60s",
            srv.port
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server log without ANSI colour sequences.
fn read_log(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (0x40..=0x7e)
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Log lines that warn about an option (kvd's startup warnings).
fn warnings_about(log: &str, option: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") && l.contains(option))
        .map(|l| {
            let msg = l.split_once("WARN").map_or(l, |(_, m)| m).trim();
            msg.split(": ").next().unwrap_or(msg).to_string()
        })
        .collect()
}

pub(crate) fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .map(str::to_string)
}

/// Clock ticks (`utime + stime`, all threads) of process `pid`, and
/// `cutime + cstime` (its waited-for children), from `/proc/<pid>/stat`.
fn proc_ticks(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat)
}

fn parse_stat_ticks(stat: &str) -> Option<(u64, u64)> {
    // Fields after the `(comm)`, which may hold spaces: index 0 is field 3
    // (state), so utime (field 14) is index 11.
    let f: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((n(11)? + n(12)?, n(13)? + n(14)?))
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux's USER_HZ is 100).
fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| sh("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0))
}

/// The `-n` of a row's arguments.
fn requests_of(args: &[String]) -> Option<f64> {
    let i = args.iter().position(|a| a == "-n")?;
    args.get(i + 1)?.parse().ok()
}

/// `root/bench.{out,err}` of one redis-benchmark run; with `server`, the
/// server's CPU per request and the client's busy share ([`Cpu`]).
fn run_benchmark(port: u16, args: &[String], root: &Path, server: Option<u32>) -> Result<Outcome> {
    let (out_p, err_p) = (root.join("bench.out"), root.join("bench.err"));
    let server = server.map(|p| p.to_string());
    let before = server
        .as_deref()
        .and_then(proc_ticks)
        .zip(proc_ticks("self"));
    let t0 = Instant::now();
    let mut child = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p)?)
        .stderr(std::fs::File::create(&err_p)?)
        .spawn()
        .context("spawning redis-benchmark")?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome::Err(format!(
                "redis-benchmark timed out after {}s",
                RUN_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = t0.elapsed().as_secs_f64();
    // The client was reaped above: its CPU is now in our cutime + cstime.
    let after = server
        .as_deref()
        .and_then(proc_ticks)
        .zip(proc_ticks("self"));
    let out = std::fs::read_to_string(&out_p).unwrap_or_default();
    let err = std::fs::read_to_string(&err_p).unwrap_or_default();
    if !status.success() || err.contains("Error from server") {
        let why = benchmark_error(&err).unwrap_or_else(|| format!("exit {status}"));
        return Ok(Outcome::Err(short_error(&why)));
    }
    Ok(match parse_csv(&out) {
        Ok(mut s) => {
            if let (Some(((s0, sc0), (_, c0))), Some(((s1, sc1), (_, c1))), Some(n)) =
                (before, after, requests_of(args))
            {
                let secs = |ticks: u64| ticks as f64 / clk_tck();
                // The server's reaped children count: Redis rewrites its AOF
                // in a forked child, kvd on a thread of its own.
                s.cpu = Some(Cpu {
                    server_us: secs((s1 + sc1).saturating_sub(s0 + sc0)) * 1e6 / n,
                    client_busy: secs(c1.saturating_sub(c0)) / wall,
                });
            }
            Outcome::Ok(s)
        }
        Err(e) => Outcome::Err(format!("{e:#}")),
    })
}

/// A row's arguments with [`SHA`] replaced by the loaded script's SHA1.
fn fill_sha(args: &[String], sha: &str) -> Vec<String> {
    args.iter()
        .map(|a| if a == SHA { sha.to_string() } else { a.clone() })
        .collect()
}

/// Runs every matrix row once against the server on `port`, after a
/// preload of `keys` keys (the training of `cargo xtask pgo`); fails if a
/// row fails.
pub(crate) fn train_rows(port: u16, root: &Path, requests: u64, keys: u64) -> Result<()> {
    preload(port, keys)?;
    let sha = match Conn::open(port)?.cmd(&["SCRIPT", "LOAD", SCRIPT])? {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => bail!("SCRIPT LOAD replied {other:?}"),
    };
    for row in matrix(requests, keys) {
        let args = fill_sha(&row.args, &sha);
        if let Outcome::Err(e) | Outcome::Na(e) = run_benchmark(port, &args, root, None)? {
            bail!("training row {}: {e}", row.name);
        }
    }
    Ok(())
}

fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Ctx<'a> {
    opts: &'a BenchOpts,
    kvd_bin: &'a Path,
    rows: &'a [Row],
    loads: Vec<f64>,
    seq: u32,
}

/// Starts `server` in `mode`, preloads, runs every row, stops it.
fn run_server(cx: &mut Ctx<'_>, server: Server, mode: Mode) -> Result<ServerRun> {
    let n_rows = cx.rows.len();
    let all = |o: Outcome| vec![o; n_rows];
    cx.seq += 1;
    let root = std::env::temp_dir().join(format!(
        "kvd-xbench-{}-{}-{}",
        std::process::id(),
        cx.seq,
        server.name()
    ));
    let mut srv = start_server(server, cx.kvd_bin, root, &mode.server_args())?;
    let (port, log_p) = (srv.port, srv.log_path());

    // Ready when it answers PING; a server that exits at startup with these
    // options can't serve the mode.
    if let Some(st) = wait_ready(&mut srv, server.name())? {
        return Ok(ServerRun {
            // Not starting without persistence is a failure; not
            // starting with AOF options is "can't serve this mode".
            outcomes: all(if mode == Mode::None {
                Outcome::Err(format!("exited at startup ({st})"))
            } else {
                Outcome::Na(format!("exited at startup ({st})"))
            }),
            preload_secs: None,
            notes: vec![format!(
                "{} exited at startup with `{}`: {}",
                server.name(),
                mode_args(mode),
                srv.log_tail(1)
            )],
        });
    }

    // Is the mode really on?
    if let Some(policy) = mode.appendfsync() {
        let mut c = Conn::open(port)?;
        let info = c.cmd(&["INFO", "persistence"])?.text().unwrap_or_default();
        let aof = info_field(&info, "aof_enabled");
        let fsync = match c.cmd(&["CONFIG", "GET", "appendfsync"])? {
            Reply::Array(Some(v)) => v.get(1).and_then(Reply::text),
            _ => None,
        };
        if aof.as_deref() != Some("1") || fsync.as_deref() != Some(policy) {
            let short = if aof.as_deref() != Some("1") {
                format!("aof_enabled:{}", aof.as_deref().unwrap_or("(missing)"))
            } else {
                format!("appendfsync {}", fsync.as_deref().unwrap_or("(missing)"))
            };
            let mut note = format!(
                "{} started with `{}`: INFO persistence has aof_enabled:{}, CONFIG GET appendfsync = {}",
                server.name(),
                mode_args(mode),
                aof.as_deref().unwrap_or("(missing)"),
                fsync.as_deref().unwrap_or("(missing)"),
            );
            for w in warnings_about(&read_log(&log_p), "appendonly") {
                let _ = write!(note, "; startup warning: \"{w}\"");
            }
            if let Some(p) = info_field(&info, "kvd_persistence") {
                let _ = write!(note, "; INFO kvd_persistence: \"{p}\"");
            }
            return Ok(ServerRun {
                outcomes: all(Outcome::Na(short)),
                preload_secs: None,
                notes: vec![note],
            });
        }
    }

    let t0 = Instant::now();
    preload(port, cx.opts.keys)
        .with_context(|| format!("preloading {} keys into {}", cx.opts.keys, server.name()))?;
    let preload_secs = t0.elapsed().as_secs_f64();

    let sha = match Conn::open(port)?.cmd(&["SCRIPT", "LOAD", SCRIPT])? {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Reply::Error(e) => Err(format!("SCRIPT LOAD: {}", short_error(&e))),
        other => Err(format!("SCRIPT LOAD replied {other:?}")),
    };

    let mut outcomes = Vec::with_capacity(n_rows);
    for row in cx.rows {
        let sha_s = match (&sha, row.needs_sha) {
            (Ok(s), _) => s.as_str(),
            (Err(e), true) => {
                outcomes.push(Outcome::Na(e.clone()));
                continue;
            }
            (Err(_), false) => "",
        };
        let probe = fill_sha(&row.probe, sha_s);
        match Conn::open(port).and_then(|mut c| c.cmd(&probe)) {
            Err(e) => {
                outcomes.push(Outcome::Err(format!("{} probe: {e:#}", probe[0])));
                continue;
            }
            Ok(Reply::Error(e)) => {
                outcomes.push(Outcome::Na(short_error(&e)));
                continue;
            }
            Ok(r) => {
                if let Some(want) = row.expect {
                    if r.text().as_deref() != Some(want) {
                        outcomes.push(Outcome::Err(format!(
                            "{} replied {r:?}, expected {want:?}",
                            probe[0]
                        )));
                        continue;
                    }
                }
            }
        }
        if let Some(l) = load1() {
            cx.loads.push(l);
        }
        eprintln!("xtask bench:   {} {}", server.name(), row.name);
        let o = run_benchmark(
            port,
            &fill_sha(&row.args, sha_s),
            &srv.root,
            Some(srv.child.id()),
        )?;
        if let Outcome::Err(e) = &o {
            eprintln!("xtask bench:   {} {}: error: {e}", server.name(), row.name);
        }
        outcomes.push(o);
    }
    // A server that died mid-run failed the rows after it (they can't
    // connect); say so next to the table.
    let mut notes = Vec::new();
    if let Some(st) = srv.child.try_wait()? {
        let msg = format!(
            "{} exited during the benchmark ({st}): {}",
            server.name(),
            srv.log_tail(1)
        );
        eprintln!("xtask bench: {msg}");
        notes.push(msg);
    }
    drop(srv);
    Ok(ServerRun {
        outcomes,
        preload_secs: Some(preload_secs),
        notes,
    })
}

// ---- aggregation and report ----

/// Median (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The medians of a server's repetitions of one row.
fn aggregate(v: &[Outcome]) -> Outcome {
    if let Some(e) = v.iter().find_map(|o| match o {
        Outcome::Err(e) => Some(e),
        _ => None,
    }) {
        return Outcome::Err(e.clone());
    }
    if let Some(r) = v.iter().find_map(|o| match o {
        Outcome::Na(r) => Some(r),
        _ => None,
    }) {
        return Outcome::Na(r.clone());
    }
    let pick = |f: fn(&Sample) -> f64| -> Vec<f64> {
        v.iter()
            .filter_map(|o| match o {
                Outcome::Ok(s) => Some(f(s)),
                _ => None,
            })
            .collect()
    };
    let cpus: Vec<Cpu> = v
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok(s) => s.cpu,
            _ => None,
        })
        .collect();
    let cpu = (!cpus.is_empty()).then(|| Cpu {
        server_us: median(&cpus.iter().map(|c| c.server_us).collect::<Vec<_>>()),
        client_busy: median(&cpus.iter().map(|c| c.client_busy).collect::<Vec<_>>()),
    });
    Outcome::Ok(Sample {
        rps: median(&pick(|s| s.rps)),
        p50: median(&pick(|s| s.p50)),
        p99: median(&pick(|s| s.p99)),
        cpu,
    })
}

fn cell(o: &Outcome, server: Server, f: fn(&Sample) -> String) -> String {
    match o {
        Outcome::Ok(s) => f(s),
        Outcome::Na(r) => format!("n/a ({}: {r})", server.name()),
        Outcome::Err(e) => format!("error ({}: {e})", server.name()),
    }
}

fn ops(s: &Sample) -> String {
    format!("{:.0}", s.rps)
}

/// Renders one mode's table (`redis` is None with `--kvd-only`).
fn table(rows: &[Row], kvd: &[Outcome], redis: Option<&[Outcome]>) -> String {
    let mut t = String::new();
    let dash = "–".to_string();
    match redis {
        Some(redis) => {
            t.push_str("| row | kvd ops/s | redis ops/s | kvd/redis | kvd p50 ms | redis p50 ms | kvd p99 ms | redis p99 ms |\n");
            t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
            for ((row, k), r) in rows.iter().zip(kvd).zip(redis) {
                let ratio = match (k, r) {
                    (Outcome::Ok(k), Outcome::Ok(r)) => format!("{:.2}", k.rps / r.rps),
                    _ => dash.clone(),
                };
                let lat = |o: &Outcome, f: fn(&Sample) -> f64| match o {
                    Outcome::Ok(s) => format!("{:.3}", f(s)),
                    _ => dash.clone(),
                };
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.name,
                    cell(k, Server::Kvd, ops),
                    cell(r, Server::Redis, ops),
                    ratio,
                    lat(k, |s| s.p50),
                    lat(r, |s| s.p50),
                    lat(k, |s| s.p99),
                    lat(r, |s| s.p99),
                );
            }
        }
        None => {
            t.push_str("| row | kvd ops/s | kvd p50 ms | kvd p99 ms |\n|---|---:|---:|---:|\n");
            for (row, k) in rows.iter().zip(kvd) {
                let lat = |f: fn(&Sample) -> f64| match k {
                    Outcome::Ok(s) => format!("{:.3}", f(s)),
                    _ => dash.clone(),
                };
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} |",
                    row.name,
                    cell(k, Server::Kvd, ops),
                    lat(|s| s.p50),
                    lat(|s| s.p99)
                );
            }
        }
    }
    t
}

/// Renders one mode's CPU table (None when no run measured CPU): server
/// CPU per request for each server (and redis/kvd: above 1.0, kvd needs
/// less), and how busy the client was in each server's runs.
fn cpu_table(rows: &[Row], servers: &[Server], agg: &[Vec<Outcome>]) -> Option<String> {
    let cpu = |o: &Outcome| match o {
        Outcome::Ok(s) => s.cpu,
        _ => None,
    };
    if !agg.iter().flatten().any(|o| cpu(o).is_some()) {
        return None;
    }
    let mut t = String::from("| row |");
    let mut rule = String::from("|---|");
    for s in servers {
        let _ = write!(t, " {} server CPU µs/req |", s.name());
        rule.push_str("---:|");
    }
    if servers.len() == 2 {
        t.push_str(" redis/kvd |");
        rule.push_str("---:|");
    }
    for s in servers {
        let _ = write!(t, " client busy ({} runs) |", s.name());
        rule.push_str("---:|");
    }
    let _ = writeln!(t, "\n{rule}");
    let dash = || "–".to_string();
    for (ri, row) in rows.iter().enumerate() {
        let cpus: Vec<Option<Cpu>> = agg.iter().map(|a| cpu(&a[ri])).collect();
        let _ = write!(t, "| {} |", row.name);
        for c in &cpus {
            let v = c.map_or_else(dash, |c| format!("{:.1}", c.server_us));
            let _ = write!(t, " {v} |");
        }
        if let [k, r] = cpus[..] {
            let v = match (k, r) {
                (Some(k), Some(r)) if k.server_us > 0.0 => {
                    format!("{:.2}", r.server_us / k.server_us)
                }
                _ => dash(),
            };
            let _ = write!(t, " {v} |");
        }
        for c in &cpus {
            let v = c.map_or_else(dash, |c| format!("{:.0}%", c.client_busy * 100.0));
            let _ = write!(t, " {v} |");
        }
        t.push('\n');
    }
    Some(t)
}

/// stdout of a command, trimmed, or a note why not.
pub(crate) fn sh(prog: &str, args: &[&str]) -> String {
    match Command::new(prog)
        .args(args)
        .current_dir(crate::workspace_root())
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!("unknown ({prog} failed: {})", o.status),
        Err(e) => format!("unknown ({prog}: {e})"),
    }
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn run(opts: BenchOpts) -> Result<()> {
    Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .context("redis-benchmark not found: apt-get install -y redis-tools")?;
    let redis_version = if opts.kvd_only {
        None
    } else {
        match Command::new("redis-server").arg("--version").output() {
            Ok(o) if o.status.success() => {
                Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
            }
            _ => {
                eprintln!("xtask bench: redis-server not found (apt-get install -y redis-server): kvd only");
                None
            }
        }
    };
    let bin = match &opts.bin {
        Some(b) => b.clone(),
        None if opts.pgo => crate::pgo::build()?,
        None => {
            crate::run(crate::cargo().args(["build", "--release", "-p", "kvd"]))?;
            crate::target_dir().join("release/kvd")
        }
    };
    ensure!(bin.exists(), "kvd binary {} does not exist", bin.display());

    let mut rows = matrix(opts.requests, opts.keys);
    if !opts.rows.is_empty() {
        rows.retain(|r| {
            let name = r.name.to_ascii_lowercase();
            opts.rows.iter().any(|f| name.contains(f.as_str()))
        });
        ensure!(!rows.is_empty(), "--rows {:?} matches no row", opts.rows);
    }
    let servers: Vec<Server> = if redis_version.is_some() {
        vec![Server::Kvd, Server::Redis]
    } else {
        vec![Server::Kvd]
    };

    let mut md = report_header("kvd vs redis-server: redis-benchmark matrix", Some(&bin));
    let _ = writeln!(
        md,
        "- redis-server: {}",
        redis_version.as_deref().unwrap_or("not run")
    );
    let _ = writeln!(md, "- client: {}", sh("redis-benchmark", &["--version"]));
    let _ = writeln!(
        md,
        "- settings: {} repetition(s) per mode, server order alternating (A B, B A, ...), medians reported; {} requests per row ({} on the -P 16 rows); {} preloaded keys `key:%012d` with {VALUE_SIZE}-byte values (one connection, pipelines of {PRELOAD_BATCH} SETs); single-threaded redis-benchmark (no --threads); servers on 127.0.0.1, unpinned, fresh data directory per run{}",
        opts.reps,
        opts.requests,
        opts.requests * 5,
        opts.keys,
        if opts.quick { "; --quick" } else { "" }
    );
    let _ = writeln!(md, "\nRows (`redis-benchmark -h 127.0.0.1 -p PORT --csv` + arguments; `{SHA}` is the SHA1 from SCRIPT LOAD):\n");
    for r in &rows {
        let _ = writeln!(md, "- {}: `{}`", r.name, shell_words(&r.args));
    }
    println!("{md}");

    let mut cx = Ctx {
        opts: &opts,
        kvd_bin: &bin,
        rows: &rows,
        loads: Vec::new(),
        seq: 0,
    };
    for &mode in &opts.modes {
        // results[server][row][rep]
        let mut results: Vec<Vec<Vec<Outcome>>> = vec![vec![Vec::new(); rows.len()]; servers.len()];
        let mut preloads: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        let mut notes = BTreeSet::new();
        cx.loads.clear();
        for rep in 0..opts.reps {
            let mut order = servers.clone();
            if rep % 2 == 1 {
                order.reverse();
            }
            for s in order {
                eprintln!(
                    "xtask bench: mode {}, repetition {}/{}, {}",
                    mode.name(),
                    rep + 1,
                    opts.reps,
                    s.name()
                );
                let i = servers.iter().position(|x| *x == s).expect("listed");
                let run = run_server(&mut cx, s, mode)?;
                for (slot, o) in results[i].iter_mut().zip(run.outcomes) {
                    slot.push(o);
                }
                preloads[i].extend(run.preload_secs);
                notes.extend(run.notes);
            }
        }
        let agg: Vec<Vec<Outcome>> = results
            .iter()
            .map(|per_row| per_row.iter().map(|reps| aggregate(reps)).collect())
            .collect();
        let mut sec = String::new();
        let _ = writeln!(sec, "\n## mode {}: `{}`\n", mode.name(), mode_args(mode));
        sec.push_str(&table(&rows, &agg[0], agg.get(1).map(Vec::as_slice)));
        if let Some(t) = cpu_table(&rows, &servers, &agg) {
            let _ = writeln!(
                sec,
                "\nCPU per request (medians; server: whole process, user + system, with the children it reaped during the run (Redis's AOF-rewrite fork), from /proc; client busy: redis-benchmark CPU time over wall time, 100% = its one thread saturated):\n"
            );
            sec.push_str(&t);
        }
        sec.push('\n');
        for n in &notes {
            let _ = writeln!(sec, "- note: {n}");
        }
        for (i, s) in servers.iter().enumerate() {
            if !preloads[i].is_empty() {
                let _ = writeln!(
                    sec,
                    "- preload of {} keys, {}: median {:.2} s",
                    opts.keys,
                    s.name(),
                    median(&preloads[i])
                );
            }
        }
        if !cx.loads.is_empty() {
            let _ = writeln!(
                sec,
                "- load average (1 min) sampled before each run: min {:.2}, median {:.2}, max {:.2}",
                cx.loads.iter().copied().fold(f64::INFINITY, f64::min),
                median(&cx.loads),
                cx.loads.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            );
        }
        println!("{sec}");
        md.push_str(&sec);
        // Raw ops/s per repetition, in run order.
        let _ = writeln!(
            md,
            "\n<details><summary>ops/s per repetition (in run order; kvd ran first in repetitions 1, 3, ...)</summary>\n"
        );
        let _ = writeln!(
            md,
            "| row | {} |\n|---|{}",
            servers
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(servers.len())
        );
        for (ri, r) in rows.iter().enumerate() {
            let per: Vec<String> = results
                .iter()
                .map(|res| {
                    res[ri]
                        .iter()
                        .map(|o| match o {
                            Outcome::Ok(s) => format!("{:.0}", s.rps),
                            Outcome::Na(_) => "n/a".into(),
                            Outcome::Err(_) => "error".into(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", r.name, per.join(" | "));
        }
        let _ = writeln!(md, "\n</details>\n");
    }

    let dir = crate::workspace_root().join("bench-results");
    std::fs::create_dir_all(&dir)?;
    let stamp = sh("date", &["-u", "+%Y%m%d-%H%M%S"]);
    let mut file = dir.join(format!("bench-{stamp}.md"));
    for i in 2.. {
        if !file.exists() {
            break;
        }
        file = dir.join(format!("bench-{stamp}-{i}.md"));
    }
    std::fs::write(&file, md)?;
    eprintln!("xtask bench: wrote {}", file.display());
    Ok(())
}

/// A mode's server options, shell-quoted.
fn mode_args(mode: Mode) -> String {
    shell_words(
        &mode
            .server_args()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )
}

/// Arguments as a shell would need them quoted (for the report).
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_:,.=/<>{}".contains(c))
            {
                a.clone()
            } else {
                format!("\"{}\"", a.replace('"', "\\\""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first lines of a Markdown report: title, date, host, load average, and the kvd
/// commit and version (when `kvd` is given).
pub(crate) fn report_header(title: &str, kvd: Option<&Path>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {title}\n");
    let _ = writeln!(
        md,
        "- date: {}",
        sh("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"])
    );
    let _ = writeln!(
        md,
        "- host: Linux {} (`uname -r`), nproc {}, {}; load average at start: {}",
        sh("uname", &["-r"]),
        sh("nproc", &[]),
        cpu_model(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if let Some(bin) = kvd {
        let commit = sh("git", &["rev-parse", "HEAD"]);
        let status = sh("git", &["status", "--porcelain", "--untracked-files=no"]);
        let dirty = !status.is_empty() && !status.starts_with("unknown (");
        let _ = writeln!(
            md,
            "- kvd: commit {commit}{} ({}, `{}`)",
            if dirty { " + uncommitted changes" } else { "" },
            sh(&bin.to_string_lossy(), &["--version"]),
            bin.display()
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from redis-benchmark 7.0.15 (`-t set --csv`, then a custom
    /// command whose name holds commas).
    const SET_CSV: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"25316.46\",\"1.438\",\"0.272\",\"1.007\",\"5.431\",\"8.095\",\"8.503\"\n";
    const EVAL_CSV: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\r\n\"eval local v = tonumber(redis.call('GET', KEYS[1])) or 0 redis.call('SET', KEYS[1], v + 1) return v + 1 1 key:__rand_int__\",\"19801.98\",\"2.311\",\"0.168\",\"0.895\",\"8.967\",\"9.951\",\"10.423\"\r\n";

    #[test]
    fn parses_redis_benchmark_csv() {
        assert_eq!(
            parse_csv(SET_CSV).unwrap(),
            Sample {
                rps: 25316.46,
                p50: 1.007,
                p99: 8.095,
                cpu: None
            }
        );
        let s = parse_csv(EVAL_CSV).unwrap();
        assert_eq!((s.rps, s.p50, s.p99), (19801.98, 0.895, 9.951));
        // Columns are found by name, not position.
        let swapped =
            "\"p99_latency_ms\",\"test\",\"p50_latency_ms\",\"rps\"\n\"2\",\"GET\",\"1\",\"100\"";
        assert_eq!(
            parse_csv(swapped).unwrap(),
            Sample {
                rps: 100.0,
                p50: 1.0,
                p99: 2.0,
                cpu: None
            }
        );
        // Header only (redis-benchmark exits after a server error): no result.
        assert!(parse_csv(SET_CSV.lines().next().unwrap()).is_err());
        assert!(parse_csv("SET: 124999.99 requests per second, p50=4.687 msec").is_err());
    }

    #[test]
    fn splits_quoted_csv() {
        assert_eq!(split_csv(r#""a,b","c""d",e"#), ["a,b", "c\"d", "e"]);
        assert_eq!(split_csv(""), [""]);
    }

    #[test]
    fn server_errors() {
        let err = "Error from server: ERR unknown command 'EVAL', with args beginning with: 'return 'hello'' '0' \n";
        let e = benchmark_error(err).unwrap();
        assert_eq!(
            short_error(&e),
            "Error from server: ERR unknown command 'EVAL'"
        );
        assert_eq!(
            benchmark_error("x\nCould not connect to Redis at 127.0.0.1:1: Connection refused\n")
                .unwrap(),
            "Could not connect to Redis at 127.0.0.1:1: Connection refused"
        );
        assert_eq!(benchmark_error(" \n"), None);
    }

    #[test]
    fn reads_kvd_startup_warning_and_info() {
        let log = "\u{1b}[2m2026-11-22T08:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m option 'appendonly' is set but kvd has no persistence yet: it is stored for CONFIG GET only\n INFO Ready\n";
        let path = std::env::temp_dir().join(format!("xbench-log-test-{}", std::process::id()));
        std::fs::write(&path, log).unwrap();
        let clean = read_log(&path);
        let _ = std::fs::remove_file(&path);
        assert!(!clean.contains('\u{1b}'));
        assert_eq!(
            warnings_about(&clean, "appendonly"),
            ["option 'appendonly' is set but kvd has no persistence yet"]
        );
        let info = "# Persistence\r\nloading:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n";
        assert_eq!(info_field(info, "aof_enabled").as_deref(), Some("0"));
        assert_eq!(info_field(info, "aof_rewrite"), None);
    }

    #[test]
    fn medians_and_aggregation() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let s = |rps| {
            Outcome::Ok(Sample {
                rps,
                p50: rps / 10.0,
                p99: rps,
                cpu: Some(Cpu {
                    server_us: rps / 1000.0,
                    client_busy: 0.9,
                }),
            })
        };
        assert_eq!(
            aggregate(&[s(10.0), s(30.0), s(20.0)]),
            Outcome::Ok(Sample {
                rps: 20.0,
                p50: 2.0,
                p99: 20.0,
                cpu: Some(Cpu {
                    server_us: 0.02,
                    client_busy: 0.9
                })
            })
        );
        let na = Outcome::Na("ERR unknown command 'EVAL'".into());
        assert_eq!(aggregate(&[na.clone(), na.clone()]), na);
        assert!(matches!(
            aggregate(&[s(1.0), Outcome::Err("x".into())]),
            Outcome::Err(_)
        ));
    }

    #[test]
    fn proc_stat_and_cpu_table() {
        // A comm with spaces and parentheses; utime 7, stime 3, cutime 20, cstime 5.
        let stat = "42 (kvd (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 20 5 20 0 9 0 1";
        assert_eq!(parse_stat_ticks(stat), Some((10, 25)));
        assert_eq!(parse_stat_ticks("42 (kvd) S 1"), None);
        proc_ticks("self").expect("/proc/self/stat");
        let rows = matrix(1000, 10);
        assert_eq!(requests_of(&rows[0].args), Some(1000.0));
        assert_eq!(requests_of(&rows[2].args), Some(5000.0));
        let ok = |us| {
            Outcome::Ok(Sample {
                rps: 1.0,
                p50: 1.0,
                p99: 1.0,
                cpu: Some(Cpu {
                    server_us: us,
                    client_busy: 0.95,
                }),
            })
        };
        let rows = &rows[..2];
        let agg = vec![
            vec![ok(10.0), Outcome::Na("x".into())],
            vec![ok(15.0), ok(12.0)],
        ];
        let t = cpu_table(rows, &[Server::Kvd, Server::Redis], &agg).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("redis/kvd"));
        assert_eq!(lines[2], "| SET | 10.0 | 15.0 | 1.50 | 95% | 95% |");
        assert_eq!(lines[3], "| GET | – | 12.0 | – | – | 95% |");
        let none = vec![vec![Outcome::Na("x".into()); 2]];
        assert_eq!(cpu_table(rows, &[Server::Kvd], &none), None);
    }

    #[test]
    fn matrix_rows() {
        let rows = matrix(200_000, 1_000_000);
        assert_eq!(rows.len(), 10);
        let args = |i: usize| rows[i].args.join(" ");
        assert_eq!(args(0), "-c 50 -n 200000 -r 1000000 -d 64 -t set");
        assert_eq!(args(2), "-c 50 -P 16 -n 1000000 -r 1000000 -d 64 -t set");
        assert!(args(8).starts_with("-c 50 -n 200000 -r 1000000 evalsha <sha> 1 key:"));
        assert_eq!(args(9), "-c 100 -n 100000 -r 100000 -d 64 -t set");
        assert_eq!(rows[9].name, "SET -c 100 -n 100000 -r 100000");
        assert_eq!(
            matrix(10_000, 10).last().unwrap().name,
            "SET -c 100 -n 10000 -r 100000"
        );
        // The probes hit the preloaded keyspace.
        assert_eq!(rows[1].probe, ["GET", "key:000000000000"]);
        assert_eq!(rows[5].probe.len(), 21);
    }
}
