//! Crash-recovery rounds: the real `kvd` under write load is killed with
//! SIGKILL at random moments (some during a checkpoint or an AOF rewrite),
//! restarted on the same directory, and checked against what it
//! acknowledged.
//!
//! Used by `tests/recovery_rounds.rs` (a few rounds in the normal suite) and
//! by `cargo xtask recovery-test` (many rounds, release binary).
//!
//! Each client records what the server acknowledged:
//! - `SET` of a key unique to the operation (alone or in a 10-command
//!   pipeline): after every restart the key must hold exactly its value;
//! - `INCR` of the client's counter: the value after restart must lie
//!   between the largest acknowledged reply and the number of INCRs sent;
//! - `MULTI SET a i; SET b i EXEC`: after restart `a == b` (no half
//!   transaction) and `i` lies between the last acknowledged and the last
//!   sent transaction;
//! - an `EVAL` script that increments `sa` and copies it to `sb`: after
//!   restart `sa == sb` (a script is all or nothing) and `sa` lies between
//!   the largest acknowledged reply and the number of scripts sent.
//!
//! Nothing may be lost with `appendfsync always`: a lost or wrong key, a
//! counter outside its bounds or a torn transaction counts as a loss.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::KvdServer;

/// Parameters of a run.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// Kill/restart rounds.
    pub rounds: usize,
    /// Concurrent writing clients.
    pub clients: usize,
    /// Longest run before the kill, in ms (the kill comes at a random
    /// moment up to this).
    pub max_run_ms: u64,
    /// Seed of the random schedule (kill times, operation mix).
    pub seed: u64,
    /// Extra `kvd` arguments (besides `--port`/`--dir`).
    pub args: Vec<String>,
    /// One more client writes unverified 4 KB values (`fill:<n>`) all round long, so that
    /// the log moves on: with `--tiered yes` and a small `--maxmemory`, the verified keys
    /// migrate to the cold tier and kills land in the middle of migrations.
    pub filler: bool,
}

/// `kvd` arguments for a two-tier server with a 16 MB hot tier and `appendfsync always`.
pub fn tiered_args() -> Vec<String> {
    let mut a: Vec<String> = crate::AOF_ALWAYS.iter().map(|s| s.to_string()).collect();
    a.extend(["--tiered", "yes", "--maxmemory", "16mb"].map(String::from));
    a
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            rounds: 3,
            clients: 3,
            max_run_ms: 600,
            seed: 1,
            args: crate::AOF_ALWAYS.iter().map(|s| s.to_string()).collect(),
            filler: false,
        }
    }
}

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Rounds completed (kill + restart + verification).
    pub rounds: usize,
    /// Writes the server acknowledged (each SET, INCR and EXEC counts one).
    pub acked: u64,
    /// Acknowledged writes missing or wrong after a restart (must be 0).
    pub lost: u64,
    /// Rounds in which a BGSAVE or BGREWRITEAOF was requested half-way to
    /// the kill (so the kill may land inside the checkpoint).
    pub kills_during_checkpoint: usize,
    /// Rounds after whose kill the AOF's last file got a torn command or a
    /// complete command with a flipped byte appended (both must be cut at
    /// startup, losing nothing acknowledged).
    pub damaged_tails: usize,
    /// With `filler`: bytes of filler values acknowledged.
    pub filler_bytes: u64,
    /// Records the server had moved to its cold tier just before each kill (summed over
    /// rounds; `tier_migrated_records` of INFO, 0 without `--tiered yes`).
    pub migrated: u64,
    /// What was wrong, for the report (at most 20 entries).
    pub problems: Vec<String>,
}

/// A tiny deterministic generator (xorshift64*), so a seed replays a schedule.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one client saw acknowledged, kept across rounds.
#[derive(Debug, Default, Clone)]
struct ClientLog {
    /// key -> value of acknowledged SETs.
    sets: HashMap<String, String>,
    incr_acked: i64,
    incr_sent: i64,
    multi_acked: i64,
    multi_sent: i64,
    script_acked: i64,
    script_sent: i64,
    acked: u64,
}

/// The script of the recovery rounds: both keys or neither.
const PAIR_SCRIPT: &str =
    "local n = redis.call('INCR', KEYS[1]) redis.call('SET', KEYS[2], n) return n";

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let c = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    c.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(c)
}

/// Writes unverified 4 KB values, 128 per pipeline, until the server goes away; returns the
/// bytes acknowledged.
fn fill_loop(port: u16, base: u64) -> u64 {
    let Some(mut c) = connect(port) else {
        return 0;
    };
    let value = vec![b'f'; 4096];
    let mut n = 0u64;
    loop {
        let mut p = redis::pipe();
        for i in n..n + 128 {
            p.cmd("SET")
                .arg(format!("fill:{}", base + i))
                .arg(&value[..])
                .ignore();
        }
        if p.query::<()>(&mut c).is_err() {
            return n * 4096;
        }
        n += 128;
    }
}

