//! Shared server state, the accept loop and graceful shutdown.
//!
//! [`Shared`] is the cheap-to-clone handle (`Arc<Inner>`) every connection
//! task holds: configuration, the keyspace, the client registry, stats and
//! the shutdown signal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::keyspace::Keyspace;
use crate::util::now_ms;

/// Per-request counters, sharded by client id so that connections on
/// different workers do not fight over one cache line.
#[derive(Debug, Default)]
pub struct StatShard {
    /// Commands executed.
    pub total_commands_processed: AtomicU64,
    /// Successful key lookups.
    pub keyspace_hits: AtomicU64,
    /// Failed key lookups.
    pub keyspace_misses: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Error replies sent.
    pub total_error_replies: AtomicU64,
    /// Keys changed (Redis's `dirty`; never reset, see
    /// [`crate::persist::changes_since_save`]).
    pub dirty: AtomicU64,
}

const STAT_SHARDS: usize = 16;

/// Counters shown by `INFO stats` (reset by `CONFIG RESETSTAT`).
#[derive(Debug)]
pub struct Stats {
    /// Connections accepted.
    pub total_connections_received: AtomicU64,
    /// Connections refused by `maxclients`.
    pub rejected_connections: AtomicU64,
    shards: Vec<crossbeam_utils::CachePadded<StatShard>>,
    /// Sliding-window rates (`instantaneous_*` fields), fed by `kvd-metrics`.
    pub instantaneous: crate::metrics::Instantaneous,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            total_connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            shards: (0..STAT_SHARDS).map(|_| Default::default()).collect(),
            instantaneous: Default::default(),
        }
    }
}

impl Stats {
    /// The shard of client `id`.
    pub fn shard(&self, id: u64) -> &StatShard {
        &self.shards[id as usize % STAT_SHARDS]
    }

