//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aof::{AofConfig, AofError, AofPosition, AofReader, Entry, FsyncPolicy, Record};

pub fn cfg(dir: &Path, fsync: FsyncPolicy) -> AofConfig {
    AofConfig::new(dir.join("appendonlydir")).fsync(fsync)
}

pub fn incr_path(cfg: &AofConfig, seq: u64) -> PathBuf {
    cfg.dir.join(format!("appendonly.aof.{seq}.incr.aof"))
}

pub fn load(cfg: &AofConfig, after: Option<AofPosition>) -> Result<Vec<Record>, AofError> {
    AofReader::open(cfg, after)?.collect()
}

/// Every command as (db, args), MULTI blocks flattened.
pub fn flat(records: &[Record]) -> Vec<(u32, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for r in records {
        let cmds = match &r.entry {
            Entry::Command(c) => std::slice::from_ref(c),
            Entry::Multi(cs) => cs.as_slice(),
        };
        for c in cmds {
            out.push((c.db, c.args.iter().map(|a| a.to_vec()).collect()));
        }
    }
    out
}

pub fn args(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// Captures tracing output on the current thread while `f` runs.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct W(Arc<Mutex<Vec<u8>>>);
    impl io::Write for W {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let w = W(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    (out, logs)
}

/// A minimal executor: polls `f` on this thread, parking between wake-ups
/// (tickets' `wait_async` without a runtime).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
