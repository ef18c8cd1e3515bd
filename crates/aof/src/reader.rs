//! Loading: the commands after a position, across the incremental files in
//! manifest order, with torn-tail repair.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};

use crate::manifest::Manifest;
use crate::parse::parse_command;
use crate::writer::TORN_WINDOW;
use crate::{AofConfig, AofError, AofPosition};

/// Bytes read from a file at a time (at least; more for big commands).
const READ_CHUNK: usize = 64 * 1024;

/// One command and the database it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The database (`SELECT`s in the file are consumed by the reader).
    pub db: u32,
    /// The arguments, `args[0]` being the command name.
    pub args: Vec<Bytes>,
}

/// What one record of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A single command.
    Command(Command),
    /// A complete `MULTI … EXEC` block (without the `MULTI` and `EXEC`):
    /// apply all of it atomically.
    Multi(Vec<Command>),
}

/// An entry read back, with where it is in the AOF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of its first byte (of `MULTI` for a block).
    pub start: AofPosition,
    /// Position just after it.
    pub end: AofPosition,
    /// The commands.
    pub entry: Entry,
}

/// Counters of a load, for progress logging (`loading_*` in `INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadProgress {
    /// Incremental files to read.
    pub files_total: usize,
    /// Files read to their end.
    pub files_done: usize,
    /// Sum of those files' sizes when the load started.
    pub bytes_total: u64,
    /// Bytes parsed so far (including skipped commands before the start).
    pub bytes_read: u64,
    /// Commands parsed (including `SELECT`, `MULTI`, `EXEC` and skipped ones).
    pub commands: u64,
    /// Records yielded.
    pub records: u64,
    /// Bytes cut from the end of the last file (torn tail or, with
    /// `truncate_corrupt_tail`, corruption).
    pub truncated_bytes: u64,
}

struct Cursor {
    file: File,
    path: PathBuf,
    seq: u64,
    buf: BytesMut,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    last: bool,
    /// Where the data ends: after the last non-zero byte. Zeros after it
    /// are space the writer preallocated (`appendfsync always`).
    limit: u64,
    /// The file is longer than `limit` (it ends in zeroed space).
    zero_tail: bool,
}

/// Cuts the file at `path` to `len` bytes and syncs it; returns its length
/// before.
fn cut_file(path: &std::path::Path, len: u64) -> std::io::Result<u64> {
    let f = OpenOptions::new().write(true).open(path)?;
    let before = f.metadata()?.len();
    f.set_len(len)?;
    f.sync_all()?;
    Ok(before)
}

