//! `kvd [config-file] [--option value ...]`: see the `kvd` library docs.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use kvd::config::{CliOutcome, Config, NOT_YET_BUILT, USAGE};
use kvd::keyspace::Keyspace;
use kvd::server::{self, Shared};

/// mimalloc rather than glibc's malloc: a script run makes a few dozen
/// small allocations (Lua strings and tables, command arguments, replies),
/// and glibc's free paths were a fifth of its instructions (decision 010).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match Config::from_args(&args) {
        Ok(CliOutcome::Run(cfg)) => *cfg,
        Ok(CliOutcome::Version) => {
            println!(
                "kvd v={} (Redis 7.0.0 compatible)",
                kvd::cmd::server::KVD_VERSION
            );
            return ExitCode::SUCCESS;
        }
        Ok(CliOutcome::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("\n{e}");
            return ExitCode::from(1);
        }
    };
    let config_file = args.first().filter(|a| !a.starts_with("--")).cloned();
    if let Err(e) = init_logging(&cfg) {
        eprintln!("kvd: cannot open log file '{}': {e}", cfg.logfile);
        return ExitCode::from(1);
    }
    match run(cfg, config_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("kvd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn level_filter(name: &str) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter;
    match name {
        "debug" | "verbose" => LevelFilter::DEBUG,
        "notice" => LevelFilter::INFO,
        "warning" => LevelFilter::WARN,
        _ => LevelFilter::OFF,
    }
}

/// Logs to stderr or `logfile`, with a level that `CONFIG SET loglevel`
/// can change at run time.
fn init_logging(cfg: &Config) -> std::io::Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::prelude::*;
    let (writer, ansi) = if cfg.logfile.is_empty() {
        // Colours only on a terminal: redirected logs stay plain text.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        (BoxMakeWriter::new(std::io::stderr), tty)
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.logfile)?;
        (BoxMakeWriter::new(std::sync::Mutex::new(f)), false)
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(level_filter(&cfg.loglevel));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    tracing_subscriber::registry().with(filter).with(fmt).init();
    kvd::config::set_loglevel_hook(Box::new(move |name| {
        let _ = handle.modify(|f| *f = level_filter(name));
    }));
    Ok(())
}

