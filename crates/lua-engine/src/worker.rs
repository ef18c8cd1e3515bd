//! A worker thread: one VM, its compiled scripts and loaded functions, and
//! the run protocol (isolate through the host, run, commit or discard,
//! re-run exclusively after an undeclared key).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mlua::chunk::ChunkMode;
use mlua::{Function, MultiValue, Value};
use resp_codec::{encode, Protocol};

use crate::functions::{self, FunctionFlags, FunctionMeta, Library};
use crate::scripts::{compilable, sha1hex, sha_key, shebang_flags, ShaKey};
use crate::vm::{abort_message, Abort, RunCtx, Vm, RUN};
use crate::{convert, Access, Calls, Host, Job, Request, Response, Running, Shared, Verdict};

/// A message to a worker.
pub(crate) enum Msg<H: Host> {
    Run(Request<H::Caller>, flume::Sender<Response<H::Receipt>>),
    Stop,
}

/// Time a library's top-level code may run (`FUNCTION LOAD`).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

struct Worker<H: Host> {
    /// Index of the worker thread (its `running` slot); None for the
    /// inline worker of a caller's thread.
    id: Option<usize>,
    shared: Arc<Shared>,
    host: Arc<H>,
    vm: Vm,
    /// Compiled EVAL scripts by SHA1, with their shebang flags and the
    /// SHA1 as a name (shared, so that a run does not copy it).
    compiled: fxhash::FxHashMap<ShaKey, (Function, Option<FunctionFlags>, Name)>,
    /// SHA1s of recent EVAL bodies (at most [`BODY_SHAS`]): a repeated
    /// EVAL finds its script without hashing the body again.
    bodies: fxhash::FxHashMap<Bytes, ShaKey>,
    scripts_gen: u64,
    /// Loaded functions by name.
    funcs: HashMap<String, (Function, FunctionFlags)>,
    funcs_version: u64,
    kill: Arc<AtomicBool>,
    /// Inline worker: scripts and functions that ran past the budget or
    /// touched an undeclared key, with the number of requests that still
    /// go straight to the worker threads before the next inline attempt.
    slow: fxhash::FxHashMap<Name, u32>,
}

/// How a run is isolated and what happens when it cannot finish.
#[derive(Clone, Copy)]
enum Mode {
    /// On a worker thread: waits for its locks, may run past the busy
    /// threshold (and be killed), re-runs exclusively after an undeclared key.
    Pool,
    /// On the caller's thread: takes its locks only if they are free at
    /// once and stops at the deadline; anything else falls back to `Pool`.
    Inline(Instant),
}

/// Requests of a script that overran the inline budget (or touched an
/// undeclared key) that go straight to a worker before it is tried inline
/// again: a script that is always slow wastes at most one budget per this
/// many runs.
const SLOW_SKIPS: u32 = 64;

/// Bodies whose SHA1 a worker remembers (the map starts over when full).
const BODY_SHAS: usize = 1024;

/// Why an inline run handed its request to a worker thread.
enum Fallback {
    /// Its locks were taken (it did not run).
    Locked,
    /// It ran past the budget or touched an undeclared key (discarded):
    /// this script skips the inline attempt on this thread for its next
    /// [`SLOW_SKIPS`] requests. Not for good: the budget is wall-clock time,
    /// so a short script preempted mid-run on a busy machine overruns it too.
    Slow,
}

