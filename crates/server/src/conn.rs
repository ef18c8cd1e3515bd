//! One client connection: a tokio task that owns its read buffer, request
//! decoder, argument vector and output buffer.
//!
//! Loop: decode every complete request in the read buffer and execute it
//! (one engine session pin for the whole batch), then send all replies
//! with one write, then read again. A protocol error replies
//! `-ERR Protocol error: ...` and closes, like Redis.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use resp_codec::{Limits, RequestDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cmd::{self, Ctx, LockPlan};
use crate::keyspace::{Effects, Sess};
use crate::reply::Out;
use crate::server::{ClientHandle, Shared};
use hybrid_log::Session;

/// Stop decoding and flush once this much output is pending.
const FLUSH_AT: usize = 256 * 1024;
/// Initial read buffer size; it doubles while a pipeline or a big
/// argument needs more (idle connections stay small).
const READ_CHUNK: usize = 4 * 1024;

/// Per-connection state the commands see and change.
#[derive(Debug)]
pub struct ConnState {
    /// Registry entry (shared with CLIENT LIST / KILL).
    pub handle: Arc<ClientHandle>,
    /// Selected logical db.
    pub db: usize,
    /// Passed AUTH (or no password configured).
    pub authed: bool,
    /// Commands queued by MULTI (None = not in MULTI).
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command was rejected: EXEC must abort.
    pub multi_dirty: bool,
    /// Encoded keys this client WATCHes.
    pub watched: Vec<Vec<u8>>,
    /// Set by the WATCH registry when a watched key changed.
    pub watch_dirty: Arc<AtomicBool>,
    /// Close after sending the pending replies.
    pub close: bool,
    /// A script request left by EVAL/FCALL/…: the batch ends and the
    /// connection runs it inline or hands it to a Lua worker.
    pub script: Option<crate::cmd::scripting::ScriptRequest>,
}

impl ConnState {
    /// A fresh state on db 0 for `handle`.
    pub fn new(handle: Arc<ClientHandle>, authed: bool) -> Self {
        ConnState {
            handle,
            db: 0,
            authed,
            multi: None,
            multi_dirty: false,
            watched: Vec::new(),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            close: false,
            script: None,
        }
    }

    /// Forgets every watched key.
    pub fn unwatch_all(&mut self, shared: &Shared) {
        let keys = std::mem::take(&mut self.watched);
        shared.keyspace.watches.unwatch(&keys, &self.watch_dirty);
        self.watch_dirty.store(false, Ordering::Release);
    }
}

type Gate = crossbeam_utils::sync::ShardedLock<()>;

/// Takes the write gate shared (unpinned: a checkpoint holding it
/// exclusively waits for the epoch); the runtime moves this worker's other
/// tasks away while a checkpoint's cut or a FLUSH*/SWAPDB runs.
fn read_gate(gate: &Gate) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, ()> {
    crate::keyspace::try_read_gate(gate).unwrap_or_else(|| {
        tokio::task::block_in_place(|| gate.read().unwrap_or_else(|e| e.into_inner()))
    })
}

/// Takes the write gate shared like [`read_gate`], but gives up (None)
/// when it is unavailable while a script runs past the busy threshold:
/// the batch then only serves SCRIPT KILL / FUNCTION KILL (Redis's
/// `-BUSY` state).
fn read_gate_or_busy(
    shared: &Shared,
) -> Option<crossbeam_utils::sync::ShardedLockReadGuard<'_, ()>> {
    let gate = &shared.keyspace.gate;
    let try_read = || crate::keyspace::try_read_gate(gate);
    if let Some(g) = try_read() {
        return Some(g);
    }
    // A checkpoint's cut or a FLUSHALL holds the gate briefly; only a
    // wait that lasts while a script is busy is the -BUSY state.
    let busy = || shared.scripting.get().is_some_and(|e| e.busy());
    let t0 = std::time::Instant::now();
    tokio::task::block_in_place(|| {
        let mut spins = 0u32;
        loop {
            if let Some(g) = try_read() {
                return Some(g);
            }
            if t0.elapsed() >= Duration::from_millis(100) && busy() {
                return None;
            }
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    })
}

