//! Lua scripting against the real `kvd` binary: EVAL/EVALSHA/SCRIPT,
//! functions, Redis's conversion rules, the sandbox, all-or-nothing
//! rollback after every kind of failure, isolation between concurrent
//! scripts and readers, SCRIPT KILL, the memory limit, persistence.
//! Bounded loops, no timing assertions.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kvd_suite::KvdServer;

fn eval<T: redis::FromRedisValue>(
    c: &mut redis::Connection,
    script: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn eval_err(c: &mut redis::Connection, script: &str, keys: &[&str]) -> String {
    match eval::<redis::Value>(c, script, keys, &[]) {
        Ok(v) => panic!("script {script:?} succeeded with {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn get(c: &mut redis::Connection, k: &str) -> Option<String> {
    redis::cmd("GET").arg(k).query(c).expect("GET")
}

/// `SCRIPT KILL` or `FUNCTION KILL` (`container`) until a script is busy
/// enough to be killed (every refusal must be NOTBUSY); false if none was
/// within 30 s.
fn kill_when_busy(c: &mut redis::Connection, container: &str) -> bool {
    for _ in 0..3000 {
        thread::sleep(Duration::from_millis(10));
        match redis::cmd(container).arg("KILL").query::<String>(c) {
            Ok(_) => return true,
            Err(e) => assert_eq!(e.code(), Some("NOTBUSY"), "{e}"),
        }
    }
    false
}

/// Sends raw RESP and reads until `done` accepts the bytes.
fn raw(s: &KvdServer, req: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut t = s.raw();
    t.write_all(req).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&buf) {
        assert!(
            Instant::now() < deadline,
            "no full reply: {:?}",
            String::from_utf8_lossy(&buf)
        );
        let n = t.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

#[test]
fn basic_eval_and_conversions() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        eval::<String>(&mut c, "return 'hello'", &[], &[]).unwrap(),
        "hello"
    );
    assert_eq!(eval::<i64>(&mut c, "return 3.99", &[], &[]).unwrap(), 3);
    assert_eq!(eval::<i64>(&mut c, "return true", &[], &[]).unwrap(), 1);
    assert_eq!(
        eval::<Option<String>>(&mut c, "return false", &[], &[]).unwrap(),
        None
    );
    assert_eq!(
        eval::<Option<String>>(&mut c, "return nil", &[], &[]).unwrap(),
        None
    );
    // Arrays stop at the first nil.
    let v: Vec<redis::Value> = eval(&mut c, "return {1, 'two', nil, 4}", &[], &[]).unwrap();
    assert_eq!(v.len(), 2);
    let ok: String = eval(&mut c, "return redis.status_reply('FINE')", &[], &[]).unwrap();
    assert_eq!(ok, "FINE");
    let e = eval_err(&mut c, "return redis.error_reply('MYERR custom')", &[]);
    assert!(e.contains("MYERR") && e.contains("custom"), "{e}");
    // KEYS / ARGV, redis.call replies converted back.
    let _: () = redis::cmd("SET").arg("k").arg("v1").query(&mut c).unwrap();
    let r: Vec<String> = eval(
        &mut c,
        "return {redis.call('GET', KEYS[1]), tostring(redis.call('GET', 'nokey')), \
                 tostring(redis.call('INCRBY', 'n', 5)), redis.call('SET', KEYS[1], 'x').ok}",
        &["k"],
        &[],
    )
    .unwrap();
    assert_eq!(r, vec!["v1", "false", "5", "OK"]);
    // Status replies are tables of their own text, a fresh one per call
    // (changing one changes no later reply), through call and pcall; a
    // status returned as is reaches the client as a status.
    let r: Vec<String> = eval(
        &mut c,
        "local a = redis.call('SET', KEYS[1], 'y') a.ok = 'changed' \
         local b = redis.pcall('SET', KEYS[1], 'z') \
         return {a.ok, b.ok, redis.call('PING').ok, redis.pcall('TYPE', KEYS[1]).ok, \
                 tostring(rawequal(a, b)), tostring(redis.call('SET', KEYS[1], 'w').ok)}",
        &["k"],
        &[],
    )
    .unwrap();
    assert_eq!(r, vec!["changed", "OK", "PONG", "string", "false", "OK"]);
    let st: redis::Value = eval(
        &mut c,
        "return redis.call('SET', KEYS[1], 'v1')",
        &["k"],
        &[],
    )
    .unwrap();
    assert_eq!(st, redis::Value::Okay);
    let st: redis::Value =
        eval(&mut c, "return redis.pcall('TYPE', KEYS[1])", &["k"], &[]).unwrap();
    assert!(
        matches!(&st, redis::Value::SimpleString(s) if s == "string"),
        "{st:?}"
    );
    // Numbers passed to redis.call become strings with every digit they
    // need to read back (Redis 7.2's fpconv_dtoa; Lua's %.14g would cut 1/3).
    let v: Vec<String> = eval(
        &mut c,
        "redis.call('SET', 'f', 1.5) redis.call('SET', 'g', 1/3) redis.call('SET', 'h', 2^53) \
         return {redis.call('GET', 'f'), redis.call('GET', 'g'), redis.call('GET', 'h')}",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v, vec!["1.5", "0.3333333333333333", "9007199254740992"]);
    // redis.sha1hex and the libraries.
    let h: String = eval(&mut c, "return redis.sha1hex('')", &[], &[]).unwrap();
    assert_eq!(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    let j: String = eval(&mut c, "return cjson.encode({1,2,3})", &[], &[]).unwrap();
    assert_eq!(j, "[1,2,3]");
    let b: i64 = eval(&mut c, "return bit.band(0xff, 0x0f)", &[], &[]).unwrap();
    assert_eq!(b, 15);
}

#[test]
fn resp3_conversions() {
    let s = KvdServer::start(&[]);
    let script = "return {double=3.5}";
    let req = format!(
        "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    let out = raw(&s, req.as_bytes(), |b| b.ends_with(b",3.5\r\n"));
    assert!(out.ends_with(b",3.5\r\n"));
    // setresp(3) makes redis.call return RESP3 types to the script.
    let script = "redis.setresp(3) redis.call('SET','a','1') return redis.call('GET','missing') == nil and 1 or 0";
    let req = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    let out = raw(&s, req.as_bytes(), |b| b.ends_with(b"\r\n"));
    assert_eq!(out, b":1\r\n");
}

#[test]
fn argument_and_script_errors() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let e = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("k")
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Number of keys can't be greater than number of args"),
        "{e}"
    );
    let e = redis::cmd("EVAL")
        .arg("return 1")
        .arg(-1)
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("Number of keys can't be negative"),
        "{e}"
    );
    let e = redis::cmd("EVAL")
        .arg("return 1")
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'eval' command"),
        "{e}"
    );
    let e = eval_err(&mut c, "return +", &[]);
    assert!(e.contains("Error compiling script"), "{e}");
    let e = eval_err(&mut c, "return redis.call('nosuchcmd')", &[]);
    assert!(
        e.contains("Unknown Redis command called from script"),
        "{e}"
    );
    let e = eval_err(&mut c, "return redis.call('get')", &[]);
    assert!(
        e.contains("Wrong number of args calling Redis command from script"),
        "{e}"
    );
    let e = eval_err(&mut c, "return redis.call('eval', 'return 1', 0)", &[]);
    assert!(e.contains("not allowed from script"), "{e}");
    let e = eval_err(&mut c, "return redis.call('multi')", &[]);
    assert!(e.contains("not allowed from script"), "{e}");
    let e = eval_err(&mut c, "return redis.call()", &[]);
    assert!(e.contains("Please specify at least one argument"), "{e}");
    let e = eval_err(&mut c, "return redis.call('get', {})", &[]);
    assert!(e.contains("must be strings or integers"), "{e}");
    // A command error raised by redis.call names the script and line.
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("text")
        .query(&mut c)
        .unwrap();
    let e = eval_err(
        &mut c,
        "\nlocal r = redis.call('incr', KEYS[1]) return r",
        &["s"],
    );
    assert!(e.contains("not an integer or out of range"), "{e}");
    assert!(e.contains("@user_script:2"), "{e}");
    // redis.pcall returns the error as a table.
    let v: String = eval(
        &mut c,
        "local r = redis.pcall('incr', KEYS[1]) return r.err",
        &["s"],
        &[],
    )
    .unwrap();
    assert!(v.contains("not an integer"), "{v}");
    // EVAL is refused inside MULTI (kvd difference, see README).
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let e = redis::cmd("EVAL")
        .arg("return 1")
        .arg(0)
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("not allowed inside a transaction"),
        "{e}"
    );
    let _: () = redis::cmd("DISCARD").query(&mut c).unwrap();
}