thread_local! {
    /// This thread's inline worker (a `Worker<H>` of the engine it last
    /// served), built on the first inline run.
    static INLINE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `req` on the calling thread when it can finish within `budget`
/// without waiting for a lock; otherwise hands `req` back untouched for a
/// worker thread (whatever an abandoned attempt did was discarded).
pub(crate) fn inline<H: Host>(
    shared: &Arc<Shared>,
    host: &Arc<H>,
    req: Request<H::Caller>,
    budget: Duration,
) -> Result<Response<H::Receipt>, Request<H::Caller>> {
    INLINE.with(|cell| {
        // A run never re-enters (commands do not run scripts); be safe anyway.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Err(req);
        };
        let current = slot
            .as_ref()
            .and_then(|b| b.downcast_ref::<Worker<H>>())
            .is_some_and(|w| Arc::ptr_eq(&w.shared, shared));
        if !current {
            let Ok(vm) = Vm::new(shared.config.memory_limit) else {
                return Err(req);
            };
            *slot = Some(Box::new(Worker::new(
                None,
                shared.clone(),
                host.clone(),
                vm,
            )));
        }
        let Some(w) = slot.as_mut().and_then(|b| b.downcast_mut::<Worker<H>>()) else {
            return Err(req);
        };
        let deadline = Instant::now() + budget;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            w.handle_inline(req, deadline)
        })) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("inline Lua run panicked");
                RUN.with(|r| r.borrow_mut().take());
                w.reset_vm();
                Ok(error_response(
                    b"ERR internal error while running the script",
                ))
            }
        }
    })
}

pub(crate) fn main<H: Host>(
    id: usize,
    shared: Arc<Shared>,
    host: Arc<H>,
    rx: flume::Receiver<Msg<H>>,
) {
    let vm = match Vm::new(shared.config.memory_limit) {
        Ok(vm) => vm,
        Err(e) => {
            tracing::error!("Lua worker {id} could not build its VM: {e}");
            while let Ok(Msg::Run(_, tx)) = rx.recv() {
                shared.queued[id].fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(error_response(b"ERR the Lua VM could not be created"));
            }
            return;
        }
    };
    let mut w = Worker::new(Some(id), shared, host, vm);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Stop => break,
            Msg::Run(req, tx) => {
                let resp = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    w.handle(req)
                })) {
                    Ok(r) => r,
                    Err(_) => {
                        // A bug below (a command, the host): answer, forget
                        // the run, start from a fresh VM; keep serving.
                        tracing::error!("Lua worker {id}: a script run panicked");
                        RUN.with(|r| r.borrow_mut().take());
                        *w.shared.running[id]
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = None;
                        w.reset_vm();
                        error_response(b"ERR internal error while running the script")
                    }
                };
                w.shared.queued[id].fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(resp);
            }
        }
    }
}

fn error_response<R>(msg: &[u8]) -> Response<R> {
    let mut reply = BytesMut::new();
    encode::error(&mut reply, &convert::one_line(msg));
    Response {
        reply,
        receipt: None,
        is_error: true,
    }
}

fn bulk_response<R>(b: &[u8]) -> Response<R> {
    let mut reply = BytesMut::new();
    encode::bulk(&mut reply, b);
    Response {
        reply,
        receipt: None,
        is_error: false,
    }
}

/// The message of an mlua error, without mlua's traceback decoration.
pub(crate) fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) | mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::WithContext { cause, .. } => error_text(cause),
        other => other.to_string(),
    }
}

fn is_memory_error(v: &Value) -> bool {
    match v {
        Value::String(s) => &*s.as_bytes() == b"not enough memory",
        Value::Error(e) => {
            let mut e: &mlua::Error = e;
            loop {
                match e {
                    mlua::Error::MemoryError(_) => return true,
                    mlua::Error::CallbackError { cause, .. } => e = cause,
                    _ => return false,
                }
            }
        }
        _ => false,
    }
}

/// `user_script:12: …` → 12.
fn line_of(msg: &str, source: &str) -> Option<usize> {
    let rest = msg.strip_prefix(source)?.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

/// What one run of the Lua code produced.
struct RunResult {
    reply: BytesMut,
    is_error: bool,
    abort: Option<Abort>,
}

/// Which script is running (for error texts).
struct Named<'a> {
    name: &'a str,
    is_function: bool,
}

/// What a script request runs: the function, its flags, its name (SHA1
/// or function name) and whether it is a function; or the error reply.
type Target<R> = Result<(Function, Option<FunctionFlags>, Name, bool), Response<R>>;