    /// Sum of one counter over the shards.
    pub fn sum(&self, f: impl Fn(&StatShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset(&self) {
        self.total_connections_received.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        for s in &self.shards {
            for c in [
                &s.total_commands_processed,
                &s.keyspace_hits,
                &s.keyspace_misses,
                &s.net_input_bytes,
                &s.net_output_bytes,
                &s.total_error_replies,
            ] {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// What other tasks can see of (and do to) one connection.
#[derive(Debug)]
pub struct ClientHandle {
    /// Unique, increasing id (`CLIENT ID`).
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// Connect time (ms since epoch).
    pub created_ms: u64,
    /// Last command time (ms since epoch).
    pub last_ms: AtomicU64,
    /// Selected logical db.
    pub db: AtomicUsize,
    /// `CLIENT SETNAME` name.
    pub name: Mutex<Option<Vec<u8>>>,
    /// Index+1 in the command table of the last command (0 = none).
    pub last_cmd: AtomicU16,
    /// 2 or 3.
    pub resp: AtomicU8,
    /// Queued commands in MULTI, -1 when not in MULTI.
    pub multi: AtomicI64,
    /// Set by `CLIENT KILL` or shutdown; the task closes after its batch.
    pub killed: AtomicBool,
    /// Wakes the task when `killed` is set.
    pub kill: Notify,
}

impl ClientHandle {
    /// A handle for a server-internal client (AOF loader, Lua workers)
    /// that is not in the client registry.
    pub fn internal(id: u64, name: &str) -> Arc<ClientHandle> {
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        Arc::new(ClientHandle {
            id,
            addr,
            laddr: addr,
            created_ms: now_ms(),
            last_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            name: Mutex::new(Some(name.as_bytes().to_vec())),
            last_cmd: AtomicU16::new(0),
            resp: AtomicU8::new(2),
            multi: AtomicI64::new(-1),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        })
    }

    /// Asks the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }
}

/// Configuration values read on the hot path, mirrored from [`Config`]
/// into atomics (refreshed after `CONFIG SET`).
#[derive(Debug, Default)]
pub struct HotConfig {
    /// Idle timeout in seconds (0 = none).
    pub timeout: AtomicU64,
    /// Normal-class output buffer hard limit (0 = none).
    pub obuf_hard: AtomicU64,
    /// Normal-class output buffer soft limit (0 = none).
    pub obuf_soft: AtomicU64,
    /// Seconds the soft limit may be exceeded.
    pub obuf_soft_seconds: AtomicU64,
    /// Maximum number of clients.
    pub maxclients: AtomicU64,
    /// Maximum unparsed query bytes per client.
    pub query_buffer_limit: AtomicU64,
    /// `busy-reply-threshold` in ms (shared with the Lua engine).
    pub busy_threshold_ms: Arc<AtomicU64>,
    /// `lua-inline-budget` in µs (shared with the Lua engine).
    pub lua_inline_budget_us: Arc<AtomicU64>,
}

/// State shared by all connections.
#[derive(Debug)]
pub struct Inner {
    /// Live configuration (`CONFIG SET` writes it, then calls
    /// [`Shared::refresh_hot`]).
    pub config: RwLock<Config>,
    /// Hot-path copies of some configuration values.
    pub hot: HotConfig,
    /// The data.
    pub keyspace: Keyspace,
    /// Connected clients by id.
    pub clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// Next client id.
    pub next_client_id: AtomicU64,
    /// Number of connected clients.
    pub connected: AtomicUsize,
    /// Counters.
    pub stats: Stats,
    /// Server start time (ms).
    pub start_ms: u64,
    /// Set once shutdown began.
    pub shutting_down: AtomicBool,
    /// Wakes the accept loop for shutdown.
    pub shutdown: Notify,
    /// The port actually bound.
    pub port: AtomicU16,
    /// Run id (40 hex chars).
    pub run_id: String,
    /// Path of the config file, if any.
    pub config_file: Option<String>,
    /// Checkpoint state (SAVE, BGSAVE, LASTSAVE, save points).
    pub persist: crate::persist::Persistence,
    /// Save a checkpoint at exit (decided by SHUTDOWN or the signal).
    pub save_on_exit: AtomicBool,
    /// The Lua scripting engine (started after the AOF replay).
    pub scripting: std::sync::OnceLock<crate::script::Engine>,
}

/// Cheap-to-clone handle to the server state.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Inner>);

impl Deref for Shared {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Shared {
    /// A weak handle (for the scripting host, which the state owns).
    pub fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    /// Back from a weak handle, while the server lives.
    pub fn upgrade(w: &std::sync::Weak<Inner>) -> Option<Shared> {
        w.upgrade().map(Shared)
    }

    /// Builds the state around an opened keyspace.
    pub fn new(config: Config, keyspace: Keyspace, config_file: Option<String>) -> Shared {
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
            .collect();
        let start_ms = now_ms();
        let shared = Shared(Arc::new(Inner {
            config: RwLock::new(config),
            hot: HotConfig::default(),
            keyspace,
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            connected: AtomicUsize::new(0),
            stats: Stats::default(),
            start_ms,
            shutting_down: AtomicBool::new(false),
            shutdown: Notify::new(),
            port: AtomicU16::new(0),
            run_id,
            config_file,
            persist: crate::persist::Persistence::new(start_ms),
            save_on_exit: AtomicBool::new(false),
            scripting: std::sync::OnceLock::new(),
        }));
        shared.refresh_hot();
        shared
    }

    /// Copies the hot-path values from the configuration.
    pub fn refresh_hot(&self) {
        let c = self.config();
        let l = c.client_output_buffer_limit[0];
        self.hot.timeout.store(c.timeout, Ordering::Relaxed);
        self.hot.obuf_hard.store(l.hard, Ordering::Relaxed);
        self.hot.obuf_soft.store(l.soft, Ordering::Relaxed);
        self.hot
            .obuf_soft_seconds
            .store(l.soft_seconds, Ordering::Relaxed);
        self.hot.maxclients.store(c.maxclients, Ordering::Relaxed);
        self.hot
            .query_buffer_limit
            .store(c.client_query_buffer_limit, Ordering::Relaxed);
        self.hot
            .busy_threshold_ms
            .store(c.busy_reply_threshold, Ordering::Relaxed);
        self.hot
            .lua_inline_budget_us
            .store(c.lua_inline_budget, Ordering::Relaxed);
        drop(c);
        crate::evict::apply_tracking(self);
    }

    /// A snapshot read of the configuration.
    pub fn config(&self) -> std::sync::RwLockReadGuard<'_, Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a graceful shutdown (idempotent).
    pub fn begin_shutdown(&self) {
        if !self.shutting_down.swap(true, Ordering::AcqRel) {
            tracing::warn!("shutdown requested: closing listeners and clients");
        }
        self.shutdown.notify_one();
    }

    /// Registers a new connection.
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientHandle> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let h = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            created_ms: now,
            last_ms: AtomicU64::new(now),
            db: AtomicUsize::new(0),
            name: Mutex::new(None),
            last_cmd: AtomicU16::new(0),
            resp: AtomicU8::new(2),
            multi: AtomicI64::new(-1),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, h.clone());
        h
    }

    /// Removes a closed connection.
    pub fn unregister(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.connected.fetch_sub(1, Ordering::AcqRel);
    }

    /// All connected clients, by id.
    pub fn client_list(&self) -> Vec<Arc<ClientHandle>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Accepts connections until shutdown, then closes clients, waits (up to
/// 10 s) for in-flight batches to finish and, if the shutdown asked for it
/// (`SHUTDOWN [SAVE]`, or a signal with save points configured) and anything
/// changed since the last save, takes a final checkpoint. Returns false if
/// that checkpoint failed.
pub async fn serve(shared: Shared, listeners: Vec<TcpListener>) -> bool {
    // Signal handlers first: a SIGTERM right after the first client got
    // its answer must already shut down gracefully.
    let sig = match install_signals() {
        Ok((term, int)) => Some(tokio::spawn(signals(shared.clone(), term, int))),
        Err(e) => {
            tracing::warn!("cannot install signal handlers: {e}");
            None
        }
    };
    let mut accepts = Vec::new();
    for l in listeners {
        let shared = shared.clone();
        accepts.push(tokio::spawn(accept_loop(shared, l)));
    }
    while !shared.shutting_down.load(Ordering::Acquire) {
        shared.shutdown.notified().await;
    }
    for a in &accepts {
        a.abort();
    }
    if let Some(sig) = sig {
        sig.abort();
    }
    for c in shared.client_list() {
        c.kill();
    }
    if let Some(e) = shared.scripting.get() {
        e.kill_all();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shared.connected.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.keyspace.stop_background();
    let mut ok = true;
    if shared.save_on_exit.load(Ordering::Acquire)
        && (crate::persist::changes_since_save(&shared) > 0 || !shared.persist.last_ok())
    {
        tracing::info!("Saving the final checkpoint before exiting.");
        let sh = shared.clone();
        let r = tokio::task::spawn_blocking(move || crate::persist::save(&sh, "shutdown")).await;
        if !matches!(r, Ok(Ok(_))) {
            tracing::warn!("Error trying to save the DB on shutdown");
            ok = false;
        }
    }
    if let Some(aof) = shared.keyspace.aof.get().cloned() {
        let r = tokio::task::spawn_blocking(move || {
            aof.sync().wait()?;
            aof.close()
        })
        .await;
        match r {
            Ok(Ok(())) => tracing::info!("AOF fsynced and closed."),
            Ok(Err(e)) => {
                tracing::warn!("Error closing the AOF on shutdown: {e}");
                ok = false;
            }
            Err(e) => {
                tracing::warn!("Error closing the AOF on shutdown: {e}");
                ok = false;
            }
        }
    }
    tracing::warn!("kvd is now ready to exit, bye bye...");
    ok
}

type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

fn install_signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    Ok((
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    ))
}

async fn signals(
    shared: Shared,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => tracing::warn!("Received SIGTERM scheduling shutdown..."),
        _ = int.recv() => tracing::warn!("Received SIGINT scheduling shutdown..."),
    }
    let save = !shared.config().save.is_empty();
    shared.save_on_exit.store(save, Ordering::Release);
    shared.begin_shutdown();
}

async fn accept_loop(shared: Shared, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.shutting_down.load(Ordering::Acquire) {
            return;
        }
        shared
            .stats
            .total_connections_received
            .fetch_add(1, Ordering::Relaxed);
        let max = shared.hot.maxclients.load(Ordering::Relaxed) as usize;
        let n = shared.connected.fetch_add(1, Ordering::AcqRel) + 1;
        if n > max {
            shared.connected.fetch_sub(1, Ordering::AcqRel);
            shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            crate::conn::run(shared, stream, addr).await;
        });
    }
}
