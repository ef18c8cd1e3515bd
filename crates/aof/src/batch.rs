//! What submitters hand to the writer: pre-encoded RESP, and the ticket that
//! tells them when it is written (or synced).

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use resp_codec::encode;

use crate::writer::Shared;
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
    /// A `MULTI … EXEC` block is open ([`Batch::begin_multi`]).
    multi: Multi,
}

/// State of an open `MULTI … EXEC` block.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Multi {
    #[default]
    Off,
    /// Begun, `MULTI` not written yet (an empty block writes nothing).
    Open,
    /// `MULTI` written at byte `at` of the buffer, when the batch held
    /// `before` commands.
    Started { at: usize, before: u64 },
}

/// `MULTI` as RESP.
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";

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
        if self.multi == Multi::Open {
            self.select(db);
            self.multi = Multi::Started {
                at: self.buf.len(),
                before: self.commands,
            };
            self.buf.extend_from_slice(MULTI);
        }
        self.select(db);
        encode_args(&mut self.buf, args);
        self.commands += 1;
        self
    }

    /// Opens a `MULTI … EXEC` block: the commands added until
    /// [`Batch::end_multi`] go inside it, encoded as they come (a script's
    /// or a transaction's effects). `MULTI` is written with the first of
    /// them, so a block without commands writes nothing. `SELECT`s go
    /// inside the block, as in Redis.
    ///
    /// # Panics
    /// If a block is already open.
    pub fn begin_multi(&mut self) -> &mut Self {
        assert_eq!(self.multi, Multi::Off, "aof: MULTI blocks do not nest");
        self.multi = Multi::Open;
        self
    }

    /// Closes the block opened by [`Batch::begin_multi`]: `EXEC` after two
    /// or more commands; a block of one command loses its `MULTI` (a single
    /// command is atomic; Redis 7 does not wrap it either). Does nothing if
    /// no block is open.
    pub fn end_multi(&mut self) -> &mut Self {
        if let Multi::Started { at, before } = self.multi {
            if self.commands - before == 1 {
                let len = self.buf.len();
                self.buf.copy_within(at + MULTI.len().., at);
                self.buf.truncate(len - MULTI.len());
            } else {
                encode_args(&mut self.buf, &[b"EXEC"]);
            }
        }
        self.multi = Multi::Off;
        self
    }

    /// Adds a transaction's or script's effects as one `MULTI … EXEC` block.
    /// Commands may be in different databases (`SELECT` goes inside the
    /// block, as in Redis). An empty list adds nothing, a list of one its
    /// bare command.
    ///
    /// # Panics
    /// If a command is empty.
    pub fn multi<C: AsRef<[A]>, A: AsRef<[u8]>>(&mut self, cmds: &[(u32, C)]) -> &mut Self {
        self.begin_multi();
        for (db, args) in cmds {
            self.command(*db, args.as_ref());
        }
        self.end_multi()
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.first_db = None;
        self.last_db = 0;
        self.commands = 0;
        self.multi = Multi::Off;
    }

    /// A `MULTI` block is open (begun and not ended).
    pub(crate) fn multi_open(&self) -> bool {
        self.multi != Multi::Off
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
#[must_use = "a ticket tells when the entry is durable; dropping it ignores write errors"]
pub struct Ticket<T = ()> {
    state: State<T>,
}

enum State<T> {
    Ready(Result<T, AofError>),
    /// A control request's reply.
    Chan(flume::Receiver<Result<T, AofError>>),
    /// A write: resolved once the stream is acknowledged up to `end`.
    At {
        shared: Arc<Shared>,
        end: u64,
        value: T,
    },
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Ready(r) => f.debug_tuple("Ticket::Ready").field(&r.is_ok()).finish(),
            State::Chan(_) => f.write_str("Ticket::Pending"),
            State::At { end, .. } => f.debug_struct("Ticket::At").field("end", end).finish(),
        }
    }
}

impl<T> Ticket<T> {
    pub(crate) fn new(rx: flume::Receiver<Result<T, AofError>>) -> Self {
        Self {
            state: State::Chan(rx),
        }
    }

    pub(crate) fn ready(result: Result<T, AofError>) -> Self {
        Self {
            state: State::Ready(result),
        }
    }

    pub(crate) fn at(shared: Arc<Shared>, end: u64, value: T) -> Self {
        Self {
            state: State::At { shared, end, value },
        }
    }

    /// Blocks the calling thread until resolved. Not for async tasks.
    pub fn wait(self) -> Result<T, AofError> {
        match self.state {
            State::Ready(r) => r,
            State::Chan(rx) => rx.recv().unwrap_or(Err(AofError::Closed)),
            State::At { shared, end, value } => shared.wait_acked(end).map(|()| value),
        }
    }

    /// Waits without blocking the thread.
    pub async fn wait_async(self) -> Result<T, AofError> {
        match self.state {
            State::Ready(r) => r,
            State::Chan(rx) => rx.recv_async().await.unwrap_or(Err(AofError::Closed)),
            State::At { shared, end, value } => {
                std::future::poll_fn(|cx| shared.poll_acked(end, cx))
                    .await
                    .map(|()| value)
            }
        }
    }

    /// The result if already resolved, else the ticket back.
    pub fn try_wait(self) -> Result<Result<T, AofError>, Self> {
        match self.state {
            State::Ready(r) => Ok(r),
            State::Chan(rx) => match rx.try_recv() {
                Ok(r) => Ok(r),
                Err(flume::TryRecvError::Empty) => Err(Self::new(rx)),
                Err(flume::TryRecvError::Disconnected) => Ok(Err(AofError::Closed)),
            },
            State::At { shared, end, value } => match shared.outcome(end) {
                Some(r) => Ok(r.map(|()| value)),
                None => Err(Self::at(shared, end, value)),
            },
        }
    }
}
