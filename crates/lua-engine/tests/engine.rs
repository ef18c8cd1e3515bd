//! The engine on its own, over a small in-memory host: a `BTreeMap` store
//! with GET/SET/INCR/DEL, a per-run write buffer, per-key mutexes for
//! declared keys and a global lock for exclusive runs. Shows the engine's
//! side of the contract: commit/discard verdicts, the exclusive re-run,
//! kills and limits that `pcall` cannot swallow, functions, the cache.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use lua_engine::{
    Access, CallAbort, Calls, Config, Engine, Frame, Functions, Host, Job, KillOutcome, Reply,
    Request, Verdict,
};

#[derive(Default)]
struct Store {
    data: Mutex<BTreeMap<Bytes, Bytes>>,
    /// Keys currently locked by runs.
    locked: Mutex<Vec<Bytes>>,
    freed: Condvar,
    gate: RwLock<()>,
    runs: AtomicUsize,
    exclusive_runs: AtomicUsize,
    /// Runs that took their locks without waiting (inline attempts).
    inline_runs: AtomicUsize,
}

struct MemCalls {
    store: Arc<Store>,
    declared: Vec<Bytes>,
    access: Access,
    buffer: HashMap<Bytes, Option<Bytes>>,
}

impl MemCalls {
    fn read(&self, k: &Bytes) -> Option<Bytes> {
        match self.buffer.get(k) {
            Some(v) => v.clone(),
            None => self.store.data.lock().unwrap().get(k).cloned(),
        }
    }
}

impl Calls for MemCalls {
    fn call(
        &mut self,
        args: &[Bytes],
        resp3: bool,
        read_only: bool,
    ) -> Result<Reply<'_>, CallAbort> {
        self.frame(args, resp3, read_only).map(Reply::Frame)
    }
}

impl MemCalls {
    fn frame(&mut self, args: &[Bytes], _resp3: bool, read_only: bool) -> Result<Frame, CallAbort> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let key = args.get(1).cloned().unwrap_or_default();
        if self.access == Access::Keys && args.len() > 1 && !self.declared.contains(&key) {
            return Err(CallAbort::Undeclared);
        }
        let write = matches!(name.as_str(), "set" | "incr" | "del");
        if write && read_only {
            return Ok(Frame::Error(Bytes::from_static(b"ERR read-only")));
        }
        Ok(match (name.as_str(), args.len()) {
            ("get", 2) => self.read(&key).map_or(Frame::Null, Frame::Bulk),
            ("set", 3) => {
                self.buffer.insert(key, Some(args[2].clone()));
                Frame::Simple(Bytes::from_static(b"OK"))
            }
            ("del", 2) => {
                let had = self.read(&key).is_some();
                self.buffer.insert(key, None);
                Frame::Integer(had as i64)
            }
            ("incr", 2) => {
                let cur = self.read(&key).unwrap_or_else(|| Bytes::from_static(b"0"));
                match std::str::from_utf8(&cur)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) => {
                        self.buffer
                            .insert(key, Some(Bytes::from((n + 1).to_string())));
                        Frame::Integer(n + 1)
                    }
                    None => Frame::Error(Bytes::from_static(
                        b"ERR value is not an integer or out of range",
                    )),
                }
            }
            ("ping", 1) => Frame::Simple(Bytes::from_static(b"PONG")),
            _ => Frame::Error(Bytes::from_static(
                b"ERR Unknown Redis command called from script",
            )),
        })
    }
}

struct MemHost {
    store: Arc<Store>,
}

impl Host for MemHost {
    type Caller = ();
    type Receipt = usize;
    type Calls = MemCalls;

    fn run(
        &self,
        _caller: &(),
        keys: &[Bytes],
        access: Access,
        body: &mut lua_engine::RunBody<'_, MemCalls>,
    ) -> Result<Option<usize>, String> {
        Ok(self
            .isolated(keys, access, true, body)
            .expect("a waiting run always runs"))
    }

    fn try_run(
        &self,
        _caller: &(),
        keys: &[Bytes],
        body: &mut lua_engine::RunBody<'_, MemCalls>,
    ) -> Option<Result<Option<usize>, String>> {
        self.isolated(keys, Access::Keys, false, body).map(Ok)
    }
}