/// Is `s` held by a script that has run past `busy-reply-threshold`?
fn script_busy(shared: &Shared, s: usize) -> bool {
    shared.keyspace.locks.script_since(s).is_some_and(|since| {
        crate::util::now_ms().saturating_sub(since)
            >= shared.hot.busy_threshold_ms.load(Ordering::Relaxed)
    })
}

/// Takes `stripes` (unpinned): at once when they are free, else waiting
/// off the runtime; None (for `-BUSY`) when one is held by a script past
/// the busy threshold. Connections needing other keys never wait here.
fn lock_stripes(
    shared: &Shared,
    stripes: Vec<usize>,
    exclusive: bool,
) -> Option<crate::keylock::Held<'_>> {
    let locks = &shared.keyspace.locks;
    if let Some(h) = locks.try_lock_all(stripes.clone(), exclusive) {
        return Some(h);
    }
    tokio::task::block_in_place(|| {
        locks.lock_or_abandon(stripes, exclusive, &|s| script_busy(shared, s))
    })
}

/// Waits until `s` is not held exclusively (unpinned); false for `-BUSY`
/// (a script past the busy threshold holds it). Short holds are spun on;
/// long ones wait off the runtime.
fn wait_stripe(shared: &Shared, s: usize) -> bool {
    let locks = &shared.keyspace.locks;
    let mut spins = 0u32;
    while locks.exclusive_held(s) {
        if script_busy(shared, s) {
            return false;
        }
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else if spins < 256 {
            std::thread::yield_now();
        } else {
            // A long hold (a script): wait off the runtime.
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_micros(100)));
        }
    }
    true
}

/// Takes the write gate exclusively (unpinned, holding no stripe).
fn write_gate(gate: &Gate) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, ()> {
    tokio::task::block_in_place(|| gate.write().unwrap_or_else(|e| e.into_inner()))
}

/// A submitted batch of AOF effects.
type Pending = Result<aof::Ticket, aof::AofError>;

/// Submits the batch's encoded effects (while the caller still holds the
/// gate and the stripes), then releases the stripes held for them.
fn flush_effects(
    fx: &mut Effects,
    aof: Option<&aof::Aof>,
    locks: &crate::keylock::KeyLocks,
    pending: &mut Vec<Pending>,
) {
    if let Some(aof) = aof {
        if !fx.batch.is_empty() {
            pending.push(aof.submit(&mut fx.batch));
        }
    }
    for s in fx.held.drain(..) {
        locks.release_exclusive(s);
    }
}

/// Makes room in the read buffer before a read (it doubles while a
/// pipeline or a big argument needs more) and returns the free space.
fn read_room(rbuf: &mut BytesMut) -> usize {
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(rbuf.len().max(READ_CHUNK));
    }
    rbuf.capacity() - rbuf.len()
}

enum BatchEnd {
    /// The read buffer holds no complete request.
    NeedMore,
    /// Output is large: flush, then continue decoding.
    Flush,
    /// Close after flushing.
    Close,
    /// A script request is waiting in `ConnState::script`: run it (inline
    /// or on a Lua worker), then continue with the rest of the buffer.
    Script,
}

/// Runs a connection to completion.
pub async fn run(shared: Shared, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let handle = shared.register(addr, laddr);
    let (limits, authed) = {
        let c = shared.config();
        let limits = Limits {
            max_bulk_len: c.proto_max_bulk_len.min(i64::MAX as u64) as _,
            ..Limits::default()
        };
        (limits, c.requirepass.is_none())
    };
    let mut conn = Connection {
        shared: shared.clone(),
        state: ConnState::new(handle.clone(), authed),
        session: shared.keyspace.session(),
        keybuf: Vec::with_capacity(64),
        scratch: Vec::with_capacity(64),
        fx: Effects::default(),
        pending: Vec::new(),
        decoder: RequestDecoder::new(limits),
        args: Vec::with_capacity(8),
        out: Out::new(),
        soft_since: None,
    };
    conn.decoder.set_unauthenticated(!authed);
    if let Err(e) = conn.serve(&mut stream).await {
        tracing::debug!("client {addr} closed: {e}");
    }
}

