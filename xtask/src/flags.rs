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
    /// `pgo`: the profile-guided build of kvd.
    Pgo,
    /// `bench [--quick] [--modes ...] [--reps N] [--requests N] [--keys N] [--kvd-only] [--bin PATH | --pgo]`
    Bench(BenchOpts),
    /// `fuzz [--seconds N]`
    Fuzz { seconds: u64 },
    /// `recovery-test [--rounds N] [--clients N] [--seed S] [--tiered]`
    RecoveryTest {
        /// Kill/restart rounds.
        rounds: usize,
        /// Concurrent writing clients.
        clients: usize,
        /// Seed of the random schedule.
        seed: u64,
        /// Two-tier kvd (16 MB hot tier) with a filler client, so kills hit migrations.
        tiered: bool,
    },
    /// `tiered-bench [--keys N] [--configs tiered,single,redis] [--hot SIZE]
    /// [--reads N] [--conns N] [--bin PATH] [--value-size N]`
    TieredBench(TieredOpts),
}

/// A server setup measured by `cargo xtask tiered-bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierConfig {
    /// kvd `--tiered yes --maxmemory <hot>`.
    Tiered,
    /// kvd with no extra flags.
    Single,
    /// redis-server `--save "" --appendonly no`.
    Redis,
}

impl TierConfig {
    /// Every config, in the order of the names in messages.
    pub const ALL: [TierConfig; 3] = [TierConfig::Tiered, TierConfig::Single, TierConfig::Redis];

    /// The name used by `--configs`.
    pub fn name(self) -> &'static str {
        match self {
            TierConfig::Tiered => "tiered",
            TierConfig::Single => "single",
            TierConfig::Redis => "redis",
        }
    }

    /// The server options after `--port --bind --dir` (`hot` is the hot
    /// tier's budget).
    pub fn server_args(self, hot: &str) -> Vec<&str> {
        match self {
            // No save points in any config: a checkpoint in the middle of the read phases
            // would skew them (redis-server gets `--save ""` too).
            TierConfig::Tiered => vec!["--tiered", "yes", "--maxmemory", hot, "--save", ""],
            TierConfig::Single => vec!["--save", ""],
            TierConfig::Redis => vec!["--save", "", "--appendonly", "no"],
        }
    }
}

/// Options of `cargo xtask tiered-bench`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredOpts {
    /// Keys loaded (`key:%012d`).
    pub keys: u64,
    /// Server setups, in order.
    pub configs: Vec<TierConfig>,
    /// The hot tier's budget (kvd `--maxmemory` of the tiered config).
    pub hot: String,
    /// GETs per read phase (uniform, then zipfian).
    pub reads: u64,
    /// Client connections of the load and of each read phase.
    pub conns: usize,
    /// Use this kvd binary instead of building it in release.
    pub bin: Option<PathBuf>,
    /// Bytes per value.
    pub value_size: usize,
}

