//! kvd: a Redis 7.0-compatible key-value server on the FASTER-style
//! `hybrid-log` store.
//!
//! The binary (`src/main.rs`) parses redis-server style options
//! (`kvd [config-file] [--name value ...]`, see [`config`]), opens the
//! store in `<dir>/log`, and runs [`server::serve`] on a tokio multi-thread
//! runtime: one task per connection ([`conn`]) that decodes every complete
//! request in its read buffer with `resp-codec`, executes the batch under
//! one engine epoch pin, and sends all replies with one write. Replies,
//! error texts and flag names follow Redis 7.0; RESP2 by default, RESP3
//! after `HELLO 3`.
//!
//! Semantics worth knowing:
//! - Keys are stored as `[physical db byte] ++ key`, so `--databases` is
//!   at most 256; `SWAPDB` swaps two entries of a logical → physical table.
//! - Read-modify-write commands (INCR*, APPEND, SETRANGE, GETSET, SET
//!   NX/XX/GET/KEEPTTL, EXPIRE*, PERSIST, ...) are one engine RMW each.
//! - Multi-key commands (MSET, MGET, DEL k1 k2, RENAME, COPY, MOVE, ...)
//!   and EXEC hold striped key locks ([`keylock`], stripe order, taken by
//!   the connection while *unpinned*, see [`cmd::lock_plan`]); single-key
//!   writes hold their key's stripe shared and single-key reads wait while
//!   it is held exclusively, so no client observes or lands in the middle
//!   of an EXEC or MSET.
//! - Expiry: lazy on access plus an active thread that scans slices of
//!   the log. DBSIZE and INFO keyspace come from exact per-db counters kept
//!   from the RMW outcomes (expired-but-not-yet-removed keys count, as in
//!   Redis); KEYS, SCAN, RANDOMKEY and FLUSHDB walk the log (O(log size)).
//!
//! - Persistence ([`persist`]): engine checkpoints. SAVE, BGSAVE,
//!   LASTSAVE, `save` points (default `3600 1 300 100 60 10000`),
//!   SHUTDOWN [SAVE|NOSAVE] and SIGTERM/SIGINT (save if save points are
//!   configured) write one; startup recovers the newest one (writes after
//!   it are lost without an AOF). A failed save refuses writes with
//!   `-MISCONF` while save points are configured. The checkpoint token
//!   holds the SWAPDB table: `docs/decisions/003-server-checkpoint-token.md`.
//!
//! - AOF ([`aofw`], `--appendonly yes`): every write's effect goes to the
//!   `aof` crate's group-commit writer; `appendfsync always` releases a
//!   batch's replies only once it is on disk. Startup replays the AOF after
//!   the checkpoint's position; checkpoints rotate the AOF at their cut and
//!   delete the files they cover (BGREWRITEAOF, auto-aof-rewrite).
//!
//! What it is not (yet): no eviction (`maxmemory` sizes the
//! store's in-memory log; beyond it data spills to disk), only the string
//! type, no pub/sub, scripting, ACL users beyond `default`, or
//! replication.
//!
//! Module map:
//! - [`config`]: option table, CLI + config-file parser, CONFIG GET/SET.
//! - [`server`]: shared state ([`server::Shared`]), accept loop,
//!   maxclients, signals and graceful shutdown.
//! - [`conn`]: the per-connection loop (buffers, batches, limits, idle
//!   timeout, output buffer limit).
//! - [`cmd`]: the command table ([`cmd::table`]), the dispatcher
//!   ([`cmd::execute`]) and one module per family: [`cmd::connection`],
//!   [`cmd::strings`], [`cmd::keyspace`], [`cmd::server`],
//!   [`cmd::transactions`].
//! - [`keyspace`]: logical dbs over the store, expiry, key counters, the
//!   RMW glue ([`keyspace::engine`]).
//! - [`aofw`]: the AOF wiring (effects, exact cut, replay).
//! - [`keylock`]: striped key locks (isolation of EXEC and multi-key
//!   commands).
//! - [`watch`]: the WATCH registry.
//! - [`reply`]: the output buffer and RESP2/RESP3 reply encoding.
//! - [`glob`]: Redis glob matching; [`util`]: Redis number parsing and
//!   formatting.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aofw;
pub mod cmd;
pub mod config;
pub mod conn;
pub mod evict;
pub mod glob;
pub mod keylock;
pub mod keyspace;
pub mod metrics;
pub mod persist;
pub mod reply;
pub mod script;
pub mod server;
pub mod util;
pub mod watch;