#[test]
fn script_cache_commands() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return ARGV[1]")
        .query(&mut c)
        .unwrap();
    assert_eq!(sha, "098e0f0d1448c0a81dafe820f66d460eb09263da");
    let v: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "x");
    let v: String = redis::cmd("EVALSHA")
        .arg(sha.to_uppercase())
        .arg(0)
        .arg("y")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "y");
    let ex: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg("ffff")
        .query(&mut c)
        .unwrap();
    assert_eq!(ex, vec![1, 0]);
    // EVAL caches too.
    let _: i64 = eval(&mut c, "return 1", &[], &[]).unwrap();
    let ex: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg("e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        .query(&mut c)
        .unwrap();
    assert_eq!(ex, vec![1]);
    let e = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return (")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Error compiling script"), "{e}");
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    let e = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .query::<String>(&mut c)
        .unwrap_err();
    assert_eq!(e.code(), Some("NOSCRIPT"), "{e}");
    let e = redis::cmd("SCRIPT")
        .arg("KILL")
        .query::<String>(&mut c)
        .unwrap_err();
    assert_eq!(e.code(), Some("NOTBUSY"), "{e}");
    // Read-only variants refuse writes.
    let e = redis::cmd("EVAL_RO")
        .arg("return redis.call('set','a','b')")
        .arg(1)
        .arg("a")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Write commands are not allowed from read-only scripts"),
        "{e}"
    );
    assert_eq!(get(&mut c, "a"), None);
    let v: Option<String> = redis::cmd("EVAL_RO")
        .arg("return redis.call('get','a')")
        .arg(1)
        .arg("a")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, None);
    // A shebang with no-writes makes EVAL read-only too.
    let e = eval_err(
        &mut c,
        "#!lua flags=no-writes\nreturn redis.call('set',KEYS[1],'b')",
        &["a"],
    );
    assert!(e.contains("Write commands are not allowed"), "{e}");
}

