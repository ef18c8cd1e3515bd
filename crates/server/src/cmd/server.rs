//! Server commands: INFO, TIME, CONFIG (GET, SET, RESETSTAT, HELP),
//! COMMAND (COUNT, INFO, DOCS, LIST, GETKEYS, HELP), SHUTDOWN, SAVE,
//! BGSAVE, LASTSAVE (see [`crate::persist`]).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::table::{self, flag, Cmd, CommandSpec, COMMANDS};
use super::{is, lossy, CmdResult, Ctx};
use crate::config::{Config, ConfigSetError};
use crate::persist;
use crate::reply::Out;
use crate::util::{now_ms, now_us};

/// Version string reported as `kvd_version`.
pub const KVD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a server command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    match spec.id {
        Cmd::Info => info(ctx, &args[1..])?,
        Cmd::Time => {
            let us = now_us();
            ctx.out.array(2);
            ctx.out.bulk_i64((us / 1_000_000) as i64);
            ctx.out.bulk_i64((us % 1_000_000) as i64);
        }
        Cmd::Config => config(ctx, spec, args),
        Cmd::Command => command(ctx, spec, args),
        Cmd::Shutdown => shutdown(ctx, &args[1..]),
        Cmd::Save => {
            let shared = ctx.shared;
            match persist::save_from_connection(shared, ctx.sess, "SAVE", true) {
                Ok(()) => ctx.out.ok(),
                Err(e) => ctx.out.error(e.as_bytes()),
            }
        }
        Cmd::BgSave => {
            // SCHEDULE only matters with other child processes (Redis);
            // kvd has none, so it behaves like a plain BGSAVE.
            if args.len() > 2 || (args.len() == 2 && !is(&args[1], "schedule")) {
                ctx.out.syntax_error();
            } else if persist::bgsave(ctx.shared, "BGSAVE") {
                ctx.out.simple(b"Background saving started");
            } else {
                ctx.out.error(b"ERR Background save already in progress");
            }
        }
        Cmd::BgRewriteAof => {
            if persist::rewrite_in_progress(ctx.shared) {
                ctx.out
                    .error(b"ERR Background append only file rewriting already in progress");
            } else if persist::bgrewriteaof(ctx.shared, "BGREWRITEAOF") {
                ctx.out
                    .simple(b"Background append only file rewriting started");
            } else {
                // A BGSAVE runs: the rewrite starts after it (Redis).
                ctx.shared
                    .persist
                    .rewrite_scheduled
                    .store(true, Ordering::Release);
                ctx.out
                    .simple(b"Background append only file rewriting scheduled");
            }
        }
        Cmd::LastSave => ctx.out.int(ctx.shared.persist.lastsave() as i64),
        _ => unreachable!("not a server command: {}", spec.name),
    }
    Ok(())
}

fn shutdown(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    // No argument: save if save points are configured (Redis).
    let mut save = !ctx.shared.config().save.is_empty();
    for a in args {
        if is(a, "nosave") {
            save = false;
        } else if is(a, "save") {
            save = true;
        } else if is(a, "now") || is(a, "force") {
        } else if is(a, "abort") && args.len() == 1 {
            ctx.out.error(b"ERR No shutdown in progress.");
            return;
        } else {
            ctx.out.syntax_error();
            return;
        }
    }
    tracing::warn!("User requested shutdown...");
    if save {
        tracing::info!("Saving the final checkpoint before exiting.");
        let shared = ctx.shared;
        if let Err(e) = persist::save_from_connection(shared, ctx.sess, "SHUTDOWN", false) {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
            ctx.out.error(b"ERR Errors trying to SHUTDOWN. Check logs.");
            return;
        }
    }
    // Writes of other clients that land before the listeners close are
    // saved by the graceful shutdown (only if something changed).
    ctx.shared.save_on_exit.store(save, Ordering::Release);
    ctx.shared.begin_shutdown();
    // Like Redis: the client gets no reply, the connection just closes.
    ctx.conn.close = true;
}