impl TieredOpts {
    /// Default `--keys`.
    pub const KEYS: u64 = 10_000_000;
    /// Default `--configs`.
    pub const CONFIGS: [TierConfig; 2] = [TierConfig::Tiered, TierConfig::Single];
    /// Default `--hot`.
    pub const HOT: &'static str = "64mb";
    /// Default `--reads`.
    pub const READS: u64 = 1_000_000;
    /// Default `--conns`.
    pub const CONNS: usize = 8;
    /// Default `--value-size`.
    pub const VALUE_SIZE: usize = 16;
    /// Keys are `key:` and 12 digits, so fewer than 10^12 of them.
    pub const MAX_KEYS: u64 = 1_000_000_000_000;
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
    /// `--pgo`: bench the profile-guided build (`cargo xtask pgo`).
    pub pgo: bool,
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
                    | bench [--quick] [--modes none,everysec,always] [--reps N] [--requests N] [--keys N] [--kvd-only] [--bin PATH | --pgo] [--rows eval,get]
                    | pgo
                    | fuzz [--seconds N]
                    | recovery-test [--rounds N] [--clients N] [--seed S] [--tiered]
                    | tiered-bench [--keys 10M] [--configs tiered,single,redis] [--hot 64mb] [--reads 1M] [--conns 8] [--bin PATH] [--value-size 16]>";

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

/// Parses a count with an optional decimal suffix: `100k`, `10M`, `2g`,
/// `1_000_000`.
pub fn parse_count(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    let (num, mul) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1_000),
        (i, 'm' | 'M') => (&s[..i], 1_000_000),
        (i, 'g' | 'G') => (&s[..i], 1_000_000_000),
        _ => (&s[..], 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn count(flag: &str, v: Option<&str>) -> Result<u64> {
    let v = v.with_context(|| format!("{flag} needs a number, e.g. 10M\n{USAGE}"))?;
    parse_count(v).with_context(|| {
        format!("{flag} needs a number (k, M, G suffixes allowed), got {v:?}\n{USAGE}")
    })
}

/// Whether `s` is a memory size kvd and redis-server accept: digits with an
/// optional `b`, `k`, `kb`, `m`, `mb`, `g` or `gb` (any case).
pub fn is_memory_size(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    let num = ["gb", "mb", "kb", "g", "m", "k", "b"]
        .iter()
        .find_map(|u| l.strip_suffix(u))
        .unwrap_or(&l);
    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
}

/// Parses `--configs a,b` (no duplicates, at least one).
pub fn parse_configs(s: &str) -> Result<Vec<TierConfig>> {
    let mut configs = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let c = TierConfig::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .with_context(|| {
                format!("unknown config {name:?}: expected tiered, single or redis")
            })?;
        ensure!(!configs.contains(&c), "config {name:?} given twice");
        configs.push(c);
    }
    ensure!(!configs.is_empty(), "--configs needs at least one config");
    Ok(configs)
}

fn parse_tiered<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<Cmd> {
    let mut o = TieredOpts {
        keys: TieredOpts::KEYS,
        configs: TieredOpts::CONFIGS.to_vec(),
        hot: TieredOpts::HOT.into(),
        reads: TieredOpts::READS,
        conns: TieredOpts::CONNS,
        bin: None,
        value_size: TieredOpts::VALUE_SIZE,
    };
    while let Some(a) = it.next() {
        match a {
            "--keys" => o.keys = count(a, it.next())?,
            "--configs" => {
                o.configs = parse_configs(
                    it.next()
                        .context("--configs needs a list, e.g. tiered,single")?,
                )?
            }
            "--hot" => {
                let v = it.next().context("--hot needs a size, e.g. 64mb")?;
                ensure!(is_memory_size(v), "--hot needs a size like 64mb, got {v:?}");
                o.hot = v.to_string();
            }
            "--reads" => o.reads = count(a, it.next())?,
            "--conns" => o.conns = number(a, it.next())?,
            "--bin" => o.bin = Some(PathBuf::from(it.next().context("--bin needs a path")?)),
            "--value-size" => o.value_size = number(a, it.next())?,
            other => bail!("unknown tiered-bench flag {other:?}\n{USAGE}"),
        }
    }
    ensure!(
        (1..TieredOpts::MAX_KEYS).contains(&o.keys),
        "--keys must be between 1 and {}",
        TieredOpts::MAX_KEYS - 1
    );
    ensure!(o.reads >= 1, "--reads must be at least 1");
    ensure!(
        (1..=1024).contains(&o.conns),
        "--conns must be between 1 and 1024"
    );
    ensure!(
        (1..=1 << 20).contains(&o.value_size),
        "--value-size must be between 1 and 1048576"
    );
    Ok(Cmd::TieredBench(o))
}

fn parse_bench<'a>(it: &mut impl Iterator<Item = &'a str>) -> Result<Cmd> {
    let mut engine = false;
    let mut others = Vec::new();
    let (mut quick, mut kvd_only, mut pgo) = (false, false, false);
    let (mut modes, mut reps, mut requests, mut keys, mut bin) = (None, None, None, None, None);
    let mut rows: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        match a {
            "--engine" => engine = true,
            "--quick" => quick = true,
            "--kvd-only" => kvd_only = true,
            "--pgo" => pgo = true,
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
    ensure!(
        !(pgo && bin.is_some()),
        "--pgo builds its own binary: give --pgo or --bin, not both"
    );
    Ok(Cmd::Bench(BenchOpts {
        modes: modes.unwrap_or_else(|| Mode::ALL.to_vec()),
        reps,
        requests,
        keys,
        kvd_only,
        bin,
        quick,
        rows,
        pgo,
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
        Some("pgo") => {
            if let Some(other) = it.next() {
                bail!("unknown pgo flag {other:?}\n{USAGE}");
            }
            Cmd::Pgo
        }
        Some("tiered-bench") => parse_tiered(&mut it)?,
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
            let (mut rounds, mut clients, mut seed, mut tiered) = (200, 4, 1, false);
            while let Some(a) = it.next() {
                match a {
                    "--rounds" => rounds = number(a, it.next())?,
                    "--clients" => clients = number(a, it.next())?,
                    "--seed" => seed = number(a, it.next())?,
                    "--tiered" => tiered = true,
                    other => bail!("unknown recovery-test flag {other:?}\n{USAGE}"),
                }
            }
            Cmd::RecoveryTest {
                rounds,
                clients,
                seed,
                tiered,
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
                seed: 1,
                tiered: false
            }
        );
        assert_eq!(
            p("recovery-test --rounds 5 --clients 2 --seed 9 --tiered").unwrap(),
            Cmd::RecoveryTest {
                rounds: 5,
                clients: 2,
                seed: 9,
                tiered: true
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
        assert!(!d.kvd_only && !d.quick && d.bin.is_none() && !d.pgo);
        assert!(bench("bench --pgo --rows eval").pgo);
        assert!(p("bench --pgo --bin /x").is_err());
        assert_eq!(p("pgo").unwrap(), Cmd::Pgo);
        assert!(p("pgo --bin /x").is_err());

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

    fn tiered(s: &str) -> TieredOpts {
        match p(s).unwrap() {
            Cmd::TieredBench(o) => o,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_counts() {
        assert_eq!(parse_count("10M"), Some(10_000_000));
        assert_eq!(parse_count("50m"), Some(50_000_000));
        assert_eq!(parse_count("100k"), Some(100_000));
        assert_eq!(parse_count("2G"), Some(2_000_000_000));
        assert_eq!(parse_count("10_000_000"), Some(10_000_000));
        assert_eq!(parse_count("7"), Some(7));
        for bad in ["", "M", "1.5M", "-1", "10x", "10MB", "k10"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
        assert!(is_memory_size("64mb") && is_memory_size("64MB") && is_memory_size("1g"));
        assert!(is_memory_size("1048576"));
        assert!(!is_memory_size("mb") && !is_memory_size("64 mb") && !is_memory_size("64tb"));
    }

    #[test]
    fn parses_tiered_bench_flags() {
        let d = tiered("tiered-bench");
        assert_eq!(
            d,
            TieredOpts {
                keys: 10_000_000,
                configs: vec![TierConfig::Tiered, TierConfig::Single],
                hot: "64mb".into(),
                reads: 1_000_000,
                conns: 8,
                bin: None,
                value_size: 16,
            }
        );
        let o = tiered(
            "tiered-bench --configs single,redis --keys 1M --reads 200k --conns 4 --hot 1gb --bin /k --value-size 32",
        );
        assert_eq!(o.configs, vec![TierConfig::Single, TierConfig::Redis]);
        assert_eq!((o.keys, o.reads, o.conns), (1_000_000, 200_000, 4));
        assert_eq!((o.hot.as_str(), o.value_size), ("1gb", 32));
        assert_eq!(o.bin, Some(PathBuf::from("/k")));
        assert_eq!(tiered("tiered-bench --keys 50M").keys, 50_000_000);
        assert_eq!(
            TierConfig::Tiered.server_args("64mb"),
            ["--tiered", "yes", "--maxmemory", "64mb", "--save", ""]
        );
        assert_eq!(TierConfig::Single.server_args("64mb"), ["--save", ""]);
        assert_eq!(
            TierConfig::Redis.server_args("64mb"),
            ["--save", "", "--appendonly", "no"]
        );
        for bad in [
            "tiered-bench --keys",
            "tiered-bench --keys 0",
            "tiered-bench --keys 1000000000000",
            "tiered-bench --keys 1.5M",
            "tiered-bench --reads 0",
            "tiered-bench --conns 0",
            "tiered-bench --value-size 0",
            "tiered-bench --hot lots",
            "tiered-bench --configs",
            "tiered-bench --configs single,single",
            "tiered-bench --configs memcached",
            "tiered-bench --configs ,",
            "tiered-bench --quick",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was accepted");
        }
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
