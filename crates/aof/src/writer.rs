//! The writer thread: drains the channel greedily, writes each batch with
//! one `write`, applies the fsync policy, releases the submitters.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::batch::encode_select;
use crate::error::os_message;
use crate::manifest::{sync_dir, Base, Incr, Manifest};
use crate::{AofConfig, AofError, AofPosition, FsyncPolicy};

pub(crate) type Reply<T> = flume::Sender<Result<T, AofError>>;

pub(crate) enum Msg {
    Write {
        data: Bytes,
        first_db: u32,
        last_db: u32,
        done: Reply<()>,
    },
    Sync(Reply<()>),
    Rotate(Reply<AofPosition>),
    Truncate {
        pos: AofPosition,
        label: String,
        size: u64,
        done: Reply<usize>,
    },
    Close(Reply<()>),
}

/// State shared by the handle and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub failed: AtomicBool,
    pub failure: Mutex<Option<Arc<str>>>,
    pub submissions: AtomicU64,
    pub commands: AtomicU64,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub size_since_rewrite: AtomicU64,
    pub base_size: AtomicU64,
}

impl Shared {
    pub fn misconf(&self) -> Option<AofError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let message = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(AofError::Misconf { message })
    }

    fn set_failed(&self, message: Arc<str>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
        self.failed.store(true, Ordering::Release);
    }
}

pub(crate) struct Writer {
    pub cfg: AofConfig,
    pub shared: Arc<Shared>,
    pub rx: flume::Receiver<Msg>,
    pub manifest: Manifest,
    pub file: File,
    pub seq: u64,
    pub len: u64,
    /// Database the file is at (`None`: not known, `SELECT` first).
    pub db: Option<u32>,
    /// Written since the last fsync.
    pub dirty: bool,
    pub last_fsync: Instant,
    pub failed: Option<Arc<str>>,
    /// The file is a regular file written at `len` (not a test hook's
    /// stream): it may hold zeroed space past `len`.
    pub positional: bool,
    /// Preallocate zeroed space (`always` on a regular file).
    pub prealloc: bool,
    /// The file's size: `len` plus the zeroed space after it.
    pub alloc_end: u64,
}

/// Opens (or creates) an incremental file for writing. Without a test hook
/// the file is opened without `O_APPEND`: the writer writes at its own
/// offset, which is what lets it write into preallocated space.
pub(crate) fn open_incr(cfg: &AofConfig, path: &Path) -> io::Result<File> {
    match &cfg.open_hook {
        Some(hook) => hook(path),
        None => OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path),
    }
}

/// Under `always`, the file is extended with zeros this far ahead of the
/// data (when the data reaches the zeroed space). Overwriting zeroed blocks
/// lets `fdatasync` skip the journal commit that a growing file needs for
/// its new size: on the 2-core VM, write+fdatasync of 1.8 KB took 170–220 µs
/// into zeroed space against 305–380 µs appending (decision 011).
pub(crate) const PREALLOC_CHUNK: u64 = 1024 * 1024;

/// Under `always` with preallocation, the most the writer has written and
/// not yet fsynced (a larger batch is written and fsynced in pieces). After
/// a power loss, only that span can hold holes of zeros, so the loader
/// treats a zero byte where the format needs another, within this distance
/// of the last non-zero byte of a file with a zeroed tail, as a torn write
/// (see [`crate::reader`]).
pub(crate) const TORN_WINDOW: usize = 1024 * 1024;

/// Whether a file the writer opened gets preallocated space: under
/// `always`, on a regular file written at its own offset.
pub(crate) fn preallocates(positional: bool, cfg: &AofConfig) -> bool {
    positional && cfg.fsync == FsyncPolicy::Always
}

/// Zeros for extending the file.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Pause after a write under `everysec`/`no` (see [`Writer::run`]).
const LINGER: Duration = Duration::from_micros(500);

/// Under `always`, while clients write concurrently: the longest quiet gap
/// between two submissions that still join the batch before its fsync.
/// Measured on a 2-core VM, SET with 50 clients: without gathering, 13
/// submissions per fsync on average and the fsyncs' kernel time was most
/// of the server's CPU.
const GATHER_GAP: Duration = Duration::from_micros(100);

/// Under `always`: the longest a batch gathers before its fsync.
const GATHER_MAX: Duration = Duration::from_millis(1);