fn proc_stat_cpu() -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the ")" of the command name; utime is field 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n}B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

fn info(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let mut sections: Vec<String> = Vec::new();
    if args.is_empty() {
        sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    for a in args {
        let s = lossy(a).to_ascii_lowercase();
        if s == "all" || s == "everything" || s == "default" {
            sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
        } else {
            sections.push(s);
        }
    }
    let mut text = String::new();
    for name in DEFAULT_SECTIONS {
        if !sections.iter().any(|s| s == name) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        section(ctx, name, &mut text)?;
    }
    ctx.out.verbatim(b"txt", text.as_bytes());
    Ok(())
}

/// INFO memory fields of a two-tier store (`--tiered yes`).
fn tier_fields(shared: &crate::server::Shared, t: &hybrid_log::TierStats, s: &mut String) {
    use std::sync::Mutex;
    // Migration rate over the time since the previous INFO (at least 1 s apart).
    static LAST: Mutex<Option<(std::time::Instant, u64, f64)>> = Mutex::new(None);
    let rate = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match *last {
            Some((at, _, r)) if now.duration_since(at).as_secs_f64() < 1.0 => r,
            Some((at, n, _)) => {
                let r = t.migrated_records.saturating_sub(n) as f64
                    / now.duration_since(at).as_secs_f64();
                *last = Some((now, t.migrated_records, r));
                r
            }
            None => {
                *last = Some((now, t.migrated_records, 0.0));
                0.0
            }
        }
    };
    let keys: i64 = shared
        .keyspace
        .counts_snapshot()
        .iter()
        .map(|&(k, _)| k)
        .sum();
    let hot = t.hot_index_entries;
    let avg_us = if t.cold_reads == 0 {
        0.0
    } else {
        t.cold_read_ns as f64 / t.cold_reads as f64 / 1000.0
    };
    let _ = write!(
        s,
        "tier_enabled:1\r\n\
         tier_hot_keys:{hot}\r\n\
         tier_cold_keys:{}\r\n\
         tier_migrated_records:{}\r\n\
         tier_migration_passes:{}\r\n\
         tier_migrated_per_sec:{rate:.0}\r\n\
         tier_cold_reads:{}\r\n\
         tier_cold_hits:{}\r\n\
         tier_cold_read_avg_us:{avg_us:.1}\r\n\
         tier_promoted:{}\r\n\
         tier_cold_log_bytes:{}\r\n\
         tier_cold_disk_bytes:{}\r\n\
         tier_cold_index_bytes:{}\r\n\
         tier_cold_compactions:{}\r\n",
        (keys.max(0) as u64).saturating_sub(hot),
        t.migrated_records,
        t.migration_passes,
        t.cold_reads,
        t.cold_hits,
        t.promoted,
        t.cold_tail - t.cold_begin,
        t.cold_disk_bytes,
        t.cold_index_bytes,
        t.cold_compactions,
    );
}