impl MemHost {
    /// One run; `wait == false` (inline): None when a lock is taken.
    fn isolated(
        &self,
        keys: &[Bytes],
        access: Access,
        wait: bool,
        body: &mut lua_engine::RunBody<'_, MemCalls>,
    ) -> Option<Option<usize>> {
        let st = &self.store;
        let _shared;
        let _excl;
        let mut mine: Vec<Bytes> = Vec::new();
        match access {
            Access::Keys => {
                _shared = if wait {
                    st.gate.read().unwrap()
                } else {
                    st.gate.try_read().ok()?
                };
                let mut sorted = keys.to_vec();
                sorted.sort();
                sorted.dedup();
                let mut locked = st.locked.lock().unwrap();
                while sorted.iter().any(|k| locked.contains(k)) {
                    if !wait {
                        return None;
                    }
                    locked = st.freed.wait(locked).unwrap();
                }
                locked.extend(sorted.iter().cloned());
                mine = sorted;
            }
            Access::Exclusive => {
                st.exclusive_runs.fetch_add(1, Ordering::Relaxed);
                _excl = st.gate.write().unwrap();
            }
        }
        st.runs.fetch_add(1, Ordering::Relaxed);
        if !wait {
            st.inline_runs.fetch_add(1, Ordering::Relaxed);
        }
        let calls = Rc::new(RefCell::new(MemCalls {
            store: st.clone(),
            declared: keys.to_vec(),
            access,
            buffer: HashMap::new(),
        }));
        let verdict = body(&calls);
        let mut receipt = None;
        if verdict == Verdict::Commit {
            let buf = std::mem::take(&mut calls.borrow_mut().buffer);
            let n = buf.len();
            let mut data = st.data.lock().unwrap();
            for (k, v) in buf {
                match v {
                    Some(v) => data.insert(k, v),
                    None => data.remove(&k),
                };
            }
            receipt = Some(n);
        }
        let mut locked = st.locked.lock().unwrap();
        locked.retain(|k| !mine.contains(k));
        st.freed.notify_all();
        Some(receipt)
    }
}

fn engine(workers: usize, memory_limit: usize) -> (Engine<MemHost>, Arc<Store>) {
    engine_with_budget(workers, memory_limit, lua_engine::INLINE_BUDGET_US)
}

fn engine_with_budget(
    workers: usize,
    memory_limit: usize,
    inline_budget_us: u64,
) -> (Engine<MemHost>, Arc<Store>) {
    let store = Arc::new(Store::default());
    let config = Config {
        workers,
        memory_limit,
        busy_threshold: Arc::new(std::sync::atomic::AtomicU64::new(50)),
        inline_budget_us: Arc::new(std::sync::atomic::AtomicU64::new(inline_budget_us)),
    };
    let e = Engine::new(
        Arc::new(MemHost {
            store: store.clone(),
        }),
        config,
        Functions::default(),
    )
    .unwrap();
    (e, store)
}

fn req(job: Job, keys: &[&str], args: &[&str]) -> Request<()> {
    Request {
        job,
        keys: keys
            .iter()
            .map(|k| Bytes::copy_from_slice(k.as_bytes()))
            .collect(),
        args: args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect(),
        read_only: false,
        resp3: false,
        caller: (),
    }
}

fn eval(e: &Engine<MemHost>, script: &str, keys: &[&str]) -> (String, Option<usize>) {
    let r = e
        .submit(req(Job::Eval(Bytes::from(script.to_string())), keys, &[]))
        .recv()
        .unwrap();
    (String::from_utf8_lossy(&r.reply).into_owned(), r.receipt)
}

