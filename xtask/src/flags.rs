//! Command-line flags of `cargo xtask`.
use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;

/// A parsed xtask command.
#[derive(Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `smoke [--bin PATH]`
    Smoke { bin: Option<PathBuf> },
    /// `bench --engine`
    BenchEngine,
    /// `bench [--quick] [--modes ...] [--reps N] [--requests N] [--keys N] [--kvd-only] [--bin PATH]`
    Bench(BenchOpts),
    /// `fuzz [--seconds N]`
    Fuzz { seconds: u64 },
    /// `recovery-test [--rounds N] [--clients N] [--seed S]`
    RecoveryTest {
        /// Kill/restart rounds.
        rounds: usize,
        /// Concurrent writing clients.
        clients: usize,
        /// Seed of the random schedule.
        seed: u64,
    },
}

/// A persistence mode both servers are started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--save "" --appendonly no`
    None,
    /// `--save "" --appendonly yes --appendfsync everysec`
    Everysec,
    /// `--save "" --appendonly yes --appendfsync always`
    Always,
}

impl Mode {
    /// Every mode, in the default order.
    pub const ALL: [Mode; 3] = [Mode::None, Mode::Everysec, Mode::Always];

    /// The name used by `--modes`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Everysec => "everysec",
            Mode::Always => "always",
        }
    }

    /// The redis-server style options for this mode (kvd gets the same).
    pub fn server_args(self) -> Vec<&'static str> {
        match self {
            Mode::None => vec!["--save", "", "--appendonly", "no"],
            Mode::Everysec => vec![
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            Mode::Always => vec![
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        }
    }

    /// The `appendfsync` policy, if the mode uses the AOF.
    pub fn appendfsync(self) -> Option<&'static str> {
        match self {
            Mode::None => None,
            Mode::Everysec => Some("everysec"),
            Mode::Always => Some("always"),
        }
    }
}

/// Options of the redis-benchmark matrix (`cargo xtask bench`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOpts {
    /// Persistence modes, in order.
    pub modes: Vec<Mode>,
    /// Repetitions per mode (server order alternates A B, B A, ...).
    pub reps: u32,
    /// Requests per matrix row (pipelined rows send 5x as many).
    pub requests: u64,
    /// Size of the preloaded keyspace (`key:%012d`, 64-byte values).
    pub keys: u64,
    /// Skip redis-server.
    pub kvd_only: bool,
    /// Use this kvd binary instead of building it in release.
    pub bin: Option<PathBuf>,
    /// `--quick` was given (smoke-test sizes).
    pub quick: bool,
    /// `--rows a,b`: only the rows whose name contains one of these
    /// (case-insensitive); empty = all.
    pub rows: Vec<String>,
}

impl BenchOpts {
    /// Defaults of a full run.
    pub const REPS: u32 = 4;
    /// Requests per row of a full run.
    pub const REQUESTS: u64 = 200_000;
    /// Preloaded keys of a full run.
    pub const KEYS: u64 = 1_000_000;
    /// `--quick`: repetitions.
    pub const QUICK_REPS: u32 = 1;
    /// `--quick`: requests per row.
    pub const QUICK_REQUESTS: u64 = 10_000;
    /// `--quick`: preloaded keys.
    pub const QUICK_KEYS: u64 = 100_000;
}

const USAGE: &str = "usage: cargo xtask <smoke [--bin PATH]
                    | bench --engine
                    | bench [--quick] [--modes none,everysec,always] [--reps N] [--requests N] [--keys N] [--kvd-only] [--bin PATH] [--rows eval,get]
                    | fuzz [--seconds N]
                    | recovery-test [--rounds N] [--clients N] [--seed S]>";

fn number<T: std::str::FromStr>(flag: &str, v: Option<&str>) -> Result<T> {
    let v = v.with_context(|| format!("{flag} needs a number\n{USAGE}"))?;
    v.parse()
        .ok()
        .with_context(|| format!("{flag} needs a number, got {v:?}\n{USAGE}"))
}

