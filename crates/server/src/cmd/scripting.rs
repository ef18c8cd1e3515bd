//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and
//! FUNCTION.
//!
//! Commands that run Lua (EVAL*, FCALL*, SCRIPT LOAD, FUNCTION LOAD and
//! RESTORE) only validate their arguments here and leave a request in
//! [`ConnState::script`]; the connection ends its batch, runs the request
//! inline or hands it to a Lua worker, and awaits the reply without holding
//! any lock of its batch (`crate::conn`, decision 009). The rest answer at once from the engine's shared
//! state.

use bytes::Bytes;
use lua_engine::{Job, KillOutcome, Request, RestorePolicy};

use super::table::{Cmd, CommandSpec};
use super::{int_arg, is, CmdResult, Ctx};
use crate::conn::ConnState;
use crate::script::Caller;

/// A request waiting for a Lua worker.
pub type ScriptRequest = Request<Caller>;

fn engine<'a>(ctx: &Ctx<'a, '_>) -> Option<&'a crate::script::Engine> {
    ctx.shared.scripting.get()
}

fn request(
    ctx: &Ctx<'_, '_>,
    job: Job,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    ro: bool,
) -> ScriptRequest {
    Request {
        job,
        keys,
        args,
        read_only: ro,
        resp3: ctx.out.proto == resp_codec::Protocol::Resp3,
        caller: Caller {
            db: ctx.conn.db,
            client_id: ctx.conn.handle.id,
        },
    }
}

fn queue(conn: &mut ConnState, req: ScriptRequest) {
    conn.script = Some(req);
}

/// Splits `numkeys key… arg…` (starting at `args[2]`), replying Redis's
/// errors.
fn keys_and_args(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
    let n = int_arg(ctx.out, &args[2])?;
    if n < 0 {
        ctx.out.error(b"ERR Number of keys can't be negative");
        return None;
    }
    let n = n as usize;
    if n > args.len() - 3 {
        ctx.out
            .error(b"ERR Number of keys can't be greater than number of args");
        return None;
    }
    Some((args[3..3 + n].to_vec(), args[3 + n..].to_vec()))
}

/// Runs a scripting command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    if engine(ctx).is_none() {
        ctx.out.error(b"ERR scripting is not available");
        return Ok(());
    }
    match spec.id {
        Cmd::Eval | Cmd::EvalRo | Cmd::EvalSha | Cmd::EvalShaRo | Cmd::FCall | Cmd::FCallRo => {
            let Some((keys, argv)) = keys_and_args(ctx, args) else {
                return Ok(());
            };
            let ro = matches!(spec.id, Cmd::EvalRo | Cmd::EvalShaRo | Cmd::FCallRo);
            let job = match spec.id {
                Cmd::Eval | Cmd::EvalRo => Job::Eval(args[1].clone()),
                Cmd::EvalSha | Cmd::EvalShaRo => {
                    // Unknown SHA: answer here, no worker needed.
                    if !engine(ctx).is_some_and(|e| e.scripts().contains(&args[1])) {
                        ctx.out
                            .error(b"NOSCRIPT No matching script. Please use EVAL.");
                        return Ok(());
                    }
                    Job::EvalSha(args[1].clone())
                }
                _ => Job::Fcall(args[1].clone()),
            };
            let req = request(ctx, job, keys, argv, ro);
            queue(ctx.conn, req);
        }
        Cmd::Script => script(ctx, spec, args),
        Cmd::Function => function(ctx, spec, args),
        _ => unreachable!("not a scripting command: {}", spec.name),
    }
    Ok(())
}

fn flush_mode_ok(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> bool {
    match args.len() {
        2 => true,
        3 if is(&args[2], "async") || is(&args[2], "sync") => true,
        _ => {
            ctx.out.syntax_error();
            false
        }
    }
}

fn script(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let Some(sub) = super::subcommand(ctx.out, spec, args) else {
        return;
    };
    let Some(e) = engine(ctx) else { return };
    match sub.name {
        "load" => {
            let req = request(ctx, Job::ScriptLoad(args[2].clone()), vec![], vec![], false);
            queue(ctx.conn, req);
        }
        "exists" => {
            ctx.out.array(args.len() - 2);
            for sha in &args[2..] {
                ctx.out.int(e.scripts().contains(sha) as i64);
            }
        }
        "flush" => {
            if flush_mode_ok(ctx, args) {
                e.scripts().flush();
                ctx.out.ok();
            }
        }
        "kill" => match e.kill(false) {
            KillOutcome::Killed => ctx.out.ok(),
            KillOutcome::NotBusy => ctx.out.error(b"NOTBUSY No scripts in execution right now."),
        },
        "help" => help(ctx, SCRIPT_HELP),
        other => unreachable!("SCRIPT {other}"),
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Print this help.",
];

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "DELETE <LIBRARY NAME>",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "FLUSH [ASYNC|SYNC]",
    "DUMP",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "KILL",
    "STATS",
    "HELP",
    "    Print this help.",
];

fn help(ctx: &mut Ctx<'_, '_>, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l.as_bytes());
    }
}