/// Writes until the server goes away; updates `log` with what was acknowledged.
fn client_loop(port: u16, id: usize, round: usize, seed: u64, mut log: ClientLog) -> ClientLog {
    let Some(mut c) = connect(port) else {
        return log;
    };
    let mut rng = Rng(seed | 1);
    let ctr = format!("c{id}:ctr");
    let (ma, mb) = (format!("c{id}:ma"), format!("c{id}:mb"));
    let (sa, sb) = (format!("c{id}:sa"), format!("c{id}:sb"));
    for i in 0u64.. {
        match rng.below(11) {
            0..=3 => {
                let (k, v) = (format!("r{round}:c{id}:s{i}"), format!("v{i}"));
                match redis::cmd("SET").arg(&k).arg(&v).query::<String>(&mut c) {
                    Ok(_) => {
                        log.sets.insert(k, v);
                        log.acked += 1;
                    }
                    Err(_) => return log,
                }
            }
            4..=5 => {
                log.incr_sent += 1;
                match redis::cmd("INCR").arg(&ctr).query::<i64>(&mut c) {
                    Ok(n) => {
                        log.incr_acked = log.incr_acked.max(n);
                        log.acked += 1;
                    }
                    Err(_) => return log,
                }
            }
            6..=7 => {
                let mut p = redis::pipe();
                let kv: Vec<(String, String)> = (0..10)
                    .map(|j| (format!("r{round}:c{id}:p{i}:{j}"), format!("w{i}:{j}")))
                    .collect();
                for (k, v) in &kv {
                    p.cmd("SET").arg(k).arg(v).ignore();
                }
                match p.query::<()>(&mut c) {
                    Ok(()) => {
                        log.acked += kv.len() as u64;
                        log.sets.extend(kv);
                    }
                    Err(_) => return log,
                }
            }
            10 => {
                log.script_sent += 1;
                let r = redis::cmd("EVAL")
                    .arg(PAIR_SCRIPT)
                    .arg(2)
                    .arg(&sa)
                    .arg(&sb)
                    .query::<i64>(&mut c);
                match r {
                    Ok(n) => {
                        log.script_acked = log.script_acked.max(n);
                        log.acked += 1;
                    }
                    Err(_) => return log,
                }
            }
            _ => {
                log.multi_sent += 1;
                let n = log.multi_sent;
                let r = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&ma)
                    .arg(n)
                    .ignore()
                    .cmd("SET")
                    .arg(&mb)
                    .arg(n)
                    .ignore()
                    .query::<()>(&mut c);
                match r {
                    Ok(()) => {
                        log.multi_acked = n;
                        log.acked += 1;
                    }
                    Err(_) => return log,
                }
            }
        }
    }
    log
}

/// Checks one client's acknowledged writes against the restarted server.
fn verify(c: &mut redis::Connection, id: usize, log: &ClientLog, report: &mut RecoveryReport) {
    let problem = |report: &mut RecoveryReport, lost: u64, what: String| {
        report.lost += lost;
        if report.problems.len() < 20 {
            report.problems.push(what);
        }
    };
    let keys: Vec<&String> = log.sets.keys().collect();
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = match redis::cmd("MGET").arg(chunk).query(c) {
            Ok(v) => v,
            Err(e) => {
                problem(report, chunk.len() as u64, format!("MGET failed: {e}"));
                continue;
            }
        };
        for (k, v) in chunk.iter().zip(got) {
            if v.as_deref() != Some(log.sets[*k].as_str()) {
                problem(
                    report,
                    1,
                    format!("{k}: acknowledged {:?}, found {v:?}", log.sets[*k]),
                );
            }
        }
    }
    let ctr: Option<i64> = redis::cmd("GET")
        .arg(format!("c{id}:ctr"))
        .query::<Option<String>>(c)
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok());
    let ctr = ctr.unwrap_or(0);
    if ctr < log.incr_acked || ctr > log.incr_sent {
        problem(
            report,
            1,
            format!(
                "c{id}:ctr = {ctr}, acknowledged up to {}, sent {}",
                log.incr_acked, log.incr_sent
            ),
        );
    }
    let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
        .arg(format!("c{id}:ma"))
        .arg(format!("c{id}:mb"))
        .query(c)
        .unwrap_or((None, None));
    let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
    if a != b || a < log.multi_acked || a > log.multi_sent {
        problem(
            report,
            1,
            format!(
                "c{id} MULTI pair a={a} b={b}, acknowledged up to {}, sent {}",
                log.multi_acked, log.multi_sent
            ),
        );
    }
    let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
        .arg(format!("c{id}:sa"))
        .arg(format!("c{id}:sb"))
        .query(c)
        .unwrap_or((None, None));
    let (a, b) = (a.unwrap_or(0), b.unwrap_or(0));
    if a != b || a < log.script_acked || a > log.script_sent {
        problem(
            report,
            1,
            format!(
                "c{id} script pair sa={a} sb={b}, acknowledged up to {}, sent {}",
                log.script_acked, log.script_sent
            ),
        );
    }
}

