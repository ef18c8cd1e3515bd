//! kvd's side of scripting: the [`lua_engine::Host`] that isolates a
//! script run and executes its `redis.call`s against the keyspace.
//!
//! A run (on a Lua worker thread, or inline on the connection's thread
//! when its locks are free at once: decision 009) follows the lock
//! order of decision 005: the write gate — shared for a run over its
//! declared keys, exclusive for the re-run of a script that touched an
//! undeclared key — then the declared keys' stripes, exclusively, then an
//! engine pin per call (never held between calls). The stripes are marked
//! with the run's start time so connections that need them can answer
//! `-BUSY` once the script runs past `busy-reply-threshold`.
//!
//! Every write goes to the run's [`Overlay`]; on commit the overlay is
//! applied to the store and the script's effects are submitted to the AOF
//! as one `MULTI … EXEC` block (a single write as the bare command), both
//! before the locks are released. On
//! discard both are dropped: nothing happened.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use hybrid_log::Session;
use lua_engine::{Access, CallAbort, Calls, Frame, Host, Reply, Verdict};
use resp_codec::Protocol;

use crate::cmd::table::{self, flag, Cmd};
use crate::cmd::{self, Ctx};
use crate::conn::ConnState;
use crate::keyspace::{apply_overlay, Effects, Overlay, Sess};
use crate::reply::Out;
use crate::server::{ClientHandle, Inner, Shared};

/// The connection-side data of a script request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The caller's selected db.
    pub db: usize,
    /// The caller's client id (stats shard).
    pub client_id: u64,
}

/// An AOF submission of a committed script.
pub type Receipt = Result<aof::Ticket, aof::AofError>;

/// The host: a weak handle on the server (the engine lives inside it).
#[derive(Debug)]
pub struct ScriptHost {
    shared: Weak<Inner>,
}

impl ScriptHost {
    /// A host over `shared`.
    pub fn new(shared: &Shared) -> Self {
        ScriptHost {
            shared: shared.downgrade(),
        }
    }
}

/// The engine type kvd runs.
pub type Engine = lua_engine::Engine<ScriptHost>;

/// `-BUSY` text.
pub const BUSY: &[u8] =
    b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// One worker thread's command context, built once per thread and reused
/// by every run on it.
#[derive(Debug)]
pub struct ScriptCalls {
    shared: Shared,
    state: ConnState,
    session: Session,
    keybuf: Vec<u8>,
    scratch: Vec<u8>,
    fx: Effects,
    out: Out,
    access: Access,
    /// Stripes the run holds (sorted), for the undeclared-key check.
    held: Vec<usize>,
    /// Stripes a call needs (reused).
    needed: Vec<usize>,
    /// The last run's emptied write buffer, kept for its capacity.
    spare: Overlay,
}

thread_local! {
    static CALLS: RefCell<Option<Rc<RefCell<ScriptCalls>>>> = const { RefCell::new(None) };
}

impl ScriptCalls {
    fn new(shared: Shared) -> Self {
        let id = shared
            .next_client_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handle = ClientHandle::internal(id, "lua");
        let session = shared.keyspace.session();
        ScriptCalls {
            state: ConnState::new(handle, true),
            shared,
            session,
            keybuf: Vec::new(),
            scratch: Vec::new(),
            fx: Effects::default(),
            out: Out::new(),
            access: Access::Keys,
            held: Vec::new(),
            needed: Vec::new(),
            spare: Overlay::default(),
        }
    }
}

/// Commands a script may not call (beyond the table's `noscript` flag).
fn refused_in_script(spec: &table::CommandSpec, args: &[Bytes]) -> bool {
    if spec.has(flag::NOSCRIPT) || matches!(spec.id, Cmd::SwapDb) {
        return true;
    }
    if !spec.subcommands.is_empty() && args.len() >= 2 {
        if let Some(sub) = table::lookup_sub(spec, &args[1]) {
            return sub.flags & flag::NOSCRIPT != 0;
        }
    }
    // CONFIG and CLIENT are containers whose subcommands are all
    // connection- or server-level: not from scripts.
    matches!(spec.id, Cmd::Config | Cmd::Client)
}