fn get(s: &Store, k: &str) -> Option<String> {
    s.data
        .lock()
        .unwrap()
        .get(k.as_bytes())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn commit_and_discard() {
    let (e, s) = engine(2, 0);
    let (r, receipt) = eval(
        &e,
        "redis.call('set', KEYS[1], 'v') return redis.call('get', KEYS[1])",
        &["k"],
    );
    assert_eq!(r, "$1\r\nv\r\n");
    assert_eq!(receipt, Some(1));
    assert_eq!(get(&s, "k").as_deref(), Some("v"));
    // Raised error, uncaught call error, returned error: all discarded.
    for script in [
        "redis.call('set', KEYS[1], 'x') error('no')",
        "redis.call('set', KEYS[1], 'x') redis.call('incr', KEYS[2])",
        "redis.call('set', KEYS[1], 'x') return {err='ERR mine'}",
    ] {
        s.data
            .lock()
            .unwrap()
            .insert(Bytes::from_static(b"s"), Bytes::from_static(b"str"));
        let (r, receipt) = eval(&e, script, &["k", "s"]);
        assert!(r.starts_with('-'), "{script}: {r}");
        assert_eq!(receipt, None);
        assert_eq!(get(&s, "k").as_deref(), Some("v"), "{script}");
    }
}

#[test]
fn undeclared_key_reruns_exclusively_once() {
    let (e, s) = engine(1, 0);
    let (r, _) = eval(
        &e,
        "redis.call('set', 'other', '1') return redis.call('incr', 'other')",
        &[],
    );
    assert_eq!(r, ":2\r\n");
    assert_eq!(get(&s, "other").as_deref(), Some("2"));
    assert_eq!(s.runs.load(Ordering::Relaxed), 2);
    assert_eq!(s.exclusive_runs.load(Ordering::Relaxed), 1);
    // pcall cannot hide the abort: the first run is still discarded.
    let (r, _) = eval(&e, "pcall(redis.call, 'set', 'p', '1') return 5", &[]);
    assert_eq!(r, ":5\r\n");
    assert_eq!(get(&s, "p").as_deref(), Some("1"));
}

#[test]
fn kill_stops_a_loop_even_through_pcall() {
    let (e, s) = engine(2, 0);
    let rx = e.submit(req(
        Job::Eval(Bytes::from_static(
            b"redis.call('set', KEYS[1], 'x') while true do pcall(function() while true do end end) end",
        )),
        &["k"],
        &[],
    ));
    assert_eq!(e.kill(true), KillOutcome::NotBusy, "no function runs");
    let mut killed = false;
    for _ in 0..400 {
        std::thread::sleep(Duration::from_millis(10));
        if e.kill(false) == KillOutcome::Killed {
            killed = true;
            break;
        }
    }
    assert!(killed);
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the script stopped");
    let text = String::from_utf8_lossy(&r.reply);
    assert!(
        text.contains("Script killed by user with SCRIPT KILL"),
        "{text}"
    );
    assert_eq!(get(&s, "k"), None);
    assert!(e.running().is_empty());
    // The worker is fine afterwards.
    assert_eq!(eval(&e, "return 1", &[]).0, ":1\r\n");
}

#[test]
fn memory_limit_stops_a_bomb_and_the_vm_recovers() {
    let (e, s) = engine(1, 8 << 20);
    let (r, receipt) = eval(
        &e,
        "redis.call('set', KEYS[1], 'x') local t = {} \
         while true do pcall(function() t[#t + 1] = string.rep('x', 100000) .. #t end) end",
        &["k"],
    );
    assert!(r.contains("memory limit"), "{r}");
    assert_eq!(receipt, None);
    assert_eq!(get(&s, "k"), None);
    for _ in 0..3 {
        assert_eq!(
            eval(&e, "return #string.rep('y', 1000)", &[]).0,
            ":1000\r\n"
        );
    }
}

#[test]
fn concurrent_scripts_on_one_key_serialize() {
    let (e, s) = engine(2, 0);
    let e = Arc::new(e);
    let mut ts = Vec::new();
    for _ in 0..4 {
        let e = e.clone();
        ts.push(std::thread::spawn(move || {
            for _ in 0..200 {
                let (r, _) = eval(
                    &e,
                    "local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], tostring(v + 1)) return v",
                    &["n"],
                );
                assert!(r.starts_with(':'), "{r}");
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(get(&s, "n").as_deref(), Some("800"));
}

#[test]
fn evalsha_script_load_and_flush() {
    let (e, _s) = engine(2, 0);
    let r = e
        .submit(req(
            Job::ScriptLoad(Bytes::from_static(b"return ARGV[1]")),
            &[],
            &[],
        ))
        .recv()
        .unwrap();
    let sha = "098e0f0d1448c0a81dafe820f66d460eb09263da";
    assert_eq!(
        String::from_utf8_lossy(&r.reply),
        format!("$40\r\n{sha}\r\n")
    );
    // Any worker runs it.
    for _ in 0..4 {
        let r = e
            .submit(req(Job::EvalSha(Bytes::from(sha)), &[], &["a"]))
            .recv()
            .unwrap();
        assert_eq!(&r.reply[..], b"$1\r\na\r\n");
    }
    e.scripts().flush();
    let r = e
        .submit(req(Job::EvalSha(Bytes::from(sha)), &[], &["a"]))
        .recv()
        .unwrap();
    assert!(r.reply.starts_with(b"-NOSCRIPT"));
    let r = e
        .submit(req(
            Job::ScriptLoad(Bytes::from_static(b"return +")),
            &[],
            &[],
        ))
        .recv()
        .unwrap();
    assert!(
        r.reply.starts_with(b"-ERR Error compiling script"),
        "{:?}",
        r.reply
    );
}

#[test]
fn functions_register_call_and_read_only() {
    let (e, s) = engine(2, 0);
    let code = "#!lua name=lib\n\
        redis.register_function('setit', function(keys, args) return redis.call('set', keys[1], args[1]) end)\n\
        redis.register_function{function_name='getit', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";
    let r = e
        .submit(req(
            Job::FunctionLoad {
                code: Bytes::from(code),
                replace: false,
            },
            &[],
            &[],
        ))
        .recv()
        .unwrap();
    assert_eq!(&r.reply[..], b"$3\r\nlib\r\n");
    let r = e
        .submit(req(
            Job::Fcall(Bytes::from_static(b"setit")),
            &["f"],
            &["1"],
        ))
        .recv()
        .unwrap();
    assert_eq!(&r.reply[..], b"+OK\r\n");
    assert_eq!(get(&s, "f").as_deref(), Some("1"));
    let mut ro = req(Job::Fcall(Bytes::from_static(b"setit")), &["f"], &["2"]);
    ro.read_only = true;
    let r = e.submit(ro).recv().unwrap();
    assert!(String::from_utf8_lossy(&r.reply).contains("write flag"));
    let mut ro = req(Job::Fcall(Bytes::from_static(b"getit")), &["f"], &[]);
    ro.read_only = true;
    let r = e.submit(ro).recv().unwrap();
    assert_eq!(&r.reply[..], b"$1\r\n1\r\n");
    // Registration errors.
    for (code, err) in [
        ("#!lua name=x\nredis.register_function('a b', function() end)", "Function names can only contain"),
        ("#!lua name=x\nredis.register_function('a', function() end) redis.register_function('a', function() end)", "already exists in the library"),
        ("#!lua name=x\nredis.register_function{function_name='a', callback=function() end, flags={'bogus'}}", "Unknown flag given"),
        ("#!lua name=x\nredis.call('ping')", "attempt to call"),
        ("#!lua name=lib2\nredis.register_function('setit', function() end)", "Function setit already exists"),
        ("#!lua name=x\nwhile true do end", "FUNCTION LOAD timeout"),
        ("#!lua name=x\nglobal_x = 1 redis.register_function('q', function() end)", "readonly"),
    ] {
        let r = e
            .submit(req(Job::FunctionLoad { code: Bytes::from(code), replace: false }, &[], &[]))
            .recv()
            .unwrap();
        let text = String::from_utf8_lossy(&r.reply);
        assert!(r.is_error && text.contains(err), "{code}: {text}");
    }
    assert_eq!(e.functions().counts(), (1, 2));
}

#[test]
fn no_script_can_change_what_the_next_one_sees() {
    let (e, _s) = engine(1, 0);
    for script in [
        "redis = nil",
        "pcall = nil",
        "string = nil",
        "rawset(_G, 'x', 1)",
        "setmetatable(_G, {})",
        "getmetatable('').__index.upper = nil",
        "cjson.encode = nil",
        "return setfenv(0, {})",
    ] {
        let (r, _) = eval(&e, script, &[]);
        assert!(r.starts_with('-'), "{script} was allowed: {r}");
        let (r, _) = eval(
            &e,
            "return string.upper(cjson.encode({redis.call('ping').ok}))",
            &[],
        );
        assert_eq!(r, "$8\r\n[\"PONG\"]\r\n", "after {script}");
    }
}

#[test]
fn math_random_is_per_vm_and_restarts_every_run() {
    let (e, _s) = engine(2, 0);
    let first = eval(
        &e,
        "return {math.random(100), math.random(5, 6), tostring(math.random() < 1)}",
        &[],
    )
    .0;
    for _ in 0..6 {
        let _ = eval(&e, "math.randomseed(42) return math.random(1000)", &[]);
        assert_eq!(
            eval(
                &e,
                "return {math.random(100), math.random(5, 6), tostring(math.random() < 1)}",
                &[]
            )
            .0,
            first
        );
    }
    assert!(eval(&e, "return math.random(0)", &[])
        .0
        .contains("interval is empty"));
    assert!(eval(&e, "return math.random(3, 2)", &[])
        .0
        .contains("interval is empty"));
}

/// An inline budget (µs) that no short script overruns, however loaded the machine.
const GENEROUS_BUDGET_US: u64 = 60_000_000;

/// Runs a request the way kvd's connections do: inline on this thread
/// first, on a worker when the engine hands it back. Also says which.
fn run_inline(e: &Engine<MemHost>, r: Request<()>) -> (String, Option<usize>, bool) {
    let (resp, inline) = match e.try_inline(r) {
        Ok(resp) => (resp, true),
        Err(r) => (e.submit(r).recv().unwrap(), false),
    };
    (
        String::from_utf8_lossy(&resp.reply).into_owned(),
        resp.receipt,
        inline,
    )
}

fn eval_req(script: &str, keys: &[&str], args: &[&str]) -> Request<()> {
    req(Job::Eval(Bytes::from(script.to_string())), keys, args)
}

#[test]
fn short_scripts_run_inline_on_the_callers_thread() {
    // A budget no run here can overrun (the default 1 ms is wall-clock time, which a
    // loaded machine can take from any run), so what is asserted does not depend on timing.
    let (e, s) = engine_with_budget(1, 0, GENEROUS_BUDGET_US);
    let script = "redis.call('set', KEYS[1], ARGV[1]) \
                  return {redis.call('get', KEYS[1]), KEYS[2], ARGV[2], #KEYS, #ARGV}";
    let (r, receipt, inline) = run_inline(&e, eval_req(script, &["k", "k2"], &["v", "a2"]));
    assert!(inline);
    assert_eq!(r, "*5\r\n$1\r\nv\r\n$2\r\nk2\r\n$2\r\na2\r\n:2\r\n:2\r\n");
    assert_eq!(receipt, Some(1));
    assert_eq!(get(&s, "k").as_deref(), Some("v"));
    assert_eq!(s.inline_runs.load(Ordering::Relaxed), 1);
    // EVALSHA of the same body, inline too.
    let sha = lua_engine::scripts::sha1hex(script.as_bytes()).to_uppercase();
    let (r2, _, inline) = run_inline(
        &e,
        req(Job::EvalSha(Bytes::from(sha)), &["k", "k2"], &["v", "a2"]),
    );
    assert!(inline);
    assert_eq!(r2, r);
    // A failing script is a final answer inline as on a worker: nothing applied.
    let (r, receipt, inline) = run_inline(
        &e,
        eval_req("redis.call('set', KEYS[1], 'x') error('no')", &["k"], &[]),
    );
    assert!(inline);
    assert!(r.starts_with("-ERR"), "{r}");
    assert_eq!(receipt, None);
    assert_eq!(get(&s, "k").as_deref(), Some("v"));
    // Functions run inline, and see no KEYS global left by an EVAL.
    let lib = "#!lua name=lib\nredis.register_function('f', function(keys, args) \
               return {keys[1], args[1]} end)\n\
               redis.register_function('g', function() return KEYS end)";
    let (r, _, _) = run_inline(
        &e,
        req(
            Job::FunctionLoad {
                code: Bytes::from(lib),
                replace: false,
            },
            &[],
            &[],
        ),
    );
    assert_eq!(r, "$3\r\nlib\r\n");
    let (r, _, inline) = run_inline(&e, req(Job::Fcall(Bytes::from("f")), &["a"], &["b"]));
    assert!(inline);
    assert_eq!(r, "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    let (r, _, inline) = run_inline(&e, req(Job::Fcall(Bytes::from("g")), &["a"], &[]));
    assert!(inline);
    assert!(r.contains("nonexistent global variable 'KEYS'"), "{r}");
    // Unknown scripts answer at once; other jobs are never inline.
    let (r, _, inline) = run_inline(&e, req(Job::EvalSha(Bytes::from("0".repeat(40))), &[], &[]));
    assert!(inline);
    assert!(r.starts_with("-NOSCRIPT"), "{r}");
    assert!(e
        .try_inline(req(Job::ScriptLoad(Bytes::from("return 1")), &[], &[]))
        .is_err());
    // Only EVAL/EVALSHA/FCALL attempts count.
    assert_eq!(e.inline_counts(), (6, 0));
}

#[test]
fn a_script_past_the_budget_moves_to_a_worker_and_stays_there() {
    let (e, s) = engine_with_budget(1, 0, 2000);
    // The loop outlasts 2 ms even when caught by pcall; the INCR before it
    // must be applied exactly once (by the worker's run).
    let script = "redis.call('incr', KEYS[1]) \
                  pcall(function() local x = 0 for i = 1, 2e7 do x = x + i end end) \
                  return redis.call('get', KEYS[1])";
    let (r, receipt, inline) = run_inline(&e, eval_req(script, &["n"], &[]));
    assert!(!inline);
    assert_eq!(r, "$1\r\n1\r\n");
    assert_eq!(receipt, Some(1));
    assert_eq!(get(&s, "n").as_deref(), Some("1"));
    assert_eq!(
        s.runs.load(Ordering::Relaxed),
        2,
        "the inline attempt and the worker's run"
    );
    assert_eq!(s.inline_runs.load(Ordering::Relaxed), 1);
    // Known as slow on this thread: straight to the worker, no attempt.
    let (r, _, inline) = run_inline(&e, eval_req(script, &["n"], &[]));
    assert!(!inline);
    assert_eq!(r, "$1\r\n2\r\n");
    assert_eq!(s.runs.load(Ordering::Relaxed), 3);
    assert_eq!(s.inline_runs.load(Ordering::Relaxed), 1);
    assert_eq!(e.inline_counts(), (0, 2));
    // SCRIPT FLUSH forgets it: the next EVAL tries inline again.
    e.scripts().flush();
    let (_, _, inline) = run_inline(&e, eval_req(script, &["n"], &[]));
    assert!(!inline);
    assert_eq!(s.inline_runs.load(Ordering::Relaxed), 2);
    assert_eq!(get(&s, "n").as_deref(), Some("3"));
    // Budget 0: inline runs are off.
    let (e, s) = engine_with_budget(1, 0, 0);
    let (r, _, inline) = run_inline(&e, eval_req("return 1", &[], &[]));
    assert_eq!((r.as_str(), inline), (":1\r\n", false));
    assert_eq!(s.inline_runs.load(Ordering::Relaxed), 0);
}

#[test]
fn locked_keys_send_a_script_to_a_worker_without_running_it() {
    let (e, s) = engine_with_budget(1, 0, GENEROUS_BUDGET_US);
    s.locked.lock().unwrap().push(Bytes::from_static(b"k"));
    let r = e.try_inline(eval_req("return redis.call('incr', KEYS[1])", &["k"], &[]));
    assert!(r.is_err(), "the key is locked: handed back");
    assert_eq!(s.runs.load(Ordering::Relaxed), 0);
    // Other keys still run inline.
    let (r, _, inline) = run_inline(
        &e,
        eval_req("return redis.call('incr', KEYS[1])", &["j"], &[]),
    );
    assert_eq!((r.as_str(), inline), (":1\r\n", true));
    s.locked.lock().unwrap().clear();
    s.freed.notify_all();
    // Not marked slow: once free, the same script runs inline.
    let (r, _, inline) = run_inline(
        &e,
        eval_req("return redis.call('incr', KEYS[1])", &["k"], &[]),
    );
    assert_eq!((r.as_str(), inline), (":1\r\n", true));
}

#[test]
fn an_undeclared_key_inline_leaves_no_trace_and_reruns_exclusively() {
    let (e, s) = engine(1, 0);
    let script = "redis.call('set', KEYS[1], 'a') redis.call('incr', 'other') return 1";
    let r = e.try_inline(eval_req(script, &["k"], &[]));
    let Err(r) = r else {
        panic!("an undeclared key must hand the request back");
    };
    assert_eq!(get(&s, "k"), None, "the inline attempt's write was dropped");
    assert_eq!(get(&s, "other"), None);
    let resp = e.submit(r).recv().unwrap();
    assert_eq!(&resp.reply[..], b":1\r\n");
    assert_eq!(get(&s, "k").as_deref(), Some("a"));
    assert_eq!(get(&s, "other").as_deref(), Some("1"));
    assert_eq!(s.exclusive_runs.load(Ordering::Relaxed), 1);
    // Next time straight to a worker.
    let before = s.runs.load(Ordering::Relaxed);
    let (_, _, inline) = run_inline(&e, eval_req(script, &["k"], &[]));
    assert!(!inline);
    assert_eq!(get(&s, "other").as_deref(), Some("2"));
    assert_eq!(
        s.runs.load(Ordering::Relaxed),
        before + 2,
        "keys run, then exclusive"
    );
}
