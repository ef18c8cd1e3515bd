//! The append-only file of kvd: every write command, in Redis's RESP format,
//! appended by one dedicated writer thread with group commit, and read back
//! at startup after the engine checkpoint it follows.
//!
//! What it is:
//! - [`Aof`]: a cheap-to-clone handle. Submitters hand it commands
//!   ([`Aof::append`], [`Aof::append_batch`], [`Aof::append_multi`], or a
//!   [`Batch`] built up front) and get a [`Ticket`] that resolves once the
//!   commands are written — and, under [`FsyncPolicy::Always`], on disk.
//!   Submitting never waits for I/O: the commands are encoded on the
//!   caller's thread and appended to the writer's inbox under a short mutex
//!   (no allocation when the caller reuses its [`Batch`]), so it is safe on
//!   a tokio worker; await the ticket with [`Ticket::wait_async`].
//! - [`AofReader`]: the commands after a checkpoint's [`AofPosition`], file
//!   by file, each [`Record`] with its database and position. It repairs a
//!   torn tail and reports corruption with the file and byte offset.
//! - [`Aof::rotate`] / [`Aof::truncate_before`]: the checkpoint protocol
//!   (below), and [`Aof::rewrite_needed`] for `auto-aof-rewrite-*`.
//!
//! What it is not: it does not execute commands, decide which commands are
//! logged (the server's command table does), take checkpoints or parse flags.
//!
//! # File format
//! The directory (Redis's `appendonlydir/`) holds `appendonly.aof.<seq>.incr.aof`
//! files and `appendonly.aof.manifest`, in Redis 7's multi-part layout. Each
//! incremental file is a plain Redis AOF: RESP multibulk arrays, `SELECT <db>`
//! wherever the database changes (and before the first command of each file),
//! transactions of two commands or more as `MULTI … EXEC`; `redis-check-aof` and `redis-cli --pipe`
//! read it. The manifest is Redis's (`file appendonly.aof.3.incr.aof seq 3
//! type i`); once a checkpoint exists, its base line names the checkpoint
//! and where the incremental files take over:
//! `file checkpoint.7 seq 2 type b kvd-start-seq 3 kvd-start-offset 0 kvd-base-size 4096`
//! (Redis's parser ignores the extra keys). See `docs/decisions/004-aof-format.md`.
//!
//! # Group commit
//! Submitters append their encoded commands to one shared buffer, the
//! inbox; a ticket is the submission's end position in the stream of queued
//! bytes. The writer thread sleeps until the inbox holds something, takes
//! all of it at once (swapping buffers) and writes it with one `write` (in
//! batches of at most [`AofConfig::max_batch_bytes`]). It then publishes
//! how far the stream is written — under `always`, written and
//! `fdatasync`ed — and wakes the tickets at or below that position, so one
//! fsync covers every submitter that queued while the previous one ran.
//! No channel message, reply channel or allocation per submission
//! (decision 012: this took about 1 200 instructions per `SET` off the
//! connection thread and 560 off the writer). When the previous batch had
//! several submitters, an `always` batch first keeps gathering until as
//! many have come back, as long as each arrives within 100 µs of the last
//! (1 ms at most): with 50 clients this cut the fsyncs per 100k SETs from
//! about 7 000 to about 5 000, and each fsync saved is kernel CPU time
//! saved; a submitter left alone waits at most one gap. Under `everysec`
//! and `no` tickets resolve after the `write` (`everysec` fsyncs on the
//! same thread at most once a second), and the writer then pauses 2 ms
//! before taking the inbox again, so that under load one wake-up takes
//! many submissions instead of every submission waking the thread
//! (measured: +17% SET throughput under `everysec`, 50 clients, with a
//! 0.5 ms pause; 2 ms cut the writer's CPU from about 1.5 to 0.4 µs per
//! request, decision 012). Control
//! requests (sync, rotate, truncate, close) are queued in the inbox at the
//! byte where they were made, so they are ordered exactly against the
//! writes around them. A failed `write` or fsync fails every ticket not yet
//! acknowledged and leaves the AOF failed: every later append is refused at
//! once with `MISCONF Errors writing to the AOF file: …`
//! ([`AofError::Misconf`]); nothing is retried, and no unsynced write is ever
//! acknowledged under `always`.
//!
//! # Preallocation (`always`)
//! Under `always` the writer writes at its own offset into zeroed space it
//! wrote 1 MiB ahead of the data: `fdatasync` of a file that does not grow
//! needs no journal commit for its size (on the 2-core VM: 170–220 µs per
//! small write+fdatasync, against 305–380 µs appending; decision 011). The
//! zeros are cut when the file is rotated away or closed, so files at rest
//! are plain RESP; a killed server leaves them, and the next open cuts them
//! (reading stops at the last non-zero byte). A batch larger than 1 MiB is
//! written and fsynced in 1 MiB pieces, so that after a power loss only the
//! last MiB of data can hold holes of zeros: in a file that ends in zeros, a
//! zero byte where the format needs another, within 1 MiB of the end of the
//! data, is cut as a torn write. Any other bad byte (a flipped one), or one
//! further back, is corruption, as in any file. If the disk has no room
//! for the zeros, the writer appends without them. `everysec` and `no` write
//! plainly (nothing waits for their fsyncs).
//!
//! # Checkpoints
//! 1. At the checkpoint's cut (writers held off by the server's gate), call
//!    [`Aof::rotate`]: it only enqueues, so everything submitted before the
//!    call lands before the new file and everything after in it. Release the
//!    gate, then wait for the ticket (the writer fsyncs the old file, creates
//!    the new one, updates the manifest): its start is the position the
//!    checkpoint records. A failed rotation must abort the checkpoint.
//! 2. Once the checkpoint is durable, [`Aof::truncate_before`] records it as
//!    the manifest's base (atomic rewrite: temp file, fsync, rename, fsync
//!    dir) and deletes the files it covers entirely.
//! 3. At startup: load the newest checkpoint, replay
//!    [`AofReader::open`]`(cfg, Some(its position))`, then [`Aof::open`].
//!
//! # Example
//! ```
//! use aof::{Aof, AofConfig, AofReader, Entry, FsyncPolicy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let cfg = AofConfig::new(dir.path().join("appendonlydir")).fsync(FsyncPolicy::Always);
//!
//! let aof = Aof::open(cfg.clone()).unwrap();
//! aof.append(0, &["SET", "k", "v"]).unwrap().wait().unwrap(); // on disk now
//! let tx = aof.append_multi(1, &[&["INCR", "n"][..], &["INCR", "n"]]).unwrap();
//! tx.wait().unwrap();
//! let pos = aof.rotate().wait().unwrap(); // a checkpoint would record `pos`
//! aof.append(0, &["DEL", "k"]).unwrap().wait().unwrap();
//! aof.close().unwrap();
//!
//! let all: Vec<_> = AofReader::open(&cfg, None).unwrap().collect::<Result<_, _>>().unwrap();
//! assert_eq!(all.len(), 3);
//! assert!(matches!(&all[1].entry, Entry::Multi(cmds) if cmds.len() == 2 && cmds[0].db == 1));
//! let after: Vec<_> = AofReader::open(&cfg, Some(pos)).unwrap().collect::<Result<_, _>>().unwrap();
//! assert_eq!(after.len(), 1);
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