/// Commands that read or write the whole keyspace rather than named keys.
fn keyspace_wide(id: Cmd) -> bool {
    matches!(
        id,
        Cmd::Keys | Cmd::Scan | Cmd::RandomKey | Cmd::DbSize | Cmd::FlushDb | Cmd::FlushAll
    )
}

fn error(msg: &'static [u8]) -> Reply<'static> {
    Reply::Frame(Frame::Error(Bytes::from_static(msg)))
}

impl Calls for ScriptCalls {
    fn call(
        &mut self,
        args: &[Bytes],
        resp3: bool,
        read_only: bool,
    ) -> Result<Reply<'_>, CallAbort> {
        let Some(spec) = table::lookup(&args[0]) else {
            return Ok(error(b"ERR Unknown Redis command called from script"));
        };
        if !spec.arity_ok(args.len()) {
            return Ok(error(
                b"ERR Wrong number of args calling Redis command from script",
            ));
        }
        if refused_in_script(spec, args) {
            return Ok(error(b"ERR This Redis command is not allowed from script"));
        }
        if read_only && spec.has(flag::WRITE) {
            return Ok(error(
                b"ERR Write commands are not allowed from read-only scripts.",
            ));
        }
        if spec.has(flag::WRITE) {
            // The same refusals as a client's write (MISCONF, a failed AOF):
            // the script fails and nothing is applied.
            if let Some(e) = self.shared.keyspace.aof.get().and_then(|a| a.failure()) {
                return Ok(Reply::Frame(Frame::Error(Bytes::from(e.to_string()))));
            }
            if !self.shared.persist.last_ok() && crate::persist::refuse_writes(&self.shared) {
                return Ok(error(crate::persist::MISCONF));
            }
        }
        if self.access == Access::Keys {
            if keyspace_wide(spec.id) {
                return Err(CallAbort::Undeclared);
            }
            let mut needed = std::mem::take(&mut self.needed);
            needed.clear();
            cmd::push_lock_keys(&self.shared, spec, args, self.state.db, &mut needed);
            let undeclared = needed.iter().any(|s| self.held.binary_search(s).is_err());
            self.needed = needed;
            if undeclared {
                return Err(CallAbort::Undeclared);
            }
        }
        if self.out.buf.capacity() > 1 << 20 {
            self.out.buf = BytesMut::new(); // don't keep a big reply's buffer
        }
        self.out.buf.clear();
        self.out.proto = if resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        {
            let mut sess = Sess::new(
                &mut self.session,
                &mut self.keybuf,
                &mut self.scratch,
                &mut self.fx,
            );
            let mut ctx = Ctx {
                shared: &self.shared,
                conn: &mut self.state,
                sess: &mut sess,
                out: &mut self.out,
            };
            cmd::run(&mut ctx, spec, args);
        }
        // Converted to Lua straight from the encoded reply.
        Ok(Reply::Resp(&self.out.buf))
    }
}

impl Host for ScriptHost {
    type Caller = Caller;
    type Receipt = Receipt;
    type Calls = ScriptCalls;

    fn run(
        &self,
        caller: &Caller,
        keys: &[Bytes],
        access: Access,
        body: &mut lua_engine::RunBody<'_, ScriptCalls>,
    ) -> Result<Option<Receipt>, String> {
        self.isolated(caller, keys, access, true, body)
            .unwrap_or_else(|| Err("ERR the server could not run the script".into()))
    }

    fn try_run(
        &self,
        caller: &Caller,
        keys: &[Bytes],
        body: &mut lua_engine::RunBody<'_, ScriptCalls>,
    ) -> Option<Result<Option<Receipt>, String>> {
        self.isolated(caller, keys, Access::Keys, false, body)
    }
}

