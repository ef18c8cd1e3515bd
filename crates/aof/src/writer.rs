//! The writer thread: takes everything queued in the inbox, writes it with
//! one `write`, applies the fsync policy, acknowledges the submitters.
//!
//! Submitters append their encoded commands to one shared buffer (the
//! inbox) under a short mutex: no allocation, no message and no reply
//! channel per submission. A submission's ticket is its end position in the
//! stream of queued bytes; the writer publishes how far the stream is
//! written (under `always`: written and fsynced) and wakes the tickets
//! waiting below that. Control requests (sync, rotate, truncate, close)
//! sit in the same inbox at the buffer offset where they were queued, so
//! they are ordered exactly against the writes around them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::error::os_message;
use crate::manifest::{sync_dir, Base, Incr, Manifest};
use crate::{AofConfig, AofError, AofPosition, FsyncPolicy};

pub(crate) type Reply<T> = flume::Sender<Result<T, AofError>>;

/// A request to the writer other than a write, queued in the inbox.
pub(crate) enum Control {
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

/// What submitters hand the writer (behind [`Shared::inbox`]).
#[derive(Default)]
pub(crate) struct Inbox {
    /// Encoded commands not yet taken by the writer (`SELECT`s included).
    pub buf: BytesMut,
    /// Database the stream is at after `buf` (`None`: `SELECT` first, as
    /// at the start of every file).
    pub db: Option<u32>,
    /// Stream position at the end of `buf`: bytes ever queued.
    pub queued: u64,
    /// Control requests, each at the offset of `buf` where it was queued.
    pub controls: Vec<(usize, Control)>,
    /// Submissions in `buf`.
    pub pending: usize,
    /// The writer is waiting on [`Shared::wake`]: the next submitter
    /// notifies it (and clears this, so one notification per wait).
    pub idle: bool,
    /// A close is queued (or the writer is gone): refuse new requests.
    pub closed: bool,
    pub submissions: u64,
    pub commands: u64,
}

/// Tickets waiting for the stream to be written up to their position.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Async waiters: (end position, waker).
    pub wakers: Vec<(u64, Waker)>,
    /// Threads blocked on [`Shared::acked_cv`].
    pub blocked: usize,
}