mod batch;
mod config;
mod error;
mod manifest;
mod parse;
mod reader;
mod writer;

pub use batch::{Batch, Ticket};
pub use bytes::Bytes;
#[doc(hidden)]
pub use config::OpenHook;
pub use config::{AofConfig, FsyncPolicy};
pub use error::AofError;
pub use reader::{AofReader, Command, Entry, LoadProgress, Record};

use manifest::{temp_path, Incr, Manifest};
use writer::{open_incr, Control, Shared, Writer};

/// A place in the AOF: byte `offset` of incremental file `seq`.
/// Positions order like the commands they point at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AofPosition {
    /// Sequence number of the incremental file.
    pub seq: u64,
    /// Byte offset in that file.
    pub offset: u64,
}

impl AofPosition {
    /// A position.
    pub const fn new(seq: u64, offset: u64) -> Self {
        Self { seq, offset }
    }
}

impl fmt::Display for AofPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.offset)
    }
}

/// Counters of the writer (monotonic since [`Aof::open`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AofStats {
    /// Submissions (appends, batches, multi blocks) accepted.
    pub submissions: u64,
    /// Commands in them (without `MULTI`/`EXEC`/`SELECT`).
    pub commands: u64,
    /// Batches written, one `write` each.
    pub batches: u64,
    /// `fdatasync` calls.
    pub fsyncs: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// Handle to an open AOF; clones share the writer thread. The thread stops
/// (after a final fsync) on [`Aof::close`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Aof {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    cfg: AofConfig,
}

