//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET, CLIENT.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use resp_codec::Protocol;

use super::table::{Cmd, CommandSpec, COMMANDS};
use super::{is, lossy, CmdResult, Ctx};
use crate::server::ClientHandle;
use crate::util::now_ms;

/// Runs a connection command.
pub fn run(ctx: &mut Ctx<'_, '_>, spec: &'static CommandSpec, args: &[Bytes]) -> CmdResult {
    match spec.id {
        Cmd::Ping => match args.len() {
            1 => ctx.out.simple(b"PONG"),
            2 => ctx.out.bulk(&args[1]),
            _ => ctx.out.wrong_args("ping"),
        },
        Cmd::Echo => ctx.out.bulk(&args[1]),
        Cmd::Quit => {
            ctx.out.ok();
            ctx.conn.close = true;
        }
        Cmd::Select => select(ctx, &args[1]),
        Cmd::Auth => auth(ctx, &args[1..]),
        Cmd::Hello => hello(ctx, &args[1..]),
        Cmd::Reset => reset(ctx),
        Cmd::Client => client(ctx, args),
        _ => unreachable!("not a connection command: {}", spec.name),
    }
    Ok(())
}

fn select(ctx: &mut Ctx<'_, '_>, arg: &[u8]) {
    let Some(v) = crate::util::parse_i64(arg) else {
        ctx.out.not_integer();
        return;
    };
    if v < 0 || v as usize >= ctx.shared.keyspace.databases() {
        ctx.out.error(b"ERR DB index is out of range");
        return;
    }
    ctx.conn.db = v as usize;
    ctx.conn.handle.db.store(v as usize, Ordering::Relaxed);
    ctx.out.ok();
}