fn section(ctx: &mut Ctx<'_, '_>, name: &str, s: &mut String) -> CmdResult {
    let shared = ctx.shared;
    let st = &shared.stats;
    let cfg = shared.config().clone();
    let now = now_ms();
    let uptime = now.saturating_sub(shared.start_ms) / 1000;
    macro_rules! f {
        ($($arg:tt)*) => {{ let _ = write!(s, $($arg)*); s.push_str("\r\n"); }};
    }
    match name {
        "server" => {
            f!("# Server");
            f!("redis_version:7.0.0");
            f!("kvd_version:{KVD_VERSION}");
            f!("redis_git_sha1:00000000");
            f!("redis_git_dirty:0");
            f!("redis_build_id:0");
            f!("redis_mode:standalone");
            f!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
            f!("arch_bits:64");
            f!("monotonic_clock:POSIX clock_gettime");
            f!("multiplexing_api:epoll");
            f!("process_id:{}", std::process::id());
            f!("process_supervised:no");
            f!("run_id:{}", shared.run_id);
            f!("tcp_port:{}", shared.port.load(Ordering::Relaxed));
            f!("server_time_usec:{}", now_us());
            f!("uptime_in_seconds:{uptime}");
            f!("uptime_in_days:{}", uptime / 86400);
            f!("hz:{}", cfg.hz);
            f!("configured_hz:{}", cfg.hz);
            f!(
                "executable:{}",
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            f!(
                "config_file:{}",
                shared.config_file.clone().unwrap_or_default()
            );
            f!("io_threads_active:0");
        }
        "clients" => {
            f!("# Clients");
            f!(
                "connected_clients:{}",
                shared.connected.load(Ordering::Relaxed)
            );
            f!("cluster_connections:0");
            f!("maxclients:{}", cfg.maxclients);
            f!("client_recent_max_input_buffer:0");
            f!("client_recent_max_output_buffer:0");
            f!("blocked_clients:0");
            f!("tracking_clients:0");
            f!("clients_in_timeout_table:0");
        }
        "memory" => {
            let rss = rss_bytes();
            // What the store holds in memory: the in-memory part of its log
            // and its hash index (Redis: what the allocator handed out).
            let st = shared.keyspace.store().stats();
            let in_memory = st.tail.saturating_sub(st.head).min(st.log_memory_bytes);
            let used = (in_memory + st.index_memory_bytes).max(1);
            static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let peak = PEAK.fetch_max(used, Ordering::Relaxed).max(used);
            f!("# Memory");
            f!("used_memory:{used}");
            f!("used_memory_human:{}", human_bytes(used));
            f!("used_memory_rss:{rss}");
            f!("used_memory_rss_human:{}", human_bytes(rss));
            f!("used_memory_peak:{peak}");
            f!("used_memory_peak_human:{}", human_bytes(peak));
            f!("maxmemory:{}", cfg.maxmemory);
            f!("maxmemory_human:{}", human_bytes(cfg.maxmemory));
            f!("maxmemory_policy:{}", cfg.maxmemory_policy);
            f!("mem_fragmentation_ratio:{:.2}", rss as f64 / used as f64);
            f!("kvd_log_bytes:{}", st.tail - st.begin);
            f!("kvd_log_disk_bytes:{}", st.disk_bytes);
            if let Some(t) = shared.keyspace.store().tier_stats() {
                tier_fields(shared, &t, s);
            }
            f!("mem_allocator:libc");
            if let Some(e) = shared.scripting.get() {
                let (libs, funcs) = e.functions().counts();
                f!("number_of_cached_scripts:{}", e.scripts().len());
                f!("number_of_functions:{funcs}");
                f!("number_of_libraries:{libs}");
            }
        }
        "persistence" => {
            f!("# Persistence");
            f!("loading:0");
            f!("async_loading:0");
            crate::persist::info_fields(shared, s);
            f!("kvd_persistence:{}", cfg.persistence_mode());
        }
        "stats" => {
            let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            f!("# Stats");
            f!(
                "total_connections_received:{}",
                l(&st.total_connections_received)
            );
            f!(
                "total_commands_processed:{}",
                st.sum(|s| &s.total_commands_processed)
            );
            f!(
                "instantaneous_ops_per_sec:{}",
                st.instantaneous.ops_per_sec()
            );
            f!("total_net_input_bytes:{}", st.sum(|s| &s.net_input_bytes));
            f!("total_net_output_bytes:{}", st.sum(|s| &s.net_output_bytes));
            f!(
                "instantaneous_input_kbps:{:.2}",
                st.instantaneous.input_kbps()
            );
            f!(
                "instantaneous_output_kbps:{:.2}",
                st.instantaneous.output_kbps()
            );
            f!("rejected_connections:{}", l(&st.rejected_connections));
            f!(
                "expired_keys:{}",
                shared.keyspace.expired_keys.load(Ordering::Relaxed)
            );
            f!(
                "evicted_keys:{}",
                shared.keyspace.evicted_keys.load(Ordering::Relaxed)
            );
            f!("keyspace_hits:{}", st.sum(|s| &s.keyspace_hits));
            f!("keyspace_misses:{}", st.sum(|s| &s.keyspace_misses));
            f!("pubsub_channels:0");
            f!("pubsub_patterns:0");
            f!("total_error_replies:{}", st.sum(|s| &s.total_error_replies));
            if let Some(e) = shared.scripting.get() {
                let (inline, fallbacks) = e.inline_counts();
                f!("kvd_lua_inline_runs:{inline}");
                f!("kvd_lua_inline_fallbacks:{fallbacks}");
            }
        }
        "replication" => {
            f!("# Replication");
            f!("role:master");
            f!("connected_slaves:0");
            f!("master_failover_state:no-failover");
            f!("master_replid:{}", shared.run_id);
            f!("master_replid2:0000000000000000000000000000000000000000");
            f!("master_repl_offset:0");
            f!("second_repl_offset:-1");
            f!("repl_backlog_active:0");
            f!("repl_backlog_size:1048576");
            f!("repl_backlog_first_byte_offset:0");
            f!("repl_backlog_histlen:0");
        }
        "cpu" => {
            let (user, sys) = proc_stat_cpu();
            f!("# CPU");
            f!("used_cpu_sys:{sys:.6}");
            f!("used_cpu_user:{user:.6}");
            f!("used_cpu_sys_children:0.000000");
            f!("used_cpu_user_children:0.000000");
        }
        "keyspace" => {
            f!("# Keyspace");
            for logical in 0..shared.keyspace.databases() {
                let mut ks = ctx.db();
                let mut db = ks.with_db(logical);
                let (keys, expires) = db.count();
                if keys > 0 {
                    let avg_ttl = db.avg_ttl_ms();
                    f!("db{logical}:keys={keys},expires={expires},avg_ttl={avg_ttl}");
                }
            }
        }
        _ => {}
    }
    Ok(())
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "HELP",
    "    Print this help.",
];

fn config(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let Some(sub) = super::subcommand(ctx.out, spec, args) else {
        return;
    };
    match sub.name {
        "get" => {
            let cfg = ctx.shared.config();
            let mut pairs = Vec::new();
            for p in &args[2..] {
                cfg.get_matching(&p.to_ascii_lowercase(), &mut pairs);
            }
            drop(cfg);
            ctx.out.map(pairs.len());
            for (k, v) in &pairs {
                ctx.out.bulk(k.as_bytes());
                ctx.out.bulk(v.as_bytes());
            }
        }
        "set" => {
            if !args.len().is_multiple_of(2) {
                ctx.out.wrong_args("config|set");
                return;
            }
            let mut cfg = ctx.shared.config.write().unwrap_or_else(|e| e.into_inner());
            let mut next: Config = cfg.clone();
            let mut seen: Vec<&'static str> = Vec::new();
            for pair in args[2..].chunks(2) {
                let name = lossy(&pair[0]).into_owned();
                let Some(canon) = Config::canonical(&name) else {
                    ctx.out.error(
                        format!(
                            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                        )
                        .as_bytes(),
                    );
                    return;
                };
                if seen.contains(&canon) {
                    ctx.out.error(
                        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter").as_bytes(),
                    );
                    return;
                }
                seen.push(canon);
                match next.set(&name, &lossy(&pair[1])) {
                    Ok(()) => {}
                    Err(ConfigSetError::Unknown) => {
                        ctx.out.error(
                            format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
                                .as_bytes(),
                        );
                        return;
                    }
                    Err(ConfigSetError::Failed(reason)) => {
                        ctx.out.error(
                            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
                                .as_bytes(),
                        );
                        return;
                    }
                }
            }
            for name in &seen {
                let changed = match *name {
                    "appendonly" => next.appendonly != cfg.appendonly,
                    "appendfsync" => next.appendfsync != cfg.appendfsync,
                    _ => false,
                };
                if let Some(why) = crate::config::STARTUP_ONLY
                    .iter()
                    .find(|(n, _)| changed && n == name)
                    .map(|(_, w)| w)
                {
                    ctx.out.error(
                        format!(
                            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
                        )
                        .as_bytes(),
                    );
                    return;
                }
                if crate::config::NOT_YET_BUILT.contains(name) {
                    tracing::warn!("CONFIG SET {name}: stored only, the feature is not built yet");
                }
                match *name {
                    "loglevel" => crate::config::apply_loglevel(&next.loglevel),
                    "maxmemory" => tracing::warn!(
                        "CONFIG SET maxmemory: stored; the store's memory budget is fixed at startup"
                    ),
                    "hz" => tracing::warn!(
                        "CONFIG SET hz: stored; the active expiry rate is fixed at startup"
                    ),
                    _ => {}
                }
            }
            *cfg = next;
            drop(cfg);
            ctx.shared.refresh_hot();
            ctx.out.ok();
        }
        "resetstat" => {
            ctx.shared.stats.reset();
            ctx.shared.keyspace.expired_keys.store(0, Ordering::Relaxed);
            ctx.shared.keyspace.evicted_keys.store(0, Ordering::Relaxed);
            ctx.out.ok();
        }
        "help" => {
            ctx.out.array(CONFIG_HELP.len());
            for l in CONFIG_HELP {
                ctx.out.simple(l.as_bytes());
            }
        }
        _ => unreachable!("config subcommand table and handler disagree"),
    }
}

fn flag_names(flags: u32) -> Vec<&'static str> {
    flag::NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn write_set_of_status(out: &mut Out, items: &[&str]) {
    out.set(items.len());
    for i in items {
        out.simple(i.as_bytes());
    }
}

fn command_info(out: &mut Out, c: &CommandSpec) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    write_set_of_status(out, &flag_names(c.flags));
    out.int(c.first_key as i64);
    out.int(c.last_key as i64);
    out.int(c.step as i64);
    write_set_of_status(out, &table::acl_categories(c.name, c.group, c.flags));
    out.set(0); // tips
                // key specs: the legacy triple expressed as one range spec
    if c.first_key == 0 {
        out.array(0);
    } else {
        out.array(1);
        out.map(3);
        out.bulk(b"flags");
        let kf: &[&str] = if c.has(flag::WRITE) {
            &["RW", "UPDATE"]
        } else {
            &["RO", "ACCESS"]
        };
        write_set_of_status(out, kf);
        out.bulk(b"begin_search");
        out.map(2);
        out.bulk(b"type");
        out.bulk(b"index");
        out.bulk(b"spec");
        out.map(1);
        out.bulk(b"index");
        out.int(c.first_key as i64);
        out.bulk(b"find_keys");
        out.map(2);
        out.bulk(b"type");
        out.bulk(b"range");
        out.bulk(b"spec");
        out.map(3);
        out.bulk(b"lastkey");
        out.int(if c.last_key < 0 {
            c.last_key as i64
        } else {
            (c.last_key - c.first_key) as i64
        });
        out.bulk(b"keystep");
        out.int(c.step as i64);
        out.bulk(b"limit");
        out.int(0);
    }
    out.array(c.subcommands.len());
    for s in c.subcommands {
        out.array(10);
        out.bulk(format!("{}|{}", c.name, s.name).as_bytes());
        out.int(s.arity as i64);
        write_set_of_status(out, &flag_names(s.flags));
        out.int(0);
        out.int(0);
        out.int(0);
        write_set_of_status(out, &table::acl_categories(c.name, c.group, s.flags));
        out.set(0);
        out.array(0);
        out.array(0);
    }
}