/// Parses `--modes a,b,c` (no duplicates, at least one).
pub fn parse_modes(s: &str) -> Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .with_context(|| format!("unknown mode {name:?}: expected none, everysec or always"))?;
        ensure!(!modes.contains(&m), "mode {name:?} given twice");
        modes.push(m);
    }
    ensure!(!modes.is_empty(), "--modes needs at least one mode");
    Ok(modes)
}

fn parse_bench<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<Cmd> {
    let mut engine = false;
    let mut others = Vec::new();
    let (mut quick, mut kvd_only) = (false, false);
    let (mut modes, mut reps, mut requests, mut keys, mut bin) = (None, None, None, None, None);
    let mut rows: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        match a {
            "--engine" => engine = true,
            "--quick" => quick = true,
            "--kvd-only" => kvd_only = true,
            "--modes" => {
                modes = Some(parse_modes(
                    it.next()
                        .context("--modes needs a list, e.g. none,everysec")?,
                )?)
            }
            "--reps" => reps = Some(number::<u32>(a, it.next())?),
            "--requests" => requests = Some(number::<u64>(a, it.next())?),
            "--keys" => keys = Some(number::<u64>(a, it.next())?),
            "--bin" => bin = Some(PathBuf::from(it.next().context("--bin needs a path")?)),
            "--rows" => {
                rows = it
                    .next()
                    .context("--rows needs a list, e.g. eval,set")?
                    .split(',')
                    .map(|r| r.trim().to_ascii_lowercase())
                    .filter(|r| !r.is_empty())
                    .collect();
                ensure!(!rows.is_empty(), "--rows needs at least one name");
            }
            other => bail!("unknown bench flag {other:?}\n{USAGE}"),
        }
        if a != "--engine" {
            others.push(a);
        }
    }
    if engine {
        ensure!(
            others.is_empty(),
            "`bench --engine` takes no other flags (got {others:?})"
        );
        return Ok(Cmd::BenchEngine);
    }
    let reps = reps.unwrap_or(if quick {
        BenchOpts::QUICK_REPS
    } else {
        BenchOpts::REPS
    });
    let requests = requests.unwrap_or(if quick {
        BenchOpts::QUICK_REQUESTS
    } else {
        BenchOpts::REQUESTS
    });
    let keys = keys.unwrap_or(if quick {
        BenchOpts::QUICK_KEYS
    } else {
        BenchOpts::KEYS
    });
    ensure!(reps >= 1, "--reps must be at least 1");
    ensure!(requests >= 1, "--requests must be at least 1");
    ensure!(keys >= 1, "--keys must be at least 1");
    Ok(Cmd::Bench(BenchOpts {
        modes: modes.unwrap_or_else(|| Mode::ALL.to_vec()),
        reps,
        requests,
        keys,
        kvd_only,
        bin,
        quick,
        rows,
    }))
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Cmd> {
    let mut it = args.iter().map(String::as_str);
    let cmd = match it.next() {
        Some("smoke") => {
            let mut bin = None;
            while let Some(a) = it.next() {
                match a {
                    "--bin" => bin = Some(PathBuf::from(it.next().context("--bin needs a path")?)),
                    other => bail!("unknown smoke flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::Smoke { bin }
        }
        Some("bench") => parse_bench(&mut it)?,
        Some("fuzz") => {
            let mut seconds = 300;
            while let Some(a) = it.next() {
                match a {
                    "--seconds" => seconds = number(a, it.next())?,
                    other => bail!("unknown fuzz flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::Fuzz { seconds }
        }
        Some("recovery-test") => {
            let (mut rounds, mut clients, mut seed) = (200, 4, 1);
            while let Some(a) = it.next() {
                match a {
                    "--rounds" => rounds = number(a, it.next())?,
                    "--clients" => clients = number(a, it.next())?,
                    "--seed" => seed = number(a, it.next())?,
                    other => bail!("unknown recovery-test flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::RecoveryTest {
                rounds,
                clients,
                seed,
            }
        }
        _ => bail!("{USAGE}"),
    };
    if let Some(extra) = it.next() {
        bail!("unexpected argument {extra:?}\n{USAGE}");
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cmd> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn bench(s: &str) -> BenchOpts {
        match p(s).unwrap() {
            Cmd::Bench(o) => o,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_commands() {
        assert_eq!(p("smoke").unwrap(), Cmd::Smoke { bin: None });
        assert_eq!(
            p("recovery-test").unwrap(),
            Cmd::RecoveryTest {
                rounds: 200,
                clients: 4,
                seed: 1
            }
        );
        assert_eq!(
            p("recovery-test --rounds 5 --clients 2 --seed 9").unwrap(),
            Cmd::RecoveryTest {
                rounds: 5,
                clients: 2,
                seed: 9
            }
        );
        assert!(p("recovery-test --rounds x").is_err());
        assert!(p("recovery-test --what").is_err());
        assert_eq!(
            p("smoke --bin /x/kvd").unwrap(),
            Cmd::Smoke {
                bin: Some(PathBuf::from("/x/kvd"))
            }
        );
        assert_eq!(p("bench --engine").unwrap(), Cmd::BenchEngine);
        assert_eq!(p("fuzz --seconds 5").unwrap(), Cmd::Fuzz { seconds: 5 });
        assert_eq!(p("fuzz").unwrap(), Cmd::Fuzz { seconds: 300 });
    }

    #[test]
    fn parses_bench_matrix_flags() {
        let d = bench("bench");
        assert_eq!(d.modes, Mode::ALL.to_vec());
        assert_eq!(
            (d.reps, d.requests, d.keys),
            (BenchOpts::REPS, BenchOpts::REQUESTS, BenchOpts::KEYS)
        );
        assert!(!d.kvd_only && !d.quick && d.bin.is_none());

        let q = bench("bench --quick");
        assert!(q.quick);
        assert_eq!(
            (q.reps, q.requests, q.keys),
            (
                BenchOpts::QUICK_REPS,
                BenchOpts::QUICK_REQUESTS,
                BenchOpts::QUICK_KEYS
            )
        );
        // Explicit numbers win over --quick, in any order.
        let q = bench("bench --reps 3 --quick --requests 500");
        assert_eq!((q.reps, q.requests), (3, 500));

        let o = bench(
            "bench --modes always,none --reps 2 --requests 1000 --keys 10 --kvd-only --bin /k",
        );
        assert_eq!(o.modes, vec![Mode::Always, Mode::None]);
        assert_eq!((o.reps, o.requests, o.keys), (2, 1000, 10));
        assert!(o.kvd_only);
        assert_eq!(o.bin, Some(PathBuf::from("/k")));
        assert_eq!(bench("bench --modes everysec").modes, vec![Mode::Everysec]);
        assert_eq!(bench("bench --rows EVAL,get").rows, vec!["eval", "get"]);
        assert!(bench("bench").rows.is_empty());
    }

    #[test]
    fn mode_server_args() {
        assert_eq!(
            Mode::None.server_args(),
            ["--save", "", "--appendonly", "no"]
        );
        assert_eq!(
            Mode::Always.server_args()[2..],
            ["--appendonly", "yes", "--appendfsync", "always"]
        );
        assert_eq!(Mode::Everysec.appendfsync(), Some("everysec"));
        assert_eq!(Mode::None.appendfsync(), None);
    }

    #[test]
    fn rejects_unknown() {
        assert!(p("").is_err());
        assert!(p("bench --what").is_err());
        assert!(p("bench --engine --quick").is_err());
        assert!(p("bench --modes").is_err());
        assert!(p("bench --modes fsync").is_err());
        assert!(p("bench --modes none,none").is_err());
        assert!(p("bench --modes ,").is_err());
        assert!(p("bench --reps 0").is_err());
        assert!(p("bench --reps x").is_err());
        assert!(p("bench --requests").is_err());
        assert!(p("smoke --what").is_err());
        assert!(p("fuzz --seconds x").is_err());
        assert!(p("smoke extra").is_err());
    }
}
