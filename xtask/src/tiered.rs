//! `cargo xtask tiered-bench`: memory and read performance with many small
//! keys, for kvd's two-tier mode (`--tiered yes`, `--maxmemory` as the hot
//! tier's budget) next to single-tier kvd and redis-server.
//!
//! For each config in turn the server is started (`bench::start_server`: a
//! free loopback port, a fresh temporary `--dir`), then:
//!
//! 1. load: `--keys` keys `key:%012d` over `--conns` connections, each
//!    writing pipelines of [`BATCH`] SETs and expecting `+OK` for every one.
//!    Key `i`'s value is `i` as `--value-size` decimal digits (its last
//!    digits if shorter), so a GET answered with another key's value is
//!    caught;
//! 2. after [`SETTLE`]: the server's RSS (`VmRSS`), `INFO memory`
//!    `used_memory`, every `tier_*` field of `INFO everything`, DBSIZE (must
//!    be `--keys`) and the data directory's size (apparent and allocated);
//! 3. reads: `--reads` unpipelined GETs over `--conns` connections (one
//!    request in flight per connection, so latencies are real round trips),
//!    keys drawn uniformly, then as many drawn zipfian (θ = [`THETA`], Gray et
//!    al.'s generator as in YCSB, fixed seeds); every reply is checked
//!    against the value written;
//! 4. the server is stopped and its directory removed.
//!
//! Zipfian ranks are mapped to keys by a fixed permutation of `0..N`
//! (`rank * m + c mod N`, [`Scatter`]), as YCSB's "scrambled zipfian" does,
//! so the most popular keys are spread over the keyspace rather than being
//! the first ones written (which a tiered store moves to disk first).
//!
//! A config that fails (does not start, a wrong reply, DBSIZE ≠ `--keys`)
//! gets an error row; the others still run, and the command exits non-zero
//! after writing the report to `bench-results/tiered-<date>.md`.
use crate::bench::{self, info_field, sh, Conn, Reply, Running, Server};
use crate::flags::{TierConfig, TieredOpts};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::fmt::Write as _;
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// SETs per pipelined write of the load.
const BATCH: u64 = 1000;
/// Pause between the end of the load and the memory measurements.
const SETTLE: Duration = Duration::from_secs(3);
/// Skew of the zipfian read phase (YCSB's default).
const THETA: f64 = 0.99;
/// Seed of the read phases' key choices (connection `c` uses `SEED + c`).
const SEED: u64 = 0x71e2_ed00_5eed;
/// 2^64 / golden ratio: [`SplitMix64`]'s increment, [`Scatter`]'s multiplier.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const MIB: f64 = 1024.0 * 1024.0;

// ---- keys, values and key choice ----

/// Writes the last `out.len()` decimal digits of `n`, zero-padded.
fn digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `key:%012d`.
fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key:000000000000";
    digits(&mut k[4..], i);
    k
}

/// Key `i`'s value: `i` as `out.len()` digits.
fn value(out: &mut [u8], i: u64) {
    digits(out, i)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// SplitMix64: small, fast, and the same sequence everywhere.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is < n / 2^64).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// `Σ_{i=1..n} 1 / i^θ`.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| (i as f64).powf(-theta)).sum()
}

