//! The one error type of this crate.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::AofPosition;

/// Everything that can go wrong opening, writing or loading an AOF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AofError {
    /// A write or fsync of the AOF failed. The batch that failed and every
    /// later append get this error: the [`Aof`](crate::Aof) stays failed
    /// until it is reopened. `Display` is Redis's reply text (without the
    /// leading `-`), so a server replies `-{error}\r\n`.
    #[error("MISCONF Errors writing to the AOF file: {message}")]
    Misconf {
        /// The operating system's description of the error (`strerror`).
        message: Arc<str>,
    },
    /// An I/O error outside the append path (opening, manifest, rotation,
    /// loading).
    #[error("AOF {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Bytes that are not a RESP multibulk command, followed by more data,
    /// or in a file other than the last one.
    #[error("Bad file format reading the append only file {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first bad byte in that file.
        offset: u64,
        /// What was expected there.
        reason: String,
    },
    /// A file other than the last one ends inside a command or a
    /// `MULTI` block (only the last file may have a torn tail).
    #[error("Unexpected end of file reading the append only file {path} at offset {offset}")]
    UnexpectedEof {
        /// The file.
        path: PathBuf,
        /// Offset of the incomplete command (or of its `MULTI`).
        offset: u64,
    },
    /// The manifest does not parse or names impossible files.
    #[error("invalid AOF manifest {path} line {line}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line number (0: the manifest as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A replay was asked to start before the first byte the manifest still
    /// holds (those files were deleted by [`Aof::truncate_before`](crate::Aof::truncate_before)).
    #[error("AOF position {position} is not covered: the AOF starts at {start}")]
    PositionNotCovered {
        /// The position asked for.
        position: AofPosition,
        /// The first position the AOF holds.
        start: AofPosition,
    },
    /// A position past the end of what was written.
    #[error("AOF position {position} is past the end of the AOF ({end})")]
    PositionPastEnd {
        /// The position given.
        position: AofPosition,
        /// The current end.
        end: AofPosition,
    },
    /// A checkpoint label that cannot go into the manifest (empty, or not
    /// made of `[A-Za-z0-9._-]`).
    #[error("invalid checkpoint label {0:?} (allowed: 1-255 of A-Z a-z 0-9 . _ -)")]
    InvalidLabel(String),
    /// The writer thread has stopped ([`Aof::close`](crate::Aof::close) was called).
    #[error("the AOF is closed")]
    Closed,
}

impl AofError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for the `MISCONF` error of a failed AOF.
    pub fn is_misconf(&self) -> bool {
        matches!(self, Self::Misconf { .. })
    }
}

/// Redis prints `strerror(errno)`; `io::Error` adds ` (os error N)`, which is
/// dropped here so the reply text matches Redis's.
pub(crate) fn os_message(e: &io::Error) -> Arc<str> {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => Arc::from(&s[..i]),
        _ => Arc::from(s),
    }
}
