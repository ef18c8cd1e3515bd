//! Server configuration: redis-server's option names and semantics.
//!
//! One parser serves the config file and the command line, like Redis:
//! `kvd [config-file] [--name value ...]` turns every `--name v1 v2` into a
//! config line `name v1 v2` appended after the file's lines, so a later line
//! wins. `CONFIG GET` / `CONFIG SET` go through [`Config::get_matching`] and
//! [`Config::set`] with the same names.

use std::fmt::Write as _;
use std::path::PathBuf;

/// Options that exist only to be stored and shown (their feature is not
/// built yet); enabling them logs a warning at startup.
pub const NOT_YET_BUILT: &[&str] = &[];

/// Parameters `CONFIG SET` accepts by name but kvd only applies at
/// startup, with the reason given in the error.
pub const STARTUP_ONLY: &[(&str, &str)] = &[
    (
        "appendonly",
        "kvd can't turn the AOF on or off at runtime: restart with --appendonly yes|no",
    ),
    (
        "appendfsync",
        "kvd can't change the AOF fsync policy at runtime: restart with --appendfsync always|everysec|no",
    ),
];

/// Applies a new `loglevel` to the running logger (installed by `main`).
static LOGLEVEL_HOOK: std::sync::OnceLock<LogLevelHook> = std::sync::OnceLock::new();

/// A function applying a log level by name.
pub type LogLevelHook = Box<dyn Fn(&str) + Send + Sync>;

/// Installs the function that applies `CONFIG SET loglevel`.
pub fn set_loglevel_hook(f: LogLevelHook) {
    let _ = LOGLEVEL_HOOK.set(f);
}

/// Applies a log level by name (no-op without a hook).
pub fn apply_loglevel(name: &str) {
    if let Some(f) = LOGLEVEL_HOOK.get() {
        f(name);
    }
}

/// One parameter's definition.
#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    alias: Option<&'static str>,
    mutable: bool,
}

const fn p(name: &'static str, mutable: bool) -> Param {
    Param {
        name,
        alias: None,
        mutable,
    }
}

/// Default `io-threads`: one less than the cores, at least one. The cores
/// left over serve the kernel's network stack (which runs in the context of
/// the sending and receiving threads), the AOF writer, log flushes, Lua
/// workers and any client on the same machine; on a 2-core box a second
/// connection thread measured slower than one (decision 009).
pub fn default_io_threads() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)) as u64
}

/// Every parameter kvd knows, in `CONFIG GET *` order.
const PARAMS: &[Param] = &[
    p("bind", false),
    p("port", false),
    p("dir", false),
    p("databases", false),
    p("appendonly", true),
    p("appendfsync", true),
    p("appendfilename", false),
    p("appenddirname", false),
    p("aof-load-truncated", true),
    p("auto-aof-rewrite-percentage", false),
    p("auto-aof-rewrite-min-size", false),
    p("save", true),
    p("dbfilename", true),
    p("maxmemory", true),
    p("maxmemory-policy", true),
    p("requirepass", true),
    p("maxclients", true),
    p("timeout", true),
    p("tcp-keepalive", true),
    p("tcp-backlog", false),
    p("loglevel", true),
    p("logfile", false),
    Param {
        name: "busy-reply-threshold",
        alias: Some("lua-time-limit"),
        mutable: true,
    },
    p("lua-workers", false),
    p("lua-inline-budget", true),
    p("tiered", false),
    p("tiered-cold-index-bits", false),
    p("lua-memory-limit", false),
    p("proto-max-bulk-len", true),
    p("client-query-buffer-limit", true),
    p("client-output-buffer-limit", true),
    p("protected-mode", true),
    p("daemonize", false),
    p("hz", true),
    p("io-threads", false),
    p("supervised", false),
    p("pidfile", false),
];

/// Output buffer limit of one client class (`normal`, `replica`, `pubsub`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Close the client when its pending output exceeds this (0 = none).
    pub hard: u64,
    /// Soft limit (bytes, 0 = none) ...
    pub soft: u64,
    /// ... that must be exceeded for this many seconds.
    pub soft_seconds: u64,
}