/// State shared by the handle and the writer thread.
#[derive(Default)]
pub(crate) struct Shared {
    pub failed: AtomicBool,
    pub failure: Mutex<Option<Arc<str>>>,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub size_since_rewrite: AtomicU64,
    pub base_size: AtomicU64,
    pub inbox: Mutex<Inbox>,
    /// The writer waits here for work.
    pub wake: Condvar,
    /// Stream position written (under `always`: and fsynced).
    pub acked: AtomicU64,
    /// The writer thread has stopped: unacknowledged tickets fail.
    pub stopped: AtomicBool,
    pub waiters: Mutex<Waiters>,
    pub acked_cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn misconf(&self) -> Option<AofError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let message = lock(&self.failure).clone()?;
        Some(AofError::Misconf { message })
    }

    fn set_failed(&self, message: Arc<str>) {
        *lock(&self.failure) = Some(message);
        self.failed.store(true, Ordering::Release);
    }

    pub fn lock_inbox(&self) -> MutexGuard<'_, Inbox> {
        lock(&self.inbox)
    }

    /// The writer waits for work as the idle writer (the next submitter
    /// notifies it), at most `timeout` if given; returns the inbox and
    /// whether the timeout passed.
    fn idle_wait<'a>(
        &'a self,
        mut ib: MutexGuard<'a, Inbox>,
        timeout: Option<Duration>,
    ) -> (MutexGuard<'a, Inbox>, bool) {
        ib.idle = true;
        let (mut ib, timed_out) = match timeout {
            Some(t) => {
                let (g, r) = self
                    .wake
                    .wait_timeout(ib, t)
                    .unwrap_or_else(|p| p.into_inner());
                (g, r.timed_out())
            }
            None => (self.wake.wait(ib).unwrap_or_else(|p| p.into_inner()), false),
        };
        ib.idle = false;
        (ib, timed_out)
    }

    /// The outcome of the submission ending at stream position `end`, if
    /// known: written (acked), failed, or never to be written.
    pub fn outcome(&self, end: u64) -> Option<Result<(), AofError>> {
        if self.acked.load(Ordering::Acquire) >= end {
            return Some(Ok(()));
        }
        if let Some(e) = self.misconf() {
            return Some(Err(e));
        }
        if self.stopped.load(Ordering::Acquire) {
            // The writer may have acknowledged it just before stopping.
            if self.acked.load(Ordering::Acquire) >= end {
                return Some(Ok(()));
            }
            return Some(Err(AofError::Closed));
        }
        None
    }

    /// Blocks until the submission ending at `end` has an outcome.
    pub fn wait_acked(&self, end: u64) -> Result<(), AofError> {
        let mut w = lock(&self.waiters);
        loop {
            if let Some(r) = self.outcome(end) {
                return r;
            }
            w.blocked += 1;
            w = self.acked_cv.wait(w).unwrap_or_else(|p| p.into_inner());
            w.blocked -= 1;
        }
    }

    /// Polls the outcome of the submission ending at `end`, registering the
    /// task's waker if there is none yet. The writer publishes `acked`
    /// before it takes the waiter list, and the check after registering
    /// runs under that list's lock order, so no wake-up is lost.
    pub fn poll_acked(&self, end: u64, cx: &mut Context<'_>) -> Poll<Result<(), AofError>> {
        if let Some(r) = self.outcome(end) {
            return Poll::Ready(r);
        }
        lock(&self.waiters).wakers.push((end, cx.waker().clone()));
        match self.outcome(end) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// Wakes the tickets that now have an outcome (all of them once the
    /// AOF failed or the writer stopped). `woken` is scratch space.
    fn publish(&self, woken: &mut Vec<Waker>) {
        let all = self.failed.load(Ordering::Acquire) || self.stopped.load(Ordering::Acquire);
        let acked = self.acked.load(Ordering::Acquire);
        {
            let mut w = lock(&self.waiters);
            let mut i = 0;
            while i < w.wakers.len() {
                if all || w.wakers[i].0 <= acked {
                    woken.push(w.wakers.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if w.blocked > 0 {
                self.acked_cv.notify_all();
            }
        }
        for w in woken.drain(..) {
            w.wake();
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("acked", &self.acked.load(Ordering::Relaxed))
            .field("failed", &self.failed.load(Ordering::Relaxed))
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Marks the writer stopped however its thread ends (a panic included), so
/// that no ticket waits forever: unacknowledged writes and queued control
/// requests fail with [`AofError::Closed`].
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let controls = {
            let mut ib = self.0.lock_inbox();
            ib.closed = true;
            std::mem::take(&mut ib.controls)
        };
        drop(controls);
        self.0.stopped.store(true, Ordering::Release);
        self.0.publish(&mut Vec::new());
    }
}

pub(crate) struct Writer {
    pub cfg: AofConfig,
    pub shared: Arc<Shared>,
    pub manifest: Manifest,
    pub file: File,
    pub seq: u64,
    pub len: u64,
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

/// Pause after a write under `everysec`/`no` (see [`Writer::run`]). Each
/// pause is a timed wait and a context switch on a 2-core VM: at 0.5 ms the
/// writer took about 1.5 µs of CPU per request from the core the client
/// needs; at 2 ms about 0.4 µs, and SET, INCR and EVALSHA under `everysec`
/// were faster in three interleaved rounds of three (decision 012). Writes
/// are acknowledged before this thread writes them (as `everysec` fsyncs
/// only once a second anyway), so a crash of the kvd process can lose the
/// last pause's writes; README says so.
const LINGER: Duration = Duration::from_millis(2);

/// The writer keeps its batch buffer's capacity up to this size.
const KEEP_CAPACITY: usize = 8 * 1024 * 1024;

/// Under `always`, while clients write concurrently: the longest quiet gap
/// between two submissions that still join the batch before its fsync.
/// Measured on a 2-core VM, SET with 50 clients: without gathering, 13
/// submissions per fsync on average and the fsyncs' kernel time was most
/// of the server's CPU.
const GATHER_GAP: Duration = Duration::from_micros(100);

/// Under `always`: the longest a batch gathers before its fsync.
const GATHER_MAX: Duration = Duration::from_millis(1);

impl Writer {
    pub fn run(mut self) {
        let shared = self.shared.clone();
        let _stop = StopGuard(shared.clone());
        let mut data = BytesMut::new();
        let mut controls: Vec<(usize, Control)> = Vec::new();
        let mut woken: Vec<Waker> = Vec::new();
        // Submissions in the last batch (more than one: clients write
        // concurrently).
        let mut last_batch = 0usize;
        loop {
            let end = {
                let mut ib = shared.lock_inbox();
                while ib.buf.is_empty() && ib.controls.is_empty() {
                    let timed_out;
                    (ib, timed_out) = shared.idle_wait(ib, self.next_timeout());
                    if timed_out && ib.buf.is_empty() && ib.controls.is_empty() {
                        drop(ib);
                        self.periodic_fsync();
                        ib = shared.lock_inbox();
                    }
                }
                // Under `always`, when the last batch had several
                // submitters, keep gathering until as many have come back,
                // while submissions still arrive (each within GATHER_GAP of
                // the last, GATHER_MAX in all): one fsync then covers a
                // whole wave of clients instead of the first few, and every
                // fsync saved is CPU time saved (see GATHER_GAP).
                if self.cfg.fsync == FsyncPolicy::Always && last_batch > 1 {
                    let until = Instant::now() + GATHER_MAX;
                    while ib.controls.is_empty()
                        && ib.buf.len() < self.cfg.max_batch_bytes
                        && ib.pending < last_batch
                    {
                        let wait = GATHER_GAP.min(until.saturating_duration_since(Instant::now()));
                        if wait.is_zero() {
                            break;
                        }
                        let before = ib.pending;
                        ib = shared.idle_wait(ib, Some(wait)).0;
                        if ib.pending == before {
                            break; // a quiet gap
                        }
                    }
                }
                std::mem::swap(&mut ib.buf, &mut data);
                std::mem::swap(&mut ib.controls, &mut controls);
                if !data.is_empty() {
                    last_batch = ib.pending;
                }
                ib.pending = 0;
                ib.queued
            };
            let start = end - data.len() as u64;
            // The data up to each control request, then the request.
            let mut at = 0;
            let mut close = None;
            for (off, c) in controls.drain(..) {
                if off > at {
                    self.write_span(&data[at..off], start + at as u64, &mut woken);
                    at = off;
                }
                match c {
                    Control::Sync(done) => {
                        let _ = done.send(self.fsync());
                    }
                    Control::Rotate(done) => {
                        let _ = done.send(self.rotate());
                    }
                    Control::Truncate {
                        pos,
                        label,
                        size,
                        done,
                    } => {
                        let _ = done.send(self.truncate_before(pos, label, size));
                    }
                    // Nothing is queued after a close.
                    Control::Close(done) => close = Some(done),
                }
            }
            let wrote = at < data.len();
            if wrote {
                self.write_span(&data[at..], start + at as u64, &mut woken);
            }
            data.clear();
            if data.capacity() > KEEP_CAPACITY {
                data = BytesMut::new();
            }
            if let Some(done) = close {
                let _ = done.send(self.fsync().and_then(|()| self.trim()));
                return;
            }
            // Under everysec/no nobody waits for the write: linger a little
            // so that the next wake-up takes many submissions instead of
            // every submission waking this thread (a futex wake and a
            // context switch each). A control request cuts it short.
            if wrote && self.cfg.fsync != FsyncPolicy::Always {
                let ib = shared.lock_inbox();
                if ib.controls.is_empty() {
                    drop(
                        shared
                            .wake
                            .wait_timeout(ib, LINGER)
                            .unwrap_or_else(|p| p.into_inner()),
                    );
                }
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

    /// Writes `data`, the stream from position `from`, in batches of at
    /// most `max_batch_bytes`, acknowledging each as it is written (so one
    /// huge burst does not hold back the submitters queued before its end).
    fn write_span(&mut self, data: &[u8], from: u64, woken: &mut Vec<Waker>) {
        let mut at = from;
        for part in data.chunks(self.cfg.max_batch_bytes.max(1)) {
            at += part.len() as u64;
            self.write_batch(part, at);
            self.shared.publish(woken);
        }
    }

    /// Writes the stream up to position `end` (the last bytes of which are
    /// `buf`) and, if that succeeded, acknowledges it.
    fn write_batch(&mut self, buf: &[u8], end: u64) {
        if self.check().and_then(|()| self.write_data(buf)).is_ok() {
            self.shared.acked.store(end, Ordering::Release);
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