impl ScriptHost {
    /// One run under `access`. `wait`: on a Lua worker, wait for the gate
    /// and the stripes; otherwise (inline, on a runtime thread) take them
    /// only if they are free at once, else None without running `body`.
    fn isolated(
        &self,
        caller: &Caller,
        keys: &[Bytes],
        access: Access,
        wait: bool,
        body: &mut lua_engine::RunBody<'_, ScriptCalls>,
    ) -> Option<Result<Option<Receipt>, String>> {
        let Some(shared) = Shared::upgrade(&self.shared) else {
            return Some(Err("ERR the server is shutting down".into()));
        };
        let calls = CALLS.with(|c| {
            c.borrow_mut()
                .get_or_insert_with(|| Rc::new(RefCell::new(ScriptCalls::new(shared.clone()))))
                .clone()
        });
        let ks = &shared.keyspace;
        // The run's start, marked on a worker run's stripes (taken before
        // the gate; an inline run is not marked and reads no clock).
        let started = if wait {
            crate::util::now_ms().max(1)
        } else {
            0
        };
        // Lock order: gate -> stripes -> pin (decision 005).
        let (_gread, _gwrite) = match (access, wait) {
            (Access::Keys, true) => (
                Some(ks.gate.read().unwrap_or_else(|e| e.into_inner())),
                None,
            ),
            (Access::Keys, false) => (Some(crate::keyspace::try_read_gate(&ks.gate)?), None),
            (Access::Exclusive, true) => (
                None,
                Some(ks.gate.write().unwrap_or_else(|e| e.into_inner())),
            ),
            (Access::Exclusive, false) => return None,
        };
        let mut held = ScriptStripes {
            locks: &ks.locks,
            stripes: Vec::new(),
        };
        if access == Access::Keys {
            let phys = ks.phys(caller.db);
            let mut stripes: Vec<usize> = keys
                .iter()
                .map(|k| crate::keylock::stripe(phys, k))
                .collect();
            stripes.sort_unstable();
            stripes.dedup();
            if wait {
                // One at a time, in order, each marked with the run's start
                // as soon as it is held: a connection waiting for one can
                // tell a script holds it (and answer -BUSY past the
                // threshold) even while the script still waits for its next.
                for s in stripes {
                    held.stripes
                        .extend(ks.locks.lock(vec![s], true).into_stripes());
                    ks.locks.mark_script(&[s], started);
                }
            } else {
                // Inline: all at once or not at all. An inline run is bounded
                // by its budget, so it is never busy and not marked.
                held.stripes = ks.locks.try_lock_all(stripes, true)?.into_stripes();
            }
        }
        let aof = ks.aof.get();
        {
            let mut c = calls.borrow_mut();
            c.access = access;
            c.held.clone_from(&held.stripes);
            c.state.db = caller.db;
            c.state
                .handle
                .db
                .store(caller.db, std::sync::atomic::Ordering::Relaxed);
            c.fx.enabled = aof.is_some();
            // The run's effects, encoded as they happen into one
            // `MULTI … EXEC` block (one write: the bare command), submitted
            // only on commit.
            c.fx.batch.clear();
            if aof.is_some() {
                c.fx.batch.begin_multi();
            }
            c.fx.rewrite = None;
            let spare = std::mem::take(&mut c.spare);
            c.fx.overlay = Some(spare);
            // The run's clock, also for applying its overlay (these effects
            // serve script runs only; every run sets it).
            c.fx.frozen_now = crate::util::now_ms().max(1);
        }
        let verdict = body(&calls);
        let mut c = calls.borrow_mut();
        let c = &mut *c;
        let mut overlay = c.fx.overlay.take().unwrap_or_default();
        c.fx.batch.end_multi();
        c.held.clear();
        let applied = if verdict != Verdict::Commit {
            c.fx.batch.clear();
            None
        } else if overlay.is_empty() {
            Some(Ok(()))
        } else {
            let mut sess = Sess::new(&mut c.session, &mut c.keybuf, &mut c.scratch, &mut c.fx);
            let stats = shared.stats.shard(caller.client_id);
            Some(apply_overlay(ks, &mut sess, stats, &mut overlay))
        };
        // The emptied buffer serves the next run, whatever this one did.
        c.spare = overlay.recycle();
        match applied {
            None => return Some(Ok(None)),
            Some(Err(e)) => {
                // An engine failure (I/O) half-way: the effects are not
                // logged, so a restart comes back to the state before the
                // script; the client is told.
                tracing::error!("applying a script's writes failed: {e}");
                c.fx.batch.clear();
                return Some(Err(format!(
                    "ERR the script's writes could not all be applied ({e}); some may be visible until a restart"
                )));
            }
            Some(Ok(())) => {}
        }
        let mut receipt = None;
        if let Some(aof) = aof {
            if !c.fx.batch.is_empty() {
                receipt = Some(aof.submit(&mut c.fx.batch));
            }
        }
        Some(Ok(receipt))
    }
}