impl fmt::Debug for Aof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aof")
            .field("dir", &self.inner.cfg.dir)
            .field("fsync", &self.inner.cfg.fsync)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handle = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let (done, _rx) = flume::bounded(1);
            queue_control(&self.shared, Control::Close(done));
            let _ = handle.join();
        }
    }
}

impl Aof {
    /// Opens (or creates) the AOF in `cfg.dir` for appending and starts the
    /// writer thread (`aof-writer`).
    ///
    /// Appends continue in the last incremental file. Its tail is checked
    /// first (one read of that file): a torn tail is cut off with a warning,
    /// corruption is an error (unless `truncate_corrupt_tail`), so new
    /// commands never follow garbage. A leftover temporary manifest is
    /// removed, and incremental files the manifest no longer lists because a
    /// crash interrupted [`Aof::truncate_before`] or [`Aof::rotate`] are
    /// deleted.
    pub fn open(cfg: AofConfig) -> Result<Self, AofError> {
        fs::create_dir_all(&cfg.dir).map_err(|e| AofError::io("creating", &cfg.dir, e))?;
        let tmp = temp_path(&cfg);
        if tmp.exists() {
            tracing::warn!(file = %tmp.display(), "removing a leftover temporary AOF manifest");
            fs::remove_file(&tmp).map_err(|e| AofError::io("removing", &tmp, e))?;
        }
        let manifest = match Manifest::load(&cfg)? {
            Some(m) => m,
            None => create_fresh(&cfg)?,
        };
        remove_unlisted(&cfg, &manifest)?;
        let last = manifest
            .incr
            .last()
            .cloned()
            .ok_or_else(|| AofError::Manifest {
                path: cfg.manifest_path(),
                line: 0,
                reason: "no incremental file".into(),
            })?;
        let path = cfg.dir.join(&last.file);
        if !path.exists() {
            return Err(AofError::Manifest {
                path: cfg.manifest_path(),
                line: 0,
                reason: format!("listed file {} is missing", last.file),
            });
        }
        let end = AofReader::scan_last(&cfg, last.seq, path.clone())?;
        let file = open_incr(&cfg, &path).map_err(|e| AofError::io("opening", &path, e))?;
        // Positional writes (and preallocation) need a regular file opened
        // by `open_incr` itself; a test hook's file is written as a stream.
        let positional = cfg.open_hook.is_none()
            && file
                .metadata()
                .map_err(|e| AofError::io("reading metadata of", &path, e))?
                .is_file();

        let shared = Arc::new(Shared::default());
        let mut live = 0;
        for i in &manifest.incr {
            live += fs::metadata(cfg.dir.join(&i.file)).map_or(0, |m| m.len());
        }
        let start = manifest.start();
        if manifest.incr.first().map(|i| i.seq) == Some(start.seq) {
            live = live.saturating_sub(start.offset);
        }
        shared.size_since_rewrite.store(live, Ordering::Relaxed);
        shared.base_size.store(
            manifest.base.as_ref().map_or(0, |b| b.size),
            Ordering::Relaxed,
        );

        let writer = Writer {
            cfg: cfg.clone(),
            shared: shared.clone(),
            manifest,
            file,
            seq: last.seq,
            len: end.offset,
            dirty: false,
            last_fsync: Instant::now(),
            failed: None,
            positional,
            prealloc: writer::preallocates(positional, &cfg),
            alloc_end: end.offset,
        };
        let thread = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| AofError::io("spawning the writer thread for", &cfg.dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
                cfg,
            }),
        })
    }

    /// Appends a batch built with [`Batch`]; its commands go into the file
    /// contiguously. The batch is emptied (its buffer is kept, so a
    /// submitter that reuses it does not allocate). Refused at once with
    /// [`AofError::Misconf`] once the AOF has failed, or
    /// [`AofError::Closed`] after [`Aof::close`].
    ///
    /// # Panics
    /// If the batch has an open `MULTI` block ([`Batch::begin_multi`]
    /// without [`Batch::end_multi`]).
    pub fn submit(&self, batch: &mut Batch) -> Result<Ticket, AofError> {
        assert!(
            !batch.multi_open(),
            "aof: submitting a batch with an open MULTI block"
        );
        let Some(first_db) = batch.first_db else {
            return Ok(Ticket::ready(Ok(())));
        };
        let s = &self.inner.shared;
        if let Some(e) = s.misconf() {
            batch.clear();
            return Err(e);
        }
        let (end, wake) = {
            let mut ib = s.lock_inbox();
            if ib.closed {
                drop(ib);
                batch.clear();
                return Err(AofError::Closed);
            }
            let before = ib.buf.len();
            if ib.db != Some(first_db) {
                batch::encode_select(&mut ib.buf, first_db);
            }
            ib.buf.extend_from_slice(&batch.buf);
            ib.db = Some(batch.last_db);
            ib.queued += (ib.buf.len() - before) as u64;
            ib.pending += 1;
            ib.submissions += 1;
            ib.commands += batch.commands;
            (ib.queued, std::mem::take(&mut ib.idle))
        };
        if wake {
            s.wake.notify_one();
        }
        batch.clear();
        Ok(Ticket::at(s.clone(), end, ()))
    }

    /// Appends one command (`args[0]` is its name) in database `db`.
    ///
    /// # Panics
    /// If `args` is empty.
    pub fn append<A: AsRef<[u8]>>(&self, db: u32, args: &[A]) -> Result<Ticket, AofError> {
        let mut b = Batch::new();
        b.command(db, args);
        self.submit(&mut b)
    }

    /// Appends a client's batch of commands (one submission, one ticket).
    ///
    /// # Panics
    /// If a command is empty.
    pub fn append_batch<C: AsRef<[A]>, A: AsRef<[u8]>>(
        &self,
        db: u32,
        cmds: &[C],
    ) -> Result<Ticket, AofError> {
        let mut b = Batch::new();
        for c in cmds {
            b.command(db, c.as_ref());
        }
        self.submit(&mut b)
    }

    /// Appends a transaction's or script's effects as one `MULTI … EXEC`
    /// block (one command: the bare command), never interleaved with other
    /// submitters' commands. For
    /// commands in several databases use [`Batch::multi`].
    ///
    /// # Panics
    /// If a command is empty.
    pub fn append_multi<C: AsRef<[A]>, A: AsRef<[u8]>>(
        &self,
        db: u32,
        cmds: &[C],
    ) -> Result<Ticket, AofError> {
        let cmds: Vec<(u32, &[A])> = cmds.iter().map(|c| (db, c.as_ref())).collect();
        let mut b = Batch::new();
        b.multi(&cmds);
        self.submit(&mut b)
    }

    /// Resolves once everything submitted before is written and fsynced
    /// (whatever the policy): for `SHUTDOWN` and tests.
    pub fn sync(&self) -> Ticket {
        self.control(Control::Sync)
    }

    /// Starts a new incremental file after everything submitted before this
    /// call, and resolves to its start: the position a checkpoint taken at
    /// this cut records. Fsyncs the previous file first.
    pub fn rotate(&self) -> Ticket<AofPosition> {
        self.control(Control::Rotate)
    }

    /// After a checkpoint covering everything before `pos` is durable:
    /// records it as the manifest's base (`label` names it, `size` is its size
    /// in bytes for [`Aof::rewrite_needed`]) and deletes the incremental files
    /// wholly before `pos`. Resolves to the number of files deleted.
    /// `label` must be a file-name-like token (`[A-Za-z0-9._-]`, e.g.
    /// `checkpoint.17`).
    pub fn truncate_before(&self, pos: AofPosition, label: &str, size: u64) -> Ticket<usize> {
        let ok = !label.is_empty()
            && label.len() <= 255
            && label != "."
            && label != ".."
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Ticket::ready(Err(AofError::InvalidLabel(label.to_owned())));
        }
        let label = label.to_owned();
        self.control(|done| Control::Truncate {
            pos,
            label,
            size,
            done,
        })
    }

    /// Fsyncs, stops the writer thread and waits for it. Later appends (from
    /// any clone) fail with [`AofError::Closed`]. Returns the final fsync's
    /// result (or the failure the AOF is in).
    pub fn close(&self) -> Result<(), AofError> {
        let handle = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(handle) = handle else {
            return Err(AofError::Closed);
        };
        let result = self.control(Control::Close).wait();
        let _ = handle.join();
        result
    }

    fn control<T>(&self, make: impl FnOnce(writer::Reply<T>) -> Control) -> Ticket<T> {
        let (done, rx) = flume::bounded(1);
        if queue_control(&self.inner.shared, make(done)) {
            Ticket::new(rx)
        } else {
            Ticket::ready(Err(AofError::Closed))
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> AofStats {
        let s = &self.inner.shared;
        let (submissions, commands) = {
            let ib = s.lock_inbox();
            (ib.submissions, ib.commands)
        };
        AofStats {
            submissions,
            commands,
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes_written: s.bytes.load(Ordering::Relaxed),
        }
    }

    /// The `MISCONF` error if a write or fsync failed, else `None`.
    pub fn failure(&self) -> Option<AofError> {
        self.inner.shared.misconf()
    }

    /// Bytes of incremental AOF after the last checkpoint (Redis's
    /// `aof_current_size` minus the base).
    pub fn size_since_rewrite(&self) -> u64 {
        self.inner.shared.size_since_rewrite.load(Ordering::Relaxed)
    }

    /// Size of the last checkpoint as given to [`Aof::truncate_before`]
    /// (Redis's `aof_base_size`); 0 before the first.
    pub fn base_size(&self) -> u64 {
        self.inner.shared.base_size.load(Ordering::Relaxed)
    }

    /// Redis's `auto-aof-rewrite` trigger: the AOF grew past
    /// `rewrite_min_size` and by `rewrite_percentage` % of the base.
    pub fn rewrite_needed(&self) -> bool {
        let cfg = &self.inner.cfg;
        let size = self.size_since_rewrite();
        let base = self.base_size().max(1);
        cfg.rewrite_percentage > 0
            && size >= cfg.rewrite_min_size
            && u128::from(size) * 100 / u128::from(base) >= u128::from(cfg.rewrite_percentage)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &AofConfig {
        &self.inner.cfg
    }
}

/// Queues a control request after everything submitted so far; false if
/// the AOF is closed (the request is dropped, failing its ticket).
fn queue_control(shared: &Shared, c: Control) -> bool {
    {
        let mut ib = shared.lock_inbox();
        if ib.closed {
            return false;
        }
        match c {
            // The new file starts with a `SELECT`.
            Control::Rotate(_) => ib.db = None,
            Control::Close(_) => ib.closed = true,
            Control::Sync(_) | Control::Truncate { .. } => {}
        }
        let at = ib.buf.len();
        ib.controls.push((at, c));
        ib.idle = false;
    }
    // Also cuts the writer's linger short.
    shared.wake.notify_one();
    true
}

/// No manifest: a new AOF, unless incremental files are lying around.
fn create_fresh(cfg: &AofConfig) -> Result<Manifest, AofError> {
    let entries = fs::read_dir(&cfg.dir).map_err(|e| AofError::io("listing", &cfg.dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if incr_seq(cfg, &name).is_none() {
            continue;
        }
        // An empty one is a crash before the first manifest was written.
        if e.metadata().is_ok_and(|m| m.len() == 0) {
            tracing::warn!(file = %name, "removing an empty AOF file without a manifest");
            fs::remove_file(e.path()).map_err(|err| AofError::io("removing", e.path(), err))?;
        } else {
            return Err(AofError::Manifest {
                path: cfg.manifest_path(),
                line: 0,
                reason: format!("missing, but {name} exists (refusing to start a new AOF over it)"),
            });
        }
    }
    let name = cfg.incr_name(1);
    let path = cfg.dir.join(&name);
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|f| f.sync_all())
        .map_err(|e| AofError::io("creating", &path, e))?;
    let m = Manifest {
        base: None,
        incr: vec![Incr { seq: 1, file: name }],
    };
    m.store(cfg)?;
    Ok(m)
}

fn incr_seq(cfg: &AofConfig, file: &str) -> Option<u64> {
    file.strip_prefix(cfg.name.as_str())?
        .strip_prefix('.')?
        .strip_suffix(".incr.aof")?
        .parse()
        .ok()
}

/// Deletes incremental files a crash left unlisted: covered ones (before the
/// first listed) and empty ones after the last (an unfinished rotation).
fn remove_unlisted(cfg: &AofConfig, m: &Manifest) -> Result<(), AofError> {
    let (Some(first), Some(last)) = (m.incr.first(), m.incr.last()) else {
        return Ok(());
    };
    let entries = fs::read_dir(&cfg.dir).map_err(|e| AofError::io("listing", &cfg.dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seq) = incr_seq(cfg, &name) else {
            continue;
        };
        if m.incr.iter().any(|i| i.file == name) {
            continue;
        }
        let empty = e.metadata().map(|m| m.len() == 0).unwrap_or(false);
        if seq < first.seq || (seq > last.seq && empty) {
            tracing::warn!(file = %name, "deleting an AOF file the manifest no longer lists");
            fs::remove_file(e.path()).map_err(|err| AofError::io("removing", e.path(), err))?;
        } else {
            tracing::warn!(file = %name, "AOF file not in the manifest: left alone");
        }
    }
    Ok(())
}