/// The offset after the last non-zero byte of `file` (of `len` bytes).
fn data_end(file: &File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(READ_CHUNK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Iterates over the records after a position, in file order.
///
/// Yields `Err` once (then `None`) on an I/O error or on corruption. A torn
/// tail of the last file (a crash in the middle of a write: the bytes after
/// the last complete command are a strict prefix of a command, or an open
/// `MULTI` block with no `EXEC`) is cut off the file with a warning and ends
/// the iteration normally.
///
/// Trailing zeros are preallocated space (`appendfsync always`): reading
/// stops at the last non-zero byte, and the last file is cut there. In such
/// a file, after a power loss the last unsynced write may have holes of
/// zeros: a zero where the format needs another byte, within `TORN_WINDOW`
/// (1 MiB, the most the writer leaves unsynced) of the end of the data, is
/// that torn write and is cut; any other bad byte is corruption.
pub struct AofReader {
    max_bulk_len: usize,
    truncate_corrupt_tail: bool,
    files: Vec<(u64, PathBuf, bool)>,
    next_file: usize,
    cur: Option<Cursor>,
    after: AofPosition,
    db: u32,
    multi: Option<(AofPosition, Vec<Command>)>,
    spans: Vec<(usize, usize)>,
    progress: LoadProgress,
    end: AofPosition,
    done: bool,
}

impl std::fmt::Debug for AofReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AofReader")
            .field("after", &self.after)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl AofReader {
    /// Reads the AOF in `cfg.dir` from `after` (a checkpoint's position), or
    /// from the start the manifest records if `None`. A directory without a
    /// manifest is an empty AOF.
    pub fn open(cfg: &AofConfig, after: Option<AofPosition>) -> Result<Self, AofError> {
        let Some(manifest) = Manifest::load(cfg)? else {
            return Ok(Self::new(cfg, Vec::new(), after.unwrap_or_default()));
        };
        let start = manifest.start();
        let after = after.unwrap_or(start);
        if after < start {
            return Err(AofError::PositionNotCovered {
                position: after,
                start,
            });
        }
        let last = manifest.incr.last().map_or(0, |i| i.seq);
        if after.seq > last {
            return Err(AofError::PositionPastEnd {
                position: after,
                end: AofPosition::new(last, 0),
            });
        }
        let files = manifest
            .incr
            .iter()
            .filter(|i| i.seq >= after.seq)
            .map(|i| (i.seq, cfg.dir.join(&i.file), i.seq == last))
            .collect();
        Self::new(cfg, files, after).with_sizes()
    }

    /// Scans one file to its end (repairing its tail) without yielding.
    pub(crate) fn scan_last(
        cfg: &AofConfig,
        seq: u64,
        path: PathBuf,
    ) -> Result<AofPosition, AofError> {
        let mut r = Self::new(
            cfg,
            vec![(seq, path, true)],
            AofPosition::new(seq, u64::MAX),
        );
        if let Some(Err(e)) = r.next() {
            return Err(e);
        }
        Ok(r.end)
    }

    fn new(cfg: &AofConfig, files: Vec<(u64, PathBuf, bool)>, after: AofPosition) -> Self {
        Self {
            max_bulk_len: cfg.max_bulk_len,
            truncate_corrupt_tail: cfg.truncate_corrupt_tail,
            progress: LoadProgress {
                files_total: files.len(),
                ..LoadProgress::default()
            },
            end: after,
            files,
            next_file: 0,
            cur: None,
            after,
            db: 0,
            multi: None,
            spans: Vec::new(),
            done: false,
        }
    }

    fn with_sizes(mut self) -> Result<Self, AofError> {
        for (_, path, _) in &self.files {
            let len = std::fs::metadata(path)
                .map_err(|e| AofError::io("reading metadata of", path, e))?
                .len();
            self.progress.bytes_total += len;
        }
        Ok(self)
    }

    /// Progress so far.
    pub fn progress(&self) -> LoadProgress {
        self.progress
    }

    /// The position after the last complete record read so far (after the
    /// iteration ended: the end of the AOF, where appends continue).
    pub fn end(&self) -> AofPosition {
        self.end
    }

    fn fail(&mut self, e: AofError) -> Option<Result<Record, AofError>> {
        self.done = true;
        Some(Err(e))
    }

    /// Bad bytes (or a bad command) at `offset` of the current file.
    fn corrupt(&mut self, offset: u64, reason: String) -> Option<Result<Record, AofError>> {
        let cur = self.cur.as_ref()?;
        if cur.last && self.truncate_corrupt_tail {
            let cut = self.cut_point();
            tracing::warn!(
                file = %cur.path.display(), offset, cut, %reason,
                "corrupt AOF: truncating the last file at the corrupt command (truncate_corrupt_tail)"
            );
            return self.truncate(cut);
        }
        let path = cur.path.clone();
        self.fail(AofError::Corrupt {
            path,
            offset,
            reason,
        })
    }

    /// Where to cut the current file: the incomplete command, or its `MULTI`.
    fn cut_point(&self) -> u64 {
        match (&self.multi, &self.cur) {
            (Some((start, _)), _) => start.offset,
            (None, Some(cur)) => cur.offset,
            (None, None) => 0,
        }
    }

    fn truncate(&mut self, cut: u64) -> Option<Result<Record, AofError>> {
        self.done = true;
        let cur = self.cur.as_ref()?;
        let path = cur.path.clone();
        // Preallocated zeros after the data are not counted as cut.
        let limit = cur.limit;
        let res = cut_file(&path, cut).map(|len| len.min(limit).saturating_sub(cut));
        match res {
            Ok(cut_bytes) => {
                self.progress.truncated_bytes += cut_bytes;
                self.progress.files_done += 1;
                self.end = AofPosition::new(cur.seq, cut);
                self.multi = None;
                None
            }
            Err(e) => Some(Err(AofError::io("truncating", path, e))),
        }
    }

    /// Applies `SELECT`/`MULTI`/`EXEC`; returns a record to yield, if any.
    fn handle(
        &mut self,
        args: Vec<Bytes>,
        start: AofPosition,
        end: AofPosition,
    ) -> Result<Option<Record>, String> {
        let name = &args[0][..];
        if name.eq_ignore_ascii_case(b"SELECT") {
            let db = (args.len() == 2)
                .then(|| std::str::from_utf8(&args[1]).ok()?.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| "invalid SELECT".to_owned())?;
            self.db = db;
            return Ok(None);
        }
        if name.eq_ignore_ascii_case(b"MULTI") {
            if self.multi.is_some() {
                return Err("MULTI inside MULTI".into());
            }
            self.multi = Some((start, Vec::new()));
            return Ok(None);
        }
        if name.eq_ignore_ascii_case(b"EXEC") {
            let Some((block_start, cmds)) = self.multi.take() else {
                return Err("EXEC without MULTI".into());
            };
            return Ok((block_start >= self.after).then_some(Record {
                start: block_start,
                end,
                entry: Entry::Multi(cmds),
            }));
        }
        let cmd = Command { db: self.db, args };
        if let Some((_, cmds)) = &mut self.multi {
            cmds.push(cmd);
            return Ok(None);
        }
        Ok((start >= self.after).then_some(Record {
            start,
            end,
            entry: Entry::Command(cmd),
        }))
    }

    fn open_next(&mut self) -> Result<bool, AofError> {
        let Some((seq, path, last)) = self.files.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        let file = File::open(&path).map_err(|e| AofError::io("opening", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| AofError::io("reading metadata of", &path, e))?
            .len();
        let limit = data_end(&file, len).map_err(|e| AofError::io("reading", &path, e))?;
        self.db = 0;
        self.cur = Some(Cursor {
            file,
            path,
            seq,
            buf: BytesMut::new(),
            offset: 0,
            eof: false,
            last,
            limit,
            zero_tail: limit < len,
        });
        Ok(true)
    }
}

impl Iterator for AofReader {
    type Item = Result<Record, AofError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(cur) = self.cur.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => return self.fail(e),
                }
            };
            match parse_command(&cur.buf, self.max_bulk_len, &mut self.spans) {
                Ok(Some(len)) => {
                    let data = cur.buf.split_to(len).freeze();
                    let start = AofPosition::new(cur.seq, cur.offset);
                    cur.offset += len as u64;
                    let end = AofPosition::new(cur.seq, cur.offset);
                    self.progress.bytes_read += len as u64;
                    self.progress.commands += 1;
                    let args = self.spans.iter().map(|&(a, b)| data.slice(a..b)).collect();
                    match self.handle(args, start, end) {
                        Ok(Some(rec)) => {
                            self.progress.records += 1;
                            self.end = rec.end;
                            return Some(Ok(rec));
                        }
                        Ok(None) => {
                            if self.multi.is_none() {
                                self.end = end;
                            }
                        }
                        Err(reason) => return self.corrupt(start.offset, reason),
                    }
                }
                Ok(None) if !cur.eof => {
                    let old = cur.buf.len();
                    let left = cur.limit - (cur.offset + old as u64);
                    if left == 0 {
                        cur.eof = true;
                        continue;
                    }
                    cur.buf
                        .resize(old + READ_CHUNK.max(old).min(left as usize), 0);
                    match cur.file.read(&mut cur.buf[old..]) {
                        Ok(n) => {
                            cur.buf.truncate(old + n);
                            cur.eof = n == 0;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                            cur.buf.truncate(old)
                        }
                        Err(e) => {
                            let path = cur.path.clone();
                            return self.fail(AofError::io("reading", path, e));
                        }
                    }
                }
                Ok(None) => {
                    if cur.buf.is_empty() && self.multi.is_none() {
                        if cur.last && cur.zero_tail {
                            // Preallocated space after the data: cut it
                            // (the writer preallocates again as it goes).
                            tracing::info!(
                                file = %cur.path.display(),
                                offset = cur.offset,
                                "cutting the AOF's preallocated space"
                            );
                            if let Err(e) = cut_file(&cur.path, cur.offset) {
                                let path = cur.path.clone();
                                return self.fail(AofError::io("truncating", path, e));
                            }
                        }
                        self.progress.files_done += 1;
                        self.end = AofPosition::new(cur.seq, cur.offset);
                        self.cur = None;
                        continue;
                    }
                    let cut = self.cut_point();
                    let cur = self.cur.as_ref()?;
                    if !cur.last {
                        let path = cur.path.clone();
                        return self.fail(AofError::UnexpectedEof { path, offset: cut });
                    }
                    tracing::warn!(
                        file = %cur.path.display(),
                        offset = cut,
                        bytes = cur.offset + cur.buf.len() as u64 - cut,
                        open_multi = self.multi.is_some(),
                        "AOF ends with a torn command (or a MULTI without EXEC): truncating it"
                    );
                    return self.truncate(cut);
                }
                Err(fe) => {
                    let offset = cur.offset + fe.offset as u64;
                    // A power loss tears a write by leaving sectors
                    // unwritten: the first bad byte is a zero. A flipped
                    // byte is not, and stays corruption wherever it is.
                    let hole = cur.buf.get(fe.offset) == Some(&0);
                    if hole && cur.last && cur.zero_tail && cur.limit - offset <= TORN_WINDOW as u64
                    {
                        let cut = self.cut_point();
                        let cur = self.cur.as_ref()?;
                        tracing::warn!(
                            file = %cur.path.display(), offset, cut, reason = %fe.reason,
                            "AOF ends with a torn write in its preallocated space: truncating it"
                        );
                        return self.truncate(cut);
                    }
                    return self.corrupt(offset, fe.reason);
                }
            }
        }
    }
}