/// A script's SHA1 or a function's name, for errors and `SCRIPT KILL`.
type Name = Arc<str>;

impl<H: Host> Worker<H> {
    fn new(id: Option<usize>, shared: Arc<Shared>, host: Arc<H>, vm: Vm) -> Self {
        Worker {
            id,
            scripts_gen: shared.scripts.generation(),
            shared,
            host,
            vm,
            compiled: Default::default(),
            bodies: Default::default(),
            funcs: HashMap::new(),
            funcs_version: u64::MAX,
            kill: Arc::new(AtomicBool::new(false)),
            slow: Default::default(),
        }
    }

    /// Finds (compiling or loading as needed) what an EVAL, EVALSHA or
    /// FCALL runs (callers pass no other job).
    fn target(&mut self, job: &Job) -> Target<H::Receipt> {
        match job {
            Job::Eval(body) => match self.compile(body) {
                Ok((f, flags, sha)) => Ok((f, flags, sha, false)),
                Err(e) => Err(error_response(e.as_bytes())),
            },
            Job::EvalSha(sha) => {
                self.check_scripts_gen();
                if let Some(key) = sha_key(sha) {
                    if let Some((f, flags, name)) = self.compiled.get(&key) {
                        return Ok((f.clone(), *flags, name.clone(), false));
                    }
                }
                match self.shared.scripts.get(sha) {
                    None => Err(error_response(
                        b"NOSCRIPT No matching script. Please use EVAL.",
                    )),
                    Some(body) => match self.compile(&body) {
                        Ok((f, flags, sha)) => Ok((f, flags, sha, false)),
                        Err(e) => Err(error_response(e.as_bytes())),
                    },
                }
            }
            Job::Fcall(name) => {
                self.sync_functions();
                let name = String::from_utf8_lossy(name).into_owned();
                match self.funcs.get(&name).cloned() {
                    None => Err(error_response(b"ERR Function not found")),
                    Some((f, flags)) => Ok((f, Some(flags), Name::from(name), true)),
                }
            }
            _ => Err(error_response(b"ERR the server could not run the script")),
        }
    }

    /// An inline attempt: the response, or the untouched request for a
    /// worker thread.
    fn handle_inline(
        &mut self,
        req: Request<H::Caller>,
        deadline: Instant,
    ) -> Result<Response<H::Receipt>, Request<H::Caller>> {
        let (f, flags, name, is_function) = match self.target(&req.job) {
            Ok(t) => t,
            Err(resp) => return Ok(resp),
        };
        if let Some(skips) = self.slow.get_mut(&name) {
            if *skips > 0 {
                *skips -= 1;
                return Err(req);
            }
            self.slow.remove(&name);
        }
        match self.execute(&req, f, flags, &name, is_function, Mode::Inline(deadline)) {
            Ok(resp) => Ok(resp),
            Err(Fallback::Locked) => Err(req),
            Err(Fallback::Slow) => {
                if self.slow.len() >= 1024 {
                    self.slow.clear();
                }
                self.slow.insert(name, SLOW_SKIPS);
                Err(req)
            }
        }
    }