/// The whole configuration, typed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// TCP port.
    pub port: u16,
    /// Data directory (created if missing).
    pub dir: PathBuf,
    /// Number of logical databases (at most 256: one key-prefix byte).
    pub databases: usize,
    /// `appendonly yes|no`: log writes to the AOF (startup only).
    pub appendonly: bool,
    /// `appendfsync always|everysec|no`.
    pub appendfsync: String,
    /// AOF file name (the base name of the files in `appenddirname`).
    pub appendfilename: String,
    /// AOF directory, under `dir`.
    pub appenddirname: String,
    /// Load an AOF whose last file has a torn or corrupt tail (cut there).
    pub aof_load_truncated: bool,
    /// Automatic AOF rewrite: growth over the base in percent (0 = off).
    pub auto_aof_rewrite_percentage: u64,
    /// Automatic AOF rewrite: minimum AOF size.
    pub auto_aof_rewrite_min_size: u64,
    /// `save` rules as (seconds, changes): automatic background checkpoints.
    pub save: Vec<(u64, u64)>,
    /// Snapshot file name (stored only).
    pub dbfilename: String,
    /// Memory budget in bytes (0 = engine default).
    pub maxmemory: u64,
    /// Eviction policy name.
    pub maxmemory_policy: String,
    /// Password of the default user (None = no auth).
    pub requirepass: Option<String>,
    /// Maximum number of connected clients.
    pub maxclients: u64,
    /// Idle client timeout in seconds (0 = never).
    pub timeout: u64,
    /// TCP keepalive seconds.
    pub tcp_keepalive: u64,
    /// Listen backlog.
    pub tcp_backlog: u64,
    /// `debug|verbose|notice|warning|nothing`.
    pub loglevel: String,
    /// Log file ("" = stderr).
    pub logfile: String,
    /// Script busy threshold in ms.
    pub busy_reply_threshold: u64,
    /// Lua worker threads (0 = one per core; kvd only).
    pub lua_workers: usize,
    /// Microseconds a script may run inline on its connection's thread
    /// before it moves to a Lua worker (0 = never inline; kvd only).
    pub lua_inline_budget: u64,
    /// Two-tier store (kvd only): `maxmemory` is the hot tier's budget, older records
    /// move to an on-disk cold tier with an on-disk index.
    pub tiered: bool,
    /// log2 of the cold index's slots (kvd only; about one per cold key).
    pub tiered_cold_index_bits: u32,
    /// Memory limit of each Lua VM in bytes (0 = none; kvd only).
    pub lua_memory_limit: u64,
    /// Maximum bulk string length accepted from clients.
    pub proto_max_bulk_len: u64,
    /// Maximum query buffer per client.
    pub client_query_buffer_limit: u64,
    /// Output limits: normal, replica, pubsub.
    pub client_output_buffer_limit: [OutputLimit; 3],
    /// `protected-mode yes|no`.
    pub protected_mode: bool,
    /// `daemonize` (only `no` is supported).
    pub daemonize: bool,
    /// Background task frequency.
    pub hz: u64,
    /// Runtime worker threads serving connections (startup only; default
    /// one less than the cores, at least one: see [`default_io_threads`]).
    pub io_threads: u64,
    /// Accepted for compatibility.
    pub supervised: String,
    /// Accepted for compatibility.
    pub pidfile: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["127.0.0.1".into()],
            port: 6379,
            dir: PathBuf::from("./data"),
            databases: 16,
            appendonly: false,
            appendfsync: "everysec".into(),
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            aof_load_truncated: true,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            dbfilename: "dump.rdb".into(),
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            requirepass: None,
            maxclients: 10000,
            timeout: 0,
            tcp_keepalive: 300,
            tcp_backlog: 511,
            loglevel: "notice".into(),
            logfile: String::new(),
            busy_reply_threshold: 5000,
            lua_workers: 0,
            lua_inline_budget: lua_engine::INLINE_BUDGET_US,
            tiered: false,
            tiered_cold_index_bits: 24,
            lua_memory_limit: 64 << 20,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: [
                OutputLimit {
                    hard: 0,
                    soft: 0,
                    soft_seconds: 0,
                },
                OutputLimit {
                    hard: 256 << 20,
                    soft: 64 << 20,
                    soft_seconds: 60,
                },
                OutputLimit {
                    hard: 32 << 20,
                    soft: 8 << 20,
                    soft_seconds: 60,
                },
            ],
            protected_mode: true,
            daemonize: false,
            hz: 10,
            io_threads: default_io_threads(),
            supervised: "no".into(),
            pidfile: String::new(),
        }
    }
}