fn command_docs(out: &mut Out, c: &CommandSpec) {
    out.bulk(c.name.as_bytes());
    let has_subs = !c.subcommands.is_empty();
    out.map(3 + has_subs as usize);
    out.bulk(b"summary");
    out.bulk(c.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(c.since.as_bytes());
    out.bulk(b"group");
    out.bulk(c.group.as_bytes());
    if has_subs {
        out.bulk(b"subcommands");
        out.map(c.subcommands.len());
        for s in c.subcommands {
            out.bulk(format!("{}|{}", c.name, s.name).as_bytes());
            out.map(3);
            out.bulk(b"summary");
            out.bulk(s.summary.as_bytes());
            out.bulk(b"since");
            out.bulk(c.since.as_bytes());
            out.bulk(b"group");
            out.bulk(c.group.as_bytes());
        }
    }
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "HELP",
    "    Print this help.",
];

fn command(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let out = &mut *ctx.out;
    if args.len() == 1 {
        out.array(COMMANDS.len());
        for c in COMMANDS {
            command_info(out, c);
        }
        return;
    }
    let Some(sub) = super::subcommand(out, spec, args) else {
        return;
    };
    match sub.name {
        "count" => out.int(COMMANDS.len() as i64),
        "info" => {
            if args.len() == 2 {
                out.array(COMMANDS.len());
                for c in COMMANDS {
                    command_info(out, c);
                }
            } else {
                out.array(args.len() - 2);
                for n in &args[2..] {
                    match table::lookup(n) {
                        Some(c) => command_info(out, c),
                        None => out.null_array(),
                    }
                }
            }
        }
        "docs" => {
            if args.len() == 2 {
                out.map(COMMANDS.len());
                for c in COMMANDS {
                    command_docs(out, c);
                }
            } else {
                let found: Vec<&CommandSpec> =
                    args[2..].iter().filter_map(|n| table::lookup(n)).collect();
                out.map(found.len());
                for c in found {
                    command_docs(out, c);
                }
            }
        }
        "list" => {
            let names: Vec<&str> = if args.len() == 2 {
                COMMANDS.iter().map(|c| c.name).collect()
            } else if args.len() == 5 && is(&args[2], "filterby") {
                let v = &args[4];
                if is(&args[3], "pattern") {
                    COMMANDS
                        .iter()
                        .filter(|c| crate::glob::matches(v, c.name.as_bytes(), true))
                        .map(|c| c.name)
                        .collect()
                } else if is(&args[3], "aclcat") {
                    let cat = format!("@{}", lossy(v).to_ascii_lowercase());
                    COMMANDS
                        .iter()
                        .filter(|c| {
                            table::acl_categories(c.name, c.group, c.flags).contains(&cat.as_str())
                        })
                        .map(|c| c.name)
                        .collect()
                } else if is(&args[3], "module") {
                    Vec::new()
                } else {
                    out.syntax_error();
                    return;
                }
            } else {
                out.syntax_error();
                return;
            };
            out.array(names.len());
            for n in names {
                out.bulk(n.as_bytes());
            }
        }
        "getkeys" => {
            let cmd_args = &args[2..];
            let Some(c) = table::lookup(&cmd_args[0]) else {
                out.error(b"ERR Invalid command specified");
                return;
            };
            if !c.arity_ok(cmd_args.len()) {
                out.error(b"ERR Invalid number of arguments specified for command");
                return;
            }
            let pos: Vec<usize> = c.key_positions(cmd_args.len()).collect();
            if pos.is_empty() {
                out.error(b"ERR The command has no key arguments");
                return;
            }
            out.array(pos.len());
            for p in pos {
                out.bulk(&cmd_args[p]);
            }
        }
        "help" => {
            out.array(COMMAND_HELP.len());
            for l in COMMAND_HELP {
                out.simple(l.as_bytes());
            }
        }
        _ => unreachable!("command subcommand table and handler disagree"),
    }
}
