//! What submitters hand to the writer: pre-encoded RESP, and the ticket that
//! tells them when it is written (or synced).

use bytes::BytesMut;
use resp_codec::encode;

use crate::AofError;

/// Commands to append together, encoded as RESP on the submitter's thread.
///
/// A batch is written contiguously (never interleaved with other
/// submitters' commands) and acknowledged as one. Every command carries its
/// database; the writer emits `SELECT` only where the database changes
/// between consecutive commands in the file, like Redis.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) buf: BytesMut,
    /// Database of the first command (the writer selects it if needed).
    pub(crate) first_db: Option<u32>,
    /// Database after the last command.
    pub(crate) last_db: u32,
    pub(crate) commands: u64,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one command (`args[0]` is the command name).
    ///
    /// # Panics
    /// If `args` is empty: a RESP command has at least one element.
    pub fn command<A: AsRef<[u8]>>(&mut self, db: u32, args: &[A]) -> &mut Self {
        assert!(!args.is_empty(), "aof: a command needs at least its name");
        debug_assert!(
            ![&b"SELECT"[..], b"MULTI", b"EXEC"]
                .iter()
                .any(|n| args[0].as_ref().eq_ignore_ascii_case(n)),
            "aof: pass the database with each command and use Batch::multi; \
             SELECT/MULTI/EXEC are written by the AOF itself"
        );
        self.select(db);
        encode_args(&mut self.buf, args);
        self.commands += 1;
        self
    }

    /// Adds a transaction's or script's effects as one `MULTI … EXEC` block.
    /// Commands may be in different databases (`SELECT` goes inside the
    /// block, as in Redis). An empty list adds nothing.
    ///
    /// # Panics
    /// If a command is empty.
    pub fn multi<C: AsRef<[A]>, A: AsRef<[u8]>>(&mut self, cmds: &[(u32, C)]) -> &mut Self {
        let Some((first_db, _)) = cmds.first() else {
            return self;
        };
        self.select(*first_db);
        encode_args(&mut self.buf, &[b"MULTI"]);
        for (db, args) in cmds {
            let args = args.as_ref();
            assert!(!args.is_empty(), "aof: a command needs at least its name");
            self.select(*db);
            encode_args(&mut self.buf, args);
        }
        encode_args(&mut self.buf, &[b"EXEC"]);
        self.commands += cmds.len() as u64;
        self
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// Commands added (not counting `MULTI`, `EXEC` and `SELECT`).
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Encoded size in bytes (without a leading `SELECT` the writer may add).
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    fn select(&mut self, db: u32) {
        match self.first_db {
            None => self.first_db = Some(db),
            Some(_) if self.last_db != db => encode_select(&mut self.buf, db),
            Some(_) => {}
        }
        self.last_db = db;
    }
}

pub(crate) fn encode_args<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    encode::array_len(out, args.len());
    for a in args {
        encode::bulk(out, a.as_ref());
    }
}

pub(crate) fn encode_select(out: &mut BytesMut, db: u32) {
    let digits = db.to_string();
    encode_args(out, &[&b"SELECT"[..], digits.as_bytes()]);
}

/// The acknowledgement of a submission: resolves once the writer has written
/// (and, under `always`, fsynced) it, or with the error that prevented it.
///
/// Await it from async code ([`Ticket::wait_async`], which never blocks the
/// runtime thread) or block on it from a plain thread ([`Ticket::wait`]).
/// Dropping it does not cancel the write.
#[derive(Debug)]
#[must_use = "a ticket tells when the entry is durable; dropping it ignores write errors"]
pub struct Ticket<T = ()> {
    rx: flume::Receiver<Result<T, AofError>>,
}

impl<T> Ticket<T> {
    pub(crate) fn new(rx: flume::Receiver<Result<T, AofError>>) -> Self {
        Self { rx }
    }

    pub(crate) fn ready(result: Result<T, AofError>) -> Self {
        let (tx, rx) = flume::bounded(1);
        let _ = tx.send(result);
        Self { rx }
    }

    /// Blocks the calling thread until resolved. Not for async tasks.
    pub fn wait(self) -> Result<T, AofError> {
        self.rx.recv().unwrap_or(Err(AofError::Closed))
    }

    /// Waits without blocking the thread.
    pub async fn wait_async(self) -> Result<T, AofError> {
        self.rx.recv_async().await.unwrap_or(Err(AofError::Closed))
    }

    /// The result if already resolved, else the ticket back.
    pub fn try_wait(self) -> Result<Result<T, AofError>, Self> {
        match self.rx.try_recv() {
            Ok(r) => Ok(r),
            Err(flume::TryRecvError::Empty) => Err(self),
            Err(flume::TryRecvError::Disconnected) => Ok(Err(AofError::Closed)),
        }
    }
}
