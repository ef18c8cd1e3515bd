//! The command table: every command's metadata as data (Redis 7.0's
//! `COMMAND INFO` values). It drives arity errors, `COMMAND`, key
//! extraction (locks, WATCH) and the auth / MULTI gates.

use std::sync::OnceLock;

/// Command flag bits (names as `COMMAND INFO` prints them).
pub mod flag {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 4;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 5;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 6;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 7;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 8;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 9;
    /// Allowed while a script is busy.
    pub const ALLOW_BUSY: u32 = 1 << 10;
    /// Not logged to the slowlog.
    pub const SKIP_SLOWLOG: u32 = 1 << 11;

    /// (bit, name) pairs in Redis's output order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Which handler runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Cmd {
    // connection
    Ping,
    Echo,
    Quit,
    Hello,
    Auth,
    Select,
    Reset,
    Client,
    // strings
    Get,
    Set,
    SetNx,
    SetEx,
    PSetEx,
    GetSet,
    GetDel,
    GetEx,
    MGet,
    MSet,
    MSetNx,
    Append,
    StrLen,
    GetRange,
    SetRange,
    Incr,
    Decr,
    IncrBy,
    DecrBy,
    IncrByFloat,
    Lcs,
    // keyspace
    Del,
    Unlink,
    Exists,
    Touch,
    Type,
    Expire,
    PExpire,
    ExpireAt,
    PExpireAt,
    Ttl,
    PTtl,
    ExpireTime,
    PExpireTime,
    Persist,
    Keys,
    Scan,
    RandomKey,
    Rename,
    RenameNx,
    Copy,
    Move,
    DbSize,
    FlushDb,
    FlushAll,
    SwapDb,
    // server
    Info,
    Time,
    Config,
    Command,
    Shutdown,
    Save,
    BgSave,
    BgRewriteAof,
    LastSave,
    // transactions
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    // scripting
    Eval,
    EvalRo,
    EvalSha,
    EvalShaRo,
    FCall,
    FCallRo,
    Script,
    Function,
}

/// A subcommand of a container command (CLIENT, CONFIG, COMMAND).
#[derive(Debug)]
pub struct SubSpec {
    /// Lowercase subcommand name.
    pub name: &'static str,
    /// Arity counting the container and subcommand names.
    pub arity: i32,
    /// Flag bits.
    pub flags: u32,
    /// One-line summary (COMMAND DOCS).
    pub summary: &'static str,
}

/// One command's metadata.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    /// Handler.
    pub id: Cmd,
    /// Redis arity: N = exactly N args (with the name), -N = at least N.
    pub arity: i32,
    /// Flag bits ([`flag`]).
    pub flags: u32,
    /// First key position (0 = none).
    pub first_key: i32,
    /// Last key position (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Documentation group (`string`, `generic`, `connection`, `server`, `transactions`).
    pub group: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Subcommands, for container commands.
    pub subcommands: &'static [SubSpec],
}