/// The stripes a script run holds: marks cleared and stripes released on
/// drop (also when a command panics).
struct ScriptStripes<'a> {
    locks: &'a crate::keylock::KeyLocks,
    stripes: Vec<usize>,
}

impl Drop for ScriptStripes<'_> {
    fn drop(&mut self) {
        self.locks.mark_script(&self.stripes, 0);
        for &s in self.stripes.iter().rev() {
            self.locks.release_exclusive(s);
        }
    }
}

/// Starts the engine for `shared` with its configured workers and limits.
pub fn start(shared: &Shared, functions: lua_engine::Functions) -> std::io::Result<Engine> {
    let (workers, memory_limit) = {
        let c = shared.config();
        (c.lua_workers, c.lua_memory_limit as usize)
    };
    let config = lua_engine::Config {
        workers: if workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            workers
        },
        memory_limit,
        busy_threshold: shared.hot.busy_threshold_ms.clone(),
        inline_budget_us: shared.hot.lua_inline_budget_us.clone(),
    };
    lua_engine::Engine::new(Arc::new(ScriptHost::new(shared)), config, functions)
}

/// File (in the data dir) holding the function libraries' dump.
pub const FUNCTIONS_FILE: &str = "functions.kvd";

/// Writes `data` to `path` atomically: temp file, fsync, rename, fsync
/// of the directory.
fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("kvd.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The function registry persisted in `dir`, and the saved payload to
/// restore at startup (None when there is no file yet).
pub fn functions_in(dir: &std::path::Path) -> (lua_engine::Functions, Option<Vec<u8>>) {
    let path = dir.join(FUNCTIONS_FILE);
    let saved = std::fs::read(&path).ok();
    let hook: lua_engine::functions::PersistHook =
        Box::new(move |data: &[u8]| write_atomic(&path, data));
    (lua_engine::Functions::new(Some(hook)), saved)
}

/// Starts scripting: the engine, then the saved function libraries.
pub fn init(shared: &Shared) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = shared.config().dir.clone();
    let (functions, saved) = functions_in(&dir);
    let engine = start(shared, functions).context("can't start the Lua workers")?;
    if let Some(payload) = saved {
        let rx = engine.submit(lua_engine::Request {
            job: lua_engine::Job::FunctionRestore {
                payload: Bytes::from(payload),
                policy: lua_engine::RestorePolicy::Flush,
            },
            keys: Vec::new(),
            args: Vec::new(),
            read_only: false,
            resp3: false,
            caller: Caller {
                db: 0,
                client_id: 0,
            },
        });
        let resp = rx.recv().context("the Lua workers stopped")?;
        if resp.is_error {
            anyhow::bail!(
                "can't load the function libraries from {}: {}",
                dir.join(FUNCTIONS_FILE).display(),
                String::from_utf8_lossy(&resp.reply).trim_end()
            );
        }
        let (libs, funcs) = engine.functions().counts();
        tracing::info!("Loaded {libs} function libraries ({funcs} functions)");
    }
    let _ = shared.scripting.set(engine);
    Ok(())
}
