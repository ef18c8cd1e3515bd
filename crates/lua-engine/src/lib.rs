//! Multi-threaded, all-or-nothing Lua 5.1 scripting for kvd: `EVAL`,
//! `EVALSHA`, `SCRIPT`, and Redis 7 functions (`FUNCTION`, `FCALL`).
//!
//! The crate knows Lua and Redis's scripting rules; it knows nothing about
//! the store. A [`Host`] (the kvd server, or the in-memory host of this
//! crate's tests) runs the commands a script calls and provides isolation.
//!
//! - [`Engine`] owns N worker OS threads, each with one `mlua::Lua` VM built
//!   once at thread start ([`vm`]): the sandbox, the `redis` API and the
//!   `cjson`, `cmsgpack`, `bit` and `struct` libraries ([`libs`]). Requests
//!   arrive on `flume` channels; [`Engine::submit`] picks the worker with
//!   the shortest queue and hands back a receiver for the [`Response`].
//! - Per run, the worker asks the host to isolate the script
//!   ([`Host::run`]): the host takes its locks for the declared keys, makes
//!   a [`Calls`] context and the worker swaps it into a thread-local (the
//!   `redis.call` function registered at thread start reads it from there).
//!   The script's verdict (commit or discard) goes back to the host, which
//!   applies or drops the script's buffered writes: a script that fails
//!   leaves no trace. A call that touches an undeclared key makes the host
//!   report [`CallAbort::Undeclared`]; the run is discarded and re-run with
//!   [`Access::Exclusive`].
//! - Short scripts skip the hand-off: [`Engine::try_inline`] runs an EVAL,
//!   EVALSHA or FCALL on the calling thread (a thread-local VM) when the
//!   host can isolate it without waiting ([`Host::try_run`]) and it ends
//!   within [`Config::inline_budget_us`]; otherwise the request comes back
//!   untouched (an abandoned attempt applied nothing) for [`Engine::submit`].
//! - Conversions between RESP and Lua follow Redis exactly ([`convert`]).
//!   A host hands a command's reply back as its RESP bytes ([`Reply::Resp`],
//!   turned into Lua values without an intermediate frame) or as a
//!   [`Frame`].
//! - Limits: a hook every [`HOOK_EVERY`] instructions stops a killed
//!   script (`SCRIPT KILL` / `FUNCTION KILL`, always allowed: nothing was
//!   applied) or one past its deadline (`redis.call` also checks the kill
//!   flag every call and the clock every 16 calls); a per-VM memory limit stops a memory-hungry script, and the
//!   VM is rebuilt if it stays large. Aborts cannot be swallowed by
//!   `pcall`: the sandbox's `pcall`/`xpcall` re-raise them.
//! - Script cache keyed by SHA1 ([`scripts`]), function libraries with
//!   dump/restore ([`functions`]).

pub mod convert;
pub mod functions;
pub mod libs;
pub mod scripts;
pub mod vm;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
pub use resp_codec::Frame;

pub use functions::{FunctionFlags, Functions, RestorePolicy};
pub use scripts::ScriptCache;

/// Instructions between two checks of the kill flag.
pub const HOOK_EVERY: u32 = 10_000;

/// Why a call cannot proceed in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAbort {
    /// The command touches a key the script did not declare (or the whole
    /// keyspace): discard the run and re-run it with [`Access::Exclusive`].
    Undeclared,
}

/// A command's reply to a script.
#[derive(Debug)]
pub enum Reply<'a> {
    /// A decoded reply.
    Frame(Frame),
    /// One complete reply as the host encoded it (RESP2, or RESP3 after
    /// `redis.setresp(3)`): converted to Lua straight from the bytes.
    Resp(&'a [u8]),
}

/// What a script's `redis.call` reaches for one run.
pub trait Calls {
    /// Runs one command (`args[0]` is its name) for the script and returns
    /// its reply, in RESP3 when `resp3` (after `redis.setresp(3)`).
    /// `read_only`: the script may not write (`EVAL_RO`, `no-writes`).
    fn call(
        &mut self,
        args: &[Bytes],
        resp3: bool,
        read_only: bool,
    ) -> Result<Reply<'_>, CallAbort>;
}