/// Zipfian ranks over `0..n` (rank 0 the most popular), by Gray et al.,
/// "Quickly generating billion-record synthetic databases" (SIGMOD 1994),
/// as YCSB's `ZipfianGenerator` does. `new` is O(n) (ζ(n, θ)), sampling O(1).
#[derive(Debug, Clone, Copy)]
pub struct Zipfian {
    n: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^θ`: below it (times ζ(n)) the sample is rank 1.
    second: f64,
}

impl Zipfian {
    pub fn new(n: u64, theta: f64) -> Zipfian {
        assert!(n >= 1 && theta > 0.0 && theta != 1.0);
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        Zipfian {
            n,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            // Unused (NaN or negative) for n <= 2, where every sample is 0 or 1.
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
            second: 1.0 + 0.5f64.powf(theta),
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.second {
            return 1.min(self.n - 1);
        }
        let r = self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (r as u64).min(self.n - 1)
    }
}

/// A fixed permutation of `0..n`: `i -> (i * mul + add) mod n` with `mul`
/// coprime to `n`.
#[derive(Debug, Clone, Copy)]
pub struct Scatter {
    n: u64,
    mul: u64,
    add: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Scatter {
    pub fn new(n: u64) -> Scatter {
        assert!(n >= 1);
        let mut mul = (GOLDEN % n).max(1);
        while gcd(mul, n) != 1 {
            mul = mul % n + 1;
        }
        Scatter {
            n,
            mul,
            add: (GOLDEN >> 17) % n,
        }
    }

    fn map(&self, i: u64) -> u64 {
        ((i as u128 * self.mul as u128 + self.add as u128) % self.n as u128) as u64
    }
}

/// How a read phase picks its keys.
#[derive(Debug, Clone, Copy)]
enum Dist {
    Uniform,
    Zipfian(Zipfian, Scatter),
}

impl Dist {
    fn name(&self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipfian(..) => "zipfian",
        }
    }

    fn pick(&self, n: u64, rng: &mut SplitMix64) -> u64 {
        match self {
            Dist::Uniform => rng.below(n),
            Dist::Zipfian(z, s) => s.map(z.sample(rng)),
        }
    }
}

// ---- load and reads ----

/// Runs `work(c)` on `conns` threads, each with its own connection opened
/// before the clock starts; returns the wall time from the common start.
fn on_conns<F>(port: u16, conns: usize, work: F) -> Result<(Duration, Vec<Vec<u64>>)>
where
    F: Fn(usize, &mut Conn) -> Result<Vec<u64>> + Sync,
{
    let barrier = Barrier::new(conns + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || -> Result<Vec<u64>> {
                    let conn = Conn::open(port);
                    barrier.wait(); // also on error, or the others wait forever
                    let mut conn = conn.with_context(|| format!("connecting to port {port}"))?;
                    work(c, &mut conn).with_context(|| format!("connection {c}"))
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut out = Vec::with_capacity(conns);
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow!("a client thread panicked"));
                }
            }
        }
        let wall = t0.elapsed();
        match first_err {
            Some(e) => Err(e),
            None => Ok((wall, out)),
        }
    })
}

/// One reply line (with its `\r\n`) into `line`.
fn reply_line(c: &mut Conn, line: &mut Vec<u8>) -> Result<()> {
    line.clear();
    ensure!(
        c.r.read_until(b'\n', line)? > 0,
        "connection closed by the server"
    );
    Ok(())
}

/// SETs every key of `lo..hi`, [`BATCH`] per write.
fn load_range(c: &mut Conn, lo: u64, hi: u64, value_size: usize) -> Result<()> {
    let mut buf = Vec::with_capacity(BATCH as usize * (48 + value_size));
    let mut val = vec![0; value_size];
    let mut line = Vec::new();
    let mut i = lo;
    while i < hi {
        let end = (i + BATCH).min(hi);
        buf.clear();
        for k in i..end {
            value(&mut val, k);
            bench::encode(&mut buf, &[&b"SET"[..], &key(k), &val]);
        }
        c.w.write_all(&buf)?;
        for k in i..end {
            reply_line(c, &mut line).with_context(|| format!("SET {}", lossy(&key(k))))?;
            if line != b"+OK\r\n" {
                bail!("SET {} replied {:?}", lossy(&key(k)), lossy(&line));
            }
        }
        i = end;
    }
    Ok(())
}

/// Loads `0..keys` split in contiguous ranges over `conns` connections.
fn load(port: u16, keys: u64, conns: usize, value_size: usize) -> Result<Duration> {
    let (wall, _) = on_conns(port, conns, |c, conn| {
        let (lo, hi) = (
            keys * c as u64 / conns as u64,
            keys * (c as u64 + 1) / conns as u64,
        );
        load_range(conn, lo, hi, value_size).with_context(|| format!("loading keys {lo}..{hi}"))?;
        Ok(Vec::new())
    })?;
    Ok(wall)
}

/// Throughput and latency of one read phase.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ReadStats {
    ops: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Nearest-rank percentile `p` (0..=1) of sorted `v`.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// GETs `key`, checks the reply is `want`.
fn get_checked(
    c: &mut Conn,
    k: u64,
    want: &[u8],
    line: &mut Vec<u8>,
    got: &mut Vec<u8>,
) -> Result<()> {
    reply_line(c, line)?;
    if line == b"$-1\r\n" {
        bail!("GET {} returned nil", lossy(&key(k)));
    }
    let len: usize = line
        .strip_prefix(b"$")
        .and_then(|l| l.strip_suffix(b"\r\n"))
        .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
        .with_context(|| format!("GET {} replied {:?}", lossy(&key(k)), lossy(line)))?;
    got.resize(len + 2, 0);
    c.r.read_exact(got)?;
    ensure!(
        got.ends_with(b"\r\n"),
        "GET {}: bad bulk string",
        lossy(&key(k))
    );
    got.truncate(len);
    ensure!(
        got == want,
        "GET {} returned {:?}, expected {:?}",
        lossy(&key(k)),
        lossy(got),
        lossy(want)
    );
    Ok(())
}

/// `reads` unpipelined GETs over `conns` connections.
fn read_phase(
    port: u16,
    keys: u64,
    reads: u64,
    conns: usize,
    value_size: usize,
    dist: Dist,
) -> Result<ReadStats> {
    let (wall, lats) = on_conns(port, conns, |c, conn| {
        let n = reads / conns as u64 + u64::from((c as u64) < reads % conns as u64);
        let mut rng = SplitMix64(SEED.wrapping_add(c as u64));
        let mut lat = Vec::with_capacity(n as usize);
        let (mut req, mut line, mut got) = (Vec::new(), Vec::new(), Vec::new());
        let mut want = vec![0; value_size];
        for _ in 0..n {
            let k = dist.pick(keys, &mut rng);
            value(&mut want, k);
            req.clear();
            bench::encode(&mut req, &[&b"GET"[..], &key(k)]);
            let t = Instant::now();
            conn.w.write_all(&req)?;
            get_checked(conn, k, &want, &mut line, &mut got)?;
            lat.push(t.elapsed().as_nanos() as u64);
        }
        Ok(lat)
    })
    .with_context(|| format!("{} reads", dist.name()))?;
    let mut all: Vec<u64> = lats.into_iter().flatten().collect();
    all.sort_unstable();
    Ok(ReadStats {
        ops: reads as f64 / wall.as_secs_f64(),
        p50_us: percentile(&all, 0.50) as f64 / 1e3,
        p99_us: percentile(&all, 0.99) as f64 / 1e3,
    })
}

// ---- measurements ----

/// `VmRSS` of `pid`, in bytes.
fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kb * 1024)
}

/// Apparent size and allocated bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> Result<(u64, u64)> {
    let (mut size, mut alloc) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let m = entry.path().symlink_metadata()?;
        if m.is_dir() {
            let (s, a) = disk_usage(&entry.path())?;
            size += s;
            alloc += a;
        } else {
            size += m.len();
            alloc += m.blocks() * 512;
        }
    }
    Ok((size, alloc))
}

/// `name:value` lines of an INFO text whose names start with `tier_`.
fn tier_fields(info: &str) -> Vec<(String, String)> {
    info.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tier_"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn info(c: &mut Conn, section: &str) -> Result<String> {
    match c.cmd(&["INFO", section])? {
        Reply::Error(e) => bail!("INFO {section}: {e}"),
        r => r
            .text()
            .with_context(|| format!("INFO {section} replied {r:?}")),
    }
}

// ---- one config ----

/// What one config measured.
#[derive(Debug)]
struct ConfigRun {
    load_secs: f64,
    rss_start: u64,
    rss: u64,
    used_memory: Option<u64>,
    tier: Vec<(String, String)>,
    disk_size: u64,
    disk_alloc: u64,
    uniform: ReadStats,
    zipfian: ReadStats,
    notes: Vec<String>,
}

fn server_of(cfg: TierConfig) -> Server {
    match cfg {
        TierConfig::Tiered | TierConfig::Single => Server::Kvd,
        TierConfig::Redis => Server::Redis,
    }
}

/// Adds "the server exited" to `e` if it did.
fn with_exit(e: anyhow::Error, srv: &mut Running, name: &str) -> anyhow::Error {
    match srv.child.try_wait() {
        Ok(Some(st)) => e.context(format!(
            "{name} exited ({st}); end of its log: {}",
            srv.log_tail(3)
        )),
        _ => e,
    }
}

fn run_config(
    opts: &TieredOpts,
    kvd_bin: &Path,
    cfg: TierConfig,
    zipf: Zipfian,
) -> Result<ConfigRun> {
    let name = cfg.name();
    let root = std::env::temp_dir().join(format!("kvd-xtiered-{}-{name}", std::process::id()));
    let mut srv = bench::start_server(server_of(cfg), kvd_bin, root, &cfg.server_args(&opts.hot))?;
    if let Some(st) = bench::wait_ready(&mut srv, name)? {
        bail!("{name} exited at startup ({st}): {}", srv.log_tail(3));
    }
    let port = srv.port;
    let pid = srv.child.id();
    let res = measure(opts, cfg, port, pid, zipf, &srv.data_dir());
    let res = res.map_err(|e| with_exit(e, &mut srv, name));
    if res.is_ok() {
        if let Some(st) = srv.child.try_wait()? {
            bail!("{name} exited ({st}) during the run: {}", srv.log_tail(3));
        }
    }
    drop(srv); // kills it and removes the directory
    res
}

fn measure(
    opts: &TieredOpts,
    cfg: TierConfig,
    port: u16,
    pid: u32,
    zipf: Zipfian,
    data: &Path,
) -> Result<ConfigRun> {
    let name = cfg.name();
    let mut notes = Vec::new();
    let rss_start = rss_bytes(pid)?;
    let mut c = Conn::open(port)?;
    let last_save = |c: &mut Conn| -> Result<Option<String>> {
        Ok(info_field(&info(c, "persistence")?, "rdb_last_save_time"))
    };
    let save0 = last_save(&mut c)?;

    eprintln!("xtask tiered-bench: {name}: loading {} keys", opts.keys);
    let t = load(port, opts.keys, opts.conns, opts.value_size)
        .with_context(|| format!("loading {} keys into {name}", opts.keys))?;
    let load_secs = t.as_secs_f64();
    eprintln!(
        "xtask tiered-bench: {name}: loaded in {load_secs:.1} s ({:.0} SET/s)",
        opts.keys as f64 / load_secs
    );
    std::thread::sleep(SETTLE);

    let rss = rss_bytes(pid)?;
    let used_memory =
        info_field(&info(&mut c, "memory")?, "used_memory").and_then(|v| v.trim().parse().ok());
    let tier = tier_fields(&info(&mut c, "everything")?);
    match c.cmd(&["DBSIZE"])? {
        Reply::Int(n) if n >= 0 && n as u64 == opts.keys => {}
        other => bail!(
            "{name}: DBSIZE replied {other:?} after loading {} keys",
            opts.keys
        ),
    }
    let (disk_size, disk_alloc) = disk_usage(data)?;

    let phase = |dist: Dist| -> Result<ReadStats> {
        eprintln!(
            "xtask tiered-bench: {name}: {} {} GETs",
            opts.reads,
            dist.name()
        );
        let s = read_phase(
            port,
            opts.keys,
            opts.reads,
            opts.conns,
            opts.value_size,
            dist,
        )?;
        eprintln!(
            "xtask tiered-bench: {name}: {} {:.0} GET/s, p50 {:.0} µs, p99 {:.0} µs",
            dist.name(),
            s.ops,
            s.p50_us,
            s.p99_us
        );
        Ok(s)
    };
    let uniform = phase(Dist::Uniform)?;
    let zipfian = phase(Dist::Zipfian(zipf, Scatter::new(opts.keys)))?;

    let save1 = last_save(&mut c)?;
    if save0 != save1 {
        notes.push(format!(
            "{name}: a save ran during the run (rdb_last_save_time {} -> {})",
            save0.as_deref().unwrap_or("?"),
            save1.as_deref().unwrap_or("?")
        ));
    }
    Ok(ConfigRun {
        load_secs,
        rss_start,
        rss,
        used_memory,
        tier,
        disk_size,
        disk_alloc,
        uniform,
        zipfian,
        notes,
    })
}

// ---- report ----

fn table(opts: &TieredOpts, runs: &[(TierConfig, Result<ConfigRun>)]) -> String {
    let mut t = String::from(
        "| config | load ops/s | RSS MiB | RSS B/key | used_memory MiB | disk MiB (size / alloc) | uniform ops/s | uniform p50 µs | uniform p99 µs | zipfian ops/s | zipfian p50 µs | zipfian p99 µs |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let n = opts.keys as f64;
    for (cfg, run) in runs {
        match run {
            Ok(r) => {
                let _ = writeln!(
                    t,
                    "| {} | {:.0} | {:.1} | {:.1} | {} | {:.1} / {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    cfg.name(),
                    n / r.load_secs,
                    r.rss as f64 / MIB,
                    r.rss as f64 / n,
                    r.used_memory
                        .map_or("–".into(), |u| format!("{:.1}", u as f64 / MIB)),
                    r.disk_size as f64 / MIB,
                    r.disk_alloc as f64 / MIB,
                    r.uniform.ops,
                    r.uniform.p50_us,
                    r.uniform.p99_us,
                    r.zipfian.ops,
                    r.zipfian.p50_us,
                    r.zipfian.p99_us,
                );
            }
            Err(e) => {
                let msg = format!("{e:#}").replace('|', "\\|").replace('\n', " ");
                let _ = writeln!(t, "| {} | error: {msg} |{}", cfg.name(), " – |".repeat(10));
            }
        }
    }
    t
}

/// The server command line of a config, for the report.
fn command_line(cfg: TierConfig, opts: &TieredOpts, kvd_bin: &Path) -> String {
    let prog = match server_of(cfg) {
        Server::Kvd => kvd_bin.display().to_string(),
        Server::Redis => "redis-server --daemonize no --logfile \"\"".into(),
    };
    let extra: Vec<String> = cfg
        .server_args(&opts.hot)
        .iter()
        .map(|a| {
            if a.is_empty() {
                "\"\"".into()
            } else {
                a.to_string()
            }
        })
        .collect();
    format!(
        "{prog} --port PORT --bind 127.0.0.1 --dir TMP {}",
        extra.join(" ")
    )
    .trim_end()
    .to_string()
}

pub fn run(opts: TieredOpts) -> Result<()> {
    let redis_version = if opts.configs.contains(&TierConfig::Redis) {
        let o = Command::new("redis-server")
            .arg("--version")
            .output()
            .context("redis-server not found: apt-get install -y redis-server")?;
        Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        None
    };
    let wants_kvd = opts.configs.iter().any(|c| server_of(*c) == Server::Kvd);
    let bin: PathBuf = match &opts.bin {
        Some(b) => b.clone(),
        None if wants_kvd => {
            crate::run(crate::cargo().args(["build", "--release", "-p", "kvd"]))?;
            crate::target_dir().join("release/kvd")
        }
        None => PathBuf::from("kvd"),
    };
    if wants_kvd {
        ensure!(bin.exists(), "kvd binary {} does not exist", bin.display());
    }

    let t = Instant::now();
    let zipf = Zipfian::new(opts.keys, THETA);
    eprintln!(
        "xtask tiered-bench: zeta({}, {THETA}) computed in {:.1} s",
        opts.keys,
        t.elapsed().as_secs_f64()
    );

    let mut md = bench::report_header(
        "kvd tiered-bench: memory and reads with many small keys",
        wants_kvd.then_some(bin.as_path()),
    );
    if let Some(v) = &redis_version {
        let _ = writeln!(md, "- redis-server: {v}");
    }
    let _ = writeln!(
        md,
        "- settings: {} keys `key:%012d` with {}-byte values, loaded over {} connections in pipelines of {BATCH} SETs; measurements {} s after the load; {} unpipelined GETs per read phase over {} connections, keys uniform, then zipfian θ={THETA} (ranks scattered over the keyspace by a fixed permutation){}",
        opts.keys,
        opts.value_size,
        opts.conns,
        SETTLE.as_secs(),
        opts.reads,
        opts.conns,
        if opts.configs.contains(&TierConfig::Tiered) {
            format!("; hot tier budget {}", opts.hot)
        } else {
            String::new()
        }
    );
    for cfg in &opts.configs {
        let _ = writeln!(
            md,
            "- {}: `{}`",
            cfg.name(),
            command_line(*cfg, &opts, &bin)
        );
    }
    md.push('\n');

    let mut runs = Vec::new();
    for &cfg in &opts.configs {
        eprintln!("xtask tiered-bench: config {}", cfg.name());
        let r = run_config(&opts, &bin, cfg, zipf);
        if let Err(e) = &r {
            eprintln!("xtask tiered-bench: {} failed: {e:#}", cfg.name());
        }
        runs.push((cfg, r));
    }

    md.push_str(&table(&opts, &runs));
    md.push('\n');
    for (cfg, run) in &runs {
        if let Ok(r) = run {
            let _ = writeln!(
                md,
                "- {}: RSS {:.1} MiB at startup; disk {} / {} bytes (size / allocated); DBSIZE {}",
                cfg.name(),
                r.rss_start as f64 / MIB,
                r.disk_size,
                r.disk_alloc,
                opts.keys
            );
            if !r.tier.is_empty() {
                let fields: Vec<String> = r.tier.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                let _ = writeln!(md, "  - INFO: `{}`", fields.join("` `"));
            }
            for n in &r.notes {
                let _ = writeln!(md, "  - note: {n}");
            }
        }
    }
    println!("{md}");

    let dir = crate::workspace_root().join("bench-results");
    std::fs::create_dir_all(&dir)?;
    let stamp = sh("date", &["-u", "+%Y%m%d-%H%M%S"]);
    let mut file = dir.join(format!("tiered-{stamp}.md"));
    for i in 2.. {
        if !file.exists() {
            break;
        }
        file = dir.join(format!("tiered-{stamp}-{i}.md"));
    }
    std::fs::write(&file, md).with_context(|| format!("writing {}", file.display()))?;
    eprintln!("xtask tiered-bench: wrote {}", file.display());

    let failed: Vec<&str> = runs
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(c, _)| c.name())
        .collect();
    ensure!(failed.is_empty(), "config(s) failed: {}", failed.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert_eq!(&key(0), b"key:000000000000");
        assert_eq!(&key(123_456_789), b"key:000123456789");
        let mut v = [0u8; 16];
        value(&mut v, 42);
        assert_eq!(&v, b"0000000000000042");
        let mut short = [0u8; 3];
        value(&mut short, 123_456);
        assert_eq!(&short, b"456");
    }

    #[test]
    fn splitmix_is_fixed_and_in_range() {
        // The reference sequence of SplitMix64 seeded with 0.
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(7) < 7);
        }
    }

    #[test]
    fn zipfian_matches_its_distribution() {
        let n = 1000;
        let z = Zipfian::new(n, THETA);
        assert!((zeta(2, THETA) - (1.0 + 0.5f64.powf(THETA))).abs() < 1e-12);
        let mut rng = SplitMix64(SEED);
        let samples = 400_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        // P(rank i) = (i + 1)^-θ / ζ(n). Gray's method is exact for ranks 0
        // and 1 and a continuous approximation beyond (ranks 2..5 come out
        // 17..5 % too often, as in YCSB), close again from rank 10 on.
        for (i, tol) in [
            (0usize, 0.03),
            (1, 0.03),
            (2, 0.20),
            (5, 0.10),
            (10, 0.06),
            (50, 0.10),
        ] {
            let want = samples as f64 * ((i + 1) as f64).powf(-THETA) / z.zetan;
            let got = counts[i] as f64;
            assert!(
                (got - want).abs() < want * tol,
                "rank {i}: {got} samples, expected about {want:.0}"
            );
        }
        assert!(
            counts[..20].windows(2).all(|w| w[0] > w[1]),
            "{:?}",
            &counts[..20]
        );
        // The tail half gets its share too (about 10 % for θ = 0.99, n = 1000).
        let tail: u64 = counts[500..].iter().sum();
        let want: f64 = (501..=n).map(|i| (i as f64).powf(-THETA)).sum::<f64>() / z.zetan;
        let got = tail as f64 / samples as f64;
        assert!(
            (got - want).abs() < 0.01,
            "tail share {got}, expected {want}"
        );
        // Tiny keyspaces.
        for n in [1, 2, 3] {
            let z = Zipfian::new(n, THETA);
            assert!((0..1000).all(|_| z.sample(&mut rng) < n));
        }
    }

    #[test]
    fn scatter_is_a_permutation() {
        for n in [1u64, 2, 10, 1000, 4096, 1_000_000 / 7] {
            let s = Scatter::new(n);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = s.map(i);
                assert!(!seen[j as usize], "n={n}: {j} hit twice");
                seen[j as usize] = true;
            }
        }
        // The most popular ranks land far apart.
        let s = Scatter::new(1_000_000);
        let a = s.map(0).abs_diff(s.map(1));
        assert!(a > 1000, "{} {}", s.map(0), s.map(1));
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn info_parsing() {
        let info = "# Memory\r\nused_memory:123\r\ntier_hot_bytes:10\r\ntier_cold_keys:5\r\n# X\r\ntiered:yes\r\n";
        assert_eq!(
            tier_fields(info),
            [
                ("tier_hot_bytes".to_string(), "10".to_string()),
                ("tier_cold_keys".to_string(), "5".to_string())
            ]
        );
        assert_eq!(info_field(info, "used_memory").as_deref(), Some("123"));
    }

    #[test]
    fn measures_own_process_and_a_directory() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        let dir = std::env::temp_dir().join(format!("xtiered-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), [0u8; 1000]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 24]).unwrap();
        let (size, alloc) = disk_usage(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(size, 1024);
        assert!(alloc >= 1024 || alloc == 0, "{alloc}");
    }

    #[test]
    fn table_rows() {
        let opts = match crate::flags::parse(&["tiered-bench".to_string()]).unwrap() {
            crate::flags::Cmd::TieredBench(o) => o,
            _ => unreachable!(),
        };
        let s = ReadStats {
            ops: 1000.0,
            p50_us: 50.0,
            p99_us: 99.0,
        };
        let run = ConfigRun {
            load_secs: 10.0,
            rss_start: 0,
            rss: 1 << 30,
            used_memory: Some(1 << 20),
            tier: Vec::new(),
            disk_size: 0,
            disk_alloc: 0,
            uniform: s,
            zipfian: s,
            notes: Vec::new(),
        };
        let t = table(
            &opts,
            &[
                (TierConfig::Single, Ok(run)),
                (TierConfig::Tiered, Err(anyhow!("kvd exited | bad"))),
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| single | 1000000 | 1024.0 | 107.4 | 1.0 | 0.0 / 0.0 | 1000 | 50 | 99 | 1000 | 50 | 99 |"
        );
        // Every row has the header's cell count.
        let cells = |l: &str| l.replace("\\|", "").matches('|').count();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{t}");
        assert!(lines[3].contains("error: kvd exited \\| bad"));
    }
}