/// Checks a user/password pair against `requirepass`. Err = reply text.
fn check_password(ctx: &Ctx<'_, '_>, user: Option<&[u8]>, pass: &[u8]) -> Result<(), &'static str> {
    let cfg = ctx.shared.config();
    let user_ok = user.is_none_or(|u| u == b"default");
    match &cfg.requirepass {
        None if user.is_none() => Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        None if user_ok => Ok(()), // `default` user has nopass: any password works
        Some(p) if user_ok && p.as_bytes() == pass => Ok(()),
        _ => Err("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

fn auth(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let (user, pass) = match args.len() {
        1 => (None, &args[0]),
        2 => (Some(&args[0][..]), &args[1]),
        _ => {
            ctx.out.syntax_error();
            return;
        }
    };
    match check_password(ctx, user, pass) {
        Ok(()) => {
            ctx.conn.authed = true;
            ctx.out.ok();
        }
        Err(e) => {
            if e.starts_with("WRONGPASS") {
                tracing::debug!("failed AUTH from {}", ctx.conn.handle.addr);
            }
            ctx.out.error(e.as_bytes());
        }
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
#[derive(Debug)]
struct Hello<'a> {
    proto: Option<i64>,
    auth: Option<(&'a [u8], &'a [u8])>,
    setname: Option<&'a [u8]>,
}

fn hello(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let mut h = Hello {
        proto: None,
        auth: None,
        setname: None,
    };
    let mut i = 0;
    if let Some(v) = args.first() {
        match crate::util::parse_i64(v) {
            Some(p) => h.proto = Some(p),
            None => {
                ctx.out
                    .error(b"ERR Protocol version is not an integer or out of range");
                return;
            }
        }
        i = 1;
    }
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            h.auth = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            h.setname = Some(&args[i + 1]);
            i += 2;
        } else {
            ctx.out.error(
                format!("ERR Syntax error in HELLO option '{}'", lossy(&args[i])).as_bytes(),
            );
            return;
        }
    }
    if let Some(p) = h.proto {
        if !(2..=3).contains(&p) {
            ctx.out.error(b"NOPROTO unsupported protocol version");
            return;
        }
    }
    if let Some((user, pass)) = h.auth {
        if let Err(e) = check_password(ctx, Some(user), pass) {
            ctx.out.error(e.as_bytes());
            return;
        }
        ctx.conn.authed = true;
    }
    if !ctx.conn.authed {
        ctx.out.error(b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some(name) = h.setname {
        if !valid_name(name) {
            ctx.out
                .error(b"ERR Client names cannot contain spaces, newlines or special characters.");
            return;
        }
        set_name(&ctx.conn.handle, name);
    }
    if let Some(p) = h.proto {
        ctx.out.proto = if p == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        ctx.conn.handle.resp.store(p as u8, Ordering::Relaxed);
    }
    let proto = if ctx.out.proto == Protocol::Resp3 {
        3
    } else {
        2
    };
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(b"7.0.0");
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(ctx.conn.handle.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

fn reset(ctx: &mut Ctx<'_, '_>) {
    ctx.conn.multi = None;
    ctx.conn.multi_dirty = false;
    ctx.conn.handle.multi.store(-1, Ordering::Relaxed);
    let shared = ctx.shared;
    ctx.conn.unwatch_all(shared);
    ctx.conn.db = 0;
    ctx.conn.handle.db.store(0, Ordering::Relaxed);
    ctx.out.proto = Protocol::Resp2;
    ctx.conn.handle.resp.store(2, Ordering::Relaxed);
    *ctx.conn
        .handle
        .name
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
    ctx.conn.authed = ctx.shared.config().requirepass.is_none();
    ctx.out.simple(b"RESET");
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn set_name(h: &ClientHandle, name: &[u8]) {
    *h.name.lock().unwrap_or_else(|e| e.into_inner()) = (!name.is_empty()).then(|| name.to_vec());
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

fn client(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let spec = super::table::lookup(b"client").expect("client in table");
    let Some(sub) = super::subcommand(ctx.out, spec, args) else {
        return;
    };
    match sub.name {
        "id" => ctx.out.int(ctx.conn.handle.id as i64),
        "setname" => {
            if !valid_name(&args[2]) {
                ctx.out.error(
                    b"ERR Client names cannot contain spaces, newlines or special characters.",
                );
                return;
            }
            set_name(&ctx.conn.handle, &args[2]);
            ctx.out.ok();
        }
        "getname" => {
            let name = ctx
                .conn
                .handle
                .name
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match name {
                Some(n) => ctx.out.bulk(&n),
                None => ctx.out.null(),
            }
        }
        "info" => {
            let mut s = String::new();
            client_line(&mut s, &ctx.conn.handle, ctx.conn.handle.id);
            ctx.out.verbatim(b"txt", s.as_bytes());
        }
        "list" => client_list(ctx, &args[2..]),
        "kill" => client_kill(ctx, &args[2..]),
        "help" => {
            ctx.out.array(CLIENT_HELP.len());
            for l in CLIENT_HELP {
                ctx.out.simple(l.as_bytes());
            }
        }
        _ => unreachable!("client subcommand table and handler disagree"),
    }
}

/// One `CLIENT LIST` line (with the trailing newline).
fn client_line(s: &mut String, h: &ClientHandle, me: u64) {
    let now = now_ms();
    let name = h
        .name
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .unwrap_or_default();
    let cmd_idx = h.last_cmd.load(Ordering::Relaxed) as usize;
    let cmd = if h.id == me && cmd_idx == 0 {
        "client|list"
    } else if cmd_idx == 0 {
        "NULL"
    } else {
        COMMANDS[cmd_idx - 1].name
    };
    let cmd = if cmd == "client" { "client|list" } else { cmd };
    let multi = h.multi.load(Ordering::Relaxed);
    let flags = if multi >= 0 { "x" } else { "N" };
    let _ = writeln!(
        s,
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
        h.id,
        h.addr,
        h.laddr,
        name,
        now.saturating_sub(h.created_ms) / 1000,
        now.saturating_sub(h.last_ms.load(Ordering::Relaxed)) / 1000,
        flags,
        h.db.load(Ordering::Relaxed),
        multi,
        cmd,
        h.resp.load(Ordering::Relaxed),
    );
}

fn client_list(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 0;
    while i < args.len() {
        if is(&args[i], "type") && i + 1 < args.len() {
            let t = &args[i + 1];
            if is(t, "normal") {
                // every kvd client is normal
            } else if is(t, "master") || is(t, "replica") || is(t, "slave") || is(t, "pubsub") {
                ids = Some(Vec::new());
            } else {
                ctx.out
                    .error(format!("ERR Unknown client type '{}'", lossy(t)).as_bytes());
                return;
            }
            i += 2;
        } else if is(&args[i], "id") && i + 1 < args.len() {
            let mut v = Vec::new();
            for a in &args[i + 1..] {
                match crate::util::parse_i64(a) {
                    Some(id) if id > 0 => v.push(id as u64),
                    _ => {
                        ctx.out.error(b"ERR Invalid client ID");
                        return;
                    }
                }
            }
            ids = Some(v);
            i = args.len();
        } else {
            ctx.out.syntax_error();
            return;
        }
    }
    let mut s = String::new();
    let me = ctx.conn.handle.id;
    for h in ctx.shared.client_list() {
        if ids.as_ref().is_some_and(|v| !v.contains(&h.id)) {
            continue;
        }
        client_line(&mut s, &h, me);
    }
    ctx.out.verbatim(b"txt", s.as_bytes());
}

fn client_kill(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    let me = ctx.conn.handle.id;
    // Old form: CLIENT KILL addr:port
    if args.len() == 1 {
        let addr = lossy(&args[0]).into_owned();
        let target = ctx
            .shared
            .client_list()
            .into_iter()
            .find(|h| h.addr.to_string() == addr);
        match target {
            Some(h) => {
                if h.id == me {
                    ctx.conn.close = true;
                } else {
                    h.kill();
                }
                ctx.out.ok();
            }
            None => ctx.out.error(b"ERR No such client"),
        }
        return;
    }
    if !args.len().is_multiple_of(2) {
        ctx.out.syntax_error();
        return;
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut skipme = true;
    let mut type_none = false;
    let mut user: Option<Vec<u8>> = None;
    for pair in args.chunks(2) {
        let (k, v) = (&pair[0], &pair[1]);
        if is(k, "id") {
            match crate::util::parse_i64(v) {
                Some(x) if x > 0 => id = Some(x as u64),
                _ => {
                    ctx.out.error(b"ERR client-id should be greater than 0");
                    return;
                }
            }
        } else if is(k, "addr") {
            addr = Some(lossy(v).into_owned());
        } else if is(k, "laddr") {
            laddr = Some(lossy(v).into_owned());
        } else if is(k, "type") {
            if is(v, "normal") {
            } else if is(v, "master") || is(v, "replica") || is(v, "slave") || is(v, "pubsub") {
                type_none = true;
            } else {
                ctx.out
                    .error(format!("ERR Unknown client type '{}'", lossy(v)).as_bytes());
                return;
            }
        } else if is(k, "user") {
            user = Some(v.to_vec());
        } else if is(k, "skipme") {
            if is(v, "yes") {
                skipme = true;
            } else if is(v, "no") {
                skipme = false;
            } else {
                ctx.out.syntax_error();
                return;
            }
        } else {
            ctx.out.syntax_error();
            return;
        }
    }
    let mut killed = 0;
    if !type_none && user.as_deref().is_none_or(|u| u == b"default") {
        for h in ctx.shared.client_list() {
            if id.is_some_and(|i| i != h.id)
                || addr.as_ref().is_some_and(|a| *a != h.addr.to_string())
                || laddr.as_ref().is_some_and(|a| *a != h.laddr.to_string())
                || (skipme && h.id == me)
            {
                continue;
            }
            if h.id == me {
                ctx.conn.close = true;
            } else {
                h.kill();
            }
            killed += 1;
        }
    }
    ctx.out.int(killed);
}