    fn handle(&mut self, req: Request<H::Caller>) -> Response<H::Receipt> {
        match req.job.clone() {
            Job::Eval(_) | Job::EvalSha(_) | Job::Fcall(_) => match self.target(&req.job) {
                Ok((f, flags, name, is_function)) => self
                    .execute(&req, f, flags, &name, is_function, Mode::Pool)
                    .unwrap_or_else(|_| error_response(b"ERR the server could not run the script")),
                Err(resp) => resp,
            },
            Job::ScriptLoad(body) => match self.compile(&body) {
                Ok((_, _, sha)) => bulk_response(sha.as_bytes()),
                Err(e) => error_response(e.as_bytes()),
            },
            Job::FunctionLoad { code, replace } => {
                let r = self.load_library(&code).and_then(|(lib, _)| {
                    let name = lib.name.clone();
                    self.shared.functions.install(lib, replace).map(|_| name)
                });
                match r {
                    Ok(name) => bulk_response(name.as_bytes()),
                    Err(e) => error_response(e.as_bytes()),
                }
            }
            Job::FunctionRestore { payload, policy } => {
                let r = functions::decode_dump(&payload).and_then(|codes| {
                    let mut libs = Vec::with_capacity(codes.len());
                    for c in codes {
                        libs.push(self.load_library(&c)?.0);
                    }
                    self.shared.functions.restore(libs, policy)
                });
                match r {
                    Ok(()) => {
                        let mut reply = BytesMut::new();
                        encode::simple(&mut reply, b"OK");
                        Response {
                            reply,
                            receipt: None,
                            is_error: false,
                        }
                    }
                    Err(e) => error_response(e.as_bytes()),
                }
            }
        }
    }

