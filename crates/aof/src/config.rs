//! Configuration (no parsing: flags and config files belong to kvd).

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// When the writer thread calls `fdatasync` (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// After every batch; a submitter is released only once its batch is on
    /// disk (group commit).
    Always,
    /// At most once a second, on the writer thread; submitters are released
    /// after the `write`. A crash loses up to about a second.
    #[default]
    EverySec,
    /// Never explicitly (except on rotation and close); the OS decides.
    No,
}

/// Opens an incremental file for appending. Tests use it to inject real
/// I/O failures (`/dev/full`); not part of the stable API.
#[doc(hidden)]
pub type OpenHook = Arc<dyn Fn(&Path) -> io::Result<File> + Send + Sync>;

/// Where and how the AOF is written.
#[derive(Clone)]
pub struct AofConfig {
    /// The AOF directory (Redis's `appendonlydir`); created if missing.
    pub dir: PathBuf,
    /// File name prefix (Redis's `appendfilename`, default `appendonly.aof`):
    /// files are `<name>.<seq>.incr.aof` and `<name>.manifest`.
    pub name: String,
    /// Fsync policy (`appendfsync`).
    pub fsync: FsyncPolicy,
    /// On corruption in the last file, truncate the file at the corrupt
    /// command instead of failing (Redis's `aof-load-truncated` goes only as
    /// far as torn tails, which are always repaired; this goes further and
    /// loses everything after the corrupt point).
    pub truncate_corrupt_tail: bool,
    /// Largest bulk string accepted when loading (default 512 MiB, like
    /// `proto-max-bulk-len`); a longer one is corruption.
    pub max_bulk_len: usize,
    /// Most bytes the writer writes (and, under `always`, fsyncs) before it
    /// acknowledges what they hold, and the size at which an `always` batch
    /// stops gathering (default 4 MiB): one huge burst does not hold back
    /// the submitters queued before its end.
    pub max_batch_bytes: usize,
    /// `auto-aof-rewrite-percentage` (default 100; 0 disables).
    pub rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size` (default 64 MiB).
    pub rewrite_min_size: u64,
    #[doc(hidden)]
    pub open_hook: Option<OpenHook>,
}

impl AofConfig {
    /// Defaults for `dir`: name `appendonly.aof`, `everysec`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            name: "appendonly.aof".to_owned(),
            fsync: FsyncPolicy::default(),
            truncate_corrupt_tail: false,
            max_bulk_len: 512 * 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
            rewrite_percentage: 100,
            rewrite_min_size: 64 * 1024 * 1024,
            open_hook: None,
        }
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    pub(crate) fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.name))
    }

    pub(crate) fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.name)
    }
}

impl fmt::Debug for AofConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AofConfig")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("fsync", &self.fsync)
            .field("truncate_corrupt_tail", &self.truncate_corrupt_tail)
            .field("max_bulk_len", &self.max_bulk_len)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("rewrite_percentage", &self.rewrite_percentage)
            .field("rewrite_min_size", &self.rewrite_min_size)
            .field("open_hook", &self.open_hook.as_ref().map(|_| "<hook>"))
            .finish()
    }
}