/// Writes a damaged command at the end of the data of the newest
/// incremental AOF file: a torn one (a crash mid-write), or a complete one
/// with a flipped bit in a length (corruption). Returns false when there is
/// no AOF file.
fn damage_aof_tail(dir: &std::path::Path, flipped: bool) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("appendonlydir")) else {
        return false;
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    // appendonly.aof.<seq>.incr.aof: the highest sequence number is the newest.
    files.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').nth(2))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    });
    let Some(last) = files.pop() else {
        return false;
    };
    let mut tail = b"*3\r\n$3\r\nSET\r\n$9\r\ndamaged:k\r\n$5\r\nvalue\r\n".to_vec();
    if flipped {
        // "$5" of the value becomes "$u": not a length.
        let at = tail.len() - 10;
        tail[at] ^= 0x40;
    } else {
        tail.truncate(tail.len() - 6);
    }
    // At the end of the data: under `appendfsync always` the file of a
    // killed server ends in preallocated zeros, and a crash mid-write leaves
    // the torn bytes where the data ends, not after the zeros.
    use std::os::unix::fs::FileExt as _;
    let Ok(bytes) = std::fs::read(&last) else {
        return false;
    };
    let end = crate::aof_data_len(&bytes);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .and_then(|f| f.write_all_at(&tail, end as u64))
        .is_ok()
}

/// Runs the rounds and returns what they found (`lost == 0` is a pass).
pub fn run(cfg: &RecoveryConfig) -> RecoveryReport {
    let mut report = RecoveryReport::default();
    let mut rng = Rng(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let args: Vec<&str> = cfg.args.iter().map(String::as_str).collect();
    let mut server = KvdServer::start(&args);
    let mut logs: Vec<ClientLog> = vec![ClientLog::default(); cfg.clients];
    if cfg.filler {
        // 24 MB up front, so that a 16 MB hot tier is already migrating in round 0.
        if let Some(mut c) = connect(server.port()) {
            let value = vec![b'p'; 4096];
            for chunk in 0..12u64 {
                let mut p = redis::pipe();
                for i in chunk * 512..(chunk + 1) * 512 {
                    p.cmd("SET")
                        .arg(format!("prefill:{i}"))
                        .arg(&value[..])
                        .ignore();
                }
                if p.query::<()>(&mut c).is_ok() {
                    report.filler_bytes += 512 * 4096;
                }
            }
        }
    }
    for round in 0..cfg.rounds {
        let port = server.port();
        let handles: Vec<_> = logs
            .drain(..)
            .enumerate()
            .map(|(id, log)| {
                let seed = rng.next();
                std::thread::spawn(move || client_loop(port, id, round, seed, log))
            })
            .collect();
        let filler = cfg.filler.then(|| {
            let base = (round as u64) << 32;
            std::thread::spawn(move || fill_loop(port, base))
        });
        // Kill at a random moment; in half the rounds ask for a checkpoint
        // (BGSAVE) or an AOF rewrite (a checkpoint + truncation) shortly
        // before, so some kills land inside one.
        let run_for = Duration::from_millis(50 + rng.below(cfg.max_run_ms.max(51) - 50));
        let started = Instant::now();
        if rng.below(2) == 0 {
            std::thread::sleep(run_for / 2);
            let cmd = if rng.below(2) == 0 {
                "BGSAVE"
            } else {
                "BGREWRITEAOF"
            };
            if let Some(mut c) = connect(port) {
                let _ = redis::cmd(cmd).query::<String>(&mut c);
                report.kills_during_checkpoint += 1;
            }
        }
        std::thread::sleep(run_for.saturating_sub(started.elapsed()));
        if let Some(mut c) = connect(port) {
            if let Ok(info) = redis::cmd("INFO").arg("memory").query::<String>(&mut c) {
                report.migrated += info
                    .lines()
                    .find_map(|l| l.strip_prefix("tier_migrated_records:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        server.kill();
        match rng.below(3) {
            0 => report.damaged_tails += damage_aof_tail(server.dir(), false) as usize,
            1 => report.damaged_tails += damage_aof_tail(server.dir(), true) as usize,
            _ => {}
        }
        logs = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        if let Some(f) = filler {
            report.filler_bytes += f.join().expect("filler thread");
        }
        server = server.restart();
        let Some(mut c) = connect(server.port()) else {
            report.lost += 1;
            report
                .problems
                .push(format!("round {round}: no connection after restart"));
            break;
        };
        for (id, log) in logs.iter().enumerate() {
            verify(&mut c, id, log, &mut report);
        }
        if let Ok(Some(v)) = redis::cmd("GET")
            .arg("damaged:k")
            .query::<Option<String>>(&mut c)
        {
            report.lost += 1;
            report.problems.push(format!(
                "round {round}: a damaged AOF tail was applied ({v:?})"
            ));
        }
        report.rounds += 1;
    }
    report.acked = logs.iter().map(|l| l.acked).sum();
    report
}