    /// Compiles (or finds) an EVAL script and caches it.
    #[allow(clippy::type_complexity)]
    fn compile(&mut self, body: &Bytes) -> Result<(Function, Option<FunctionFlags>, Name), String> {
        self.check_scripts_gen();
        if let Some(key) = self.bodies.get(&body[..]) {
            if let Some((f, flags, name)) = self.compiled.get(key) {
                return Ok((f.clone(), *flags, name.clone()));
            }
        }
        let sha = sha1hex(body);
        let key = sha_key(sha.as_bytes()).expect("a SHA1 in hex is 40 bytes");
        if self.bodies.len() >= BODY_SHAS {
            self.bodies.clear();
        }
        // A copy: `body` may share a connection's whole read buffer.
        self.bodies.insert(Bytes::copy_from_slice(body), key);
        if let Some((f, flags, name)) = self.compiled.get(&key) {
            return Ok((f.clone(), *flags, name.clone()));
        }
        let flags = shebang_flags(body)?;
        let f = self
            .vm
            .lua
            .load(&*compilable(body))
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                format!(
                    "ERR Error compiling script (new function): {}",
                    error_text(&e)
                )
            })?;
        let name = Name::from(sha);
        self.compiled.insert(key, (f.clone(), flags, name.clone()));
        self.shared.scripts.insert(body.clone());
        Ok((f, flags, name))
    }

    /// The worker's name in log lines.
    fn label(&self) -> String {
        self.id
            .map_or_else(|| "(inline)".to_string(), |i| i.to_string())
    }

    /// Forgets the compiled scripts after a `SCRIPT FLUSH`.
    fn check_scripts_gen(&mut self) {
        let gen = self.shared.scripts.generation();
        if gen != self.scripts_gen {
            self.compiled.clear();
            self.bodies.clear();
            self.slow.clear();
            self.scripts_gen = gen;
        }
    }

    /// Brings this VM's functions up to the registry's version.
    fn sync_functions(&mut self) {
        if self.shared.functions.version() == self.funcs_version {
            return;
        }
        let (version, libs) = self.shared.functions.snapshot();
        self.funcs.clear();
        self.slow.clear();
        for lib in libs {
            match self.load_library(&lib.code) {
                Ok((_, fs)) => self.funcs.extend(fs),
                Err(e) => tracing::warn!("library {} failed to load: {e}", lib.name),
            }
        }
        self.funcs_version = version;
    }

    /// Runs a library's code in its own environment and collects the
    /// functions it registers.
    #[allow(clippy::type_complexity)]
    fn load_library(
        &mut self,
        code: &Bytes,
    ) -> Result<(Library, HashMap<String, (Function, FunctionFlags)>), String> {
        let name = functions::library_name(code)?;
        let lua = &self.vm.lua;
        let lerr = |e: mlua::Error| format!("ERR {}", error_text(&e));
        let registered: Rc<RefCell<Vec<(FunctionMeta, Function)>>> = Rc::default();
        let reg = registered.clone();
        let register = lua
            .create_function(move |_, args: MultiValue| {
                let meta = register_args(args)?;
                let mut r = reg.borrow_mut();
                if r.iter().any(|(m, _)| m.name == meta.0.name) {
                    return Err(mlua::Error::runtime(
                        "ERR Function already exists in the library",
                    ));
                }
                r.push(meta);
                Ok(())
            })
            .map_err(lerr)?;
        let load_redis = lua.create_table().map_err(lerr)?;
        load_redis
            .raw_set("register_function", register)
            .map_err(lerr)?;
        for k in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            let v: Value = self.vm.redis.get(k).map_err(lerr)?;
            load_redis.raw_set(k, v).map_err(lerr)?;
        }
        // env (empty, read-only) -> inner {redis} -> the globals: an
        // assignment to any name, `redis` included, hits __newindex.
        let inner = lua.create_table().map_err(lerr)?;
        let inner_mt = lua.create_table().map_err(lerr)?;
        inner_mt
            .raw_set("__index", self.vm.globals.clone())
            .map_err(lerr)?;
        inner.set_metatable(Some(inner_mt)).map_err(lerr)?;
        inner.raw_set("redis", load_redis).map_err(lerr)?;
        let env = lua.create_table().map_err(lerr)?;
        let mt = lua.create_table().map_err(lerr)?;
        mt.raw_set("__index", inner.clone()).map_err(lerr)?;
        mt.raw_set(
            "__newindex",
            lua.create_function(|_, _: MultiValue| {
                Err::<(), _>(mlua::Error::runtime("Attempt to modify a readonly table"))
            })
            .map_err(lerr)?,
        )
        .map_err(lerr)?;
        mt.raw_set("__metatable", false).map_err(lerr)?;
        env.set_metatable(Some(mt)).map_err(lerr)?;
        let chunk = lua
            .load(&*compilable(code))
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(env.clone())
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", error_text(&e)))?;
        // A fresh kill token per run: a late kill of an earlier run cannot
        // hit this one.
        self.kill = Arc::new(AtomicBool::new(false));
        let mut ctx = RunCtx::new(self.kill.clone());
        ctx.deadline = Some((Instant::now() + LOAD_TIMEOUT, Abort::LoadTimeout));
        RUN.with(|r| *r.borrow_mut() = Some(ctx));
        let res = self.vm.raw_pcall.call::<MultiValue>(chunk);
        let ctx = RUN.with(|r| r.borrow_mut().take());
        let abort = ctx.and_then(|c| c.abort);
        if let Some(a) = abort {
            self.after_abort(a);
            return Err(abort_message(a, true).to_string());
        }
        let mut vals = res.map_err(lerr)?.into_iter();
        if !matches!(vals.next(), Some(Value::Boolean(true))) {
            let msg = match vals.next() {
                Some(Value::String(s)) => s.to_string_lossy(),
                Some(Value::Error(e)) => error_text(&e),
                Some(Value::Table(t)) => t
                    .raw_get::<Option<mlua::LuaString>>("err")
                    .ok()
                    .flatten()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|| "unknown error".into()),
                _ => "unknown error".into(),
            };
            return Err(if msg.starts_with("ERR ") {
                msg
            } else {
                format!("ERR Error registering functions: {msg}")
            });
        }
        let registered = std::mem::take(&mut *registered.borrow_mut());
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        // Calls made by the functions later see the real API.
        inner
            .raw_set("redis", self.vm.redis.clone())
            .map_err(lerr)?;
        let mut map = HashMap::new();
        let mut metas = Vec::new();
        for (meta, f) in registered {
            map.insert(meta.name.clone(), (f, meta.flags));
            metas.push(meta);
        }
        Ok((
            Library {
                name,
                code: code.clone(),
                functions: metas,
            },
            map,
        ))
    }

    /// After an abort: a memory-limit hit collects garbage and rebuilds
    /// the VM if it stays large.
    fn after_abort(&mut self, a: Abort) {
        if a != Abort::Memory {
            return;
        }
        let _ = self.vm.lua.gc_collect();
        let _ = self.vm.lua.gc_collect();
        let limit = self.shared.config.memory_limit;
        if limit > 0 && self.vm.lua.used_memory() > limit / 2 {
            tracing::warn!(
                "Lua worker {}: VM still large after a memory-limit abort, rebuilding it",
                self.label()
            );
            self.reset_vm();
        }
    }

    /// Replaces the VM with a fresh one (compiled scripts and loaded
    /// functions are rebuilt on demand).
    fn reset_vm(&mut self) {
        match Vm::new(self.shared.config.memory_limit) {
            Ok(vm) => {
                self.vm = vm;
                self.compiled.clear();
                self.bodies.clear();
                self.funcs.clear();
                self.funcs_version = u64::MAX;
            }
            Err(e) => tracing::error!("Lua worker {}: rebuilding the VM failed: {e}", self.label()),
        }
    }

    /// Runs a script or function for a request. `Mode::Pool`: isolation
    /// through the host, at most one exclusive re-run; always answers.
    /// `Mode::Inline`: a [`Fallback`] when the run could not take its locks
    /// at once, ran past the deadline or touched an undeclared key
    /// (discarded).
    fn execute(
        &mut self,
        req: &Request<H::Caller>,
        func: Function,
        flags: Option<FunctionFlags>,
        name: &str,
        is_function: bool,
        mode: Mode,
    ) -> Result<Response<H::Receipt>, Fallback> {
        if req.read_only && flags.is_some_and(|f| !f.no_writes) {
            return Ok(error_response(
                b"ERR Can not execute a script with write flag using *_ro command.",
            ));
        }
        let read_only = req.read_only || flags.is_some_and(|f| f.no_writes);
        let deadline = match mode {
            Mode::Inline(d) => Some((d, Abort::Budget)),
            Mode::Pool => None,
        };
        if let (Mode::Pool, Some(id)) = (mode, self.id) {
            // Only worker runs can be busy (an inline run is bounded by its
            // budget): they register for SCRIPT KILL and -BUSY.
            self.kill = Arc::new(AtomicBool::new(false));
            let mut command = Vec::with_capacity(2 + req.keys.len() + req.args.len());
            command.push(Bytes::from_static(match (is_function, req.read_only) {
                (true, false) => b"fcall",
                (true, true) => b"fcall_ro",
                (false, false) => b"eval",
                (false, true) => b"eval_ro",
            }));
            command.push(Bytes::from(name.to_string()));
            command.push(Bytes::from(req.keys.len().to_string()));
            command.extend(req.keys.iter().cloned());
            command.extend(req.args.iter().cloned());
            *self.shared.running[id]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Running {
                started: Instant::now(),
                is_function,
                name: name.to_string(),
                command,
                kill: self.kill.clone(),
            });
        }
        let host = self.host.clone();
        let named = Named { name, is_function };
        let mut access = Access::Keys;
        let resp = loop {
            let mut result: Option<RunResult> = None;
            let mut body = |calls: &Rc<RefCell<H::Calls>>| {
                let r = self.run_once(&func, calls, req, read_only, &named, deadline);
                let verdict = if r.is_error || r.abort.is_some() {
                    Verdict::Discard
                } else {
                    Verdict::Commit
                };
                result = Some(r);
                verdict
            };
            let receipt = match mode {
                Mode::Pool => host.run(&req.caller, &req.keys, access, &mut body),
                Mode::Inline(_) => match host.try_run(&req.caller, &req.keys, &mut body) {
                    Some(r) => r,
                    None => break Err(Fallback::Locked),
                },
            };
            let Some(r) = result else {
                break Ok(error_response(b"ERR the server could not run the script"));
            };
            let receipt = match receipt {
                Ok(receipt) => receipt,
                Err(msg) => break Ok(error_response(msg.as_bytes())),
            };
            match (r.abort, mode) {
                (Some(Abort::Undeclared), Mode::Pool) if access == Access::Keys => {
                    access = Access::Exclusive;
                    continue;
                }
                (Some(Abort::Undeclared | Abort::Budget), Mode::Inline(_)) => {
                    break Err(Fallback::Slow)
                }
                _ => {}
            }
            if let Some(a) = r.abort {
                self.after_abort(a);
            }
            break Ok(Response {
                reply: r.reply,
                receipt: if r.is_error { None } else { receipt },
                is_error: r.is_error,
            });
        };
        if let (Mode::Pool, Some(id)) = (mode, self.id) {
            *self.shared.running[id]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
        resp
    }

    fn run_once(
        &self,
        func: &Function,
        calls: &Rc<RefCell<H::Calls>>,
        req: &Request<H::Caller>,
        read_only: bool,
        named: &Named<'_>,
        deadline: Option<(Instant, Abort)>,
    ) -> RunResult {
        let dyn_calls: Rc<RefCell<dyn Calls>> = calls.clone();
        let mut ctx = RunCtx::new(self.kill.clone());
        ctx.deadline = deadline;
        ctx.calls = Some(dyn_calls);
        ctx.read_only = read_only;
        ctx.is_function = named.is_function;
        RUN.with(|r| *r.borrow_mut() = Some(ctx));
        let res = self.call_script(func, req, named.is_function);
        let ctx = RUN.with(|r| r.borrow_mut().take());
        let (abort, err_line) = ctx.map_or((None, None), |c| (c.abort, c.err_line));
        let proto = if req.resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let mut reply = BytesMut::new();
        let fail = |reply: &mut BytesMut, abort: Option<Abort>, msg: String| {
            let _ = abort;
            encode::error(reply, &convert::one_line(msg.as_bytes()));
        };
        let vals = match res {
            Ok(v) => v,
            Err(e) => {
                let abort =
                    abort.or(matches!(e, mlua::Error::MemoryError(_)).then_some(Abort::Memory));
                let msg = match abort {
                    Some(a) => abort_message(a, named.is_function).to_string(),
                    None => self.decorate(&format!("ERR {}", error_text(&e)), None, named),
                };
                fail(&mut reply, abort, msg);
                return RunResult {
                    reply,
                    is_error: true,
                    abort,
                };
            }
        };
        let mut it = vals.into_iter();
        let ok = matches!(it.next(), Some(Value::Boolean(true)));
        let val = it.next().unwrap_or(Value::Nil);
        if ok && abort.is_none() {
            convert::lua_to_reply(&val, &mut reply, proto);
            let is_error = reply.first() == Some(&b'-');
            return RunResult {
                reply,
                is_error,
                abort: None,
            };
        }
        let abort = abort.or(is_memory_error(&val).then_some(Abort::Memory));
        let msg = if let Some(a) = abort {
            abort_message(a, named.is_function).to_string()
        } else {
            match &val {
                Value::Table(t) => match t.raw_get::<Option<mlua::LuaString>>("err").ok().flatten()
                {
                    Some(e) => self.decorate(&e.to_string_lossy(), err_line, named),
                    None => {
                        self.decorate("ERR Error running script: unknown error", err_line, named)
                    }
                },
                Value::String(s) => {
                    self.decorate(&format!("ERR {}", s.to_string_lossy()), None, named)
                }
                Value::Error(e) => self.decorate(&format!("ERR {}", error_text(e)), None, named),
                _ => self.decorate("ERR Error running script: unknown error", err_line, named),
            }
        };
        fail(&mut reply, abort, msg);
        RunResult {
            reply,
            is_error: true,
            abort,
        }
    }

    /// Redis 7's error suffix: `… script: <sha|name>, on @user_script:<line>.`
    fn decorate(&self, msg: &str, line: Option<usize>, named: &Named<'_>) -> String {
        let source = if named.is_function {
            "user_function"
        } else {
            "user_script"
        };
        let body = msg.strip_prefix("ERR ").unwrap_or(msg);
        let line = line.or_else(|| line_of(body, source));
        match line {
            Some(l) => format!("{msg} script: {}, on @{source}:{l}.", named.name),
            None => format!("{msg} script: {}", named.name),
        }
    }

    fn call_script(
        &self,
        func: &Function,
        req: &Request<H::Caller>,
        is_function: bool,
    ) -> mlua::Result<MultiValue> {
        let lua = &self.vm.lua;
        let mut args = MultiValue::with_capacity(3 + req.keys.len() + req.args.len());
        args.push_back(Value::Function(func.clone()));
        args.push_back(Value::Boolean(is_function));
        args.push_back(Value::Integer(req.keys.len() as _));
        {
            let _unlimited = crate::vm::Unlimited::new(lua);
            for a in req.keys.iter().chain(&req.args) {
                args.push_back(Value::String(lua.create_string(a)?));
            }
        }
        // Every run starts from the same random sequence (as in Redis), so
        // one script's math.randomseed does not leak into the next.
        self.vm.rng.set(crate::vm::RAND48_SEED);
        let r = self.vm.run.call::<MultiValue>(args);
        if r.is_err() && !is_function {
            // Stopped outside the script's pcall: the driver did not clear them.
            self.vm.globals.raw_set("KEYS", Value::Nil)?;
            self.vm.globals.raw_set("ARGV", Value::Nil)?;
        }
        r
    }
}