#[test]
fn sandbox_refuses_escapes() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let refused = [
        ("return os.execute('true')", "execute"),
        ("return io.open('/etc/passwd')", "variable 'io'"),
        ("return loadfile('/etc/passwd')", "loadfile"),
        ("return dofile('/etc/passwd')", "dofile"),
        ("return require('os')", "require"),
        ("return load('return 1')", "load"),
        ("x = 1", "readonly"),
        ("function f() end", "readonly"),
        ("rawset(_G, 'x', 1)", "readonly"),
        ("setmetatable(_G, nil)", "protected metatable"),
        ("string.rep = nil", "readonly"),
        ("rawset(string, 'rep', nil)", "readonly"),
        ("getmetatable('').__index = {}", "index"),
        ("return coroutine.create(function() end)", "coroutine"),
        ("return debug.getinfo(1)", "debug"),
        ("return undefined_global", "nonexistent global variable"),
        // Replacing an existing global is refused too.
        ("redis = nil", "readonly"),
        ("pcall = function() end", "readonly"),
        ("tostring = nil", "readonly"),
        ("KEYS = {}", "readonly"),
        ("_G.string = nil", "readonly"),
        ("return setfenv(0, {})", "variable 'setfenv'"),
        ("return getfenv(1)", "variable 'getfenv'"),
        ("return newproxy(true)", "variable 'newproxy'"),
    ];
    for (script, what) in refused {
        let e = eval_err(&mut c, script, &[]);
        assert!(
            e.to_lowercase().contains(&what.to_lowercase()),
            "{script}: {e}"
        );
    }
    // Bytecode is refused; source through loadstring still works.
    let e: String = eval(
        &mut c,
        "local f, err = loadstring(string.dump(function() return 1 end)) return tostring(err)",
        &[],
        &[],
    )
    .unwrap();
    assert!(e.contains("binary"), "{e}");
    let v: i64 = eval(&mut c, "return loadstring('return 7')()", &[], &[]).unwrap();
    assert_eq!(v, 7);
    // Nothing a script tried leaked into the next one.
    let v: i64 = eval(
        &mut c,
        "return string.len(string.rep('a', 3)) + os.clock() * 0",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v, 3);
    let v: String = eval(
        &mut c,
        "return tostring(redis.call('SET', KEYS[1], 'v').ok)",
        &["k"],
        &[],
    )
    .unwrap();
    assert_eq!(v, "OK");
    // math.randomseed does not leak either: every run starts the same.
    let a: i64 = eval(&mut c, "return math.random(1000000)", &[], &[]).unwrap();
    let _: i64 = eval(&mut c, "math.randomseed(42) return 1", &[], &[]).unwrap();
    let b: i64 = eval(&mut c, "return math.random(1000000)", &[], &[]).unwrap();
    assert_eq!(a, b);
}