/// A startup configuration error, shown like redis-server's
/// `*** FATAL CONFIG FILE ERROR ***`.
#[derive(Debug, thiserror::Error)]
#[error("*** FATAL CONFIG FILE ERROR (kvd, Redis 7.0.0 compatible) ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{reason}")]
pub struct StartupError {
    /// 1-based line number in the combined file + command line text.
    pub line: usize,
    /// The offending line.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses a memory value: `100`, `100b`, `1k` (1000), `1kb` (1024), `mb`, `gb`.
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let (num, mul): (&str, u64) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (&l[..], 1)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn parse_int(s: &str, min: u64, max: u64) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!(
            "argument must be between {min} and {max} inclusive"
        )),
        Err(_) => Err("argument couldn't be parsed into an integer".into()),
    }
}

fn parse_mem(s: &str) -> Result<u64, String> {
    parse_memory(s).ok_or_else(|| "argument must be a memory value".into())
}

fn parse_enum(s: &str, allowed: &[&str]) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    if allowed.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err("argument(s) must be one of the following: ".to_string() + &allowed.join(", "))
    }
}

fn fmt_bool(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// Splits a config line like Redis's `sdssplitargs`: whitespace separated,
/// with "double" (escapes) and 'single' quoted strings.
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c0) = chars.peek() else {
            return Some(out);
        };
        let mut cur = String::new();
        if c0 == '"' || c0 == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    None => return None,
                    Some('\\') if c0 == '"' => match chars.next()? {
                        'n' => cur.push('\n'),
                        'r' => cur.push('\r'),
                        't' => cur.push('\t'),
                        c => cur.push(c),
                    },
                    Some('\\') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        cur.push('\'');
                    }
                    Some(c) if c == c0 => break,
                    Some(c) => cur.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                cur.push(c);
                chars.next();
            }
        }
        out.push(cur);
    }
}

/// Command line parsing result.
#[derive(Debug)]
pub enum CliOutcome {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// `--version` / `-v`: print and exit.
    Version,
    /// `--help` / `-h`: print usage and exit.
    Help,
}

/// Usage text for `--help`.
pub const USAGE: &str = "Usage: kvd [/path/to/kvd.conf] [options]\n       kvd - (read config from stdin)\n       kvd -v or --version\n       kvd -h or --help\n\nExamples:\n       kvd (run the server with default config)\n       kvd /etc/kvd/6379.conf\n       kvd --port 7777\n       kvd /etc/mykvd.conf --loglevel verbose\n";