/// Parses `redis.register_function`'s arguments.
fn register_args(args: MultiValue) -> mlua::Result<(FunctionMeta, Function)> {
    let err = |m: &str| mlua::Error::runtime(m.to_string());
    let mut it = args.into_iter();
    let (first, second, third) = (it.next(), it.next(), it.next());
    let (name, callback, flags, description) = match (first, second, third) {
        (Some(Value::Table(t)), None, None) => {
            let mut name = None;
            let mut callback = None;
            let mut flags = FunctionFlags::default();
            let mut description = None;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(k) = k else {
                    return Err(err("ERR named argument key given to redis.register_function is not a string"));
                };
                match (&*k.as_bytes(), v) {
                    (b"function_name", Value::String(s)) => name = Some(s.to_string_lossy()),
                    (b"callback", Value::Function(f)) => callback = Some(f),
                    (b"description", Value::String(s)) => description = Some(s.to_string_lossy()),
                    (b"flags", Value::Table(ft)) => {
                        for f in ft.sequence_values::<Value>() {
                            let Value::String(f) = f? else {
                                return Err(err("ERR Unknown flag given"));
                            };
                            if !flags.set(&f.to_string_lossy()) {
                                return Err(err("ERR Unknown flag given"));
                            }
                        }
                    }
                    (b"function_name" | b"callback" | b"description" | b"flags", _) => {
                        return Err(err(
                            "ERR wrong type for a named argument of redis.register_function",
                        ))
                    }
                    _ => {
                        return Err(err(
                            "ERR unknown argument given to redis.register_function",
                        ))
                    }
                }
            }
            let Some(name) = name else {
                return Err(err("ERR redis.register_function must get a function name argument"));
            };
            let Some(callback) = callback else {
                return Err(err("ERR redis.register_function must get a callback argument"));
            };
            (name, callback, flags, description)
        }
        (Some(_), None, None) => {
            return Err(err("ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."))
        }
        (Some(Value::String(n)), Some(Value::Function(f)), None) => {
            (n.to_string_lossy(), f, FunctionFlags::default(), None)
        }
        _ => return Err(err("ERR wrong number of arguments to redis.register_function")),
    };
    if !functions::valid_name(&name) {
        return Err(err("ERR Function names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    Ok((
        FunctionMeta {
            name,
            description,
            flags,
        },
        callback,
    ))
}