/// Every kind of failure leaves no trace: runtime error, uncaught
/// redis.call error, an error reply, a kill, the memory limit.
#[test]
fn failed_scripts_leave_no_trace() {
    let s = KvdServer::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--lua-memory-limit",
        "16mb",
        "--busy-reply-threshold",
        "100",
    ]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("orig")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("text")
        .query(&mut c)
        .unwrap();
    let cases = [
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) error('boom')",
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) return redis.call('INCR', KEYS[2] .. 'x', 'extra')",
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) local x = nil + 1",
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) return redis.error_reply('ERR refused')",
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) local t = {} while true do t[#t+1] = string.rep('x', 65536) .. #t end",
        "redis.call('SET', KEYS[1], 'new') redis.call('DEL', KEYS[2]) return pcall(function() local t = {} while true do t[#t+1] = string.rep('y', 65536) .. #t end end)",
    ];
    for script in cases {
        eval_err(&mut c, script, &["k", "s"]);
        assert_eq!(get(&mut c, "k").as_deref(), Some("orig"), "{script}");
        assert_eq!(get(&mut c, "s").as_deref(), Some("text"), "{script}");
    }
    // Killed mid-loop after writing.
    let s2 = s.client();
    let t = thread::spawn(move || {
        let mut c2 = s2.get_connection().unwrap();
        eval_err(
            &mut c2,
            "redis.call('SET', KEYS[1], 'new') while true do end",
            &["k"],
        )
    });
    assert!(
        kill_when_busy(&mut c, "SCRIPT"),
        "SCRIPT KILL never found the busy script"
    );
    let e = t.join().unwrap();
    assert!(e.contains("killed by user"), "{e}");
    assert_eq!(get(&mut c, "k").as_deref(), Some("orig"));
    // The VM still works after the memory limit and the kill.
    let v: String = eval(&mut c, "return string.rep('z', 3)", &[], &[]).unwrap();
    assert_eq!(v, "zzz");
    // Only the committed script reaches the AOF: restart and compare.
    let _: i64 = eval(
        &mut c,
        "redis.call('SET', KEYS[1], 'done') return 1",
        &["k"],
        &[],
    )
    .unwrap();
    drop(c);
    let s = s.restart();
    let mut c = s.conn();
    assert_eq!(get(&mut c, "k").as_deref(), Some("done"));
    assert_eq!(get(&mut c, "s").as_deref(), Some("text"));
}

