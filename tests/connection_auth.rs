//! Connection commands, HELLO/RESP3, AUTH and requirepass.
mod util;

use kvd_suite::KvdServer;
use util::*;

#[test]
fn ping_echo_select_quit_unknown() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(c.call(&["PING"]), Reply::Status("PONG".into()));
    assert_eq!(c.call(&["ping", "hi"]), bulk("hi"));
    assert_eq!(
        c.call(&["PING", "a", "b"]),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(c.call(&["ECHO", "x y"]), bulk("x y"));
    assert_eq!(
        c.call(&["FOO", "a", "b"]),
        err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        c.call(&["FOO"]),
        err("ERR unknown command 'FOO', with args beginning with: ")
    );
    // inline commands work too
    c.send_bytes(b"SET inl \"a b\"\r\nGET inl\r\n");
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), bulk("a b"));
    assert_eq!(c.call(&["QUIT"]), ok());
    assert!(c.is_closed());
}

#[test]
fn hello_switches_protocol() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    let r = c.call(&["HELLO"]);
    let items = r.items();
    assert_eq!(items[0], bulk("server"));
    assert_eq!(items[4], bulk("proto"));
    assert_eq!(items[5], int(2));
    let r = c.call(&["HELLO", "3", "SETNAME", "me"]);
    let Reply::Map(m) = r else { panic!("{r:?}") };
    assert!(m.contains(&(bulk("proto"), int(3))));
    assert!(m.contains(&(bulk("version"), bulk("7.0.0"))));
    assert_eq!(c.call(&["GET", "nothing"]), Reply::Null);
    assert_eq!(c.call(&["CLIENT", "GETNAME"]), bulk("me"));
    assert_eq!(
        c.call(&["CONFIG", "GET", "port"]),
        Reply::Map(vec![(bulk("port"), bulk(&s.port().to_string()))])
    );
    assert_eq!(
        c.call(&["HELLO", "4"]),
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        c.call(&["HELLO", "x"]),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["HELLO", "3", "FOO"]),
        err("ERR Syntax error in HELLO option 'FOO'")
    );
    assert_eq!(c.call(&["RESET"]), Reply::Status("RESET".into()));
    assert_eq!(c.call(&["GET", "nothing"]), nil());
}

#[test]
fn client_subcommands() {
    let s = KvdServer::start(&[]);
    let mut a = Raw::new(&s);
    let mut b = Raw::new(&s);
    let Reply::Int(id_b) = b.call(&["CLIENT", "ID"]) else {
        panic!()
    };
    assert_eq!(a.call(&["CLIENT", "GETNAME"]), nil());
    assert_eq!(a.call(&["CLIENT", "SETNAME", "alpha"]), ok());
    assert_eq!(a.call(&["CLIENT", "GETNAME"]), bulk("alpha"));
    assert_eq!(
        a.call(&["CLIENT", "SETNAME", "a b"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(
        a.call(&["CLIENT", "SETNAME"]),
        err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        a.call(&["CLIENT", "FOO"]),
        err("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")
    );
    let list = a.call(&["CLIENT", "LIST"]).text();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("name=alpha"));
    assert!(list.contains(&format!("id={id_b} ")));
    let info = a.call(&["CLIENT", "INFO"]).text();
    assert!(
        info.starts_with("id=") && info.contains("name=alpha"),
        "{info}"
    );
    assert_eq!(a.call(&["CLIENT", "KILL", "ID", &id_b.to_string()]), int(1));
    assert!(b.is_closed());
    assert_eq!(
        a.call(&["CLIENT", "KILL", "1.2.3.4:5"]),
        err("ERR No such client")
    );
    assert_eq!(a.call(&["CLIENT", "KILL", "ID", "999999"]), int(0));
}

#[test]
fn requirepass_and_auth() {
    let s = KvdServer::start(&["--requirepass", "s3cret"]);
    let mut c = Raw::new(&s);
    assert_eq!(
        c.call(&["GET", "a"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(c.call(&["PING"]), err("NOAUTH Authentication required."));
    assert_eq!(
        c.call(&["AUTH", "wrong"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        c.call(&["AUTH", "bob", "s3cret"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.call(&["AUTH", "s3cret"]), ok());
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    let mut d = Raw::new(&s);
    assert_eq!(d.call(&["AUTH", "default", "s3cret"]), ok());
    assert_eq!(d.call(&["GET", "a"]), bulk("1"));
    // HELLO with AUTH
    let mut e = Raw::new(&s);
    assert!(matches!(
        e.call(&["HELLO", "3", "AUTH", "default", "s3cret"]),
        Reply::Map(_)
    ));
    assert_eq!(e.call(&["GET", "a"]), bulk("1"));
    let mut f = Raw::new(&s);
    assert_eq!(
        f.call(&["HELLO", "3", "AUTH", "default", "nope"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    // unauthenticated clients may not send big requests
    let mut g = Raw::new(&s);
    let big = "x".repeat(20000);
    g.send(&["AUTH", &big]);
    assert_eq!(
        g.read(),
        err("ERR Protocol error: unauthenticated bulk length")
    );
    assert!(g.is_closed());
    // redis-rs with a password in the URL
    let client = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", s.port())).unwrap();
    let mut con = client.get_connection().unwrap();
    let v: String = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(v, "1");
}

#[test]
fn auth_without_password_configured() {
    let s = KvdServer::start(&[]);
    let mut c = Raw::new(&s);
    assert_eq!(
        c.call(&["AUTH", "x"]),
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
}

#[test]
fn config_set_requirepass_applies_to_new_connections() {
    let s = KvdServer::start(&[]);
    let mut admin = Raw::new(&s);
    assert_eq!(admin.call(&["CONFIG", "SET", "requirepass", "pw"]), ok());
    // the existing connection stays authenticated, as in Redis
    assert_eq!(admin.call(&["PING"]), Reply::Status("PONG".into()));
    let mut c = Raw::new(&s);
    assert_eq!(
        c.call(&["GET", "x"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(c.call(&["AUTH", "pw"]), ok());
    assert_eq!(c.call(&["RESET"]), Reply::Status("RESET".into()));
    assert_eq!(
        c.call(&["GET", "x"]),
        err("NOAUTH Authentication required."),
        "RESET de-authenticates"
    );
    assert_eq!(admin.call(&["CONFIG", "SET", "requirepass", ""]), ok());
    let mut d = Raw::new(&s);
    assert_eq!(d.call(&["GET", "x"]), nil());
}