fn function(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) {
    let Some(sub) = super::subcommand(ctx.out, spec, args) else {
        return;
    };
    let Some(e) = engine(ctx) else { return };
    match sub.name {
        "load" => {
            let (replace, code) = match args.len() {
                3 => (false, &args[2]),
                4 if is(&args[2], "replace") => (true, &args[3]),
                4 => {
                    ctx.out.error(
                        format!("ERR Unknown option given: {}", super::lossy(&args[2])).as_bytes(),
                    );
                    return;
                }
                _ => {
                    ctx.out.wrong_args("function|load");
                    return;
                }
            };
            let job = Job::FunctionLoad {
                code: code.clone(),
                replace,
            };
            let req = request(ctx, job, vec![], vec![], false);
            queue(ctx.conn, req);
        }
        "restore" => {
            let policy = match args.get(3) {
                None => RestorePolicy::Append,
                Some(p) if is(p, "append") => RestorePolicy::Append,
                Some(p) if is(p, "replace") => RestorePolicy::Replace,
                Some(p) if is(p, "flush") => RestorePolicy::Flush,
                Some(_) => {
                    ctx.out.error(b"ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
                    return;
                }
            };
            if args.len() > 4 {
                ctx.out.syntax_error();
                return;
            }
            let job = Job::FunctionRestore {
                payload: args[2].clone(),
                policy,
            };
            let req = request(ctx, job, vec![], vec![], false);
            queue(ctx.conn, req);
        }
        "delete" => match e.functions().delete(&super::lossy(&args[2])) {
            Ok(()) => ctx.out.ok(),
            Err(m) => ctx.out.error(m.as_bytes()),
        },
        "flush" => {
            if flush_mode_ok(ctx, args) {
                match e.functions().flush() {
                    Ok(()) => ctx.out.ok(),
                    Err(m) => ctx.out.error(m.as_bytes()),
                }
            }
        }
        "dump" => {
            let d = e.functions().dump();
            ctx.out.bulk(&d);
        }
        "kill" => match e.kill(true) {
            KillOutcome::Killed => ctx.out.ok(),
            KillOutcome::NotBusy => ctx.out.error(b"NOTBUSY No scripts in execution right now."),
        },
        "stats" => {
            let running = e.running().into_iter().find(|r| r.is_function);
            ctx.out.map(2);
            ctx.out.bulk(b"running_script");
            match running {
                None => ctx.out.null(),
                Some(r) => {
                    ctx.out.map(3);
                    ctx.out.bulk(b"name");
                    ctx.out.bulk(r.name.as_bytes());
                    ctx.out.bulk(b"command");
                    ctx.out.array(r.command.len());
                    for a in &r.command {
                        ctx.out.bulk(a);
                    }
                    ctx.out.bulk(b"duration_ms");
                    ctx.out.int(r.started.elapsed().as_millis() as i64);
                }
            }
            let (libs, funcs) = e.functions().counts();
            ctx.out.bulk(b"engines");
            ctx.out.map(1);
            ctx.out.bulk(b"LUA");
            ctx.out.map(2);
            ctx.out.bulk(b"libraries_count");
            ctx.out.int(libs as i64);
            ctx.out.bulk(b"functions_count");
            ctx.out.int(funcs as i64);
        }
        "list" => list(ctx, args),
        "help" => help(ctx, FUNCTION_HELP),
        other => unreachable!("FUNCTION {other}"),
    }
}

fn list(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let Some(e) = engine(ctx) else { return };
    let mut pattern: Option<Bytes> = None;
    let mut with_code = false;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "withcode") && !with_code {
            with_code = true;
            i += 1;
        } else if is(&args[i], "libraryname") && pattern.is_none() && i + 1 < args.len() {
            pattern = Some(args[i + 1].clone());
            i += 2;
        } else {
            ctx.out
                .error(format!("ERR Unknown argument {}", super::lossy(&args[i])).as_bytes());
            return;
        }
    }
    let (_, libs) = e.functions().snapshot();
    let libs: Vec<_> = libs
        .into_iter()
        .filter(|l| {
            pattern
                .as_ref()
                .is_none_or(|p| crate::glob::matches(p, l.name.as_bytes(), false))
        })
        .collect();
    ctx.out.array(libs.len());
    for l in libs {
        ctx.out.map(if with_code { 4 } else { 3 });
        ctx.out.bulk(b"library_name");
        ctx.out.bulk(l.name.as_bytes());
        ctx.out.bulk(b"engine");
        ctx.out.bulk(b"LUA");
        ctx.out.bulk(b"functions");
        ctx.out.array(l.functions.len());
        for f in &l.functions {
            ctx.out.map(3);
            ctx.out.bulk(b"name");
            ctx.out.bulk(f.name.as_bytes());
            ctx.out.bulk(b"description");
            match &f.description {
                Some(d) => ctx.out.bulk(d.as_bytes()),
                None => ctx.out.null(),
            }
            ctx.out.bulk(b"flags");
            let names = f.flags.names();
            ctx.out.set(names.len());
            for n in names {
                ctx.out.bulk(n.as_bytes());
            }
        }
        if with_code {
            ctx.out.bulk(b"library_code");
            ctx.out.bulk(&l.code);
        }
    }
}