impl Config {
    /// Parses `kvd [config-file] [--option value ...]` (arguments after the program name).
    pub fn from_args(args: &[String]) -> Result<CliOutcome, StartupError> {
        let mut text = String::new();
        let mut rest = args;
        if let Some(first) = args.first() {
            match first.as_str() {
                "-v" | "--version" => return Ok(CliOutcome::Version),
                "-h" | "--help" => return Ok(CliOutcome::Help),
                _ => {}
            }
            if !first.starts_with("--") {
                let content = if first == "-" {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                        StartupError {
                            line: 0,
                            text: "-".into(),
                            reason: format!("can't read config from stdin: {e}"),
                        }
                    })?;
                    s
                } else {
                    std::fs::read_to_string(first).map_err(|e| StartupError {
                        line: 0,
                        text: first.clone(),
                        reason: format!("Fatal error, can't open config file '{first}': {e}"),
                    })?
                };
                text.push_str(&content);
                text.push('\n');
                rest = &args[1..];
            }
        }
        // Command line options become config lines.
        let mut line = String::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                if !line.is_empty() {
                    text.push_str(&line);
                    text.push('\n');
                }
                line.clear();
                line.push_str(name);
            } else {
                if line.is_empty() {
                    return Err(StartupError {
                        line: 0,
                        text: a.clone(),
                        reason: format!("Invalid argument '{a}': options start with --"),
                    });
                }
                line.push(' ');
                line.push_str(&quote_arg(a));
            }
        }
        if !line.is_empty() {
            text.push_str(&line);
            text.push('\n');
        }
        let mut cfg = Config::default();
        cfg.load_text(&text)?;
        Ok(CliOutcome::Run(Box::new(cfg)))
    }

    /// Applies config-file text, line by line.
    pub fn load_text(&mut self, text: &str) -> Result<(), StartupError> {
        let mut save_reset = false;
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |reason: String| StartupError {
                line: i + 1,
                text: trimmed.to_string(),
                reason,
            };
            let Some(argv) = split_args(trimmed) else {
                return Err(err("Unbalanced quotes in configuration line".into()));
            };
            let Some((name, vals)) = argv.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if vals.is_empty() {
                return Err(err("wrong number of arguments".into()));
            }
            // The first `save` line replaces the defaults; later ones add.
            if name == "save" && !save_reset {
                self.save.clear();
                save_reset = true;
                if vals.len() == 1 && vals[0].is_empty() {
                    continue;
                }
                self.add_save(vals).map_err(err)?;
                continue;
            }
            if name == "save" {
                self.add_save(vals).map_err(err)?;
                continue;
            }
            if name == "include" || name == "rename-command" || name == "user" {
                return Err(err(format!("'{name}' is not supported by kvd")));
            }
            let Some(param) = find_param(&name) else {
                return Err(err("Bad directive or wrong number of arguments".into()));
            };
            self.apply(param.name, vals).map_err(err)?;
        }
        Ok(())
    }

    fn add_save(&mut self, vals: &[String]) -> Result<(), String> {
        if !vals.len().is_multiple_of(2) {
            return Err("Invalid save parameters".into());
        }
        for pair in vals.chunks(2) {
            let secs = pair[0]
                .parse::<u64>()
                .map_err(|_| "Invalid save parameters")?;
            let changes = pair[1]
                .parse::<u64>()
                .map_err(|_| "Invalid save parameters")?;
            self.save.push((secs, changes));
        }
        Ok(())
    }

    /// Sets one parameter (canonical name) from its argument(s).
    fn apply(&mut self, name: &str, vals: &[String]) -> Result<(), String> {
        let one = || -> Result<&str, String> {
            if vals.len() == 1 {
                Ok(vals[0].as_str())
            } else {
                Err("wrong number of arguments".into())
            }
        };
        match name {
            "bind" => {
                // A leading '-' marks an optional address (skipped if it
                // cannot be bound), as in Redis.
                self.bind = vals
                    .iter()
                    .flat_map(|v| v.split_whitespace())
                    .map(str::to_string)
                    .collect();
                if self.bind.is_empty() {
                    return Err("Too many bind addresses specified.".into());
                }
            }
            "port" => self.port = parse_int(one()?, 0, 65535)? as u16,
            "dir" => self.dir = PathBuf::from(one()?),
            "databases" => {
                self.databases = parse_int(one()?, 1, 256)
                    .map_err(|_| "Invalid number of databases (kvd supports 1 to 256)")?
                    as usize
            }
            "appendonly" => self.appendonly = parse_bool(one()?)?,
            "appendfsync" => self.appendfsync = parse_enum(one()?, &["always", "everysec", "no"])?,
            "appendfilename" => self.appendfilename = one()?.to_string(),
            "appenddirname" => self.appenddirname = one()?.to_string(),
            "aof-load-truncated" => self.aof_load_truncated = parse_bool(one()?)?,
            "auto-aof-rewrite-percentage" => {
                self.auto_aof_rewrite_percentage = parse_int(one()?, 0, i32::MAX as u64)?
            }
            "auto-aof-rewrite-min-size" => self.auto_aof_rewrite_min_size = parse_mem(one()?)?,
            "save" => {
                self.save.clear();
                let joined: Vec<String> = vals
                    .iter()
                    .flat_map(|v| v.split_whitespace().map(str::to_string))
                    .collect();
                self.add_save(&joined)?;
            }
            "dbfilename" => self.dbfilename = one()?.to_string(),
            "maxmemory" => self.maxmemory = parse_mem(one()?)?,
            "maxmemory-policy" => {
                self.maxmemory_policy = parse_enum(
                    one()?,
                    &[
                        "volatile-lru",
                        "volatile-lfu",
                        "volatile-random",
                        "volatile-ttl",
                        "allkeys-lru",
                        "allkeys-lfu",
                        "allkeys-random",
                        "noeviction",
                    ],
                )?
            }
            "requirepass" => {
                let v = one()?;
                self.requirepass = (!v.is_empty()).then(|| v.to_string());
            }
            "maxclients" => self.maxclients = parse_int(one()?, 1, u32::MAX as u64)?,
            "timeout" => self.timeout = parse_int(one()?, 0, i32::MAX as u64)?,
            "tcp-keepalive" => self.tcp_keepalive = parse_int(one()?, 0, i32::MAX as u64)?,
            "tcp-backlog" => self.tcp_backlog = parse_int(one()?, 0, i32::MAX as u64)?,
            "loglevel" => {
                self.loglevel = parse_enum(
                    one()?,
                    &["debug", "verbose", "notice", "warning", "nothing"],
                )?
            }
            "logfile" => self.logfile = one()?.to_string(),
            "busy-reply-threshold" => {
                self.busy_reply_threshold = parse_int(one()?, 0, i64::MAX as u64)?
            }
            "lua-workers" => self.lua_workers = parse_int(one()?, 0, 256)? as usize,
            "lua-inline-budget" => self.lua_inline_budget = parse_int(one()?, 0, 1_000_000)?,
            "tiered" => self.tiered = parse_bool(one()?)?,
            "tiered-cold-index-bits" => {
                self.tiered_cold_index_bits = parse_int(one()?, 10, 28)? as u32
            }
            "lua-memory-limit" => {
                let v = parse_mem(one()?)?;
                if v != 0 && v < 1 << 20 {
                    return Err("lua-memory-limit must be 0 (none) or at least 1mb".into());
                }
                self.lua_memory_limit = v;
            }
            "proto-max-bulk-len" => {
                let v = parse_mem(one()?)?;
                if v < 1024 * 1024 {
                    return Err(
                        "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                    );
                }
                self.proto_max_bulk_len = v;
            }
            "client-query-buffer-limit" => {
                let v = parse_mem(one()?)?;
                if v < 1024 * 1024 {
                    return Err(
                        "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                    );
                }
                self.client_query_buffer_limit = v;
            }
            "client-output-buffer-limit" => {
                let words: Vec<&str> = vals.iter().flat_map(|v| v.split_whitespace()).collect();
                if words.is_empty() || !words.len().is_multiple_of(4) {
                    return Err("Wrong number of arguments in buffer limit configuration.".into());
                }
                let mut limits = self.client_output_buffer_limit;
                for w in words.chunks(4) {
                    let idx = match w[0].to_ascii_lowercase().as_str() {
                        "normal" => 0,
                        "replica" | "slave" => 1,
                        "pubsub" => 2,
                        _ => {
                            return Err(
                                "Invalid client class specified in buffer limit configuration."
                                    .into(),
                            )
                        }
                    };
                    let bad = || {
                        "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                            .to_string()
                    };
                    limits[idx] = OutputLimit {
                        hard: parse_memory(w[1]).ok_or_else(bad)?,
                        soft: parse_memory(w[2]).ok_or_else(bad)?,
                        soft_seconds: w[3].parse().map_err(|_| bad())?,
                    };
                }
                self.client_output_buffer_limit = limits;
            }
            "protected-mode" => self.protected_mode = parse_bool(one()?)?,
            "daemonize" => {
                self.daemonize = parse_bool(one()?)?;
                if self.daemonize {
                    return Err(
                        "daemonize yes is not supported by kvd; run it under a supervisor".into(),
                    );
                }
            }
            "hz" => self.hz = parse_int(one()?, 1, 500)?,
            "io-threads" => self.io_threads = parse_int(one()?, 1, 128)?,
            "supervised" => {
                self.supervised = parse_enum(one()?, &["upstart", "systemd", "auto", "no"])?
            }
            "pidfile" => self.pidfile = one()?.to_string(),
            _ => return Err("Bad directive or wrong number of arguments".into()),
        }
        Ok(())
    }

    /// The value of a parameter as `CONFIG GET` shows it (canonical name).
    fn value(&self, name: &str) -> String {
        match name {
            "bind" => self.bind.join(" "),
            "port" => self.port.to_string(),
            "dir" => std::fs::canonicalize(&self.dir)
                .unwrap_or_else(|_| self.dir.clone())
                .display()
                .to_string(),
            "databases" => self.databases.to_string(),
            "appendonly" => fmt_bool(self.appendonly),
            "appendfsync" => self.appendfsync.clone(),
            "appendfilename" => self.appendfilename.clone(),
            "appenddirname" => self.appenddirname.clone(),
            "aof-load-truncated" => fmt_bool(self.aof_load_truncated),
            "auto-aof-rewrite-percentage" => self.auto_aof_rewrite_percentage.to_string(),
            "auto-aof-rewrite-min-size" => self.auto_aof_rewrite_min_size.to_string(),
            "save" => {
                let mut s = String::new();
                for (i, (a, b)) in self.save.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    let _ = write!(s, "{a} {b}");
                }
                s
            }
            "dbfilename" => self.dbfilename.clone(),
            "maxmemory" => self.maxmemory.to_string(),
            "maxmemory-policy" => self.maxmemory_policy.clone(),
            "requirepass" => self.requirepass.clone().unwrap_or_default(),
            "maxclients" => self.maxclients.to_string(),
            "timeout" => self.timeout.to_string(),
            "tcp-keepalive" => self.tcp_keepalive.to_string(),
            "tcp-backlog" => self.tcp_backlog.to_string(),
            "loglevel" => self.loglevel.clone(),
            "logfile" => self.logfile.clone(),
            "busy-reply-threshold" => self.busy_reply_threshold.to_string(),
            "lua-workers" => self.lua_workers.to_string(),
            "lua-inline-budget" => self.lua_inline_budget.to_string(),
            "tiered" => fmt_bool(self.tiered),
            "tiered-cold-index-bits" => self.tiered_cold_index_bits.to_string(),
            "lua-memory-limit" => self.lua_memory_limit.to_string(),
            "proto-max-bulk-len" => self.proto_max_bulk_len.to_string(),
            "client-query-buffer-limit" => self.client_query_buffer_limit.to_string(),
            "client-output-buffer-limit" => {
                let names = ["normal", "slave", "pubsub"];
                let mut s = String::new();
                for (i, l) in self.client_output_buffer_limit.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    let _ = write!(s, "{} {} {} {}", names[i], l.hard, l.soft, l.soft_seconds);
                }
                s
            }
            "protected-mode" => fmt_bool(self.protected_mode),
            "daemonize" => fmt_bool(self.daemonize),
            "hz" => self.hz.to_string(),
            "io-threads" => self.io_threads.to_string(),
            "supervised" => self.supervised.clone(),
            "pidfile" => self.pidfile.clone(),
            _ => String::new(),
        }
    }

    /// `CONFIG GET pattern`: (name, value) pairs whose name (or alias)
    /// matches the glob, each parameter once.
    pub fn get_matching(&self, pattern: &[u8], out: &mut Vec<(String, String)>) {
        for param in PARAMS {
            let names = std::iter::once(param.name).chain(param.alias);
            for n in names {
                if crate::glob::matches(pattern, n.as_bytes(), true)
                    && !out.iter().any(|(k, _)| k == n)
                {
                    out.push((n.to_string(), self.value(param.name)));
                }
            }
        }
    }

    /// `CONFIG SET name value`: Err carries the Redis reason text.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigSetError> {
        let lname = name.to_ascii_lowercase();
        let Some(param) = find_param(&lname) else {
            return Err(ConfigSetError::Unknown);
        };
        if !param.mutable {
            return Err(ConfigSetError::Failed("can't set immutable config".into()));
        }
        // Multi-word parameters (save, bind, client-output-buffer-limit)
        // split the one value themselves.
        let vals = vec![value.to_string()];
        if param.name == "save" && value.trim().is_empty() {
            self.save.clear();
            return Ok(());
        }
        let mut next = self.clone();
        next.apply(param.name, &vals)
            .map_err(ConfigSetError::Failed)?;
        *self = next;
        Ok(())
    }

    /// The AOF configuration these options describe.
    pub fn aof_config(&self) -> aof::AofConfig {
        let mut c = aof::AofConfig::new(self.dir.join(&self.appenddirname)).fsync(
            match self.appendfsync.as_str() {
                "always" => aof::FsyncPolicy::Always,
                "no" => aof::FsyncPolicy::No,
                _ => aof::FsyncPolicy::EverySec,
            },
        );
        c.name = self.appendfilename.clone();
        c.truncate_corrupt_tail = self.aof_load_truncated;
        c.max_bulk_len = self.proto_max_bulk_len.min(usize::MAX as u64) as usize;
        c.rewrite_percentage = self.auto_aof_rewrite_percentage;
        c.rewrite_min_size = self.auto_aof_rewrite_min_size;
        c
    }

    /// Canonical name of a parameter given its name or alias.
    pub fn canonical(name: &str) -> Option<&'static str> {
        find_param(&name.to_ascii_lowercase()).map(|p| p.name)
    }

    /// A short description of the persistence mode for the banner / INFO.
    pub fn persistence_mode(&self) -> &'static str {
        if self.appendonly {
            return match self.appendfsync.as_str() {
                "always" => "AOF (appendfsync always) + checkpoints",
                "no" => "AOF (appendfsync no) + checkpoints",
                _ => "AOF (appendfsync everysec) + checkpoints",
            };
        }
        if self.save.is_empty() {
            "checkpoints on SAVE/BGSAVE only (no save points, AOF off)"
        } else {
            "checkpoints (save points, SAVE/BGSAVE, shutdown; AOF off)"
        }
    }
}