/// The isolation a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the declared keys, locked for the run.
    Keys,
    /// Everything, under a server-wide exclusive gate.
    Exclusive,
}

/// The script's verdict on its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Returned normally: apply its writes.
    Commit,
    /// Failed (error, kill, limit, undeclared key): drop its writes.
    Discard,
}

/// The server side of scripting.
pub trait Host: Send + Sync + 'static {
    /// Per-request data from the caller (db, client id, …).
    type Caller: Send + 'static;
    /// What a committed run hands back to the caller (e.g. an AOF ticket).
    type Receipt: Send + 'static;
    /// The per-run context `redis.call` uses.
    type Calls: Calls + 'static;

    /// Runs one script execution in isolation: takes the locks `access`
    /// needs for `keys`, prepares the context, calls `body` (which runs
    /// the Lua code and returns the verdict), then applies the run's
    /// writes on [`Verdict::Commit`] or drops them, and releases the locks.
    /// `Err(text)`: a committed run's writes could not be applied (the
    /// caller gets that error reply instead of the script's result).
    fn run(
        &self,
        caller: &Self::Caller,
        keys: &[Bytes],
        access: Access,
        body: &mut RunBody<'_, Self::Calls>,
    ) -> Result<Option<Self::Receipt>, String>;

    /// Like [`Host::run`] with [`Access::Keys`], for an inline run on the
    /// caller's thread, which must never wait: `None` (without calling
    /// `body`) when the locks are not free at once. The default never runs
    /// inline, so every request goes to a worker thread.
    fn try_run(
        &self,
        caller: &Self::Caller,
        keys: &[Bytes],
        body: &mut RunBody<'_, Self::Calls>,
    ) -> Option<Result<Option<Self::Receipt>, String>> {
        let _ = (caller, keys, body);
        None
    }
}

/// What [`Host::run`] calls with the run's context: runs the Lua code,
/// returns the verdict.
pub type RunBody<'a, C> = dyn FnMut(&std::rc::Rc<std::cell::RefCell<C>>) -> Verdict + 'a;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads (VMs).
    pub workers: usize,
    /// Per-VM memory limit in bytes (0 = none).
    pub memory_limit: usize,
    /// Past this run time a script counts as busy (`busy-reply-threshold`).
    pub busy_threshold: Arc<std::sync::atomic::AtomicU64>,
    /// Time in microseconds an inline run ([`Engine::try_inline`]) may take
    /// before it is abandoned for a worker thread; 0 turns inline runs off.
    pub inline_budget_us: Arc<std::sync::atomic::AtomicU64>,
}

/// Default [`Config::inline_budget_us`].
pub const INLINE_BUDGET_US: u64 = 1000;

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_limit: 64 << 20,
            busy_threshold: Arc::new(std::sync::atomic::AtomicU64::new(5000)),
            inline_budget_us: Arc::new(std::sync::atomic::AtomicU64::new(INLINE_BUDGET_US)),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Job {
    /// `EVAL` / `EVAL_RO`: a script body.
    Eval(Bytes),
    /// `EVALSHA` / `EVALSHA_RO`: a cached script's SHA1 (any case).
    EvalSha(Bytes),
    /// `FCALL` / `FCALL_RO`: a function name.
    Fcall(Bytes),
    /// `SCRIPT LOAD`: compile and cache; replies the SHA1.
    ScriptLoad(Bytes),
    /// `FUNCTION LOAD [REPLACE]`: replies the library name.
    FunctionLoad {
        /// Library code with its `#!lua name=…` shebang.
        code: Bytes,
        /// Replace an existing library of that name.
        replace: bool,
    },
    /// `FUNCTION RESTORE payload [policy]`.
    FunctionRestore {
        /// A `FUNCTION DUMP` payload.
        payload: Bytes,
        /// FLUSH, APPEND or REPLACE.
        policy: RestorePolicy,
    },
}