impl Writer {
    /// Appends a write message to the batch; hands any other message back.
    fn add(
        &mut self,
        msg: Msg,
        buf: &mut BytesMut,
        waiters: &mut Vec<Reply<()>>,
    ) -> Result<(), Msg> {
        match msg {
            Msg::Write {
                data,
                first_db,
                last_db,
                done,
            } => {
                if self.db != Some(first_db) {
                    encode_select(buf, first_db);
                }
                buf.extend_from_slice(&data);
                self.db = Some(last_db);
                waiters.push(done);
                Ok(())
            }
            other => Err(other),
        }
    }

    pub fn run(mut self) {
        let mut buf = BytesMut::new();
        let mut waiters: Vec<Reply<()>> = Vec::new();
        // Submitters of the last batch (more than one: clients write
        // concurrently).
        let mut last_batch = 0usize;
        loop {
            let first = match self.next_timeout() {
                Some(t) => match self.rx.recv_timeout(t) {
                    Ok(m) => m,
                    Err(flume::RecvTimeoutError::Timeout) => {
                        self.periodic_fsync();
                        continue;
                    }
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            // Drain greedily: every write already queued joins this batch.
            let mut control = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                if let Err(other) = self.add(msg, &mut buf, &mut waiters) {
                    control = Some(other);
                    break;
                }
                if buf.len() < self.cfg.max_batch_bytes {
                    next = self.rx.try_recv().ok();
                }
            }
            // Under `always`, when the last batch had several submitters,
            // keep gathering until as many have come back, while
            // submissions still arrive (each within GATHER_GAP of the last,
            // GATHER_MAX in all): one fsync then covers a whole wave of
            // clients instead of the first few, and every fsync saved is
            // CPU time saved (see GATHER_GAP).
            if control.is_none() && self.cfg.fsync == FsyncPolicy::Always && last_batch > 1 {
                let until = Instant::now() + GATHER_MAX;
                while buf.len() < self.cfg.max_batch_bytes && waiters.len() < last_batch {
                    let wait = GATHER_GAP.min(until.saturating_duration_since(Instant::now()));
                    if wait.is_zero() {
                        break;
                    }
                    match self.rx.recv_timeout(wait) {
                        Ok(msg) => {
                            if let Err(other) = self.add(msg, &mut buf, &mut waiters) {
                                control = Some(other);
                                break;
                            }
                        }
                        // A quiet gap; a disconnect is seen by the next recv.
                        Err(_) => break,
                    }
                }
            }
            if !waiters.is_empty() {
                last_batch = waiters.len();
                self.write_batch(&buf, &mut waiters);
                buf.clear();
                // Under everysec/no nobody waits for the write: linger a
                // little so that the next wake-up drains many submissions
                // instead of every submission waking this thread (a futex
                // wake and a context switch each).
                if control.is_none() && self.cfg.fsync != FsyncPolicy::Always {
                    std::thread::sleep(LINGER);
                }
            }
            match control {
                None => {}
                Some(Msg::Write { .. }) => unreachable!("writes are batched above"),
                Some(Msg::Sync(done)) => {
                    let r = self.check().and_then(|()| self.fsync());
                    let _ = done.send(r);
                }
                Some(Msg::Rotate(done)) => {
                    let _ = done.send(self.rotate());
                }
                Some(Msg::Truncate {
                    pos,
                    label,
                    size,
                    done,
                }) => {
                    let _ = done.send(self.truncate_before(pos, label, size));
                }
                Some(Msg::Close(done)) => {
                    let r = self
                        .check()
                        .and_then(|()| self.fsync())
                        .and_then(|()| self.trim());
                    let _ = done.send(r);
                    // Whatever is still queued is refused.
                    while let Ok(msg) = self.rx.try_recv() {
                        refuse(msg);
                    }
                    return;
                }
            }
        }
        // Every handle is gone: make what was written durable.
        if self.failed.is_none() {
            if let Err(e) = self.fsync().and_then(|()| self.trim()) {
                tracing::error!(error = %e, "final AOF fsync failed");
            }
        }
    }

    /// Under `everysec` with unsynced data, how long until the next fsync.
    fn next_timeout(&mut self) -> Option<Duration> {
        if self.cfg.fsync != FsyncPolicy::EverySec || !self.dirty || self.failed.is_some() {
            return None;
        }
        Some((self.last_fsync + Duration::from_secs(1)).saturating_duration_since(Instant::now()))
    }

    fn periodic_fsync(&mut self) {
        if let Err(e) = self.fsync() {
            tracing::error!(error = %e, "AOF fsync (everysec) failed: refusing further writes");
        }
    }

    fn check(&self) -> Result<(), AofError> {
        match &self.failed {
            Some(message) => Err(AofError::Misconf {
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: &io::Error) -> AofError {
        let message = os_message(e);
        tracing::error!(error = %e, file = self.seq, "writing the AOF failed: refusing further writes (MISCONF)");
        self.failed = Some(message.clone());
        self.shared.set_failed(message.clone());
        AofError::Misconf { message }
    }

    /// fdatasync if anything is unsynced; a failure fails the AOF.
    fn fsync(&mut self) -> Result<(), AofError> {
        self.check()?;
        if !self.dirty {
            return Ok(());
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.dirty = false;
                self.last_fsync = Instant::now();
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Under preallocation, makes sure zeroed space follows the `n` bytes
    /// about to be written at `len`. A failure (a full disk) removes the
    /// partial zeros and turns preallocation off for this file: the data
    /// write itself may still fit.
    fn preallocate(&mut self, n: u64) {
        let end = self.len + n;
        if !self.prealloc || end <= self.alloc_end {
            return;
        }
        let from = self.alloc_end.max(end);
        let to = (end + PREALLOC_CHUNK).next_multiple_of(PREALLOC_CHUNK);
        let mut at = from;
        let r = loop {
            if at >= to {
                break Ok(());
            }
            let k = ((to - at) as usize).min(ZEROS.len());
            if let Err(e) = self.file.write_all_at(&ZEROS[..k], at) {
                break Err(e);
            }
            at += k as u64;
        };
        match r {
            Ok(()) => self.alloc_end = to,
            Err(e) => {
                tracing::warn!(error = %e, "cannot preallocate AOF space: appending without it");
                self.prealloc = false;
                let keep = self.alloc_end.max(self.len);
                if let Err(e) = self.file.set_len(keep) {
                    tracing::warn!(error = %e, "could not remove partial AOF preallocation");
                }
                self.alloc_end = keep;
            }
        }
    }

    /// Writes a batch at the end of the data; under `always`, fsyncs it
    /// (in pieces of at most [`TORN_WINDOW`] bytes when preallocating).
    fn write_data(&mut self, buf: &[u8]) -> Result<(), AofError> {
        self.preallocate(buf.len() as u64);
        let piece = if self.prealloc {
            TORN_WINDOW
        } else {
            buf.len().max(1)
        };
        for (i, part) in buf.chunks(piece).enumerate() {
            let r = if self.positional {
                self.file.write_all_at(part, self.len)
            } else {
                self.file.write_all(part)
            };
            if let Err(e) = r {
                return Err(self.write_failed(&e));
            }
            self.wrote(part.len(), i == 0)?;
        }
        Ok(())
    }

    /// Accounts for `n` bytes written at `len` (the first piece of a batch
    /// counts the batch); fsyncs under `always`.
    fn wrote(&mut self, n: usize, first: bool) -> Result<(), AofError> {
        if first {
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
        }
        self.len += n as u64;
        self.alloc_end = self.alloc_end.max(self.len);
        self.dirty = true;
        self.shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.shared
            .size_since_rewrite
            .fetch_add(n as u64, Ordering::Relaxed);
        match self.cfg.fsync {
            FsyncPolicy::Always => self.fsync(),
            FsyncPolicy::EverySec | FsyncPolicy::No => Ok(()),
        }
    }

    fn write_failed(&mut self, e: &io::Error) -> AofError {
        let err = self.fail(e);
        // Remove a partial write (and any zeroed space) so the file ends at
        // a command boundary (best effort: a torn tail is repaired on load).
        if let Err(e) = self.file.set_len(self.len) {
            tracing::warn!(error = %e, "could not truncate a partial AOF write");
        }
        self.alloc_end = self.len;
        err
    }

    /// Cuts the zeroed space off the end of the file (before the file stops
    /// being the one written: rotation, close), so that files at rest are
    /// plain RESP.
    fn trim(&mut self) -> Result<(), AofError> {
        if self.alloc_end <= self.len || self.failed.is_some() {
            return Ok(());
        }
        match self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                self.alloc_end = self.len;
                Ok(())
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    fn write_batch(&mut self, buf: &[u8], waiters: &mut Vec<Reply<()>>) {
        let result = self.check().and_then(|()| self.write_data(buf));
        for w in waiters.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(AofError::Misconf { message }) => Err(AofError::Misconf {
                    message: message.clone(),
                }),
                Err(_) => Err(AofError::Closed),
            };
            let _ = w.send(r);
        }
        // Under everysec the submitters are already released (Redis's
        // semantics); a failure of this fsync fails the AOF for later ones.
        if self.cfg.fsync == FsyncPolicy::EverySec
            && self.failed.is_none()
            && self.last_fsync.elapsed() >= Duration::from_secs(1)
        {
            self.periodic_fsync();
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.cfg.dir.join(file)
    }

    /// Starts incremental file `seq + 1`; returns its start.
    fn rotate(&mut self) -> Result<AofPosition, AofError> {
        self.fsync()?;
        self.trim()?;
        let seq = self.seq + 1;
        let name = self.cfg.incr_name(seq);
        let path = self.path(&name);
        let file = open_incr(&self.cfg, &path)
            .and_then(|f| sync_dir(&self.cfg.dir).map(|()| f))
            .map_err(|e| AofError::io("creating", &path, e))?;
        let mut manifest = self.manifest.clone();
        manifest.incr.push(Incr { seq, file: name });
        manifest.store(&self.cfg)?;
        self.manifest = manifest;
        self.file = file;
        self.seq = seq;
        self.len = 0;
        self.alloc_end = 0;
        self.prealloc = preallocates(self.positional, &self.cfg);
        self.db = None;
        tracing::info!(seq, "AOF rotated to a new incremental file");
        Ok(AofPosition::new(seq, 0))
    }

    /// Records the checkpoint in the manifest and deletes the incremental
    /// files it covers entirely. Returns how many were deleted.
    fn truncate_before(
        &mut self,
        pos: AofPosition,
        label: String,
        size: u64,
    ) -> Result<usize, AofError> {
        let end = AofPosition::new(self.seq, self.len);
        let start = self.manifest.start();
        if pos > end {
            return Err(AofError::PositionPastEnd { position: pos, end });
        }
        if pos < start {
            return Err(AofError::PositionNotCovered {
                position: pos,
                start,
            });
        }
        let mut manifest = self.manifest.clone();
        let base_seq = manifest.base.as_ref().map_or(1, |b| b.seq + 1);
        manifest.base = Some(Base {
            label,
            seq: base_seq,
            start: pos,
            size,
        });
        let (keep, drop): (Vec<Incr>, Vec<Incr>) =
            manifest.incr.into_iter().partition(|i| i.seq >= pos.seq);
        manifest.incr = keep;
        // 1. Publish the manifest that no longer lists them ...
        manifest.store(&self.cfg)?;
        self.manifest = manifest;
        // 2. ... then delete them (leftovers after a crash here are deleted
        // at the next open).
        for i in &drop {
            let path = self.path(&i.file);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %path.display(), error = %e, "could not delete a covered AOF file");
                }
            }
        }
        if let Err(e) = sync_dir(&self.cfg.dir) {
            tracing::warn!(error = %e, "fsync of the AOF directory failed");
        }
        let mut live = 0;
        for i in &self.manifest.incr {
            live += if i.seq == self.seq {
                self.len
            } else {
                fs::metadata(self.path(&i.file)).map_or(0, |m| m.len())
            };
        }
        let live = live.saturating_sub(
            if self.manifest.incr.first().map(|i| i.seq) == Some(pos.seq) {
                pos.offset
            } else {
                0
            },
        );
        self.shared
            .size_since_rewrite
            .store(live, Ordering::Relaxed);
        self.shared.base_size.store(size, Ordering::Relaxed);
        Ok(drop.len())
    }
}

fn refuse(msg: Msg) {
    match msg {
        Msg::Write { done, .. } | Msg::Sync(done) | Msg::Close(done) => {
            let _ = done.send(Err(AofError::Closed));
        }
        Msg::Rotate(done) => {
            let _ = done.send(Err(AofError::Closed));
        }
        Msg::Truncate { done, .. } => {
            let _ = done.send(Err(AofError::Closed));
        }
    }
}