impl CommandSpec {
    /// Does `argc` satisfy the arity?
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_ok(self.arity, argc)
    }

    /// Has flag bit(s)?
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Key argument positions for `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            (argc as i32 + self.last_key).max(0) as usize
        } else {
            (self.last_key as usize).min(argc.saturating_sub(1))
        };
        let step = self.step.max(1) as usize;
        let none = self.first_key == 0;
        (first..=last).step_by(step).filter(move |_| !none)
    }
}

/// Does `argc` satisfy `arity`?
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= (-arity) as usize
    }
}

use flag::*;

#[allow(clippy::too_many_arguments)]
const fn c(
    name: &'static str,
    id: Cmd,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        id,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        since,
        summary,
        subcommands: &[],
    }
}

const fn sub(name: &'static str, arity: i32, flags: u32, summary: &'static str) -> SubSpec {
    SubSpec {
        name,
        arity,
        flags,
        summary,
    }
}

const NOKEY: (i32, i32, i32) = (0, 0, 0);
const K1: (i32, i32, i32) = (1, 1, 1);
const KALL: (i32, i32, i32) = (1, -1, 1);
const K12: (i32, i32, i32) = (1, 2, 1);
const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY;
const TX: u32 = NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY;

/// CLIENT subcommands.
pub static CLIENT_SUBS: &[SubSpec] = &[
    sub(
        "id",
        2,
        NOSCRIPT | LOADING | STALE,
        "Returns the client ID for the current connection",
    ),
    sub(
        "setname",
        3,
        NOSCRIPT | LOADING | STALE,
        "Set the current connection name",
    ),
    sub(
        "getname",
        2,
        NOSCRIPT | LOADING | STALE,
        "Get the current connection name",
    ),
    sub(
        "list",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Get the list of client connections",
    ),
    sub(
        "info",
        2,
        NOSCRIPT | LOADING | STALE,
        "Returns information about the current client connection.",
    ),
    sub(
        "kill",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Kill the connection of a client",
    ),
    sub(
        "help",
        2,
        LOADING | STALE,
        "Show helpful text about the different subcommands",
    ),
];

/// CONFIG subcommands.
pub static CONFIG_SUBS: &[SubSpec] = &[
    sub(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Get the values of configuration parameters",
    ),
    sub(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Set configuration parameters to the given values",
    ),
    sub(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Reset the stats returned by INFO",
    ),
    sub(
        "help",
        2,
        LOADING | STALE,
        "Show helpful text about the different subcommands",
    ),
];

/// COMMAND subcommands.
pub static COMMAND_SUBS: &[SubSpec] = &[
    sub(
        "count",
        2,
        LOADING | STALE,
        "Get total number of Redis commands",
    ),
    sub(
        "info",
        -2,
        LOADING | STALE,
        "Get array of specific Redis command details, or all when no argument is given.",
    ),
    sub(
        "docs",
        -2,
        LOADING | STALE,
        "Get array of specific Redis command documentation",
    ),
    sub(
        "list",
        -2,
        LOADING | STALE,
        "Get an array of Redis command names",
    ),
    sub(
        "getkeys",
        -3,
        LOADING | STALE,
        "Extract keys given a full Redis command",
    ),
    sub(
        "help",
        2,
        LOADING | STALE,
        "Show helpful text about the different subcommands",
    ),
];

/// SCRIPT subcommands.
pub static SCRIPT_SUBS: &[SubSpec] = &[
    sub(
        "exists",
        -3,
        NOSCRIPT,
        "Check existence of scripts in the script cache.",
    ),
    sub(
        "flush",
        -2,
        NOSCRIPT,
        "Remove all the scripts from the script cache.",
    ),
    sub(
        "help",
        2,
        LOADING | STALE,
        "Show helpful text about the different subcommands",
    ),
    sub(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        "Kill the script currently in execution.",
    ),
    sub(
        "load",
        3,
        NOSCRIPT | STALE,
        "Load the specified Lua script into the script cache.",
    ),
];

/// FUNCTION subcommands.
pub static FUNCTION_SUBS: &[SubSpec] = &[
    sub("delete", 3, NOSCRIPT | WRITE, "Delete a function by name"),
    sub(
        "dump",
        2,
        NOSCRIPT,
        "Dump all functions into a serialized binary payload",
    ),
    sub("flush", -2, NOSCRIPT | WRITE, "Deleting all functions"),
    sub(
        "help",
        2,
        LOADING | STALE,
        "Show helpful text about the different subcommands",
    ),
    sub(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        "Kill the function currently in execution.",
    ),
    sub(
        "list",
        -2,
        NOSCRIPT,
        "List information about all the functions",
    ),
    sub(
        "load",
        -3,
        NOSCRIPT | WRITE | DENYOOM,
        "Create a function with the given arguments (name, code, description)",
    ),
    sub(
        "restore",
        -3,
        NOSCRIPT | WRITE | DENYOOM,
        "Restore all the functions on the given payload",
    ),
    sub(
        "stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        "Return information about the function currently running (name, description, duration)",
    ),
];

const SCRIPTING: u32 = NOSCRIPT | STALE | NO_MULTI;

/// Every command kvd serves.
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    c("ping", Cmd::Ping, -1, FAST, NOKEY, "connection", "1.0.0", "Ping the server"),
    c("echo", Cmd::Echo, 2, FAST, NOKEY, "connection", "1.0.0", "Echo the given string"),
    c("quit", Cmd::Quit, -1, CONN, NOKEY, "connection", "1.0.0", "Close the connection"),
    c("hello", Cmd::Hello, -1, CONN, NOKEY, "connection", "6.0.0", "Handshake with Redis"),
    c("auth", Cmd::Auth, -2, CONN, NOKEY, "connection", "1.0.0", "Authenticate to the server"),
    c("select", Cmd::Select, 2, LOADING | STALE | FAST, NOKEY, "connection", "1.0.0", "Change the selected database for the current connection"),
    c("reset", Cmd::Reset, 1, CONN, NOKEY, "connection", "6.2.0", "Reset the connection"),
    CommandSpec {
        subcommands: CLIENT_SUBS,
        ..c("client", Cmd::Client, -2, 0, NOKEY, "connection", "2.4.0", "A container for client connection commands")
    },
    // strings
    c("get", Cmd::Get, 2, READONLY | FAST, K1, "string", "1.0.0", "Get the value of a key"),
    c("set", Cmd::Set, -3, WRITE | DENYOOM, K1, "string", "1.0.0", "Set the string value of a key"),
    c("setnx", Cmd::SetNx, 3, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Set the value of a key, only if the key does not exist"),
    c("setex", Cmd::SetEx, 4, WRITE | DENYOOM, K1, "string", "2.0.0", "Set the value and expiration of a key"),
    c("psetex", Cmd::PSetEx, 4, WRITE | DENYOOM, K1, "string", "2.6.0", "Set the value and expiration in milliseconds of a key"),
    c("getset", Cmd::GetSet, 3, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Set the string value of a key and return its old value"),
    c("getdel", Cmd::GetDel, 2, WRITE | FAST, K1, "string", "6.2.0", "Get the value of a key and delete the key"),
    c("getex", Cmd::GetEx, -2, WRITE | FAST, K1, "string", "6.2.0", "Get the value of a key and optionally set its expiration"),
    c("mget", Cmd::MGet, -2, READONLY | FAST, KALL, "string", "1.0.0", "Get the values of all the given keys"),
    c("mset", Cmd::MSet, -3, WRITE | DENYOOM, (1, -1, 2), "string", "1.0.1", "Set multiple keys to multiple values"),
    c("msetnx", Cmd::MSetNx, -3, WRITE | DENYOOM, (1, -1, 2), "string", "1.0.1", "Set multiple keys to multiple values, only if none of the keys exist"),
    c("append", Cmd::Append, 3, WRITE | DENYOOM | FAST, K1, "string", "2.0.0", "Append a value to a key"),
    c("strlen", Cmd::StrLen, 2, READONLY | FAST, K1, "string", "2.2.0", "Get the length of the value stored in a key"),
    c("getrange", Cmd::GetRange, 4, READONLY, K1, "string", "2.4.0", "Get a substring of the string stored at a key"),
    c("setrange", Cmd::SetRange, 4, WRITE | DENYOOM, K1, "string", "2.2.0", "Overwrite part of a string at key starting at the specified offset"),
    c("incr", Cmd::Incr, 2, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Increment the integer value of a key by one"),
    c("decr", Cmd::Decr, 2, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Decrement the integer value of a key by one"),
    c("incrby", Cmd::IncrBy, 3, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Increment the integer value of a key by the given amount"),
    c("decrby", Cmd::DecrBy, 3, WRITE | DENYOOM | FAST, K1, "string", "1.0.0", "Decrement the integer value of a key by the given number"),
    c("incrbyfloat", Cmd::IncrByFloat, 3, WRITE | DENYOOM | FAST, K1, "string", "2.6.0", "Increment the float value of a key by the given amount"),
    c("lcs", Cmd::Lcs, -3, READONLY, K12, "string", "7.0.0", "Find longest common substring"),
    // keyspace
    c("del", Cmd::Del, -2, WRITE, KALL, "generic", "1.0.0", "Delete a key"),
    c("unlink", Cmd::Unlink, -2, WRITE | FAST, KALL, "generic", "4.0.0", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking."),
    c("exists", Cmd::Exists, -2, READONLY | FAST, KALL, "generic", "1.0.0", "Determine if a key exists"),
    c("touch", Cmd::Touch, -2, READONLY | FAST, KALL, "generic", "3.2.1", "Alters the last access time of a key(s). Returns the number of existing keys specified."),
    c("type", Cmd::Type, 2, READONLY | FAST, K1, "generic", "1.0.0", "Determine the type stored at key"),
    c("expire", Cmd::Expire, -3, WRITE | FAST, K1, "generic", "1.0.0", "Set a key's time to live in seconds"),
    c("pexpire", Cmd::PExpire, -3, WRITE | FAST, K1, "generic", "2.6.0", "Set a key's time to live in milliseconds"),
    c("expireat", Cmd::ExpireAt, -3, WRITE | FAST, K1, "generic", "1.2.0", "Set the expiration for a key as a UNIX timestamp"),
    c("pexpireat", Cmd::PExpireAt, -3, WRITE | FAST, K1, "generic", "2.6.0", "Set the expiration for a key as a UNIX timestamp specified in milliseconds"),
    c("ttl", Cmd::Ttl, 2, READONLY | FAST, K1, "generic", "1.0.0", "Get the time to live for a key in seconds"),
    c("pttl", Cmd::PTtl, 2, READONLY | FAST, K1, "generic", "2.6.0", "Get the time to live for a key in milliseconds"),
    c("expiretime", Cmd::ExpireTime, 2, READONLY | FAST, K1, "generic", "7.0.0", "Get the expiration Unix timestamp for a key"),
    c("pexpiretime", Cmd::PExpireTime, 2, READONLY | FAST, K1, "generic", "7.0.0", "Get the expiration Unix timestamp for a key in milliseconds"),
    c("persist", Cmd::Persist, 2, WRITE | FAST, K1, "generic", "2.2.0", "Remove the expiration from a key"),
    c("keys", Cmd::Keys, 2, READONLY, NOKEY, "generic", "1.0.0", "Find all keys matching the given pattern"),
    c("scan", Cmd::Scan, -2, READONLY, NOKEY, "generic", "2.8.0", "Incrementally iterate the keys space"),
    c("randomkey", Cmd::RandomKey, 1, READONLY, NOKEY, "generic", "1.0.0", "Return a random key from the keyspace"),
    c("rename", Cmd::Rename, 3, WRITE, K12, "generic", "1.0.0", "Rename a key"),
    c("renamenx", Cmd::RenameNx, 3, WRITE | FAST, K12, "generic", "1.0.0", "Rename a key, only if the new key does not exist"),
    c("copy", Cmd::Copy, -3, WRITE | DENYOOM, K12, "generic", "6.2.0", "Copy a key"),
    c("move", Cmd::Move, 3, WRITE | FAST, K1, "generic", "1.0.0", "Move a key to another database"),
    c("dbsize", Cmd::DbSize, 1, READONLY | FAST, NOKEY, "server", "1.0.0", "Return the number of keys in the selected database"),
    c("flushdb", Cmd::FlushDb, -1, WRITE, NOKEY, "server", "1.0.0", "Remove all keys from the current database"),
    c("flushall", Cmd::FlushAll, -1, WRITE, NOKEY, "server", "1.0.0", "Remove all keys from all databases"),
    c("swapdb", Cmd::SwapDb, 3, WRITE | FAST, NOKEY, "server", "4.0.0", "Swaps two Redis databases"),
    // server
    c("info", Cmd::Info, -1, LOADING | STALE, NOKEY, "server", "1.0.0", "Get information and statistics about the server"),
    c("time", Cmd::Time, 1, LOADING | STALE | FAST, NOKEY, "server", "2.6.0", "Return the current server time"),
    CommandSpec {
        subcommands: CONFIG_SUBS,
        ..c("config", Cmd::Config, -2, 0, NOKEY, "server", "2.0.0", "A container for server configuration commands")
    },
    CommandSpec {
        subcommands: COMMAND_SUBS,
        ..c("command", Cmd::Command, -1, LOADING | STALE, NOKEY, "server", "2.8.13", "Get array of Redis command details")
    },
    c("shutdown", Cmd::Shutdown, -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, NOKEY, "server", "1.0.0", "Synchronously save the dataset to disk and then shut down the server"),
    c("save", Cmd::Save, 1, ADMIN | NOSCRIPT | NO_MULTI, NOKEY, "server", "1.0.0", "Synchronously save the dataset to disk"),
    c("bgrewriteaof", Cmd::BgRewriteAof, 1, ADMIN | NOSCRIPT, NOKEY, "server", "1.0.0", "Asynchronously rewrite the append-only file"),
    c("bgsave", Cmd::BgSave, -1, ADMIN | NOSCRIPT, NOKEY, "server", "1.0.0", "Asynchronously save the dataset to disk"),
    c("lastsave", Cmd::LastSave, 1, LOADING | STALE | FAST, NOKEY, "server", "1.0.0", "Get the UNIX time stamp of the last successful save to disk"),
    // transactions
    c("multi", Cmd::Multi, 1, TX, NOKEY, "transactions", "1.2.0", "Mark the start of a transaction block"),
    c("exec", Cmd::Exec, 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, NOKEY, "transactions", "1.2.0", "Execute all commands issued after MULTI"),
    c("discard", Cmd::Discard, 1, TX, NOKEY, "transactions", "2.0.0", "Discard all commands issued after MULTI"),
    c("watch", Cmd::Watch, -2, TX, KALL, "transactions", "2.2.0", "Watch the given keys to determine execution of the MULTI/EXEC block"),
    c("unwatch", Cmd::Unwatch, 1, TX, NOKEY, "transactions", "2.2.0", "Forget about all watched keys"),
    // scripting (kvd: not inside MULTI, see the README)
    c("eval", Cmd::Eval, -3, SCRIPTING, NOKEY, "scripting", "2.6.0", "Execute a Lua script server side"),
    c("eval_ro", Cmd::EvalRo, -3, SCRIPTING | READONLY, NOKEY, "scripting", "7.0.0", "Execute a read-only Lua script server side"),
    c("evalsha", Cmd::EvalSha, -3, SCRIPTING, NOKEY, "scripting", "2.6.0", "Execute a Lua script server side"),
    c("evalsha_ro", Cmd::EvalShaRo, -3, SCRIPTING | READONLY, NOKEY, "scripting", "7.0.0", "Execute a read-only Lua script server side"),
    c("fcall", Cmd::FCall, -3, SCRIPTING, NOKEY, "scripting", "7.0.0", "Invoke a function"),
    c("fcall_ro", Cmd::FCallRo, -3, SCRIPTING | READONLY, NOKEY, "scripting", "7.0.0", "Invoke a read-only function"),
    CommandSpec {
        subcommands: SCRIPT_SUBS,
        ..c("script", Cmd::Script, -2, 0, NOKEY, "scripting", "2.6.0", "A container for Lua scripts management commands")
    },
    CommandSpec {
        subcommands: FUNCTION_SUBS,
        ..c("function", Cmd::Function, -2, 0, NOKEY, "scripting", "7.0.0", "A container for function commands")
    },
];

/// Slots of the command index (a power of two, several times the number
/// of commands so probes stay short).
const INDEX_SLOTS: usize = 1024;

/// Case-folding hash of a command name: ASCII letters hash as lowercase,
/// so a lookup needs no lowercased copy.
fn name_hash(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h = (h ^ u32::from(b | 0x20)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 15)) as usize & (INDEX_SLOTS - 1)
}

/// Open-addressing index of [`COMMANDS`] by [`name_hash`] (linear probing).
fn index() -> &'static [Option<&'static CommandSpec>; INDEX_SLOTS] {
    static INDEX: OnceLock<[Option<&'static CommandSpec>; INDEX_SLOTS]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut t = [None; INDEX_SLOTS];
        for c in COMMANDS {
            let mut i = name_hash(c.name.as_bytes());
            while t[i].is_some() {
                i = (i + 1) & (INDEX_SLOTS - 1);
            }
            t[i] = Some(c);
        }
        t
    })
}

/// Looks a command up by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let t = index();
    let mut i = name_hash(name);
    loop {
        let c = t[i]?;
        if c.name.len() == name.len() && c.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(c);
        }
        i = (i + 1) & (INDEX_SLOTS - 1);
    }
}

/// Looks a subcommand up (case-insensitive).
pub fn lookup_sub(spec: &CommandSpec, name: &[u8]) -> Option<&'static SubSpec> {
    let subs: &'static [SubSpec] = match spec.id {
        Cmd::Client => CLIENT_SUBS,
        Cmd::Config => CONFIG_SUBS,
        Cmd::Command => COMMAND_SUBS,
        Cmd::Script => SCRIPT_SUBS,
        Cmd::Function => FUNCTION_SUBS,
        _ => return None,
    };
    subs.iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// ACL categories of a command, as `COMMAND INFO` lists them.
pub fn acl_categories(name: &str, group: &str, flags: u32) -> Vec<&'static str> {
    let mut v = Vec::new();
    if name == "keys" || name == "flushdb" || name == "flushall" || name == "shutdown" {
        v.push("@dangerous");
    }
    if flags & WRITE != 0 {
        v.push("@write");
    }
    if flags & READONLY != 0 {
        v.push("@read");
    }
    match group {
        "string" => v.push("@string"),
        "generic" => v.push("@keyspace"),
        "connection" => v.push("@connection"),
        "transactions" => v.push("@transaction"),
        "scripting" => v.push("@scripting"),
        _ => {}
    }
    if flags & ADMIN != 0 {
        v.push("@admin");
        v.push("@dangerous");
    }
    if flags & FAST != 0 {
        v.push("@fast");
    } else {
        v.push("@slow");
    }
    if group == "server"
        && !v.contains(&"@keyspace")
        && (name == "dbsize" || name.starts_with("flush") || name == "swapdb")
    {
        v.insert(0, "@keyspace");
    }
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").unwrap().id, Cmd::Get);
        assert!(lookup(b"nosuchcommandatallxx").is_none());
        assert_eq!(
            lookup_sub(lookup(b"client").unwrap(), b"SETNAME")
                .unwrap()
                .arity,
            3
        );
    }

    #[test]
    fn every_command_is_found_in_any_case() {
        assert!(COMMANDS.len() * 2 < INDEX_SLOTS);
        for c in COMMANDS {
            let upper = c.name.to_ascii_uppercase();
            let mixed: String = c
                .name
                .chars()
                .enumerate()
                .map(|(i, ch)| {
                    if i % 2 == 0 {
                        ch.to_ascii_uppercase()
                    } else {
                        ch
                    }
                })
                .collect();
            for n in [c.name, upper.as_str(), mixed.as_str()] {
                assert!(std::ptr::eq(lookup(n.as_bytes()).unwrap(), c), "{n}");
            }
            assert!(lookup(format!("{}x", c.name).as_bytes()).is_none());
            assert!(lookup(&c.name.as_bytes()[..c.name.len() - 1])
                .is_none_or(|o| o.name.len() == c.name.len() - 1));
        }
        assert!(lookup(b"").is_none());
        assert!(lookup(b"g\xc5t").is_none());
    }

    #[test]
    fn names_unique() {
        let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn keys() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
        let get = lookup(b"get").unwrap();
        assert_eq!(get.key_positions(2).collect::<Vec<_>>(), vec![1]);
        let ping = lookup(b"ping").unwrap();
        assert_eq!(ping.key_positions(1).count(), 0);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4).collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