impl Drop for Connection {
    /// Cleanup also runs if a command panicked (tokio unwinds the task).
    fn drop(&mut self) {
        let shared = self.shared.clone();
        self.state.unwatch_all(&shared);
        shared.unregister(self.state.handle.id);
    }
}

struct Connection {
    shared: Shared,
    state: ConnState,
    session: Session,
    keybuf: Vec<u8>,
    scratch: Vec<u8>,
    /// AOF effects of the running batch.
    fx: Effects,
    /// AOF submissions of the batch whose replies are pending.
    pending: Vec<Pending>,
    decoder: RequestDecoder,
    args: Vec<Bytes>,
    out: Out,
    /// Since when every batch's output exceeds the soft limit.
    soft_since: Option<std::time::Instant>,
}

impl Connection {
    async fn serve(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        // The last read filled the read buffer's free space.
        let mut read_filled = false;
        // One kill wait for the connection's life, polled only when a read
        // has to wait (`biased`): a new `Notified` per read registered and
        // removed itself under the `Notify`'s lock every request.
        let handle = self.state.handle.clone();
        let kill = handle.kill.notified();
        tokio::pin!(kill);
        loop {
            // Two-tier: while migration to the cold tier is far behind, wait a little
            // before each batch (at most 200 ms) so the hot tier stays near its budget.
            let store = self.shared.keyspace.store();
            if !rbuf.is_empty() && store.tier_backlogged() {
                for _ in 0..200 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    if !store.tier_backlogged() {
                        break;
                    }
                }
            }
            let mut end = self.run_batch(&mut rbuf).await;
            // appendfsync always: the replies leave only once the batch's
            // effects are on disk (group commit: the writer batches every
            // connection's submissions). Gate, stripes and pin are released.
            if !self.pending.is_empty() {
                let always = self
                    .shared
                    .keyspace
                    .aof
                    .get()
                    .is_some_and(|a| a.config().fsync == aof::FsyncPolicy::Always);
                // Requests that are already readable join the batch before
                // it waits for its fsync: a pipelined load (redis-cli
                // --pipe) pays one fsync per socket's worth of requests, not
                // one per read buffer.
                // Only after a read that filled the buffer (the socket may
                // hold more): an unpipelined client pays no extra syscall.
                while always
                    && read_filled
                    && matches!(end, BatchEnd::NeedMore)
                    && self.out.buf.len() < FLUSH_AT
                {
                    let free = read_room(&mut rbuf);
                    match stream.try_read_buf(&mut rbuf) {
                        // EOF: the next read sees it again, after the replies.
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if !self.took_input(rbuf.len(), n) {
                                return Ok(());
                            }
                            read_filled = n == free;
                            end = self.run_batch(&mut rbuf).await;
                        }
                    }
                }
                // Drained, not taken: the vector keeps its capacity.
                let mut pending = std::mem::take(&mut self.pending);
                for p in pending.drain(..) {
                    let r = match p {
                        Ok(t) if always => t.wait_async().await,
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = r {
                        // Nothing that is not durable is acknowledged: the
                        // replies are dropped and the connection closed.
                        tracing::warn!(
                            "closing client {}: its writes could not be logged to the AOF: {e}",
                            self.state.handle.addr
                        );
                        return Ok(());
                    }
                }
                self.pending = pending;
            }
            if !self.out.buf.is_empty() {
                if self.output_over_limit() {
                    tracing::warn!(
                        "client id={} addr={} closed for overcoming of output buffer limits",
                        self.state.handle.id,
                        self.state.handle.addr
                    );
                    return Ok(());
                }
                stream.write_all(&self.out.buf).await?;
                self.stats()
                    .net_output_bytes
                    .fetch_add(self.out.buf.len() as u64, Ordering::Relaxed);
                if self.out.errors > 0 {
                    let errors = std::mem::take(&mut self.out.errors);
                    self.stats()
                        .total_error_replies
                        .fetch_add(errors, Ordering::Relaxed);
                }
                if self.out.buf.capacity() > 4 * 1024 * 1024 {
                    self.out.buf = BytesMut::with_capacity(READ_CHUNK);
                } else {
                    self.out.buf.clear();
                }
            }
            match end {
                BatchEnd::Close => return Ok(()),
                BatchEnd::Flush | BatchEnd::Script => continue,
                BatchEnd::NeedMore => {}
            }
            if self.state.handle.killed.load(Ordering::Acquire) {
                return Ok(());
            }
            let free = read_room(&mut rbuf);
            let timeout = self.shared.hot.timeout.load(Ordering::Relaxed);
            let n = if timeout > 0 {
                tokio::select! {
                    biased;
                    r = stream.read_buf(&mut rbuf) => r?,
                    _ = &mut kill => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(timeout)) => {
                        tracing::debug!("closing idle client {}", self.state.handle.addr);
                        return Ok(());
                    }
                }
            } else {
                tokio::select! {
                    biased;
                    r = stream.read_buf(&mut rbuf) => r?,
                    _ = &mut kill => return Ok(()),
                }
            };
            if n == 0 {
                return Ok(());
            }
            read_filled = n == free;
            if !self.took_input(rbuf.len(), n) {
                return Ok(());
            }
        }
    }

    /// Accounts `n` bytes just read into a read buffer now `buffered` long;
    /// false (logged) when the buffer passed `client-query-buffer-limit`
    /// and the connection must close.
    fn took_input(&self, buffered: usize, n: usize) -> bool {
        if buffered as u64 > self.shared.hot.query_buffer_limit.load(Ordering::Relaxed) {
            tracing::warn!(
                "closing client id={} addr={} that reached max query buffer length",
                self.state.handle.id,
                self.state.handle.addr
            );
            return false;
        }
        self.stats()
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        true
    }

    /// Executes the complete requests in `rbuf`; a script's reply joins
    /// the batch's output, so the rest of a pipeline runs before anything
    /// is written (one write per batch, scripts or not).
    async fn run_batch(&mut self, rbuf: &mut BytesMut) -> BatchEnd {
        let mut end = self.process_batch(rbuf);
        while let BatchEnd::Script = end {
            self.run_script().await;
            end = if self.out.buf.len() >= FLUSH_AT {
                BatchEnd::Flush
            } else {
                self.process_batch(rbuf)
            };
        }
        end
    }

    /// Runs the pending script request, inline or on a Lua worker, and
    /// appends its reply (no gate, stripe or pin of the batch is held).
    async fn run_script(&mut self) {
        let Some(req) = self.state.script.take() else {
            return;
        };
        let Some(engine) = self.shared.scripting.get() else {
            self.out.error(b"ERR scripting is not available");
            return;
        };
        // A short script runs right here (no thread hand-off); a long one,
        // or one whose keys are locked, goes to a Lua worker.
        let resp = match engine.try_inline(req) {
            Ok(resp) => resp,
            Err(req) => match engine.submit(req).recv_async().await {
                Ok(resp) => resp,
                Err(_) => {
                    self.out.error(b"ERR scripting engine stopped");
                    return;
                }
            },
        };
        self.out.buf.extend_from_slice(&resp.reply);
        if resp.is_error {
            self.out.errors += 1;
        }
        if let Some(p) = resp.receipt {
            self.pending.push(p);
        }
    }

    fn stats(&self) -> &crate::server::StatShard {
        self.shared.stats.shard(self.state.handle.id)
    }

    /// Pending output over the normal class's limits. Replies leave after
    /// every batch, so the pending output is one batch's: over the hard
    /// limit closes at once; over the soft limit in every batch for
    /// `soft_seconds` closes too.
    fn output_over_limit(&mut self) -> bool {
        let hot = &self.shared.hot;
        let len = self.out.buf.len() as u64;
        let hard = hot.obuf_hard.load(Ordering::Relaxed);
        if hard > 0 && len > hard {
            return true;
        }
        let soft = hot.obuf_soft.load(Ordering::Relaxed);
        if soft == 0 || len <= soft {
            self.soft_since = None;
            return false;
        }
        let secs = hot.obuf_soft_seconds.load(Ordering::Relaxed);
        let since = *self.soft_since.get_or_insert_with(std::time::Instant::now);
        since.elapsed() >= Duration::from_secs(secs)
    }

    /// The `-BUSY` state: a script past the busy threshold keeps the gate.
    /// Only SCRIPT KILL, FUNCTION KILL, FUNCTION STATS and SHUTDOWN NOSAVE
    /// run (they touch no key); everything else is answered `-BUSY`.
    fn process_busy_batch(&mut self, rbuf: &mut BytesMut) -> BatchEnd {
        let shared = &self.shared;
        let end = loop {
            match self.decoder.decode(rbuf, &mut self.args) {
                Ok(true) => {
                    let allowed = self.args.len() == 2
                        && (cmd::is(&self.args[0], "script") && cmd::is(&self.args[1], "kill")
                            || cmd::is(&self.args[0], "function")
                                && (cmd::is(&self.args[1], "kill")
                                    || cmd::is(&self.args[1], "stats"))
                            || cmd::is(&self.args[0], "shutdown")
                                && cmd::is(&self.args[1], "nosave"));
                    if !allowed || !self.state.authed {
                        self.out.error(crate::script::BUSY);
                        continue;
                    }
                    let mut sess = Sess::new(
                        &mut self.session,
                        &mut self.keybuf,
                        &mut self.scratch,
                        &mut self.fx,
                    );
                    let mut ctx = Ctx {
                        shared,
                        conn: &mut self.state,
                        sess: &mut sess,
                        out: &mut self.out,
                    };
                    cmd::execute(&mut ctx, &self.args);
                }
                Ok(false) => break BatchEnd::NeedMore,
                Err(e) => {
                    self.out.error(format!("ERR {e}").as_bytes());
                    break BatchEnd::Close;
                }
            }
        };
        self.args.clear();
        end
    }

    /// Decodes and executes every complete request in `rbuf` under the
    /// write gate (shared) and one engine pin; with the AOF on, the
    /// effects are submitted before the gate is released (see
    /// `crate::aofw` for the lock protocol).
    fn process_batch(&mut self, rbuf: &mut BytesMut) -> BatchEnd {
        if rbuf.is_empty() {
            return BatchEnd::NeedMore;
        }
        let shared = &self.shared;
        let aof = shared.keyspace.aof.get();
        let logging = aof.is_some();
        self.fx.enabled = logging;
        let locks = &shared.keyspace.locks;
        let gate = &shared.keyspace.gate;
        // Lock order: gate -> stripes -> pin (crate::keylock).
        let Some(first_gate) = read_gate_or_busy(shared) else {
            return self.process_busy_batch(rbuf);
        };
        let mut gread = Some(first_gate);
        macro_rules! pin {
            () => {
                Sess::new(
                    &mut self.session,
                    &mut self.keybuf,
                    &mut self.scratch,
                    &mut self.fx,
                )
            };
        }
        let mut sess = pin!();
        let mut executed = 0u64;
        let end = loop {
            match self.decoder.decode(rbuf, &mut self.args) {
                Ok(true) => {
                    executed += 1;
                    // Key locks (crate::keylock): never wait for one while
                    // pinned (a holder may be waiting for the epoch): try
                    // pinned, and on contention unpin (submitting the
                    // effects so far and releasing held stripes), wait,
                    // re-pin.
                    let mut _one = None;
                    let mut _multi = None;
                    let mut gwrite = None;
                    let mut ungated = false;
                    let mut refused = false;
                    let spec = cmd::table::lookup(&self.args[0]);
                    match cmd::lock_plan(shared, &self.state, spec, &self.args) {
                        LockPlan::None => {}
                        LockPlan::Read(s) => {
                            if locks.exclusive_held(s) && !sess.holds(s) {
                                drop(sess);
                                flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                                refused = !wait_stripe(shared, s);
                                sess = pin!();
                            }
                        }
                        // AOF on: the stripe is held exclusively until the
                        // effects are submitted, so the AOF orders writes
                        // of one key like the store does.
                        LockPlan::Write(s) if logging => {
                            if !sess.holds(s) {
                                if locks.try_exclusive(s) {
                                    sess.fx().held.push(s);
                                } else {
                                    drop(sess);
                                    flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                                    match lock_stripes(shared, vec![s], true) {
                                        Some(h) => self.fx.held.extend(h.into_stripes()),
                                        None => refused = true,
                                    }
                                    sess = pin!();
                                }
                            }
                        }
                        LockPlan::Write(s) => loop {
                            if let Some(g) = locks.try_shared(s) {
                                _one = Some(g);
                                break;
                            }
                            drop(sess);
                            refused = !wait_stripe(shared, s);
                            sess = pin!();
                            if refused {
                                break;
                            }
                        },
                        LockPlan::Multi(stripes, exclusive) => {
                            drop(sess);
                            flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                            match lock_stripes(shared, stripes, exclusive) {
                                Some(h) if logging && exclusive => {
                                    self.fx.held.extend(h.into_stripes())
                                }
                                Some(h) => _multi = Some(h),
                                None => refused = true,
                            }
                            sess = pin!();
                        }
                        LockPlan::Gate => {
                            drop(sess);
                            flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                            drop(gread.take());
                            gwrite = Some(write_gate(gate));
                            sess = pin!();
                        }
                        LockPlan::Ungated => {
                            drop(sess);
                            flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                            drop(gread.take());
                            ungated = true;
                            sess = pin!();
                        }
                    }
                    if refused {
                        // A script that has run past busy-reply-threshold
                        // holds this command's keys.
                        self.out.error(crate::script::BUSY);
                        continue;
                    }
                    if executed.is_multiple_of(128) {
                        sess.refresh();
                    }
                    let authed = self.state.authed;
                    let mut ctx = Ctx {
                        shared,
                        conn: &mut self.state,
                        sess: &mut sess,
                        out: &mut self.out,
                    };
                    cmd::execute_spec(&mut ctx, spec, &self.args);
                    if authed != self.state.authed {
                        self.decoder.set_unauthenticated(!self.state.authed);
                    }
                    if gwrite.is_some() || ungated {
                        drop(sess);
                        flush_effects(&mut self.fx, aof, locks, &mut self.pending);
                        drop(gwrite);
                        gread = Some(read_gate(gate));
                        sess = pin!();
                    }
                    if self.state.close {
                        break BatchEnd::Close;
                    }
                    if self.state.script.is_some() {
                        break BatchEnd::Script;
                    }
                    if self.out.buf.len() >= FLUSH_AT {
                        break BatchEnd::Flush;
                    }
                }
                Ok(false) => break BatchEnd::NeedMore,
                Err(e) => {
                    self.out.error(format!("ERR {e}").as_bytes());
                    tracing::debug!("protocol error from {}: {e}", self.state.handle.addr);
                    break BatchEnd::Close;
                }
            }
        };
        drop(sess);
        flush_effects(&mut self.fx, aof, locks, &mut self.pending);
        drop(gread);
        self.args.clear();
        if executed > 0 {
            self.stats()
                .total_commands_processed
                .fetch_add(executed, Ordering::Relaxed);
            self.state
                .handle
                .last_ms
                .store(crate::util::now_ms(), Ordering::Relaxed);
        }
        end
    }
}
