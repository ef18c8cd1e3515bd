//! COMMAND introspection driven by the command table, TIME and INFO.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn command_introspection() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    let Reply::Int(n) = c.call(&["COMMAND", "COUNT"]) else {
        panic!()
    };
    assert!(n >= 60, "{n}");
    assert_eq!(c.call(&["COMMAND"]).items().len() as i64, n);
    assert_eq!(c.call(&["COMMAND", "LIST"]).items().len() as i64, n);
    let get = c.call(&["COMMAND", "INFO", "get", "nosuch"]).items();
    assert_eq!(get[1], Reply::Array(None));
    let get = get[0].items();
    assert_eq!(get[0], bulk("get"));
    assert_eq!(get[1], int(2));
    assert_eq!(
        get[2].items(),
        vec![
            Reply::Status("readonly".into()),
            Reply::Status("fast".into())
        ]
    );
    assert_eq!(
        (get[3].clone(), get[4].clone(), get[5].clone()),
        (int(1), int(1), int(1))
    );
    let mset = c.call(&["COMMAND", "INFO", "MSET"]).items()[0].items();
    assert_eq!(
        (
            mset[1].clone(),
            mset[3].clone(),
            mset[4].clone(),
            mset[5].clone()
        ),
        (int(-3), int(1), int(-1), int(2))
    );
    assert_eq!(
        c.call(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
        bulks(&["a", "b"])
    );
    assert_eq!(
        c.call(&["COMMAND", "GETKEYS", "PING"]),
        err("ERR The command has no key arguments")
    );
    assert_eq!(
        c.call(&["COMMAND", "GETKEYS", "NOPE"]),
        err("ERR Invalid command specified")
    );
    assert_eq!(
        c.call(&["COMMAND", "GETKEYS", "GET"]),
        err("ERR Invalid number of arguments specified for command")
    );
    let list = c
        .call(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "get*"])
        .sorted_texts();
    assert_eq!(list, vec!["get", "getdel", "getex", "getrange", "getset"]);
    let docs = c.call(&["COMMAND", "DOCS", "set"]).items();
    assert_eq!(docs[0], bulk("set"));
    let fields = docs[1].items();
    assert!(fields.contains(&bulk("summary")) && fields.contains(&bulk("string")));
    assert_eq!(
        c.call(&["COMMAND", "FOO"]),
        err("ERR unknown subcommand 'FOO'. Try COMMAND HELP.")
    );
    // SAVE-family commands (checkpoints)
    let bgsave = c.call(&["COMMAND", "INFO", "bgsave"]).items()[0].items();
    assert_eq!(bgsave[0], bulk("bgsave"));
    assert_eq!(bgsave[1], int(-1));
    assert_eq!(
        c.call(&["COMMAND", "INFO", "nosuchcommand"]),
        Reply::Array(Some(vec![Reply::Array(None)]))
    );
}

#[test]
fn time_and_info() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    let t = c.call(&["TIME"]).items();
    let secs: u64 = t[0].text().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) < 60);
    assert!(t[1].text().parse::<u32>().unwrap() < 1_000_000);
    let info = c.call(&["INFO"]).text();
    for sec in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(info.contains(sec), "INFO lacks {sec}");
    }
    assert!(info.contains(&format!("tcp_port:{}", s.port())));
    let only = c.call(&["INFO", "clients", "MEMORY"]).text();
    assert!(
        only.starts_with("# Clients\r\nconnected_clients:"),
        "{only}"
    );
    assert!(only.contains("# Memory") && !only.contains("# Server"));
    c.call(&["GET", "nokey"]);
    c.call(&["SET", "k", "v"]);
    c.call(&["GET", "k"]);
    let stats = c.call(&["INFO", "stats"]).text();
    assert!(stats.contains("keyspace_hits:1\r\n"), "{stats}");
    assert!(stats.contains("keyspace_misses:1\r\n"), "{stats}");
}