/// One request to the engine.
#[derive(Debug)]
pub struct Request<C> {
    /// What to run.
    pub job: Job,
    /// Declared keys (`KEYS`).
    pub keys: Vec<Bytes>,
    /// Arguments (`ARGV`).
    pub args: Vec<Bytes>,
    /// `EVAL_RO`, `EVALSHA_RO`, `FCALL_RO`.
    pub read_only: bool,
    /// The caller speaks RESP3 (`HELLO 3`): encode the reply in RESP3.
    pub resp3: bool,
    /// Host data for [`Host::run`].
    pub caller: C,
}

/// The engine's answer.
#[derive(Debug)]
pub struct Response<R> {
    /// The encoded reply (one RESP value).
    pub reply: BytesMut,
    /// Set when a run committed writes.
    pub receipt: Option<R>,
    /// The reply is an error.
    pub is_error: bool,
}

/// A running script, as `SCRIPT KILL`, `FUNCTION STATS` and `-BUSY` see it.
#[derive(Debug, Clone)]
pub struct Running {
    /// When it started.
    pub started: Instant,
    /// A function (`FCALL`) rather than an `EVAL` script.
    pub is_function: bool,
    /// Function name or script SHA1.
    pub name: String,
    /// The command that started it (`EVAL`, `FCALL`, …) and its arguments.
    pub command: Vec<Bytes>,
    kill: Arc<AtomicBool>,
}

/// Shared between the engine handle and its workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub scripts: ScriptCache,
    pub functions: Functions,
    pub running: Vec<Mutex<Option<Running>>>,
    pub queued: Vec<AtomicUsize>,
    pub config: Config,
    /// Requests answered inline, and inline attempts handed to a worker.
    pub inline_runs: AtomicU64,
    pub inline_fallbacks: AtomicU64,
}

/// The scripting engine: worker threads and their queues.
pub struct Engine<H: Host> {
    shared: Arc<Shared>,
    host: Arc<H>,
    senders: Vec<flume::Sender<worker::Msg<H>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl<H: Host> std::fmt::Debug for Engine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.senders.len())
            .finish()
    }
}

/// Outcome of a kill request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// At least one busy script was told to stop.
    Killed,
    /// No busy script of that kind (`-NOTBUSY`).
    NotBusy,
}

