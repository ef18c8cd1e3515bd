//! Segment files: the on-disk part of the log. Address `a` lives in segment
//! `a >> segment_bits` (file `log.NNNNNN` in the store directory) at offset
//! `a & (segment_size - 1)`. Pages are written whole with `pwrite` by the flush thread and read
//! back with `pread`; the files are never mmapped.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::address::Geometry;

#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    /// File name prefix: `log.` for the log, `cold.` for a two-tier store's cold log.
    prefix: &'static str,
    geo: Geometry,
    files: RwLock<Vec<Option<Arc<File>>>>,
    /// Segments below this number were deleted by `delete_below`.
    deleted_below: std::sync::atomic::AtomicU64,
}

/// The segment files of `dir` named `<prefix>NNNNNN` as (segment number, path).
pub(crate) fn list_segments(dir: &Path, prefix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name.strip_prefix(prefix) {
            if num.len() >= 6 && num.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = num.parse() {
                    out.push((n, entry.path()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn segment_path(dir: &Path, prefix: &str, segment: u64) -> PathBuf {
    dir.join(format!("{prefix}{segment:06}"))
}

impl Segments {
    /// Opens the segment set of `dir`, deleting any segment files left by an earlier run
    /// (used when there is no checkpoint to recover).
    pub fn open_fresh(dir: &Path, prefix: &'static str, geo: Geometry) -> io::Result<Segments> {
        std::fs::create_dir_all(dir)?;
        for (_, path) in list_segments(dir, prefix)? {
            std::fs::remove_file(path)?;
        }
        Ok(Segments::open_keep(dir, prefix, geo))
    }

    /// Opens the segment set of `dir` keeping the files (recovery).
    pub fn open_keep(dir: &Path, prefix: &'static str, geo: Geometry) -> Segments {
        Segments {
            dir: dir.to_path_buf(),
            prefix,
            geo,
            files: RwLock::new(Vec::new()),
            deleted_below: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Recovery: drops everything at or after log address `end` (bytes past a checkpoint's
    /// tail): the segment holding `end` is truncated there, later segments are deleted.
    /// Opens (caches) the segments below so that `disk_bytes` counts them.
    pub fn truncate_from(&self, end: u64) -> io::Result<()> {
        let last = self.geo.segment(end);
        for (seg, path) in list_segments(&self.dir, self.prefix)? {
            if seg > last {
                std::fs::remove_file(path)?;
            } else if seg == last {
                let f = OpenOptions::new().write(true).open(&path)?;
                if f.metadata()?.len() > self.geo.segment_offset(end) {
                    f.set_len(self.geo.segment_offset(end))?;
                    f.sync_all()?;
                }
            } else {
                // Ignore segments that are already gone (deleted below begin).
                let _ = self.file(seg, false);
            }
        }
        Ok(())
    }

    /// Deletes the segment files that lie entirely below log address `addr`; returns
    /// (files, bytes) deleted. Readers that still hold an open handle keep reading the
    /// unlinked file; new opens fail, which readers treat as "below begin".
    pub fn delete_below(&self, addr: u64) -> io::Result<(u64, u64)> {
        use std::sync::atomic::Ordering::SeqCst;
        let upto = self.geo.segment(addr); // segments < upto end at or below addr
        let from = self.deleted_below.load(SeqCst);
        if upto <= from {
            return Ok((0, 0));
        }
        let (mut n, mut bytes) = (0, 0);
        for (seg, path) in list_segments(&self.dir, self.prefix)? {
            if seg < upto {
                {
                    let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = files.get_mut(seg as usize) {
                        *slot = None;
                    }
                }
                bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(&path)?;
                n += 1;
            }
        }
        self.deleted_below.fetch_max(upto, SeqCst);
        Ok((n, bytes))
    }

    /// fsyncs the directory (after creating, renaming or deleting files in it).
    pub fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    fn file(&self, segment: u64, create: bool) -> io::Result<Arc<File>> {
        let idx = segment as usize;
        {
            let files = self.files.read().unwrap_or_else(|e| e.into_inner());
            if let Some(Some(f)) = files.get(idx) {
                return Ok(f.clone());
            }
        }
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(f)) = files.get(idx) {
            return Ok(f.clone());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .open(segment_path(&self.dir, self.prefix, segment))?,
        );
        if files.len() <= idx {
            files.resize(idx + 1, None);
        }
        files[idx] = Some(f.clone());
        Ok(f)
    }

    /// File and in-file offset for writing the page that starts at `page_addr`.
    pub fn for_write(&self, page_addr: u64) -> io::Result<(Arc<File>, u64)> {
        Ok((
            self.file(self.geo.segment(page_addr), true)?,
            self.geo.segment_offset(page_addr),
        ))
    }

    /// Reads `buf.len()` bytes at log address `addr` (must not cross a page).
    pub fn read_at(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        debug_assert!(
            self.geo.offset(addr) + buf.len() as u64 <= self.geo.page_size,
            "disk reads never cross a page"
        );
        let f = self.file(self.geo.segment(addr), false)?;
        f.read_exact_at(buf, self.geo.segment_offset(addr))
    }

    /// Total bytes of the segment files opened so far.
    pub fn disk_bytes(&self) -> u64 {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .flatten()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// fsyncs every open segment file (checkpoints).
    pub fn sync_all(&self) -> io::Result<()> {
        let files: Vec<Arc<File>> = self
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .cloned()
            .collect();
        for f in files {
            f.sync_data()?;
        }
        Ok(())
    }
}
