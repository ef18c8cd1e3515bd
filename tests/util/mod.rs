//! A raw RESP client for exact-reply assertions (error texts, RESP3 types),
//! shared by the integration test files (`mod util;`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kvd_suite::KvdServer;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+...`
    Status(String),
    /// `-...`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$...` (None = null bulk `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*...` (None = null array `*-1`)
    Array(Option<Vec<Reply>>),
    /// RESP3 `_`
    Null,
    /// RESP3 `%`
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`
    Set(Vec<Reply>),
    /// RESP3 `,`
    Double(String),
    /// RESP3 `#`
    Bool(bool),
    /// RESP3 `=` (format, text)
    Verbatim(String, String),
}

/// `+OK`
pub fn ok() -> Reply {
    Reply::Status("OK".into())
}
/// `-<text>`
pub fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}
/// `$<s>`
pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}
/// `$-1`
pub fn nil() -> Reply {
    Reply::Bulk(None)
}
/// `:n`
pub fn int(n: i64) -> Reply {
    Reply::Int(n)
}
/// Array of bulks.
pub fn bulks(v: &[&str]) -> Reply {
    Reply::Array(Some(v.iter().map(|s| bulk(s)).collect()))
}

impl Reply {
    /// Bulk / status / verbatim text.
    pub fn text(&self) -> String {
        match self {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Status(s) | Reply::Verbatim(_, s) | Reply::Error(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        }
    }
    /// Array items.
    pub fn items(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(v)) | Reply::Set(v) => v.clone(),
            other => panic!("not an array: {other:?}"),
        }
    }
    /// Sorted texts of an array of bulks.
    pub fn sorted_texts(&self) -> Vec<String> {
        let mut v: Vec<String> = self.items().iter().map(|r| r.text()).collect();
        v.sort();
        v
    }
}

/// A raw connection.
#[derive(Debug)]
pub struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    /// Connects to `server`.
    pub fn new(server: &KvdServer) -> Raw {
        let s = server.raw();
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Raw {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    /// Encodes and sends one command (no read).
    pub fn send(&mut self, args: &[&str]) {
        let buf = encode(args);
        self.w.write_all(&buf).expect("write");
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, b: &[u8]) {
        self.w.write_all(b).expect("write");
    }

    /// Sends a command and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read()
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Reply {
        read_reply(&mut self.r).expect("read reply")
    }

    /// Reads one reply, or None if the peer closed (panics on a timeout).
    pub fn try_read(&mut self) -> Option<Reply> {
        read_reply(&mut self.r)
    }

    /// True if the server closed the connection (EOF) within the timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0)) || matches!(self.r.read(&mut b), Ok(0))
    }
}

/// RESP multibulk encoding of `args`.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf
}

fn line(r: &mut impl BufRead) -> Option<String> {
    let mut l = String::new();
    let n = match r.read_line(&mut l) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("timed out waiting for a reply")
        }
        Err(_) => return None, // reset by the peer: closed
    };
    if n == 0 {
        return None;
    }
    Some(l.trim_end_matches("\r\n").to_string())
}

/// Reads one RESP2/RESP3 reply.
pub fn read_reply(r: &mut impl BufRead) -> Option<Reply> {
    let l = line(r)?;
    let (t, rest) = l.split_at(1);
    Some(match t {
        "+" => Reply::Status(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(rest.parse().expect("int")),
        "_" => Reply::Null,
        "," => Reply::Double(rest.into()),
        "#" => Reply::Bool(rest == "t"),
        "$" | "=" => {
            let n: i64 = rest.parse().expect("len");
            if n < 0 {
                return Some(Reply::Bulk(None));
            }
            let mut b = vec![0u8; n as usize + 2];
            r.read_exact(&mut b).ok()?;
            b.truncate(n as usize);
            if t == "=" {
                let s = String::from_utf8_lossy(&b).into_owned();
                Reply::Verbatim(s[..3].to_string(), s[4..].to_string())
            } else {
                Reply::Bulk(Some(b))
            }
        }
        "*" | "~" | ">" => {
            let n: i64 = rest.parse().expect("len");
            if n < 0 {
                return Some(Reply::Array(None));
            }
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(read_reply(r)?);
            }
            if t == "~" {
                Reply::Set(v)
            } else {
                Reply::Array(Some(v))
            }
        }
        "%" => {
            let n: i64 = rest.parse().expect("len");
            let mut v = Vec::new();
            for _ in 0..n {
                let k = read_reply(r)?;
                let val = read_reply(r)?;
                v.push((k, val));
            }
            Reply::Map(v)
        }
        other => panic!("unexpected reply type {other:?} in {l:?}"),
    })
}

/// Polls `f` until it returns true, for at most `secs` seconds.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Raw {
    /// A second handle on the socket, for writing.
    pub fn writer(&self) -> TcpStream {
        self.w.try_clone().expect("clone")
    }
}