impl<H: Host> Engine<H> {
    /// Starts `config.workers` worker threads (at least one) over `host`.
    pub fn new(host: Arc<H>, config: Config, functions: Functions) -> std::io::Result<Self> {
        let n = config.workers.max(1);
        let shared = Arc::new(Shared {
            scripts: ScriptCache::default(),
            functions,
            running: (0..n).map(|_| Mutex::new(None)).collect(),
            queued: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            config,
            inline_runs: AtomicU64::new(0),
            inline_fallbacks: AtomicU64::new(0),
        });
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = flume::unbounded();
            senders.push(tx);
            let (shared, host) = (shared.clone(), host.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("lua-{i}"))
                    .stack_size(16 << 20)
                    .spawn(move || worker::main(i, shared, host, rx))?,
            );
        }
        Ok(Engine {
            shared,
            host,
            senders,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a request on the worker with the shortest queue; the
    /// response arrives on the returned channel.
    pub fn submit(&self, req: Request<H::Caller>) -> flume::Receiver<Response<H::Receipt>> {
        let (tx, rx) = flume::bounded(1);
        let i = (0..self.senders.len())
            .min_by_key(|&i| self.shared.queued[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        self.shared.queued[i].fetch_add(1, Ordering::Relaxed);
        if let Err(flume::SendError(msg)) = self.senders[i].send(worker::Msg::Run(req, tx)) {
            // The worker is gone (shutdown): answer here.
            self.shared.queued[i].fetch_sub(1, Ordering::Relaxed);
            if let worker::Msg::Run(_, tx) = msg {
                let mut reply = BytesMut::new();
                resp_codec::encode::error(&mut reply, b"ERR scripting engine is shut down");
                let _ = tx.send(Response {
                    reply,
                    receipt: None,
                    is_error: true,
                });
            }
        }
        rx
    }

    /// Runs an `EVAL`, `EVALSHA` or `FCALL` on the calling thread, with a
    /// VM of this thread's own, when it finishes within the inline budget
    /// and its keys' locks are free at once ([`Host::try_run`]); this saves
    /// the two thread hand-offs of [`Engine::submit`] for short scripts.
    /// Otherwise the request comes back untouched for `submit`: an attempt
    /// that ran out of budget, met an undeclared key or found its locks
    /// taken was discarded (all-or-nothing); one that ran out of budget or
    /// met an undeclared key then skips the inline attempt on this thread
    /// for its next 64 requests (or until a `SCRIPT FLUSH` or function
    /// change). Inline runs never count as busy and cannot be killed: the
    /// budget bounds them.
    pub fn try_inline(
        &self,
        req: Request<H::Caller>,
    ) -> Result<Response<H::Receipt>, Request<H::Caller>> {
        let budget = self.shared.config.inline_budget_us.load(Ordering::Relaxed);
        if budget == 0 || !matches!(req.job, Job::Eval(_) | Job::EvalSha(_) | Job::Fcall(_)) {
            return Err(req);
        }
        let r = worker::inline(&self.shared, &self.host, req, Duration::from_micros(budget));
        let counter = match r {
            Ok(_) => &self.shared.inline_runs,
            Err(_) => &self.shared.inline_fallbacks,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Requests answered by [`Engine::try_inline`], and those it handed
    /// back for a worker thread.
    pub fn inline_counts(&self) -> (u64, u64) {
        (
            self.shared.inline_runs.load(Ordering::Relaxed),
            self.shared.inline_fallbacks.load(Ordering::Relaxed),
        )
    }

    /// The script cache (`SCRIPT EXISTS`, `SCRIPT FLUSH`).
    pub fn scripts(&self) -> &ScriptCache {
        &self.shared.scripts
    }

    /// The function libraries (`FUNCTION LIST/DELETE/FLUSH/DUMP`).
    pub fn functions(&self) -> &Functions {
        &self.shared.functions
    }

    /// Scripts running right now.
    pub fn running(&self) -> Vec<Running> {
        self.shared
            .running
            .iter()
            .filter_map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// Is a script past the busy threshold running?
    pub fn busy(&self) -> bool {
        let t = self.busy_threshold();
        self.running().iter().any(|r| r.started.elapsed() >= t)
    }

    fn busy_threshold(&self) -> Duration {
        Duration::from_millis(self.shared.config.busy_threshold.load(Ordering::Relaxed))
    }

    /// `SCRIPT KILL` (`functions == false`) or `FUNCTION KILL`: stops every
    /// script of that kind that has run past the busy threshold. Always
    /// possible in kvd: a killed script's writes were never applied.
    pub fn kill(&self, functions: bool) -> KillOutcome {
        let t = self.busy_threshold();
        let mut killed = false;
        for r in self.running() {
            if r.is_function == functions && r.started.elapsed() >= t {
                r.kill.store(true, Ordering::Release);
                killed = true;
            }
        }
        if killed {
            KillOutcome::Killed
        } else {
            KillOutcome::NotBusy
        }
    }

    /// Stops every running script (shutdown).
    pub fn kill_all(&self) {
        for r in self.running() {
            r.kill.store(true, Ordering::Release);
        }
    }

    /// Stops the workers (pending requests are answered first).
    pub fn shutdown(&self) {
        for s in &self.senders {
            let _ = s.send(worker::Msg::Stop);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl<H: Host> Drop for Engine<H> {
    fn drop(&mut self) {
        for r in self.running() {
            r.kill.store(true, Ordering::Release);
        }
        self.shutdown();
    }
}