fn run(cfg: Config, config_file: Option<String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("can't create the data directory {}", cfg.dir.display()))?;
    for name in NOT_YET_BUILT {
        tracing::warn!(
            "option '{name}' is stored for CONFIG GET only: the feature is not built yet"
        );
    }
    if kvd::evict::Policy::parse(&cfg.maxmemory_policy).is_none() {
        tracing::warn!(
            "maxmemory-policy {} is stored only (not built yet; kvd implements all but allkeys-lfu and volatile-lfu): data beyond maxmemory spills to disk",
            cfg.maxmemory_policy
        );
    }
    let mut scfg = hybrid_log::StoreConfig::new(cfg.dir.join("log"));
    // Background compaction reclaims overwritten and deleted records (the log would grow
    // forever without it). Expired records are kept by it: kvd's own expiry deletes them,
    // which keeps the per-db key counters (DBSIZE, INFO keyspace) exact.
    scfg.compaction_enabled = true;
    scfg.compaction_keeps_expired = true;
    if matches!(
        kvd::evict::Policy::parse(&cfg.maxmemory_policy),
        Some(p) if p != kvd::evict::Policy::NoEviction
    ) {
        // Cache mode: evicted log space is given back a segment file at a
        // time, so use 16 MiB segments instead of 1 GiB (a store created
        // earlier keeps the geometry of its checkpoint).
        scfg.segment_bits = 24;
    }
    if cfg.tiered {
        // Two-tier store: `maxmemory` is the hot tier's budget; older records move to the
        // cold tier on disk (decision 008). 16 MiB segments, so that space comes back in
        // small steps as migration and cold compaction pass.
        scfg.tiered = true;
        scfg.segment_bits = 24;
        scfg.cold_index_bits = cfg.tiered_cold_index_bits;
        if kvd::evict::Policy::parse(&cfg.maxmemory_policy)
            .is_some_and(|p| p != kvd::evict::Policy::NoEviction)
        {
            tracing::warn!(
                "maxmemory-policy {} is ignored in tiered mode: data beyond maxmemory moves to the cold tier",
                cfg.maxmemory_policy
            );
        }
    }
    if cfg.maxmemory > 0 {
        // The in-memory log needs a few pages; below that, use the minimum.
        let min = 4u64 << scfg.page_bits;
        if cfg.maxmemory < min {
            tracing::warn!(
                "maxmemory {} is below the store's minimum of {min} bytes (4 log pages): using {min}",
                cfg.maxmemory
            );
        }
        scfg.memory_budget = cfg.maxmemory.max(min);
    }
    let budget = scfg.memory_budget;
    let t0 = std::time::Instant::now();
    // The store lives in `<dir>/log/`; something else by that name would fail below with
    // a bare "File exists".
    let log_dir = scfg.dir.clone();
    if log_dir.exists() && !log_dir.is_dir() {
        anyhow::bail!(
            "can't open the store: {} exists and is not a directory (kvd keeps its log there)",
            log_dir.display()
        );
    }
    let store = hybrid_log::Store::open(scfg)
        .with_context(|| format!("can't open the store in {}", log_dir.display()))?;
    let keyspace = Keyspace::new(store, cfg.databases);
    let recovered = keyspace.store().recovered();
    let mut aof_position = None;
    let mut keys = None;
    if let Some(r) = &recovered {
        match kvd::persist::CheckpointToken::decode(&r.token) {
            Ok(t) => {
                if let Err(e) = keyspace.set_db_map(&t.db_map) {
                    tracing::warn!("ignoring the checkpoint's SWAPDB table: {e}");
                }
                aof_position = t.aof_position;
                // Exact per-db key counters as of the cut (token v3+).
                keys = t.counts.and_then(|c| keyspace.restore_counts(&c));
            }
            Err(e) => tracing::warn!("ignoring the checkpoint token: {e}"),
        }
    }
    // Derived state: without counters in the token, count by scanning the
    // log (before any client).
    let keys = match keys {
        Some(k) => k,
        None => keyspace
            .recount()
            .context("can't count the recovered keys")?,
    };
    match &recovered {
        Some(r) => tracing::info!(
            "DB loaded from checkpoint version {}: {} keys ({} records, {} log bytes) in {:.3} seconds (log recovery {} ms){}",
            r.version,
            keys,
            r.records,
            r.bytes,
            t0.elapsed().as_secs_f64(),
            r.duration.as_millis(),
            if r.skipped_corrupt > 0 {
                format!("; skipped {} unreadable newer checkpoint(s)", r.skipped_corrupt)
            } else {
                String::new()
            }
        ),
        None => tracing::info!("no checkpoint in {}: starting empty", cfg.dir.display()),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.io_threads.max(1) as usize)
        .enable_all()
        .thread_name("kvd-worker")
        // Short scripts run inline on these threads: the Lua workers' stack.
        .thread_stack_size(16 << 20)
        .build()
        .context("can't start the tokio runtime")?;
    // A write past RLIMIT_FSIZE (a full quota) must fail with EFBIG and
    // turn into MISCONF, not kill the server: handling SIGXFSZ (tokio never
    // uninstalls a handler) replaces its default action.
    if let Err(e) = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
    }) {
        tracing::warn!("cannot handle SIGXFSZ: {e}");
    }
    let hz = cfg.hz;
    let shared = Shared::new(cfg, keyspace, config_file);
    if let Some(r) = &recovered {
        let info = shared.keyspace.store().last_checkpoint();
        shared
            .persist
            .note_checkpoint(r.version, info.map_or(0, |i| i.bytes));
    }
    let aof_cfg = {
        let c = shared.config();
        c.appendonly.then(|| c.aof_config())
    };
    if let Some(acfg) = aof_cfg {
        let after = match aof_position {
            Some(p) if p == kvd::persist::AOF_CUT_FAILED => anyhow::bail!(
                "the newest checkpoint could not record its AOF position (its AOF rotation failed), so the AOF in {} cannot be replayed on top of it without applying writes twice; move that directory away to start from the checkpoint alone",
                acfg.dir.display()
            ),
            Some((seq, offset)) => Some(aof::AofPosition::new(seq, offset)),
            None => {
                if recovered.is_some() {
                    tracing::warn!(
                        "the checkpoint records no AOF position (taken without the AOF): replaying the whole AOF on top of it"
                    );
                }
                None
            }
        };
        let t0 = std::time::Instant::now();
        let sh = shared.clone();
        let cfg2 = acfg.clone();
        let r = rt
            .block_on(async move {
                tokio::spawn(async move { kvd::aofw::replay(&sh, &cfg2, after) }).await
            })
            .context("the AOF replay panicked")?
            .with_context(|| format!("can't load the AOF in {}", acfg.dir.display()))?;
        if r.truncated > 0 {
            tracing::warn!(
                "!!! Warning: the AOF ended with an incomplete or corrupt command: {} bytes were cut (aof-load-truncated) !!!",
                r.truncated
            );
        }
        if r.errors > 0 {
            tracing::warn!(
                "{} commands of the AOF replied an error during the replay",
                r.errors
            );
        }
        tracing::info!(
            "DB loaded from append only file: {} commands in {} entries ({} bytes) after position {} in {:.3} seconds",
            r.commands,
            r.records,
            r.bytes,
            after.map_or_else(|| "start".to_string(), |p| p.to_string()),
            t0.elapsed().as_secs_f64()
        );
        let aof = aof::Aof::open(acfg.clone())
            .with_context(|| format!("can't open the AOF in {}", acfg.dir.display()))?;
        tracing::info!(
            "AOF enabled: {} (appendfsync {:?})",
            acfg.dir.display(),
            acfg.fsync
        );
        let _ = shared.keyspace.aof.set(aof);
    }
    kvd::script::init(&shared)?;
    let saved_ok = rt.block_on(async move {
        let (bind, port, backlog) = {
            let c = shared.config();
            (c.bind.clone(), c.port, c.tcp_backlog)
        };
        let mut listeners = Vec::new();
        for addr in &bind {
            let (optional, addr) = match addr.strip_prefix('-') {
                Some(a) => (true, a),
                None => (false, addr.as_str()),
            };
            let l = match bind_listener(addr, port, backlog as u32) {
                Ok(l) => l,
                Err(e) if optional => {
                    tracing::warn!("skipping optional bind address {addr}:{port}: {e:#}");
                    continue;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "Could not create server TCP listening socket {addr}:{port}"
                    )))
                }
            };
            if port == 0 {
                if let Ok(a) = l.local_addr() {
                    shared.port.store(a.port(), Ordering::Relaxed);
                }
            } else {
                shared.port.store(port, Ordering::Relaxed);
            }
            listeners.push(l);
        }
        if listeners.is_empty() {
            anyhow::bail!("no address could be bound");
        }
        shared.keyspace.start_active_expiry(hz, shared.clone());
        kvd::persist::start_saver(&shared);
        kvd::evict::start(&shared);
        kvd::metrics::start(&shared);
        {
            let c = shared.config();
            tracing::info!(
                "kvd {} (Redis 7.0.0 compatible) started: pid={} port={} bind={} dir={} databases={} persistence={} memory budget={} bytes",
                kvd::cmd::server::KVD_VERSION,
                std::process::id(),
                shared.port.load(Ordering::Relaxed),
                c.bind.join(","),
                c.dir.display(),
                c.databases,
                c.persistence_mode(),
                budget
            );
        }
        tracing::info!("Ready to accept connections");
        anyhow::Ok(server::serve(shared, listeners).await)
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if !saved_ok {
        anyhow::bail!(
            "the final checkpoint or the AOF's final fsync failed: unsaved changes may be lost"
        );
    }
    Ok(())
}

fn bind_listener(addr: &str, port: u16, backlog: u32) -> anyhow::Result<tokio::net::TcpListener> {
    let ip: std::net::IpAddr = match addr {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        "*" => std::net::IpAddr::from([0, 0, 0, 0]),
        a => a
            .parse()
            .with_context(|| format!("invalid bind address '{a}'"))?,
    };
    let sa = std::net::SocketAddr::new(ip, port);
    let sock = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.set_nodelay(true)?;
    sock.bind(sa)?;
    Ok(sock.listen(backlog.max(16))?)
}