/// 8 connections × 500 increment scripts on one key: exact.
#[test]
fn concurrent_increment_scripts_are_exact() {
    let s = KvdServer::start(&["--lua-workers", "2"]);
    let mut ts = Vec::new();
    for _ in 0..8 {
        let cl = s.client();
        ts.push(thread::spawn(move || {
            let mut c = cl.get_connection().unwrap();
            for _ in 0..500 {
                let _: i64 = eval(
                    &mut c,
                    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1",
                    &["counter"],
                    &[],
                )
                .unwrap();
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(get(&mut c, "counter").as_deref(), Some("4000"));
}

/// Scripts move units between two keys while MGET readers check the sum.
#[test]
fn transfers_are_never_torn_for_mget() {
    const TOTAL: i64 = 10_000;
    let s = KvdServer::start(&["--lua-workers", "2"]);
    let mut c = s.conn();
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(TOTAL)
        .arg("b")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let cl = s.client();
        writers.push(thread::spawn(move || {
            let mut c = cl.get_connection().unwrap();
            let (from, to) = if w == 0 { ("a", "b") } else { ("b", "a") };
            for _ in 0..600 {
                let _: i64 = eval(
                    &mut c,
                    "local n = tonumber(redis.call('GET', KEYS[1])) \
                     if n > 0 then redis.call('DECR', KEYS[1]) redis.call('INCR', KEYS[2]) end return n",
                    &[from, to],
                    &[],
                )
                .unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let cl = s.client();
        let done = done.clone();
        readers.push(thread::spawn(move || {
            let mut c = cl.get_connection().unwrap();
            let mut checks = 0;
            while !done.load(Ordering::Acquire) || checks < 10 {
                let (a, b): (i64, i64) =
                    redis::cmd("MGET").arg("a").arg("b").query(&mut c).unwrap();
                assert_eq!(a + b, TOTAL, "torn read: a={a} b={b}");
                checks += 1;
            }
            checks
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() >= 10);
    }
}

/// A script that touches a key it did not declare is re-run under the
/// exclusive gate and still gives the right answer.
#[test]
fn undeclared_keys_still_work() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("other")
        .arg("5")
        .query(&mut c)
        .unwrap();
    let v: i64 = eval(
        &mut c,
        "redis.call('SET', KEYS[1], 1) return redis.call('INCRBY', 'other', 10) + #redis.call('KEYS', '*')",
        &["declared"],
        &[],
    )
    .unwrap();
    assert_eq!(v, 15 + 2);
    assert_eq!(get(&mut c, "other").as_deref(), Some("15"));
    assert_eq!(get(&mut c, "declared").as_deref(), Some("1"));
    // Reads see the script's own writes; DBSIZE counts them.
    let n: i64 = eval(
        &mut c,
        "redis.call('SET', 'fresh', 1) return redis.call('DBSIZE')",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(n, 3);
}

/// A looping script: clients on other keys keep working, clients on its
/// keys get -BUSY after the threshold, SCRIPT KILL stops it.
#[test]
fn script_kill_while_others_work() {
    let s = KvdServer::start(&["--busy-reply-threshold", "200"]);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("busykey")
        .arg("before")
        .query(&mut c)
        .unwrap();
    let cl = s.client();
    let runner = thread::spawn(move || {
        let mut c = cl.get_connection().unwrap();
        eval_err(
            &mut c,
            "redis.call('SET', KEYS[1], 'during') while true do end",
            &["busykey"],
        )
    });
    // Other keys keep working while it runs.
    let mut other = s.conn();
    let mut saw_busy = false;
    for i in 0..1500 {
        let _: () = redis::cmd("SET")
            .arg("free")
            .arg(i)
            .query(&mut other)
            .unwrap();
        let v: i64 = redis::cmd("GET").arg("free").query(&mut other).unwrap();
        assert_eq!(v, i);
        match redis::cmd("GET")
            .arg("busykey")
            .query::<Option<String>>(&mut c)
        {
            Err(e) => {
                assert!(e.to_string().contains("BUSY"), "{e}");
                saw_busy = true;
                break;
            }
            Ok(v) => assert_eq!(
                v.as_deref(),
                Some("before"),
                "a script's write became visible"
            ),
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_busy, "the looping script's key never answered BUSY");
    let mut k = s.conn();
    let r: String = redis::cmd("SCRIPT").arg("KILL").query(&mut k).unwrap();
    assert_eq!(r, "OK");
    let e = runner.join().unwrap();
    assert!(e.contains("Script killed by user with SCRIPT KILL"), "{e}");
    assert_eq!(get(&mut c, "busykey").as_deref(), Some("before"));
    // An undeclared-key script holds the whole server: others get BUSY
    // after the threshold, and SCRIPT KILL still gets through.
    let cl = s.client();
    let runner = thread::spawn(move || {
        let mut c = cl.get_connection().unwrap();
        eval_err(
            &mut c,
            "redis.call('SET', 'undeclared', 1) while true do end",
            &[],
        )
    });
    let mut saw_busy = false;
    for _ in 0..1500 {
        match redis::cmd("PING").query::<String>(&mut other) {
            Err(e) => {
                assert!(e.to_string().contains("BUSY"), "{e}");
                saw_busy = true;
                break;
            }
            Ok(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(
        saw_busy,
        "an exclusive looping script never made the server BUSY"
    );
    let r: String = redis::cmd("SCRIPT").arg("KILL").query(&mut k).unwrap();
    assert_eq!(r, "OK");
    let e = runner.join().unwrap();
    assert!(e.contains("killed"), "{e}");
    let _: String = redis::cmd("PING").query(&mut other).unwrap();
    assert_eq!(get(&mut c, "undeclared"), None);
    // FUNCTION KILL stops a looping function; FUNCTION STATS shows it.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=loop\nredis.register_function('spin', function(keys) redis.call('SET', keys[1], 'x') while true do end end)")
        .query(&mut k)
        .unwrap();
    let cl = s.client();
    let runner = thread::spawn(move || {
        let mut c = cl.get_connection().unwrap();
        redis::cmd("FCALL")
            .arg("spin")
            .arg(1)
            .arg("fkey")
            .query::<redis::Value>(&mut c)
            .unwrap_err()
            .to_string()
    });
    // FUNCTION STATS shows it while it runs.
    let mut shown = false;
    for _ in 0..1500 {
        thread::sleep(Duration::from_millis(10));
        let stats: redis::Value = redis::cmd("FUNCTION").arg("STATS").query(&mut k).unwrap();
        if format!("{stats:?}").contains("spin") {
            shown = true;
            break;
        }
    }
    assert!(shown, "FUNCTION STATS never showed the running function");
    assert!(
        kill_when_busy(&mut k, "FUNCTION"),
        "FUNCTION KILL never found the busy function"
    );
    let e = runner.join().unwrap();
    assert!(
        e.contains("Script killed by user with FUNCTION KILL"),
        "{e}"
    );
    assert_eq!(get(&mut c, "fkey"), None);
}

#[test]
fn functions_load_call_list_and_survive_restart() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let lib = "#!lua name=mylib\n\
        redis.register_function('incr_by', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)\n\
        redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads'}";
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    assert_eq!(name, "mylib");
    let e = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("Library 'mylib' already exists"),
        "{e}"
    );
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let v: i64 = redis::cmd("FCALL")
        .arg("incr_by")
        .arg(1)
        .arg("n")
        .arg(7)
        .query(&mut c)
        .unwrap();
    assert_eq!(v, 7);
    let v: String = redis::cmd("FCALL_RO")
        .arg("peek")
        .arg(1)
        .arg("n")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "7");
    let e = redis::cmd("FCALL_RO")
        .arg("incr_by")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("write flag"), "{e}");
    let e = redis::cmd("FCALL")
        .arg("nope")
        .arg(0)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Function not found"), "{e}");
    let e = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=empty\nlocal x = 1")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("No functions registered"), "{e}");
    let e = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("return 1")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Missing library metadata"), "{e}");
    let list: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .arg("WITHCODE")
        .query(&mut c)
        .unwrap();
    let text = format!("{list:?}");
    assert!(
        text.contains("mylib") && text.contains("incr_by") && text.contains("no-writes"),
        "{text}"
    );
    let dump: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
    // Survives a restart.
    drop(c);
    let s = s.restart();
    let mut c = s.conn();
    let v: i64 = redis::cmd("FCALL")
        .arg("incr_by")
        .arg(1)
        .arg("n")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert!(v >= 1);
    // FLUSH, RESTORE from the dump, DELETE.
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
    let e = redis::cmd("FCALL")
        .arg("incr_by")
        .arg(1)
        .arg("n")
        .arg(1)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Function not found"), "{e}");
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump)
        .query(&mut c)
        .unwrap();
    let v: String = redis::cmd("FCALL")
        .arg("peek")
        .arg(1)
        .arg("n")
        .query(&mut c)
        .unwrap();
    assert!(!v.is_empty());
    let mut bad = dump.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&bad)
        .arg("REPLACE")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("payload version or checksum are wrong"),
        "{e}"
    );
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("mylib")
        .query(&mut c)
        .unwrap();
    let stats: redis::Value = redis::cmd("FUNCTION").arg("STATS").query(&mut c).unwrap();
    assert!(
        format!("{stats:?}").contains("libraries_count"),
        "{stats:?}"
    );
    drop(c);
    let s = s.restart();
    let mut c = s.conn();
    let e = redis::cmd("FCALL")
        .arg("peek")
        .arg(1)
        .arg("n")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Function not found"), "{e}");
}

/// A script that finds an expired key logs the lazy DEL before its own
/// effect, so the AOF replays to the same state (replay ignores TTLs).
#[test]
fn expired_keys_in_scripts_replay_identically() {
    let s = KvdServer::start(kvd_suite::AOF_ALWAYS);
    let mut c = s.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("5")
        .arg("PX")
        .arg(30)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("a")
        .arg("x")
        .arg("PX")
        .arg(30)
        .query(&mut c)
        .unwrap();
    std::thread::sleep(Duration::from_millis(80));
    let v: i64 = eval(
        &mut c,
        "redis.call('APPEND', KEYS[2], 'y') return redis.call('INCR', KEYS[1])",
        &["k", "a"],
        &[],
    )
    .unwrap();
    assert_eq!(v, 1);
    drop(c);
    let s = s.restart();
    let mut c = s.conn();
    assert_eq!(get(&mut c, "k").as_deref(), Some("1"));
    assert_eq!(get(&mut c, "a").as_deref(), Some("y"));
    let ttl: i64 = redis::cmd("PTTL").arg("k").query(&mut c).unwrap();
    assert_eq!(ttl, -1);
    // Functions see no KEYS/ARGV globals (left over from an EVAL).
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=kk\nredis.register_function('k', function() return KEYS end)")
        .query(&mut c)
        .unwrap();
    let _: i64 = eval(&mut c, "return #KEYS", &["x"], &[]).unwrap();
    let e = redis::cmd("FCALL")
        .arg("k")
        .arg(0)
        .query::<redis::Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("nonexistent global variable 'KEYS'"),
        "{e}"
    );
}

/// EVAL in the middle of a pipeline: replies keep the request order and
/// the commands around it see its writes in order.
#[test]
fn pipelined_scripts_keep_reply_order() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..50 {
        p.cmd("SET").arg("pk").arg(i).ignore();
        p.cmd("EVAL")
            .arg("return redis.call('INCR', KEYS[1])")
            .arg(1)
            .arg("pk");
        p.cmd("GET").arg("pk");
    }
    let replies: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(replies.len(), 100);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair, [i as i64 + 1, i as i64 + 1], "round {i}");
    }
}

/// Everything that takes locks at once — declared-key scripts on
/// overlapping keys, undeclared-key scripts (exclusive gate), MULTI/EXEC,
/// MSET, single INCRs, BGSAVE — with the AOF on: no deadlock (every reply
/// arrives within the read timeout) and every increment counted once.
#[test]
fn mixed_lockers_never_deadlock_and_count_exactly() {
    let s = KvdServer::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    const ROUNDS: usize = 150;
    let mut ts = Vec::new();
    for t in 0..6usize {
        let cl = s.client();
        ts.push(thread::spawn(move || {
            let mut c = cl.get_connection().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut incs = 0i64;
            for i in 0..ROUNDS {
                let (a, b) = (format!("m{}", (t + i) % 4), format!("m{}", (t + i + 1) % 4));
                match (t + i) % 6 {
                    0 => {
                        let _: i64 = eval(
                            &mut c,
                            "redis.call('INCR', KEYS[1]) return redis.call('INCR', KEYS[2])",
                            &[&a, &b],
                            &[],
                        )
                        .unwrap();
                        incs += 2;
                    }
                    1 => {
                        // Undeclared: re-run under the exclusive gate.
                        let _: i64 =
                            eval(&mut c, "return redis.call('INCR', ARGV[1])", &[], &[&a]).unwrap();
                        incs += 1;
                    }
                    2 => {
                        let _: () = redis::pipe()
                            .atomic()
                            .cmd("INCR")
                            .arg(&a)
                            .ignore()
                            .cmd("INCR")
                            .arg(&b)
                            .ignore()
                            .query(&mut c)
                            .unwrap();
                        incs += 2;
                    }
                    3 => {
                        let _: () = redis::cmd("MSET")
                            .arg(format!("x{t}"))
                            .arg(i)
                            .arg(format!("y{t}"))
                            .arg(i)
                            .query(&mut c)
                            .unwrap();
                    }
                    4 => {
                        let _: i64 = redis::cmd("INCR").arg(&a).query(&mut c).unwrap();
                        incs += 1;
                    }
                    _ => {
                        if i % 30 == 5 {
                            let _ = redis::cmd("BGSAVE").query::<String>(&mut c);
                        }
                        let _: Option<String> = redis::cmd("GET").arg(&b).query(&mut c).unwrap();
                    }
                }
            }
            incs
        }));
    }
    let total: i64 = ts.into_iter().map(|t| t.join().unwrap()).sum();
    let mut c = s.conn();
    let got: i64 = (0..4)
        .map(|k| {
            redis::cmd("GET")
                .arg(format!("m{k}"))
                .query::<Option<i64>>(&mut c)
                .unwrap()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(got, total);
}

/// Short scripts run inline on the connection's thread; a script that runs
/// past `lua-inline-budget` is discarded there and re-run on a Lua worker,
/// its writes applied exactly once. Inline and worker runs of scripts on the
/// same key, from several clients, still count exactly.
#[test]
fn inline_and_worker_runs_apply_exactly_once() {
    // First a budget no short script overruns on a loaded machine (the budget is
    // wall-clock time), so the inline count is exact.
    let s = KvdServer::start(&["--lua-workers", "2", "--lua-inline-budget", "1000000"]);
    let mut c = s.conn();
    let inline0 = kvd_suite::info_u64(&mut c, "kvd_lua_inline_runs");
    for i in 1..=5i64 {
        let v: i64 = eval(&mut c, "return redis.call('INCR', KEYS[1])", &["n"], &[]).unwrap();
        assert_eq!(v, i);
    }
    assert_eq!(
        kvd_suite::info_u64(&mut c, "kvd_lua_inline_runs"),
        inline0 + 5
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("lua-inline-budget")
        .arg("1000")
        .query(&mut c)
        .unwrap();
    // 5 ms of CPU against a 1 ms budget: never finishes inline.
    const SLOW: &str = "redis.call('INCR', KEYS[1]) \
                        local t = os.clock() while os.clock() - t < 0.005 do end \
                        return redis.call('GET', KEYS[1])";
    let fallbacks0 = kvd_suite::info_u64(&mut c, "kvd_lua_inline_fallbacks");
    let v: String = eval(&mut c, SLOW, &["slow"], &[]).unwrap();
    assert_eq!(v, "1", "the abandoned inline attempt left no INCR behind");
    assert!(kvd_suite::info_u64(&mut c, "kvd_lua_inline_fallbacks") > fallbacks0);
    let v: String = eval(&mut c, SLOW, &["slow"], &[]).unwrap();
    assert_eq!(v, "2");

    // Mixed: every client alternates a short and a slow script on one key.
    let mut ts = Vec::new();
    for _ in 0..4 {
        let cl = s.client();
        ts.push(thread::spawn(move || {
            let mut c = cl.get_connection().unwrap();
            for i in 0..60 {
                let script = if i % 3 == 0 {
                    SLOW
                } else {
                    "redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
                };
                let _: String = eval(&mut c, script, &["shared"], &[]).unwrap();
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(get(&mut c, "shared").as_deref(), Some("240"));

    // lua-inline-budget 0: every script goes to a worker.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("lua-inline-budget")
        .arg("0")
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("lua-inline-budget")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["lua-inline-budget", "0"]);
    let inline1 = kvd_suite::info_u64(&mut c, "kvd_lua_inline_runs");
    let v: i64 = eval(&mut c, "return redis.call('INCR', KEYS[1])", &["n"], &[]).unwrap();
    assert_eq!(v, 6);
    assert_eq!(kvd_suite::info_u64(&mut c, "kvd_lua_inline_runs"), inline1);
}

/// As in Redis 7, time stands still while a script runs: a key it sets to
/// expire in 1 ms is still there at its end, however long the script ran,
/// and gone afterwards.
#[test]
fn time_stands_still_inside_a_script() {
    let s = KvdServer::start(&[]);
    let mut c = s.conn();
    let script = "redis.call('SET', KEYS[1], 'v', 'PX', 1) \
                  local t = os.clock() while os.clock() - t < 0.02 do end \
                  return {redis.call('EXISTS', KEYS[1]), redis.call('GET', KEYS[1])}";
    let (n, v): (i64, String) = eval(&mut c, script, &["fleeting"], &[]).unwrap();
    assert_eq!((n, v.as_str()), (1, "v"));
    thread::sleep(Duration::from_millis(20));
    assert_eq!(get(&mut c, "fleeting"), None);
}