/// Why `CONFIG SET` failed.
#[derive(Debug)]
pub enum ConfigSetError {
    /// No such parameter.
    Unknown,
    /// The value was rejected (reason text).
    Failed(String),
}

fn find_param(name: &str) -> Option<&'static Param> {
    PARAMS
        .iter()
        .find(|p| p.name == name || p.alias == Some(name))
}

fn quote_arg(a: &str) -> String {
    if !a.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        return a.to_string();
    }
    let mut s = String::from("\"");
    for c in a.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, StartupError> {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match Config::from_args(&a)? {
            CliOutcome::Run(c) => Ok(*c),
            _ => panic!("not run"),
        }
    }

    #[test]
    fn defaults_and_flags() {
        let c = cli(&[]).unwrap();
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind, vec!["127.0.0.1"]);
        let c = cli(&[
            "--port",
            "7000",
            "--maxmemory",
            "100mb",
            "--save",
            "60",
            "10",
            "--requirepass",
            "a b",
        ])
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.maxmemory, 100 << 20);
        assert_eq!(c.save, vec![(60, 10)]);
        assert_eq!(c.requirepass.as_deref(), Some("a b"));
        let c = cli(&["--save", ""]).unwrap();
        assert!(c.save.is_empty());
        let c = cli(&["--lua-time-limit", "100"]).unwrap();
        assert_eq!(c.busy_reply_threshold, 100);
    }

    #[test]
    fn errors() {
        assert!(cli(&["--nosuch", "1"]).is_err());
        assert!(cli(&["--port", "x"]).is_err());
        assert!(cli(&["--databases", "300"]).is_err());
        assert!(cli(&["--maxmemory", "12q"]).is_err());
        assert!(cli(&["--port"]).is_err());
        assert!(cli(&["--tiered", "maybe"]).is_err());
        assert!(cli(&["--tiered-cold-index-bits", "9"]).is_err());
        assert!(cli(&["--tiered-cold-index-bits", "29"]).is_err());
        let c = cli(&["--tiered", "yes", "--tiered-cold-index-bits", "26"]).unwrap();
        assert!(c.tiered);
        assert_eq!(c.tiered_cold_index_bits, 26);
        assert!(!cli(&[]).unwrap().tiered);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("10k"), Some(10_000));
        assert_eq!(parse_memory("42"), Some(42));
        assert_eq!(parse_memory("-1"), None);
    }

    #[test]
    fn split() {
        assert_eq!(split_args("a \"b c\" 'd'").unwrap(), vec!["a", "b c", "d"]);
        assert!(split_args("a \"b").is_none());
    }
}
